"""Pets and Pets-OOD (docs/plus.md §6.2, §6.3): two synthetic users who disagree about dogs versus cats.

Roles: birds = helpful & harmless, dogs = helpful & harmful, cats = harmless & unhelpful,
rabbits = harmful & unhelpful. Pair type k ~ U{0..9}: k < 5 are pairs every user agrees on;
k >= 5 pits dogs against cats, preferred by the `helpful` user and rejected by the `harmless` user.

Sentences: the VPL reference lists (birds 83, cats 95, dogs 93, rabbits 90) live in VPL's
`hidden_context/data_utils/simple_templates.py`; `load_vpl_sentences(path)` reads them from a user's
copy of that file without executing it. `builtin_sentences()` provides our own lists of the same
sizes and roles (written for this project, not VPL's), used by the embedded CPU default and tests.

Randomness follows the reference generator: a legacy `np.random.RandomState(seed)` per (user type,
split) file, drawing `pair_type = randint(10)` then `choice(chosen list)`, `choice(rejected list)` per
row. The reference takes the response order and row count from `relabeled_hh_rlhf`; we draw the order
from a separate `RandomState(seed + 1)` instead (the order only affects the `responses` field).
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import os

import numpy as np

from humanai_jax.data.jsonl import write_jsonl
from humanai_jax.methods.plus.data import Pair, PlusExample, split_vpl_pair, summarizer_messages, vpl_prompt_to_plus

PROMPT = "Human: Please talk about one kind of pets."
USER_TYPES = ("helpful", "harmless")
SIZES = {"bird": 83, "cat": 95, "dog": 93, "rabbit": 90}
TRAIN_SENTENCES = 80
ROWS = {"train": 2000, "test": 200}
CONTEXT_LENGTH = 8
# (chosen animal, rejected animal) for pair types 0..4, agreed by both users.
AGREED_PAIRS = (("bird", "dog"), ("cat", "rabbit"), ("bird", "cat"), ("dog", "rabbit"), ("bird", "rabbit"))
# Oracle summaries (the generator knows the user type); used for the oracle baseline and SFT warm-up.
ORACLE_SUMMARIES = {
    "helpful": "The user values helpful answers and prefers dogs to cats.",
    "harmless": "The user values harmless answers and prefers cats to dogs.",
}


@dataclasses.dataclass(frozen=True)
class PetSentences:
    bird: tuple[str, ...]
    cat: tuple[str, ...]
    dog: tuple[str, ...]
    rabbit: tuple[str, ...]

    def split(self, split: str) -> dict[str, tuple[str, ...]]:
        """First 80 sentences of each list for train, the remainder for test (disjoint)."""
        if split not in ROWS:
            raise ValueError(f"Unknown split {split!r}; expected one of {sorted(ROWS)}")
        cut = slice(None, TRAIN_SENTENCES) if split == "train" else slice(TRAIN_SENTENCES, None)
        return {name: getattr(self, name)[cut] for name in SIZES}


def load_vpl_sentences(path: str) -> PetSentences:
    """Reads `bird_sentences`, `cat_sentences`, `dog_sentences`, `rabbit_sentences` from VPL's
    `simple_templates.py` by parsing (never executing) it, and checks the published list sizes."""
    with open(path) as f:
        tree = ast.parse(f.read(), filename=path)
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name.endswith("_sentences") and name[: -len("_sentences")] in SIZES:
                found[name[: -len("_sentences")]] = tuple(ast.literal_eval(node.value))
    missing = sorted(set(SIZES) - set(found))
    if missing:
        raise ValueError(f"{path}: no {', '.join(m + '_sentences' for m in missing)} list found")
    for name, size in SIZES.items():
        if len(found[name]) != size:
            raise ValueError(f"{path}: {name}_sentences has {len(found[name])} sentences, expected {size}")
    return PetSentences(**found)


_BUILTIN_FACTS = {
    "bird": (
        ["sing", "build nests", "fly south", "preen feathers", "eat seeds", "watch the sky", "hop on branches",
         "call to friends", "glide on wind", "bathe in puddles"],
        ["at dawn", "in spring", "near the river", "in the garden", "on tall trees", "after rain",
         "in small flocks", "every morning", "during summer", "by the lake"],
    ),
    "cat": (
        ["nap", "purr softly", "chase string", "groom their fur", "climb shelves", "watch birds", "knead blankets",
         "hide in boxes", "stretch slowly", "sit by windows"],
        ["all afternoon", "at night", "in warm spots", "near the heater", "on the sofa", "after meals",
         "in quiet rooms", "before sleeping", "in the sun", "when alone"],
    ),
    "dog": (
        ["fetch balls", "guard the house", "run fast", "dig holes", "bark loudly", "pull sleds", "swim well",
         "track scents", "greet guests", "herd sheep"],
        ["in the park", "every day", "on long walks", "with children", "at the beach", "in the yard",
         "for their owners", "in winter", "after breakfast", "on farms"],
    ),
    "rabbit": (
        ["chew cables", "dig burrows", "thump their feet", "eat carrots", "hop around", "nibble grass",
         "twitch noses", "hide under beds", "bite fingers", "chew furniture"],
        ["at dusk", "in the field", "in small cages", "near fences", "in the hutch", "after dark",
         "in the meadow", "under hedges", "all evening", "in the barn"],
    ),
}


def builtin_sentences() -> PetSentences:
    """Our own pet sentences with VPL's list sizes: `"{Animals} {verb} {place/time}."` combinations."""
    lists = {}
    for name, size in SIZES.items():
        verbs, tails = _BUILTIN_FACTS[name]
        subject = name.capitalize() + "s"
        sentences = [f"{subject} {verb} {tail}." for tail, verb in itertools.product(tails, verbs)]
        # A fixed shuffle so train (first 80) and test (rest) both cover many verbs and tails.
        order = np.random.RandomState(len(name)).permutation(len(sentences))
        lists[name] = tuple(sentences[i] for i in order[:size])
    return PetSentences(**lists)


def _pair_animals(pair_type: int, user_type: str) -> tuple[str, str]:
    if pair_type < 5:
        return AGREED_PAIRS[pair_type]
    return ("dog", "cat") if user_type == "helpful" else ("cat", "dog")


def generate_rows(
    sentences: PetSentences, user_type: str, split: str, *, num_rows: int | None = None, seed: int = 0
) -> list[dict]:
    """Rows `{prompt, chosen, rejected, responses, controversial}` of one (user type, split) file."""
    if user_type not in USER_TYPES:
        raise ValueError(f"Unknown Pets user type {user_type!r}; expected one of {USER_TYPES}")
    pools = sentences.split(split)
    rng = np.random.RandomState(seed)
    order_rng = np.random.RandomState(seed + 1)
    rows = []
    for _ in range(ROWS[split] if num_rows is None else num_rows):
        pair_type = int(rng.randint(10))
        chosen_animal, rejected_animal = _pair_animals(pair_type, user_type)
        chosen = str(rng.choice(pools[chosen_animal]))
        rejected = str(rng.choice(pools[rejected_animal]))
        label = int(order_rng.randint(2))
        rows.append(
            {
                "prompt": PROMPT,
                "chosen": PROMPT + "\n\nAssistant: " + chosen,
                "rejected": PROMPT + "\n\nAssistant: " + rejected,
                "responses": [chosen, rejected] if label == 0 else [rejected, chosen],
                "controversial": pair_type >= 5,
            }
        )
    return rows


def add_contexts(
    rows: list[dict], *, context_length: int = CONTEXT_LENGTH, seed: int = 0, pool: list[dict] | None = None
) -> list[dict]:
    """Gives each row `context_length` pairs drawn uniformly with replacement from the controversial
    rows of `pool` (default: the same file's rows). Adds `context_length` and `contexts`."""
    pool = rows if pool is None else pool
    candidates = [i for i, row in enumerate(pool) if row["controversial"]]
    if not candidates:
        raise ValueError("no controversial rows to draw contexts from")
    rng = np.random.RandomState(seed)
    out = []
    for row in rows:
        picks = rng.choice(candidates, size=context_length, replace=True)
        contexts = [{"original_id": int(i), "chosen": pool[i]["chosen"], "rejected": pool[i]["rejected"]} for i in picks]
        out.append({**row, "context_length": context_length, "contexts": contexts})
    return out


def ood_contexts(
    sentences: PetSentences, user_type: str, split: str, num_rows: int, *, context_length: int = CONTEXT_LENGTH,
    seed: int = 0,
) -> list[list[dict]]:
    """Pets-OOD contexts (our construction; docs/plus.md §6.3 is unverified): no dog-versus-cat pairs at all.

    Each user is shown only pairs that differ in the one attribute they care about, which the other
    user would not label that way: the helpful user picks bird > cat and dog > rabbit (helpfulness
    differs, harmlessness equal); the harmless user picks bird > dog and cat > rabbit. Birds and rabbits
    never appear in training contexts, so the context content is shifted while the user is identifiable.
    """
    pools = sentences.split(split)
    pairs = (("bird", "cat"), ("dog", "rabbit")) if user_type == "helpful" else (("bird", "dog"), ("cat", "rabbit"))
    rng = np.random.RandomState(seed + 2)
    out = []
    for _ in range(num_rows):
        context = []
        for _ in range(context_length):
            chosen_animal, rejected_animal = pairs[rng.randint(2)]
            context.append(
                {
                    "original_id": -1,
                    "chosen": PROMPT + "\n\nAssistant: " + str(rng.choice(pools[chosen_animal])),
                    "rejected": PROMPT + "\n\nAssistant: " + str(rng.choice(pools[rejected_animal])),
                }
            )
        out.append(context)
    return out


def write_pets(out_dir: str, sentences: PetSentences, *, model_type: str = "none", seed: int = 0) -> list[str]:
    """Writes `<out>/<model_type>/<user_type>/<split>.jsonl` in VPL's record format; returns the paths."""
    paths = []
    for user_type, split in itertools.product(USER_TYPES, ROWS):
        rows = add_contexts(generate_rows(sentences, user_type, split, seed=seed), seed=seed)
        path = os.path.join(out_dir, model_type, user_type, f"{split}.jsonl")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_jsonl(path, rows)
        paths.append(path)
    return paths


def vpl_row_to_example(row: dict, *, user_type: str | None, split: str, seen_user: bool = True, ood: bool = False) -> PlusExample:
    """Maps a VPL-format row (Pets, UF-P) to a `PlusExample`. The same pair serves as rollout-scoring,
    RM-training and eval pair (the README's "same train_prompt and reward_prompt" setting)."""
    def to_pair(chosen: str, rejected: str) -> Pair:
        prompt, chosen_response, rejected_response = split_vpl_pair(chosen, rejected)
        return Pair(vpl_prompt_to_plus(prompt), chosen_response, rejected_response)

    pairs = tuple(to_pair(c["chosen"], c["rejected"]) for c in row["contexts"])
    pair = to_pair(row["chosen"], row["rejected"])
    return PlusExample(
        context_messages=summarizer_messages(pairs),
        reward=pair,
        train=pair,
        eval=pair,
        context_pairs=pairs,
        user_type=user_type,
        split=split,
        seen_user=seen_user,
        ood=ood,
    )


def pets_examples(
    sentences: PetSentences, split: str, *, num_rows: int | None = None, seed: int = 0, ood: bool = False,
    context_length: int = CONTEXT_LENGTH,
) -> list[PlusExample]:
    """Both users' examples of one split, interleaved (helpful, harmless, helpful, ...).

    `ood=True` replaces each row's context with a Pets-OOD context (test-time shift)."""
    per_user = []
    for user_type in USER_TYPES:
        rows = generate_rows(sentences, user_type, split, num_rows=num_rows, seed=seed)
        rows = add_contexts(rows, context_length=context_length, seed=seed)
        if ood:
            shifted = ood_contexts(sentences, user_type, split, len(rows), context_length=context_length, seed=seed)
            rows = [{**row, "contexts": ctx} for row, ctx in zip(rows, shifted)]
        per_user.append([vpl_row_to_example(r, user_type=user_type, split=split, ood=ood) for r in rows])
    return [ex for group in zip(*per_user) for ex in group]


def controversial(example: PlusExample) -> bool:
    """True for dog-versus-cat pairs: the only pairs on which the two users disagree."""
    animals = {example.reward.chosen.split()[0], example.reward.rejected.split()[0]}
    return animals == {"Dogs", "Cats"}


def animal_of(sentence: str) -> str:
    return sentence.split()[0].rstrip("s").lower()


def check_sentences_disjoint(sentences: PetSentences) -> None:
    """Train and test sentences must not overlap (docs/plus.md §6.2)."""
    train, test = sentences.split("train"), sentences.split("test")
    for name in SIZES:
        shared = set(train[name]) & set(test[name])
        if shared:
            raise ValueError(f"{name} sentences shared by train and test: {sorted(shared)[:3]}")


def oracle_summary(user_type: str) -> str:
    return ORACLE_SUMMARIES[user_type]

