"""Loaders for the published preference sets PLUS evaluates on (users download them; docs/plus.md §6.4, §6.5).

UF-P-2 / UF-P-4: VPL's `add_survey_contexts.py` output, one folder per user type holding
`{train,test}.jsonl`; user types `8` helpfulness, `4` honesty, `2` instruction_following, `1` truthfulness.
UF-P-2 uses types 8 and 4; UF-P-4 all four. Every user type is seen in training (new topics at test).

PRISM: `conversations.jsonl` of `HannahRoseKirk/prism-alignment`. PLUS's preprocessing is unverified;
our construction is documented in `prism_examples`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from humanai_jax.methods.plus.data import JsonlReader, Pair, PlusExample, summarizer_messages
from humanai_jax.methods.plus.pets import vpl_row_to_example

UF_USER_TYPES = {"8": "helpfulness", "4": "honesty", "2": "instruction_following", "1": "truthfulness"}
UF_VARIANTS = {"uf_p_2": ("8", "4"), "uf_p_4": ("8", "4", "2", "1")}


def load_vpl_file(path: str, *, user_type: str | None, split: str) -> list[PlusExample]:
    """Reads one VPL-format JSONL file (Pets or UF-P) with format validation (errors name file:line)."""
    reader = JsonlReader(path)
    examples = []
    for line, record in reader:
        reader.require(line, record, ["prompt", "chosen", "rejected"])
        reader.require(line, record, ["contexts"], kind=list)
        if not record["contexts"]:
            raise reader.error(line, "'contexts' is empty: every row needs at least one context pair")
        for i, context in enumerate(record["contexts"]):
            if not isinstance(context, dict) or not {"chosen", "rejected"} <= set(context):
                raise reader.error(line, f"contexts[{i}] must be an object with 'chosen' and 'rejected'")
        if "context_length" in record and record["context_length"] != len(record["contexts"]):
            raise reader.error(
                line, f"context_length={record['context_length']} but {len(record['contexts'])} contexts present"
            )
        try:
            examples.append(vpl_row_to_example(record, user_type=user_type, split=split))
        except ValueError as e:
            raise reader.error(line, str(e)) from None
    return examples


def load_uf_p(root: str, variant: str, split: str) -> list[PlusExample]:
    """UF-P-2 (`variant="uf_p_2"`) or UF-P-4 (`"uf_p_4"`) examples of one split from `root/<type>/<split>.jsonl`."""
    if variant not in UF_VARIANTS:
        raise ValueError(f"Unknown UltraFeedback-P variant {variant!r}; expected one of {sorted(UF_VARIANTS)}")
    if split not in ("train", "test"):
        raise ValueError(f"Unknown split {split!r}; expected 'train' or 'test'")
    examples = []
    for type_id in UF_VARIANTS[variant]:
        path = os.path.join(root, type_id, f"{split}.jsonl")
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{path} is missing: {variant} expects folders {list(UF_VARIANTS[variant])} under {root}, "
                "as written by VPL's add_survey_contexts.py"
            )
        examples += load_vpl_file(path, user_type=UF_USER_TYPES[type_id], split=split)
    return examples


# ----------------------------------------------------------------------------- PRISM


def _prism_pairs(reader: JsonlReader, line: int, record: dict) -> list[Pair]:
    """Per turn with >= 2 rated model responses: chosen = `if_chosen`, rejected = the lowest-scored other.
    The prompt holds the earlier turns (user text and the chosen model reply) with User:/Assistant: markers."""
    reader.require(line, record, ["user_id", "conversation_id"], kind=None)
    reader.require(line, record, ["conversation_history"], kind=list)
    turns: dict[int, dict] = {}
    for i, utterance in enumerate(record["conversation_history"]):
        if not isinstance(utterance, dict) or not {"turn", "role", "content"} <= set(utterance):
            raise reader.error(line, f"conversation_history[{i}] needs 'turn', 'role' and 'content'")
        slot = turns.setdefault(int(utterance["turn"]), {"user": None, "model": []})
        if utterance["role"] == "user":
            slot["user"] = utterance["content"]
        elif utterance["role"] == "model":
            if "score" not in utterance or "if_chosen" not in utterance:
                raise reader.error(line, f"conversation_history[{i}] (model) needs 'score' and 'if_chosen'")
            slot["model"].append(utterance)
        else:
            raise reader.error(line, f"conversation_history[{i}] has unknown role {utterance['role']!r}")
    pairs, history = [], ""
    for turn in sorted(turns):
        slot = turns[turn]
        if slot["user"] is None:
            raise reader.error(line, f"turn {turn} has no user utterance")
        chosen = [m for m in slot["model"] if m["if_chosen"]]
        others = sorted((m for m in slot["model"] if not m["if_chosen"]), key=lambda m: m["score"])
        # The RM template's summary prefix opens the first user turn, so turn 0 carries no marker.
        prompt = history + (f"User: {slot['user']}" if history else slot["user"])
        if chosen and others and chosen[0]["score"] > others[0]["score"]:
            pairs.append(Pair(prompt, chosen[0]["content"], others[0]["content"]))
        if chosen:
            history = prompt + f"\n\nAssistant: {chosen[0]['content']}\n\n"
    return pairs


def prism_examples(
    conversations_path: str,
    *,
    unseen_fraction: float = 0.2,
    max_context: int = 8,
    seed: int = 0,
) -> dict[str, list[PlusExample]]:
    """PRISM as PLUS examples (our construction; PLUS's own split is unverified).

    Users are split by a seeded permutation: `unseen_fraction` of them appear only at test
    (`seen_user=False`). For every user, each conversation's first strict-preference pair is a target
    whose context is up to `max_context` pairs from the user's other conversations. Seen users'
    last conversation is held out for test; the rest are train. Returns {"train": [...], "test": [...]}.
    """
    reader = JsonlReader(conversations_path)
    by_user: dict[str, list[list[Pair]]] = {}
    for line, record in reader:
        pairs = _prism_pairs(reader, line, record)
        if pairs:
            by_user.setdefault(str(record["user_id"]), []).append(pairs)
    users = sorted(u for u, convs in by_user.items() if len(convs) >= 2)
    order = np.random.RandomState(seed).permutation(len(users))
    num_unseen = int(round(unseen_fraction * len(users)))
    unseen = {users[i] for i in order[:num_unseen]}
    out = {"train": [], "test": []}
    for user in users:
        conversations = by_user[user]
        for index, pairs in enumerate(conversations):
            context = [p for j, conv in enumerate(conversations) if j != index for p in conv][:max_context]
            is_unseen = user in unseen
            split = "test" if is_unseen or index == len(conversations) - 1 else "train"
            target = pairs[0]
            out[split].append(
                PlusExample(
                    context_messages=summarizer_messages(context),
                    reward=target,
                    train=target,
                    eval=target,
                    context_pairs=tuple(context),
                    user_type=user,
                    split=split,
                    seen_user=not is_unseen,
                )
            )
    return out


def seen_unseen(examples: Sequence[PlusExample]) -> dict[str, list[PlusExample]]:
    """Groups evaluation examples into the two reported populations (docs/plus.md §7)."""
    return {
        "seen": [ex for ex in examples if ex.seen_user and not ex.ood],
        "unseen": [ex for ex in examples if not ex.seen_user or ex.ood],
    }
