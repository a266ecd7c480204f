"""RecLM-ret inference pieces: the item projection head and the decode-loop retriever.

Reference (RecAI `RecLM-cgen/train_utils/model.py`): `actor_item_proj` = Linear(D, 2048) -> GELU
(exact) -> Linear(2048, 1024), PyTorch default init; scores = proj(h) @ item_emb.T with raw dot
products, where h is the post-final-norm hidden state that predicted `<SOI>`. At inference the top
item not yet recommended in the reply is appended as `title + <EOI>`.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from humanai_jax.decoding.forcing import Retriever


def _torch_linear_init(rng, fan_in: int, fan_out: int) -> dict:
    """nn.Linear default: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / np.sqrt(fan_in)
    kw, kb = jax.random.split(rng)
    return {
        "w": jax.random.uniform(kw, (fan_in, fan_out), jnp.float32, -bound, bound),
        "b": jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound),
    }


def init_item_proj(rng, d_model: int, hidden: int = 2048, out: int = 1024) -> dict:
    """Parameters of `actor_item_proj`: {"fc1": {"w" [D, hidden], "b"}, "fc2": {"w" [hidden, out], "b"}}."""
    k1, k2 = jax.random.split(rng)
    return {"fc1": _torch_linear_init(k1, d_model, hidden), "fc2": _torch_linear_init(k2, hidden, out)}


def item_proj(params: dict, hidden: jax.Array) -> jax.Array:
    """`hidden [..., D]` -> query `[..., out]`."""
    h = hidden.astype(jnp.float32) @ params["fc1"]["w"] + params["fc1"]["b"]
    h = jax.nn.gelu(h, approximate=False)
    return h @ params["fc2"]["w"] + params["fc2"]["b"]


def item_scores(params: dict, hidden: jax.Array) -> jax.Array:
    """`params = {"proj": item_proj params, "items": [I, E]}`; `hidden [B, D]` -> `[B, I]` raw dots."""
    return item_proj(params["proj"], hidden) @ params["items"].astype(jnp.float32).T


def item_token_table(titles: Sequence[Sequence[int]], eoi_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Per item `title_ids + [EOI]`, padded: (`tokens [I, Lmax+1]` int32, `lengths [I]` int32)."""
    if not titles:
        raise ValueError("the catalogue is empty")
    width = max(len(t) for t in titles) + 1
    tokens = np.zeros((len(titles), width), np.int32)
    lengths = np.zeros((len(titles),), np.int32)
    for i, t in enumerate(titles):
        if not t:
            raise ValueError(f"item {i} has an empty title")
        tokens[i, : len(t) + 1] = list(t) + [eoi_id]
        lengths[i] = len(t) + 1
    return tokens, lengths


def make_retriever(
    proj_params: dict, item_emb, titles: Sequence[Sequence[int]], *, soi_id: int, eoi_id: int, max_items: int = 32
) -> Retriever:
    """The `generate(..., retriever=...)` hook for RecLM-ret: on `<SOI>`, force the best new item's
    title tokens and `<EOI>`."""
    tokens, lengths = item_token_table(titles, eoi_id)
    if np.shape(item_emb)[0] != len(titles):
        raise ValueError(f"item_emb has {np.shape(item_emb)[0]} rows but there are {len(titles)} titles")
    return Retriever(
        params={"proj": proj_params, "items": jnp.asarray(item_emb)},
        item_tokens=jnp.asarray(tokens),
        item_lens=jnp.asarray(lengths),
        score_fn=item_scores,
        trigger_id=int(soi_id),
        max_items=int(max_items),
    )
