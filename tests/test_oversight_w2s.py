"""Weak-to-strong: data sets, ClassifierWithHead on the backbone, and the protocol end to end on toy_latent."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import require_shared
from humanai_jax.backbone import ModelConfig, forward, init_params
from humanai_jax.methods.oversight import data as data_lib, losses, models, w2s


# ------------------------------------------------------------------------------------------ data
def test_toy_latent_labels_follow_the_latent_direction():
    d = data_lib.toy_latent(n_train=300, n_test=100, noise_features=5, signal_noise=0.0, seed=3)
    for split in (d.train, d.test):
        assert split.arrays["features"].shape[1] == 6 and split.arrays["weak_x"].shape[1] == 6
        np.testing.assert_array_equal(split.labels, (split.arrays["features"][:, 0] > 0).astype(int))
    again = data_lib.toy_latent(n_train=300, n_test=100, noise_features=5, signal_noise=0.0, seed=3)
    np.testing.assert_array_equal(again.train.arrays["weak_x"], d.train.arrays["weak_x"])


def test_motivebench_binary_and_blog_need_splits():
    mb_dir = require_shared("motivebench/Persona_questions.json").parent
    d = data_lib.motivebench_binary(str(mb_dir), seed=0)
    assert len(d.train) + len(d.test) == 600 and len(d.test) == 120  # 20% of 200 scenarios × 3 tasks
    scen = lambda ids: {i.rsplit("/", 1)[0] for i in ids}  # noqa: E731
    assert not scen(d.train.ids) & scen(d.test.ids)
    items = {it["id"]: it for it in data_lib.motivebench_items(str(mb_dir))}
    for text, y, i in zip(d.train.texts[:50], d.train.labels[:50], d.train.ids[:50]):
        it = items[i]
        assert text.startswith(f"Q: {it['stem']} A: ")
        assert (text.endswith(it["options"][it["gold"]])) == bool(y)
    assert 0.4 < d.train.labels.mean() < 0.6
    b = data_lib.blog_need(str(require_shared("motivebench/blog_extracted.json")))
    labels = np.concatenate([b.train.labels, b.test.labels])
    assert (labels.sum(), len(labels) - labels.sum()) == (233, 398)
    assert not set(b.train.ids) & set(b.test.ids) and len(b.test) == round(0.2 * 631)


def test_loaders_name_file_and_line(tmp_path):
    bad = [{"idx": 0, "Motivation Reasoning Question": "q", "Options 1": ["A. x", "B. y"],
            "Correct Answer 1": "A"}]
    for name in data_lib.QUESTION_FILES:
        (tmp_path / name).write_text('[\n  {"idx": 0},\n' + json.dumps(bad[0]) + "\n]")
    with pytest.raises(ValueError, match=r"Amazon_questions.json:2: scenario record lacks"):
        data_lib.motivebench_items(str(tmp_path))
    (tmp_path / "blog.json").write_text('{\n "1": {"blog_text": "hi"}\n}')
    with pytest.raises(ValueError, match=r"blog.json:2: post '1'"):
        data_lib.blog_need(str(tmp_path / "blog.json"))
    (tmp_path / "broken.json").write_text('{\n "1": \n}')
    with pytest.raises(ValueError, match=r"broken.json:3: invalid JSON"):
        data_lib.blog_need(str(tmp_path / "broken.json"))


def test_split_train_and_epoch_order_are_seeded_partitions():
    val, t1, t2 = w2s.split_train(101, 11, seed=5)
    assert sorted(np.concatenate([val, t1, t2]).tolist()) == list(range(101)) and (len(t1), len(t2)) == (45, 45)
    np.testing.assert_array_equal(w2s.split_train(101, 11, seed=5)[1], t1)
    order = w2s.epoch_order(7, 3, seed=1)
    assert all(sorted(order[i * 7:(i + 1) * 7].tolist()) == list(range(7)) for i in range(3))


# ------------------------------------------------------------------------------------------ classifier
@pytest.fixture(scope="module")
def tiny_backbone():
    cfg = ModelConfig.small(vocab_size=64, d_model=32, n_layers=1, n_heads=2, n_kv_heads=2, mlp_dim=64)
    return cfg, init_params(cfg, jax.random.PRNGKey(0))


def test_last_token_index_any_padding_side():
    mask = jnp.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 0, 0, 0]])
    np.testing.assert_array_equal(np.asarray(models.last_token_index(mask)), [2, 4, 0])


def test_classifier_with_head_reads_the_last_real_token(tiny_backbone):
    cfg, params = tiny_backbone
    clf = models.ClassifierWithHead(cfg, params)
    p = clf.init(jax.random.PRNGKey(1))
    tokens = jnp.array([[5, 6, 7, 0, 0], [9, 8, 7, 6, 5]])
    mask = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(np.asarray(jax.jit(clf.apply)(p, {"tokens": tokens, "mask": mask})), 0)
    head = jax.random.normal(jax.random.PRNGKey(2), (cfg.d_model, 2))
    p = {**p, "head": head}
    got = jax.jit(clf.apply)(p, {"tokens": tokens, "mask": mask})
    # independent reference: the unpadded rows through `forward`, hidden state at their last position
    fwd = jax.jit(lambda t: forward(params, t, cfg, return_hidden=True))
    for i, n in enumerate((3, 5)):
        _, h = fwd(tokens[i:i + 1, :n])
        np.testing.assert_allclose(np.asarray(got[i]), np.asarray(h[0, -1] @ head), rtol=2e-4, atol=2e-5)
    lm = models.ClassifierWithHead(cfg, params, mode="lm_head", choice_ids=(3, 11))
    logits = fwd(tokens[:1, :3])[0]
    np.testing.assert_allclose(np.asarray(jax.jit(lm.apply)(lm.init(None), {"tokens": tokens, "mask": mask})[0]),
                               np.asarray(logits[0, -1, jnp.array([3, 11])]), rtol=2e-4, atol=2e-5)


def test_linear_probe_trains_only_the_head(tiny_backbone):
    cfg, params = tiny_backbone
    batch = {"tokens": jnp.array([[5, 6, 7]]), "mask": jnp.ones((1, 3), jnp.int32), "target": jnp.array([[0.0, 1.0]])}
    for probe in (True, False):
        clf = models.ClassifierWithHead(cfg, params, linear_probe=probe)
        head = jax.random.normal(jax.random.PRNGKey(4), (cfg.d_model, 2))
        trainable, frozen = clf.split({**clf.init(None), "head": head})
        assert ("backbone" in frozen) == probe and ("backbone" in trainable) == (not probe)
        full = clf.merge(trainable, frozen)
        g = jax.jit(jax.grad(lambda p, c=clf: losses.xent(c.apply(p, batch), batch["target"])))(full)
        bb_norm = sum(float(jnp.abs(x).sum()) for x in jax.tree.leaves(g["backbone"]))
        assert (bb_norm == 0.0) == probe
    with pytest.raises(ValueError, match="choice token"):
        models.ClassifierWithHead(cfg, params, mode="lm_head")


# ------------------------------------------------------------------------------------------ protocol
def test_w2s_toy_end_to_end(tmp_path):
    """The whole protocol with the shared Trainer on a small toy_latent: ceiling above weak, PGR defined, and the
    xent epochs chosen on validation without ground truth (select_on="weak": agreement with the weak model's
    argmax on the val rows). Checked against the weak and the chosen model restored from their own runs: the
    selection score, the reported val accuracy (ground truth) and the reported test accuracy are the chosen
    candidate's, never another's."""
    import configs.oversight as cfg_mod
    from experiments import oversight

    c = cfg_mod.get_config("w2s_toy,seeds=1")
    c.data.toy.update(n_train=3000, n_test=600, noise_features=32)
    c.w2s.n_val = 300
    c.w2s.transfer_losses = {"xent": {"loss": "xent"}, "logconf": c.w2s.transfer_losses.logconf.to_dict()}
    c.w2s.grid = {"xent": {"epochs": (1, 3)}}
    c.w2s.select_on = "weak"
    r = oversight.run(c, str(tmp_path))
    for key in ("acc_weak", "acc_strong", "acc_w2s.xent", "acc_w2s.logconf", "pgr.xent", "val.pgr.logconf"):
        assert set(r[key]) >= {"mean", "std", "per_seed"} and len(r[key]["per_seed"]) == 1
    assert r["acc_strong"]["mean"] > r["acc_weak"]["mean"] + 0.05
    assert not math.isnan(r["pgr.xent"]["mean"])
    assert (tmp_path / "seed0" / "weak" / "metrics.jsonl").exists()  # trained by the shared Trainer
    rec = json.loads((tmp_path / "per_seed.jsonl").read_text().splitlines()[0])
    assert rec["pgr.xent"] == pytest.approx((rec["acc_w2s.xent"] - rec["acc_weak"]) /
                                            (rec["acc_strong"] - rec["acc_weak"]))
    grid = r["val_grid.xent"]
    assert [g["hparams"] for g in grid] == [{"epochs": 1}, {"epochs": 3}] and r["selected.logconf"] == {}
    best = max(range(2), key=lambda j: (grid[j]["val_acc_mean"], -j))
    assert r["selected.xent"] == grid[best]["hparams"]

    d = data_lib.toy_latent(**c.data.toy.to_dict(), seed=c.data.seed)
    val, t1, t2 = w2s.split_train(len(d.train), 300, 0)
    rows = lambda idx: {k: v[idx] for k, v in d.train.arrays.items()}  # noqa: E731
    resume = lambda name, model, idx, targets, epochs, opt: w2s.fit_classifier(  # noqa: E731
        str(tmp_path / "seed0" / name), model, rows(idx), targets, losses.xent, epochs=epochs, batch_size=32,
        optim_cfg=opt, seed=0)  # a finished run with the same fingerprint is restored, not trained
    weak = models.MLP(n_in=d.train.arrays["weak_x"].shape[1], n_hidden=c.weak.hidden)
    weak_params, _ = resume("weak", weak, t1, w2s.one_hot(d.train.labels[t1]), 2, c.weak.optim)
    weak_labels = w2s.predict_proba(weak, weak_params, rows(t2)).astype(np.float32)
    weak_val = np.argmax(w2s.predict_proba(weak, weak_params, rows(val)), axis=-1)
    strong = models.LinearHead(n_features=d.train.arrays["features"].shape[1])
    epochs = r["selected.xent"]["epochs"]
    params, summary = resume(f"w2s_xent/epochs-{epochs}", strong, t2, weak_labels, epochs, c.strong.optim)
    assert summary["start_step"] == summary["final_step"]
    val_probs = w2s.predict_proba(strong, params, rows(val))
    assert grid[best]["val_acc_mean"] == w2s.accuracy(val_probs, weak_val)  # scored against the weak labels
    assert rec["val.acc_w2s.xent"] == w2s.accuracy(val_probs, d.train.labels[val])  # reported against ground truth
    assert rec["acc_w2s.xent"] == w2s.accuracy(w2s.predict_proba(strong, params, d.test.arrays), d.test.labels)


def test_hyper_grid_and_selection_on_validation():
    cands = w2s.hyper_grid({"loss": "logconf", "aux_coef": 0.5}, {"aux_coef": [0.25, 0.75], "epochs": (1, 2)}, 2)
    assert [(c["aux_coef"], c["epochs"]) for c in cands] == [(0.25, 1), (0.25, 2), (0.75, 1), (0.75, 2)]
    assert w2s.candidate_name(cands[1], ["aux_coef", "epochs"]) == "aux_coef-0.25_epochs-2"
    assert w2s.hyper_grid({"loss": "xent"}, None, 2) == [{"loss": "xent", "epochs": 2}]
    # mean over seeds: [0.7, 0.8, 0.8] -> the tie between candidates 1 and 2 goes to the earlier one
    assert w2s.select_on_validation([[0.6, 0.9, 0.7], [0.8, 0.7, 0.9]]) == 1
    with pytest.raises(ValueError, match="n_val"):
        w2s.select_on_validation([[0.6, float("nan")]])
    with pytest.raises(ValueError, match="unknown"):
        w2s.hyper_grid({"loss": "xent"}, {"aux_coef": (0.5,)}, 2)
    with pytest.raises(ValueError, match="positive integer"):
        w2s.hyper_grid({"loss": "xent"}, {"epochs": (0,)}, 2)
    with pytest.raises(ValueError, match="non-empty list"):
        w2s.hyper_grid({"loss": "xent"}, {"epochs": ()}, 2)
    d = data_lib.toy_latent(n_train=100, n_test=10, noise_features=4)
    kw = dict(seeds=(0,), transfer_losses={"xent": {"loss": "xent"}}, n_val=10, gt_epochs=1, transfer_epochs=1,
              batch_size=32, weak_optim=None, strong_optim=None)  # both errors come before any training
    with pytest.raises(ValueError, match="select_on"):
        w2s.run_protocol("/nonexistent", None, None, d.train, d.test, select_on="test", **kw)
    with pytest.raises(ValueError, match="not in w2s.transfer_losses"):
        w2s.run_protocol("/nonexistent", None, None, d.train, d.test, grid={"logconf": {"aux_coef": (.5,)}}, **kw)


def test_hf_datasets_loader_reads_local_files_and_names_bad_rows(tmp_path):
    pytest.importorskip("datasets")
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps({"sentence": f"s{i}", "y": i % 2}) for i in range(5)))
    d = data_lib.hf_binary("json", data_files=str(path), train_split="train[:3]", test_split="train[3:]",
                           text_field="sentence", label_field="y")
    assert d.train.texts == ["s0", "s1", "s2"] and d.test.labels.tolist() == [1, 0]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"sentence": "a", "y": 1}) + "\n" + json.dumps({"sentence": "b", "y": 2}))
    with pytest.raises(ValueError, match=r"row 1: 'y' must be 0/1"):
        data_lib.hf_binary("json", data_files=str(bad), train_split="train", test_split="train",
                           text_field="sentence", label_field="y")
    with pytest.raises(ValueError, match="no column 'text'"):
        data_lib.hf_binary("json", data_files=str(path), train_split="train", test_split="train")


def test_rerun_in_the_same_workdir_resumes_to_the_same_numbers(tmp_path):
    """The resume fingerprint is process-independent (a loss's repr would hold an address): re-running a finished
    fit reloads its final checkpoint (same params), while other loss hyper-parameters are refused."""
    import configs.oversight as cfg_mod
    from humanai_jax.train.trainer import ResumeMismatchError

    d = data_lib.toy_latent(n_train=200, n_test=10, noise_features=4, seed=1)
    strong = models.LinearHead(n_features=5)
    opt = cfg_mod.get_config("w2s_toy").strong.optim
    fit = lambda loss: w2s.fit_classifier(str(tmp_path), strong, d.train.arrays, w2s.one_hot(d.train.labels),  # noqa: E731
                                          loss, epochs=1, batch_size=32, optim_cfg=opt, seed=0)
    first, summary = fit(losses.get_loss("logconf", aux_coef=0.5))
    again, summary2 = fit(losses.get_loss("logconf", aux_coef=0.5))
    assert (summary["start_step"], summary2["start_step"]) == (0, summary["final_step"])
    np.testing.assert_array_equal(np.asarray(first["head"]), np.asarray(again["head"]))
    assert w2s.loss_identity(losses.get_loss("logconf", aux_coef=0.5)) == "logconf[('aux_coef', 0.5)]"
    with pytest.raises(ResumeMismatchError, match="loss"):
        fit(losses.get_loss("logconf", aux_coef=0.75))

