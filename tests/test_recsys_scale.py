"""Scale paths of humanai_jax.recsys (issue 22): sparse neighbourhoods, candidate SLIM, memory plans and the
shaped synthetic generator, each against the dense implementation or hand values."""

import numpy as np
import pytest
import scipy.sparse as sp

from humanai_jax.recsys import data, memory, neighbors, ranking, slim


@pytest.fixture(scope="module")
def weighted_x():
    # Continuous weights: no ties in the similarities, so top-k sets are unique.
    rng = np.random.default_rng(0)
    return sp.csr_matrix(rng.random((120, 70)) * (rng.random((120, 70)) < 0.2), dtype=np.float32)


@pytest.mark.parametrize("k,block", [(5, 16), (20, 70), (69, 32)])
def test_blocked_itemknn_equals_dense(weighted_x, k, block):
    dense = np.asarray(neighbors.fit_itemknn(weighted_x, k))
    blocked = neighbors.fit_itemknn_sparse(weighted_x, k, block=block)
    assert sp.issparse(blocked)
    np.testing.assert_allclose(blocked.toarray(), dense, rtol=1e-5, atol=1e-6)
    assert np.all(blocked.diagonal() == 0)


def test_sparse_weights_score_like_dense(weighted_x):
    w = neighbors.fit_itemknn_sparse(weighted_x, 10, block=16)
    users, items = np.array([0, 5, 7]), np.array([1, 2, 60])
    np.testing.assert_allclose(neighbors.item_item_rows_fn(weighted_x, w)(users),
                               neighbors.item_item_rows_fn(weighted_x, w.toarray())(users), rtol=1e-5)
    np.testing.assert_allclose(neighbors.item_item_columns_fn(weighted_x, w)(items),
                               neighbors.item_item_columns_fn(weighted_x, w.toarray())(items), rtol=1e-5)


def test_candidate_slim_with_all_cooccurring_items_equals_full_slim():
    d = data.synthetic_long_tail(150, 60, mean_items_per_user=12.0, seed=2)
    kw = dict(tol=1e-7, max_iter=400, selection="cyclic", topk=100, faithful_topk=False)
    full, _ = slim.fit_slim(d.train, 0.01, 1e-4, block=16, **kw)
    restricted, info = slim.fit_slim_candidates(d.train, 0.01, 1e-4, candidates=59, block=16, **kw)
    assert info["columns_with_more_cooccurring_items_than_candidates"] == 0
    np.testing.assert_allclose(restricted.toarray(), np.asarray(full), atol=1e-5)


def test_candidate_slim_keeps_weights_on_top_cooccurring_items():
    d = data.synthetic_long_tail(150, 60, mean_items_per_user=12.0, seed=2)
    w, info = slim.fit_slim_candidates(d.train, 0.01, 1e-4, candidates=8, block=16, faithful_topk=False)
    g = (d.train.T @ d.train).toarray()
    np.fill_diagonal(g, 0)
    assert info["candidates"] == 8 and info["columns_with_more_cooccurring_items_than_candidates"] > 0
    dense_w = w.toarray()
    for j in range(60):
        support = np.flatnonzero(dense_w[:, j])
        assert len(support) <= 8
        # Every kept weight sits on an item at least as co-occurring as the 8th most co-occurring one.
        assert np.all(g[support, j] >= np.sort(g[:, j])[-8])


def test_memory_check_names_stage_need_and_limit():
    lines = []
    total = memory.check("toy", {"a": 2 * memory.GIB, "b": memory.GIB}, 4 * memory.GIB, log=lines.append)
    assert total == 3 * memory.GIB and lines == ["[memory plan] toy: a 2.00 GiB + b 1.00 GiB = 3.00 GiB; limit 4.00 GiB"]
    with pytest.raises(memory.MemoryBudgetError, match=r"stage 'toy' needs about 3\.00 GiB .* limit is 1\.00 GiB; try"):
        memory.check("toy", {"a": 2 * memory.GIB, "b": memory.GIB}, memory.GIB, hint="try", log=lines.append)
    # Hand value: SLIM on 40,981 items (Gowalla) holds about 6 x 6.26 GiB of I x I float32 arrays.
    assert sum(memory.dense_item_item(40_981, "slim").values()) / memory.GIB == pytest.approx(6 * 6.2565, rel=1e-3)
    # the evaluation plan covers what the full Amazon-Book shape's evaluation stage added (5.3 GiB, docs/sad.md)
    assert sum(memory.ranking_block(91_599, 1024, 52_643, 50).values()) / memory.GIB > 5.3


def test_pipeline_refuses_a_dense_item_item_stage_that_cannot_fit(monkeypatch, capsys):
    from configs import sad
    from humanai_jax.methods.sad import pipeline

    c = sad.get_config()
    c.scale.memory_limit_gb = 0.5  # 1 GiB of I x I float32 arrays would need I ~ 6,700
    d = data.synthetic_shaped(300, 8_000, 6_000, seed=0)
    monkeypatch.setattr(slim, "fit_slim", lambda *a, **k: pytest.fail("allocated despite the plan"))
    with pytest.raises(memory.MemoryBudgetError, match=r"stage 'sparse_origin \(slim, dense I x I\)' needs about "
                                                        r"1\.43 GiB .* limit is 0\.50 GiB; set scale\.sparse_views"):
        pipeline.run_protocol(d, c)
    assert "[memory plan] sparse_origin (slim, dense I x I)" in capsys.readouterr().out


def test_sparse_views_pipeline_matches_dense_views_when_candidates_cover_everything():
    from configs import sad
    from humanai_jax.methods.sad import pipeline

    d = data.synthetic_long_tail(120, 50, mean_items_per_user=10.0, seed=1)
    out = {}
    for views in (False, True):
        c = sad.get_config("synthetic,dense_alone=False")
        c.dense.max_epochs, c.dense.batch_size = 2, 256
        c.sparse.candidates, c.sparse.column_block, c.sparse.block = 49, 16, 16
        c.sparse.tol, c.sparse.max_iter, c.sparse.selection = 1e-7, 400, "cyclic"
        c.baselines.ease, c.baselines.knn_k_grid = False, [10]
        c.eval.ks, c.eval.block = [20], 64
        c.scale.sparse_views = views
        out[views] = pipeline.run_protocol(d, c)
    assert sp.issparse(out[True]["artifacts"]["w_origin"])
    for stage in ("sparse_alone", "itemknn", "dense_s2d"):
        assert out[True]["metrics"][stage]["recall@20"] == pytest.approx(out[False]["metrics"][stage]["recall@20"],
                                                                         abs=1e-6), stage


def test_synthetic_shaped_matches_its_shape_and_is_long_tailed():
    a = data.synthetic_shaped(2_000, 3_000, 60_000, seed=5)
    b = data.synthetic_shaped(2_000, 3_000, 60_000, seed=5)
    assert (a.n_users, a.n_items) == (2_000, 3_000)
    assert a.train.nnz + a.test.nnz == 60_000  # oversampled, deduplicated, trimmed to the target
    assert (a.train != b.train).nnz == 0 and (a.test != b.test).nnz == 0
    assert a.train.multiply(a.test).nnz == 0 and np.all(np.diff(a.test.indptr) >= 1)
    assert 0.18 < a.test.nnz / 60_000 < 0.25
    degree = np.sort(np.asarray((a.train + a.test).sum(0)).ravel())[::-1]
    assert degree[:30].sum() / degree.sum() > 0.08  # top 1% of items: over 8x their uniform share
    assert set(data.SHAPES) >= {"gowalla_m1", "yelp18_m1", "amazonbooks_m1"}


def test_top_users_per_item_refuses_k_above_users():
    with pytest.raises(ValueError, match="top-4 asked for, but there are only 3 users"):
        ranking.top_users_per_item(lambda items: np.zeros((3, len(items)), np.float32), 5, 4, block=2)


def test_sparse_top_per_column_equals_dense_with_ties():
    rng = np.random.default_rng(3)
    dense = (rng.integers(0, 4, (40, 9)) * (rng.random((40, 9)) < 0.5)).astype(np.float32)  # many ties, zeros
    dense[:, 8] = 0.0  # an empty column
    for k in (1, 3, 7, 40):
        rows, vals = neighbors.top_per_column_sparse(sp.csc_matrix(dense), k)
        ref_rows, ref_vals = neighbors.top_per_column(dense, k)
        np.testing.assert_array_equal(vals, ref_vals)
        np.testing.assert_array_equal(rows[vals > 0], ref_rows[ref_vals > 0])  # padding differs only at zeros
        for j in range(9):  # brute force: descending value, lower row first
            expect = sorted(range(40), key=lambda r: (-dense[r, j], r))[:k]
            got = [r for r, v in zip(rows[:, j], vals[:, j]) if v > 0]
            assert got == [r for r in expect if dense[r, j] > 0]
