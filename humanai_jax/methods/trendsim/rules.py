"""A transparent rule-based policy as a `ChatBackend`: it answers TrendSim's prompts by reading them, so the
simulator's dynamics and metrics can be studied without an LLM (and every rule is written down here).

Randomness: a reply's uniform draw is `u = sha256(seed | cfg.seed | tag | prompt)` mapped to [0, 1) -
deterministic, so record/replay and re-runs match, and two agents in different states draw differently.
The lexicon (`prompts/rules.json`) has four categories: pos, neg, hostile, distrust.

A page is split into texts: every non-empty line of the view except bare headers (`【热门评论】`) and `-`
(the post's title / intro / content lines and each shown comment or reply). A text is positive when its pos
hits exceed its neg + hostile + distrust hits, negative when they fall short, and "hostile" when it has any
hostile or distrust hit. The state rules act on these shares, so a step's effect grows with the share of
attacker-like texts on the page (exposure), bounded per step.

Rules by tag (the call's `tag`):
  perceive        "读完感觉：共k条内容，正面p条，负面n条，带敌意或质疑h条。<mood>" (text counts of the page)
  decide.Entry    enter with probability 0.55 + 0.4 e (e = emotion read from the role block)
  decide.Main     weights like 0.3e, comment 0.15c (c = social confidence), repost 0.08e, more 0.12,
                  open 0.2 (0 when the page shows no comment), leave 0.25 + 0.2(1 - e)
  decide.Comment  like 0.45 if the comment is not negative else 0.15, reply 0.2c, back otherwise
  act.comment / act.reply   a template comment by mood: e < 0.4 negative, e > 0.6 positive, else neutral
  act.open        one of the positions shown on the page, uniformly
  reflect.memory / opinion  a fixed sentence by mood (no lexicon words, so states do not echo themselves)
  reflect.emotion     e' = clip(e + 0.1 (p - n) / k + r (0.5 - e), 0, 1) as an integer percentage
  reflect.confidence  c' = clip(c + 0.05 p / k - 0.1 h / k + r (0.5 - c), 0, 1) as an integer percentage
                      (r = `recovery`, default 0: no homeostasis; memory / opinion use the same e')
  moderate        "1" when the comment has >= `flag_threshold` (default 2) neg + hostile + distrust hits
  attacker.<X>    the prompt's style line (the drawn prototype) prefixed by a short topical lead-in
`invalid_rate` > 0 makes a decision reply "嗯" (no digit) with that probability, to exercise the fallbacks.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence

from humanai_jax.agents import ChatResult, GenConfig, apply_stop
from humanai_jax.agents.backend import validate_messages
from humanai_jax.methods.trendsim.agents import PACKAGE

_VIEW = re.compile(r"-----\n(.*?)\n-----", re.DOTALL)
_POSITIONS = re.compile(r"^\[(\d+)\]", re.MULTILINE)


def load_rules() -> dict:
    import importlib.resources

    return json.loads(importlib.resources.files(PACKAGE).joinpath("prompts", "rules.json").read_text("utf-8"))


def lexicon_counts(text: str, lexicon: dict[str, list[str]]) -> dict[str, int]:
    """Occurrences of each category's words in `text` (every occurrence counts)."""
    lowered = text.lower()
    return {cat: sum(lowered.count(w.lower()) for w in words) for cat, words in lexicon.items()}


MAIN_HEADER = {"zh": "【热门评论】", "en": "[Top comments]"}  # only Main views list comments under this header


def page_tone(trace_path: str, lang: str = "zh") -> dict:
    """Tone of the Main pages normal users perceived, read back from a rule-policy run's trace: the mean over
    `trendsim.user.perceive` calls on Main views (only normal users perceive) of `(neg - pos) / texts` and
    `hostile / texts`, from the policy's impression "k texts, p positive, n negative, h hostile" (the quantities
    its reflection rules act on). None when there is no such call; a perception in another format raises."""
    pattern = re.compile(load_rules()[lang]["impression_pattern"])
    negativity, hostility = [], []
    with open(trace_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if '"trendsim.user.perceive"' not in line:
                continue
            call = json.loads(line)
            if call.get("type") != "llm_call" or MAIN_HEADER[lang] not in call["messages"][-1]["content"]:
                continue
            m = pattern.search(call["response"][0] if call["response"] else "")
            if not m:
                raise ValueError(f"{trace_path}:{lineno}: perception is not a rule-policy impression")
            total, pos, neg, hostile = (int(x) for x in m.groups())
            negativity.append((neg - pos) / max(total, 1))
            hostility.append(hostile / max(total, 1))
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return {"main_page_negativity": mean(negativity), "main_page_hostility": mean(hostility),
            "main_page_perceptions": len(negativity)}


def mood_of(value: float) -> str:
    return "neg" if value < 0.4 else ("pos" if value > 0.6 else "neu")


class RulePolicyBackend:
    """A ChatBackend whose replies follow the rules in the module docstring."""

    def __init__(self, *, lang: str = "zh", seed: int = 0, flag_threshold: int = 2, invalid_rate: float = 0.0,
                 recovery: float = 0.0):
        rules = load_rules()
        self.rules, self.rules_dynamics = rules[lang], rules["dynamics"]
        if not 0.0 <= recovery <= 1.0:
            raise ValueError(f"recovery must be in [0, 1], got {recovery}")
        self.lang, self.seed, self.flag_threshold, self.invalid_rate = lang, seed, flag_threshold, invalid_rate
        self.recovery = recovery
        digest = hashlib.sha256(json.dumps([rules, flag_threshold, invalid_rate, recovery],
                                           sort_keys=True).encode()).hexdigest()
        self.name = f"rules:{lang}:{digest[:8]}"  # changes whenever a rule parameter does
        self.n_batches = 0
        self.n_calls = 0

    # -- helpers
    def _u(self, tag: str, prompt: str, cfg: GenConfig, salt: str = "") -> float:
        h = hashlib.sha256(f"{self.seed}|{cfg.seed}|{tag}|{salt}|{prompt}".encode()).digest()
        return int.from_bytes(h[:8], "little") / 2.0 ** 64

    def _field(self, key: str, prompt: str, default: float = 0.5) -> float:
        m = re.search(self.rules[key], prompt)
        return float(m.group(1)) if m else default

    def _impression_counts(self, prompt: str) -> tuple[int, int, int, int]:
        """(total, pos, neg, hostile) from the last rule-made impression in the prompt (zeros if none)."""
        found = re.findall(self.rules["impression_pattern"], prompt)
        return tuple(int(x) for x in found[-1]) if found else (0, 0, 0, 0)

    def text_counts(self, view: str) -> dict[str, int]:
        """{total, pos, neg, hostile}: texts of the page by sign (see the module docstring)."""
        header = re.compile(self.rules["header"])
        texts = [t.strip() for t in view.split("\n")]
        texts = [t for t in texts if t and t != "-" and not header.match(t)]
        out = {"total": len(texts), "pos": 0, "neg": 0, "hostile": 0}
        for t in texts:
            k = lexicon_counts(t, self.rules["lexicon"])
            bad = k["neg"] + k["hostile"] + k["distrust"]
            out["pos"] += k["pos"] > bad
            out["neg"] += k["pos"] < bad
            out["hostile"] += k["hostile"] + k["distrust"] > 0
        return out

    def _pick(self, weights: dict[str, float], u: float) -> str:
        total = sum(weights.values())
        acc = 0.0
        for key, w in weights.items():
            acc += w / total
            if u < acc:
                return key
        return key

    # -- the policy
    def reply(self, tag: str, prompt: str, cfg: GenConfig) -> str:
        u = self._u(tag, prompt, cfg)
        e, c = self._field("emotion_field", prompt), self._field("confidence_field", prompt)
        view_m = _VIEW.search(prompt)
        view = view_m.group(1) if view_m else ""
        if tag == "trendsim.user.perceive":
            k = self.text_counts(view)
            score = k["pos"] - k["neg"]
            mood = self.rules["moods"]["pos" if score > 0 else ("neg" if score < 0 else "neu")]
            return self.rules["impression"].format(mood=mood, **k)
        if tag.startswith("trendsim.user.decide."):
            if self.invalid_rate and self._u(tag, prompt, cfg, "invalid") < self.invalid_rate:
                return "嗯" if self.lang == "zh" else "hmm"
            state = tag.rsplit(".", 1)[1]
            if state == "Entry":
                return "0" if u < 0.55 + 0.4 * e else "1"
            if state == "Main":
                has_comments = bool(_POSITIONS.search(view))
                w = {"0": 0.3 * e, "1": 0.15 * c, "2": 0.08 * e, "3": 0.12, "4": 0.2 if has_comments else 0.0,
                     "5": 0.25 + 0.2 * (1 - e)}
                return self._pick(w, u)
            positive = self.text_counts(view)["neg"] == 0
            w = {"0": 0.45 if positive else 0.15, "1": 0.2 * c}
            w["2"] = max(1.0 - sum(w.values()), 0.0)
            return self._pick(w, u)
        if tag in ("trendsim.user.act.comment", "trendsim.user.act.reply"):
            options = self.rules["comments"][mood_of(e)]
            return options[int(u * len(options))]
        if tag == "trendsim.user.act.open_comment":
            positions = _POSITIONS.findall(view)
            return positions[int(u * len(positions))] if positions else "0"
        if tag.startswith("trendsim.user.reflect."):
            total, p, n, h = self._impression_counts(prompt)
            dyn = self.rules_dynamics
            back = self.recovery  # optional homeostasis: a share of the gap to 0.5 closes every step
            e2 = e + dyn["emotion_rate"] * (p - n) / max(total, 1) + back * (0.5 - e)
            c2 = c + (dyn["confidence_gain"] * p - dyn["confidence_loss"] * h) / max(total, 1) + back * (0.5 - c)
            e2, c2 = min(max(e2, 0.0), 1.0), min(max(c2, 0.0), 1.0)
            kind = tag.rsplit(".", 1)[1]
            if kind in ("memory", "opinion"):
                return self.rules[kind][mood_of(e2)]
            return str(round(100 * (e2 if kind == "emotion" else c2)))
        if tag == "trendsim.moderate":
            k = lexicon_counts(prompt.split("\n", 1)[1] if "\n" in prompt else prompt, self.rules["lexicon"])
            return "1" if k["neg"] + k["hostile"] + k["distrust"] >= self.flag_threshold else "0"
        if tag.startswith("trendsim.attacker."):
            m = re.search(self.rules["style_field"], prompt)
            lead = "看了这条，" if self.lang == "zh" else "Reading this: "
            return lead + (m.group(1).strip() if m else "")
        raise ValueError(f"RulePolicyBackend: no rule for tag {tag!r}")

    # -- ChatBackend
    def chat(self, messages, cfg: GenConfig, *, tag: str = "") -> ChatResult:
        validate_messages(messages)
        start = time.perf_counter()
        text, _ = apply_stop(self.reply(tag, messages[-1]["content"], cfg), cfg.stop)
        self.n_calls += 1
        return ChatResult([text] * cfg.n, ["stop"] * cfg.n, None, time.perf_counter() - start)

    def chat_batch(self, batch: Sequence, cfg: GenConfig, *, tags=None) -> list[ChatResult]:
        tags = list(tags) if tags is not None else [""] * len(batch)
        if len(tags) != len(batch):
            raise ValueError(f"tags has {len(tags)} entries, batch has {len(batch)}")
        self.n_batches += 1
        out = []
        for messages, tag in zip(batch, tags):
            try:
                out.append(self.chat(messages, cfg, tag=tag))
            except Exception as e:  # noqa: BLE001 - one failure must not drop the others; it is reported
                out.append(ChatResult(texts=[], finish_reasons=[], error=f"{type(e).__name__}: {e}"))
        return out
