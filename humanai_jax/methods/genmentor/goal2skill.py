"""The goal-to-skill model (docs/genmentor.md §2.2, §6): dataset, SFT on the shared Trainer, evaluation against BM25.

Taxonomy (JSON; `assets/taxonomy_sample.json` is the shipped sample, a user file has the same format):
  {"skills": [{"name", "description", "aliases"?}],
   "roles": [{"name", "phrases": [...], "skills": {skill: level}, "focuses": [{"phrase", "objective",
              "skills": {skill: level}}]}]}
Dataset (one JSON line per goal): {id, goal, role, focus, seniority, template, track,
  skill_requirements: [{name, required_level}], split}. A goal is a phrasing template x seniority
  (junior: every level one lower, senior: one higher) x role phrase x optional focus; its gold skills are
  the role's plus the focus's (the focus level wins), at most 10, validated by `SkillRequirements`.
  `track` is the reasoning track (objectives -> seniority -> additional skills) the "tracks" variant learns
  before the JSON (docs/genmentor.md §6; ours is templated from the taxonomy, no teacher model).
  The split is by (role, focus, seniority) combination: every held-out goal is a combination never seen
  in training (its role and focus were, in other combinations), phrased with all templates.
SFT: prompt = the Skill Requirement Mapper's prompt (`skill_mapper_{system,task}.txt`, the same the tutoring
  pipeline sends), target = track + JSON (or JSON only), assistant-only loss on the core `train_step`
  (`mask` = loss weight of each target token), one sample per row, padded.
Evaluation: greedy decoding, the reply parsed with the JSON ladder (`SkillRequirements`; an invalid reply is
  scored leniently from whatever names it holds, and counted), precision / recall / F1 per goal (exact name
  match), macro means with bootstrap CIs. Baselines on the same goals: BM25 over the taxonomy's skills
  (top-k, k chosen on validation) and BM25 nearest training goal (copies that goal's gold skills).
"""

from __future__ import annotations

import collections
import functools
import json
import os
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field, ValidationError, model_validator

from humanai_jax.methods.genmentor import schemas as S
from humanai_jax.methods.genmentor.agents import PROMPTS

__all__ = ["Taxonomy", "load_taxonomy", "build_dataset", "sft_messages", "completion", "encode_sft", "pad_rows",
           "batch_indices", "parse_prediction", "bm25_taxonomy", "bm25_goal_knn", "score", "CHATML_TEMPLATE",
           "SAMPLE_TAXONOMY", "write_dataset", "read_dataset"]

SAMPLE_TAXONOMY = "assets/taxonomy_sample.json"
TEMPLATES = (
    "I want to become a {sen}{role}{focus}.",
    "Help me prepare for a job as a {sen}{role}{focus}.",
    "My goal is to work as a {sen}{role}{focus}.",
    "I'd like to get hired as a {sen}{role}{focus}.",
    "Train me to be a {sen}{role}{focus}.",
    "Get me ready for a {sen}{role} position{focus}.",
)
SENIORITY = {"junior": ("junior ", -1), "mid": ("", 0), "senior": ("senior ", 1)}
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'"
    " + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


# ------------------------------------------------------------------------------ taxonomy
class TaxSkill(BaseModel):
    name: str = Field(min_length=1)
    description: str = ""
    aliases: list[str] = Field(default_factory=list)


class Focus(BaseModel):
    phrase: str = Field(min_length=1)
    objective: str = Field(min_length=1)
    skills: dict[str, S.Level] = Field(min_length=1)


class Role(BaseModel):
    name: str = Field(min_length=1)
    phrases: list[str] = Field(min_length=1)
    skills: dict[str, S.Level] = Field(min_length=1)
    focuses: list[Focus] = Field(default_factory=list)


class Taxonomy(BaseModel):
    name: str = ""
    skills: list[TaxSkill] = Field(min_length=1)
    roles: list[Role] = Field(min_length=1)

    @model_validator(mode="after")
    def _known(self):
        S._unique([s.name for s in self.skills], "taxonomy skill")
        known = {s.name for s in self.skills}
        for r in self.roles:
            for where, names in [(f"role {r.name!r}", r.skills)] + [
                    (f"role {r.name!r} focus {f.phrase!r}", f.skills) for f in r.focuses]:
                unknown = sorted(set(names) - known)
                if unknown:
                    raise ValueError(f"{where} names skills not in the taxonomy's skills list: {unknown}")
        return self


def load_taxonomy(path: str | None = None) -> Taxonomy:
    """The taxonomy at `path` (None: the shipped sample); errors name the file and the field."""
    import importlib.resources

    if path:
        with open(path, encoding="utf-8") as f:
            raw, where = f.read(), path
    else:
        res = importlib.resources.files("humanai_jax.methods.genmentor").joinpath(*SAMPLE_TAXONOMY.split("/"))
        raw, where = res.read_text(encoding="utf-8"), f"humanai_jax/methods/genmentor/{SAMPLE_TAXONOMY}"
    try:
        return Taxonomy.model_validate_json(raw)
    except ValidationError as e:
        raise ValueError(f"{where}: invalid taxonomy: {e}") from None


# ------------------------------------------------------------------------------ dataset
def _shift(level: str, by: int) -> str:
    return S.LEVELS[min(2, max(0, S.LEVELS.index(level) + by))]


def _gold(role: Role, focus: Focus | None, shift: int) -> list[dict]:
    levels = dict(role.skills)
    if focus is not None:
        levels.update(focus.skills)
    return [{"name": n, "required_level": _shift(lv, shift)} for n, lv in list(levels.items())[:S.MAX_SKILLS]]


def _track(role: Role, focus: Focus | None, seniority: str) -> str:
    objectives = f"work as a {role.name}" + (f"; {focus.objective}" if focus else "")
    extra = ", ".join(focus.skills) if focus else "none"
    words = {"junior": "junior", "mid": "mid-level", "senior": "senior"}
    return (f"Objectives: {objectives}.\nSeniority: {words[seniority]}."
            f"\nAdditional skills: {extra}.")


def build_dataset(tax: Taxonomy, *, seed: int = 0, fractions: Sequence[float] = (0.7, 0.15, 0.15)) -> list[dict]:
    """Every (role, focus or none, seniority, template) goal, split train/val/test by (role, focus,
    seniority) combination with `numpy.random.default_rng(seed)`. Returns the samples in a fixed order."""
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be 3 numbers summing to 1, got {fractions}")
    combos = [(ri, fi, sen) for ri, r in enumerate(tax.roles) for fi in range(-1, len(r.focuses)) for sen in SENIORITY]
    order = np.random.default_rng(seed).permutation(len(combos))
    n_train = int(round(fractions[0] * len(combos)))
    n_val = int(round(fractions[1] * len(combos)))
    split_of = {}
    for rank, c in enumerate(order):
        split_of[combos[c]] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    samples = []
    for ri, fi, sen in combos:
        role = tax.roles[ri]
        focus = role.focuses[fi] if fi >= 0 else None
        prefix, shift = SENIORITY[sen]
        gold = _gold(role, focus, shift)
        S.SkillRequirements.model_validate({"skill_requirements": gold})  # the spec's filter (raises if broken)
        for ti, tmpl in enumerate(TEMPLATES):
            phrase = role.phrases[ti % len(role.phrases)]
            goal = tmpl.format(sen=prefix, role=phrase, focus=f" {focus.phrase}" if focus else "")
            goal = goal[0].upper() + goal[1:]
            samples.append({"id": f"{ri}-{fi}-{sen}-{ti}", "goal": goal, "role": role.name,
                            "focus": focus.phrase if focus else "", "seniority": sen, "template": ti,
                            "track": _track(role, focus, sen), "skill_requirements": gold,
                            "split": split_of[(ri, fi, sen)]})
    return samples


def write_dataset(path: str, samples: Sequence[dict]) -> None:
    from humanai_jax.data.jsonl import write_jsonl

    write_jsonl(path, samples)


def read_dataset(path: str) -> list[dict]:
    """A dataset JSONL (e.g. from another taxonomy or a teacher); errors name file:line and the field."""
    from humanai_jax.data.jsonl import iter_jsonl, require_fields

    out = []
    for line, rec in iter_jsonl(path, validate=require_fields(["goal", "skill_requirements", "split"])):
        try:
            S.SkillRequirements.model_validate({"skill_requirements": rec["skill_requirements"]})
        except ValidationError as e:
            raise ValueError(f"{path}:{line}: skill_requirements: {e}") from None
        if rec["split"] not in ("train", "val", "test"):
            raise ValueError(f"{path}:{line}: split must be train, val or test, got {rec['split']!r}")
        out.append(dict(rec, track=rec.get("track", "")))
    return out


def completion(sample: dict, tracks: bool) -> str:
    body = json.dumps({"skill_requirements": sample["skill_requirements"]}, ensure_ascii=False)
    return f"{sample['track']}\n{body}" if tracks and sample.get("track") else body


def prompt_messages(goal: str) -> list[dict]:
    """The mapper's prompt: exactly what `agents.Agents.map_skills(style="genmentor")` sends."""
    return [{"role": "system", "content": PROMPTS.render("skill_mapper_system")},
            {"role": "user", "content": PROMPTS.render("skill_mapper_task", learning_goal=goal)}]


def sft_messages(sample: dict, tracks: bool) -> list[dict]:
    return prompt_messages(sample["goal"]) + [{"role": "assistant", "content": completion(sample, tracks)}]


# ------------------------------------------------------------------------------ tokens
def chat_tokenizer(texts: Sequence[str], vocab_size: int, out_dir: str):
    """A byte-level BPE trained locally on `texts` plus ChatML turn tokens and template, saved to out_dir."""
    from humanai_jax.data.tokenizer import train_tokenizer

    tok = train_tokenizer(texts, vocab_size, out_dir)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML_TEMPLATE
    tok.save_pretrained(out_dir)
    return tok


def encode_sft(tokenizer, messages: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(tokens int32 [L], mask int8 [L]): mask 1 on the assistant reply up to its end-of-turn token.
    The prompt (rendered with the generation prompt) must tokenize to a prefix of the whole conversation."""
    from humanai_jax.decoding.text import stop_token_ids

    def ids(msgs, gen):
        return tokenizer(tokenizer.apply_chat_template(list(msgs), tokenize=False, add_generation_prompt=gen),
                         add_special_tokens=False)["input_ids"]

    prefix, full = ids(messages[:-1], True), ids(messages, False)
    if full[:len(prefix)] != prefix:
        raise ValueError("the chat template does not tokenize the prompt as a prefix of the conversation")
    stops = set(stop_token_ids(tokenizer))
    ends = [k for k in range(len(prefix), len(full)) if full[k] in stops]
    if not ends:
        raise ValueError("the assistant reply has no end-of-turn / EOS token in the chat template")
    mask = np.zeros(len(full), np.int8)
    mask[len(prefix):ends[0] + 1] = 1
    return np.asarray(full[:ends[0] + 1], np.int32), mask[:ends[0] + 1]


def pad_rows(encoded: Sequence[tuple[np.ndarray, np.ndarray]], row_len: int, pad_id: int) -> dict[str, np.ndarray]:
    """One sample per row: tokens int32 [N, row_len] (pad_id after the sample), mask float32 [N, row_len]."""
    too_long = [i for i, (t, _) in enumerate(encoded) if len(t) > row_len]
    if too_long:
        raise ValueError(f"{len(too_long)} samples (first: #{too_long[0]}, {len(encoded[too_long[0]][0])} tokens) are "
                         f"longer than a row of {row_len} tokens: raise data.seq_len")
    tokens = np.full((len(encoded), row_len), pad_id, np.int32)
    mask = np.zeros((len(encoded), row_len), np.float32)
    for i, (t, m) in enumerate(encoded):
        tokens[i, :len(t)], mask[i, :len(m)] = t, m
    return {"tokens": tokens, "mask": mask}


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """Rows of step `step`: epochs of `default_rng([seed, epoch]).permutation(n)` laid end to end, so the
    batch is a pure function of (seed, step) and every row is seen once per epoch."""
    first = step * batch_size
    idx = np.arange(first, first + batch_size)
    epochs, pos = idx // n, idx % n
    perms = {e: np.random.default_rng([seed, int(e)]).permutation(n) for e in np.unique(epochs)}
    return np.array([perms[e][p] for e, p in zip(epochs, pos)], np.int64)


# ------------------------------------------------------------------------------ prediction and scoring
def parse_prediction(text: str) -> tuple[list[dict], bool]:
    """(skills, valid): `SkillRequirements` when the reply validates; else the names (and levels) found in any
    JSON the reply holds, deduplicated, at most 10 (valid False); nothing found: ([], False)."""
    from humanai_jax.agents import extract_json

    try:
        obj = extract_json(text)
    except ValueError:
        return [], False
    try:
        return [s.model_dump() for s in S.SkillRequirements.model_validate(obj).skill_requirements], True
    except ValidationError:
        pass
    items = obj.get("skill_requirements", []) if isinstance(obj, dict) else obj if isinstance(obj, list) else []
    out, seen = [], set()
    for it in items if isinstance(items, list) else []:
        if isinstance(it, dict) and isinstance(it.get("name"), str) and it["name"].strip():
            key = S.norm_name(it["name"])
            if key not in seen:
                seen.add(key)
                out.append({"name": it["name"].strip(), "required_level": it.get("required_level")})
    return out[:S.MAX_SKILLS], False


def score(preds: Sequence[list[dict]], samples: Sequence[dict], matcher: str = "exact", *, seed: int = 0,
          n_resamples: int = 2000) -> tuple[dict, list[dict]]:
    """Macro P / R / F1 (bootstrap 95% CIs) and level accuracy of predictions against the samples' gold."""
    from humanai_jax.methods.genmentor.metrics import mean_prf, skill_prf

    rows = [skill_prf(p, s["skill_requirements"], matcher) for p, s in zip(preds, samples, strict=True)]
    return mean_prf(rows, seed=seed, n_resamples=n_resamples), rows


def _skill_doc(s: TaxSkill) -> str:
    return " ".join([s.name, s.description, *s.aliases])


def majority_level(train: Sequence[dict]) -> str:
    c = collections.Counter(g["required_level"] for s in train for g in s["skill_requirements"])
    return c.most_common(1)[0][0]


def bm25_taxonomy(tax: Taxonomy, goals: Sequence[str], k: int, level: str) -> list[list[dict]]:
    """Top-k taxonomy skills by BM25 of the goal against name + description + aliases (zero scores dropped);
    every predicted skill gets `level` (the training set's majority level)."""

    index = _taxonomy_index(tax)
    return [[{"name": tax.skills[i].name, "required_level": level} for i, s in index.search(g, k) if s > 0]
            for g in goals]


@functools.lru_cache(maxsize=8)
def _cached_index(texts: tuple[str, ...]):
    from humanai_jax.methods.genmentor.retrieval import BM25Index

    return BM25Index(list(texts))


def _taxonomy_index(tax: Taxonomy):
    return _cached_index(tuple(_skill_doc(s) for s in tax.skills))


def bm25_goal_knn(train: Sequence[dict], goals: Sequence[str]) -> list[list[dict]]:
    """The gold skills of the BM25-nearest training goal (a retrieval baseline that sees the training data)."""
    index = _cached_index(tuple(s["goal"] for s in train))
    return [list(train[index.search(g, 1)[0][0]]["skill_requirements"]) for g in goals]


def choose_bm25_k(tax: Taxonomy, val: Sequence[dict], level: str, ks: Sequence[int] = tuple(range(1, 11))) -> dict:
    """k with the best validation macro F1 (ties: the smaller k); returns {k, val_f1 per k}."""
    f1 = {}
    for k in ks:
        preds = bm25_taxonomy(tax, [s["goal"] for s in val], k, level)
        f1[k] = score(preds, val, n_resamples=0)[0]["f1"]
    best = max(ks, key=lambda k: (f1[k], -k))
    return {"k": best, "val_f1": {str(k): v for k, v in f1.items()}}


def write_predictions(path: str, samples: Sequence[dict], preds: Sequence[list[dict]], rows: Sequence[dict],
                      texts: Sequence[str] | None = None) -> None:
    from humanai_jax.data.jsonl import write_jsonl

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_jsonl(path, [{"id": s["id"], "goal": s["goal"], "gold": s["skill_requirements"], "pred": p, **r,
                        **({"text": texts[i]} if texts is not None else {})}
                       for i, (s, p, r) in enumerate(zip(samples, preds, rows))])
