"""SLIM: a nonnegative ElasticNet per item, solved for all items at once in JAX.

For every item j (n = number of users, X = training matrix [n, I], X_{-j} = X with column j zeroed):

    min_{w >= 0}  1/(2n) ||X[:, j] - X_{-j} w||^2 + a*rho*||w||_1 + a*(1-rho)/2 ||w||^2

which is scikit-learn's `ElasticNet(alpha=a, l1_ratio=rho, positive=True, fit_intercept=False)`.
All columns share the Gram matrix G = X^T X [I, I], so coordinate k of every column is updated at
once (one row of W); that is scikit-learn's coordinate descent run for all items in lockstep:

    w_kj <- max(0, G_kj - (G W)_kj + G_kk w_kj - n*a*rho) / (G_kk + n*a*(1-rho)),   w_jj = 0.

Blocked Gauss-Seidel: for a block K of coordinates, R = G[K] @ W is one matmul; inside the block
each update of row k changes R by the rank-1 term G[K, k] * delta_k. This is exactly sequential
coordinate descent, with the O(I^3) work per sweep done as matrix products.

Stopping follows scikit-learn 1.5 (`enet_coordinate_descent_gram`) per column: after a sweep, if the
largest coordinate change is below `tol` times the largest weight (or the column is all zero), the
duality gap is computed, and the column stops once gap < tol * ||y||^2. With the reference setting
tol = 1.0 this stops after a few sweeps: the reference SLIM is an *early-stopped* SLIM (docs/sad.md §7 #1).
`selection="random"` draws coordinates uniformly with replacement, as scikit-learn does.
The result is sparsified to the top-`topk` weights per column (docs/sad.md §2, with the reference's
off-by-one `min(nnz - 1, topk)` behind `faithful_topk`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp


def gram(x: sp.spmatrix) -> np.ndarray:
    """X^T X as a dense float32 [I, I] array, computed sparse (X: [n_users, n_items])."""
    x = sp.csr_matrix(x, dtype=np.float32)
    return np.asarray((x.T @ x).toarray(), np.float32)


def _sweep_order(key, n_items: int, block: int, selection: str) -> jax.Array:
    """[n_blocks, block] coordinates of one sweep (padding repeats are no-ops: see `_block_update`)."""
    if selection == "random":
        order = jax.random.randint(key, (n_items,), 0, n_items)
    elif selection == "cyclic":
        order = jnp.arange(n_items)
    else:
        raise ValueError(f"Unknown selection {selection!r}; expected 'random' or 'cyclic'")
    n_blocks = -(-n_items // block)
    pad = n_blocks * block - n_items
    # -1 marks padding: those steps leave W unchanged.
    return jnp.concatenate([order, -jnp.ones((pad,), order.dtype)]).reshape(n_blocks, block)


def _block_update(carry, rows, *, gram_mat, l1, l2, active):
    """Sequential coordinate updates for the coordinates in `rows` [block] (all columns at once).

    Only the block's rows of W ([block, I]) are carried through the inner loop, so W itself is
    written once per block (a full-size dynamic update per coordinate would copy W each time).
    A coordinate drawn twice in one block has two identical copies, kept in sync.
    """
    w, d_w_max, w_max = carry
    n_items = gram_mat.shape[0]
    safe_rows = jnp.maximum(rows, 0)
    g_block = gram_mat[safe_rows]  # [block, I]: G[k, :] = X_{-j}^T y_j for every column j
    r = g_block @ w  # [block, I]: (G W)[k] for each k in the block
    w_block = w[safe_rows]  # [block, I]
    g_in_block = gram_mat[safe_rows][:, safe_rows]  # [block, block]: G[K, K]

    def one(t, state):
        w_block, r, d_w_max, w_max = state
        k = safe_rows[t]
        valid = rows[t] >= 0
        g_kk = gram_mat[k, k]
        w_old = w_block[t]  # [I]
        tmp = g_block[t] - r[t] + g_kk * w_old
        w_new = jnp.maximum(tmp - l1, 0.0) / jnp.maximum(g_kk + l2, 1e-30)
        w_new = w_new.at[k].set(0.0)  # zero diagonal: item j never explains itself
        w_new = jnp.where(active & valid, w_new, w_old)
        delta = w_new - w_old
        same = (safe_rows == k)[:, None] & valid
        w_block = jnp.where(same, w_new[None, :], w_block)
        r = r + g_in_block[:, t][:, None] * delta[None, :]
        d_w_max = jnp.maximum(d_w_max, jnp.abs(delta))
        w_max = jnp.maximum(w_max, jnp.where(valid, jnp.abs(w_new), 0.0))
        return w_block, r, d_w_max, w_max

    w_block, _, d_w_max, w_max = jax.lax.fori_loop(0, rows.shape[0], one, (w_block, r, d_w_max, w_max))
    write_rows = jnp.where(rows >= 0, rows, n_items)  # padding rows are dropped
    w = w.at[write_rows].set(w_block, mode="drop")
    return (w, d_w_max, w_max), None


def duality_gap(gram_mat, w, l1, l2):
    """Per-column duality gap of the positive ElasticNet (scikit-learn's gram formula), [I]."""
    diag = jnp.diagonal(gram_mat)
    q = gram_mat * (1.0 - jnp.eye(gram_mat.shape[0], dtype=gram_mat.dtype))  # X_{-j}^T y, entry j zeroed
    h = (gram_mat @ w) * (1.0 - jnp.eye(gram_mat.shape[0], dtype=gram_mat.dtype))
    y_norm2 = diag
    xta = q - h - l2 * w
    dual_norm = jnp.max(xta, axis=0)
    q_dot_w = jnp.sum(q * w, 0)
    r_norm2 = y_norm2 + jnp.sum(w * h, 0) - 2.0 * q_dot_w
    w_norm2 = jnp.sum(w * w, 0)
    const = jnp.where(dual_norm > l1, l1 / jnp.where(dual_norm > 0, dual_norm, 1.0), 1.0)
    gap = jnp.where(dual_norm > l1, 0.5 * (r_norm2 + r_norm2 * const**2), r_norm2)
    return gap + l1 * jnp.sum(jnp.abs(w), 0) - const * y_norm2 + const * q_dot_w + 0.5 * l2 * (1 + const**2) * w_norm2


@functools.partial(jax.jit, static_argnames=("max_iter", "block", "selection"))
def solve_slim(gram_mat, n_samples, alpha, l1_ratio, key, *, max_iter=100, tol=1.0, block=64, selection="random"):
    """Nonnegative ElasticNet for every column of G = X^T X [I, I]. Returns (W [I, I], sweeps [I]).

    alpha, l1_ratio follow scikit-learn; n_samples = number of users (rows of X).
    """
    n_items = gram_mat.shape[0]
    l1 = alpha * l1_ratio * n_samples
    l2 = alpha * (1.0 - l1_ratio) * n_samples
    y_norm2 = jnp.diagonal(gram_mat)
    tol_scaled = tol * y_norm2
    w0 = jnp.zeros_like(gram_mat)
    active0 = y_norm2 > 0  # an item nobody interacted with has w = 0 at once

    def cond(state):
        _, active, sweep, _, _ = state
        return (sweep < max_iter) & jnp.any(active)

    def body(state):
        w, active, sweep, n_iter, key = state
        key, sub = jax.random.split(key)
        order = _sweep_order(sub, n_items, block, selection)
        zeros = jnp.zeros((n_items,), gram_mat.dtype)
        step = functools.partial(_block_update, gram_mat=gram_mat, l1=l1, l2=l2, active=active)
        (w, d_w_max, w_max), _ = jax.lax.scan(step, (w, zeros, zeros), order)
        check = (w_max == 0) | (d_w_max < tol * w_max) | (sweep == max_iter - 1)
        converged = check & (duality_gap(gram_mat, w, l1, l2) < tol_scaled)
        n_iter = jnp.where(active, sweep + 1, n_iter)
        return w, active & ~converged, sweep + 1, n_iter, key

    init = (w0, active0, jnp.int32(0), jnp.zeros((n_items,), jnp.int32), key)
    w, _, _, n_iter, _ = jax.lax.while_loop(cond, body, init)
    return w, n_iter


@functools.partial(jax.jit, static_argnames=("topk", "faithful"))
def keep_top_per_column(w, topk: int = 100, faithful: bool = True):
    """Keeps the largest weights of each column [I, I] -> [I, I].

    faithful=True reproduces daisyRec/BARS SLIM: it keeps min(nnz_j - 1, topk) weights, so a column
    with <= topk non-zeros loses its smallest one and a column with one non-zero becomes empty.
    """
    k = min(topk, w.shape[0])
    values, idx = jax.lax.top_k(w.T, k)  # [I, k] per column
    nnz = jnp.sum(w > 0, axis=0)
    keep_n = jnp.minimum(nnz - 1, topk) if faithful else jnp.minimum(nnz, topk)
    keep = (jnp.arange(k)[None, :] < keep_n[:, None]) & (values > 0)
    cols = jnp.broadcast_to(jnp.arange(w.shape[1])[:, None], idx.shape)
    return jnp.zeros_like(w).at[idx, cols].set(jnp.where(keep, values, 0.0))


def fit_slim(x: sp.spmatrix, alpha: float, l1_ratio: float, *, seed=0, max_iter=100, tol=1.0, topk=100,
             faithful_topk=True, block=64, selection="random") -> tuple[jax.Array, dict]:
    """SLIM on an interaction matrix x [n_users, n_items] (0/1 or weighted, e.g. Q = X + a*M).

    Returns (W [I, I] dense float32 with zero diagonal and <= topk non-zeros per column, info).
    """
    g = jnp.asarray(gram(x))
    w, n_iter = solve_slim(g, float(x.shape[0]), alpha, l1_ratio, jax.random.PRNGKey(seed),
                           max_iter=max_iter, tol=tol, block=block, selection=selection)
    w = keep_top_per_column(w, topk, faithful_topk)
    info = {"nnz": int(jnp.sum(w > 0)), "sweeps_mean": float(jnp.mean(n_iter)), "sweeps_max": int(jnp.max(n_iter)),
            "empty_columns": int(jnp.sum(jnp.all(w == 0, axis=0)))}
    return w, info


def fit_slim_sklearn(x: sp.spmatrix, alpha: float, l1_ratio: float, *, seed=0, max_iter=100, tol=1.0, topk=100,
                     faithful_topk=True) -> tuple[np.ndarray, dict]:
    """SLIM through scikit-learn's own per-item ElasticNet loop: the reference code path (daisyRec/BARS
    `SLIM.py`, SaD's `slimtest.py`), so its random coordinate order is scikit-learn's (seeded with `seed`;
    the reference leaves it unseeded). CPU only, O(nnz * I) per sweep.

    scikit-learn >= 1.8 checks the duality gap before the first sweep, so with the reference tol = 1.0 it
    returns W = 0 for every column (spec sad.md §7 #2); that is refused here rather than returned.
    Returns (W [I, I] float32 numpy, info).
    """
    try:
        import sklearn
        from sklearn.linear_model import ElasticNet
    except ImportError as e:
        raise ImportError("sparse.model='slim_sklearn' needs scikit-learn (pip install scikit-learn==1.5.2, the "
                          "version the reference numbers were measured with)") from e
    major, minor = (int(v) for v in sklearn.__version__.split(".")[:2])
    if (major, minor) >= (1, 8) and tol >= 1e-2:
        raise RuntimeError(f"scikit-learn {sklearn.__version__} with tol={tol} stops before the first sweep and "
                           "returns W = 0 (spec sad.md §7 #2); use scikit-learn <= 1.7 or a small tol")
    model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, positive=True, fit_intercept=False, copy_X=False,
                       precompute=True, selection="random", max_iter=max_iter, tol=tol,
                       random_state=np.random.RandomState(seed))  # one stream across the columns
    xc = sp.csc_matrix(x, dtype=np.float64, copy=True)
    n_items = xc.shape[1]
    w = np.zeros((n_items, n_items), np.float32)
    sweeps = np.zeros(n_items, np.int32)
    for j in range(n_items):
        y = xc[:, j].toarray()
        start, end = xc.indptr[j], xc.indptr[j + 1]
        saved = xc.data[start:end].copy()
        xc.data[start:end] = 0.0  # column j explains nothing (in place, as released)
        model.fit(xc, y)
        xc.data[start:end] = saved
        sweeps[j] = model.n_iter_
        idx, val = model.sparse_coef_.indices, model.sparse_coef_.data
        keep = min(len(val) - 1, topk) if faithful_topk else min(len(val), topk)
        if keep > 0:
            top = np.argsort(-val, kind="stable")[:keep]
            w[idx[top], j] = val[top]
    info = {"nnz": int((w > 0).sum()), "sweeps_mean": float(sweeps.mean()), "sweeps_max": int(sweeps.max()),
            "empty_columns": int(np.all(w == 0, axis=0).sum()), "sklearn_version": sklearn.__version__}
    return w, info


# ----------------------------------------------------------------------------- SLIM without an I x I array


def restricted_duality_gap(g_cc, q, y_norm2, w, l1, l2):
    """Duality gap of each column's problem restricted to its candidates: g_cc [b, c, c] (Gram among the
    candidates), q [b, c] (X_C^T y), y_norm2 [b], w [b, c] -> [b] (scikit-learn's gram formula)."""
    h = jnp.einsum("bkc,bc->bk", g_cc, w)
    xta = q - h - l2 * w
    dual_norm = jnp.max(xta, axis=1)
    q_dot_w = jnp.sum(q * w, 1)
    r_norm2 = y_norm2 + jnp.sum(w * h, 1) - 2.0 * q_dot_w
    w_norm2 = jnp.sum(w * w, 1)
    const = jnp.where(dual_norm > l1, l1 / jnp.where(dual_norm > 0, dual_norm, 1.0), 1.0)
    gap = jnp.where(dual_norm > l1, 0.5 * (r_norm2 + r_norm2 * const**2), r_norm2)
    return gap + l1 * jnp.sum(jnp.abs(w), 1) - const * y_norm2 + const * q_dot_w + 0.5 * l2 * (1 + const**2) * w_norm2


@functools.partial(jax.jit, static_argnames=("max_iter", "selection"))
def solve_restricted(g_cc, q, y_norm2, valid, l1, l2, key, *, max_iter=100, tol=1.0, selection="random"):
    """Nonnegative ElasticNet of b columns, each over its own c candidate coordinates (scikit-learn's update
    and stopping rules, as `solve_slim`). g_cc [b, c, c], q [b, c], y_norm2 [b], valid [b, c] bool (padding
    slots stay 0). Returns (w [b, c], sweeps [b])."""
    b, c = q.shape
    diag = jnp.diagonal(g_cc, axis1=1, axis2=2)  # [b, c]

    def cond(state):
        _, active, sweep, _, _ = state
        return (sweep < max_iter) & jnp.any(active)

    def body(state):
        w, active, sweep, n_iter, key = state
        key, sub = jax.random.split(key)
        order = jax.random.randint(sub, (c,), 0, c) if selection == "random" else jnp.arange(c)

        def one(t, carry):
            w, d_w_max, w_max = carry
            k = order[t]
            g_k = g_cc[:, k, :]  # [b, c]
            w_old = w[:, k]
            tmp = q[:, k] - jnp.sum(g_k * w, 1) + diag[:, k] * w_old
            w_new = jnp.maximum(tmp - l1, 0.0) / jnp.maximum(diag[:, k] + l2, 1e-30)
            w_new = jnp.where(active & valid[:, k], w_new, w_old)
            delta = jnp.abs(w_new - w_old)
            return w.at[:, k].set(w_new), jnp.maximum(d_w_max, delta), jnp.maximum(w_max, jnp.abs(w_new))

        zeros = jnp.zeros((b,), q.dtype)
        w, d_w_max, w_max = jax.lax.fori_loop(0, c, one, (w, zeros, zeros))
        check = (w_max == 0) | (d_w_max < tol * w_max) | (sweep == max_iter - 1)
        converged = check & (restricted_duality_gap(g_cc, q, y_norm2, w, l1, l2) < tol * y_norm2)
        n_iter = jnp.where(active, sweep + 1, n_iter)
        return w, active & ~converged, sweep + 1, n_iter, key

    init = (jnp.zeros_like(q), y_norm2 > 0, jnp.int32(0), jnp.zeros((b,), jnp.int32), key)
    w, _, _, n_iter, _ = jax.lax.while_loop(cond, body, init)
    return w, n_iter


def candidate_grams(x_csc: sp.csc_matrix, cands: np.ndarray) -> np.ndarray:
    """[b, c, c] Gram matrices X_C^T X_C of each row's candidate items `cands` [b, c] (from sparse X).

    One sparse product per row: cost ~ sum over users of |C & items(u)|^2. Two alternatives were no faster
    on the Amazon-Book shape: the dense Gram of a group's candidate union (512 columns had 35,832 distinct
    candidates) and a dense Gram of the 8,192 most frequent items (only half of the candidates were among
    them)."""
    out = np.empty((len(cands), cands.shape[1], cands.shape[1]), np.float32)
    for r, cand in enumerate(cands):
        xc = x_csc[:, cand]
        out[r] = (xc.T @ xc).toarray()
    return out


def fit_slim_candidates(x: sp.spmatrix, alpha: float, l1_ratio: float, *, candidates: int = 200, seed=0,
                        max_iter=100, tol=1.0, topk=100, faithful_topk=True, block=512,
                        selection="random") -> tuple[sp.csc_matrix, dict]:
    """SLIM with every column solved over its `candidates` most co-occurring items only; no I x I array.

    Why this is safe: with X >= 0 and w >= 0, an item k that never co-occurs with j (G_kj = 0) gets
    tmp = -(G w)_kj <= 0 in every coordinate update, so w_kj = 0 in the full problem too. Restricting to
    the items with G_kj > 0 is exact; keeping only the top-`candidates` of them is the approximation (it
    changes nothing for a column with fewer co-occurring items). Columns are solved `block` at a time in
    JAX; memory O(block * candidates^2 + I * block). Returns (W: scipy CSC [I, I], <= topk per column, info).
    """
    # Local import: neighbors imports this module.
    from humanai_jax.recsys.neighbors import top_per_column_sparse

    x_csc = sp.csc_matrix(x, dtype=np.float32)
    n_users, n_items = x_csc.shape
    c = min(candidates, n_items - 1)
    block = min(block, n_items)
    l1, l2 = alpha * l1_ratio * n_users, alpha * (1.0 - l1_ratio) * n_users
    key = jax.random.PRNGKey(seed)
    rows, cols, vals, sweeps, truncated = [], [], [], [], 0
    for start in range(0, n_items, block):
        items = np.arange(start, min(start + block, n_items))
        g = sp.csc_matrix(x_csc.T @ x_csc[:, items]).tocoo()  # [I, b] sparse: the co-occurring items only
        diag = g.row == items[g.col]
        y_norm2 = np.zeros(len(items), np.float32)
        y_norm2[g.col[diag]] = g.data[diag]
        g = sp.csc_matrix((g.data[~diag], (g.row[~diag], g.col[~diag])), shape=g.shape)  # j never explains j
        truncated += int(np.sum(np.diff(g.indptr) > c))
        cand, q = top_per_column_sparse(g, c)  # [c, b]
        cand, q = cand.T, q.T  # [b, c]
        valid = q > 0
        key, sub = jax.random.split(key)
        pad = block - len(items)  # the last block is padded with inactive columns (y = 0): one compile
        padded = [np.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)) for a in
                  (candidate_grams(x_csc, cand), q, y_norm2, valid)]
        w, n_iter = solve_restricted(*map(jnp.asarray, padded), l1, l2, sub, max_iter=max_iter, tol=tol,
                                     selection=selection)
        w = np.asarray(w)[: len(items)]
        sweeps.append(np.asarray(n_iter)[: len(items)])
        nnz = np.sum(w > 0, 1)
        keep_n = np.minimum(nnz - 1, topk) if faithful_topk else np.minimum(nnz, topk)
        order = np.argsort(-w, axis=1, kind="stable")[:, :topk]
        for r, j in enumerate(items):
            top = order[r, : max(int(keep_n[r]), 0)]
            rows.append(cand[r, top])
            cols.append(np.full(len(top), j))
            vals.append(w[r, top])
    w_sparse = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(n_items, n_items), dtype=np.float32)
    sweeps = np.concatenate(sweeps)
    info = {"nnz": int(w_sparse.nnz), "sweeps_mean": float(sweeps.mean()), "sweeps_max": int(sweeps.max()),
            "empty_columns": int(np.sum(np.diff(w_sparse.indptr) == 0)), "candidates": c,
            "columns_with_more_cooccurring_items_than_candidates": truncated}
    return w_sparse, info
