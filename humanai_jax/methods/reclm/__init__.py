"""RecLM (Liao et al., arXiv 2505.03336): constrained generative recommendation.

cgen: the catalogue constraint (`humanai_jax.decoding.ItemConstraint`) and the scope-mask loss;
ret: the item projection head and the retrieval hook of the decode loop. See docs/decoding.md.
Training and evaluation (docs/reclm.md): `data` (readers, filtering, split, samples), `encode` (tokenizer,
chat rows), `train` (losses, optimizer, TrainTask), `evaluate` (decoding, parsing, metrics).
"""

from humanai_jax.methods.reclm.retrieval import init_item_proj, item_proj, item_scores, item_token_table, make_retriever
from humanai_jax.methods.reclm.scope_loss import scope_masked_cross_entropy, span_nodes
from humanai_jax.methods.reclm.tokens import add_item_tokens, resize_for_item_tokens

__all__ = [
    "add_item_tokens",
    "init_item_proj",
    "item_proj",
    "item_scores",
    "item_token_table",
    "make_retriever",
    "resize_for_item_tokens",
    "scope_masked_cross_entropy",
    "span_nodes",
]
