"""JSON output constraints: a byte-level pushdown automaton compiled from a JSON schema (or "any JSON
object"), turned into per-token allowed masks over the vocabulary.

Why bytes: byte-level BPE tokens may hold half a UTF-8 character, so the automaton reads the bytes a
token decodes to (`token_bytes`); JSON's structure is ASCII, and inside strings UTF-8 sequences are
checked for well-formed lead/continuation bytes.

Output is compact JSON (no whitespace). Supported schema subset (anything else -> `SchemaError`):

  * object: `properties`, `required`, `additionalProperties: false` (or absent; no extra keys are ever
    generated), `title`/`description`. Every declared property is emitted, in declared order (so the
    output satisfies `required` whatever it lists);
  * string: `enum`, `const`, `maxLength` (strings with maxLength hold printable ASCII only),
    `minLength` (counted in characters: an escape or a UTF-8 character is one); no `pattern`/`format`;
  * integer (optional `minimum`/`maximum` when the range has at most 1000 values: compiled to an enum),
    number (decimal, up to 15 integer and 6 fraction digits), boolean, null;
  * array: `items` (one schema), `minItems`, `maxItems`; or a closed tuple: `prefixItems` with `items: false`
    (every position is written, in order: give `minItems` = the number of positions so that validators agree);
  * `enum` / `const` of any JSON scalars; nested objects and arrays to any depth;
  * `$ref` to `#/$defs/<name>` or `#/definitions/<name>` of the root (pydantic's nested models), not recursive;
  * `anyOf` / `oneOf` whose alternatives start with different bytes (pydantic's `Optional[X]`: X or null), or
    share a start and first differ at a literal byte (objects that differ in a const property), which are
    left-factored into one sequence that forks there (`_alternatives`).

The mask for a state and a token budget keeps token t iff its bytes are a legal continuation and the
shortest completion after it still fits in the tokens left (`Tracker.allowed`). The completion's cost in
tokens is its greedy longest-match tokenization over the vocabulary (`VocabIndex.count_tokens`; at most one
token per byte, since every ASCII byte is a token): following a completion shortens it from the front, so
emitting its first greedy token leaves a completion that costs exactly one token less, and a request that
stops at `max_tokens` still ends with a complete, schema-valid document. (Counting one token per byte would
also be safe, but it reserves a long schema's whole skeleton byte by byte and leaves the content no room.)
Masks are memoised per automaton state, so the cost per step after warm-up is one numpy comparison over V.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MAX_INT_DIGITS = 15
MAX_FRAC_DIGITS = 6
ANY_MAX_DEPTH = 6  # nesting limit of free-form JSON (`json_object`)
_ENUM_RANGE_LIMIT = 1000
_IGNORED_KEYS = {"title", "description", "$schema", "examples", "default", "$comment"}
_INF = np.iinfo(np.int32).max

Q, BS, COLON, COMMA = 0x22, 0x5C, 0x3A, 0x2C
LBRACE, RBRACE, LBRACK, RBRACK, MINUS, DOT = 0x7B, 0x7D, 0x5B, 0x5D, 0x2D, 0x2E
DIGITS = frozenset(range(0x30, 0x3A))
ESCAPES = frozenset(b'"\\/bfnrt')


class SchemaError(ValueError):
    """The schema uses a feature outside the supported subset (see module docstring)."""


# ------------------------------------------------------------------------------ schema -> nodes
class Grammar:
    """Compiled nodes. Node kinds: ("obj", parts) with parts a tuple of bytes literals and child node
    ids; ("arr", item, min_items, max_items); ("str", min_len, max_len | None, ascii_only);
    ("num", is_integer); ("lit", options: tuple of bytes); ("any", depth) free-form value;
    ("gobj", depth) free-form object; ("alt", children) anyOf / oneOf whose children start with disjoint
    bytes. `root` is the top node id."""

    def __init__(self):
        self.nodes: list[tuple] = []
        self.root = -1
        self._min: dict[int, bytes] = {}
        self._ids: dict[tuple, int] = {}

    def add(self, node: tuple) -> int:
        """The id of `node`, shared by every identical node (children are ids, so identical sub-schemas compile to
        one id: alternatives that repeat a sub-schema factor through it, and its masks are memoised once)."""
        nid = self._ids.get(node)
        if nid is None:
            self.nodes.append(node)
            nid = self._ids[node] = len(self.nodes) - 1
        return nid

    def min_text(self, nid: int) -> bytes:
        """The shortest valid text of node `nid`."""
        if nid not in self._min:
            self._min[nid] = self._compute_min(nid)
        return self._min[nid]

    def _compute_min(self, nid: int) -> bytes:
        node = self.nodes[nid]
        kind = node[0]
        if kind == "obj":
            return b"".join(p if isinstance(p, bytes) else self.min_text(p) for p in node[1])
        if kind == "arr":
            return b"[" + b",".join([self.min_text(node[1])] * node[2]) + b"]"
        if kind == "str":
            return b'"' + b"a" * node[1] + b'"'
        if kind == "num":
            return b"0"
        if kind == "lit":
            return min(node[1], key=len)
        if kind == "gobj":
            return b"{}"
        if kind == "alt":
            return min((self.min_text(c) for c in node[1]), key=len)
        return b"0"  # any

    def first_bytes(self, nid: int) -> frozenset[int]:
        """The bytes a text of node `nid` can start with."""
        node = self.nodes[nid]
        kind = node[0]
        if kind == "obj":
            first = node[1][0]
            return frozenset({first[0]}) if isinstance(first, bytes) else self.first_bytes(first)
        if kind == "num":
            return DIGITS | {MINUS}
        if kind in ("arr", "str", "gobj"):
            return frozenset({{"arr": LBRACK, "str": Q, "gobj": LBRACE}[kind]})
        if kind == "lit":
            return frozenset(o[0] for o in node[1])
        if kind == "alt":
            return frozenset().union(*(self.first_bytes(c) for c in node[1]))
        return frozenset(range(256))  # any


def _literal_options(values: Sequence[Any], where: str) -> tuple[bytes, ...]:
    opts = []
    for v in values:
        if isinstance(v, (dict, list)):
            raise SchemaError(f"{where}: enum/const values must be JSON scalars, got {v!r}")
        opts.append(json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode())
    if not opts:
        raise SchemaError(f"{where}: enum is empty")
    return tuple(dict.fromkeys(opts))


def _check_keys(schema: Mapping, allowed: set, where: str) -> None:
    extra = set(schema) - allowed - _IGNORED_KEYS
    if extra:
        raise SchemaError(f"{where}: unsupported schema keyword(s) {sorted(extra)} (supported: {sorted(allowed)})")


@functools.lru_cache(maxsize=256)
def _grammar_of(schema_json: str) -> Grammar:
    return compile_schema(json.loads(schema_json))


def grammar_for(schema: Mapping | None) -> Grammar:
    """`compile_schema`, memoised by the schema's JSON text (declared key order kept, not sorted: it is the order the
    output takes). One schema is typically checked by an agent caller, compiled for decoding and used to put replies
    in the decoder's form: it compiles once. Grammars are read-only after compiling (their shortest-text memo aside)."""
    return _grammar_of(json.dumps(schema))


def compile_schema(schema: Mapping | None) -> Grammar:
    """JSON schema (subset) -> Grammar; None = any JSON object (`response_format: json_object`)."""
    g = Grammar()
    if schema is None:
        g.root = g.add(("gobj", 0))
        return g
    if not isinstance(schema, Mapping):
        raise SchemaError(f"schema: a schema must be an object, got {type(schema).__name__}")
    refs = _Refs(schema)
    g.root = _compile(g, {k: v for k, v in schema.items() if k not in _Refs.SECTIONS}, "schema", refs)
    return g


class _Refs:
    """Local `$ref`s into the root's `$defs` / `definitions` (what pydantic writes for nested models).
    Each definition compiles once (its node is shared by every reference); a definition that refers back to
    itself, directly or not, is refused: the automaton's states are finite."""

    SECTIONS = ("$defs", "definitions")

    def __init__(self, root: Mapping):
        self.defs: dict[str, tuple[str, Mapping]] = {}
        for section in self.SECTIONS:
            table = root.get(section, {})
            if not isinstance(table, Mapping):
                raise SchemaError(f"schema.{section} must be an object")
            self.defs.update({f"#/{section}/{name}": (f"schema.{section}.{name}", sub) for name, sub in table.items()})
        self.nodes: dict[str, int] = {}
        self.open: list[str] = []

    def schema_of(self, s: Any) -> Any:
        """`s` with local `$ref`s followed to the schema they name (unknown refs are left as they are)."""
        while isinstance(s, Mapping) and "$ref" in s and s["$ref"] in self.defs:
            s = self.defs[s["$ref"]][1]
        return s

    def resolve(self, g: Grammar, ref: Any, where: str) -> int:
        if ref not in self.defs:
            raise SchemaError(f"{where}: $ref {ref!r} does not name a schema under #/$defs/ or #/definitions/")
        if ref in self.open:
            raise SchemaError(f"{where}: recursive $ref {ref!r} is not supported")
        if ref not in self.nodes:
            self.open.append(ref)
            self.nodes[ref] = _compile(g, self.defs[ref][1], self.defs[ref][0], self)
            self.open.pop()
        return self.nodes[ref]


def _compile(g: Grammar, s: Any, where: str, refs: _Refs) -> int:
    if not isinstance(s, Mapping):
        raise SchemaError(f"{where}: a schema must be an object, got {type(s).__name__}")
    if "$ref" in s:
        _check_keys(s, {"$ref"}, where)
        return refs.resolve(g, s["$ref"], where)
    for word in ("anyOf", "oneOf"):
        if word in s:
            return _alternatives(g, s, word, where, refs)
    if "enum" in s or "const" in s:
        _check_keys(s, {"enum", "const", "type"}, where)
        values = s["enum"] if "enum" in s else [s["const"]]
        if not isinstance(values, list):
            raise SchemaError(f"{where}: enum must be a list")
        return g.add(("lit", _literal_options(values, where)))
    t = s.get("type")
    if t == "object":
        _check_keys(s, {"type", "properties", "required", "additionalProperties"}, where)
        props = s.get("properties", {})
        if not isinstance(props, Mapping):
            raise SchemaError(f"{where}.properties must be an object")
        req = s.get("required", [])
        if not isinstance(req, list) or any(r not in props for r in req):
            raise SchemaError(f"{where}.required must list declared properties, got {req!r}")
        if s.get("additionalProperties", False) not in (False, True) and not isinstance(
                s.get("additionalProperties"), Mapping):
            raise SchemaError(f"{where}.additionalProperties must be a boolean or schema")
        parts: list = []
        lead = b"{"
        for name, sub in props.items():
            key = json.dumps(str(name), ensure_ascii=False).encode()
            parts.append(lead + key + b":")
            parts.append(_compile(g, sub, f"{where}.properties.{name}", refs))
            lead = b","
        parts.append(b"}" if props else b"{}")
        return g.add(("obj", tuple(parts)))
    if t == "array" and "prefixItems" in s:
        return _tuple(g, s, where, refs)
    if t == "array":
        _check_keys(s, {"type", "items", "minItems", "maxItems"}, where)
        if "items" not in s:
            raise SchemaError(f"{where}: arrays need an `items` schema")
        lo, hi = int(s.get("minItems", 0)), s.get("maxItems")
        if hi is not None and int(hi) < lo:
            raise SchemaError(f"{where}: maxItems < minItems")
        return g.add(("arr", _compile(g, s["items"], f"{where}.items", refs), lo, None if hi is None else int(hi)))
    if t == "string":
        _check_keys(s, {"type", "minLength", "maxLength"}, where)
        lo, hi = int(s.get("minLength", 0)), s.get("maxLength")
        if hi is not None and int(hi) < lo:
            raise SchemaError(f"{where}: maxLength < minLength")
        return g.add(("str", lo, None if hi is None else int(hi), hi is not None))
    if t == "integer":
        _check_keys(s, {"type", "minimum", "maximum"}, where)
        if "minimum" in s or "maximum" in s:
            lo, hi = s.get("minimum"), s.get("maximum")
            if lo is None or hi is None or int(hi) - int(lo) + 1 > _ENUM_RANGE_LIMIT or int(hi) < int(lo):
                raise SchemaError(f"{where}: integer bounds are supported only as a range of at most "
                                  f"{_ENUM_RANGE_LIMIT} values with both minimum and maximum")
            return g.add(("lit", _literal_options(list(range(int(lo), int(hi) + 1)), where)))
        return g.add(("num", True))
    if t == "number":
        _check_keys(s, {"type"}, where)
        return g.add(("num", False))
    if t == "boolean":
        _check_keys(s, {"type"}, where)
        return g.add(("lit", (b"true", b"false")))
    if t == "null":
        _check_keys(s, {"type"}, where)
        return g.add(("lit", (b"null",)))
    raise SchemaError(f"{where}: unsupported type {t!r} (supported: object, array, string, integer, number, "
                      f"boolean, null, enum, const, local $ref, anyOf/oneOf; no type lists)")


def _tuple(g: Grammar, s: Mapping, where: str, refs: _Refs) -> int:
    """A closed tuple: `prefixItems` (one schema per position) and no further items (`items: false`, or
    minItems = maxItems = the number of positions). Compiled like an object: literal `[` `,` `]` parts between
    the positions' nodes."""
    _check_keys(s, {"type", "prefixItems", "items", "minItems", "maxItems"}, where)
    positions = s["prefixItems"]
    if not isinstance(positions, list):
        raise SchemaError(f"{where}.prefixItems must be a list of schemas")
    n = len(positions)
    closed = s.get("items", None) is False or (s.get("minItems") == n and s.get("maxItems") == n)
    if not closed or s.get("items", False) is not False or s.get("minItems", n) != n or s.get("maxItems", n) != n:
        raise SchemaError(f"{where}: prefixItems is supported only as a closed tuple (items: false, every "
                          "position required)")
    if not n:
        return g.add(("obj", (b"[]",)))
    parts: list = []
    for i, sub in enumerate(positions):
        parts += [b"[" if i == 0 else b",", _compile(g, sub, f"{where}.prefixItems[{i}]", refs)]
    parts.append(b"]")
    return g.add(("obj", tuple(parts)))


def _alternatives(g: Grammar, s: Mapping, word: str, where: str, refs: _Refs) -> int:
    """anyOf / oneOf. Alternatives that start with different bytes (pydantic's `Optional[X]`: X or null) become an
    "alt" node: the first byte of the value picks one, so the automaton never follows two at once. Alternatives that
    share a start (objects that differ in a const property: a discriminated union, or a field whose value decides
    another's) are left-factored (`_factor`): their common bytes become one sequence that forks where they differ,
    as long as they differ at a literal byte. With disjoint starts a document matches one alternative, so oneOf's
    "exactly one" holds; a factored oneOf needs closed object alternatives for that (else refused: use anyOf).
    Alternatives that cannot be told apart at a byte are refused by name."""
    _check_keys(s, {word}, where)
    options = s[word]
    if not isinstance(options, list) or not options:
        raise SchemaError(f"{where}.{word} must be a non-empty list of schemas")
    children = [_compile(g, sub, f"{where}.{word}[{i}]", refs) for i, sub in enumerate(options)]
    if len(children) == 1:
        return children[0]
    seen: dict[int, int] = {}
    clash = None
    for i, c in enumerate(children):
        for b in g.first_bytes(c):
            if b in seen and clash is None:
                clash = (seen[b], i, b)
            seen[b] = i
    if clash is None:
        return g.add(("alt", tuple(children)))
    if word == "oneOf" and not all(_closed_object(refs, o) for o in options):
        i, j, b = clash
        raise SchemaError(f"{where}.oneOf: alternatives {i} and {j} can both start with {chr(b)!r}; factoring oneOf "
                          "needs closed object alternatives (every property required, additionalProperties false, "
                          "at every depth), else a document may match two of them (use anyOf)")
    try:
        parts = _factor(g, [_flatten(g, c) for c in children])
    except _Unfactorable as err:
        i, j, b = clash
        raise SchemaError(f"{where}.{word}: alternatives {i} and {j} can both start with {chr(b)!r} and {err}; only "
                          "alternatives that start differently, or differ at a literal byte, are supported") from None
    return g.add(("obj", tuple(parts)))


class _Unfactorable(Exception):
    pass


def _closed_object(refs: _Refs, s: Any, depth: int = 0) -> bool:
    """A schema whose objects, at every depth, accept only their declared properties, all of them present: two
    alternatives of this kind whose texts differ never accept the same document."""
    s = refs.schema_of(s)
    if not isinstance(s, Mapping) or depth > 32:
        return False
    for word in ("anyOf", "oneOf"):
        if word in s:
            return all(_closed_object(refs, o, depth + 1) for o in s[word])
    t = s.get("type")
    if t == "object":
        props = s.get("properties", {})
        return (s.get("additionalProperties") is False and set(s.get("required", [])) == set(props)
                and all(_closed_object(refs, sub, depth + 1) for sub in props.values()))
    if t == "array" and "prefixItems" in s:  # a tuple accepts shorter arrays unless minItems says otherwise
        positions = s["prefixItems"]
        return (isinstance(positions, list) and s.get("minItems") == len(positions)
                and all(_closed_object(refs, sub, depth + 1) for sub in positions))
    if t == "array":
        return _closed_object(refs, s.get("items"), depth + 1) if isinstance(s.get("items"), Mapping) else True
    return True  # scalars, enum, const


def _flatten(g: Grammar, nid: int) -> list:
    """Node `nid` as a sequence of literal bytes and child node ids: objects and tuples are opened, one-option
    literals and empty arrays become bytes, anything else stays a child. Adjacent bytes are merged."""
    node = g.nodes[nid]
    if node[0] == "lit" and len(node[1]) == 1:
        parts = [node[1][0]]
    elif node[0] == "arr" and node[3] == 0:  # maxItems 0: the empty array is its only text
        parts = [b"[]"]
    elif node[0] == "obj":
        parts = [q for p in node[1] for q in ([p] if isinstance(p, bytes) else _flatten(g, p))]
    else:
        return [nid]
    out: list = []
    for p in parts:
        if isinstance(p, bytes) and out and isinstance(out[-1], bytes):
            out[-1] += p
        else:
            out.append(p)
    return out


def _factor(g: Grammar, seqs: list[list]) -> list:
    """One sequence for several: the common prefix, then an "alt" over the remainders grouped by their first byte
    (each group factored again). Raises `_Unfactorable` when two alternatives cannot be told apart at a byte."""
    prefix: list = []
    while True:
        if any(not q for q in seqs):
            raise _Unfactorable("one is a prefix of the other" if not all(not q for q in seqs) else "are identical")
        heads = [q[0] for q in seqs]
        if all(isinstance(h, int) for h in heads) and len(set(heads)) == 1:  # the same child in every one
            prefix.append(heads[0])
            seqs = [q[1:] for q in seqs]
            continue
        if all(isinstance(h, bytes) for h in heads):
            n = 0
            while all(len(h) > n and h[n] == heads[0][n] for h in heads):
                n += 1
            if n:
                prefix.append(heads[0][:n])
                seqs = [([h[n:]] if h[n:] else []) + q[1:] for h, q in zip(heads, seqs)]
                continue
        groups: dict[int, list] = {}
        for q in seqs:
            starts = {q[0][0]} if isinstance(q[0], bytes) else set(g.first_bytes(q[0]))
            owners = {id(groups[b]) for b in starts if b in groups}
            if owners and (len(owners) > 1 or not isinstance(q[0], bytes)
                           or any(not isinstance(r[0], bytes) for r in groups[q[0][0]])):
                raise _Unfactorable("differ first at a value, not at a literal byte")
            if owners:  # a literal first byte some earlier alternatives share: factored with them
                groups[q[0][0]].append(q)
            else:
                group = [q]
                groups.update({b: group for b in starts})
        branches = []
        for members in {id(m): m for m in groups.values()}.values():
            rest = members[0] if len(members) == 1 else _factor(g, members)
            branches.append(rest[0] if len(rest) == 1 and isinstance(rest[0], int) else g.add(("obj", tuple(rest))))
        prefix.append(g.add(("alt", tuple(branches))))
        return prefix


def canonical_document(doc: Any, schema: Mapping) -> str | None:
    """`doc` written as this module's automaton writes documents of `schema`: compact, object keys in declared
    order, an absent property filled with its `default` (or null when the property may be null), extra keys
    dropped (of several alternatives, one with exactly the document's keys is preferred, then one that keeps them
    all); None when `doc` has no such form (a required value
    missing, a value of the wrong kind or outside the schema's limits). The text is checked by running it through
    the compiled automaton, so a returned text is always one the decoder can write. Used to store training replies
    in the byte form a constrained decoder will produce."""
    refs = _Refs(schema)
    missing = object()
    kinds = {"string": str, "boolean": bool, "null": type(None), "integer": int, "number": (int, float)}

    # strictness of an object match: 2 = exactly the declared keys, 1 = no key dropped, 0 = keys may be dropped;
    # alternatives are tried from the strictest match down to the level the enclosing value asks for
    def fill(value: Any, s: Mapping, level: int) -> Any:
        s = refs.schema_of(s)
        for word in ("anyOf", "oneOf"):
            if word in s:
                for strict in range(2, level - 1, -1):
                    for option in s[word]:
                        out = fill(value, option, strict)
                        if out is not missing:
                            return out
                return missing
        if "enum" in s or "const" in s:
            allowed = s["enum"] if "enum" in s else [s["const"]]
            same = any(type(value) is type(v) and value == v for v in allowed)  # True is not 1 here
            return value if same else missing
        t = s.get("type")
        if t == "object" and isinstance(value, dict):
            props = s.get("properties", {})
            if (level >= 1 and set(value) - set(props)) or (level == 2 and set(props) - set(value)):
                return missing
            out = {}
            for name, sub in props.items():
                if name in value:
                    out[name] = fill(value[name], sub, level)
                elif "default" in sub or "default" in refs.schema_of(sub):
                    out[name] = fill(sub.get("default", refs.schema_of(sub).get("default")), sub, 0)
                else:
                    out[name] = fill(None, sub, 0)  # null when the property may be null
                if out[name] is missing:
                    return missing
            return out
        if t == "array" and isinstance(value, list):
            subs = s["prefixItems"] if "prefixItems" in s else [s.get("items", {})] * len(value)
            if len(subs) != len(value):
                return missing
            out = [fill(v, sub, level) for v, sub in zip(value, subs)]
            return missing if any(v is missing for v in out) else out
        if t in kinds and isinstance(value, kinds[t]) and not (t in ("integer", "number") and isinstance(value, bool)):
            return value
        return missing

    out = fill(doc, schema, 0)
    if out is missing:
        return None
    text = json.dumps(out, ensure_ascii=False, separators=(",", ":"))
    # a limit the decoder enforces (length, range, number form, escapes) may still rule the text out: no such form
    return text if Automaton(grammar_for(schema)).accepts(text.encode("utf-8")) else None


# ------------------------------------------------------------------------------ the automaton
# A state is a tuple of frames (the stack, top last); frames are tuples, so states hash and memoise.
#   ("obj", nid, part, off)   inside literal part `part` at byte `off`, or at a child part (off = 0)
#   ("arr", nid, phase, n)    phase 0 expect '[', 1 after '[', 2 after an item, 3 after ','; n items
#   ("str", nid, phase, n, pending)  phase 0 expect '"', 1 inside, 2 after '\\'; n chars; pending
#                             UTF-8 continuation bytes still due
#   ("num", nid, phase, digits) phases: 0 start, 1 after '-', 2 after leading 0, 3 int digits,
#                             4 after '.', 5 fraction digits
#   ("lit", nid, text)        bytes typed so far
#   ("any", depth)            a free value not started
#   ("gobj", depth, phase)    0 expect '{', 1 after '{', 2 after key, 3 after ':', 4 after value, 5 after ','
#   ("garr", depth, phase)    0 expect '[', 1 after '[', 2 after value, 3 after ','
#   ("alt", nid)              anyOf not started: its first byte replaces it with one alternative's frame
# Child frames are pushed when their first byte arrives; a finished frame pops and its parent
# advances (`_after_child`). Numbers and literals that may continue pop only when a byte they cannot
# take arrives, which is then fed to the parent.

_FREE_LITERALS = {-2: (b"true",), -3: (b"false",), -4: (b"null",)}
_DONE = "done"  # the frame consumed its final byte
_POP = "pop"  # the frame is complete and does not take this byte: feed it to the parent


class Automaton:
    def __init__(self, grammar: Grammar):
        self.g = grammar

    def initial(self) -> tuple:
        return (self._start_frame(self.g.root),)

    def _start_frame(self, nid: int) -> tuple:
        kind = self.g.nodes[nid][0]
        if kind == "obj":
            return ("obj", nid, 0, 0)
        if kind == "arr":
            return ("arr", nid, 0, 0)
        if kind == "str":
            return ("str", nid, 0, 0, 0)
        if kind == "num":
            return ("num", nid, 0, 0)
        if kind == "lit":
            return ("lit", nid, b"")
        if kind == "gobj":
            return ("gobj", self.g.nodes[nid][1], 0)
        if kind == "alt":
            return ("alt", nid)
        return ("any", self.g.nodes[nid][1])

    # -------------------------------------------------------------- one byte
    def step(self, state: tuple, b: int) -> tuple | None:
        """The state after byte `b`, or None if `b` is not allowed."""
        while state:
            top = state[-1]
            r = self._frame_step(top, b)
            if r is None:
                return None
            if r == _POP:
                state = self._pop(state)
                continue
            if r == _DONE:
                return self._pop(state)
            return state[:-1] + r  # r: replacement frames for the top (a push adds one)
        return None  # the document is complete: only the end of sequence may follow

    def _pop(self, state: tuple) -> tuple:
        state = state[:-1]
        while state:
            parent = self._after_child(state[-1])
            if self._sequence_done(parent):
                state = state[:-1]  # a sequence that ends with that child is complete too
                continue
            return state[:-1] + (parent,)
        return state

    def _sequence_done(self, f: tuple) -> bool:
        """An obj frame moved past its last part (it ended with a child, which has just finished)."""
        return f[0] == "obj" and f[2] == len(self.g.nodes[f[1]][1])

    def _after_child(self, f: tuple) -> tuple:
        kind = f[0]
        if kind == "obj":
            return ("obj", f[1], f[2] + 1, 0)
        if kind == "arr":  # the count matters only up to maxItems (or minItems): keeps states few
            _, _, lo, hi = self.g.nodes[f[1]]
            return ("arr", f[1], 2, min(f[3] + 1, hi if hi is not None else lo))
        if kind == "gobj":
            return ("gobj", f[1], {1: 2, 5: 2, 3: 4}[f[2]])
        if kind == "garr":
            return ("garr", f[1], 2)
        raise AssertionError(f"frame {f} has no children")

    def _push(self, parent: tuple, child: tuple, b: int):
        """Parent (already advanced to its waiting phase) plus the child started with byte b."""
        r = self._frame_step(child, b)
        if r is None or r == _POP:
            return None
        if r == _DONE:  # a one-byte child (a factored fork's `}` or `"` branch): the parent moves past it
            after = self._after_child(parent)
            if self._sequence_done(after):
                return _DONE  # ... and was a sequence ending with that child: complete too
            return (after,)
        return (parent,) + r

    def _frame_step(self, f: tuple, b: int):
        kind = f[0]
        if kind == "obj":
            parts = self.g.nodes[f[1]][1]
            part = parts[f[2]]
            if isinstance(part, bytes):
                if b != part[f[3]]:
                    return None
                if f[3] + 1 < len(part):
                    return (("obj", f[1], f[2], f[3] + 1),)
                return _DONE if f[2] + 1 == len(parts) else (("obj", f[1], f[2] + 1, 0),)
            return self._push(f, self._start_frame(part), b)
        if kind == "str":
            return self._str_step(f, b)
        if kind == "num":
            return self._num_step(f, b)
        if kind == "lit":
            opts = self._lit_opts(f[1])
            text = f[2] + bytes([b])
            if any(o.startswith(text) for o in opts):
                return (("lit", f[1], text),)
            return _POP if f[2] in opts else None
        if kind == "arr":
            return self._arr_step(f, b)
        if kind == "any":
            return self._any_step(f, b)
        if kind == "gobj":
            return self._gobj_step(f, b)
        if kind == "garr":
            return self._garr_step(f, b)
        if kind == "alt":  # the first byte picks the one alternative that can start with it
            for child in self.g.nodes[f[1]][1]:
                r = self._frame_step(self._start_frame(child), b)
                if r is not None and r != _POP:
                    return r
            return None
        raise AssertionError(kind)

    def _lit_opts(self, nid: int) -> tuple[bytes, ...]:
        """Options of a literal node; free-form true/false/null use the ids -2, -3, -4."""
        return self.g.nodes[nid][1] if nid >= 0 else _FREE_LITERALS[nid]

    def _str_step(self, f, b):
        _, nid, phase, n, pending = f
        _, lo, hi, ascii_only = self.g.nodes[nid] if nid >= 0 else ("str", 0, None, False)
        # n counts characters up to maxLength, or up to minLength when there is no maximum (then it saturates), and
        # is constant otherwise: states stay few, so memoised masks are reused
        cap = hi if hi is not None else lo
        counted = int(n < cap)
        if phase == 0:
            return (("str", nid, 1, 0, 0),) if b == Q else None
        if phase == 2:
            return (("str", nid, 1, n + counted, 0),) if b in ESCAPES else None
        if pending:
            return (("str", nid, 1, n, pending - 1),) if 0x80 <= b <= 0xBF else None
        if b == Q:
            return _DONE if n >= lo else None
        full = hi is not None and n >= hi
        if b == BS:
            return None if full or ascii_only else (("str", nid, 2, n, 0),)
        if full or b < 0x20 or b == 0x7F and ascii_only:
            return None
        if b < 0x80:
            return (("str", nid, 1, n + counted, 0),)
        if ascii_only:
            return None
        need = 1 if 0xC2 <= b <= 0xDF else 2 if 0xE0 <= b <= 0xEF else 3 if 0xF0 <= b <= 0xF4 else -1
        return None if need < 0 else (("str", nid, 1, n + counted, need),)

    def _num_step(self, f, b):
        _, nid, phase, d = f
        integer = self.g.nodes[nid][1] if nid >= 0 else False
        digit = b in DIGITS
        if phase in (0, 1):
            if phase == 0 and b == MINUS:
                return (("num", nid, 1, 0),)
            if digit:
                return (("num", nid, 2 if b == 0x30 else 3, 1),)
            return None
        if phase in (2, 3):
            if phase == 3 and digit and d < MAX_INT_DIGITS:
                return (("num", nid, 3, d + 1),)
            if b == DOT and not integer:
                return (("num", nid, 4, 0),)
            return _POP
        if phase == 4:
            return (("num", nid, 5, 1),) if digit else None
        if digit and d < MAX_FRAC_DIGITS:  # phase 5
            return (("num", nid, 5, d + 1),)
        return _POP

    def _arr_step(self, f, b):
        _, nid, phase, n = f
        _, item, lo, hi = self.g.nodes[nid]
        if phase == 0:
            return (("arr", nid, 1, 0),) if b == LBRACK else None
        if b == RBRACK and phase in (1, 2) and n >= lo:
            return _DONE
        if phase == 2:
            return (("arr", nid, 3, n),) if b == COMMA and (hi is None or n < hi) else None
        if phase == 1 and hi == 0:
            return None
        return self._push(("arr", nid, phase, n), self._start_frame(item), b)

    def _any_step(self, f, b):
        depth = f[1]
        if b == LBRACE and depth < ANY_MAX_DEPTH:
            return (("gobj", depth, 1),)
        if b == LBRACK and depth < ANY_MAX_DEPTH:
            return (("garr", depth, 1),)
        if b == Q:
            return (("str", -1, 1, 0, 0),)
        if b == MINUS or b in DIGITS:
            return self._num_step(("num", -1, 0, 0), b)
        for lit, nid in ((b"true", -2), (b"false", -3), (b"null", -4)):
            if b == lit[0]:
                return (("lit", nid, lit[:1]),)
        return None

    def _gobj_step(self, f, b):
        _, depth, phase = f
        if phase == 0:
            return (("gobj", depth, 1),) if b == LBRACE else None
        if phase in (1, 4) and b == RBRACE:
            return _DONE
        if phase in (1, 5) and b == Q:
            return (("gobj", depth, phase), ("str", -1, 1, 0, 0))
        if phase == 2:
            return (("gobj", depth, 3),) if b == COLON else None
        if phase == 3:
            return self._push(("gobj", depth, 3), ("any", depth + 1), b)
        if phase == 4 and b == COMMA:
            return (("gobj", depth, 5),)
        return None

    def _garr_step(self, f, b):
        _, depth, phase = f
        if phase in (1, 2) and b == RBRACK:
            return _DONE
        if phase == 2:
            return (("garr", depth, 3),) if b == COMMA else None
        return self._push(("garr", depth, phase), ("any", depth + 1), b)

    # -------------------------------------------------------------- completion
    def accepts(self, text: bytes) -> bool:
        """Whether the automaton writes `text` byte by byte and it ends a complete document."""
        state = self.initial()
        for b in text:
            state = self.step(state, b)
            if state is None:
                return False
        return self.finished(state)

    def finished(self, state: tuple) -> bool:
        """The bytes so far form a complete document (the end of sequence may come now)."""
        # an empty completion: nothing more is needed (frames below the top, if any, are sequences whose last part
        # is the top frame, a number or literal that may still continue)
        return not state or self.completion(state) == b""

    def completion(self, state: tuple) -> bytes:
        """The shortest bytes that complete the document from `state` (following them byte by byte
        shortens the completion by one byte each: the budget argument of the module docstring)."""
        out = []
        for i in range(len(state) - 1, -1, -1):
            out.append(self._frame_rest(state[i], child_open=i < len(state) - 1))
        return b"".join(out)

    def _frame_rest(self, f: tuple, child_open: bool) -> bytes:
        """Bytes this frame still needs; `child_open`: a child frame above it is in progress (its
        rest is counted already), so the frame continues as if that child had just finished."""
        if child_open:
            f = self._after_child(f)
        kind = f[0]
        g = self.g
        if kind == "obj":
            parts = g.nodes[f[1]][1]
            rest = []
            for j in range(f[2], len(parts)):
                p = parts[j]
                if isinstance(p, bytes):
                    rest.append(p[f[3]:] if j == f[2] else p)
                else:
                    rest.append(g.min_text(p))
            return b"".join(rest)
        if kind == "str":
            _, nid, phase, n, pending = f
            lo = g.nodes[nid][1] if nid >= 0 else 0
            if phase == 0:
                return g.min_text(nid)
            if phase == 2:
                return b'n' + b"a" * max(0, lo - n - 1) + b'"'
            return b"\x80" * pending + b"a" * max(0, lo - n) + b'"'
        if kind == "num":
            return b"0" if f[2] in (0, 1, 4) else b""
        if kind == "lit":
            opts = self._lit_opts(f[1])
            return min((o[len(f[2]):] for o in opts if o.startswith(f[2])), key=len)
        if kind == "arr":
            _, nid, phase, n = f
            item, lo = g.nodes[nid][1], g.nodes[nid][2]
            more = max(0, lo - n)
            if phase == 0:
                return g.min_text(nid)
            if phase == 3:
                return b",".join([g.min_text(item)] * max(1, more)) + b"]"
            lead = b"," if phase == 2 else b""
            return (lead + b",".join([g.min_text(item)] * more) if more else b"") + b"]"
        if kind == "any":
            return b"0"
        if kind == "gobj":
            return {0: b"{}", 1: b"}", 2: b":0}", 3: b"0}", 4: b"}", 5: b'"":0}'}[f[2]]
        if kind == "garr":
            return {1: b"]", 2: b"]", 3: b"0]"}[f[2]]
        if kind == "alt":
            return g.min_text(f[1])
        raise AssertionError(kind)


# ------------------------------------------------------------------------------ vocabulary
def _bytes_to_unicode() -> dict[str, int]:
    """GPT-2's byte <-> printable-unicode table, inverted (char -> byte)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def token_bytes(tokenizer, vocab_size: int) -> list[bytes | None]:
    """Bytes each token id decodes to (None: special/added tokens and ids beyond the tokenizer, which
    JSON output never uses). Handles byte-level BPE (GPT-2/Llama-3/Qwen) and SentencePiece
    (`▁` spaces, `<0xXX>` byte fallback) vocabularies."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    special |= {int(i) for i in getattr(tokenizer, "added_tokens_decoder", {}) or {}}
    n = min(len(tokenizer), vocab_size)
    pieces = tokenizer.convert_ids_to_tokens(list(range(n)))
    table = _bytes_to_unicode()
    byte_level = all(p is None or i in special or all(c in table for c in p) for i, p in enumerate(pieces))
    out: list[bytes | None] = [None] * vocab_size
    for i, p in enumerate(pieces):
        if p is None or i in special:
            continue
        if byte_level:
            out[i] = bytes(table[c] for c in p)
        elif len(p) == 6 and p.startswith("<0x") and p.endswith(">"):
            out[i] = bytes([int(p[3:5], 16)])
        else:
            out[i] = p.replace("▁", " ").encode()
        if not out[i]:
            out[i] = None
    return out


class VocabIndex:
    """A byte trie over the vocabulary's token bytes, for the mask search; shared by all requests."""

    def __init__(self, tbytes: Sequence[bytes | None]):
        self.vocab_size = len(tbytes)
        self.tbytes = list(tbytes)
        self.root: dict = {}
        for tid, bs in enumerate(tbytes):
            if not bs:
                continue
            node = self.root
            for b in bs:
                node = node.setdefault(b, {})
            node.setdefault(None, []).append(tid)
        single = {bs[0] for bs in tbytes if bs and len(bs) == 1}
        self.missing_ascii = sorted(set(range(0x20, 0x7F)) - single)
        self._counts: dict[bytes, int] = {}

    def count_tokens(self, text: bytes) -> int:
        """Tokens of `text`'s greedy longest-match tokenization (an upper bound on the fewest tokens that spell
        it); a byte no token spells counts as one token (the factory refuses vocabularies without ASCII bytes)."""
        hit = self._counts.get(text)
        if hit is not None:
            return hit
        n, i = 0, 0
        while i < len(text):
            node, j, end = self.root, i, i + 1
            while j < len(text) and text[j] in node:
                node = node[text[j]]
                j += 1
                if None in node:
                    end = j
            n, i = n + 1, end
        if len(self._counts) < 1_000_000:  # bounded memo
            self._counts[text] = n
        return n


class Tracker:
    """One request's JSON constraint on the host: the automaton state, and per step the allowed mask
    `[V]` for the tokens left. Stop (end-of-sequence) ids are allowed once the document is complete."""

    def __init__(self, automaton: Automaton, vocab: VocabIndex, stop_ids: Sequence[int], cache: dict):
        self.a = automaton
        self.vocab = vocab
        self.stop_ids = [int(s) for s in stop_ids if 0 <= int(s) < vocab.vocab_size]
        self.state = automaton.initial()
        self._cache = cache  # state -> (next completion lengths [V] i32, next states {tid: state})

    def _expand(self, state: tuple):
        hit = self._cache.get(state)
        if hit is not None:
            return hit
        clen = np.full((self.vocab.vocab_size,), _INF, np.int64)
        nxt: dict[int, tuple] = {}
        stack = [(self.vocab.root, state)]
        a = self.a
        while stack:
            node, st = stack.pop()
            for b, child in node.items():
                if b is None:
                    continue
                s2 = a.step(st, b)
                if s2 is None:
                    continue
                if None in child:
                    cost = self.vocab.count_tokens(a.completion(s2))
                    for tid in child[None]:
                        nxt[tid] = s2
                        clen[tid] = cost
                stack.append((child, s2))
        if a.finished(state):
            for s in self.stop_ids:
                clen[s] = 0
        hit = (clen, nxt)
        self._cache[state] = hit
        return hit

    def allowed(self, tokens_left: int) -> np.ndarray:
        """`[V]` bool: tokens after which the shortest completion fits in `tokens_left - 1` tokens."""
        clen, _ = self._expand(self.state)
        mask = clen <= max(tokens_left - 1, 0)
        if not mask.any():  # cannot happen while the budget invariant holds; keep the request alive
            mask = clen < _INF
        return mask

    def advance(self, token: int) -> None:
        if token in self.stop_ids:
            return
        _, nxt = self._expand(self.state)
        if token not in nxt:
            raise ValueError(f"token {token} is not allowed by the JSON constraint in state {self.state}")
        self.state = nxt[token]

    def min_tokens(self) -> int:
        """Tokens the shortest complete document needs at most (its greedy tokenization)."""
        return self.vocab.count_tokens(self.a.completion(self.state))


class JsonConstraintFactory:
    """Compiles schemas (`grammar_for`'s memo) and makes per-request `Tracker`s; masks memoised per (schema, state)."""

    def __init__(self, tokenizer, vocab_size: int):
        self.vocab = VocabIndex(token_bytes(tokenizer, vocab_size))
        self._grammars: dict[str, tuple[Automaton, dict]] = {}

    def tracker(self, schema: Mapping | None, stop_ids: Sequence[int]) -> Tracker:
        key = json.dumps(schema)  # not sorted: the declared property order is the order the output takes
        if key not in self._grammars:
            if self.vocab.missing_ascii:
                raise SchemaError("JSON constraints need a token for every printable ASCII byte; the vocabulary "
                                  f"lacks {bytes(self.vocab.missing_ascii[:10])!r}")
            self._grammars[key] = (Automaton(_grammar_of(key)), {})
            if len(self._grammars) > 256:  # bounded memory: forget the oldest schema
                self._grammars.pop(next(iter(self._grammars)))
        automaton, cache = self._grammars[key]
        return Tracker(automaton, self.vocab, stop_ids, cache)
