"""Dense models: the UltraGCN L_O / BPR losses and LightGCN propagation against hand-written numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from humanai_jax.recsys import data, dense, ranking


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    train = sp.csr_matrix((rng.random((7, 9)) < 0.4).astype(np.float32))
    params = {"user": jnp.asarray(rng.normal(size=(7, 4)), jnp.float32),
              "item": jnp.asarray(rng.normal(size=(9, 4)), jnp.float32)}
    return train, params


def _log_sigmoid(x):
    return -np.log1p(np.exp(-x))


def _numpy_ultragcn(params, train, users, items, weights, negs, hp, user_weight):
    eu, ei = np.asarray(params["user"], np.float64), np.asarray(params["item"], np.float64)
    d_u, d_i = np.asarray(train.sum(1)).ravel(), np.asarray(train.sum(0)).ravel()
    b_u = 1 / np.sqrt(d_u + 1) if user_weight == "sad" else np.sqrt(d_u + 1) / np.maximum(d_u, 1)
    b_i = 1 / np.sqrt(d_i + 1)
    total = 0.0
    for b, (u, i) in enumerate(zip(users, items)):
        neg = negs if negs.ndim == 1 else negs[b]
        w_pos = hp.w1 + hp.w2 * b_u[u] * b_i[i]
        pos_term = -w_pos * _log_sigmoid(eu[u] @ ei[i])
        neg_terms = [-(hp.w3 + hp.w4 * b_u[u] * b_i[j]) * _log_sigmoid(-(eu[u] @ ei[j])) for j in neg]
        total += weights[b] * (pos_term + hp.negative_weight * np.mean(neg_terms))
    return total + hp.gamma * 0.5 * (np.sum(eu**2) + np.sum(ei**2))


@pytest.mark.parametrize("group_size", [1, 3])
@pytest.mark.parametrize("user_weight", ["sad", "ultragcn"])
def test_ultragcn_loss_matches_numpy(toy, group_size, user_weight):
    train, params = toy
    hp = dense.DenseHParams(dim=4, batch_size=3, num_negatives=3, negative_weight=5.0, w1=0.1, w3=0.2, w4=0.7,
                            gamma=0.01, negative_group_size=group_size, user_weight=user_weight)
    graph = dense.build_graph(train, user_weight)
    users, items, weights = np.array([0, 3, 6]), np.array([1, 8, 2]), np.array([1.0, 0.5, 2.0])
    negs = np.array([[4, 0, 7]] * 3) if group_size == 3 else np.array([[4, 0, 7], [1, 1, 2], [3, 5, 8]])
    draws = negs[:1] if group_size == 3 else negs  # [G, N]: one row per group of pairs
    ours = dense.batch_loss(params, graph, users, items, jnp.asarray(weights, jnp.float32), jnp.asarray(draws), hp)
    expected = _numpy_ultragcn(params, train, users, items, weights, negs, hp, user_weight)
    assert float(ours) == pytest.approx(expected, rel=1e-5)


def test_bpr_loss_matches_numpy(toy):
    train, params = toy
    hp = dense.DenseHParams(dim=4, num_negatives=2, loss="bpr", gamma=0.0)
    graph = dense.build_graph(train)
    eu, ei = np.asarray(params["user"], np.float64), np.asarray(params["item"], np.float64)
    negs = np.array([[4, 0], [2, 3]])  # per-pair draws (G = B = 2)
    expected = sum(np.mean([-_log_sigmoid(eu[u] @ ei[i] - eu[u] @ ei[j]) for j in negs[b]])
                   for b, (u, i) in enumerate([(1, 2), (5, 6)]))
    ours = dense.batch_loss(params, graph, jnp.array([1, 5]), jnp.array([2, 6]), jnp.ones(2), jnp.asarray(negs), hp)
    assert float(ours) == pytest.approx(expected, rel=1e-5)


def test_lightgcn_propagation_matches_dense_adjacency(toy):
    train, params = toy
    graph = dense.build_graph(train)
    r = train.toarray().astype(np.float64)
    d_u, d_i = np.maximum(r.sum(1), 1), np.maximum(r.sum(0), 1)
    r_hat = r / np.sqrt(d_u[:, None] * d_i[None, :])
    eu, ei = np.asarray(params["user"], np.float64), np.asarray(params["item"], np.float64)
    layers_u, layers_i = [eu], [ei]
    for _ in range(2):
        eu, ei = r_hat @ ei, r_hat.T @ eu
        layers_u.append(eu)
        layers_i.append(ei)
    ours_u, ours_i = dense.embeddings(params, graph, "lightgcn", 2)
    np.testing.assert_allclose(np.asarray(ours_u), np.mean(layers_u, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ours_i), np.mean(layers_i, 0), rtol=1e-5, atol=1e-6)


def test_unsupported_option_is_rejected():
    with pytest.raises(ValueError, match="dense.loss"):
        dense.DenseHParams(loss="softmax")
    with pytest.raises(ValueError, match="must divide"):
        dense.DenseHParams(batch_size=1024, negative_group_size=100)


@pytest.fixture(scope="module")
def synthetic():
    return data.synthetic_long_tail(200, 300, mean_items_per_user=20, seed=0)


def _popularity_recall(d):
    pop = np.asarray(d.train.sum(0)).ravel().astype(np.float32)
    return ranking.evaluate(lambda u: jnp.broadcast_to(jnp.asarray(pop), (len(u), d.n_items)), d.train, d.test)


@pytest.mark.parametrize("backbone,loss,batch_size", [("mf", "ultragcn", 64), ("lightgcn", "bpr", 128)])
def test_training_beats_popularity(synthetic, backbone, loss, batch_size):
    d = synthetic
    hp = dense.DenseHParams(dim=16, init_std=0.1, batch_size=batch_size, num_negatives=16, negative_weight=16, lr=1e-2,
                            gamma=1e-4, backbone=backbone, loss=loss, negative_group_size=batch_size, n_layers=2)
    graph = dense.build_graph(d.train)
    select = lambda eu, ei: ranking.evaluate(dense.score_rows_fn(eu, ei), d.train, d.test)
    res = dense.train_dense(d.train_pairs, np.ones(len(d.train_pairs), np.float32), graph, d.n_users, d.n_items, hp,
                            key=jax.random.PRNGKey(0), max_epochs=40, select=select, eval_every=10,
                            eval_every_after=100, patience=3)
    assert res.best_metric > 1.2 * _popularity_recall(d)["recall@20"]
    assert res.best_metric == max(h["recall@20"] for h in res.history)


def test_early_stopping_on_the_trainer_equals_the_plain_epoch_loop(synthetic):
    """train_dense (one Trainer step per epoch, selection and patience in a hook) against the plain loop written
    out here: same losses, same evaluated epochs, same stopping epoch, bitwise the same selected embeddings."""
    d = synthetic
    hp = dense.DenseHParams(dim=8, init_std=0.1, batch_size=256, num_negatives=8, negative_weight=8, lr=3e-2,
                            negative_group_size=256)
    graph = dense.build_graph(d.train)
    weights = np.ones(len(d.train_pairs), np.float32)
    select = lambda eu, ei: ranking.evaluate(dense.score_rows_fn(eu, ei), d.train, d.test)  # noqa: E731
    kw = dict(max_epochs=30, eval_every=2, eval_every_after=100, patience=2)
    res = dense.train_dense(d.train_pairs, weights, graph, d.n_users, d.n_items, hp, key=jax.random.PRNGKey(1),
                            select=select, **kw)

    init_key, key = jax.random.split(jax.random.PRNGKey(1))  # the plain loop (the reference)
    params = dense.init_params(init_key, d.n_users, d.n_items, hp)
    opt_state = dense.make_optimizer(hp).init(params)
    best, stale, history, epoch = (-np.inf, 0, None), 0, [], 0
    for epoch in range(1, kw["max_epochs"] + 1):
        key, sub = jax.random.split(key)
        params, opt_state, loss = dense.train_epoch(params, opt_state, sub, jnp.asarray(d.train_pairs),
                                                    jnp.asarray(weights), graph, hp=hp, n_items=d.n_items)
        if epoch % kw["eval_every"]:
            continue
        metrics = select(*dense.embeddings(params, graph, hp.backbone, hp.n_layers))
        history.append({"epoch": epoch, "loss": float(loss), **metrics})
        if metrics["recall@20"] > best[0]:
            best, stale = (metrics["recall@20"], epoch, params), 0
        else:
            stale += 1
            if stale >= kw["patience"]:
                break
    assert res.epochs_run == epoch < kw["max_epochs"]  # it did stop early
    assert res.history == history and res.best_epoch == best[1]
    for name in ("user", "item"):
        np.testing.assert_array_equal(np.asarray(res.params[name]), np.asarray(best[2][name]))

