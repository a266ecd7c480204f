"""Prompt templates as package data: `<package>/<folder>/[<lang>/]<name>.txt` files read with
`importlib.resources` (so they ship inside the wheel) and filled as `string.Template` (`$field`).

    PROMPTS = PromptLibrary("humanai_jax.methods.humanllm")        # its prompts/ folder
    PROMPTS.render("tag_v1", text=..., platform="reddit")           # a missing field raises KeyError
    PROMPTS.json("judge_rubrics")                                   # data next to the prompts

Each method keeps its prompt files in its own folder; this loader is the shared code. With a language
tag (`PromptLibrary(pkg, lang="zh")`) `<folder>/zh/<name>.txt` is used when it exists, else the untagged
file. Templates are cached per library. See docs/agents.md.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import string
from typing import Any

__all__ = ["PromptLibrary"]


class PromptLibrary:
    def __init__(self, package: str, folder: str = "prompts", lang: str | None = None):
        self.package, self.folder, self.lang = package, folder, lang

    def _root(self):
        return importlib.resources.files(self.package).joinpath(*self.folder.split("/"))

    def path(self, name: str, suffix: str = ".txt"):
        """The resource of `name` (language-tagged first); FileNotFoundError names where it looked."""
        root = self._root()
        tried = []
        for base in ([root / self.lang] if self.lang else []) + [root]:
            p = base.joinpath(*f"{name}{suffix}".split("/"))
            if p.is_file():
                return p
            tried.append(str(p))
        raise FileNotFoundError(f"no prompt {name!r} in {self.package}: tried {tried}")

    def text(self, name: str) -> str:
        return _read(self, name, ".txt")

    def template(self, name: str) -> string.Template:
        """`<name>.txt` as a `string.Template`."""
        return string.Template(self.text(name))

    def render(self, name: str, /, **fields) -> str:
        """Fills a template; a missing field raises KeyError naming it."""
        return self.template(name).substitute(**fields)

    def fields(self, name: str) -> set[str]:
        """The placeholders a template uses (for golden-file tests and config checks)."""
        return set(self.template(name).get_identifiers())

    def json(self, name: str) -> Any:
        """`<name>.json` next to the templates (e.g. rubric data); a fresh object per call."""
        return json.loads(_read(self, name, ".json"))

    def __repr__(self) -> str:
        return f"PromptLibrary({self.package!r}, {self.folder!r}, lang={self.lang!r})"

    def __hash__(self) -> int:
        return hash((self.package, self.folder, self.lang))

    def __eq__(self, other) -> bool:
        return isinstance(other, PromptLibrary) and (self.package, self.folder, self.lang) == \
            (other.package, other.folder, other.lang)


@functools.cache
def _read(library: PromptLibrary, name: str, suffix: str) -> str:
    """Cached file text per (library, name): package data does not change while the process runs."""
    return library.path(name, suffix).read_text(encoding="utf-8")
