"""SASRec: forward against an independent numpy implementation, padding, ranking, and training that learns."""

import jax
import numpy as np
import pytest

from humanai_jax.recsys import sasrec


def _numpy_forward(params, cfg, seq):
    """One left-padded row `seq [L]` (internal ids) -> last hidden [D], written with loops."""
    p = jax.tree.map(np.asarray, params)
    L, d, H = len(seq), cfg.d_model, cfg.n_heads
    real = seq > 0

    def ln(q, x):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-8) * q["scale"] + q["bias"]

    x = (p["item_emb"][seq] * np.sqrt(d) + p["pos_emb"][:L]) * real[:, None]
    for lay in p["layers"]:
        h = ln(lay["ln1"], x)
        q, k, v = h @ lay["wq"], h @ lay["wk"], h @ lay["wv"]
        out = np.zeros_like(x)
        dh = d // H
        for i in range(L):
            keys = [j for j in range(i + 1) if real[j]] or [i]
            if not real[i]:
                keys = sorted(set(keys) | {i})
            for hd in range(H):
                sl = slice(hd * dh, (hd + 1) * dh)
                logit = np.array([q[i, sl] @ k[j, sl] for j in keys]) / np.sqrt(dh)
                w = np.exp(logit - logit.max())
                w /= w.sum()
                out[i, sl] = sum(wj * v[j, sl] for wj, j in zip(w, keys))
        x = x + out @ lay["wo"]
        h = ln(lay["ln2"], x)
        from math import erf, sqrt

        g = h @ lay["w1"] + lay["b1"]
        g = g * 0.5 * (1 + np.vectorize(lambda z: erf(z / sqrt(2)))(g))
        x = (x + g @ lay["w2"] + lay["b2"]) * real[:, None]
    return ln(p["final_ln"], x)[-1]


def test_forward_matches_numpy_reference():
    cfg = sasrec.SASRecConfig(n_items=11, max_len=6, d_model=8, n_heads=2, n_layers=2, inner=12, init_std=0.3)
    params = sasrec.init_sasrec(cfg, jax.random.key(0))
    seqs = sasrec.pad_histories([[0, 3, 5], [10, 2, 2, 7, 1, 4, 9], [6]], cfg.max_len)
    h = np.asarray(sasrec.sasrec_hidden(params, cfg, seqs))[:, -1]
    for b in range(3):
        np.testing.assert_allclose(h[b], _numpy_forward(params, cfg, seqs[b]), rtol=1e-4, atol=1e-5)
    scores = np.asarray(sasrec.sasrec_scores(params, cfg, seqs))
    np.testing.assert_allclose(scores, h @ np.asarray(params["item_emb"])[1:].T, rtol=1e-4, atol=1e-5)


def test_pad_histories_and_windows():
    np.testing.assert_array_equal(sasrec.pad_histories([[4, 0], [], [1, 2, 3, 4]], 3),
                                  [[0, 5, 1], [0, 0, 0], [3, 4, 5]])
    rng = np.random.default_rng(0)
    seqs = [list(range(20))]
    for _ in range(20):
        inp, tgt = sasrec.training_windows(seqs, np.array([0]), 5, rng)
        real = inp[0] > 0
        assert np.all(tgt[0][real] == inp[0][real] + 1)  # each target is the next item
        assert np.all(tgt[0][~real] == 0) and real[-1]


def test_rank_items_exclusion_modes_and_ties():
    scores = np.array([[0.5, 2.0, 2.0, 1.8, 0.1]])
    np.testing.assert_array_equal(sasrec.rank_items(scores, [[]], 3), [[1, 2, 3]])  # tie -> lower id
    np.testing.assert_array_equal(sasrec.rank_items(scores, [[1]], 3, "hard"), [[2, 3, 0]])
    np.testing.assert_array_equal(sasrec.rank_items(scores, [[1, 2]], 3, "offset"), [[3, 1, 2]])
    np.testing.assert_array_equal(sasrec.rank_items(scores, [[1]], 2, "none"), [[1, 2]])
    with pytest.raises(ValueError, match="exclude"):
        sasrec.rank_items(scores, [[1]], 2, "soft")


def test_padding_items_do_not_leak_into_real_positions():
    cfg = sasrec.SASRecConfig(n_items=9, max_len=5, d_model=8, n_heads=2, n_layers=1, inner=8, init_std=0.3)
    params = sasrec.init_sasrec(cfg, jax.random.key(1))
    params["item_emb"] = params["item_emb"].at[0].set(5.0)  # a non-zero padding row must still be inert
    a = np.asarray(sasrec.sasrec_scores(params, cfg, sasrec.pad_histories([[3, 4]], 5)))
    params2 = dict(params, item_emb=params["item_emb"].at[0].set(-7.0))
    b = np.asarray(sasrec.sasrec_scores(params2, cfg, sasrec.pad_histories([[3, 4]], 5)))
    np.testing.assert_allclose(a[:, 1:], b[:, 1:], rtol=1e-5)


def test_fit_learns_a_deterministic_successor(tmp_path):
    """Every user walks i -> i+1 (mod I): after training, the top-1 next item is the successor."""
    n = 12
    seqs = [[(s + j) % n for j in range(8)] for s in range(n)] * 4
    cfg = sasrec.SASRecConfig(n_items=n, max_len=4, d_model=16, n_heads=2, n_layers=1, inner=16)
    tc = sasrec.SASRecTrainConfig(steps=150, batch_size=32, lr=1e-2, eval_every=50, seed=0)
    hist = [[(s + j) % n for j in range(3)] for s in range(n)]

    def acc(params):
        top = sasrec.rank_items(sasrec.score_histories(params, cfg, hist, batch=16), hist, 1, "none")
        return float(np.mean([t[0] == (h[-1] + 1) % n for t, h in zip(top, hist)]))

    fit = sasrec.fit_sasrec(seqs, cfg, str(tmp_path), tc, evaluate=acc, log=lambda _: None)
    assert fit["best_val"] >= 0.9 and acc(fit["params"]) == fit["best_val"]
    assert fit["final_loss"] < 1.0
