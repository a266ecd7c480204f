"""Deterministic language-model batches.

Documents are tokenized, joined with EOS into one token stream and cut into windows of `seq_len + 1`
tokens (consecutive windows share one token, so every token is a target once). The window order is
a fresh permutation per epoch drawn from `(seed, epoch)`. Batch `step` holds global examples
`step*B .. step*B + B-1`, so the batch at any step is a pure function of `(seed, step)`: resuming
at step s needs no iterator state, only s. With several hosts each process takes its contiguous
slice of rows (`process_index`), to be joined with `jax.make_array_from_process_local_data`.
"""

from __future__ import annotations

import numpy as np


def tokenize_documents(tokenizer, docs: list[str]) -> np.ndarray:
    """Token ids of all documents, each followed by EOS, as one int32 stream [N]."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos_token; set one to separate documents")
    ids = tokenizer(docs, add_special_tokens=False)["input_ids"]
    return np.fromiter((t for doc in ids for t in (*doc, eos)), dtype=np.int32)


class TokenWindows:
    """Fixed-length windows over a token stream, served in a seeded per-epoch order."""

    def __init__(self, tokens: np.ndarray, seq_len: int, *, seed: int = 0):
        tokens = np.asarray(tokens, np.int32)
        self.seq_len, self.seed = seq_len, seed
        self.num_windows = (len(tokens) - 1) // seq_len
        if self.num_windows < 1:
            raise ValueError(f"{len(tokens)} tokens are too few for one window of seq_len + 1 = {seq_len + 1}")
        self.tokens = tokens

    def window(self, index: int) -> np.ndarray:
        start = index * self.seq_len
        return self.tokens[start : start + self.seq_len + 1]

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng((self.seed, epoch)).permutation(self.num_windows)

    def batch(self, step: int, batch_size: int, *, process_index: int = 0, process_count: int = 1) -> np.ndarray:
        """This process's rows of global batch `step`: int32 [batch_size // process_count, seq_len + 1]."""
        if batch_size % process_count:
            raise ValueError(f"global batch {batch_size} is not divisible by {process_count} processes")
        local = batch_size // process_count
        first = step * batch_size + process_index * local
        rows, cache = [], {}
        for example in range(first, first + local):
            epoch, pos = divmod(example, self.num_windows)
            if epoch not in cache:
                cache[epoch] = self._order(epoch)
            rows.append(self.window(int(cache[epoch][pos])))
        return np.stack(rows)

    def sequential_batches(self, batch_size: int, max_batches: int | None = None):
        """Windows in stored order, `batch_size` at a time (eval sets; the last partial batch is dropped)."""
        n = self.num_windows // batch_size
        for b in range(n if max_batches is None else min(n, max_batches)):
            yield np.stack([self.window(b * batch_size + i) for i in range(batch_size)])

    def split(self, eval_fraction: float) -> tuple[TokenWindows, TokenWindows]:
        """(train, eval) split at a window boundary: the last `eval_fraction` of the stream is eval."""
        n_eval = max(1, int(self.num_windows * eval_fraction)) if eval_fraction > 0 else 0
        cut = (self.num_windows - n_eval) * self.seq_len
        train = TokenWindows(self.tokens[: cut + 1], self.seq_len, seed=self.seed)
        evals = TokenWindows(self.tokens[cut:], self.seq_len, seed=self.seed) if n_eval else None
        return train, evals
