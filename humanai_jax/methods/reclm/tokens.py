"""RecLM control tokens `<SOI>` / `<EOI>`: tokenizer entries and embedding rows.

Reference (RecAI `RecLM-cgen/train_utils/model.py` `resize_init_embedding`): the tokens are added
as additional special tokens, the embeddings are resized to `len(tokenizer)`, and each new *input*
row is the mean input embedding of `tokenizer.tokenize(description)` ("start of an item" for SOI,
"end of an item" for EOI). New *output* rows of an untied head keep whatever the resize gave them
(transformers 4.36 `_init_weights`: normal(0, initializer_range)); `output_init` chooses:

* "reference_resize": normal(0, initializer_range) (the reference, needs `rng`);
* "mean_phrase": the mean of the head columns of the same phrase tokens;
* "tied": a copy of the new input rows.

If the model already has more rows than the tokenizer (Qwen2.5: 151,936 > len(tokenizer)) the new
ids fall inside existing rows: we never shrink, we initialise those rows.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from humanai_jax.backbone.config import ModelConfig

SOI, EOI = "<SOI>", "<EOI>"
DESCRIPTIONS = {SOI: "start of an item", EOI: "end of an item"}
OUTPUT_INITS = ("reference_resize", "mean_phrase", "tied")


def add_item_tokens(tokenizer) -> tuple[int, int]:
    """Adds `<SOI>`, `<EOI>` as special tokens (kept when already present); returns their ids."""
    tokenizer.add_special_tokens({"extra_special_tokens": [SOI, EOI]}, replace_extra_special_tokens=False)
    soi, eoi = tokenizer.convert_tokens_to_ids(SOI), tokenizer.convert_tokens_to_ids(EOI)
    if soi == tokenizer.unk_token_id or eoi == tokenizer.unk_token_id or soi is None or eoi is None:
        raise ValueError("adding <SOI>/<EOI> to the tokenizer failed")
    return int(soi), int(eoi)


def phrase_ids(tokenizer, phrase: str) -> list[int]:
    """`convert_tokens_to_ids(tokenize(phrase))`, as the reference (no BOS)."""
    ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(phrase))
    if not ids:
        raise ValueError(f"{phrase!r} tokenizes to nothing")
    return [int(i) for i in ids]


def resize_for_item_tokens(
    params,
    config: ModelConfig,
    tokenizer,
    *,
    output_init: str = "reference_resize",
    rng: jax.Array | None = None,
):
    """Grows `embed [V, D]` (and `lm_head [D, V]`) to `max(V, len(tokenizer))` rows and initialises
    the SOI/EOI rows as the reference. Returns (new_config, new_params). Call `add_item_tokens` first."""
    if output_init not in OUTPUT_INITS:
        raise ValueError(f"unknown output_init {output_init!r}; choose one of {OUTPUT_INITS}")
    if output_init == "reference_resize" and not config.tie_embeddings and rng is None:
        raise ValueError("output_init='reference_resize' draws new head rows and needs an rng")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (SOI, EOI)}
    if any(i is None or i == tokenizer.unk_token_id for i in ids.values()):
        raise ValueError("the tokenizer has no <SOI>/<EOI>: call add_item_tokens(tokenizer) first")
    old_v = config.vocab_size
    new_v = max(old_v, len(tokenizer))
    params = dict(params)
    embed = params["embed"]
    embed = jnp.concatenate([embed, jnp.zeros((new_v - old_v, embed.shape[1]), embed.dtype)])
    head = params.get("lm_head")
    if head is not None:
        if output_init == "reference_resize":
            fresh = config.initializer_range * jax.random.normal(rng, (head.shape[0], new_v - old_v), jnp.float32)
        else:
            fresh = jnp.zeros((head.shape[0], new_v - old_v), head.dtype)
        head = jnp.concatenate([head, fresh.astype(head.dtype)], axis=1)
    for i, (token, new_id) in enumerate(ids.items()):
        phrase = phrase_ids(tokenizer, DESCRIPTIONS[token])
        embed = embed.at[new_id].set(jnp.mean(embed[jnp.asarray(phrase)], axis=0))
        if head is not None:
            if output_init == "mean_phrase":
                head = head.at[:, new_id].set(jnp.mean(head[:, jnp.asarray(phrase)], axis=1))
            elif output_init == "tied":
                head = head.at[:, new_id].set(embed[new_id])
            elif new_id < old_v:  # reference_resize inside existing rows: draw them too
                key = jax.random.fold_in(rng, i)
                head = head.at[:, new_id].set(
                    (config.initializer_range * jax.random.normal(key, (head.shape[0],))).astype(head.dtype)
                )
    params["embed"] = embed
    if head is not None:
        params["lm_head"] = head
    return dataclasses.replace(config, vocab_size=new_v), params
