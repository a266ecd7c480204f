"""Evaluators chosen by name from `config.evals` (in the style of big_vision's `evaluators` config).

    config.evals = ml_collections.ConfigDict({
        "heldout": {"type": "lm_loss", "every": 200},
        "mc": {"type": "multiple_choice_accuracy", "every": 1000, "match": "letter", "max_tokens": 8},
    })
    evaluators = build_evaluators(config.evals, loss_fn=..., eval_batches=..., backend_fn=..., items=...)
    for ev in evaluators:
        trainer.add_hook(ev, every=ev.every)          # ev(step, params) -> {"heldout/loss": ..., ...}

Each entry is `{type, every, <options>}`: `type` names a registered evaluator (`@register("name")`), `every`
is its period in steps (0: only when called explicitly, e.g. after training), the other keys are the
evaluator's options; an unknown type or option raises an error listing the valid ones. What cannot live
in a config (loss functions, batches, items, backends) is passed as keyword context to
`build_evaluators`; a context key equal to an evaluator's name holding a dict overrides the shared
context for that evaluator only (two `multiple_choice_accuracy` evaluators on different items).

An evaluator evaluates either params (`lm_loss`: a function over params) or a chat model
(`multiple_choice_accuracy`, `llm_judge`: a `humanai_jax.agents.ChatBackend`, given directly or made
from params by the context's `backend_fn(params)`). `ev(step, params)` returns a flat dict of floats
named `<name>/<metric>`, ready for metrics.jsonl and TensorBoard.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

from humanai_jax.agents import GenConfig
from humanai_jax.eval import stats
from humanai_jax.eval.judge import Judgment, Rubric, aggregate, judge as run_judge

__all__ = ["Evaluator", "register", "registered", "build_evaluators", "run_evaluators", "LMLoss",
           "MultipleChoiceAccuracy", "LLMJudge"]

_REGISTRY: dict[str, type[Evaluator]] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: makes `type: name` in `config.evals` build this evaluator."""
    def deco(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"evaluator type {name!r} is already registered ({_REGISTRY[name].__name__})")
        _REGISTRY[name] = cls
        cls.type_name = name
        return cls
    return deco


def registered() -> list[str]:
    return sorted(_REGISTRY)


def _plain(spec) -> dict:
    return dict(spec.to_dict() if hasattr(spec, "to_dict") else spec)


class Evaluator:
    """Base class. Subclasses set `defaults` (their options with default values) and `needs` (the context
    keys they require), and implement `evaluate(target) -> dict` (un-prefixed metric names)."""

    type_name: ClassVar[str] = ""
    defaults: ClassVar[dict] = {}
    needs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, every: int, context: Mapping[str, Any], **options):
        self.name, self.every, self.context = name, int(every), dict(context)
        self.options = {**self.defaults, **options}

    def evaluate(self, target) -> dict:
        raise NotImplementedError

    def __call__(self, step: int, params) -> dict:
        """The hook: evaluates `params` at `step`; `{<name>/<metric>: float}`."""
        return {f"{self.name}/{k}": v for k, v in self.evaluate(params).items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, every={self.every}, options={self.options})"


def build_evaluators(evals, **context) -> list[Evaluator]:
    """Evaluators from `config.evals` (`{name: {type, every, ...}}`, a ConfigDict or dict), in config
    order; `context` holds what each needs (see the module docstring)."""
    if evals is None:
        return []
    out = []
    for name, spec in _plain(evals).items():
        spec = _plain(spec)
        if "type" not in spec:
            raise ValueError(f"evals.{name} has no 'type'; registered evaluator types: {registered()}")
        kind = spec.pop("type")
        if kind not in _REGISTRY:
            raise ValueError(f"evals.{name}: unknown evaluator type {kind!r}; registered: {registered()}")
        cls = _REGISTRY[kind]
        every = spec.pop("every", 0)
        if not isinstance(every, (int, np.integer)) or every < 0:
            raise ValueError(f"evals.{name}.every must be an integer >= 0 (0 = only when called), got {every!r}")
        unknown = sorted(set(spec) - set(cls.defaults))
        if unknown:
            raise ValueError(f"evals.{name} ({kind}): unknown option(s) {unknown}; valid: "
                             f"{sorted(['type', 'every', *cls.defaults])}")
        ctx = {k: v for k, v in context.items() if not (k in _plain(evals) and isinstance(v, Mapping))}
        if isinstance(context.get(name), Mapping):
            ctx.update(context[name])
        missing = [k for k in cls.needs if k not in ctx]
        if missing:
            raise ValueError(f"evals.{name} ({kind}) needs context {missing}: pass them to build_evaluators")
        out.append(cls(name, every, ctx, **spec))
    return out


def run_evaluators(evaluators: Iterable[Evaluator], step: int, params, *, only_due: bool = True) -> dict:
    """Runs the evaluators due at `step` (`every > 0 and step % every == 0`; all with `only_due=False`)."""
    metrics = {}
    for ev in evaluators:
        if not only_due or (ev.every > 0 and step % ev.every == 0):
            metrics.update(ev(step, params))
    return metrics


# --------------------------------------------------------------------------------------------------
# Over params


@register("lm_loss")
class LMLoss(Evaluator):
    """Held-out loss of a function over params: `loss_fn(params, batch)` returns `(loss_sum, weight)`
    (e.g. summed next-token NLL and the number of target tokens; the result is their ratio over all
    batches) or a scalar mean (averaged over batches). `eval_batches` is a sequence of batches or a
    callable returning a fresh iterable. An empty eval set raises (it would report loss 0 / perplexity 1).

    Metrics: `loss`, `perplexity` (exp of the loss), `weight` (tokens or batches counted).
    Option `max_batches` (0 = all).
    """

    defaults = {"max_batches": 0}
    needs = ("loss_fn", "eval_batches")

    def evaluate(self, params) -> dict:
        batches = self.context["eval_batches"]
        batches = batches() if callable(batches) else batches
        total, weight, n = 0.0, 0.0, 0
        for batch in batches:
            if self.options["max_batches"] and n >= self.options["max_batches"]:
                break
            out = self.context["loss_fn"](params, batch)
            if isinstance(out, (tuple, list)):
                total += float(out[0])
                weight += float(out[1])
            else:
                total += float(out)
                weight += 1.0
            n += 1
        if n == 0 or weight <= 0:
            raise ValueError(f"evaluator {self.name!r}: the eval set gave no batches/tokens; a smaller-than-one-batch "
                             "eval split must be padded or refused, never reported as loss 0")
        loss = total / weight
        return {"loss": loss, "perplexity": float(math.exp(min(loss, 80.0))), "weight": weight}


# --------------------------------------------------------------------------------------------------
# Over a chat model


def _backend_of(target, context):
    if hasattr(target, "chat_batch"):
        return target
    if "backend_fn" in context:
        return context["backend_fn"](target)
    if "backend" in context:
        return context["backend"]
    raise ValueError("a chat evaluator needs a ChatBackend: pass one, or `backend_fn(params)` / `backend` in context")


def _gen_cfg(options) -> GenConfig:
    return GenConfig(temperature=float(options["temperature"]), max_tokens=int(options["max_tokens"]),
                     seed=int(options["seed"]))


_LETTER = re.compile(r"\b([A-Z])\b")


def choice_of(reply: str, choices: list[str] | None, match: str) -> str | None:
    """The choice a reply names: `letter` (the first standalone capital letter among the choices' letters
    A, B, ...), `exact` (the reply equals a choice, case and surrounding space ignored) or `contains`
    (the first choice whose text occurs in the reply, case ignored)."""
    text = reply.strip()
    if match == "letter":
        letters = [chr(ord("A") + i) for i in range(len(choices))] if choices else None
        for m in _LETTER.finditer(text):
            if letters is None or m.group(1) in letters:
                return m.group(1)
        return None
    if match == "exact":
        return next((c for c in (choices or []) if c.strip().lower() == text.lower()), text)
    if match == "contains":
        return next((c for c in (choices or []) if c.strip().lower() in text.lower()), None)
    raise ValueError(f"unknown match {match!r}; valid: letter, exact, contains")


@register("multiple_choice_accuracy")
class MultipleChoiceAccuracy(Evaluator):
    """Accuracy of a chat model on multiple-choice items, with the exact (Clopper-Pearson) CI.

    Context `items`: `{messages, answer, choices?}` (`answer`: the correct letter for `match="letter"`,
    else the correct choice text). Options: `match` (letter | exact | contains), decoding (`temperature`,
    `max_tokens`, `seed`), `level` of the CI, `chance` (default 1/len(choices) when every item has the
    same number of choices; the one-sided exact binomial p-value against it is reported).
    Metrics: `accuracy`, `n`, `hits`, `ci_low`, `ci_high`, `answered` (share of replies naming a choice),
    and `chance`, `p_value_vs_chance` when a chance rate is known.
    """

    defaults = {"match": "letter", "temperature": 0.0, "max_tokens": 16, "seed": 0, "level": 0.95, "chance": 0.0,
                "tag": ""}
    needs = ("items",)

    def evaluate(self, target) -> dict:
        items = list(self.context["items"])
        if not items:
            raise ValueError(f"evaluator {self.name!r}: no items")
        backend = _backend_of(target, self.context)
        tag = self.options["tag"] or f"eval.{self.name}"
        results = backend.chat_batch([it["messages"] for it in items], _gen_cfg(self.options),
                                     tags=[tag] * len(items))
        hits, answered = [], 0
        for it, res in zip(items, results):
            if not res.ok:
                raise RuntimeError(f"evaluator {self.name!r}: backend error: {res.error}")
            got = choice_of(res.text, it.get("choices"), self.options["match"])
            answered += got is not None
            hits.append(got is not None and got.strip().lower() == str(it["answer"]).strip().lower())
        chance = self.options["chance"] or None
        sizes = {len(it["choices"]) for it in items if it.get("choices")}
        if chance is None and len(sizes) == 1 and all(it.get("choices") for it in items):
            chance = 1.0 / sizes.pop()
        acc = stats.accuracy_with_ci(hits, level=self.options["level"], chance=chance)
        ci = acc.pop(f"ci{round(self.options['level'] * 100)}")
        out = {"accuracy": acc["accuracy"], "n": float(acc["n"]), "hits": float(acc["hits"]),
               "ci_low": ci[0], "ci_high": ci[1], "answered": answered / len(items)}
        if chance is not None:
            out.update(chance=chance, p_value_vs_chance=acc["p_value_vs_chance"])
        return out


@register("llm_judge")
class LLMJudge(Evaluator):
    """A chat model's replies scored by an LLM judge (`humanai_jax.eval.judge`).

    Context: `items` (`{messages, group?, <template fields>}`), `judge_backend` (the judge's ChatBackend),
    `rubric` (a `humanai_jax.eval.judge.Rubric`, whose template receives the item's fields plus
    `generation`, the evaluated model's reply). Options: decoding of the evaluated model (`temperature`,
    `max_tokens`, `seed`), `judge_max_tokens`, `max_attempts` (judge repair turns).
    Metrics: the mean of every rubric dimension over scored items, `n`, `failed`, `pass_rate` (the
    rubric's keep rule over all items, failures count as not passed) with its exact CI.
    """

    defaults = {"temperature": 0.0, "max_tokens": 256, "seed": 0, "judge_max_tokens": 1024, "max_attempts": 3,
                "level": 0.95}
    needs = ("items", "judge_backend", "rubric")

    def evaluate(self, target) -> dict:
        items = list(self.context["items"])
        if not items:
            raise ValueError(f"evaluator {self.name!r}: no items")
        backend = _backend_of(target, self.context)
        results = backend.chat_batch([it["messages"] for it in items], _gen_cfg(self.options),
                                     tags=[f"eval.{self.name}"] * len(items))
        rubric: Rubric = self.context["rubric"]
        ok = [i for i, res in enumerate(results) if res.ok]
        fields = [{**{k: v for k, v in items[i].items() if k not in ("messages", "group")},
                   "generation": results[i].text} for i in ok]
        scored = run_judge(self.context["judge_backend"], rubric, fields,
                                 cfg=GenConfig(temperature=0.0, max_tokens=int(self.options["judge_max_tokens"])),
                                 max_attempts=int(self.options["max_attempts"]), tag=f"eval.{self.name}.judge")
        judgments = [Judgment(None, f"generation: {res.error}", False) for res in results]
        for i, j in zip(ok, scored):  # a failed generation is a failed judgment, never dropped
            judgments[i] = j
        summary = aggregate(judgments, rubric.dimensions)["all"]
        passed = [j.passed for j in judgments]
        lo, hi = stats.binomial_ci(sum(passed), len(passed), self.options["level"])
        out = {d: summary[d] for d in rubric.dimensions if summary[d] is not None}
        out.update(n=float(summary["n"]), failed=float(summary["failed"]), pass_rate=sum(passed) / len(passed),
                   pass_ci_low=lo, pass_ci_high=hi)
        return out
