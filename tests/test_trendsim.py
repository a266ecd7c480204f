"""TrendSim units: time density and sampler (KS test), schedules, hot list, parsers, loaders, prompts and
the §10 metric arithmetic on hand-built traces."""

import numpy as np
import pytest
from scipy import stats

from humanai_jax.methods.trendsim import agents, data, metrics, parsing, timing
from humanai_jax.methods.trendsim.media import SocialMedia
from tests.conftest import require_shared

# ------------------------------------------------------------------------------------------ timing


@pytest.mark.parametrize("A", [0.6, 1.0, 1.8])
def test_density_pieces_meet_and_normaliser_matches_closed_form(A):
    T = 5.0
    for join in (T, T + 1.0):  # value 1 on both sides of each join
        left, right = timing.density_unnormalised([join - 1e-9, join + 1e-9], A)
        assert left == pytest.approx(1.0, abs=1e-6) and right == pytest.approx(1.0, abs=1e-6)
    assert timing.density_unnormalised(T + 0.5, A) == pytest.approx(1 + A / 4)  # the peak
    # quad (the reference's way) against the hand integral of the three pieces
    assert timing.normaliser(A) == pytest.approx(timing.closed_form_normaliser(A), rel=1e-9)
    assert timing.exact_cdf(10.0, A) == pytest.approx(1.0)


def test_samplers_match_the_density_by_ks():
    rng = np.random.default_rng(0)
    A = 1.2
    cont = np.array([timing.sample_x(rng, A, mode="continuous") for _ in range(4000)])
    assert stats.kstest(cont, lambda x: timing.exact_cdf(x, A)).pvalue > 0.01
    # the reference sampler returns grid points (step 0.1); spread each over its cell before the KS test
    ref = np.array([timing.sample_x(rng, A, mode="reference") for _ in range(4000)])
    assert np.allclose(ref * 10, np.round(ref * 10))
    jittered = ref + rng.uniform(-0.05, 0.05, size=ref.size)
    assert stats.kstest(jittered, lambda x: timing.exact_cdf(x, A)).pvalue > 0.01
    # the test has power: the same draws against another activity level are rejected
    assert stats.kstest(jittered, lambda x: timing.exact_cdf(x, 3.0)).pvalue < 1e-6


def test_reference_sampler_is_the_grid_insertion_index():
    A = 0.9
    cdf = timing.grid_cdf(A)
    draws = np.random.default_rng(5).uniform(size=50)
    rng = np.random.default_rng(5)
    for u in draws:
        i = int(np.searchsorted(cdf, u))
        assert timing.sample_x(rng, A) == pytest.approx(min(i / 10, 10.0))


def test_user_schedule_offsets_from_the_window_start():
    window, epochs = 57600, 2  # beta = 4 h
    x = timing.sample_x(np.random.default_rng(3), 1.0)
    gap = int(x * 14400 / 10)
    t, x2 = timing.next_user_visit(np.random.default_rng(3), 0, window, A=1.0, epoch_num=epochs)
    assert (t, x2) == (gap, x)
    t, _ = timing.next_user_visit(np.random.default_rng(3), gap + 1, window, A=1.0, epoch_num=epochs)
    assert t is None  # the candidate lies before `now`: the user never returns
    t, _ = timing.next_user_visit(np.random.default_rng(3), 100, window, A=1.0, epoch_num=epochs,
                                  schedule_mode="from_now")
    assert t == 100 + gap


def test_attacker_schedule():
    rng = np.random.default_rng(0)
    firsts = [timing.first_attacker_visit(rng, 57600) for _ in range(500)]
    assert min(firsts) >= 1 and max(firsts) <= 5760
    assert timing.next_attacker_visit(1000, 57600, 2) == 1000 + 14400
    assert timing.next_attacker_visit(57600 - 14399, 57600, 2) is None
    assert timing.activity(like_num=10, n_agents=100, emotion=0.5) == pytest.approx(1.1)


# ------------------------------------------------------------------------------------------- media


def test_hot_list_like_resorting_by_hand():
    m = SocialMedia()
    a, b, c, d = (m.add_comment(i, "normal", f"c{i}", 0) for i in range(4))
    hidden = m.add_comment(9, "T", "bad", 0, hidden=True)
    assert m.hot == [a, b, c, d] and m.detect_list == [hidden]
    m.like_comment(c)  # c: 1 like, passes a, b (0 likes)
    assert m.hot == [c, a, b, d]
    m.like_comment(d)  # d: 1 like, passes a, b but not c (equal likes: stable)
    assert m.hot == [c, d, a, b]
    m.like_comment(b)
    m.like_comment(b)  # b: 2 likes, to the top
    assert m.hot == [b, c, d, a]
    assert m.page(1, 2) == [(2, d), (3, a)] and m.page(2, 2) == []
    assert m.comment_at(0) == b and m.comment_at(4) is None
    m.add_reply(b, 5, "normal", "r", 3)
    assert SocialMedia.from_json(m.to_json()) == m


# ------------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize("text,state,mode,expected", [
    ("我选择 3", "Main", "reference", (3, "ok")),
    ("嗯", "Main", "reference", (0, "no_digit")),  # reference: no digit -> 0 (Like post)
    ("嗯", "Main", "robust", (5, "no_digit")),  # robust: -> Leave
    ("嗯", "Entry", "reference", (0, "no_digit")),
    ("嗯", "Comment", "robust", (2, "no_digit")),
    ("7", "Main", "reference", (5, "invalid")),  # not a Main code -> Leave
    ("3", "Comment", "reference", (2, "invalid")),  # -> Back
    ("2", "Entry", "robust", (1, "invalid")),
    ("<think>maybe 4</think>1", "Entry", "robust", (1, "ok")),
    ("<think>maybe 4</think>1", "Main", "reference", (4, "ok")),
])
def test_decision_parser_modes(text, state, mode, expected):
    assert parsing.parse_decision(text, state, mode) == expected


def test_number_parsers():
    assert parsing.parse_percent("情绪值 73%") == (0.73, "ok")
    assert parsing.parse_percent("150") == (1.0, "ok")
    assert parsing.parse_percent("无法判断") == (0.5, "no_digit")  # a reset to 0.5, not the old value
    assert parsing.parse_index(" 12 ") == (12, "ok")
    assert parsing.parse_index("第2条") == (0, "invalid")
    assert parsing.parse_index("第2条", "robust") == (2, "ok")
    assert parsing.parse_flag("1") == (True, "ok") and parsing.parse_flag("0，无恶意") == (False, "ok")
    assert parsing.parse_flag("不确定") == (False, "no_digit")
    with pytest.raises(ValueError, match="parse mode"):
        parsing.parse_decision("1", "Main", "lenient")


# ------------------------------------------------------------------------------------------ loaders


def test_real_data_loads_with_spec_counts():
    tweets = data.load_tweets(str(require_shared("trendsim/tweets.csv")))
    users = data.load_users(str(require_shared("trendsim/user_1000.csv")))
    assert len(tweets) == 11 and [t.index for t in tweets] == list(range(11))
    assert tweets[0].title.startswith("2322名") and not tweets[0].title.startswith("\ufeff")
    assert len(users) == 1000 and users[5].name == "anonymous_5" and users[5].uid == 5
    assert all("\r" not in u.description for u in users)


def test_loader_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "users.csv"
    bad.write_text("0,0,anonymous_0,10,20,喜欢音乐\r\n1,1,anonymous_1,many,20,喜欢电影\r\n", encoding="utf-8")
    with pytest.raises(data.TrendSimDataError, match=r"users.csv:2: column 'followed_num'"):
        data.load_users(str(bad))
    short = tmp_path / "tweets.csv"
    short.write_text("\ufeff0,标题,导语,正文,来源\n", encoding="utf-8")
    with pytest.raises(data.TrendSimDataError, match=r"tweets.csv:1: expected 6 columns, got 5"):
        data.load_tweets(str(short))


# ------------------------------------------------------------------------------------------ prompts


def test_zh_and_en_templates_have_the_same_fields():
    zh, en = agents.library("zh"), agents.library("en")
    names = ["role", "perceive", "decide_Entry", "decide_Main", "decide_Comment", "act_comment", "act_reply",
             "act_open", "reflect_memory", "reflect_opinion", "reflect_emotion", "reflect_confidence", "attack",
             "moderate", "view_entry", "view_main", "view_comment"]
    for name in names:
        assert zh.fields(name) == en.fields(name), name
    assert set(zh.json("attackers")) == {"S", "T", "F"}
    assert all(len(v["prototypes"]) == 5 for v in zh.json("attackers").values())
    agent = dict(persona="p", memory="", opinion="", emotion=0.5, confidence=0.25)
    assert "0.50" in agents.role_block(zh, agent) and "0.25" in agents.role_block(zh, agent)
    assert "50/1.0" in agents.role_block(zh, agent, compat_format=True)  # the reference's formatting slip


# ------------------------------------------------------------------------------------------ metrics


def _ev(name, time, **data):
    return {"type": "event", "name": name, "time": time, "data": data}


def _trace(emotions, types=("normal", "normal", "T"), comments=(), main_views=(), decisions=()):
    agents_ = [{"aid": i, "type": t, "row": i, "persona": "关注社会新闻" if i == 0 else "喜欢追星"}
               for i, t in enumerate(types)]
    ev = [_ev("run_start", 0, config={"window_s": 7200}, agents=agents_)]
    for aid, t, e, c in emotions:
        ev.append(_ev("state", t, aid=aid, before={}, after={"emotion": e, "confidence": c},
                      parse={"emotion": "ok", "confidence": "ok"}))
    ev += list(comments) + list(main_views) + list(decisions)
    return ev


def test_curves_and_paired_deltas_by_hand():
    attack = _trace([(0, 1800, 0.3, 0.4), (1, 5000, 0.2, 0.5), (0, 3000, 0.1, 0.4)])
    clean = _trace([(0, 100, 0.6, 0.5)])
    c = metrics.curves(attack, 7200)
    # hour 0: both at 0.5; hour 1 (3600 s): user 0 latest is 0.1 (t=3000), user 1 still 0.5; hour 2: 0.1, 0.2
    assert c["E"] == pytest.approx([0.5, 0.3, 0.15]) and c["S"] == pytest.approx([0.5, 0.45, 0.45])
    cmp = metrics.compare(attack, clean, {"societal": ["社会"], "entertainment": ["追星"]})
    assert cmp["dE"] == pytest.approx(0.15 - 0.55)  # population means
    assert cmp["dE_paired"] == pytest.approx(((0.1 - 0.6) + (0.2 - 0.5)) / 2)
    assert cmp["vulnerability"]["societal"]["dE_paired"] == pytest.approx(-0.5)
    assert cmp["vulnerability"]["entertainment"]["dE_paired"] == pytest.approx(-0.3)


def test_moderation_exposure_and_decision_metrics_by_hand():
    def comment(author, moderated, hidden):
        return _ev("comment", 10, author_type=author, moderated=moderated, hidden=hidden, moderation_status="ok")
    comments = [comment("S", True, True), comment("T", True, True), comment("F", True, False),
                comment("normal", True, True), comment("normal", True, False), comment("normal", True, False),
                comment("S", False, False)]
    m = metrics.moderation(_trace([], comments=comments))
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 2)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3) and m["fpr"] == pytest.approx(1 / 3)
    assert m["unmoderated_attacker_comments"] == 1
    assert metrics.moderation(_trace([]))["precision"] is None  # 0/0 is undefined, not 0
    views = [_ev("main_view", 5, type="normal", types=["T", "normal", "S", "normal"]),
             _ev("main_view", 6, type="normal", types=["normal"]),
             _ev("main_view", 7, type="normal", types=[]),
             _ev("main_view", 8, type="T", types=["T"])]  # attackers' own views do not count
    e = metrics.exposure(_trace([], main_views=views))
    assert e["main_views"] == 3 and e["first_page_attacker_share"] == pytest.approx((0.5 + 0.0) / 2)
    assert e["views_with_attacker_comment"] == pytest.approx(1 / 3)
    assert e["attacker_comments_read_per_user"] == pytest.approx(2 / 2)  # 2 attacker comments read, 2 normal users
    # the final first page is `page_size` long (hot list: T, normal, S, normal, F)
    media = {"comments": [{"cid": i, "author_type": t} for i, t in enumerate(["T", "normal", "S", "normal", "F"])],
             "hot": [0, 1, 2, 3, 4]}
    for page_size, share in ((2, 1 / 2), (5, 3 / 5)):
        ev = _trace([]) + [_ev("final", 7200, final_social_media=media)]
        ev[0]["data"]["config"]["page_size"] = page_size
        assert metrics.exposure(ev)["final_first_page_attacker_share"] == pytest.approx(share)
    decs = [_ev("decision", 1, state="Main", action="leave", status="invalid"),
            _ev("decision", 2, state="Main", action="like_post", status="ok"),
            _ev("decision", 3, state="Entry", action="enter", status="no_digit"),
            _ev("decision", 4, state="Entry", action="enter", status="ok")]
    d = metrics.decisions(_trace([], decisions=decs))
    assert d["invalid_decision_rate"] == pytest.approx(0.5)
    assert d["actions"] == {"Main": {"leave": 1, "like_post": 1}, "Entry": {"enter": 2}}


def test_arrival_histogram_expected_mass():
    ev = _trace([]) + [_ev("schedule", 0, aid=0, type="normal", x=5.5, A=1.0, visit_time=10)]
    a = metrics.arrivals(ev, 7200)
    assert a["observed"][5] == 1.0 and sum(a["expected"]) == pytest.approx(1.0)
    assert a["expected"][5] == pytest.approx(timing.exact_cdf(6.0, 1.0) - timing.exact_cdf(5.0, 1.0))
    assert a["tv_distance"] == pytest.approx(1 - a["expected"][5])


# ------------------------------------------------------------------------------------------ rule policy


def test_rule_policy_by_hand():
    from humanai_jax.agents import GenConfig
    from humanai_jax.methods.trendsim.rules import RulePolicyBackend

    zh = agents.library("zh")
    view = "【正文】小伙修路，大家都支持他\n【热门评论】\n[0] 真相被隐瞒了，恶心\n[1] 来看看\n[2] 好失望"
    policy = RulePolicyBackend(recovery=0.2)
    # texts: post line (pos), [0] (neg + hostile), [1] (neutral), [2] (neg); headers are not texts
    assert policy.text_counts(view) == {"total": 4, "pos": 1, "neg": 2, "hostile": 1}
    agent = dict(persona="p", memory="", opinion="", emotion=0.2, confidence=0.6)
    cfg = GenConfig(seed=1)
    impression = policy.reply("trendsim.user.perceive", agents.user_message(zh, "perceive", agent, view=view)[0]
                              ["content"], cfg)
    prompt = agents.user_message(zh, "reflect_emotion", agent, impression=impression, action="你离开了。")[0]["content"]
    # e' = 0.2 + 0.1 (1 - 2) / 4 + 0.2 (0.5 - 0.2) = 0.235 -> "24"; c' = 0.6 + (0.05 - 0.1) / 4 + 0.2 (-0.1) = 0.5675
    assert policy.reply("trendsim.user.reflect.emotion", prompt, cfg) == "24"
    prompt_c = agents.user_message(zh, "reflect_confidence", agent, impression=impression, action="你离开了。")
    assert policy.reply("trendsim.user.reflect.confidence", prompt_c[0]["content"], cfg) == "57"
    mod = lambda text: policy.reply("trendsim.moderate", agents.moderation_message(zh, text)[0]["content"], cfg)  # noqa: E731
    assert mod("真相被隐瞒了") == "1" and mod("真相如何？") == "0" and mod("支持！") == "0"
    assert RulePolicyBackend().name != RulePolicyBackend(recovery=0.2).name  # runs of other rules are not reused


def test_page_tone_from_a_hand_written_trace(tmp_path):
    import json

    from humanai_jax.methods.trendsim.rules import page_tone

    def call(view, response, tag="trendsim.user.perceive"):
        return {"type": "llm_call", "agent": tag, "messages": [{"role": "user", "content": view}],
                "response": [response]}

    lines = [call("【正文】x\n【热门评论】\n[0] a", "读完感觉：共4条内容，正面1条，负面3条，带敌意或质疑2条。"),
             call("【正文】x\n【热门评论】\n-", "读完感觉：共2条内容，正面1条，负面0条，带敌意或质疑0条。"),
             call("【标题】x", "读完感觉：共9条内容，正面0条，负面9条，带敌意或质疑9条。"),  # Entry view: not Main
             call("【热门评论】", "共1条内容，正面0条，负面1条，带敌意或质疑1条", tag="trendsim.user.decide.Main"),
             {"type": "event", "name": "perceive", "data": {"tag": "trendsim.user.perceive"}}]
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    tone = page_tone(str(path))
    # Main pages: (3 - 1) / 4 = 0.5 and (0 - 1) / 2 = -0.5 -> 0; hostile 2/4 and 0/2 -> 0.25
    assert tone == {"main_page_negativity": 0.0, "main_page_hostility": 0.25, "main_page_perceptions": 2}
    path.write_text(json.dumps(call("【热门评论】", "随便说说"), ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="traces.jsonl:1"):
        page_tone(str(path))
