"""Scope-mask cross-entropy vs a brute-force masked CE built from the reference trie, and the
SOI/EOI token + embedding initialisation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from humanai_jax.backbone import ModelConfig, init_params
from humanai_jax.decoding import build_item_trie
from humanai_jax.methods.reclm import add_item_tokens, resize_for_item_tokens, scope_masked_cross_entropy, span_nodes
from humanai_jax.methods.reclm.tokens import phrase_ids

V, SOI, EOI = 40, 38, 39


def _catalogue(n=60, seed=0):
    rng = np.random.default_rng(seed)
    heads = [list(rng.integers(1, 12, size=rng.integers(1, 3))) for _ in range(6)]  # shared prefixes
    titles = set()
    while len(titles) < n:
        titles.add(tuple(heads[rng.integers(6)] + list(rng.integers(1, 36, size=rng.integers(0, 4)))))
    return [list(t) for t in sorted(titles)]


def _next_tokens(titles, prefix):
    """Reference `Trie_link.next_tokens([SOI] + prefix)` by brute force; None if off the trie."""
    paths = [tuple(t) + (EOI,) for t in titles]
    d = len(prefix)
    kids = {p[d] for p in paths if len(p) > d and p[:d] == tuple(prefix)}
    return sorted(kids) if kids else None


def _targets(titles, b=4, t=48, seed=1):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(b):
        row = []
        while len(row) < t:
            if rng.random() < 0.5:
                item = titles[rng.integers(len(titles))] if rng.random() < 0.9 else [36, 37, 1]  # last: off-trie
                row += [SOI] + list(item) + [EOI]
            else:
                row += list(rng.integers(0, 36, size=rng.integers(1, 4)))
        rows.append(row[:t])
    targets = np.asarray(rows, np.int32)
    targets[0, :3] = -100  # ignored (prompt) positions
    return targets


def _brute_force_ce(logits, targets, titles, scope_mask_eoi):
    """-inf-masked logits + CE, the mask from the reference `get_scope_mask` (type 3) walk."""
    ce = np.zeros(targets.shape, np.float64)
    for b in range(targets.shape[0]):
        start = None
        for t, tok in enumerate(targets[b]):
            z = logits[b, t].astype(np.float64)
            scope = None
            if start is not None and (tok != EOI or scope_mask_eoi):
                scope = _next_tokens(titles, targets[b, start + 1: t].tolist())
                if scope is not None and tok not in scope:
                    scope = None
            if tok == SOI and start is None:
                start = t
            elif tok == EOI and start is not None:
                start = None
            if tok < 0:
                continue
            if scope is not None:
                masked = np.full_like(z, -np.inf)
                masked[scope] = z[scope]
                z = masked
            ce[b, t] = np.logaddexp.reduce(z) - z[tok]
    return ce


@pytest.mark.parametrize("scope_mask_eoi", [False, True])
def test_scope_masked_ce_matches_brute_force(scope_mask_eoi):
    titles = _catalogue()
    trie = build_item_trie(titles, soi_id=SOI, eoi_id=EOI, vocab_size=V, window=2)
    assert trie.num_heavy > 1
    targets = _targets(titles)
    logits = np.random.default_rng(2).normal(size=targets.shape + (V,)).astype(np.float32) * 3
    nodes = span_nodes(targets, trie, scope_mask_eoi=scope_mask_eoi)
    assert (nodes >= 0).sum() > 40
    single_child = [n for n in nodes.ravel() if n >= 0 and len(trie.children_tokens(n)) == 1]
    assert single_child  # positions whose scope is one token (CE 0) are covered
    ours = jax.jit(scope_masked_cross_entropy)(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(nodes), trie.to_device())
    expect = _brute_force_ce(logits, targets, titles, scope_mask_eoi)
    np.testing.assert_allclose(np.asarray(ours), expect, atol=2e-5, rtol=1e-5)


def test_scope_masked_ce_on_an_explicit_vocab_sharded_mesh():
    """fsdp x tensor Explicit mesh, logits sharded on batch and vocabulary: the loss and its gradient
    equal the brute force and keep the logits' sharding (no gather over the sharded V)."""
    from jax.sharding import NamedSharding, PartitionSpec as P

    from humanai_jax.sharding import make_mesh

    titles = _catalogue()
    trie = build_item_trie(titles, soi_id=SOI, eoi_id=EOI, vocab_size=V, window=2)
    targets = _targets(titles)
    logits = np.random.default_rng(2).normal(size=targets.shape + (V,)).astype(np.float32) * 3
    nodes = span_nodes(targets, trie)
    mesh = make_mesh({"data": 1, "fsdp": 2, "tensor": 2}, axis_type="explicit")
    with jax.set_mesh(mesh):
        z = jax.device_put(jnp.asarray(logits), NamedSharding(mesh, P("fsdp", None, "tensor")))
        rows = NamedSharding(mesh, P("fsdp", None))
        t, n = jax.device_put(jnp.asarray(targets), rows), jax.device_put(jnp.asarray(nodes), rows)
        loss = lambda z: scope_masked_cross_entropy(z, t, n, trie.to_device())
        ours, grad = jax.jit(loss)(z), jax.jit(jax.grad(lambda z: loss(z).sum()))(z)
        assert grad.sharding.spec == P("fsdp", None, "tensor")
    np.testing.assert_allclose(np.asarray(ours), _brute_force_ce(logits, targets, titles, False), atol=2e-5, rtol=1e-5)
    single = jax.grad(lambda z: scope_masked_cross_entropy(z, jnp.asarray(targets), jnp.asarray(nodes),
                                                           trie.to_device()).sum())(jnp.asarray(logits))
    np.testing.assert_allclose(np.asarray(grad), np.asarray(single), atol=1e-6)


def test_scope_masked_ce_gradient_matches_brute_force():
    titles = _catalogue()
    trie = build_item_trie(titles, soi_id=SOI, eoi_id=EOI, vocab_size=V, window=2).to_device()
    targets = _targets(titles, b=2, t=24, seed=4)
    nodes = jnp.asarray(span_nodes(targets, trie))
    logits = jnp.asarray(np.random.default_rng(5).normal(size=targets.shape + (V,)), jnp.float32)

    def brute(z):  # dense masked CE, the mask rebuilt from the same nodes via the dense children rows
        rows = []
        for b in range(targets.shape[0]):
            for t in range(targets.shape[1]):
                n = int(nodes[b, t])
                keep = np.ones(V, bool) if n < 0 else np.isin(np.arange(V), trie.to_host().children_tokens(n))
                rows.append(keep)
        keep = jnp.asarray(np.stack(rows).reshape(targets.shape + (V,)))
        lse = jax.nn.logsumexp(jnp.where(keep, z, -jnp.inf), -1)
        zt = jnp.take_along_axis(z, jnp.maximum(jnp.asarray(targets), 0)[..., None], -1)[..., 0]
        return jnp.sum(jnp.where(jnp.asarray(targets) >= 0, lse - zt, 0.0))

    ours = jax.grad(lambda z: scope_masked_cross_entropy(z, jnp.asarray(targets), nodes, trie).sum())(logits)
    ref = jax.grad(brute)(logits)
    assert np.isfinite(np.asarray(ours)).all()
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), atol=1e-6)


# ----------------------------------------------------------------------------- control tokens
@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    text = ["start of an item", "end of an item", "the river king of paris", "an item list with items"] * 20
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(text, trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>")


@pytest.mark.parametrize("output_init", ["reference_resize", "mean_phrase", "tied"])
def test_resize_initialises_control_rows_as_the_reference(tokenizer, output_init):
    import copy

    tok = copy.deepcopy(tokenizer)
    old_v = len(tok)
    soi, eoi = add_item_tokens(tok)
    assert (soi, eoi) == (old_v, old_v + 1) and len(tok) == old_v + 2
    river = tok.convert_tokens_to_ids("river")
    assert tok("x <SOI> river <EOI>", add_special_tokens=False)["input_ids"][-3:] == [soi, river, eoi]
    config = ModelConfig.small(vocab_size=old_v, d_model=16, n_layers=1, n_heads=2, tie_embeddings=False)
    params = init_params(config, jax.random.key(0))
    new_config, new = resize_for_item_tokens(params, config, tok, output_init=output_init, rng=jax.random.key(1))
    assert new_config.vocab_size == old_v + 2
    assert new["embed"].shape == (old_v + 2, 16) and new["lm_head"].shape == (16, old_v + 2)
    np.testing.assert_array_equal(new["embed"][:old_v], params["embed"])
    np.testing.assert_array_equal(new["lm_head"][:, :old_v], params["lm_head"])
    s_ids = [tok.convert_tokens_to_ids(w) for w in "start of an item".split()]
    e_ids = [tok.convert_tokens_to_ids(w) for w in "end of an item".split()]
    assert phrase_ids(tok, "start of an item") == s_ids
    np.testing.assert_allclose(new["embed"][soi], np.mean(np.asarray(params["embed"])[s_ids], 0), rtol=1e-6)
    np.testing.assert_allclose(new["embed"][eoi], np.mean(np.asarray(params["embed"])[e_ids], 0), rtol=1e-6)
    head = np.asarray(new["lm_head"])
    if output_init == "mean_phrase":
        np.testing.assert_allclose(head[:, soi], np.asarray(params["lm_head"])[:, s_ids].mean(1), rtol=1e-6)
    elif output_init == "tied":
        np.testing.assert_array_equal(head[:, eoi], np.asarray(new["embed"])[eoi])
    else:
        assert 0 < np.std(head[:, old_v:]) < 3 * config.initializer_range


def test_resize_never_shrinks_a_larger_embedding(tokenizer):
    import copy

    tok = copy.deepcopy(tokenizer)
    soi, eoi = add_item_tokens(tok)
    config = ModelConfig.small(vocab_size=len(tok) + 30, d_model=8, n_layers=1, n_heads=2)  # Qwen2.5-like
    params = init_params(config, jax.random.key(0))
    new_config, new = resize_for_item_tokens(params, config, tok)
    assert new_config.vocab_size == config.vocab_size and new["embed"].shape == params["embed"].shape
    s_ids = phrase_ids(tok, "start of an item")
    np.testing.assert_allclose(new["embed"][soi], np.asarray(params["embed"])[s_ids].mean(0), rtol=1e-6)
    with pytest.raises(ValueError, match="unknown output_init"):
        resize_for_item_tokens(params, config, tok, output_init="zeros")
    with pytest.raises(ValueError, match="add_item_tokens"):
        resize_for_item_tokens(params, config, copy.deepcopy(tokenizer))
