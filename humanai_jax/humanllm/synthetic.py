"""Synthetic users with latent preferences, shaped like the pipeline's Amazon output (for the embedded
default experiment and tests).

Every user has one latent favourite genre. The catalogue has `n_genres x items_per_genre` items titled
`"<genre word> <object word>"` (objects are shared across genres, so naming the right item needs the
genre *and* a copy of the object from the candidate list). A user's history holds all but one item of
their genre, in random order, plus a few items of other genres; the last item (the target of item
selection) is the remaining item of their genre. So among the 20 candidates the target is the only
item of the user's genre, and a model that infers the genre (from the history or from the persona,
which names the hobby in other words) can find it. Chance is 1/20.
"""

from __future__ import annotations

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
            titles[item] = f"{g} {o}"
            genre_of[item] = g
    return titles, genre_of


def make_users(n_users: int, catalog: dict[str, str], genre_of: dict[str, str], *, seed: int = 0,
               n_noise: tuple[int, int] = (2, 4)) -> tuple[list[dict], dict[str, list[dict]]]:
    """Returns (UserRecords, {uid: review logs in time order}) in the pipeline's schema (§8)."""
    rng = np.random.default_rng(seed)
    genres = sorted(set(genre_of.values()))
    items_by_genre = {g: sorted(i for i in catalog if genre_of[i] == g) for g in genres}
    users, logs = [], {}
    for u in range(n_users):
        uid = f"syn{u:05d}"
        fav = genres[rng.integers(len(genres))]
        own = list(rng.permutation(items_by_genre[fav]))
        others = [i for i in catalog if genre_of[i] != fav]
        noise = list(rng.choice(others, size=rng.integers(n_noise[0], n_noise[1] + 1), replace=False))
        history = list(rng.permutation(own[:-1] + noise)) + [own[-1]]
        hobby, detail = GENRES[fav]
        adj = ADJECTIVES[rng.integers(len(ADJECTIVES))]
        persona = f"The user is a {adj} person who loves {hobby}."
        profile = (f"The user is a {adj} shopper whose free time goes to {hobby}. They enjoy {detail} and buy "
                   f"things that help with {hobby}.")
        users.append({"uid": uid, "platform": "amazon", "category": "Synthetic", "persona": persona,
                      "profile": profile, "writing_style": None, "stories": [], "latent_genre": fav})
        logs[uid] = [{"uid": uid, "log_id": f"{uid}:{k}", "type": "review", "timestamp": 1_600_000_000 + 86_400 * k,
                      "item": {"item_id": item, "title": catalog[item], "rating": 5.0},
                      "tag_v1": {"quality": "high", "harmless": "yes"}, "rewrite_v2": None, "summary": None}
                     for k, item in enumerate(history)]
    return users, logs
