"""PLUS examples and prompt rendering (docs/plus.md §2, §6.1) as pure string functions.

A `PlusExample` is one (user context, new prompt, chosen, rejected) item. The summarizer reads
`context_messages`; the reward model reads the summary-conditioned chat of `reward_chat`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from typing import Any

from humanai_jax.data.jsonl import JsonlError, JsonlReader as CoreJsonlReader, write_jsonl

SUMMARY_MARKER = "##Summary"
SUMMARY_INSTRUCTION = (
    "Summarize the preferences of this user from the conversations above. Do not focus on the topics of "
    "specific conversations. Keep your summary concise—under 50 words. Start your response with ##Summary"
)
RM_PREFIX = (
    "User: Here is the summary of my preferences based on previous conversations: {summary} "
    "In the following conversation, keep this in mind to personalize your response.\n\n"
)
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class Pair:
    """A prompt (possibly multi-turn, written with `User:`/`Assistant:` markers) and two responses."""

    prompt: str
    chosen: str
    rejected: str

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class PlusExample:
    """One PLUS item (docs/plus.md §6.1 schema). `user_type` is for analysis only and never fed to a model."""

    context_messages: tuple[dict, ...]
    reward: Pair
    train: Pair
    eval: Pair | None
    context_pairs: tuple[Pair, ...] | None = None
    user_type: str | None = None
    split: str = "train"
    seen_user: bool = True
    ood: bool = False

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["context_messages"] = list(self.context_messages)
        return out


class FormatError(JsonlError):
    """A malformed record; the message names the file and line."""


class JsonlReader(CoreJsonlReader):
    """The core JSONL reader (`humanai_jax.data.jsonl`) raising `FormatError("path:line: ...")`."""

    def __init__(self, path: str):
        super().__init__(path, error=FormatError)


# ----------------------------------------------------------------------------- rendering


def render_context(pairs: Sequence[Pair]) -> str:
    """Renders labelled past conversations as text for the summarizer (and the in-context baseline)."""
    blocks = []
    for i, pair in enumerate(pairs, start=1):
        blocks.append(
            f"Conversation {i}:\n{pair.prompt}\nPreferred response: {pair.chosen}\nRejected response: {pair.rejected}"
        )
    return "\n\n".join(blocks)


def summarizer_messages(pairs: Sequence[Pair], instruction: str = SUMMARY_INSTRUCTION) -> tuple[dict, ...]:
    """The summarizer's chat input (§2.1): one user message ending with `Start your response with ##Summary`."""
    if not instruction.rstrip().endswith("Start your response with ##Summary"):
        raise ValueError("The summarizer instruction must end with 'Start your response with ##Summary' (docs/plus.md §2.1)")
    return ({"role": "user", "content": render_context(pairs) + "\n\n" + instruction},)


def extract_summary(decoded: str) -> str:
    """Spec §2.2: text after the LAST `##Summary`, stripped, with a leading `assistant` removed.

    `decoded` is prompt + completion decoded with special tokens skipped. When the model never writes
    `##Summary`, the last marker is the prompt's own and the role name the chat template left is removed.
    """
    _, marker, tail = decoded.rpartition(SUMMARY_MARKER)
    text = (tail if marker else decoded).strip()
    if text.startswith("assistant"):
        text = text[len("assistant") :].strip()
    return text


_TURN = re.compile(r"(User:|Assistant:)")


def split_turns(text: str) -> list[dict]:
    """Splits a string written with `User:` / `Assistant:` markers into chat messages (§2.3 step 2)."""
    parts = _TURN.split(text)
    messages = []
    if parts[0].strip():
        raise ValueError(f"Text before the first User:/Assistant: marker: {parts[0][:60]!r}")
    for marker, content in zip(parts[1::2], parts[2::2]):
        role = "user" if marker == "User:" else "assistant"
        messages.append({"role": role, "content": content.strip()})
    return messages


def reward_chat(summary: str | None, prompt: str, response: str) -> list[dict]:
    """The reward model's chat for one response (§2.3). `summary=None` drops the summary prefix (BTL)."""
    if summary is not None:
        text = RM_PREFIX.format(summary=summary) + prompt
    else:  # no summary: the prompt's first turn opens the chat (it may already carry a marker)
        text = prompt if _TURN.match(prompt) else "User: " + prompt
    return split_turns(text) + [{"role": "assistant", "content": response}]


def vpl_prompt_to_plus(prompt: str) -> str:
    """VPL/HH prompts write turns as `Human:`; the PLUS RM template splits on `User:` and its summary
    prefix already opens the first user turn, so the leading `Human:` is dropped (the first prompt
    turn joins the prefix's user turn) and later ones become `User:`."""
    prompt = re.sub(r"^(Human|User):\s*", "", prompt)
    return re.sub(r"\n\nHuman:", "\n\nUser:", prompt)


def split_vpl_pair(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Splits VPL strings `"Human: {prompt}\n\nAssistant: {response}"` sharing one prompt into
    `(prompt, chosen_response, rejected_response)`: the prompt ends at the last `\n\nAssistant: `
    inside the two strings' common prefix (so multi-turn prompts are kept whole)."""
    marker = "\n\nAssistant: "
    common = os.path.commonprefix([chosen, rejected])
    cut = common.rfind(marker)
    if cut < 0:
        raise ValueError("chosen and rejected do not share a prompt ending in '\\n\\nAssistant: '")
    head = cut + len(marker)
    return chosen[:cut], chosen[head:], rejected[head:]


def load_plus_jsonl(path: str, *, split: str, seen_user: bool = True, ood: bool = False) -> list[PlusExample]:
    """Loads the PLUS release format (§6.1): `context_messages`, `chosen`, `rejected`, `reward_prompt`,
    `train_prompt/chosen/rejected`, optional `eval_prompt/chosen/rejected`. Errors name file and line."""
    reader = JsonlReader(path)
    examples = []
    for line, record in reader:
        reader.require(line, record, ["context_messages"], kind=list)
        reader.require(line, record, ["chosen", "rejected", "reward_prompt", "train_prompt", "train_chosen", "train_rejected"])
        for i, message in enumerate(record["context_messages"]):
            if not isinstance(message, dict) or not {"role", "content"} <= set(message):
                raise reader.error(line, f"context_messages[{i}] must be an object with 'role' and 'content'")
        last = record["context_messages"][-1]["content"] if record["context_messages"] else ""
        if SUMMARY_MARKER not in last:
            raise reader.error(line, "the last context message must ask to 'Start your response with ##Summary'")
        has_eval = "eval_prompt" in record
        if has_eval:
            reader.require(line, record, ["eval_prompt", "eval_chosen", "eval_rejected"])
        examples.append(
            PlusExample(
                context_messages=tuple(record["context_messages"]),
                reward=Pair(record["reward_prompt"], record["chosen"], record["rejected"]),
                train=Pair(record["train_prompt"], record["train_chosen"], record["train_rejected"]),
                eval=Pair(record["eval_prompt"], record["eval_chosen"], record["eval_rejected"]) if has_eval else None,
                user_type=record.get("user_type"),
                split=split,
                seen_user=seen_user,
                ood=ood,
            )
        )
    return examples


def write_plus_jsonl(path: str, examples: Sequence[PlusExample]) -> None:
    """Writes examples in the PLUS release format read by `load_plus_jsonl`."""
    def record_of(ex: PlusExample) -> dict[str, Any]:
        record: dict[str, Any] = {
            "context_messages": list(ex.context_messages),
            "context": ex.context_messages[-1]["content"],
            "reward_prompt": ex.reward.prompt,
            "chosen": ex.reward.chosen,
            "rejected": ex.reward.rejected,
            "train_prompt": ex.train.prompt,
            "train_chosen": ex.train.chosen,
            "train_rejected": ex.train.rejected,
            "user_type": ex.user_type,
        }
        if ex.eval is not None:
            record.update(eval_prompt=ex.eval.prompt, eval_chosen=ex.eval.chosen, eval_rejected=ex.eval.rejected)
        return record

    write_jsonl(path, (record_of(ex) for ex in examples))
