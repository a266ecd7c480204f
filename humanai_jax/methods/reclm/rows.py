"""RecLM's training rows (docs/reclm.md §2.6): a pure function of (seed, step)."""

from __future__ import annotations

import math

import numpy as np

from humanai_jax.methods.reclm import data as rdata, encode
from humanai_jax.methods.reclm.scope_loss import span_nodes


class RowMaker:
    """Training rows: a pure function of (seed, step). Each epoch visits every user once in a fresh
    order, each visit draws a fresh sample (§2.6)."""

    def __init__(self, config, variant, codec, titles, title_ids, seqs, teacher, trie):
        self.c, self.variant, self.codec, self.titles, self.title_ids = config, variant, codec, titles, title_ids
        self.seqs, self.teacher, self.trie = seqs, teacher, trie
        self.batch = config.train.batch_size
        self.steps_per_epoch = math.ceil(len(seqs) / self.batch)
        self.row_len = config.data.seq_len + 1
        self.stats = {"prompt_truncated": 0, "rows": 0}

    def row(self, epoch: int, user: int) -> dict:
        d, rng = self.c.data, np.random.default_rng([self.c.seed, epoch, user])
        sample = rdata.draw_train_sample(rng, self.seqs[user], self.titles, lambda h, k: self.teacher[tuple(h)][:k],
                                         history_len=d.history_len, max_items=d.max_reply_items)
        prompt = self.codec.prompt_ids(sample.prompt)
        reply = self.codec.reply_ids(self.title_ids, sample.items)
        lm_mask = encode.ret_lm_mask(reply, self.codec.soi_id, self.codec.eoi_id) if self.variant == "ret" else None
        tokens, mask = encode.build_row(prompt, reply, self.row_len, lm_mask=lm_mask)
        start = min(len(prompt), self.row_len - len(reply))
        self.stats["prompt_truncated"] += int(start < len(prompt))
        self.stats["rows"] += 1
        out = {"tokens": tokens, "mask": mask}
        if self.variant == "cgen":
            targets = np.where(mask[1:] > 0, tokens[1:], -1)[None]
            out["span_node"] = span_nodes(targets, self.trie, scope_mask_eoi=self.c.train.scope_mask_eoi)[0]
        else:
            out["ret_pos"], out["ret_item"] = encode.retrieval_targets(tokens, start, sample.items, self.codec.soi_id,
                                                                      d.max_reply_items)
        return out

    def batch_at(self, step: int) -> dict:
        epoch, i = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.c.seed, 1_000_003, epoch]).permutation(len(self.seqs))
        users = [order[(i * self.batch + j) % len(order)] for j in range(self.batch)]
        rows = [self.row(epoch, int(u)) for u in users]
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}
