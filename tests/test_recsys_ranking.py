"""Full-ranking metrics and blocked top-k, against brute-force numpy/Python implementations."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from humanai_jax.recsys import ranking


def _random_problem(seed=0, n_users=37, n_items=23):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    train = sp.csr_matrix((rng.random((n_users, n_items)) < 0.2).astype(np.float32))
    test_dense = (rng.random((n_users, n_items)) < 0.15) & (train.toarray() == 0)
    test_dense[:3] = False  # users without test items still count in the average
    return scores, train, sp.csr_matrix(test_dense.astype(np.float32))


def _brute_force(scores, train, test, k):
    recalls, ndcgs, precisions, hits_any = [], [], [], []
    for u in range(scores.shape[0]):
        s = scores[u].astype(np.float64).copy()
        s[train[u].indices] = -np.inf
        order = sorted(range(len(s)), key=lambda i: (-s[i], i))[:k]
        truth = set(test[u].indices.tolist())
        hits = [i in truth for i in order]
        dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(truth), k)))
        recalls.append(sum(hits) / max(len(truth), 1))
        ndcgs.append(dcg / idcg if idcg > 0 else 0.0)
        precisions.append(sum(hits) / k)
        hits_any.append(float(any(hits)))
    return {f"recall@{k}": np.mean(recalls), f"ndcg@{k}": np.mean(ndcgs), f"precision@{k}": np.mean(precisions),
            f"hitrate@{k}": np.mean(hits_any)}


def test_metrics_match_brute_force():
    scores, train, test = _random_problem()
    ours = ranking.evaluate(lambda u: jnp.asarray(scores[u]), train, test, ks=(5, 10), block=16)
    for k in (5, 10):
        for name, value in _brute_force(scores, train, test, k).items():
            assert ours[name] == pytest.approx(value, abs=1e-12), name


def test_hand_computed_example():
    # One user, items 0..4, scores descending by id; train item 0 masked; test items {1, 4}.
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]], np.float32)
    train = sp.csr_matrix(np.array([[1, 0, 0, 0, 0]], np.float32))
    test = sp.csr_matrix(np.array([[0, 1, 0, 0, 1]], np.float32))
    m = ranking.evaluate(lambda u: jnp.asarray(scores[u]), train, test, ks=(2, 4), block=4)
    # Ranking: 1, 2, 3, 4. @2: one hit at rank 1. @4: hits at ranks 1 and 4.
    assert m["recall@2"] == pytest.approx(0.5)
    assert m["ndcg@2"] == pytest.approx(1.0 / (1 + 1 / math.log2(3)))
    assert m["recall@4"] == pytest.approx(1.0)
    assert m["ndcg@4"] == pytest.approx((1 + 1 / math.log2(5)) / (1 + 1 / math.log2(3)))
    assert m["precision@4"] == pytest.approx(0.5) and m["hitrate@2"] == 1.0


def test_metrics_do_not_depend_on_block_size():
    scores, train, test = _random_problem(seed=1)
    runs = [ranking.evaluate(lambda u: jnp.asarray(scores[u]), train, test, ks=(5, 10), block=b) for b in (1, 7, 64)]
    assert runs[0] == runs[1] == runs[2]


def test_top_k_tie_rules():
    x = jnp.array([[1.0, 3.0, 3.0, 0.0, 3.0]])
    _, low = ranking.top_k(x, 2)
    _, high = ranking.top_k(x, 2, prefer_high_index=True)
    assert low.tolist() == [[1, 2]]
    assert high.tolist() == [[4, 2]]
    # numpy argsort(...)[-k:] on an all-equal row picks the last ids, as the numpy-compat mode does.
    z = np.zeros(6)
    assert set(np.argsort(z)[-2:].tolist()) == set(ranking.top_k(jnp.zeros((1, 6)), 2, True)[1][0].tolist())


def test_top_users_per_item_matches_numpy():
    rng = np.random.default_rng(2)
    s = rng.normal(size=(40, 13)).astype(np.float32)
    top = ranking.top_users_per_item(lambda i: jnp.asarray(s[:, i]), 13, 5, block=4)
    expected = np.argsort(-s, axis=0, kind="stable")[:5].T
    np.testing.assert_array_equal(top, expected)


def test_rank_users_masks_train_items():
    scores, train, _ = _random_problem(seed=3)
    top = ranking.rank_users(lambda u: jnp.asarray(scores[u]), *scores.shape, train, 5, block=8)
    for u in range(scores.shape[0]):
        assert not set(top[u]) & set(train[u].indices)
