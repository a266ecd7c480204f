"""Attributes: a synthetic PLUS benchmark where a user summary has to be learned and must generalise.

Users: `K` binary latent attributes (default 4 -> 16 user types; up to 5 -> 32). Attribute k has two
poles with a canonical name each (used only in summaries, e.g. `brief` / `detailed`) and three
synonyms each (used only in responses, e.g. `short`, `concise`, `terse`), so nothing can match a
summary word to a response word by string identity.

Responses: the topic word and one synonym of one pole per attribute, in a random order (the attribute
words never sit in a fixed position). A response's poles are its "style" vector `b in {0,1}^K`.

Pairs:
- informative on attribute k: the two responses have the same poles except attribute k; the user
  chooses the one whose pole k equals theirs (synonyms of every attribute are redrawn per response, so
  the words differ everywhere and only the pole difference carries the signal);
- agreed (distractor): both responses have the same poles on every attribute and differ in a quality
  word (`clear` vs `vague`, ...); every user chooses the good one, so it carries no information about
  the user. (Quality is the shared component of real preference data; without it, a from-scratch RM sat
  on the constant-output plateau for ~100 batches even with the oracle summary, on validation users.)
A context holds `K` informative pairs (one per attribute) and `num_distractors` agreed pairs, in a
random order. The rollout / RM-train pair of a train example is an agreed pair with probability
`agreed_fraction`, else a fresh informative pair on a uniformly drawn attribute; val / test pairs are
always informative (personal), so a user-blind model scores ~50% on them.

Splits: the 2^K attribute combinations are split once (fixed `HOLDOUT_SEED`, independent of the run
seed) into seen combinations and `num_unseen` held-out combinations. `train`, `val` and `test_seen`
users have seen combinations (new contexts and pairs each); `test_unseen` users have held-out
combinations only: **their attribute combination never occurs in training**, so a model must compose
per-attribute knowledge. Every pole of every attribute still occurs in training.

Reference rules (`rule_accuracy`): `context_rule` reads the context with the generator's own lexicon
(the pole of the chosen response in the informative pair on each attribute) and applies it to the
eval pair; it is the strongest simple rule (100% by construction whenever each attribute is shown).
`majority_rule` is the best user-blind rule (the training majority pole per attribute): BTL's ceiling.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from humanai_jax.methods.plus.data import Pair, PlusExample, summarizer_messages

# (attribute, (pole-0 name, pole-1 name), (pole-0 synonyms, pole-1 synonyms))
ATTRIBUTES = (
    ("length", ("brief", "detailed"), (("short", "concise", "terse"), ("long", "thorough", "lengthy"))),
    ("tone", ("formal", "casual"), (("polite", "official", "proper"), ("chatty", "relaxed", "slangy"))),
    ("humor", ("serious", "funny"), (("sober", "earnest", "plain"), ("witty", "playful", "jokey"))),
    ("layout", ("prose", "list"), (("paragraph", "narrative", "flowing"), ("bullets", "numbered", "stepwise"))),
    ("depth", ("simple", "technical"), (("basic", "easy", "gentle"), ("expert", "advanced", "rigorous"))),
)
# A quality every user agrees on (the shared component of real preference data): (bad, good) synonyms.
QUALITY = (("vague", "sloppy", "wrong"), ("clear", "accurate", "correct"))
TOPICS = ("cooking", "travel", "music", "gardening", "history", "finance", "sports", "movies", "science", "pets")
INSTRUCTION = "Summarize what this user prefers. Start your response with ##Summary"
HOLDOUT_SEED = 2026
SPLIT_SEEDS = {"train": 0, "val": 1, "test_seen": 2, "test_unseen": 3}


@dataclasses.dataclass(frozen=True)
class Spec:
    """Benchmark size. `num_unseen` combinations (of 2^K) are held out for `test_unseen`."""

    num_attributes: int = 4
    num_unseen: int = 4
    num_distractors: int = 2
    agreed_fraction: float = 0.25  # train pairs that differ in quality only (every user agrees)
    # True: responses use the summaries' pole names (`brief`, ...); False: only their synonyms.
    shared_words: bool = True

    def __post_init__(self):
        if not 2 <= self.num_attributes <= len(ATTRIBUTES):
            raise ValueError(f"num_attributes must be in [2, {len(ATTRIBUTES)}], got {self.num_attributes}")
        if self.num_unseen % 2 or not 2 <= self.num_unseen <= 2**self.num_attributes // 2:
            raise ValueError(f"num_unseen must be even and in [2, {2**self.num_attributes // 2}] (complementary "
                             f"pairs), got {self.num_unseen}")
        if self.num_distractors < 0:
            raise ValueError(f"num_distractors must be >= 0, got {self.num_distractors}")


# ----------------------------------------------------------------------------- users and summaries


def user_type_of(combo: tuple[int, ...]) -> str:
    """`(0, 1, 1, 0)` -> `"brief-casual-funny-prose"` (canonical pole names)."""
    return "-".join(ATTRIBUTES[k][1][v] for k, v in enumerate(combo))


def combo_of(user_type: str) -> tuple[int, ...]:
    names = user_type.split("-")
    out = []
    for k, name in enumerate(names):
        poles = ATTRIBUTES[k][1]
        if name not in poles:
            raise ValueError(f"user type {user_type!r}: {name!r} is not a pole of {ATTRIBUTES[k][0]!r} {poles}")
        out.append(poles.index(name))
    return tuple(out)


def oracle_summary(user_type: str) -> str:
    """The true summary (oracle baseline and analysis only; never a summarizer target)."""
    return "prefers " + " ".join(user_type.split("-"))


def random_summary(num_attributes: int, rng: np.random.RandomState) -> str:
    """A summary in the oracle's format with uniformly random content: the summarizer's format-only
    warm-up target (it carries no information about the user whose context it is paired with)."""
    return oracle_summary(user_type_of(tuple(int(v) for v in rng.randint(2, size=num_attributes))))


def complement_type(user_type: str) -> str:
    """The user type with every attribute flipped (the summary that is wrong on every attribute)."""
    return user_type_of(tuple(1 - v for v in combo_of(user_type)))


def summary_attribute_accuracy(summary: str, user_type: str) -> float:
    """Fraction of attributes the summary states correctly: the user's pole name present, the other absent."""
    words = set(summary.split())
    combo = combo_of(user_type)
    right = [ATTRIBUTES[k][1][v] in words and ATTRIBUTES[k][1][1 - v] not in words for k, v in enumerate(combo)]
    return float(np.mean(right))


def split_combinations(spec: Spec) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """(seen, unseen) attribute combinations, fixed by `HOLDOUT_SEED` (the same for every run seed).

    Unseen combinations come in complementary pairs (c and 1 - c), so every attribute's poles stay
    balanced in both sets: a user-blind model cannot gain (or lose) on unseen users from a pole prior."""
    combos = list(itertools.product((0, 1), repeat=spec.num_attributes))
    order = np.random.RandomState(HOLDOUT_SEED).permutation(len(combos))
    unseen: list[tuple[int, ...]] = []
    for i in order:
        if len(unseen) == spec.num_unseen:
            break
        if combos[i] not in unseen:
            unseen += [combos[i], tuple(1 - v for v in combos[i])]
    unseen = sorted(unseen)
    seen = [c for c in combos if c not in unseen]
    return seen, unseen


# ----------------------------------------------------------------------------- responses and pairs


def pole_words(k: int, v: int, shared_words: bool) -> tuple[str, ...]:
    """The words a response may use for pole v of attribute k."""
    return (ATTRIBUTES[k][1][v],) if shared_words else ATTRIBUTES[k][2][v]


def response(topic: str, style: tuple[int, ...], rng: np.random.RandomState, quality: int = 1,
             shared_words: bool = True) -> str:
    """The topic word, a quality word and one word per attribute pole, shuffled."""
    words = [topic, str(rng.choice(QUALITY[quality]))]
    words += [str(rng.choice(pole_words(k, v, shared_words))) for k, v in enumerate(style)]
    return " ".join(words[i] for i in rng.permutation(len(words)))


def informative_pair(combo: tuple[int, ...], attribute: int, rng: np.random.RandomState, shared_words: bool = True) -> Pair:
    """Two responses differing in pole on `attribute` only; the user's pole is chosen."""
    topic = str(rng.choice(TOPICS))
    base = [int(v) for v in rng.randint(2, size=len(combo))]
    liked, disliked = list(base), list(base)
    liked[attribute], disliked[attribute] = combo[attribute], 1 - combo[attribute]
    quality = int(rng.randint(2))  # both responses share it: only the attribute differs
    return Pair(f"About {topic} .", response(topic, tuple(liked), rng, quality, shared_words),
                response(topic, tuple(disliked), rng, quality, shared_words))


def agreed_pair(num_attributes: int, rng: np.random.RandomState, shared_words: bool = True) -> Pair:
    """Two responses with identical attribute poles (synonyms differ) and different quality: every user
    chooses the good one, so the pair says nothing about who the user is (a distractor in a context)."""
    topic = str(rng.choice(TOPICS))
    style = tuple(int(v) for v in rng.randint(2, size=num_attributes))
    return Pair(f"About {topic} .", response(topic, style, rng, 1, shared_words),
                response(topic, style, rng, 0, shared_words))


def context_pairs(combo: tuple[int, ...], spec: Spec, rng: np.random.RandomState) -> list[Pair]:
    pairs = [informative_pair(combo, k, rng, spec.shared_words) for k in range(spec.num_attributes)]
    pairs += [agreed_pair(spec.num_attributes, rng, spec.shared_words) for _ in range(spec.num_distractors)]
    return [pairs[i] for i in rng.permutation(len(pairs))]


def examples(spec: Spec, split: str, num_rows: int, seed: int = 0) -> list[PlusExample]:
    """`num_rows` examples of `split` (train | val | test_seen | test_unseen), users cycling over the
    split's combinations. Each example: a fresh context and a fresh informative eval pair."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"Unknown split {split!r}; expected one of {sorted(SPLIT_SEEDS)}")
    seen, unseen = split_combinations(spec)
    combos = unseen if split == "test_unseen" else seen
    rng = np.random.RandomState(1000 * seed + SPLIT_SEEDS[split])
    out = []
    for i in range(num_rows):
        combo = combos[i % len(combos)]
        pairs = context_pairs(combo, spec, rng)
        if split == "train" and rng.rand() < spec.agreed_fraction:
            pair = agreed_pair(spec.num_attributes, rng, spec.shared_words)
        else:  # evaluation pairs are always personal: they differ in one user attribute only
            pair = informative_pair(combo, int(rng.randint(spec.num_attributes)), rng, spec.shared_words)
        out.append(PlusExample(
            context_messages=summarizer_messages(pairs, INSTRUCTION), reward=pair, train=pair, eval=pair,
            context_pairs=tuple(pairs), user_type=user_type_of(combo), split="train" if split == "train" else "test",
            seen_user=split != "test_unseen", ood=split == "test_unseen",
        ))
    return out


# ----------------------------------------------------------------------------- reference rules


_POLE_OF_WORD = {word: (k, v) for k, (_, names, poles) in enumerate(ATTRIBUTES) for v, words in enumerate(poles)
                 for word in (names[v], *words)}


def style_of(text: str, num_attributes: int) -> tuple[int | None, ...]:
    """A response's pole per attribute read with the generator's lexicon (None if no attribute word)."""
    style: list[int | None] = [None] * num_attributes
    for word in text.split():
        if word in _POLE_OF_WORD and _POLE_OF_WORD[word][0] < num_attributes:
            k, v = _POLE_OF_WORD[word]
            style[k] = v
    return tuple(style)


def context_rule(example: PlusExample, num_attributes: int) -> float:
    """1.0 / 0.0 / 0.5 (unknown): the strongest simple rule. Infers each attribute's pole from the
    context pairs whose responses differ in that attribute only, then picks the eval response whose
    pole on the differing attribute matches."""
    inferred: dict[int, int] = {}
    for pair in example.context_pairs or ():
        chosen, rejected = style_of(pair.chosen, num_attributes), style_of(pair.rejected, num_attributes)
        differ = [k for k in range(num_attributes) if chosen[k] != rejected[k]]
        if len(differ) == 1:
            inferred[differ[0]] = chosen[differ[0]]
    pair = example.eval or example.reward
    chosen, rejected = style_of(pair.chosen, num_attributes), style_of(pair.rejected, num_attributes)
    differ = [k for k in range(num_attributes) if chosen[k] != rejected[k]]
    if len(differ) != 1 or differ[0] not in inferred:
        return 0.5
    return float(inferred[differ[0]] == chosen[differ[0]])


def majority_poles(train: list[PlusExample], num_attributes: int) -> tuple[int, ...]:
    """Per attribute, the pole chosen most often in the training eval pairs (what a user-blind RM can learn)."""
    votes = np.zeros((num_attributes, 2))
    for ex in train:
        chosen, rejected = style_of(ex.train.chosen, num_attributes), style_of(ex.train.rejected, num_attributes)
        for k in range(num_attributes):
            if chosen[k] != rejected[k]:
                votes[k, chosen[k]] += 1
    return tuple(int(v) for v in votes.argmax(axis=1))


def majority_rule(example: PlusExample, poles: tuple[int, ...]) -> float:
    """1.0 / 0.0 / 0.5: the best user-blind rule, the training majority pole on the differing attribute."""
    pair = example.eval or example.reward
    num_attributes = len(poles)
    chosen, rejected = style_of(pair.chosen, num_attributes), style_of(pair.rejected, num_attributes)
    differ = [k for k in range(num_attributes) if chosen[k] != rejected[k]]
    if len(differ) != 1:
        return 0.5
    return float(poles[differ[0]] == chosen[differ[0]])


def rule_accuracy(examples_: list[PlusExample], train: list[PlusExample], num_attributes: int) -> dict[str, float]:
    """`context_rule` (the strongest simple rule, reads the context with the lexicon) and `majority_rule`
    (the best user-blind rule, the ceiling of BTL) accuracies on `examples_`."""
    poles = majority_poles(train, num_attributes)
    return {"context_rule": float(np.mean([context_rule(ex, num_attributes) for ex in examples_])),
            "majority_rule": float(np.mean([majority_rule(ex, poles) for ex in examples_]))}


def vocabulary_texts(spec: Spec) -> list[str]:
    """Every word the models can read or write, for the tokenizer."""
    words = [INSTRUCTION, "About .", "prefers", *TOPICS, *QUALITY[0], *QUALITY[1]]
    for _, names, poles in ATTRIBUTES[: spec.num_attributes]:
        words += list(names) + [w for ws in poles for w in ws]
    return words
