"""GenMentor goal-to-skill data, tokens, baselines and scoring (fast); a tiny SFT run end to end (slow)."""

import json

import numpy as np
import pytest

from humanai_jax.methods.genmentor import goal2skill as G, schemas as S


@pytest.fixture(scope="module")
def data():
    tax = G.load_taxonomy()
    samples = G.build_dataset(tax, seed=0)
    return tax, samples


def test_dataset_split_by_unseen_combination(data):
    tax, samples = data
    combos = {s: {(x["role"], x["focus"], x["seniority"]) for x in samples if x["split"] == s}
              for s in ("train", "val", "test")}
    assert not (combos["train"] & combos["test"]) and not (combos["train"] & combos["val"])
    n_combos = sum(1 + len(r.focuses) for r in tax.roles) * 3
    assert len(samples) == n_combos * len(G.TEMPLATES)
    # every held-out role was seen in training (seed 0: 20 of the 21 held-out role+focus pairs too)
    assert {r for r, _, _ in combos["test"]} <= {r for r, _, _ in combos["train"]}
    pairs = {(r, f) for r, f, _ in combos["test"]}
    assert len(pairs - {(r, f) for r, f, _ in combos["train"]}) == 1 and len(pairs) == 21
    assert G.build_dataset(tax, seed=0) == samples  # deterministic


def test_gold_levels_follow_seniority_and_focus(data):
    tax, samples = data
    role = tax.roles[0]  # Data Analyst: Excel intermediate; focus 3 makes Excel advanced
    by_id = {s["id"]: s for s in samples}
    def lv(sid, name):
        return {g["name"]: g["required_level"] for g in by_id[sid]["skill_requirements"]}[name]
    assert role.skills["Excel"] == "intermediate" and role.focuses[2].skills["Excel"] == "advanced"
    assert lv("0--1-mid-0", "Excel") == "intermediate"
    assert lv("0--1-junior-0", "Excel") == "beginner"
    assert lv("0--1-senior-0", "Excel") == "advanced"
    assert lv("0-2-junior-0", "Excel") == "intermediate"
    assert lv("0-2-senior-0", "Excel") == "advanced"  # capped at advanced
    want = "Help me prepare for a job as a analyst working with business data reporting for finance teams."
    assert by_id["0-2-mid-1"]["goal"] == want
    assert all(len(s["skill_requirements"]) <= 10 for s in samples)


def test_taxonomy_errors_name_the_field(tmp_path):
    bad = {"skills": [{"name": "A"}], "roles": [{"name": "R", "phrases": ["r"], "skills": {"B": "beginner"}}]}
    path = tmp_path / "tax.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"(?s)tax.json.*role 'R' names skills not in the taxonomy.*\['B'\]"):
        G.load_taxonomy(str(path))


def test_dataset_reader_names_line(tmp_path):
    path = tmp_path / "d.jsonl"
    ok = {"goal": "g", "skill_requirements": [{"name": "A", "required_level": "beginner"}], "split": "train"}
    path.write_text(json.dumps(ok) + "\n" + json.dumps({**ok, "skill_requirements": [{"name": "A"}]}) + "\n")
    with pytest.raises(ValueError, match=r"d.jsonl:2: skill_requirements"):
        G.read_dataset(str(path))


def test_completion_formats(data):
    s = data[1][0]
    body = json.loads(G.completion(s, tracks=False))
    assert body == {"skill_requirements": s["skill_requirements"]}
    with_track = G.completion(s, tracks=True)
    assert with_track.startswith("Objectives: work as a Data Analyst.") and with_track.endswith(json.dumps(body))
    assert G.parse_prediction(with_track) == (s["skill_requirements"], True)


def test_parse_prediction_lenient():
    text = 'Objectives: x\n{"skill_requirements": [{"name": "SQL", "required_level": "expert"}, {"name": "sql"}, ' \
           '{"name": "Git", "required_level": "beginner"}]}'
    assert G.parse_prediction(text) == ([{"name": "SQL", "required_level": "expert"},
                                         {"name": "Git", "required_level": "beginner"}], False)
    assert G.parse_prediction("no json") == ([], False)


def test_encode_sft_masks_exactly_the_reply(data, tmp_path):
    _, samples = data
    train = [s for s in samples if s["split"] == "train"][:40]
    texts = [m["content"] for s in train for m in G.sft_messages(s, True)]
    tok = G.chat_tokenizer(texts, 400, str(tmp_path / "tok"))
    msgs = G.sft_messages(train[3], True)
    tokens, mask = G.encode_sft(tok, msgs)
    assert tok.decode(tokens[mask == 1].tolist()) == msgs[-1]["content"] + "<|im_end|>"
    assert mask[-1] == 1 and mask.sum() < len(mask)
    rows = G.pad_rows([(tokens, mask)], len(tokens) + 3, pad_id=7)
    assert rows["tokens"][0, -3:].tolist() == [7, 7, 7] and rows["mask"][0, -3:].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="raise data.seq_len"):
        G.pad_rows([(tokens, mask)], len(tokens) - 1, pad_id=7)


def test_batch_indices_are_epochs_of_permutations():
    seen = np.concatenate([G.batch_indices(10, 4, s, seed=3) for s in range(5)])  # 20 rows = 2 epochs
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    assert np.array_equal(G.batch_indices(10, 4, 2, seed=3), G.batch_indices(10, 4, 2, seed=3))
    assert not np.array_equal(seen[:10], seen[10:])


def test_bm25_baselines(data):
    tax, samples = data
    preds = G.bm25_taxonomy(tax, ["dataframes tabular wrangling", "zzz"], 2, "beginner")
    assert preds[0][0] == {"name": "Pandas", "required_level": "beginner"} and preds[1] == []
    train = [s for s in samples if s["split"] == "train"]
    knn = G.bm25_goal_knn(train, [train[5]["goal"]])
    assert knn[0] == train[5]["skill_requirements"]
    val = [s for s in samples if s["split"] == "val"]
    chosen = G.choose_bm25_k(tax, val, "advanced", ks=(1, 3))
    assert chosen["k"] in (1, 3) and set(chosen["val_f1"]) == {"1", "3"}


def test_score_matches_hand_mean(data):
    _, samples = data
    test = [s for s in samples if s["split"] == "test"][:3]
    preds = [s["skill_requirements"] for s in test[:2]] + [[]]
    agg, rows = G.score(preds, test)
    assert [r["f1"] for r in rows] == [1.0, 1.0, 0.0]
    assert agg["f1"] == pytest.approx(2 / 3) and agg["n"] == 3
    assert agg["f1_ci95"][0] <= 2 / 3 <= agg["f1_ci95"][1]


def test_mapper_prompt_is_the_agents_prompt():
    from humanai_jax.agents import GenConfig, ScriptedBackend
    from humanai_jax.methods.genmentor.agents import Agents
    from humanai_jax.methods.genmentor.llm import Caller, Tracer

    reply = json.dumps({"skill_requirements": [{"name": "SQL", "required_level": "beginner"}]})
    backend = ScriptedBackend([(r"skill_gap\.skill_mapper\.genmentor", None, reply)])
    Agents(Caller(backend, GenConfig(), Tracer(None))).map_skills("Become a DBA.")
    assert backend.calls[0].messages == G.prompt_messages("Become a DBA.")
    assert S.SkillRequirements.model_validate_json(reply)


@pytest.mark.slow
def test_smoke_experiment_end_to_end(tmp_path):
    """configs/genmentor.py:smoke: a few SFT steps on the Trainer, validation-chosen step, BM25 baselines and one
    plumbing tutoring learner; results carry both parts."""
    from configs.genmentor import get_config
    from experiments.run import run_experiment

    res = run_experiment(get_config("smoke"), str(tmp_path))
    g = res["goal2skill"]
    assert set(g["model"]["val_curve"]) == {"2", "4"}
    assert g["bm25_taxonomy"]["n"] == 8 and 1 <= g["bm25_taxonomy"]["k"] <= 10
    assert res["tutoring"]["plumbing"] is True and res["tutoring"]["n_failed"] == 0
    assert (tmp_path / "tutoring" / "traces.jsonl").exists() and (tmp_path / "tutoring" / "manifest.json").exists()
    # resumed after training ended (only the last step's checkpoint is kept): the same validation-selected step, the
    # same curve and test numbers, from WORKDIR/goal2skill/best (ties keep the earlier step, here step 2)
    again = run_experiment(get_config("smoke"), str(tmp_path))["goal2skill"]
    assert g["model"]["selected_step"] == again["model"]["selected_step"] == 2
    assert again["model"]["val_curve"] == g["model"]["val_curve"]
    assert {k: again["model"][k] for k in ("f1", "f1_strict")} == {k: g["model"][k] for k in ("f1", "f1_strict")}


@pytest.mark.slow
def test_sft_from_a_hf_checkpoint_dir(tmp_path, data):
    """`hf_path=`: the checkpoint's tokenizer and chat template, its weights as the starting point."""
    import jax

    from configs.genmentor import get_config
    from experiments.genmentor import run_goal2skill
    from humanai_jax.backbone import save_pretrained
    from humanai_jax.backbone.config import ModelConfig
    from humanai_jax.backbone.params import init_params

    tax, samples = data
    train = [s for s in samples if s["split"] == "train"][:16]
    texts = [m["content"] for s in train for m in G.sft_messages(s, True)]
    hf = tmp_path / "hf"
    tok = G.chat_tokenizer(texts, 600, str(hf))
    cfg = ModelConfig.small(vocab_size=640, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, mlp_dim=64,
                            eos_token_id=tok.eos_token_id)
    save_pretrained(str(hf), cfg, init_params(cfg, jax.random.PRNGKey(0)))
    config = get_config(f"smoke,hf_path={hf}")
    parts = {"train": train, "val": [s for s in samples if s["split"] == "val"][:4],
             "test": [s for s in samples if s["split"] == "test"][:4]}
    out, model = run_goal2skill(config, str(tmp_path / "run"), tax, parts)
    assert model.model_cfg.vocab_size == 640 and model.tokenizer.chat_template == G.CHATML_TEMPLATE
    assert out["model"]["final_step"] == 4 and out["n_test"] == 4
