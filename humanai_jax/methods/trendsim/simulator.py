"""The event-driven TrendSim simulator (docs/trendsim.md §3-§8) with phase-synchronous ticks.

Clock and heap: a min-heap of `(time, aid)` visit events in integer virtual seconds from the window start.
Visits run as explicit state machines (plain dicts, so a run checkpoints to JSON at any tick boundary):

  user visit step:  perceive -> decide -> [act] -> [moderate] -> reflect (4 calls) -> next step or end
  attacker visit:   (Enter, no call) attack comment -> [moderate] -> Leave

Tick: every active visit contributes the calls of its current phase, and ALL of them go to the backend as
one `chat_batch` (so an in-process JAX backend or a server decodes them together). Replies are applied in
the order (visit's virtual time, aid). A heap event is admitted (its visit becomes active) once its time is
<= the earliest active visit's virtual time + `batch_window_s` (0 = strict time order; larger windows give
bigger batches; visits that overlap in virtual time then see each other's effects at phase granularity,
where the reference runs one whole visit at a time). The run stops when no visit is active and the heap is
empty or its earliest time is past the window end.

Seeds: each agent has its own `numpy.random.Generator` seeded by (seed, type, row) - common random numbers,
so a normal user draws the same visit times in a clean and an attacked run until their states diverge;
every tick's GenConfig carries seed (seed, tick). Nothing reads the wall clock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import os
import uuid

import numpy as np

from humanai_jax.agents import BackendError, ChatBackend, GenConfig
from humanai_jax.experiment import write_json
from humanai_jax.methods.trendsim import agents as A, parsing, timing
from humanai_jax.methods.trendsim.data import Post, UserProfile
from humanai_jax.methods.trendsim.feed import FEEDS, feed_order
from humanai_jax.methods.trendsim.media import SocialMedia

TYPE_CODE = {"normal": 0, "S": 1, "T": 2, "F": 3}
PRESETS = {  # (normal, S, T, F), docs/trendsim.md §1; `clean` is always all-normal
    "mild": (900, 33, 33, 34), "medium": (700, 100, 100, 100), "severe": (500, 166, 167, 167),
    "debug": (700, 100, 100, 100)}
STATE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class SimConfig:
    population: tuple[int, int, int, int] = (700, 100, 100, 100)  # normal, S, T, F
    window_s: int = 16 * 3600  # 06:00 -> 22:00
    epoch_num: int = 2
    max_step: int = 3  # a visit has at most max_step + 1 actions
    page_size: int = 4
    replies_shown: int = 4
    schedule_mode: str = "reference"  # reference | from_now
    sampler: str = "reference"  # reference | continuous
    decision_mode: str = "reference"  # reference | robust
    index_mode: str = "reference"  # reference | robust
    moderation: bool = True
    split_time: float = 0.0
    lang: str = "zh"
    compat_format: bool = False  # True: print states as the reference's "50/1.0"
    batch_window_s: int = 600
    temperature: float = 0.95
    top_p: float = 1.0
    max_tokens: int = 128
    seed: int = 0
    checkpoint_every: int = 50
    max_errors: int = 0
    trace_calls: bool = True
    feed: str = "hot"  # hot (reference) | persona (content-based recommender, feed.py)

    def __post_init__(self):
        if len(self.population) != 4 or min(self.population) < 0 or self.population[0] < 1:
            raise ValueError(f"population must be (normal >= 1, S, T, F) >= 0, got {self.population}")
        if not 0.0 <= self.split_time <= 1.0:
            raise ValueError(f"split_time must be in [0, 1], got {self.split_time}")
        for field, valid in (("schedule_mode", ("reference", "from_now")), ("sampler", ("reference", "continuous")),
                             ("decision_mode", parsing.MODES), ("index_mode", parsing.MODES), ("lang", A.LANGS),
                             ("feed", FEEDS)):
            if getattr(self, field) not in valid:
                raise ValueError(f"SimConfig.{field} must be one of {valid}, got {getattr(self, field)!r}")
        if self.max_step < 0 or self.epoch_num < 1 or self.window_s < 10 or self.batch_window_s < 0:
            raise ValueError("max_step >= 0, epoch_num >= 1, window_s >= 10 and batch_window_s >= 0 are required")

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["population"] = list(self.population)
        if d["feed"] == "hot":  # the reference feed is left out, so runs written before the flag stay reusable
            del d["feed"]
        return d


def population_for_share(n_agents: int, attack_share: float) -> tuple[int, int, int, int]:
    """(normal, S, T, F) with round(share * n) attackers split S, T, F as evenly as possible (S first)."""
    if not 0.0 <= attack_share < 1.0:
        raise ValueError(f"attack_share must be in [0, 1), got {attack_share}")
    n_att = int(round(attack_share * n_agents))
    base, extra = divmod(n_att, 3)
    s, t, f = (base + (i < extra) for i in range(3))
    return (n_agents - n_att, s, t, f)


def make_agents(users: list[UserProfile], population, lib) -> list[dict]:
    """Agent list in reference order: S, T, F attackers, then the first `normal` user rows."""
    normal, *counts = population
    if normal > len(users):
        raise ValueError(f"population needs {normal} normal users, the user file has {len(users)}")
    profiles = A.attacker_profiles(lib)
    out = []
    for kind, count in zip("STF", counts):
        for i in range(count):
            out.append(dict(type=kind, row=i, name=profiles[kind]["name"].format(i=i),
                            persona=profiles[kind]["persona"], followers=0))
    for u in users[:normal]:
        out.append(dict(type="normal", row=u.index, name=u.name, persona=u.description, followers=u.followed_num))
    for aid, a in enumerate(out):
        a.update(aid=aid, memory="", opinion="", emotion=0.5, confidence=0.5)
    return out


def tick_seed(seed: int, tick: int) -> int:
    digest = hashlib.sha256(f"trendsim|{seed}|{tick}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class TraceWriter:
    """Appends JSONL records (UTF-8, ensure_ascii=False, flushed per line) and counts lines, so a resumed
    run can cut the file back to its checkpoint."""

    def __init__(self, path: str, keep_lines: int | None = None):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if keep_lines is None:
            open(path, "w", encoding="utf-8").close()
            self.lines = 0
        else:
            with open(path, encoding="utf-8") as f:
                kept = [line for _, line in zip(range(keep_lines), f)]
            if len(kept) != keep_lines:
                raise ValueError(f"{path} has {len(kept)} lines, the checkpoint expects at least {keep_lines}")
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(kept)
            self.lines = keep_lines
        self._f = open(path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._f.flush()
        self.lines += 1

    def close(self) -> None:
        self._f.close()


class Simulator:
    """One TrendSim run over one post. `run()` drives it to the end (or `max_ticks`), checkpointing into
    `workdir/state.json` and tracing into `workdir/traces.jsonl`; `resume=True` continues a checkpoint."""

    def __init__(self, cfg: SimConfig, post: Post, users: list[UserProfile], backend: ChatBackend, workdir: str,
                 *, resume: bool = False, name: str = "run"):
        self.cfg, self.post, self.backend, self.workdir, self.name = cfg, post, backend, workdir, name
        self.lib = A.library(cfg.lang)
        self.profiles = A.attacker_profiles(self.lib)
        self.state_path = os.path.join(workdir, "state.json")
        self.gen = GenConfig(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens)
        if resume and os.path.exists(self.state_path):
            self._load()
            self.trace = TraceWriter(os.path.join(workdir, "traces.jsonl"), keep_lines=self.s["trace_lines"])
        else:
            self._fresh(users)
            self.trace = TraceWriter(os.path.join(workdir, "traces.jsonl"))
            self._event("run_start", 0, config=cfg.to_json(), post_index=post.index, backend=backend.name,
                        agents=[{k: a[k] for k in ("aid", "type", "row", "name", "persona", "followers")}
                                for a in self.agents])
            for a in self.agents:
                self._schedule_first(a)

    # ------------------------------------------------------------------------------------------ state
    def _fresh(self, users) -> None:
        self.agents = make_agents(users, self.cfg.population, self.lib)
        self.rngs = [np.random.default_rng([self.cfg.seed, TYPE_CODE[a["type"]], a["row"]]) for a in self.agents]
        self.media = SocialMedia()
        self.heap: list[list[int]] = []
        self.visits: list[dict] = []
        self.s = dict(tick=0, n_calls=0, n_errors=0, run_id=uuid.uuid4().hex[:12], finished=False, trace_lines=0)

    def _config_fingerprint(self) -> str:
        payload = json.dumps({"cfg": self.cfg.to_json(), "post": self.post.index, "backend": self.backend.name},
                             sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def checkpoint(self) -> None:
        """Writes the whole run state to `workdir/state.json` atomically (at a tick boundary)."""
        self.s["trace_lines"] = self.trace.lines
        write_json(self.state_path, dict(
            version=STATE_VERSION, fingerprint=self._config_fingerprint(), s=self.s, agents=self.agents,
            rngs=[r.bit_generator.state for r in self.rngs], media=self.media.to_json(), heap=self.heap,
            visits=self.visits))

    def _load(self) -> None:
        with open(self.state_path, encoding="utf-8") as f:
            d = json.load(f)
        if d.get("version") != STATE_VERSION or d.get("fingerprint") != self._config_fingerprint():
            raise ValueError(f"{self.state_path}: checkpoint of another config, backend or version; "
                             "use a fresh workdir")
        self.s, self.agents, self.heap, self.visits = d["s"], d["agents"], [list(e) for e in d["heap"]], d["visits"]
        self.media = SocialMedia.from_json(d["media"])
        self.rngs = []
        for state in d["rngs"]:
            r = np.random.default_rng()
            r.bit_generator.state = state
            self.rngs.append(r)

    # ------------------------------------------------------------------------------------- scheduling
    def _event(self, name: str, time: int, **data) -> None:
        self.trace.write({"type": "event", "system": "trendsim", "run_id": self.s["run_id"], "tick": self.s["tick"],
                          "name": name, "time": int(time), "data": data})

    def _push(self, time: int, aid: int) -> None:
        heapq.heappush(self.heap, [int(time), int(aid)])

    def _schedule_user(self, agent: dict, now: int) -> None:
        act = timing.activity(self.media.like_num, len(self.agents), agent["emotion"])
        t, x = timing.next_user_visit(self.rngs[agent["aid"]], now, self.cfg.window_s, A=act,
                                      epoch_num=self.cfg.epoch_num, schedule_mode=self.cfg.schedule_mode,
                                      sampler=self.cfg.sampler)
        self._event("schedule", now, aid=agent["aid"], type=agent["type"], x=x, A=act, visit_time=t)
        if t is not None:
            self._push(t, agent["aid"])

    def _schedule_first(self, agent: dict) -> None:
        if agent["type"] == "normal":
            self._schedule_user(agent, 0)
        else:
            t = timing.first_attacker_visit(self.rngs[agent["aid"]], self.cfg.window_s)
            self._event("schedule", 0, aid=agent["aid"], type=agent["type"], visit_time=t)
            self._push(t, agent["aid"])

    def _schedule_next(self, agent: dict, visit_end: int) -> None:
        if agent["type"] == "normal":
            self._schedule_user(agent, visit_end)
        else:
            t = timing.next_attacker_visit(visit_end, self.cfg.window_s, self.cfg.epoch_num)
            self._event("schedule", visit_end, aid=agent["aid"], type=agent["type"], visit_time=t)
            if t is not None:
                self._push(t, agent["aid"])

    def _admit(self) -> None:
        """Starts the visits whose time has come (see the module docstring)."""
        if not self.heap or self.heap[0][0] > self.cfg.window_s:
            return
        frontier = min((v["start"] + v["elapsed"] for v in self.visits), default=self.heap[0][0])
        while self.heap and self.heap[0][0] <= min(frontier + self.cfg.batch_window_s, self.cfg.window_s):
            time, aid = heapq.heappop(self.heap)
            agent = self.agents[aid]
            self._event("visit_start", time, aid=aid, type=agent["type"])
            if agent["type"] == "normal":
                self.visits.append(dict(aid=aid, start=time, elapsed=0, step=0, page_state=parsing.ENTRY, page=0,
                                        cid=None, phase="perceive", view="", shown=[], impression="", code=None,
                                        action="", text=""))
            else:  # Enter costs no call: views + 1, read the first page
                self.media.view_num += 1
                view, shown = A.main_view(self.lib, self.post, self.media, 0, self.cfg.page_size)
                self._event("main_view", time, aid=aid, type=agent["type"], cids=shown,
                            types=[self.media.comments[c].author_type for c in shown])
                proto_i = int(self.rngs[aid].integers(len(self.profiles[agent["type"]]["prototypes"])))
                self.visits.append(dict(aid=aid, start=time, elapsed=0, step=0, page_state=parsing.MAIN, page=0,
                                        cid=None, phase="attack", view=view, shown=shown, prototype=proto_i, text=""))

    # ---------------------------------------------------------------------------------------- requests
    def _requests(self, v: dict) -> list[tuple[list[dict], str]]:
        """The calls of visit `v`'s current phase: [(messages, tag)]."""
        agent = self.agents[v["aid"]]
        msg = lambda name, **f: A.user_message(self.lib, name, agent, compat_format=self.cfg.compat_format, **f)  # noqa: E731
        phase = v["phase"]
        if phase == "perceive":
            self._render_view(v)
            return [(msg("perceive", view=v["view"]), "trendsim.user.perceive")]
        if phase == "decide":
            return [(msg(f"decide_{v['page_state']}", view=v["view"], impression=v["impression"]),
                     f"trendsim.user.decide.{v['page_state']}")]
        if phase == "act":
            kind = parsing.ACTIONS[v["page_state"]][v["code"]]
            template = {"comment": "act_comment", "reply": "act_reply", "open_comment": "act_open"}[kind]
            return [(msg(template, view=v["view"], impression=v["impression"]), f"trendsim.user.act.{kind}")]
        if phase == "moderate":
            return [(A.moderation_message(self.lib, v["text"]), "trendsim.moderate")]
        if phase == "reflect":
            action = A.action_description(self.lib, v["action"], v["text"])
            return [(msg(f"reflect_{k}", impression=v["impression"], action=action), f"trendsim.user.reflect.{k}")
                    for k in ("memory", "opinion", "emotion", "confidence")]
        if phase == "attack":
            proto = self.profiles[agent["type"]]["prototypes"][v["prototype"]]
            return [(A.attacker_message(self.lib, agent, v["view"], proto), f"trendsim.attacker.{agent['type']}")]
        raise AssertionError(f"unknown phase {phase!r}")

    def _render_view(self, v: dict) -> None:
        now = v["start"] + v["elapsed"]
        agent = self.agents[v["aid"]]
        if v["page_state"] == parsing.ENTRY:
            v["view"], v["shown"] = A.entry_view(self.lib, self.post), []
        elif v["page_state"] == parsing.MAIN:
            if self.cfg.feed != "hot":  # kept in the visit: an opened position resolves to what was shown
                v["order"] = feed_order(self.media, self.cfg.feed, f"{agent['persona']} {agent['memory']}")
            v["view"], v["shown"] = A.main_view(self.lib, self.post, self.media, v["page"], self.cfg.page_size,
                                                v.get("order"))
            self._event("main_view", now, aid=v["aid"], type=agent["type"], page=v["page"], cids=v["shown"],
                        types=[self.media.comments[c].author_type for c in v["shown"]])
        else:
            v["view"], v["shown"] = A.comment_view(self.lib, self.media, v["cid"], self.cfg.replies_shown), []

    # ------------------------------------------------------------------------------------------ replies
    def _moderation_on(self, time: int) -> bool:
        return self.cfg.moderation and time >= self.cfg.split_time * self.cfg.window_s

    def _apply(self, v: dict, texts: list[str]) -> None:
        agent = self.agents[v["aid"]]
        now = v["start"] + v["elapsed"]
        phase = v["phase"]
        if phase == "perceive":
            v["impression"] = texts[0].strip()
            v["phase"] = "decide"
        elif phase == "decide":
            self._apply_decision(v, agent, texts[0])
        elif phase == "act":
            self._apply_act(v, agent, texts[0], now)
        elif phase == "moderate":
            hidden, status = parsing.parse_flag(texts[0])
            self._publish(v, agent, now, moderated=True, hidden=hidden, raw=texts[0], status=status)
        elif phase == "reflect":
            self._apply_reflection(v, agent, texts, now)
        elif phase == "attack":
            v["text"] = texts[0].strip()
            v["elapsed"] += len(v["view"]) // 10
            now = v["start"] + v["elapsed"]
            if self._moderation_on(now):
                v["phase"] = "moderate"
            else:
                self._publish(v, agent, now, moderated=False, hidden=False)

    def _apply_decision(self, v: dict, agent: dict, raw: str) -> None:
        state = v["page_state"]
        code, status = parsing.parse_decision(raw, state, self.cfg.decision_mode)
        action = parsing.ACTIONS[state][code]
        v["elapsed"] += len(v["view"]) // 10  # reading this step's page costs int(len/10) s
        now = v["start"] + v["elapsed"]
        v.update(code=code, action=action, text="")
        self._event("decision", now, aid=v["aid"], state=state, raw=raw, code=code, status=status, action=action,
                    step=v["step"])
        m = self.media
        if action == "enter":
            m.view_num += 1
            v["page_state"] = parsing.MAIN
        elif action in ("leave",):
            v["page_state"] = "End"
        elif action == "like_post":
            m.like_num += 1
        elif action == "repost":
            m.repost_num += 1
        elif action == "more_comments":
            v["page"] += 1
        elif action == "like_comment":
            if v["cid"] is not None:
                m.like_comment(v["cid"])
                self._event("like_comment", now, aid=v["aid"], cid=v["cid"])
        elif action == "back":
            v["page_state"] = parsing.MAIN
        v["phase"] = "act" if action in ("comment", "reply", "open_comment") else "reflect"
        if action == "reply" and v["cid"] is None:
            v["phase"] = "reflect"  # nothing to reply to ("该评论不存在."); counted in the decision event

    def _apply_act(self, v: dict, agent: dict, raw: str, now: int) -> None:
        action = v["action"]
        if action == "open_comment":
            pos, status = parsing.parse_index(raw, self.cfg.index_mode)
            v["cid"] = self.media.comment_at(pos, v.get("order"))
            v["page_state"] = parsing.COMMENT
            self._event("open_comment", now, aid=v["aid"], raw=raw, position=pos, status=status, cid=v["cid"])
            v["phase"] = "reflect"
        elif action == "reply":
            v["text"] = raw.strip()
            self.media.add_reply(v["cid"], v["aid"], agent["type"], v["text"], now)
            self._event("reply", now, aid=v["aid"], type=agent["type"], cid=v["cid"], text=v["text"])
            v["phase"] = "reflect"
        else:  # comment
            v["text"] = raw.strip()
            if self._moderation_on(now):
                v["phase"] = "moderate"
            else:
                self._publish(v, agent, now, moderated=False, hidden=False)

    def _publish(self, v: dict, agent: dict, now: int, *, moderated: bool, hidden: bool, raw: str = "",
                 status: str = "") -> None:
        cid = self.media.add_comment(v["aid"], agent["type"], v["text"], now, hidden=hidden)
        self._event("comment", now, aid=v["aid"], author_type=agent["type"], cid=cid, text=v["text"],
                    moderated=moderated, hidden=hidden, moderation_raw=raw, moderation_status=status)
        if agent["type"] == "normal":
            v["phase"] = "reflect"
        else:
            self._end_visit(v, agent)

    def _apply_reflection(self, v: dict, agent: dict, texts: list[str], now: int) -> None:
        before = {"emotion": agent["emotion"], "confidence": agent["confidence"]}
        emotion, s_e = parsing.parse_percent(texts[2])
        confidence, s_c = parsing.parse_percent(texts[3])
        agent.update(memory=texts[0].strip(), opinion=texts[1].strip(), emotion=emotion, confidence=confidence)
        self._event("state", now, aid=v["aid"], before=before, after={"emotion": emotion, "confidence": confidence},
                    memory=agent["memory"], opinion=agent["opinion"], parse={"emotion": s_e, "confidence": s_c})
        v["step"] += 1
        if v["page_state"] == "End" or v["step"] > self.cfg.max_step:
            self._end_visit(v, agent)
        else:
            v["phase"] = "perceive"

    def _end_visit(self, v: dict, agent: dict) -> None:
        end = v["start"] + v["elapsed"]
        v["phase"] = "done"
        self._event("visit_end", end, aid=v["aid"], type=agent["type"], start=v["start"], steps=v["step"])
        self._schedule_next(agent, end)

    # ---------------------------------------------------------------------------------------------- loop
    def done(self) -> bool:
        return not self.visits and (not self.heap or self.heap[0][0] > self.cfg.window_s)

    def tick(self) -> int:
        """One phase-synchronous round: admit, gather every active visit's calls, ONE chat_batch, apply.
        Returns the number of calls sent."""
        self._admit()
        order = sorted(self.visits, key=lambda v: (v["start"] + v["elapsed"], v["aid"]))
        batch, tags, owners = [], [], []
        for v in order:
            for messages, tag in self._requests(v):
                batch.append(messages)
                tags.append(tag)
                owners.append(v)
        cfg = self.gen.replace(seed=tick_seed(self.cfg.seed, self.s["tick"]))
        results = self.backend.chat_batch(batch, cfg, tags=tags) if batch else []
        texts_of: dict[int, list[str]] = {}
        for messages, tag, v, res in zip(batch, tags, owners, results):
            text = res.texts[0] if res.ok else ""
            if not res.ok:
                self.s["n_errors"] += 1
            if self.cfg.trace_calls:
                self.trace.write({"type": "llm_call", "system": "trendsim", "run_id": self.s["run_id"],
                                  "step": self.s["n_calls"], "tick": self.s["tick"], "agent": tag,
                                  "aid": v["aid"], "messages": messages, "gen_config": cfg.to_dict(),
                                  "backend": self.backend.name, "response": res.texts if res.ok else [],
                                  "error": res.error, "latency_s": res.latency_s})
            self.s["n_calls"] += 1
            texts_of.setdefault(id(v), []).append(text)
        if self.s["n_errors"] > self.cfg.max_errors:
            self.checkpoint()
            raise BackendError(f"{self.s['n_errors']} failed calls (max_errors {self.cfg.max_errors}); "
                               f"last: {next(r.error for r in results if not r.ok) if results else ''}. "
                               f"The run is checkpointed in {self.state_path}")
        for v in order:
            self._apply(v, texts_of[id(v)])
        self.visits = [v for v in self.visits if v["phase"] != "done"]
        self.s["tick"] += 1
        return len(batch)

    def run(self, *, max_ticks: int | None = None) -> dict:
        """Ticks until the end (or `max_ticks` ticks in this call); returns the final-state dict when finished,
        or {"finished": False} after a checkpoint."""
        ticks = 0
        while not self.done():
            self.tick()
            ticks += 1
            if self.s["tick"] % self.cfg.checkpoint_every == 0:
                self.checkpoint()
            if max_ticks is not None and ticks >= max_ticks and not self.done():
                self.checkpoint()
                self.trace.close()
                return {"finished": False, "tick": self.s["tick"]}
        return self._finish()

    def _finish(self) -> dict:
        final = {"configuration": self.cfg.to_json(), "post_index": self.post.index, "backend": self.backend.name,
                 "n_ticks": self.s["tick"],
                 "n_calls": self.s["n_calls"], "n_errors": self.s["n_errors"],
                 "final_social_media": self.media.to_json(),
                 "agents": [{k: a[k] for k in ("aid", "type", "row", "emotion", "confidence", "memory", "opinion")}
                            for a in self.agents]}
        if not self.s["finished"]:
            self._event("final", self.cfg.window_s, **final)
            self.s["finished"] = True
        self.checkpoint()
        self.trace.close()
        write_json(os.path.join(self.workdir, "final_state.json"), final)
        return {"finished": True, **final}
