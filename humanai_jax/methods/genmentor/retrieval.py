"""Offline lexical retrieval for GenMentor with `rank-bm25` (BM25Okapi, k1 = 1.5, b = 0.75): the drafter's
external resources (docs/genmentor.md §2.7: the reference searches the web and embeds with all-mpnet-base-v2; ours is
BM25 over a local folder of .md/.txt documents, chunked) and the taxonomy baseline of the goal-to-skill model.

Tokeniser (docs/agents.md §5, English): lowercase, split on non-alphanumerics, a small stop-word list.
Ties break by document order (stable sort), so results are deterministic.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np

__all__ = ["tokenize", "BM25Index", "load_documents", "chunk_text"]

STOP = frozenset("a an and are as at be by for from has have in into is it its of on or that the this to was "
                 "were will with i want become learn my me how".split())


def tokenize(text: str) -> list[str]:
    return [t for t in re.split(r"[^0-9a-z]+", text.lower()) if t and t not in STOP]


class BM25Index:
    """BM25 over `texts` (one string per document); `search(query, k)` -> [(doc index, score)], best first."""

    def __init__(self, texts: Sequence[str]):
        from rank_bm25 import BM25Okapi

        if not texts:
            raise ValueError("BM25Index needs at least one document")
        self.texts = list(texts)
        self.bm25 = BM25Okapi([tokenize(t) or ["<empty>"] for t in self.texts])

    def scores(self, query: str) -> np.ndarray:
        return np.asarray(self.bm25.get_scores(tokenize(query)), dtype=np.float64)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        s = self.scores(query)
        order = np.argsort(-s, kind="stable")[:k]
        return [(int(i), float(s[i])) for i in order]


def chunk_text(text: str, size: int = 1000) -> list[str]:
    """Consecutive chunks of at most `size` characters (overlap 0, as the reference), cut at whitespace."""
    chunks, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.rfind(" ", start, end)
            end = cut if cut > start else end
        piece = text[start:end].strip()
        if piece:
            chunks.append(piece)
        start = end
    return chunks


def load_documents(folder: str, chunk_size: int = 1000) -> list[dict]:
    """`[{id: "file#k", text}]` chunks of every .md / .txt file under `folder` (sorted paths)."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"retrieval folder {folder!r} does not exist")
    docs = []
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            if not name.endswith((".md", ".txt")):
                continue
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as f:
                for k, chunk in enumerate(chunk_text(f.read(), chunk_size)):
                    docs.append({"id": f"{os.path.relpath(path, folder)}#{k}", "text": chunk})
    if not docs:
        raise ValueError(f"no .md/.txt text under {folder!r}")
    return docs
