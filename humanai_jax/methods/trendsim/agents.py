"""Prompt assembly for humanoid users, prototype attackers and moderation (docs/trendsim.md §4-§7). Templates are data
files in `prompts/<lang>/` (string.Template, `$field`); every call is one user message, no system message,
as in the reference. Views are rendered once per step and kept in the visit state (so the perception and
the decision of a step read the same page, and a checkpoint needs no re-rendering).
"""

from __future__ import annotations

import string

from humanai_jax.agents import PromptLibrary
from humanai_jax.methods.trendsim.data import Post
from humanai_jax.methods.trendsim.media import SocialMedia

PACKAGE = "humanai_jax.methods.trendsim"
LANGS = ("zh", "en")


def library(lang: str) -> PromptLibrary:
    if lang not in LANGS:
        raise ValueError(f"prompt language must be one of {LANGS}, got {lang!r}")
    return PromptLibrary(PACKAGE, lang=lang)


def fmt_state(value: float, compat: bool) -> str:
    """`0.50` (ours) or the reference's slip `50/1.0` (value x 100 printed as %.0f, then "/1.0")."""
    return f"{value * 100:.0f}/1.0" if compat else f"{value:.2f}"


def role_block(lib: PromptLibrary, agent: dict, *, compat_format: bool = False) -> str:
    empty = "（无）" if lib.lang == "zh" else "(none)"
    return lib.render("role", persona=agent["persona"], memory=agent["memory"] or empty,
                      opinion=agent["opinion"] or empty, emotion=fmt_state(agent["emotion"], compat_format),
                      confidence=fmt_state(agent["confidence"], compat_format))


def entry_view(lib: PromptLibrary, post: Post) -> str:
    return lib.render("view_entry", title=post.title, brief=post.brief_intro)


def main_view(lib: PromptLibrary, post: Post, media: SocialMedia, page: int, page_size: int,
              order: list[int] | None = None) -> tuple[str, list[int]]:
    """(view text, cids shown). Comments are listed as `[position] text` (position in `order`, default the hot
    list); `-` when the page is empty."""
    shown = media.page(page, page_size, order)
    lines = "\n".join(f"[{pos}] {media.comments[cid].text}" for pos, cid in shown) or "-"
    return lib.render("view_main", content=post.content, comments=lines), [cid for _, cid in shown]


def comment_view(lib: PromptLibrary, media: SocialMedia, cid: int | None, replies_shown: int) -> str:
    if cid is None:
        return lib.text("comment_missing")
    c = media.comments[cid]
    replies = "\n".join(f"- {r['text']}" for r in c.replies[:replies_shown]) or "-"
    return lib.render("view_comment", comment=c.text, replies=replies)


def user_message(lib: PromptLibrary, name: str, agent: dict, *, compat_format: bool = False, **fields) -> list[dict]:
    """One user message from template `name` with the role block filled in."""
    text = lib.render(name, role=role_block(lib, agent, compat_format=compat_format), **fields)
    return [{"role": "user", "content": text}]


def action_description(lib: PromptLibrary, action: str, text: str = "") -> str:
    return string.Template(lib.json("actions")[action]).substitute(text=text)


def attacker_message(lib: PromptLibrary, agent: dict, view: str, prototype: str) -> list[dict]:
    return [{"role": "user", "content": lib.render("attack", persona=agent["persona"], view=view,
                                                   prototype=prototype)}]


def moderation_message(lib: PromptLibrary, comment: str) -> list[dict]:
    return [{"role": "user", "content": lib.render("moderate", comment=comment)}]


def attacker_profiles(lib: PromptLibrary) -> dict:
    """{type: {name, persona, prototypes[5]}} for S, T, F."""
    return lib.json("attackers")
