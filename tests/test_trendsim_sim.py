"""TrendSim simulator: scripted visits through every page state and fallback, one chat_batch per tick,
checkpoint / resume, record / replay, attackers and the moderation threshold, and the experiment end to end
on a self-written 1-topic, 10-user fixture (same schema as ../shared/data/trendsim)."""

import json

import pytest

from humanai_jax.agents import RecordingBackend, ReplayBackend, ScriptedBackend
from humanai_jax.methods.trendsim import data, metrics
from humanai_jax.methods.trendsim.rules import RulePolicyBackend
from humanai_jax.methods.trendsim.simulator import SimConfig, Simulator, population_for_share

PERSONAS = ["关注社会新闻，性格直爽", "喜欢追星和综艺", "热爱运动", "爱看电影", "关注财经", "喜欢音乐",
            "关注民生话题", "喜欢动漫", "热爱旅行", "喜欢美食"]


@pytest.fixture()
def fixture_data(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "tweets.csv").write_text(
        "\ufeff0,小伙自费修路,#小伙自费修路#导语,#小伙自费修路#一位小伙自费修好了村口的路，村民纷纷点赞支持。,"
        "头条新闻,2023-09-10 08:38:00\n", encoding="utf-8")
    (d / "user_1000.csv").write_bytes("".join(
        f"{i},{i},anonymous_{i},{i * 10},{20 + i},{p}\r\n" for i, p in enumerate(PERSONAS)).encode("utf-8"))
    return d


def _load(d):
    return data.load_tweets(str(d / "tweets.csv"))[0], data.load_users(str(d / "user_1000.csv"))


def _reflect_rules():
    return [(r"trendsim\.user\.perceive", None, "有点意外"),
            (r"trendsim\.user\.reflect\.memory", None, "记忆"),
            (r"trendsim\.user\.reflect\.opinion", None, "观点"),
            (r"trendsim\.user\.reflect\.emotion", None, "40"),
            (r"trendsim\.user\.reflect\.confidence", None, "没有数字")]


ONE_VISIT = dict(population=(1, 0, 0, 0), epoch_num=10 ** 6)  # beta < 1 s: one visit at t = 0, no return


def _events(path, name=None):
    ev = metrics.read_events(str(path / "traces.jsonl"))
    return [e for e in ev if name is None or e["name"] == name]


def test_scripted_visit_covers_every_state_and_action(fixture_data, tmp_path):
    post, users = _load(fixture_data)
    script = ScriptedBackend([
        ("trendsim.user.decide.Entry", None, ["嗯"]),  # no digit -> reference fallback 0 = Enter
        ("trendsim.user.decide.Main", None, ["1", "1", "0", "2", "3", "4"]),
        ("trendsim.user.decide.Comment", None, ["0", "1", "2"]),
        ("trendsim.user.decide.Main", None, ["8"]),  # not a Main code -> Leave
        ("trendsim.user.act.comment", None, ["第一条评论", "第二条评论"]),
        ("trendsim.moderate", None, ["1", "0"]),
        ("trendsim.user.act.open_comment", None, ["0"]),
        ("trendsim.user.act.reply", None, ["回复一下"]),
        *_reflect_rules()])
    cfg = SimConfig(max_step=20, moderation=True, **ONE_VISIT)
    out = Simulator(cfg, post, users, script, str(tmp_path / "run")).run()
    script.close()  # every queued reply was used
    media = out["final_social_media"]
    assert (media["view_num"], media["like_num"], media["repost_num"]) == (1, 1, 1)
    assert media["detect_list"] == [0] and media["hot"] == [1]  # first comment hidden, second published
    c1 = media["comments"][1]
    assert c1["likes"] == 1 and c1["replies"][0]["text"] == "回复一下"
    decisions = _events(tmp_path / "run", "decision")
    assert [d["data"]["action"] for d in decisions] == [
        "enter", "comment", "comment", "like_post", "repost", "more_comments", "open_comment", "like_comment",
        "reply", "back", "leave"]
    assert [d["data"]["status"] for d in decisions].count("ok") == 9  # "嗯" no_digit, "8" invalid
    # calls: 6 per step, +1 for comment/reply/open, +1 moderation per comment
    tags = [c.tag for c in script.calls]
    assert len(tags) == 6 * 11 + 2 + 1 + 1 + 2
    # reflection: emotion parsed as 0.40; a reply with no integer resets confidence to 0.5
    agent = out["agents"][0]
    assert (agent["emotion"], agent["confidence"], agent["memory"]) == (0.4, 0.5, "记忆")
    # the page after "more comments" is empty, so the Main view lists "-"
    views = [c.messages[0]["content"] for c in script.calls if c.tag == "trendsim.user.perceive"]
    assert "【热门评论】\n-" in views[6] and "[0] 第二条评论" in views[5]


def test_scripted_fallbacks_robust_mode_and_missing_comment(fixture_data, tmp_path):
    post, users = _load(fixture_data)
    script = ScriptedBackend([
        ("trendsim.user.decide.Entry", None, ["0"]),
        ("trendsim.user.decide.Main", None, ["4", "嗯"]),  # robust: no digit -> Leave
        ("trendsim.user.decide.Comment", None, ["1", "7"]),  # reply to a missing comment; 7 -> Back
        ("trendsim.user.act.open_comment", None, ["第3条"]),  # robust index parse: 3 (out of range)
        *_reflect_rules()])
    cfg = SimConfig(max_step=20, decision_mode="robust", index_mode="robust", **ONE_VISIT)
    Simulator(cfg, post, users, script, str(tmp_path / "run")).run()
    script.close()
    views = [c.messages[0]["content"] for c in script.calls if c.tag == "trendsim.user.perceive"]
    assert "该评论不存在." in views[2]
    acts = [(d["data"]["action"], d["data"]["status"]) for d in _events(tmp_path / "run", "decision")]
    assert acts == [("enter", "ok"), ("open_comment", "ok"), ("reply", "ok"), ("back", "invalid"),
                    ("leave", "no_digit")]
    assert _events(tmp_path / "run", "open_comment")[0]["data"]["cid"] is None


class CountingBackend:
    """Counts chat / chat_batch calls and batch sizes of an inner backend."""

    def __init__(self, inner):
        self.inner, self.name = inner, inner.name
        self.batches, self.single_calls = [], 0

    def chat(self, messages, cfg, *, tag=""):
        self.single_calls += 1
        return self.inner.chat(messages, cfg, tag=tag)

    def chat_batch(self, batch, cfg, *, tags=None):
        self.batches.append(len(batch))
        return self.inner.chat_batch(batch, cfg, tags=tags)


def _rule_cfg(**kw):
    base = dict(population=population_for_share(10, 0.3), max_step=2, seed=3, batch_window_s=900)
    base.update(kw)
    return SimConfig(**base)


def test_one_chat_batch_per_tick(fixture_data, tmp_path):
    post, users = _load(fixture_data)
    backend = CountingBackend(RulePolicyBackend(seed=3, invalid_rate=0.05))
    out = Simulator(_rule_cfg(), post, users, backend, str(tmp_path / "run")).run()
    assert backend.single_calls == 0
    assert len(backend.batches) == out["n_ticks"] and sum(backend.batches) == out["n_calls"]
    calls = [json.loads(line) for line in open(tmp_path / "run" / "traces.jsonl", encoding="utf-8")
             if '"llm_call"' in line]
    per_tick = {}
    for c in calls:
        per_tick[c["tick"]] = per_tick.get(c["tick"], 0) + 1
    assert sorted(per_tick.values()) == sorted(backend.batches)
    assert max(backend.batches) > 1  # concurrent visits really share a batch


def _strip(events):
    return [{k: v for k, v in e.items() if k != "run_id"} for e in events]


@pytest.mark.parametrize("feed", ["hot", "persona"])
def test_checkpoint_resume_reproduces_the_uninterrupted_run(fixture_data, tmp_path, feed):
    post, users = _load(fixture_data)
    cfg = _rule_cfg(checkpoint_every=3, feed=feed)
    Simulator(cfg, post, users, RulePolicyBackend(seed=3), str(tmp_path / "full")).run()
    part = Simulator(cfg, post, users, RulePolicyBackend(seed=3), str(tmp_path / "cut")).run(max_ticks=7)
    assert part == {"finished": False, "tick": 7}
    with open(tmp_path / "cut" / "traces.jsonl", "a", encoding="utf-8") as f:
        f.write('{"type": "event", "name": "garbage written after the checkpoint"}\n')  # a crash leftover
    Simulator(cfg, post, users, RulePolicyBackend(seed=3), str(tmp_path / "cut"), resume=True).run()
    assert _strip(_events(tmp_path / "cut")) == _strip(_events(tmp_path / "full"))
    with pytest.raises(ValueError, match="another config"):
        Simulator(_rule_cfg(checkpoint_every=3, max_step=1, feed=feed), post, users, RulePolicyBackend(seed=3),
                  str(tmp_path / "cut"), resume=True)


def test_record_replay_reproduces_the_trajectory(fixture_data, tmp_path):
    post, users = _load(fixture_data)
    cassette = str(tmp_path / "cassette.jsonl")
    cfg = _rule_cfg()
    Simulator(cfg, post, users, RecordingBackend(RulePolicyBackend(seed=3), cassette), str(tmp_path / "rec")).run()
    Simulator(cfg, post, users, ReplayBackend(cassette), str(tmp_path / "rep")).run()
    def strip(events):  # the backend's name (recording vs replay) is the only allowed difference
        out = []
        for e in _strip(events):
            if e["name"] == "run_start":
                continue
            if e["name"] == "final":
                e = {**e, "data": {k: v for k, v in e["data"].items() if k != "backend"}}
            out.append(e)
        return out

    assert strip(_events(tmp_path / "rep")) == strip(_events(tmp_path / "rec"))
    assert len(_events(tmp_path / "rec", "decision")) > 10


def test_attackers_and_moderation_split_time(fixture_data, tmp_path):
    post, users = _load(fixture_data)
    cfg = _rule_cfg(moderation=True, split_time=0.25)
    Simulator(cfg, post, users, RulePolicyBackend(seed=3), str(tmp_path / "run")).run()
    visits = [e for e in _events(tmp_path / "run", "visit_start") if e["data"]["type"] != "normal"]
    firsts = {}
    for v in visits:
        firsts.setdefault(v["data"]["aid"], v["time"])
    assert len(firsts) == 3 and max(firsts.values()) <= cfg.window_s // 10
    # later visits: every 4 h after the previous visit's end
    ends = {(e["data"]["aid"], e["data"]["start"]): e["time"] for e in _events(tmp_path / "run", "visit_end")}
    for aid in firsts:
        starts = [v["time"] for v in visits if v["data"]["aid"] == aid]
        for a, b in zip(starts[:-1], starts[1:]):
            assert b == ends[(aid, a)] + 4 * 3600
    comments = _events(tmp_path / "run", "comment")
    split = 0.25 * cfg.window_s
    assert comments and all(c["data"]["moderated"] == (c["time"] >= split) for c in comments)
    assert any(c["data"]["moderated"] for c in comments) and any(not c["data"]["moderated"] for c in comments)
    attacker_comments = [c for c in comments if c["data"]["author_type"] != "normal"]
    assert {c["data"]["author_type"] for c in attacker_comments} == {"S", "T", "F"}


def test_experiment_end_to_end(fixture_data, tmp_path):
    import configs.trendsim as conf
    from experiments.run import run_experiment

    c = conf.get_config("default")
    c.data_dir = str(fixture_data)
    c.tweet_index = 0
    c.n_agents = 10
    c.n_seeds = 2
    c.moderation_sweep = "none,0.0"
    c.sim.max_step = 1
    out = run_experiment(c, str(tmp_path / "exp"))
    row = out["sweep"]["share_30"]
    assert row["dE"]["n"] == 2 and len(row["dE"]["per_seed"]) == 2
    assert set(out["moderation"]) == {"none", "split_0"}
    assert row["main_page_negativity"]["n"] == 2 and -1 <= row["main_page_negativity"]["mean"] <= 1
    assert out["moderation"]["none"]["dE"] == row["dE"]  # the same config twice gives the same number
    assert (tmp_path / "exp" / "plots" / "E_t.png").exists() and (tmp_path / "exp" / "results.json").exists()
    again = run_experiment(c, str(tmp_path / "exp"))  # finished runs are reused
    assert again["sweep"] == out["sweep"]
    # every headline number is recomputable from the traces alone
    runs = tmp_path / "exp" / "runs"
    re = metrics.main(["--trace", str(runs / "s1_share30" / "traces.jsonl"),
                       "--clean", str(runs / "s1_clean" / "traces.jsonl")])
    assert re["compare"]["dE"] == pytest.approx(row["dE"]["per_seed"][1])
    # ... and through the project-wide entry point, which fails when results.json disagrees with the trace
    from experiments import replay_metrics

    trace = str(runs / "s0_share30_split0" / "traces.jsonl")
    assert replay_metrics.main(["--trace", trace]) == 0
    results = json.loads((tmp_path / "exp" / "results.json").read_text(encoding="utf-8"))
    results["runs"]["s0_share30_split0"]["engagement"]["views"] += 1
    (tmp_path / "exp" / "results.json").write_text(json.dumps(results), encoding="utf-8")
    assert replay_metrics.main(["--trace", trace]) == 1
    c.sim.max_step = 2  # a finished run of another config is never silently reused
    with pytest.raises(ValueError, match="another configuration"):
        run_experiment(c, str(tmp_path / "exp"))


@pytest.mark.slow
def test_in_process_tiny_model_plumbing(fixture_data, tmp_path):
    """Spec docs/agents.md §3: one end-to-end run through JaxChatBackend on a random-weight tiny checkpoint
    (checks plumbing, not quality: its replies are noise, so the parsers' fallbacks carry the run)."""
    from humanai_jax.methods.trendsim.backends import build_backend
    from humanai_jax.serving.loading import make_tiny_checkpoint

    post, users = _load(fixture_data)
    ckpt = make_tiny_checkpoint(tmp_path / "tiny", n_layers=1)
    backend, info = build_backend({"kind": "hf", "checkpoint": ckpt, "max_batch": 8}, seed=0)
    counting = CountingBackend(backend)
    cfg = SimConfig(max_step=0, max_tokens=4, lang="en", **ONE_VISIT)
    out = Simulator(cfg, post, users, counting, str(tmp_path / "run")).run()
    assert info["kind"] == "hf" and out["n_calls"] == 6 and counting.batches == [1, 1, 4]
    calls = [json.loads(line) for line in open(tmp_path / "run" / "traces.jsonl", encoding="utf-8")
             if '"llm_call"' in line]
    assert all(c["backend"].startswith("hf:") and isinstance(c["response"][0], str) for c in calls)


def test_english_prompts_with_the_rule_policy(fixture_data, tmp_path):
    post, users = _load(fixture_data)
    out = Simulator(_rule_cfg(lang="en"), post, users, RulePolicyBackend(lang="en", seed=3),
                    str(tmp_path / "run")).run()
    texts = [c["text"] for c in out["final_social_media"]["comments"]]
    assert any(t.startswith("Reading this: ") for t in texts)  # attackers answered in English
    perceive = [json.loads(line) for line in open(tmp_path / "run" / "traces.jsonl", encoding="utf-8")
                if '"trendsim.user.perceive"' in line]
    assert perceive and all("You are reading the following" in c["messages"][0]["content"] for c in perceive)
    assert all(c["response"][0].startswith("Impression: ") for c in perceive)


def test_persona_feed_orders_the_page_and_resolves_opened_positions(fixture_data, tmp_path):
    from humanai_jax.methods.trendsim.feed import bigrams, cosine, feed_order

    # hand values: persona bigrams 关注 注社 社会 会新 新闻 闻性 性格 格直 直爽 (9, punctuation dropped)
    persona = PERSONAS[0]
    assert cosine(bigrams(persona), bigrams("社会新闻")) == pytest.approx(3 / (9 * 3) ** 0.5)
    assert cosine(bigrams(persona), bigrams("股市大涨")) == 0.0
    post, users = _load(fixture_data)
    opened = {}
    for feed in ("hot", "persona"):
        script = ScriptedBackend([
            ("trendsim.user.decide.Entry", None, ["0"]), ("trendsim.user.decide.Main", None, ["4", "5"]),
            ("trendsim.user.act.open_comment", None, ["0"]), ("trendsim.user.decide.Comment", None, ["2"]),
            *_reflect_rules()])
        sim = Simulator(SimConfig(max_step=20, moderation=False, feed=feed, **ONE_VISIT), post, users, script,
                        str(tmp_path / feed))
        top = sim.media.add_comment(99, "T", "股市大涨", 0)
        sim.media.add_comment(98, "normal", "今天天气好", 0)
        match = sim.media.add_comment(97, "normal", "社会新闻要多关注", 0)
        sim.media.like_comment(top)
        assert feed_order(sim.media, feed, persona) == ([top, 1, match] if feed == "hot" else [match, top, 1])
        sim.run()
        script.close()
        views = [c.messages[0]["content"] for c in script.calls if c.tag == "trendsim.user.perceive"]
        opened[feed] = _events(tmp_path / feed, "open_comment")[0]["data"]["cid"]
        first = "股市大涨" if feed == "hot" else "社会新闻要多关注"
        assert f"[0] {first}" in views[1] and first in views[2]  # the Main page, then the opened comment
    assert opened == {"hot": top, "persona": match}
    assert "feed" not in SimConfig().to_json() and SimConfig(feed="persona").to_json()["feed"] == "persona"
    with pytest.raises(ValueError, match="feed"):
        SimConfig(feed="sad")
