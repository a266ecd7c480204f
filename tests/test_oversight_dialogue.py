"""Debate and sandwiching on ScriptedBackend: quote tagging, order swap, round visibility, fallbacks, and the
metric arithmetic against hand values."""

import json
import math

import pytest

from conftest import require_shared
from humanai_jax.agents.backend import ScriptedBackend
from humanai_jax.methods.oversight import debate, sandwich
from humanai_jax.methods.oversight.traces import TraceLog, read_events

CONTEXT = "Mia saved coins  for a year.\nShe bought a violin for her brother. He cried with joy."
ITEM = {"id": "x1", "question": "Why did Mia save?", "answers": ["To buy a gift", "To travel"], "correct": 0,
        "context": CONTEXT}


def test_tag_quotes_normalises_whitespace_and_counts():
    text = "See <quote>coins for a\nyear. She bought</quote> and <quote>she hated him</quote>."
    tagged, v, u = debate.tag_quotes(text, CONTEXT)
    assert (v, u) == (1, 1)
    assert "<v_quote>coins for a\nyear. She bought</v_quote>" in tagged and "<u_quote>she hated him</u_quote>" in tagged
    assert debate.tag_quotes("<quote> </quote>", CONTEXT)[1:] == (0, 1)  # an empty quote verifies nothing


def test_limit_words_closes_an_open_quote():
    assert debate.limit_words("one two <quote>three four five", 4) == ("one two <quote>three four</quote>", True)
    assert debate.limit_words(" a b ", 5) == ("a b", False)


def _debaters_and_biased_judge():
    def debater(messages):
        pos = 0 if "answer 0:" in messages[0]["content"] else 1
        rnd = messages[-1]["content"].rsplit("round ", 1)[1].strip(".")
        quote = "She bought a violin" if pos == 0 else "Mia loved Paris"
        return f"D{pos} round {rnd} says <quote>{quote}</quote>"

    return ScriptedBackend([(r"debate\.debater\d", None, debater),
                            (r"debate\.judge", None, json.dumps({"answer": 0, "p_correct_0": 0.8}))])


def test_debate_order_swap_rounds_and_tagged_transcript():
    backend = _debaters_and_biased_judge()
    trace = TraceLog(None, "debate")
    cfg = debate.DebateConfig(rounds=2, words=50, protocols=("debate",))
    recs = debate.run_all(backend, backend, [ITEM], cfg, trace)
    # a judge that always says "0" is right in exactly one of the two orders: position bias cancels
    assert [r["answer"] == r["correct_index"] for r in recs] == [True, False]
    assert debate.metrics_from_events(recs)["debate"]["accuracy"] == 0.5
    tags = [c.tag for c in backend.calls]
    assert tags == ["debate.debater0", "debate.debater1"] * 2 + ["debate.judge"] + \
        ["debate.debater0", "debate.debater1"] * 2 + ["debate.judge"]
    first_b, second_a = backend.calls[1].messages[-1]["content"], backend.calls[2].messages[-1]["content"]
    assert "D0 round 1" not in first_b  # round 1 is simultaneous
    assert "D0 round 1" in second_a and "D1 round 1" in second_a
    judge_user = backend.calls[4].messages[-1]["content"]
    assert "Mia" not in backend.calls[4].messages[0]["content"]  # the judge never sees the context
    assert judge_user.count("<v_quote>She bought a violin</v_quote>") == 2
    assert judge_user.count("<u_quote>Mia loved Paris</u_quote>") == 2
    assert "Answer 0: To travel" in backend.calls[9].messages[-1]["content"]  # order 1 shows swapped answers
    assert recs[0]["verified"] == 2 and recs[0]["unverified"] == 2
    backend.close()


def test_judge_falls_back_to_letter_extraction_after_capped_retries():
    backend = ScriptedBackend([(r"naive\.judge", None, ["I pick B.", "B, surely", "Still B"])])
    trace = TraceLog(None, "debate")
    rec = debate.run_single(backend, ITEM, 0, debate.DebateConfig(), trace, "naive")
    assert (rec["answer"], rec["p_correct_0"], rec["parsed"]) == (1, 0.0, False)
    assert len(backend.calls) == 3 and trace.records[-2]["parse_error"]
    backend.close()


def test_debate_metrics_hand_values():
    recs = [  # item a: right in both orders; item b: right once
        {"protocol": "debate", "item_id": "a", "order": 0, "correct_index": 0, "answer": 0, "p_correct_0": 0.9,
         "parsed": True, "verified": 2, "unverified": 0},
        {"protocol": "debate", "item_id": "a", "order": 1, "correct_index": 1, "answer": 1, "p_correct_0": 0.4,
         "parsed": True, "verified": 1, "unverified": 1},
        {"protocol": "debate", "item_id": "b", "order": 0, "correct_index": 1, "answer": 0, "p_correct_0": 0.7,
         "parsed": True, "verified": 0, "unverified": 2},
        {"protocol": "debate", "item_id": "b", "order": 1, "correct_index": 0, "answer": 0, "p_correct_0": 0.5,
         "parsed": False, "verified": 1, "unverified": 1},
        {"protocol": "consultancy", "item_id": "a", "order": 0, "correct_index": 0, "assigned": 0, "answer": 0,
         "p_correct_0": 0.6, "parsed": True, "verified": 1, "unverified": 0},
        {"protocol": "consultancy", "item_id": "a", "order": 0, "correct_index": 0, "assigned": 1, "answer": 1,
         "p_correct_0": 0.2, "parsed": True, "verified": 0, "unverified": 1},
    ]
    m = debate.metrics_from_events(recs, n_resamples=200)
    d = m["debate"]
    assert d["accuracy"] == pytest.approx(0.75)  # items: 1.0 and 0.5
    # p(correct) = .9, .6, .3, .5 -> Brier mean (1-p)^2 = (.01 + .16 + .49 + .25) / 4
    assert d["brier"] == pytest.approx(0.91 / 4)
    assert d["mean_confidence"] == pytest.approx((0.9 + 0.6 + 0.7 + 0.5) / 4)
    assert d["parsed_share"] == 0.75 and d["verified_quotes_per_run"] == 1.0 and d["unverified_quotes_per_run"] == 1.0
    assert (d["win_rate_assigned_correct"], d["win_rate_assigned_wrong"]) == (0.75, 0.25)
    c = m["consultancy"]
    assert c["accuracy"] == 0.5 and c["win_rate_assigned_correct"] == 1.0 and c["win_rate_assigned_wrong"] == 1.0


SAND = [{"id": "s1", "stem": "A" * 50 + " SECRET tail about the shoes.", "options": ["shoes", "hats", "cars"], "gold": 0},
        {"id": "s2", "stem": "B" * 50 + " SECRET tail about cars.", "options": ["shoes", "hats", "cars"], "gold": 2}]


def test_sandwich_conditions_turns_and_truncation():
    asks = ["Which one?", "Are you sure?", "DONE"]  # item s1: 2 questions then DONE; s2: DONE at once
    backend = ScriptedBackend([
        (r"sandwich\.alone", None, ['{"answer": "B", "confidence": 90}', '{"answer": "C", "confidence": 40}']),
        (r"sandwich\.assistant_alone", None, ['{"answer": "A", "confidence": 70}', '{"answer": "A", "confidence": 70}']),
        (r"sandwich\.ask", None, asks + ["DONE"]),
        (r"sandwich\.assistant", None, ["It is A.", "Yes, A."]),
        (r"sandwich\.final", None, ['{"answer": "A", "confidence": 60}', 'answer C please',
                                    '{"answer": "Z", "confidence": 10}', '{"answer": "c", "confidence": 100}']),
    ])
    trace = TraceLog(None, "sandwich")
    recs = sandwich.run_all(backend, backend, SAND, sandwich.SandwichConfig(turns=3, nonexpert_chars=20), trace)
    for call in backend.calls:
        if call.tag in ("sandwich.alone", "sandwich.ask", "sandwich.final"):
            assert "SECRET" not in json.dumps(call.messages)  # the non-expert sees only the first 20 characters
    assert [(r["condition"], r["answer"], r["turns"]) for r in recs] == [
        ("alone", 1, 0), ("assistant", 0, 0), ("assisted", 0, 2), ("alone", 2, 0), ("assistant", 0, 0),
        ("assisted", 2, 0)]
    assistant_turn2 = [c for c in backend.calls if c.tag == "sandwich.assistant"][1].messages
    assert [m["content"] for m in assistant_turn2[1:]] == ["Which one?", "It is A.", "Are you sure?"]
    m = sandwich.metrics_from_events(trace.events("answer"), n_resamples=200)
    assert (m["alone"]["accuracy"], m["assistant"]["accuracy"], m["assisted"]["accuracy"]) == (0.5, 0.5, 1.0)
    assert m["success"] is True and m["gap_closed"] == pytest.approx(1.0)
    assert m["assisted"]["turns_used"] == 1.0
    # alone: conf .9 wrong (bin 8) and .4 right (bin 3): ECE = .5·.9 + .5·.6
    assert m["alone"]["ece"] == pytest.approx(0.75)
    assert m["assisted"]["mean_confidence"] == pytest.approx(0.8)
    backend.close()


def test_sandwich_answer_parsing_rules():
    assert sandwich.parse_answer({"answer": "b.", "confidence": 55}, 6) == (1, 0.55)
    for bad in ({"answer": "G", "confidence": 5}, {"answer": "A", "confidence": 101}, {"answer": "A"}, [1]):
        with pytest.raises(ValueError):
            sandwich.parse_answer(bad, 6)


@pytest.mark.parametrize("protocol", ["debate", "sandwich"])
def test_dialogue_variants_run_end_to_end_and_metrics_replay_from_traces(tmp_path, protocol):
    require_shared("motivebench/Amazon_questions.json")
    import configs.oversight as cfg_mod
    from experiments import oversight

    c = cfg_mod.get_config(f"{protocol},limit=3")
    c.shared_data = str(require_shared("motivebench").parent)
    c.dialogue.rounds = 2
    c.dialogue.n_resamples = 200
    r = oversight.run(c, str(tmp_path))
    assert r["n_items"] == 3 and r["n_calls"] > 0
    events = read_events(str(tmp_path / "traces.jsonl"), "judgment" if protocol == "debate" else "answer")
    again = (debate if protocol == "debate" else sandwich).metrics_from_events(events, n_resamples=200)
    for key, value in again.items():
        assert r[key] == value or (isinstance(value, float) and math.isnan(value) and math.isnan(r[key]))
    if protocol == "debate":
        assert set(r) >= {"debate", "consultancy", "naive", "expert", "strong_alone"}
        assert r["debate"]["n_runs"] == 6 and r["consultancy"]["n_runs"] == 12
    else:
        assert r["assisted"]["n"] == 3 and "gap_closed" in r
