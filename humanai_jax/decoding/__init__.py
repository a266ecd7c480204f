"""Decoding: a jitted KV-cache engine, pure sampling functions, tokenizer glue, and on-device
catalogue constraints (RecLM-cgen) and retrieval-forced spans (RecLM-ret). See docs/decoding.md."""

from humanai_jax.decoding.constraint import ItemConstraint, ItemConstraintState
from humanai_jax.decoding.engine import (
    DecodeState,
    decode_step,
    generate,
    generate_stream,
    prefill,
    prepare_batch,
)
from humanai_jax.decoding.forcing import ForcingState, Retriever
from humanai_jax.decoding.sampling import greedy, select_tokens, top_k_keep, top_p_keep
from humanai_jax.decoding.trie import ItemTrie, build_item_trie

__all__ = [
    "DecodeState",
    "ForcingState",
    "ItemConstraint",
    "ItemConstraintState",
    "ItemTrie",
    "Retriever",
    "build_item_trie",
    "decode_step",
    "generate",
    "generate_stream",
    "greedy",
    "prefill",
    "prepare_batch",
    "select_tokens",
    "top_k_keep",
    "top_p_keep",
]
