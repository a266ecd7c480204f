"""Weak-to-strong from HF checkpoint directories (the code path of the GPU runs in docs/oversight.md §1: weak_hf /
strong_hf + a HF `datasets` set), end to end on CPU with two tiny random-weight Qwen2-style checkpoints of
different sizes. Checks the plumbing (each side loads its own checkpoint and tokenizer, inputs are encoded per
tokenizer, the protocol runs through the Trainer, results.json holds every key), not accuracy.
Slow: ~45 s CPU time (five backbone fine-tunes compiled on CPU)."""

import json

import pytest

pytest.importorskip("datasets")


@pytest.mark.slow
def test_w2s_from_two_hf_checkpoints_and_a_datasets_set(tmp_path):
    import configs.oversight as cfg_mod
    from experiments import oversight
    from humanai_jax.serving.loading import make_tiny_checkpoint

    weak_dir = make_tiny_checkpoint(tmp_path / "weak", d_model=32, n_layers=1, seed=1)
    strong_dir = make_tiny_checkpoint(tmp_path / "strong", d_model=64, n_layers=2, seed=2)
    rows = [{"sentence": f"the {w} is {'good' if i % 2 else 'bad'} today", "y": i % 2}
            for i, w in enumerate(["cat", "dog", "sun", "tea", "car", "map", "pen", "cup"] * 12)]
    rows.append({"sentence": "word " * 300, "y": 1})  # >= max_ctx tokens: dropped, and counted
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    c = cfg_mod.get_config(f"w2s_hf,seeds=1,weak_hf={weak_dir},strong_hf={strong_dir}")
    c.data.hf.update(path="json", data_files=str(tmp_path / "d.jsonl"), train_split="train[:80]",
                     test_split="train[80:]", text_field="sentence", label_field="y")
    c.data.max_ctx = 64
    c.w2s.update(n_val=16, gt_epochs=1, transfer_epochs=1)
    c.w2s.transfer_losses = {"logconf": c.w2s.transfer_losses.logconf.to_dict()}
    c.w2s.grid = {"logconf": {"aux_coef": (0.25, 0.5)}}
    r = oversight.run(c, str(tmp_path / "run"))
    assert (r["weak_model"], r["strong_model"]) == (f"hf:{weak_dir}", f"hf:{strong_dir}")
    assert r["weak_params"] < r["strong_params"]
    assert (r["n_train"], r["n_test"], r["dropped_test"]) == (80, 16, 1)
    assert r["selected.logconf"]["aux_coef"] in (0.25, 0.5) and len(r["val_grid.logconf"]) == 2
    for key in ("acc_weak", "acc_strong", "acc_w2s.logconf", "pgr.logconf"):
        assert len(r[key]["per_seed"]) == 1
    assert (tmp_path / "run" / "seed0" / "w2s_logconf" / "aux_coef-0.25" / "metrics.jsonl").exists()
