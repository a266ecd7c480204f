"""HumanLLM on MovieLens-100K: reader, user split, item-selection samples, baselines, the likelihood-ranking
protocol against a brute-force forward, and run-to-run reproducibility."""

import collections
import json
import os

import jax
import numpy as np
import pytest

from humanai_jax.backbone.config import ModelConfig
from humanai_jax.backbone.transformer import forward
from humanai_jax.eval import stats
from humanai_jax.methods.humanllm import baselines, evaluation, movielens, sft, tokenize
from humanai_jax.recsys.data import DataFormatError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ML100K = os.path.join(REPO, "..", "shared", "data", "recsys", "ml-100k")
needs_data = pytest.mark.skipif(not os.path.exists(os.path.join(ML100K, "ml-100k.inter")),
                                reason="MovieLens-100K not found at ../shared/data/recsys/ml-100k")


def _write_ml(root, inter_rows, items=None, users=None):
    d = root / "ml-100k"
    d.mkdir()
    items = items or ["1\tAlpha\t1995\tAction Comedy", "2\tBeta\t1996\tDrama", "3\tGamma\t1997\tAction",
                      "4\tAlpha\t1995\tAction", "5\tDelta\t1990\tDrama Romance"]
    users = users or ["1\t24\tM\ttechnician\t1", "2\t53\tF\tnone\t2"]
    (d / "ml-100k.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                                    + "\n".join(items) + "\n")
    (d / "ml-100k.user").write_text("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
                                    + "\n".join(users) + "\n")
    (d / "ml-100k.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                     + "\n".join(inter_rows) + "\n")
    return str(d)


def test_reader_orders_by_time_merges_duplicate_titles_and_names_bad_lines(tmp_path):
    path = _write_ml(tmp_path, ["1\t2\t4\t300", "1\t1\t5\t100", "1\t4\t3\t200", "1\t3\t2\t300", "2\t5\t1\t10"])
    data = movielens.load_movielens(path)
    # item 4 is "Alpha (1995)" again: merged onto item 1, so the user's second rating of it is dropped
    assert data.titles == {"1": "Alpha (1995)", "2": "Beta (1996)", "3": "Gamma (1997)", "5": "Delta (1990)"}
    assert data.sequences["1"] == ["1", "2", "3"] and data.ratings["1"] == [5.0, 4.0, 2.0]  # ties: file order
    assert data.genres["5"] == ("Drama", "Romance")
    assert movielens.profile_text(data.users["1"]) == "The user is a 24-year-old man who works as a technician."
    assert movielens.profile_text(data.users["2"]) == "The user is a 53-year-old woman who has no occupation."
    bad = tmp_path / "bad"
    bad.mkdir()
    path = _write_ml(bad, ["1\t2\t4\t300", "1\t9\t4\t300"])
    with pytest.raises(DataFormatError, match=r"ml-100k.inter:3: item 9"):
        movielens.load_movielens(path)
    worse = tmp_path / "worse"
    worse.mkdir()
    with pytest.raises(DataFormatError, match=r"ml-100k.user:3: age 'x'"):
        movielens.load_movielens(_write_ml(worse, ["1\t2\t4\t300"], users=["1\t24\tM\tother\t1", "2\tx\tF\tnone\t2"]))


@needs_data
def test_movielens_samples_split_by_user_with_never_rated_negatives():
    data = movielens.load_movielens(ML100K)
    assert len(data.users) == 943 and sum(map(len, data.sequences.values())) == 99_693
    parts, report = movielens.build_samples(data, seed=7, positions_per_user=3)
    again, _ = movielens.build_samples(data, seed=7, positions_per_user=3)
    assert parts == again  # a pure function of the seed
    users = {k: {s["uid"] for s in v} for k, v in parts.items()}
    assert not users["train"] & users["val"] and not users["train"] & users["test"] and not users["val"] & users["test"]
    assert report["users"] == {"train": 566, "val": 94, "test": 283} and len(parts["test"]) == 283
    for part in ("train", "test"):
        for s in parts[part][:50]:
            m = s["meta"]
            seq = data.sequences[m["uid"]]
            cands = m["candidates"]
            assert len(cands) == len(set(cands)) == 20 and cands[m["target_index"]] == seq[m["position"]]
            assert not (set(cands) - {seq[m["position"]]}) & set(seq)  # negatives: never rated, at any time
            assert m["history"] == seq[max(0, m["position"] - 10):m["position"]]  # the items just before, in order
            assert evaluation.candidate_titles(s) == [data.titles[c] for c in cands]
            assert s["messages"][1]["content"] == data.titles[seq[m["position"]]]
            if part == "test":
                assert m["position"] == len(seq) - 1  # held-out users: their last item
            else:
                assert m["position"] < len(seq) - 1
    fit = movielens.fit_sequences(parts, data)
    for s in parts["test"]:
        assert fit[s["uid"]] == data.sequences[s["uid"]][:-1]  # never the held-out item
    assert movielens.build_samples(data, seed=8)[0]["test"] != parts["test"]


def _toy_data():
    titles = {str(i): f"Movie {i} (199{i})" for i in range(1, 7)}
    genres = {"1": ("Action",), "2": ("Drama",), "3": ("Action", "Drama"), "4": ("Comedy",), "5": ("Action",),
              "6": ("Comedy", "Drama")}
    users = {u: {"age": 30, "gender": "M", "occupation": "writer"} for u in ("1", "2", "3")}
    seqs = {"1": ["1", "2", "3"], "2": ["1", "3", "5"], "3": ["1", "5", "4"]}
    return movielens.MovieLens(titles, genres, users, seqs, {u: [4.0] * 3 for u in seqs})


def test_baselines_hand_values():
    data = _toy_data()
    sample = {"meta": {"uid": "3", "history": ["1", "5"], "candidates": ["2", "4", "3", "6"], "target_index": 1}}
    train = {"1": data.sequences["1"], "2": data.sequences["2"]}
    np.testing.assert_array_equal(baselines.popularity_scores([sample], train), [[1, 0, 2, 0]])
    # history genres: Action x2 -> shares Action 1.0; Drama/Comedy 0
    np.testing.assert_allclose(baselines.genre_scores([sample], data), [[0.0, 0.0, 1.0, 0.0]])
    assert baselines.hits([sample], baselines.choose(baselines.popularity_scores([sample], train), 0)) == [False]
    # item-item scores equal x_u W restricted to the candidates (brute force over the dense matrix)
    fit = {"1": data.sequences["1"], "2": data.sequences["2"], "3": ["1", "5"]}
    x, row, col = baselines.interaction_matrix(fit, data.items)
    for kind, value in (("ease", 1.0), ("itemknn", 2)):
        w = np.asarray(baselines.fit_item_item(kind, x, value))
        dense = np.zeros((3, 6))
        for u, seq in fit.items():
            for i in seq:
                dense[int(u) - 1, int(i) - 1] = 1
        want = (dense @ w)[2, [1, 3, 2, 5]]
        np.testing.assert_allclose(baselines.item_item_scores([sample], x, row, col, w)[0], want, rtol=1e-5)


def test_choose_breaks_ties_uniformly_and_keeps_the_best():
    picks = baselines.choose(np.zeros((20_000, 4)), seed=0)
    counts = np.bincount(picks, minlength=4) / len(picks)
    np.testing.assert_allclose(counts, 0.25, atol=0.015)  # not "always the first candidate"
    scores = np.array([[0.0, 2.0, 2.0, 1.0]] * 2000)
    assert set(baselines.choose(scores, seed=1)) == {1, 2}
    assert evaluation.accuracy_entry([True, False, False, False])["accuracy"] == 0.25


def test_candidate_logprobs_match_a_brute_force_forward(tmp_path):
    texts = ["Which movie next?\nCandidate 1: Alpha (1995)\nCandidate 2: Beta Gamma (1996)", "Alpha (1995)",
             "Beta Gamma (1996)"] * 20
    tok = tokenize.train_chat_tokenizer(texts, 300, str(tmp_path / "tok"))
    cfg = ModelConfig.small(vocab_size=384, d_model=32, n_layers=2, n_heads=2, n_kv_heads=1, mlp_dim=64,
                            eos_token_id=tok.eos_token_id)
    params = sft.host_init_params(cfg, 3)
    sample = {"messages": [{"role": "user", "content": texts[0]}, {"role": "assistant", "content": "Alpha (1995)"}]}
    nll_fn = jax.jit(tokenize.sft_token_nll, static_argnums=2)
    got = evaluation.candidate_logprobs(params, cfg, tok, [sample, sample], 128, nll_fn=nll_fn, rows_per_batch=3)
    for j, title in enumerate(["Alpha (1995)", "Beta Gamma (1996)"]):
        prompt = tok(tok.apply_chat_template(sample["messages"][:1], tokenize=False, add_generation_prompt=True),
                     add_special_tokens=False)["input_ids"]
        reply = tok(title + "<|im_end|>", add_special_tokens=False)["input_ids"]
        ids = np.asarray([prompt + reply], np.int32)
        logp = jax.nn.log_softmax(np.asarray(forward(params, ids, cfg), np.float64)[0], -1)
        want = sum(logp[len(prompt) + k - 1, t] for k, t in enumerate(reply))
        np.testing.assert_allclose(got[:, j], want, rtol=1e-4)


@pytest.mark.slow  # two short end-to-end runs: ~1 min on a quiet 2-core machine (8 min at load 15)
@needs_data
def test_same_config_and_seed_give_identical_numbers(tmp_path):
    from configs.humanllm_sft import get_config
    from experiments.run import run_experiment

    runs = []
    for name in ("a", "b"):
        results = run_experiment(get_config("movielens_smoke"), str(tmp_path / name))
        runs.append({k: results[k] for k in ("item_selection", "validation", "final_train_loss", "baseline_selected",
                                             "rating", "rating_validation", "writing", "writing_validation")})
    assert json.dumps(runs[0], sort_keys=True) == json.dumps(runs[1], sort_keys=True)
    methods = set(runs[0]["item_selection"])
    assert methods == {"model_generate", "model_rank", "random", "popularity", "genre", "itemknn", "ease", "sasrec"}
    for v in runs[0]["item_selection"].values():
        assert v["n"] == 10 and v["ci_low"] <= v["accuracy"] <= v["ci_high"]
    saved = json.load(open(tmp_path / "a" / "results.json"))
    assert saved["seeds"] == [2025] and "merged/item_selection" not in saved  # from scratch: no merge
    assert collections.Counter(json.loads(x)["uid"] for x in open(tmp_path / "a" / "data" / "test.jsonl"))


def test_table_variant_runs_each_seed_and_aggregates(tmp_path, monkeypatch):
    from configs.humanllm_sft import get_config
    from experiments import humanllm

    hits = {2025: (3, 10), 2026: (5, 10), 2027: (4, 10)}

    def fake_run_one(config, workdir):
        assert config.seed == config.data.seed and not config.seeds  # each sub-run is one plain seed
        k, n = hits[config.seed]
        entry = {"accuracy": k / n, "hits": k, "n": n}
        return {"item_selection": {"model_rank": entry}, "validation": {"model_rank": entry}}

    monkeypatch.setattr(humanllm, "run_one", fake_run_one)
    out = humanllm.run(get_config("table"), str(tmp_path))
    agg = out["item_selection"]["model_rank"]
    assert out["seeds"] == [2025, 2026, 2027] and agg["per_seed"] == [0.3, 0.5, 0.4]
    assert agg["mean"] == agg["accuracy"] == pytest.approx(0.4) and agg["std"] == pytest.approx(0.1)
    assert (agg["hits"], agg["n"]) == (12, 30)  # the CI pools the counts: exact CI of 12/30
    assert (agg["ci_low"], agg["ci_high"]) == pytest.approx(stats.binomial_ci(12, 30))
    assert json.load(open(tmp_path / "seed_2026" / "results.json"))["item_selection"]["model_rank"]["hits"] == 5
