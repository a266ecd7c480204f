"""The Attributes benchmark (held-out attribute combinations) and the label-free summarizer warm-up."""

import collections

import numpy as np
import pytest

from configs.plus import get_config
from humanai_jax.methods.plus import attributes as A, setup as X

SPEC = A.Spec()


@pytest.fixture(scope="module")
def splits():
    return {name: A.examples(SPEC, name, 240, seed=0) for name in ("train", "val", "test_seen", "test_unseen")}


def test_unseen_combinations_never_occur_in_training(splits):
    seen, unseen = A.split_combinations(SPEC)
    assert len(seen) == 12 and len(unseen) == 4 and not set(seen) & set(unseen)
    unseen_types = {A.user_type_of(c) for c in unseen}
    for name in ("train", "val", "test_seen"):
        assert not {ex.user_type for ex in splits[name]} & unseen_types, name
    assert {ex.user_type for ex in splits["test_unseen"]} == unseen_types
    assert all(not ex.seen_user for ex in splits["test_unseen"]) and all(ex.seen_user for ex in splits["train"])
    # Complementary held-out pairs: each pole of each attribute is half of the unseen users and still trained on.
    combos = np.array(unseen)
    np.testing.assert_array_equal(combos.mean(axis=0), 0.5)
    assert {v for c in seen for v in c} == {0, 1}
    np.testing.assert_array_equal(np.array(seen).mean(axis=0), 0.5)


def test_contexts_hold_one_informative_pair_per_attribute_and_distractors(splits):
    positions = collections.Counter()
    for ex in splits["train"][:60]:
        combo = A.combo_of(ex.user_type)
        informative = []
        for pair in ex.context_pairs:
            chosen, rejected = A.style_of(pair.chosen, 4), A.style_of(pair.rejected, 4)
            assert None not in chosen and None not in rejected
            differ = [k for k in range(4) if chosen[k] != rejected[k]]
            assert len(differ) in (0, 1)
            if differ:
                informative.append(differ[0])
                assert chosen[differ[0]] == combo[differ[0]]  # the user's pole is the chosen one
            words = pair.chosen.split()
            positions[[i for i, w in enumerate(words) if A.style_of(w, 4)[0] is not None][0]] += 1
        assert sorted(informative) == [0, 1, 2, 3] and len(ex.context_pairs) == 4 + SPEC.num_distractors
        assert "Start your response with ##Summary" in ex.context_messages[-1]["content"]
    assert len(positions) >= 4  # the length word is not in a fixed position


def test_rules_context_rule_is_perfect_and_user_blind_rule_is_chance(splits):
    for name in ("test_seen", "test_unseen"):
        rules = A.rule_accuracy(splits[name], splits["train"], 4)
        assert rules["context_rule"] == 1.0
        assert 0.35 < rules["majority_rule"] < 0.65, rules
    # The rule reads the context: with every context pair's labels swapped it is always wrong.
    ex = splits["test_unseen"][0]
    flipped = [A.Pair(p.prompt, p.rejected, p.chosen) for p in ex.context_pairs]
    import dataclasses

    assert A.context_rule(dataclasses.replace(ex, context_pairs=tuple(flipped)), 4) == 0.0


def test_summaries_user_types_and_scores():
    assert A.user_type_of((0, 1, 1, 0)) == "brief-casual-funny-prose"
    assert A.combo_of("brief-casual-funny-prose") == (0, 1, 1, 0)
    assert A.oracle_summary("brief-casual-funny-prose") == "prefers brief casual funny prose"
    assert A.summary_attribute_accuracy("prefers brief casual funny prose", "brief-casual-funny-prose") == 1.0
    assert A.summary_attribute_accuracy("prefers detailed casual serious prose", "brief-casual-funny-prose") == 0.5
    assert A.summary_attribute_accuracy("prefers brief detailed", "brief-casual-funny-prose") == 0.0
    with pytest.raises(ValueError, match="'short' is not a pole of 'length'"):
        A.combo_of("short-casual-funny-prose")
    with pytest.raises(ValueError, match="num_unseen must be even"):
        A.Spec(num_unseen=3)


@pytest.mark.parametrize("label_noise, expected", [(1.0, 0.5), (0.0, 1.0)])
def test_warm_up_targets_carry_no_user_content_by_default(monkeypatch, label_noise, expected):
    """The default warm-up (label_noise = 1) pairs each context with a summary of random content: its
    targets state the user's attributes at chance (0.5), while label_noise = 0 (the leaking ablation) is 1.0."""
    config = get_config("plus")
    assert config.sft.label_noise == 1.0 and config.data.name == "attributes"
    config.sft.label_noise, config.sft.steps, config.data.train_rows = label_noise, 60, 240
    task = X.attributes_task(config)
    seen = []

    def capture(state, batch, targets, **_):
        seen.extend(A.summary_attribute_accuracy(t, ex.user_type) for ex, t in zip(batch, targets))
        assert all(t.startswith("prefers ") and len(t.split()) == 5 for t in targets)  # the format is taught
        return state, {"sft_loss": 0.0}

    monkeypatch.setattr(X.loop, "sft_iteration", capture)
    params = {"w": np.zeros(1)}
    txs = {"sft": _NoOpt(), "actor": _NoOpt()}
    state = X.warm_up_summarizer({"actor": {"params": params}}, task, config, None, None, txs, _NoLog())
    assert len(seen) == 60 * config.sft.batch
    assert np.mean(seen) == pytest.approx(expected, abs=0.03)
    assert state["ref"] is state["actor"]["params"]


class _NoOpt:
    def init(self, params):
        return ()


class _NoLog:
    def write(self, *args, **kwargs):
        pass
