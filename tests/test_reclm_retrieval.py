"""RecLM-ret hook: the in-loop forced spans equal a reference loop that re-runs the model on the
whole sequence after each retrieval (the RecAI `SFT_Embedding_generate` scheme)."""

import jax
import jax.numpy as jnp
import numpy as np

from humanai_jax.backbone import ModelConfig, forward, init_params
from humanai_jax.decoding import generate
from humanai_jax.methods.reclm import init_item_proj, item_scores, make_retriever

V, SOI, EOI, STOP = 48, 46, 47, 1
TITLES = [[3, 4], [3, 4, 5], [3, 9, 9, 2], [8], [10, 11, 12], [20, 21], [22], [30, 31, 32, 33], [7, 3]]


def _model():
    config = ModelConfig.small(vocab_size=V, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, tie_embeddings=False)
    params = init_params(config, jax.random.key(0))
    k1, k2 = jax.random.split(jax.random.key(1))
    params["embed"] = jax.random.normal(k1, params["embed"].shape).at[:, 0].add(3.0)
    head = 0.3 * jax.random.normal(k2, params["lm_head"].shape)
    params["lm_head"] = head.at[0, SOI].set(1.5)  # rows mix free text and several <SOI>s
    return config, params


def _reference(params, config, proj, items, prompt, n, fwd, width=128):
    """Greedy with a full forward per token (no cache). On <SOI>: score items from the hidden state
    that predicted it, drop items already picked, append title + <EOI>."""
    seq, out, picked = list(prompt), [], []
    while len(out) < n:
        padded = jnp.asarray([seq + [0] * (width - len(seq))], jnp.int32)  # causal: right pad is inert
        logits, hidden = fwd(params, padded)
        tok = int(jnp.argmax(logits[0, len(seq) - 1]))
        new = [tok]
        if tok == SOI:
            scores = np.array(item_scores({"proj": proj, "items": items}, hidden[:, len(seq) - 1]))[0]
            scores[picked] = -np.inf
            picked.append(int(np.argmax(scores)))
            new += TITLES[picked[-1]] + [EOI]
        seq += new
        out += new
    return out[:n]


def test_forced_spans_equal_reprefill_reference():
    config, params = _model()
    proj = init_item_proj(jax.random.key(2), config.d_model, hidden=64, out=16)
    items = jax.random.normal(jax.random.key(3), (len(TITLES), 16))
    retriever = make_retriever(proj, items, TITLES, soi_id=SOI, eoi_id=EOI, max_items=8)
    prompts = [[5, 6, 7], [2, 40, 41, 42, 43, 12], [9]]
    n = 40
    toks, lens, state = generate(params, config, prompts, max_new_tokens=n, retriever=retriever, return_state=True)
    n_spans = 0
    fwd = jax.jit(lambda p, s: forward(p, s, config, return_hidden=True))
    for prompt, row in zip(prompts, toks):
        ref = _reference(params, config, proj, items, prompt, n, fwd)
        np.testing.assert_array_equal(row, ref)
        spans = [i for i, t in enumerate(row.tolist()) if t == SOI]
        n_spans += len(spans)
    assert n_spans >= 6  # the hook fired several times per reply
    picked = np.asarray(state.forcing.picked)[: len(prompts)]
    for row in picked:  # no item twice within a reply
        row = row[row >= 0]
        assert len(set(row.tolist())) == len(row)
