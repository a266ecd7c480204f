"""Text data for language-model training: a generated corpus, a locally trained tokenizer and a
deterministic batch iterator whose order is a pure function of (seed, step); and the project's one JSONL
reader/writer (`jsonl.py`)."""

from humanai_jax.data.batches import TokenWindows, tokenize_documents
from humanai_jax.data.corpus import generate_corpus, read_text_corpus
from humanai_jax.data.jsonl import JsonlError, iter_jsonl, read_jsonl, write_jsonl
from humanai_jax.data.tokenizer import load_tokenizer, train_tokenizer

__all__ = [
    "generate_corpus",
    "read_text_corpus",
    "train_tokenizer",
    "load_tokenizer",
    "TokenWindows",
    "tokenize_documents",
    "JsonlError",
    "iter_jsonl",
    "read_jsonl",
    "write_jsonl",
]
