"""HumanLLM SFT experiment, model merging, JaxChatBackend, evaluation metrics and configs."""

import collections
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from humanai_jax.agents import GenConfig, ScriptedBackend
from humanai_jax.agents.jax_backend import JaxChatBackend
from humanai_jax.backbone.transformer import forward
from humanai_jax.eval import stats
from humanai_jax.methods.humanllm import evaluation, sft, synthetic, tasks, tokenize


def test_merge_params_hand_values():
    sft_p = {"w": jnp.array([1.0, 3.0]), "n": jnp.array([5, 7], jnp.int32), "h": jnp.array([2.0], jnp.bfloat16)}
    base = {"w": jnp.array([3.0, 5.0]), "n": jnp.array([0, 0], jnp.int32), "h": jnp.array([4.0], jnp.bfloat16)}
    out = sft.merge_params(sft_p, base)
    np.testing.assert_allclose(out["w"], [2.0, 4.0])
    np.testing.assert_array_equal(out["n"], [5, 7])  # integers copied from the first model
    assert out["h"].dtype == jnp.bfloat16 and float(out["h"][0]) == 3.0
    np.testing.assert_allclose(sft.merge_params(sft_p, base, alpha=0.25)["w"], [2.5, 4.5])
    with pytest.raises(ValueError, match=r"\['w'\]"):
        sft.merge_params(sft_p, dict(base, w=jnp.zeros(3)))


def test_item_hit_and_first_per_source():
    assert evaluation.item_hit(" Garden Lamp ", "I think the user buys the garden lamp.")
    assert not evaluation.item_hit("garden lamp", "garden")
    samples = [{"source": s} for s in ["a", "b", "a", "a", "b"]]
    assert evaluation.first_per_source(samples, 2) == [samples[0], samples[1], samples[2], samples[4]]
    acc = evaluation.item_selection_accuracy(
        [{"messages": [{"content": "Candidate 1: x y"}, {"content": "x y"}]},
         {"messages": [{"content": "Candidate 1: z"}, {"content": "z"}]}], ["X Y!", "no"])
    assert {k: acc[k] for k in ("accuracy", "n", "hits", "chance")} == {"accuracy": 0.5, "n": 2, "hits": 1, "chance": 0.05}


def test_judge_free_text_counts_failures():
    samples = [{"source": "reddit.generic", "messages": [{"role": "user", "content": f"q{i}"},
                                                         {"role": "assistant", "content": "real"}]} for i in range(3)]
    replies = {"q0": "<fidelity>8</fidelity><style>6</style><plausibility>7</plausibility><overall>7</overall>",
               "q1": "<fidelity>4</fidelity><style>4</style><plausibility>5</plausibility><overall>3</overall>",
               "q2": "no scores"}
    backend = ScriptedBackend([("humanllm.judge_free_text", None,
                                lambda m: replies[m[0]["content"].split("Task:\n")[1].split("\n")[0]])])
    out = evaluation.judge_free_text(backend, samples, ["g0", "g1", "g2"], max_attempts=2)
    assert out == {"reddit.generic": {"n": 2, "failed": 1, "fidelity": 6.0, "style": 5.0, "plausibility": 6.0,
                                      "overall": 5.0}}
    assert "Real response:\nreal" in backend.calls[0].messages[0]["content"]
    assert len(backend.calls) == 4  # the unparsable one was retried once


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    from configs.humanllm_sft import get_config
    from experiments.run import run_experiment

    workdir = str(tmp_path_factory.mktemp("humanllm"))
    config = get_config("smoke")
    config.export_hf = True
    results = run_experiment(config, workdir)
    return config, workdir, results


def test_smoke_experiment_writes_results(smoke_run):
    config, workdir, results = smoke_run
    saved = json.load(open(os.path.join(workdir, "results.json")))
    assert saved["n_train"] == results["n_train"] > 0 and saved["item_selection_chance"] == 0.05
    test_sources = {json.loads(x)["source"] for x in open(os.path.join(workdir, "data", "test.jsonl"))}
    assert set(saved["sft/heldout_loss"]) == test_sources and "amazon.Synthetic.item_selection" in test_sources
    assert 0.0 <= saved["sft/item_selection_accuracy"] <= 1.0 and saved["sft/item_selection_n"] > 0
    # the synthetic fixture's rule baseline is reported beside its number (it solves the task)
    rule = saved["synthetic_rule/item_selection"]
    assert rule["n"] == saved["sft/item_selection_n"] and rule["accuracy"] == 1.0
    lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["step"] for r in lines] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in lines)
    # the freshly initialised model's loss is near log(vocab): a sanity check on the masked CE scale
    vocab = json.load(open(os.path.join(workdir, "hf_sft", "config.json")))["vocab_size"]
    assert abs(lines[0]["loss"] - np.log(vocab)) < 1.0
    train = tasks.load_samples_dataset(os.path.join(workdir, "data", "train.jsonl"))
    test = tasks.load_samples_dataset(os.path.join(workdir, "data", "test.jsonl"))
    assert not set(train["uid"]) & set(test["uid"])


def test_merge_command_matches_merge_params(smoke_run, tmp_path):
    from experiments.humanllm_merge import merge_checkpoints
    from experiments.lm import model_config
    from humanai_jax.backbone.hf import load_pretrained, save_pretrained
    from humanai_jax.data.tokenizer import load_tokenizer

    config, workdir, results = smoke_run
    # trained from scratch: no merged/* (a merge with a random initialisation measures nothing)
    assert not any(k.startswith("merged/") for k in results) and not os.path.exists(os.path.join(workdir, "hf_merged"))
    tok = load_tokenizer(os.path.join(workdir, "tokenizer"))
    model_cfg = model_config(config, tok)
    base = sft.host_init_params(model_cfg, config.seed + 1)
    save_pretrained(str(tmp_path / "base"), model_cfg, base)
    merge_checkpoints(os.path.join(workdir, "hf_sft"), str(tmp_path / "base"), str(tmp_path / "merged"), 0.5)
    _, ours = load_pretrained(str(tmp_path / "merged"))
    _, trained = load_pretrained(os.path.join(workdir, "hf_sft"))
    _, base_back = load_pretrained(str(tmp_path / "base"))
    want = sft.merge_params(trained, base_back, 0.5)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert os.path.exists(tmp_path / "merged" / "tokenizer.json")


def test_jax_chat_backend_greedy_matches_reference(smoke_run):
    from humanai_jax.backbone.hf import load_pretrained
    from humanai_jax.data.tokenizer import load_tokenizer

    _, workdir, _ = smoke_run
    cfg, params = load_pretrained(os.path.join(workdir, "hf_sft"))
    tok = load_tokenizer(os.path.join(workdir, "hf_sft"))
    backend = JaxChatBackend(params, cfg, tok, max_batch=4)
    msgs = [[{"role": "user", "content": "hello user"}], [{"role": "user", "content": "garden lamp please"}]]
    res = backend.chat_batch(msgs, GenConfig(temperature=0.0, max_tokens=5, n=2))
    assert all(r.texts[0] == r.texts[1] for r in res)  # greedy: n copies of one text
    # independent reference: greedy argmax with full (uncached) forwards on a fixed-size buffer
    fwd = jax.jit(forward, static_argnums=2)
    stop = set(backend.stop_ids)
    for m, r in zip(msgs, res):
        ids = tokenize.tokenize_chat(tok, m + [{"role": "assistant", "content": ""}])[0].tolist()
        ids = tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
        ids = tok(ids, add_special_tokens=False)["input_ids"]
        out = []
        buf = np.zeros((1, 64), np.int32)
        for _ in range(5):
            seq = ids + out
            buf[0, :len(seq)] = seq
            nxt = int(jnp.argmax(fwd(params, jnp.asarray(buf), cfg)[0, len(seq) - 1]))
            out.append(nxt)
            if nxt in stop:
                break
        assert r.texts[0] == tok.decode(out, skip_special_tokens=True)
    # sampling: the same seed gives the same text; stop strings cut
    a = backend.chat(msgs[0], GenConfig(temperature=1.0, max_tokens=6, seed=3))
    b = backend.chat(msgs[0], GenConfig(temperature=1.0, max_tokens=6, seed=3))
    assert a.texts == b.texts
    if a.texts[0][1:]:
        cut = backend.chat(msgs[0], GenConfig(temperature=1.0, max_tokens=6, seed=3, stop=(a.texts[0][1:],)))
        assert cut.texts == [a.texts[0][:1]] and cut.finish_reasons == ["stop"]


def test_synthetic_users_latent_preferences():
    """Target = "<latent genre>, <latent object>": never bought before, each preference is the only genre /
    object seen more than once in the history but never together with the other, and the target is the
    one candidate that has both."""
    catalog, genre_of = synthetic.make_catalog()
    users, logs = synthetic.make_users(40, catalog, genre_of, seed=1)
    samples = tasks.build_item_selection(users, logs, "Synthetic", catalog)
    assert len(samples) == 40
    for u, s in zip(users, samples):
        g, o = u["latent_genre"], u["latent_object"]
        titles = [r["item"]["title"] for r in logs[u["uid"]]]
        history, target = titles[:-1], titles[-1]
        assert s["messages"][1]["content"] == target == f"{g}, {o}" and target not in history
        assert len(titles) >= 8  # the item-selection rule of spec 7.3
        pairs = [t.split(", ") for t in history]
        genres = collections.Counter(p[0] for p in pairs)
        objects = collections.Counter(p[1] for p in pairs)
        assert genres[g] >= 4 and objects[o] >= 4 and [g, o] not in pairs
        assert max(v for k, v in genres.items() if k != g) == 1 and max(v for k, v in objects.items() if k != o) == 1
        prompt = s["messages"][0]["content"]
        cands = evaluation.candidates_of(prompt)
        assert len(cands) == 20 and cands.count(target) == 1
        assert not (set(cands) - {target}) & set(history)  # negatives were never bought
        assert prompt.count(target) == 1  # the target's title appears only in the candidate list
        assert synthetic.GENRES[g][0] in u["persona"] and o in u["persona"]


def test_item_selection_accuracy_ci_and_breakdown():
    from scipy.stats import binom

    # exact (Clopper-Pearson) interval: closed forms at the edges, the defining tail equations inside
    lo, hi = stats.binomial_ci(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 10))
    lo, hi = stats.binomial_ci(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / 10))
    lo, hi = stats.binomial_ci(37, 120)
    assert binom.sf(36, 120, lo) == pytest.approx(0.025) and binom.cdf(37, 120, hi) == pytest.approx(0.025)

    def sample(context, target):
        cands = "\n".join(f"Candidate {k}: item {k}" for k in range(1, 21))
        return {"messages": [{"role": "user", "content": f"Pick one.\n{cands}\n\n{context}"},
                             {"role": "assistant", "content": target}]}

    hist, pers = "Here is the user's purchase history:\n------\nHistory 1: x\n------\n", \
        "Here's the user persona:\n------\nThe user ...\n------\n"
    samples = [sample(hist, "item 3"), sample(hist, "item 4"), sample(pers, "item 5"), sample(pers + hist, "item 6")]
    acc = evaluation.item_selection_accuracy(samples, ["item 3", "item 7", "nothing", "Item 6 "])
    assert (acc["hits"], acc["n"], acc["accuracy"]) == (2, 4, 0.5)
    assert acc["names_a_candidate"] == 0.75
    assert acc["by_context"] == {"history": {"accuracy": 0.5, "n": 2}, "persona": {"accuracy": 0.0, "n": 1},
                                 "persona+history": {"accuracy": 1.0, "n": 1}}
    assert acc["ci95"] == pytest.approx(list(stats.binomial_ci(2, 4)))
    assert acc["p_value_vs_chance"] == pytest.approx(binom.sf(1, 4, 0.05))


def _plan(variant):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-m", "experiments.memory_plan", "--config",
                          f"configs/humanllm_sft.py:{variant}"], cwd=root, capture_output=True, text=True,
                         timeout=600, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_real_size_variants_memory_plan():
    from configs.humanllm_sft import get_config

    plan = _plan("qwen2.5_7b_fsdp8")
    assert plan["mesh"]["fsdp"] == 8
    assert 7.0e9 < plan["n_params"] < 8.0e9  # Qwen2.5-7B: 7.6B parameters
    # fp32 params sharded 8 ways: n_params * 4 / 8 bytes per device
    assert plan["params_bytes_per_device"] == pytest.approx(plan["n_params"] * 4 / 8, rel=0.01)
    with pytest.raises(ValueError, match="Unknown config argument"):
        get_config("tiny,nope=1")
    with pytest.raises(ValueError, match="train="):
        get_config("files")
    assert get_config("tpu_v5p_32").mesh.fsdp == 32


def test_files_source_rejects_samples_without_source(tmp_path):
    from configs.humanllm_sft import get_config
    from humanai_jax.methods.humanllm.sft_data import load_samples

    good = {"uid": "u", "source": "reddit.generic", "messages": [{"role": "user", "content": "q"},
                                                                  {"role": "assistant", "content": "a"}]}
    (tmp_path / "train.jsonl").write_text(json.dumps(good) + "\n" + json.dumps({"messages": []}) + "\n")
    (tmp_path / "test.jsonl").write_text(json.dumps(good) + "\n")
    config = get_config(f"files,train={tmp_path / 'train.jsonl'},test={tmp_path / 'test.jsonl'}")
    with pytest.raises(ValueError, match="train_path line 2"):
        load_samples(config, str(tmp_path / "work"))
    (tmp_path / "train.jsonl").write_text(json.dumps(good) + "\n")
    train, test, _ = load_samples(config, str(tmp_path / "work"))
    assert train == test == [good]
