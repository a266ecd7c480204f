"""Synthetic users with latent preferences, shaped like the pipeline's Amazon output (for the embedded
default experiment and tests).

The catalogue has `n_genres x items_per_genre` items titled `"<genre>, <object>"` (every object word exists
in every genre). Every user has two latent preferences: a favourite genre G and a favourite kind of object
O, one of the two kinds typical of G (genre i: objects 2i and 2i+1, modulo the number of objects). The
history shows each preference separately and never together: 4-5 items "G, x" (x != O), 4-5 items "y, O"
(y != G) and 0-1 items of neither, shuffled; every other genre and object occurs at most once. The next
item (the item-selection target) is "G, O": never bought, and named nowhere in the prompt outside the
candidate list. Persona and profile state the two tastes in words ("loves gardening and is always after
a good lamp"). A model that infers G and O names the target; one that infers only G and guesses between
G's two typical objects gets about half; chance is 1/20.

Why this design (docs/humanllm.md has the runs): the earlier one (one latent genre; the history held all
but one item of the genre; the target was the missing one) needed the model to find the genre item
*absent* from the history, or to copy the one genre candidate past 7 same-genre history items. A 0.7M-
parameter model trained from scratch learned the genre but not that step, within CPU budgets and far
beyond them (up to 4,000 steps on a GPU), and scored about 1/8. The ", " makes the object the token after
a fixed separator, whatever the genre.
"""

from __future__ import annotations

import collections
import re

import numpy as np

GENRES = {  # genre word in titles -> words used in personas and profiles
    "garden": ("gardening", "plants and flowers"), "kitchen": ("cooking", "new recipes"),
    "camping": ("the outdoors", "hiking trips"), "guitar": ("music", "playing songs"),
    "yoga": ("fitness", "calm mornings"), "painting": ("art", "colours and canvases"),
    "fishing": ("lakes", "quiet weekends by the water"), "baking": ("pastry", "bread and cakes"),
}
OBJECTS = ("lamp", "kit", "book", "guide", "mat", "bag", "box", "set", "tool", "case")
ADJECTIVES = ("cheerful", "quiet", "busy", "curious", "careful", "friendly")


def make_catalog(n_genres: int = 8, items_per_genre: int = 8) -> tuple[dict[str, str], dict[str, str]]:
    """Returns ({item_id: title}, {item_id: genre})."""
    if n_genres > len(GENRES) or items_per_genre > len(OBJECTS):
        raise ValueError(f"at most {len(GENRES)} genres and {len(OBJECTS)} items per genre")
    titles, genre_of = {}, {}
    for g in list(GENRES)[:n_genres]:
        for o in OBJECTS[:items_per_genre]:
            item = f"{g}-{o}"
            titles[item] = f"{g}, {o}"
            genre_of[item] = g
    return titles, genre_of


OBJECT_HINTS = {"lamp": "good light", "kit": "complete kits", "book": "reading up", "guide": "step-by-step guides",
                "mat": "a comfortable mat", "bag": "carrying things", "box": "tidy storage", "set": "matching sets",
                "tool": "sturdy tools", "case": "protective cases"}


def make_users(n_users: int, catalog: dict[str, str], genre_of: dict[str, str], *, seed: int = 0,
               n_genre: tuple[int, int] = (4, 5), n_object: tuple[int, int] = (4, 5), n_noise: tuple[int, int] = (0, 1)
               ) -> tuple[list[dict], dict[str, list[dict]]]:
    """Returns (UserRecords, {uid: review logs in time order}) in the pipeline's schema (§8).

    Each user has `latent_genre` G and `latent_object` O; the history holds `n_genre` items "G x" (x != O),
    `n_object` items "y O" (y != G) and `n_noise` items "y' x'" of genres and objects used nowhere else (so G and
    O are the only genre and object seen more than once), shuffled; the last log is "G O".
    """
    rng = np.random.default_rng(seed)
    genres = sorted(set(genre_of.values()))
    object_of = {i: catalog[i].split(", ", 1)[1] for i in catalog}
    objects = sorted(set(object_of.values()))
    item = {(genre_of[i], object_of[i]): i for i in catalog}
    if n_genre[1] + n_noise[1] >= len(objects) or n_object[1] + n_noise[1] >= len(genres):
        raise ValueError("too few genres or objects for the requested history")
    users, logs = [], {}
    for u in range(n_users):
        uid = f"syn{u:05d}"
        gi = rng.integers(len(genres))
        g = genres[gi]
        # each genre has two typical kinds of object (objects 2i, 2i+1 mod n); the user prefers one of them
        o = objects[(2 * gi + rng.integers(2)) % len(objects)]
        other_o = [x for x in objects if x != o]
        other_g = [y for y in genres if y != g]
        xs = list(rng.choice(other_o, rng.integers(n_genre[0], n_genre[1] + 1), replace=False))
        ys = list(rng.choice(other_g, rng.integers(n_object[0], n_object[1] + 1), replace=False))
        # noise: genres and objects not used yet, so every other genre/object occurs at most once
        n = rng.integers(n_noise[0], n_noise[1] + 1)
        noise_g = rng.choice([y for y in other_g if y not in ys], n, replace=False)
        noise_o = rng.choice([x for x in other_o if x not in xs], n, replace=False)
        hist = [item[g, x] for x in xs] + [item[y, o] for y in ys] + [item[y, x] for y, x in zip(noise_g, noise_o)]
        history = list(rng.permutation(hist)) + [item[g, o]]
        hobby, detail = GENRES[g]
        adj = ADJECTIVES[rng.integers(len(ADJECTIVES))]
        persona = f"The user is a {adj} person who loves {hobby} and is always after a good {o}."
        profile = (f"The user is a {adj} shopper whose free time goes to {hobby}. They enjoy {detail}, care about "
                   f"{OBJECT_HINTS.get(o, o)} and, whatever the hobby, like to own a good {o}.")
        users.append({"uid": uid, "platform": "amazon", "category": "Synthetic", "persona": persona,
                      "profile": profile, "writing_style": None, "stories": [], "latent_genre": g,
                      "latent_object": o})
        logs[uid] = [{"uid": uid, "log_id": f"{uid}:{k}", "type": "review", "timestamp": 1_600_000_000 + 86_400 * k,
                      "item": {"item_id": i, "title": catalog[i], "rating": 5.0},
                      "tag_v1": {"quality": "high", "harmless": "yes"}, "rewrite_v2": None, "summary": None}
                     for k, i in enumerate(history)]
    return users, logs


def rule_choice(prompt: str) -> str | None:
    """The rule that solves this synthetic task without learning (issue 13): the most frequent genre and the
    most frequent object of the history lines, or, in a persona-only prompt, the hobby and the object the
    persona names. Returns the title "G, O" (None if neither is found)."""
    hist = re.findall(r"^History \d+: (\w+), (\w+)$", prompt, re.MULTILINE)
    if hist:
        genre = collections.Counter(g for g, _ in hist).most_common(1)[0][0]
        obj = collections.Counter(o for _, o in hist).most_common(1)[0][0]
        return f"{genre}, {obj}"
    genre = next((g for g, (hobby, _) in GENRES.items() if f"loves {hobby}" in prompt or f"goes to {hobby}" in prompt),
                 None)
    obj = re.search(r"a good (\w+)", prompt)
    return f"{genre}, {obj.group(1)}" if genre and obj else None
