"""Text data for language-model training: a generated corpus, a locally trained tokenizer and a
deterministic batch iterator whose order is a pure function of (seed, step)."""

from humanai_jax.data.corpus import generate_corpus, read_text_corpus
from humanai_jax.data.tokenizer import load_tokenizer, train_tokenizer
from humanai_jax.data.batches import TokenWindows, tokenize_documents

__all__ = [
    "generate_corpus",
    "read_text_corpus",
    "train_tokenizer",
    "load_tokenizer",
    "TokenWindows",
    "tokenize_documents",
]
