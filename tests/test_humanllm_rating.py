"""HumanLLM's rating task (MovieLens-100K) and Blogger continuation task: metrics against hand values, the
bias baseline against a dense least-squares solve, the n-gram LMs against hand counts, the option scorer
against a brute-force forward, split / leakage checks on the real data, and an end-to-end run."""

import json
import math
import os

import jax
import numpy as np
import pytest

from humanai_jax.backbone.config import ModelConfig
from humanai_jax.backbone.transformer import forward
from humanai_jax.eval import stats
from humanai_jax.methods.humanllm import evaluation, movielens, multitask, rating, sft, tokenize, writing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ML100K = os.path.join(REPO, "..", "shared", "data", "recsys", "ml-100k")
BLOGS = os.path.join(REPO, "..", "shared", "data", "motivebench", "blog_extracted.json")
needs_ml = pytest.mark.skipif(not os.path.exists(os.path.join(ML100K, "ml-100k.inter")),
                              reason="MovieLens-100K not found at ../shared/data/recsys/ml-100k")
needs_blogs = pytest.mark.skipif(not os.path.exists(BLOGS),
                                 reason="MotiveBench blog_extracted.json not found at ../shared/data/motivebench")


def _tiny_movielens():
    titles = {str(i): f"Movie {i} (199{i})" for i in range(1, 6)}
    users = {"1": {"age": 30, "gender": "F", "occupation": "writer"}, "2": {"age": 40, "gender": "M", "occupation": "none"},
             "3": {"age": 22, "gender": "M", "occupation": "student"}}
    seqs = {"1": ["1", "2", "3"], "2": ["1", "3", "4"], "3": ["2", "4", "5"]}
    ratings = {"1": [5.0, 3.0, 4.0], "2": [1.0, 2.0, 5.0], "3": [4.0, 4.0, 2.0]}
    return movielens.MovieLens(titles, {i: () for i in titles}, users, seqs, ratings)


def test_rating_metrics_hand_values():
    pred, true = [1.0, 2.0, 3.6, 5.0], [2.0, 2.0, 4.0, 3.0]
    e = rating.rating_entry(pred, true, n_resamples=500)
    assert e["rmse"] == pytest.approx(math.sqrt((1 + 0 + 0.16 + 4) / 4))
    assert e["mae"] == pytest.approx((1 + 0 + 0.4 + 2) / 4)
    assert (e["hits"], e["n"], e["accuracy"]) == (2, 4, 0.5)  # 3.6 -> 4 hits, 5 vs 3 misses
    assert (e["ci_low"], e["ci_high"]) == pytest.approx(stats.binomial_ci(2, 4))
    assert e["rmse_ci_low"] <= e["rmse"] <= e["rmse_ci_high"] and e["mae_ci_low"] <= e["mae"] <= e["mae_ci_high"]
    d = multitask.paired([1.0, 2.0, 3.6, 5.0], [2.0, 2.0, 4.0, 4.0], np.array(true), seed=0)  # vs a baseline
    assert d["diff"] == pytest.approx(((1 + 0 + 0.16 + 4) - (0 + 0 + 0 + 1)) / 4) and d["n"] == 4
    np.testing.assert_array_equal(rating.as_rating([2.5, 3.5, 0.2, 7.0, 4.49]), [2, 4, 1, 5, 4])  # half to even
    assert [rating.parse_rating(t) for t in ("4", "I think 5.", "10", "rating: 0", "", "3/5")] == [4, 5, None, None,
                                                                                                    None, 3]


def test_expected_and_argmax_from_option_logprobs():
    p = np.array([[0.1, 0.2, 0.3, 0.2, 0.2], [0.5, 0.0001, 0.0001, 0.0001, 0.4997]])
    expected, argmax = rating.expected_and_argmax(np.log(p) - 7.0)  # an offset: renormalised over the 5 options
    np.testing.assert_allclose(expected, [0.1 + 0.4 + 0.9 + 0.8 + 1.0, (p[1] * np.arange(1, 6)).sum()])
    np.testing.assert_array_equal(argmax, [3, 1])


def test_bias_model_matches_a_dense_least_squares_solve():
    rng = np.random.default_rng(0)
    triples = [(f"u{rng.integers(8)}", f"i{rng.integers(6)}", float(rng.integers(1, 6))) for _ in range(40)]
    l2 = 2.5
    got = rating.fit_bias(triples, l2)
    users, items = sorted({u for u, _, _ in triples}), sorted({i for _, i, _ in triples})
    x = np.zeros((len(triples), 1 + len(users) + len(items)))
    for k, (u, i, _) in enumerate(triples):
        x[k, 0], x[k, 1 + users.index(u)], x[k, 1 + len(users) + items.index(i)] = 1, 1, 1
    y = np.array([r for _, _, r in triples])
    penalty = np.diag([0.0] + [l2] * (len(users) + len(items)))  # mu unpenalised
    theta = np.linalg.solve(x.T @ x + penalty, x.T @ y)
    assert got["mu"] == pytest.approx(theta[0], abs=1e-7)
    np.testing.assert_allclose([got["user"][u] for u in users], theta[1:1 + len(users)], atol=1e-7)
    np.testing.assert_allclose([got["item"][i] for i in items], theta[1 + len(users):], atol=1e-7)
    with pytest.raises(ValueError, match="l2 > 0"):
        rating.fit_bias(triples, 0.0)


def test_rating_baselines_hand_values():
    data = _tiny_movielens()
    train = [rating.rating_sample(data, "1", 1, history_len=10), rating.rating_sample(data, "2", 1, history_len=10)]
    test = [rating.rating_sample(data, "3", 2, history_len=10)]  # item 5, rated 2; prior ratings 4, 4
    samples = {"train": train, "val": test, "test": test}
    assert "History 2: Movie 4 (1994). The rating is 4." in test[0]["messages"][0]["content"]
    assert "The rating is 2" not in test[0]["messages"][0]["content"] and test[0]["messages"][1]["content"] == "2"
    tr = rating.train_ratings(samples, data)
    assert rating.global_mean_predictions(test, tr)[0] == pytest.approx(20 / 6)
    assert rating.user_mean_predictions(test, data, 3.0)[0] == 4.0
    assert rating.item_mean_predictions(test, tr, 3.0)[0] == 3.0  # item 5: no train user rated it -> fallback
    probe = [rating.rating_sample(data, "3", 1, history_len=10)]  # item 4: train users rated it 5
    assert rating.item_mean_predictions(probe, tr, 3.0)[0] == 5.0
    fit = rating.fit_ratings(samples, data)
    assert ("3", "5", 2.0) not in fit and ("3", "4", 4.0) in fit  # the held-out rating is never fit on
    base = rating.all_baselines(samples, data)
    assert set(base) == {"global_mean", "user_mean", "item_mean", "bias"} and base["bias"]["selected"]["l2"] > 0


def test_option_logprobs_match_a_brute_force_forward(tmp_path):
    texts = ["Rate the movie.\nHistory 1: Alpha (1995). The rating is 4.", "1", "2", "3", "4", "5"] * 20
    tok = tokenize.train_chat_tokenizer(texts, 300, str(tmp_path / "tok"))
    cfg = ModelConfig.small(vocab_size=384, d_model=32, n_layers=2, n_heads=2, n_kv_heads=1, mlp_dim=64,
                            eos_token_id=tok.eos_token_id)
    params = sft.host_init_params(cfg, 5)
    sample = {"messages": [{"role": "user", "content": texts[0]}, {"role": "assistant", "content": "4"}]}
    nll_fn = jax.jit(tokenize.sft_token_nll, static_argnums=2)
    got = evaluation.reply_logprobs(params, cfg, tok, [sample], [rating.RATINGS], 128, nll_fn=nll_fn, rows_per_batch=4)
    prompt = tok(tok.apply_chat_template(sample["messages"][:1], tokenize=False, add_generation_prompt=True),
                 add_special_tokens=False)["input_ids"]
    for j, r in enumerate(rating.RATINGS):
        reply = tok(r + "<|im_end|>", add_special_tokens=False)["input_ids"]
        logp = jax.nn.log_softmax(np.asarray(forward(params, np.asarray([prompt + reply], np.int32), cfg),
                                             np.float64)[0], -1)
        want = float(sum(logp[len(prompt) + k - 1, t] for k, t in enumerate(reply)))
        assert got[0, j] == pytest.approx(want, rel=1e-4)
    sums, counts = evaluation.sequence_nll(params, cfg, [tokenize.tokenize_chat(tok, sample["messages"])], 128,
                                           nll_fn=nll_fn, rows_per_batch=2)
    assert -sums[0] == pytest.approx(got[0, 3], rel=1e-5) and counts[0] == len(tok("4<|im_end|>")["input_ids"])


def test_ngram_lms_and_nll_entry_hand_values(tmp_path):
    lm = writing.fit_ngram([(np.array([1, 2, 2]), np.array([2, 3, 2])), (np.array([1]), np.array([3]))], vocab=4)
    np.testing.assert_array_equal(lm["uni"], [0, 0, 2, 2])
    # unigram add-1: p(3) = (2 + 1) / (4 + 4)
    assert writing.unigram_nll(lm, np.array([3]), 1.0)[0] == pytest.approx(-math.log(3 / 8))
    # bigram after 2: counts {3: 1, 2: 1}; p(3 | 2) = 0.5 * 1/2 + 0.5 * 3/8; unseen context 0 -> unigram
    got = writing.bigram_nll(lm, np.array([2, 0]), np.array([3, 3]), 0.5, 1.0)
    np.testing.assert_allclose(got, [-math.log(0.25 + 0.5 * 3 / 8), -math.log(3 / 8)])
    e = writing.nll_entry([2.0, 4.0, 3.0], [1, 3, 2], n_resamples=500)
    assert e["nll_per_token"] == pytest.approx(9 / 6) and e["perplexity"] == pytest.approx(math.exp(1.5))
    assert (e["n"], e["n_tokens"]) == (3, 6) and e["ci_low"] <= 1.5 <= e["ci_high"]
    # the n-gram LMs score exactly the model's loss positions
    texts = ["Here's the first part:", "Some words of a post that go on.", "and on"] * 10
    tok = tokenize.train_chat_tokenizer(texts, 300, str(tmp_path / "tok"))
    s = {"messages": [{"role": "user", "content": texts[0]}, {"role": "assistant", "content": texts[1]}]}
    (prev, y), = writing.scored_pairs(tok, [s])
    ids, mask = tokenize.tokenize_chat(tok, s["messages"])
    assert len(y) == int(mask.sum()) and y[-1] == tokenize.end_of_turn_id(tok) and prev[0] == ids[mask.argmax() - 1]


def test_aggregate_metrics_over_seeds():
    per_seed = {s: {"rating": {"bias": {"rmse": v, "mae": v / 2, "accuracy": 0.3, "n": 10}}}
                for s, v in ((1, 1.0), (2, 1.2), (3, 1.1))}
    agg = multitask.aggregate_seeds(per_seed)["rating"]["bias"]
    assert agg["rmse"] == pytest.approx(1.1) and agg["rmse_std"] == pytest.approx(0.1)
    assert agg["mae_per_seed"] == [0.5, 0.6, 0.55] and agg["n"] == 30 and "writing" not in multitask.aggregate_seeds(
        per_seed)


def test_load_posts_names_a_bad_record(tmp_path):
    p = tmp_path / "b.json"
    p.write_text(json.dumps({"1": {"blog_text": "fine text"}, "2": {"score": "9"}}))
    with pytest.raises(ValueError, match=r"b.json: post '2' has no non-empty 'blog_text'"):
        writing.load_posts(str(p))


@needs_ml
def test_rating_split_matches_item_selection_and_holds_out_test_ratings():
    data = movielens.load_movielens(ML100K)
    parts = rating.build_rating_samples(data, seed=7)
    split = movielens.split_users(data.sequences, (0.6, 0.1, 0.3), 7)
    assert {s["uid"] for s in parts["test"]} == set(split["test"]) and {s["uid"] for s in parts["val"]} == set(
        split["val"])
    held = set(split["test"]) | set(split["val"])
    assert not held & {s["uid"] for s in parts["train"]}  # no held-out user's rating is in any training text
    for s in parts["test"]:
        uid, t = s["meta"]["uid"], s["meta"]["position"]
        assert t == len(data.sequences[uid]) - 1 and s["meta"]["rating"] == data.ratings[uid][t]
        assert s["meta"]["history"] == data.sequences[uid][max(0, t - 10):t]
    for s in parts["train"]:
        assert s["meta"]["position"] < len(data.sequences[s["uid"]]) - 1
    fit = rating.fit_ratings(parts, data)
    per_user = {}
    for u, _, _ in fit:
        per_user[u] = per_user.get(u, 0) + 1
    assert all(per_user[s["uid"]] == s["meta"]["position"] for s in parts["test"])  # only the ratings before
    model = rating.fit_bias(fit, 1.0)  # the optimum: the residual sums per user vanish (gradient = 0)
    for uid in parts["test"][0]["uid"], parts["train"][0]["uid"]:
        res = [r - model["mu"] - model["user"][u] - model["item"][i] for u, i, r in fit if u == uid]
        assert sum(res) == pytest.approx(1.0 * model["user"][uid], abs=1e-8)


@needs_blogs
def test_writing_split_by_post_and_the_target_is_the_post_continuation():
    posts = writing.load_posts(BLOGS)
    parts, report = writing.build_writing_samples(posts, seed=3)
    ids = {k: {s["meta"]["post"] for s in v} for k, v in parts.items()}
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["val"] and not ids["val"] & ids["test"]
    assert sum(report["samples"].values()) + report["rejected_too_short"] == len(posts) == 631
    train_text = "\n".join(m["content"] for s in parts["train"] for m in s["messages"])
    for s in parts["test"]:
        first, second = s["meta"]["first"], s["messages"][1]["content"]
        assert posts[s["uid"]].startswith(first + " " + second)  # the real post, cut once, in order
        assert first in s["messages"][0]["content"] and second not in s["messages"][0]["content"]
        assert second not in train_text
    assert "first part" not in writing.ablated(parts["test"][0], "no_first_part")["messages"][0]["content"]


@pytest.mark.slow  # one short end-to-end run: ~1-2 min on a quiet 2-core machine
@needs_ml
@needs_blogs
def test_multitask_run_reports_rating_and_writing_and_fits_the_tokenizer_on_train_text(tmp_path, monkeypatch):
    from configs.humanllm_sft import get_config
    from experiments.run import run_experiment

    seen = []
    real = tokenize.train_chat_tokenizer

    def spy(texts, vocab_size, out_dir):
        seen.extend(texts)
        return real(texts, vocab_size, out_dir)

    monkeypatch.setattr(tokenize, "train_chat_tokenizer", spy)
    results = run_experiment(get_config("movielens_smoke"), str(tmp_path))
    assert set(results["rating"]) == {"model_expected", "model_argmax", "model_generate", "global_mean", "user_mean",
                                      "item_mean", "bias"}
    assert set(results["writing"]) == {"model", "model_no_first_part", "model_no_prompt", "unigram", "bigram"}
    for v in results["rating"].values():
        assert v["n"] == 10 and v["rmse_ci_low"] <= v["rmse"] <= v["rmse_ci_high"] and v["mae"] <= v["rmse"]
    assert all(v["n"] == 10 and v["nll_per_token"] > 0 for v in results["writing"].values())
    seen_text = set(seen)
    for name in ("test", "rating_test", "writing_test", "val", "rating_val"):
        for line in open(tmp_path / "data" / f"{name}.jsonl"):
            row = json.loads(line)
            assert row["messages"][0]["content"] not in seen_text  # held-out prompts never reach the tokenizer
    for line in open(tmp_path / "data" / "writing_test.jsonl"):
        assert json.loads(line)["messages"][1]["content"] not in seen_text
