"""`humanai_jax.eval`: evaluators built by name from `config.evals`, and the LLM judge core."""

import math

import ml_collections
import numpy as np
import pytest

from humanai_jax.agents import ScriptedBackend
from humanai_jax.eval import (
    Evaluator,
    Rubric,
    aggregate,
    build_evaluators,
    judge,
    load_rubrics,
    parse_scores,
    register,
    registered,
    run_evaluators,
    stats,
)


def _evals(**entries):
    return ml_collections.ConfigDict(entries)


def test_unknown_type_and_option_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown evaluator type 'nope'.*'lm_loss'.*'multiple_choice_accuracy'"):
        build_evaluators(_evals(x={"type": "nope", "every": 1}))
    with pytest.raises(ValueError, match=r"evals.x \(lm_loss\): unknown option\(s\) \['batches'\]; valid: .*max_batches"):
        build_evaluators(_evals(x={"type": "lm_loss", "every": 1, "batches": 3}), loss_fn=None, eval_batches=[])
    with pytest.raises(ValueError, match=r"has no 'type'"):
        build_evaluators(_evals(x={"every": 1}))
    with pytest.raises(ValueError, match=r"needs context \['eval_batches'\]"):
        build_evaluators(_evals(x={"type": "lm_loss", "every": 1}), loss_fn=lambda p, b: 0.0)
    with pytest.raises(ValueError, match="every must be an integer"):
        build_evaluators(_evals(x={"type": "lm_loss", "every": -1}), loss_fn=None, eval_batches=[])
    assert build_evaluators(None) == []
    assert {"lm_loss", "multiple_choice_accuracy", "llm_judge"} <= set(registered())


def test_lm_loss_is_token_weighted_and_a_hook():
    batches = [np.array([1.0, 2.0, 3.0]), np.array([4.0])]
    loss_fn = lambda params, b: (params * b.sum(), b.size)  # noqa: E731
    (ev,) = build_evaluators(_evals(heldout={"type": "lm_loss", "every": 5}), loss_fn=loss_fn,
                             eval_batches=lambda: iter(batches))
    assert ev.every == 5 and ev.name == "heldout"
    out = ev(10, 0.5)  # (0.5 * 6 + 0.5 * 4) / 4 tokens
    assert out == {"heldout/loss": pytest.approx(1.25), "heldout/perplexity": pytest.approx(math.exp(1.25)),
                   "heldout/weight": 4.0}
    assert run_evaluators([ev], 7, 0.5) == {} and run_evaluators([ev], 15, 0.5)["heldout/loss"] == 1.25
    # a scalar loss is averaged over batches; max_batches caps them
    (ev2,) = build_evaluators(_evals(m={"type": "lm_loss", "every": 0, "max_batches": 1}),
                              loss_fn=lambda p, b: float(b.mean()), eval_batches=batches)
    assert ev2(0, None)["m/loss"] == 2.0 and run_evaluators([ev2], 100, None) == {}


def test_lm_loss_refuses_an_empty_eval_set():
    (ev,) = build_evaluators(_evals(e={"type": "lm_loss", "every": 1}), loss_fn=lambda p, b: (0.0, 0),
                             eval_batches=[])
    with pytest.raises(ValueError, match="no batches"):
        ev(1, None)


def _mc_items():
    q = lambda i: [{"role": "user", "content": f"question {i}"}]  # noqa: E731
    return [{"messages": q(i), "choices": ["x", "y", "z", "w"], "answer": "ABCD"[i % 4]} for i in range(8)]


def test_multiple_choice_accuracy_over_a_chat_backend_with_exact_ci():
    replies = {f"question {i}": r for i, r in enumerate(["A", "The answer is B.", "D", "(D)", "A", "I think C", "?",
                                                           "E"])}
    backend = ScriptedBackend([(r"eval\.mc", None, lambda m: replies[m[-1]["content"]])])
    made = []

    def backend_fn(params):
        made.append(params)
        return backend

    (ev,) = build_evaluators(_evals(mc={"type": "multiple_choice_accuracy", "every": 100}), items=_mc_items(),
                             backend_fn=backend_fn)
    out = ev(100, "PARAMS")
    assert made == ["PARAMS"]
    # hits: 0 (A), 1 (B), 3 (D), 4 (A); 2 says D and 5 says C ("I" is not a choice letter): wrong;
    # 6 ("?") and 7 ("E", not a choice) name no choice
    assert out["mc/hits"] == 4 and out["mc/n"] == 8 and out["mc/accuracy"] == 0.5
    assert [out["mc/ci_low"], out["mc/ci_high"]] == pytest.approx(list(stats.binomial_ci(4, 8)))
    assert out["mc/chance"] == 0.25 and out["mc/answered"] == 6 / 8
    assert out["mc/p_value_vs_chance"] == pytest.approx(stats.binomial_test(4, 8, 0.25))
    # a ChatBackend can be evaluated directly (an API model, no params)
    assert ev.evaluate(backend)["accuracy"] == 0.5
    assert all(c.cfg.temperature == 0.0 for c in backend.calls)


def test_per_evaluator_context_overrides_the_shared_one():
    backend = ScriptedBackend([(r"eval\..*", None, "A")])
    evals = _evals(a={"type": "multiple_choice_accuracy", "every": 1},
                   b={"type": "multiple_choice_accuracy", "every": 2, "match": "exact"})
    items_b = [{"messages": [{"role": "user", "content": "q"}], "choices": ["A", "no"], "answer": "A"}]
    a, b = build_evaluators(evals, backend=backend, items=_mc_items(), b={"items": items_b})
    assert a(1, None)["a/accuracy"] == 2 / 8 and b(2, None)["b/accuracy"] == 1.0


def test_custom_evaluator_registers_by_name():
    @register("constant_for_test")
    class Constant(Evaluator):
        defaults = {"value": 1.0}

        def evaluate(self, target):
            return {"value": self.options["value"]}

    (ev,) = build_evaluators({"c": {"type": "constant_for_test", "every": 3, "value": 2.5}})
    assert ev(3, None) == {"c/value": 2.5}
    with pytest.raises(ValueError, match="already registered"):
        register("lm_loss")(Constant)


TEMPLATE = "Task: $prompt\nReal: $reference\nModel: $generation\nScore:\n$dimensions\nOutput: $dimension_tags"


def test_rubric_render_parse_and_rules():
    rub = Rubric.from_dict("ft", {"dimensions": ["fidelity", "overall"], "thresholds": {"overall": 7}},
                           template=TEMPLATE, dimension_text={"fidelity": "matches the content"})
    text = rub.render(prompt="p", reference="r", generation="g")
    assert "- fidelity: matches the content\n- overall: overall" in text
    assert text.endswith("<fidelity>N</fidelity><overall>N</overall>")
    with pytest.raises(KeyError, match="reference"):
        rub.render(prompt="p", generation="g")
    assert rub.parse("<fidelity> 8 </fidelity><overall>7</overall><extra>1</extra>") == {"fidelity": 8, "overall": 7}
    with pytest.raises(ValueError, match=r"missing scores for \['overall'\]"):
        rub.parse("<fidelity>8</fidelity>")
    with pytest.raises(ValueError, match="out of range"):
        rub.parse("<fidelity>11</fidelity><overall>7</overall>")
    assert rub.passes({"fidelity": 1, "overall": 7}) and not rub.passes({"fidelity": 9, "overall": 6})
    assert not rub.passes({}) and not rub.passes(None)
    assert parse_scores("<a>1</a><a>3</a><b>x</b>") == {"a": 3}
    with pytest.raises(ValueError, match="unknown keys"):
        Rubric.from_dict("x", {"dimensions": ["a"], "thresold": {}})
    rubrics = load_rubrics({"dimension_text": {"a": "A!"}, "artifacts": {"r1": {"dimensions": ["a"], "instruction": "I"}}},
                           template="$instruction $dimensions")
    assert rubrics["r1"].render() == "I - a: A!"


def test_judge_counts_failures_and_aggregates_per_group():
    rub = Rubric("ft", ("fidelity", "overall"), template=TEMPLATE)
    replies = {"q0": "<fidelity>8</fidelity><overall>6</overall>", "q1": "<fidelity>4</fidelity><overall>2</overall>",
               "q2": "no scores"}
    backend = ScriptedBackend([(r"judge\.ft", None, lambda m: replies[m[0]["content"].split("\n")[0][6:]])])
    items = [{"prompt": f"q{i}", "reference": "r", "generation": "g"} for i in range(3)]
    js = judge(backend, rub, items, max_attempts=2)
    assert [j.error is None for j in js] == [True, True, False] and js[2].error.startswith("parse:")
    assert [j.passed for j in js] == [True, True, False]
    assert len(backend.calls) == 4  # one repair turn for the unparsable reply
    assert aggregate(js, rub.dimensions, ["a", "a", "b"]) == {
        "a": {"n": 2, "failed": 0, "fidelity": 6.0, "overall": 4.0},
        "b": {"n": 0, "failed": 1, "fidelity": None, "overall": None}}


def test_llm_judge_evaluator():
    model = ScriptedBackend([(r"eval\.j$", None, lambda m: "gen " + m[-1]["content"])])
    judge_backend = ScriptedBackend([(r"eval\.j\.judge", None,
                                      lambda m: "<fidelity>9</fidelity><overall>8</overall>" if "gen q0" in m[0]["content"]
                                      else "<fidelity>5</fidelity><overall>4</overall>")])
    rub = Rubric("ft", ("fidelity", "overall"), template=TEMPLATE, thresholds={"overall": 7})
    items = [{"messages": [{"role": "user", "content": f"q{i}"}], "prompt": f"q{i}", "reference": "r"} for i in range(2)]
    (ev,) = build_evaluators(_evals(j={"type": "llm_judge", "every": 10}), items=items, judge_backend=judge_backend,
                             rubric=rub, backend=model)
    out = ev(10, None)
    assert out["j/fidelity"] == 7.0 and out["j/overall"] == 6.0 and out["j/n"] == 2 and out["j/failed"] == 0
    assert out["j/pass_rate"] == 0.5
    assert [out["j/pass_ci_low"], out["j/pass_ci_high"]] == pytest.approx(list(stats.binomial_ci(1, 2)))
