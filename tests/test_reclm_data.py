"""RecLM data: readers (file:line errors), the paper's filtering and user draw, unique titles, the
leave-one-out split, training samples, and the token layout of replies."""

import gzip
import json
import os
import random

import numpy as np
import pytest

from humanai_jax.methods.reclm import data as rdata, encode
from humanai_jax.recsys.data import DataFormatError

ML100K = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "recsys", "ml-100k")


def _write(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


# ------------------------------------------------------------------------------ readers
def test_read_recbole_and_errors(tmp_path):
    inter = _write(tmp_path / "x.inter", ["user_id:token\titem_id:token\trating:float\ttimestamp:float",
                                          "u1\ti1\t3\t10", "u1\ti2\t4\t5"])
    item = _write(tmp_path / "x.item", ["item_id:token\tmovie_title:token_seq", "i1\tA ", "i2\tB"])
    rows, titles = rdata.read_recbole(inter, item)
    assert rows == [("u1", "i1", 10.0), ("u1", "i2", 5.0)] and titles == {"i1": "A", "i2": "B"}
    bad = _write(tmp_path / "b.inter", ["user_id:token\titem_id:token\ttimestamp:float", "u\ti\t1", "u\ti"])
    with pytest.raises(DataFormatError, match=r"b\.inter:3: expected 3"):
        rdata.read_recbole(bad, item)
    bad = _write(tmp_path / "c.inter", ["user_id:token\titem_id:token\ttimestamp:float", "u\ti\tyesterday"])
    with pytest.raises(DataFormatError, match=r"c\.inter:2: timestamp"):
        rdata.read_recbole(bad, item)
    no_title = _write(tmp_path / "n.item", ["item_id:token\tyear:token", "i1\t1999"])
    with pytest.raises(DataFormatError, match=r"n\.item:1: .*movie_title"):
        rdata.read_recbole(inter, no_title)


def test_read_amazon_filters_and_errors(tmp_path):
    meta = tmp_path / "meta.json.gz"
    with gzip.open(meta, "wt") as f:
        for rec in ({"asin": "a", "title": "Toy\n\tCar", "category": ["Toys", "Cars"]},
                    {"asin": "b", "title": "", "category": ["Toys"]},  # empty title: dropped
                    {"asin": "c", "title": "Doll", "category": []}):  # no category: dropped
            f.write(json.dumps(rec) + "\n")
    reviews = _write(tmp_path / "rev.json", [
        json.dumps({"reviewerID": "u", "asin": "a", "overall": 5.0, "unixReviewTime": 7}),
        json.dumps({"reviewerID": "u", "asin": "b", "overall": 1.0, "unixReviewTime": 8})])
    rows, titles = rdata.read_amazon(reviews, str(meta))
    assert titles == {"a": "Toy Car"} and rows == [("u", "a", 7.0)]
    broken = _write(tmp_path / "r2.json", [json.dumps({"reviewerID": "u", "asin": "a", "overall": 5,
                                                       "unixReviewTime": 1}), "{not json"])
    with pytest.raises(DataFormatError, match=r"r2\.json:2: not a JSON object"):
        rdata.read_amazon(broken, str(meta))
    missing = _write(tmp_path / "r3.json", [json.dumps({"reviewerID": "u", "overall": 5, "unixReviewTime": 1})])
    with pytest.raises(DataFormatError, match=r"r3\.json:1: missing field 'asin'"):
        rdata.read_amazon(missing, str(meta))


def test_read_steam_python_literals_and_errors(tmp_path):
    games = _write(tmp_path / "games.json", ["{'id': '10', 'app_name': 'Counter-Strike'}", "{'title': 'no id'}"])
    reviews = _write(tmp_path / "rev.json", ["{'username': 'p', 'product_id': '10', 'date': '2014-01-02'}",
                                             "{'username': 'p', 'product_id': '99', 'date': '2014-01-03'}"])
    rows, titles = rdata.read_steam(reviews, games)
    assert titles == {"10": "Counter-Strike"} and [r[:2] for r in rows] == [("p", "10")]
    bad = _write(tmp_path / "bad.json", ["{'username': 'p', 'product_id': '10', 'date': 'Jan 2'}"])
    with pytest.raises(DataFormatError, match=r"bad\.json:1: date"):
        rdata.read_steam(bad, games)


# ------------------------------------------------------------------------------ filtering, titles, split
def test_unique_titles_follow_the_reference():
    assert rdata.unique_titles(["A", "A", "A (1)", "A", "B"]) == ["A", "A (1)", "A (1) (1)", "A (2)", "B"]


def test_build_dataset_filtering_and_user_draw():
    titles = {f"i{k}": f"T{k}" for k in range(30)}
    titles["i29"] = ""  # no title: its interactions are dropped
    inter = []
    for u in range(6):
        n = 5 if u % 2 else 3  # odd users have 5 interactions, even ones 3
        for k in range(n):
            inter.append((f"u{u}", f"i{(u + k) % 29}", float(100 - k)))  # reversed time: sorting matters
    inter.append(("u1", "i1", 0.0))  # a repeat of (u1, i1): the first record (time 100) is kept
    inter.append(("u1", "i29", 1.0))
    ds = rdata.build_dataset("toy", inter, titles, min_len=4, max_len=4, n_users=5, seed=0)
    random.seed(0)
    expected_users = list(dict.fromkeys(random.choices(["u1", "u3", "u5"], k=5)))
    assert ds.report["users_unique"] == len(expected_users) and ds.report["dropped_no_title"] == 1
    by_user = {u: [f"i{(int(u[1:]) + k) % 29}" for k in range(5)][::-1][:4] for u in expected_users}
    got = [[ds.titles[i] for i in q] for q in ds.sequences]
    assert got == [[titles[i] for i in by_user[u]] for u in expected_users]


def test_eval_cases_leave_one_out():
    seq = list(range(17))
    val, test = rdata.eval_cases([seq], "val")[0], rdata.eval_cases([seq], "test")[0]
    assert val.target == 15 and val.history == list(range(5, 15)) and val.seen == list(range(15))
    assert test.target == 16 and test.history == list(range(6, 16))
    assert rdata.train_part(seq) == list(range(15))
    with pytest.raises(ValueError, match=">= 3"):
        rdata.eval_cases([[1, 2]], "test")


def test_train_samples_put_the_true_next_item_first():
    titles = [f"Movie {k}" for k in range(40)]
    seq = list(range(17))
    calls = []

    def teacher(history, k):
        calls.append((list(history), k))
        return [history[-1] + 1, 39, 38, 37, 36, 35, 34, 33, 32, 31][:k]  # includes the target first

    seen_templates = set()
    for s in range(60):
        smp = rdata.draw_train_sample(np.random.default_rng(s), seq, titles, teacher)
        history, k = calls[-1]
        target = history[-1] + 1
        assert history == list(range(history[0], target)) and 1 <= len(history) <= 10 and target <= 14
        assert smp.items[0] == target and len(smp.items) == k and len(set(smp.items)) == k
        assert rdata.history_text(titles, history) in smp.prompt
        if smp.template in (1, 3):
            cands = smp.prompt.split("The candidate items are: ")[1].split(". Please")[0]
            assert all(f'"{titles[i]}"' in cands for i in smp.items) and cands.count('"') == 20
        seen_templates.add(smp.template)
    assert seen_templates == {0, 1, 2, 3}
    assert "interactions.The historical" in rdata.TRAIN_TEMPLATES[0]  # verbatim, missing space included


@pytest.mark.skipif(not os.path.exists(ML100K), reason="shared ML-100K copy not present")
def test_ml100k_default():
    rows, titles = rdata.read_recbole(os.path.join(ML100K, "ml-100k.inter"), os.path.join(ML100K, "ml-100k.item"))
    ds = rdata.build_dataset("ml-100k", rows, titles)
    assert ds.report["users_unique"] == 943 and all(len(q) == 17 for q in ds.sequences)
    assert len(set(ds.titles)) == ds.n_items and ds.report["titles_suffixed"] > 0


# ------------------------------------------------------------------------------ token layout
@pytest.fixture(scope="module")
def codec(tmp_path_factory):
    texts = ["Toy Story", "GoldenEye", "Four Rooms", "Get Shorty"] + list(rdata.TRAIN_TEMPLATES)
    tok = encode.train_reclm_tokenizer(texts * 3, 400, str(tmp_path_factory.mktemp("tok")))
    return encode.ChatCodec.create(tok)


def test_reply_slices_are_the_title_tokens(codec):
    titles = ["Toy Story", "GoldenEye", "Four Rooms (1)", "Get Shorty"]
    ids = encode.title_token_ids(codec.tokenizer, titles)
    reply = codec.reply_ids(ids, [2, 0, 3])
    sois = [i for i, t in enumerate(reply) if t == codec.soi_id]
    eois = [i for i, t in enumerate(reply) if t == codec.eoi_id]
    assert [reply[s + 1:e] for s, e in zip(sois, eois)] == [ids[2], ids[0], ids[3]]
    assert reply[-1] == codec.eot_id
    text = codec.tokenizer.decode(reply[:-1], skip_special_tokens=False)
    assert text == "1. <SOI>Four Rooms (1)<EOI>\n 2. <SOI>Toy Story<EOI>\n 3. <SOI>Get Shorty<EOI>\n"
    prompt = codec.prompt_ids("hello")
    assert prompt[-1] == codec.tokenizer.convert_tokens_to_ids("<|assistant|>")


def test_ret_lm_mask_and_retrieval_targets(codec):
    S, E = codec.soi_id, codec.eoi_id
    reply = [5, S, 7, 8, E, 6, S, 9, E, 4]
    np.testing.assert_array_equal(encode.ret_lm_mask(reply, S, E), [1, 1, 0, 0, 0, 1, 1, 0, 0, 1])
    tokens, mask = encode.build_row([1, 2, S, 3], reply, 20)  # a prompt <SOI> is not a reply span
    assert mask.sum() == len(reply) and mask[4] == 1 and mask[3] == 0
    pos, item = encode.retrieval_targets(tokens, 4, [11, 12], S, 3)
    np.testing.assert_array_equal(pos, [4, 9, -1])
    np.testing.assert_array_equal(item, [11, 12, -1])
    long_prompt = list(range(30))
    tokens, mask = encode.build_row(long_prompt, reply, 16)
    assert tokens[:6].tolist() == long_prompt[-6:] and mask[6:].sum() == len(reply)
