r"""RecLM-cgen / RecLM-ret (Liao et al., arXiv 2505.03336) next to SASRec and popularity.

  python -m experiments.run --config configs/reclm.py[:cgen|ret|sasrec|table] --workdir runs/reclm

Reads top to bottom: data (§5.1 filtering, unique titles, tokenizer fit on the training text), the
leave-one-out split, the SASRec teacher (trained with the shared Trainer, early-stopped on val NDCG@10,
reported on its own) and popularity, the teacher's top-k lists for every training window, then per
RecLM variant: SFT on the reference templates (cgen: scope-mask loss; ret: retrieval + LM loss) with
validation on the first val users every epoch keeping the best NDCG@10, test decoding (cgen: item-trie
constraint; ret: retrieval-forced spans), the §5.5 metrics, and the general-ability check (held-out LM
loss on non-recommendation text before vs after). OOD@10 = 0 for cgen and Repeat@10 = 0 for both are
asserted on every test reply. With `seeds`, one sub-run per seed and `methods.<m>.<metric>` =
{mean, std, per_seed}.
"""

from __future__ import annotations

import functools
import os
import time

import jax
import numpy as np

from humanai_jax import configs, experiment
from humanai_jax.data.corpus import generate_corpus
from humanai_jax.data.tokenizer import given_or_trained
from humanai_jax.decoding import build_item_trie
from humanai_jax.eval import stats
from humanai_jax.methods.reclm import data as rdata, encode, evaluate as rev, model as rmodel, train as rtrain
from humanai_jax.methods.reclm.rows import RowMaker
from humanai_jax.recsys import sasrec
from humanai_jax.train import lora
from humanai_jax.train.trainer import CheckpointConfig, Trainer, TrainerConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _print(*args):
    if jax.process_index() == 0:
        print(*args, flush=True)


def _path(p: str) -> str:
    return p if not p or os.path.isabs(p) else os.path.join(REPO, p)


# ============================================================================ data
def read_raw(d):
    """(interactions, raw titles) from `config.data` (module docstring of methods/reclm/data.py)."""
    if d.source == "recbole":
        paths = (_path(d.inter_path), _path(d.item_path))
        reader = rdata.read_recbole
    elif d.source in ("amazon", "steam"):
        paths = (_path(d.review_path), _path(d.meta_path))
        reader = rdata.read_amazon if d.source == "amazon" else rdata.read_steam
    else:
        raise ValueError(f"data.source must be recbole, amazon or steam; got {d.source!r}")
    for p in paths:
        if not os.path.exists(p):
            raise FileNotFoundError(f"data file {p} does not exist (config.data paths)")
    return reader(*paths)


def tokenizer_for(config, workdir: str, raw_titles: list[str]):
    """A given tokenizer (data.tokenizer, or the checkpoint's), else a BPE fit on the training text:
    titles, templates and the system prompt (cached in WORKDIR/tokenizer)."""
    def train(out: str):
        texts = list(raw_titles) + list(rdata.TRAIN_TEMPLATES) + [rdata.TEST_TEMPLATE, rdata.SYSTEM_PROMPT]
        return encode.train_reclm_tokenizer(texts + [f"{n}. " for n in range(1, 11)] * 10, config.data.vocab_size, out)

    return given_or_trained(config.data.tokenizer or config.model.hf_path, os.path.join(workdir, "tokenizer"), train)


# ============================================================================ baselines
def sasrec_and_popularity(config, workdir, train_seqs, val, test, titles):
    s = config.sasrec
    cfg = sasrec.SASRecConfig(n_items=len(titles), max_len=s.max_len, d_model=s.d_model, n_heads=s.n_heads,
                              n_layers=s.n_layers, inner=s.inner)

    def top_lists(params, cases):
        scores = sasrec.score_histories(params, cfg, [c.history for c in cases])
        return sasrec.rank_items(scores, [c.seen for c in cases], 10)

    def val_ndcg(params):
        lists = [[titles[i] for i in row] for row in top_lists(params, val)]
        return rev.score_lists(lists, val, titles)[0]["ndcg@10"]

    tc = sasrec.SASRecTrainConfig(steps=s.steps, batch_size=s.batch_size, lr=s.lr, eval_every=s.eval_every,
                                  seed=config.seed)
    start = time.time()
    fit = sasrec.fit_sasrec(train_seqs, cfg, workdir, tc, evaluate=val_ndcg, log=_print)
    out = {}
    lists = [[titles[i] for i in row] for row in top_lists(fit["params"], test)]
    out["sasrec"] = dict(rev.score_lists(lists, test, titles)[0], best_step=fit["best_step"],
                         val_ndcg=fit["best_val"], train_s=time.time() - start)
    counts = np.bincount(np.concatenate([np.asarray(q, np.int64) for q in train_seqs]), minlength=len(titles))
    pop = sasrec.rank_items(np.tile(counts.astype(np.float64), (len(test), 1)), [c.seen for c in test], 10)
    out["popularity"] = rev.score_lists([[titles[i] for i in row] for row in pop], test, titles)[0]
    return cfg, fit["params"], out


def teacher_table(cfg, params, train_seqs, history_len: int, k: int, exclude: str) -> dict[tuple, list[int]]:
    """The teacher's top-k for every history a training sample can draw (§5.2: `train[start:t]`)."""
    keys = sorted({tuple(q[st:t]) for q in train_seqs for t in range(1, len(q))
                   for st in range(max(0, t - history_len), t)})
    table = {}
    for s in range(0, len(keys), 4096):
        block = [list(h) for h in keys[s:s + 4096]]
        top = sasrec.rank_items(sasrec.score_histories(params, cfg, block, batch=1024), block, k, exclude)
        table.update({tuple(h): row.tolist() for h, row in zip(block, top)})
    return table


def run_reclm(variant, config, workdir, ds, codec, title_ids, train_seqs, teacher, val, test) -> dict:
    t, e = config.train, config.eval
    start_time = time.time()
    model_cfg, params0 = rmodel.initial_model(config, codec.tokenizer, codec, ds.n_items, variant,
                                       jax.random.PRNGKey(config.seed))
    params0 = jax.device_get(params0)  # a host copy: the train step donates the device state
    trie = build_item_trie(title_ids, soi_id=codec.soi_id, eoi_id=codec.eoi_id, vocab_size=model_cfg.vocab_size)
    item_of = {tuple(ids): i for i, ids in enumerate(title_ids)}
    rows = RowMaker(config, variant, codec, ds.titles, title_ids, ds.sequences, teacher, trie if variant == "cgen"
                    else None)
    configs.refuse_unsupported("train", t, {"steps", "batch_size", "log_every", "progress"}, "RecLM")
    steps = t.steps or t.epochs * rows.steps_per_epoch
    tx, schedule = rtrain.make_optimizer(t.lr, steps, warmup_frac=t.warmup_frac, weight_decay=t.weight_decay,
                                         clip=t.clip)
    loss_cfg = rtrain.LossConfig(variant, model_cfg, loss_norm=t.loss_norm, emb_alpha=t.emb_alpha,
                                 lora=lora.LoraConfig.from_config(config.lora),
                                 train_embeddings=config.lora.train_embeddings)
    tx = rtrain.with_frozen_base(tx, params0, loss_cfg)
    task = rtrain.reclm_task(params0, loss_cfg, trie if variant == "cgen" else None, tx, schedule, rows.batch_at,
                             rows.batch_at(0), fingerprint={"variant": variant, "seed": config.seed,
                                                            "model": model_cfg.identity(), "train": t.to_dict(),
                                                            "lora": config.lora.to_dict()})
    decode = functools.partial(rev.decode_replies, model_cfg=model_cfg, codec=codec, variant=variant, trie=trie,
                               title_ids=title_ids, max_new_tokens=e.max_new_tokens, batch=e.batch,
                               seed=config.seed)
    val_cases = val[: e.n_val_users]
    val_prompts = [codec.prompt_ids(rdata.test_prompt(ds.titles, c.history, e.item_count, e.prompt))
                   for c in val_cases]
    best = {"ndcg": -1.0, "epoch": 0, "params": None}
    curve = []

    def validate(step: int, state) -> dict:
        params = rtrain.merged(jax.device_get(state["params"]), loss_cfg)
        lists, _ = rev.replies_to_titles(decode(params, prompts=val_prompts), codec, item_of, ds.titles)
        m = rev.score_lists(lists, val_cases, ds.titles)[0]
        epoch = step // rows.steps_per_epoch
        curve.append({"epoch": epoch, "ndcg@10": m["ndcg@10"], "hr@10": m["hr@10"], "exact_count": m["exact_count"],
                      "mean_items": float(np.mean([len(x) for x in lists]))})
        if m["ndcg@10"] > best["ndcg"]:
            best.update(ndcg=m["ndcg@10"], epoch=epoch, params=params)
        _print(f"{variant} epoch {epoch}: val NDCG@10 {m['ndcg@10']:.4f} HR@10 {m['hr@10']:.4f} items/reply "
               f"{curve[-1]['mean_items']:.1f} (best {best['ndcg']:.4f} at epoch {best['epoch']})")
        return {"val_ndcg@10": m["ndcg@10"], "val_hr@10": m["hr@10"]}

    trainer = Trainer(os.path.join(workdir, variant),
                      TrainerConfig(steps=steps, seed=config.seed, log_every=t.log_every, progress=t.progress,
                                    tensorboard=False),
                      CheckpointConfig(every=0, async_save=False, resume=False, keep=1))
    trainer.add_hook(validate, every=rows.steps_per_epoch)
    _print(f"{variant}: {steps} steps ({t.epochs} epochs x {rows.steps_per_epoch}), vocab {model_cfg.vocab_size}, "
           f"{lora.count(params0):,} parameters"
           + (f", {rmodel.trainable_count(params0, loss_cfg):,} trainable (LoRA rank {loss_cfg.lora.rank})"
              if loss_cfg.lora else ""))
    state, summary = trainer.fit(task)
    train_s = time.time() - start_time
    params = best["params"]

    # --- test, read once with the parameters chosen on validation
    test_prompts = [codec.prompt_ids(rdata.test_prompt(ds.titles, c.history, e.item_count, e.prompt)) for c in test]
    t0 = time.time()
    replies = decode(params, prompts=test_prompts)
    decode_s = time.time() - t0
    lists, parse = rev.replies_to_titles(replies, codec, item_of, ds.titles)
    metrics, per = rev.score_lists(lists, test, ds.titles)
    experiment.write_json(os.path.join(workdir, variant, "generations.json"), {"samples": [
        {"user": c.user, "target": ds.titles[c.target], "items": o, "text": codec.tokenizer.decode(r)}
        for c, o, r in zip(test[:100], lists[:100], replies[:100])]})
    out = dict(metrics, **parse, best_epoch=best["epoch"], val_ndcg=best["ndcg"], val_curve=curve, train_s=train_s,
               test_decode_s=decode_s, final_train_loss=summary["last_metrics"].get("loss"),
               prompt_truncated_rows=rows.stats["prompt_truncated"], rows_drawn=rows.stats["rows"])
    if variant == "cgen" and e.unconstrained_ablation:  # the same model decoded without the trie constraint
        free, _ = rev.replies_to_titles(decode(params, prompts=test_prompts, constrained=False), codec, item_of,
                                        ds.titles)
        free_metrics = rev.score_lists(free, test, ds.titles)[0]
        out.update({f"unconstrained_{k}": free_metrics[k] for k in UNCONSTRAINED})
    if e.sampling:
        sampled = decode(params, prompts=test_prompts, temperature=e.temperature, top_p=e.top_p)
        out["sampled"] = rev.score_lists(rev.replies_to_titles(sampled, codec, item_of, ds.titles)[0], test,
                                         ds.titles)[0]
    docs = generate_corpus(e.general_docs, seed=10_000 + config.seed)
    out["general_loss_before"] = rev.general_loss(params0["lm"], model_cfg, codec.tokenizer, docs, config.data.seq_len + 1)
    out["general_loss_after"] = rev.general_loss(params["lm"], model_cfg, codec.tokenizer, docs, config.data.seq_len + 1)
    # The paper's guarantees, checked on every evaluated reply (not only in unit tests).
    bad_ood = sum(s["ood@10"] > 0 for s in per)
    bad_rep = sum(s["repeat@10"] > 0 for s in per)
    out["replies_with_ood"], out["replies_with_repeat"] = int(bad_ood), int(bad_rep)
    if (variant == "cgen" and bad_ood) or bad_rep:
        experiment.write_json(os.path.join(workdir, variant, "violations.json"), out)
        raise AssertionError(f"{variant}: {bad_ood} replies with out-of-domain items, {bad_rep} with repeats "
                             f"(the constraint must make both 0); see {workdir}/{variant}/violations.json")
    if config.ckpt.export_hf:  # a plain HF dir (LoRA merged back) that transformers and the server load
        from humanai_jax.backbone import save_pretrained

        export_dir = os.path.join(workdir, variant, "hf_export")
        save_pretrained(export_dir, model_cfg, params["lm"])
        codec.tokenizer.save_pretrained(export_dir)
        out["hf_export"] = export_dir
    _print(f"{variant} test: HR@10 {metrics['hr@10']:.4f} NDCG@10 {metrics['ndcg@10']:.4f} OOD@10 "
           f"{metrics['ood@10']:.2f} Repeat@10 {metrics['repeat@10']:.2f} exact-count {metrics['exact_count']:.3f}")
    return out


# ============================================================================ run
def run_one(config, workdir: str) -> dict:
    t0 = time.time()
    d = config.data
    inter, raw_titles = read_raw(d)
    tokenizer = tokenizer_for(config, workdir, sorted(set(raw_titles.values())))
    codec = encode.ChatCodec.create(tokenizer)
    ds = rdata.build_dataset(d.source, inter, raw_titles, min_len=d.min_len, max_len=d.max_len, n_users=d.n_users,
                             seed=d.sample_seed, title_fn=encode.canonical_title(tokenizer))
    title_ids = encode.title_token_ids(tokenizer, ds.titles)
    encode.save_titles(os.path.join(workdir, "data", "titles.txt"), ds.titles)
    train_seqs = [rdata.train_part(q) for q in ds.sequences]
    val = rdata.eval_cases(ds.sequences, "val", d.history_len)
    test = rdata.eval_cases(ds.sequences, "test", d.history_len)
    _print(f"Data {ds.report}; title tokens mean {np.mean([len(t) for t in title_ids]):.1f} "
           f"max {max(len(t) for t in title_ids)}; tokenizer {len(tokenizer)}")

    s_cfg, s_params, methods = sasrec_and_popularity(config, workdir, train_seqs, val, test, ds.titles)
    _print("baselines: " + "; ".join(f"{m} HR@10 {v['hr@10']:.4f} NDCG@10 {v['ndcg@10']:.4f}"
                                     for m, v in methods.items()))
    results = {"data": ds.report, "n_test": len(test), "n_val_users": min(config.eval.n_val_users, len(val))}
    if config.methods:
        teacher = teacher_table(s_cfg, s_params, train_seqs, d.history_len, d.max_reply_items,
                                config.sasrec.teacher_exclude_history)
        for variant in config.methods:
            methods[variant] = run_reclm(variant, config, workdir, ds, codec, title_ids, train_seqs, teacher,
                                         val, test)
    results["methods"] = methods
    results["wall_time_s"] = time.time() - t0
    results["load_avg_1m_end"] = os.getloadavg()[0]
    return results


UNCONSTRAINED = ("hr@10", "ndcg@10", "ood@10", "ood@10_frac", "repeat@10", "exact_count")
SCALARS = (*(f"unconstrained_{k}" for k in UNCONSTRAINED),
           "hr@10", "ndcg@10", "mrr@10", "ood@10", "ood@10_frac", "repeat@10", "repeat@10_frac", "in_history@10",
           "in_history@10_frac", "exact_count", "general_loss_before", "general_loss_after", "val_ndcg")


def aggregate_seeds(per_seed: dict[int, dict]) -> dict:
    """methods.<m>.<metric> = {mean, std, per_seed} over the seeds."""
    first = next(iter(per_seed.values()))
    out = {"seeds": list(per_seed), "data": first["data"], "methods": {},
           "wall_time_s": {s: r["wall_time_s"] for s, r in per_seed.items()}}
    for m, vals in first["methods"].items():
        out["methods"][m] = {}
        for k in SCALARS:
            if k in vals:
                xs = [float(r["methods"][m][k]) for r in per_seed.values()]
                ms = stats.mean_std(xs)
                out["methods"][m][k] = {"mean": ms.mean, "std": ms.std, "per_seed": xs}
    return out


def run(config, workdir: str) -> dict:
    """One run, or with `config.seeds` one sub-run per seed (WORKDIR/seed_<s>) and their aggregate."""
    if not config.get("seeds"):
        return run_one(config, workdir)
    per_seed = experiment.run_seeds(config, workdir, run_one)
    return aggregate_seeds(per_seed)
