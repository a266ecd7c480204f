"""Generated corpus, locally trained tokenizer, and batches that are a pure function of (seed, step)."""

import json

import numpy as np
import pytest

from humanai_jax.data import (
    TokenWindows,
    generate_corpus,
    load_tokenizer,
    read_text_corpus,
    tokenize_documents,
    train_tokenizer,
)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tok"))
    train_tokenizer(generate_corpus(300, seed=1), 300, path)
    return path


def test_corpus_is_deterministic_and_consistent():
    docs = generate_corpus(50, seed=3)
    assert docs == generate_corpus(50, seed=3) and docs != generate_corpus(50, seed=4)
    for doc in docs:  # the arithmetic facts the model is meant to learn are right
        for fact in doc.split(". "):
            words = fact.rstrip(".").split()
            if len(words) == 5 and words[1] in ("plus", "minus") and words[3] == "is":
                a, b, c = int(words[0]), int(words[2]), int(words[4])
                assert c == (a + b if words[1] == "plus" else a - b)


def test_tokenizer_is_a_hf_fast_tokenizer_that_round_trips(tokenizer):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = AutoTokenizer.from_pretrained(tokenizer)
    assert isinstance(tok, PreTrainedTokenizerFast) and len(tok) <= 300
    text = "Ada had a brave owl. 12 plus 7 is 19."
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    assert load_tokenizer(tokenizer).vocab == tok.vocab
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        load_tokenizer(str(tokenizer) + "_missing")


def test_batches_are_a_pure_function_of_seed_and_step(tokenizer):
    tok = load_tokenizer(tokenizer)
    ids = tokenize_documents(tok, generate_corpus(100, seed=2))
    assert (ids == tok.eos_token_id).sum() == 100
    a, b = TokenWindows(ids, 16, seed=5), TokenWindows(ids, 16, seed=5)
    np.testing.assert_array_equal(a.batch(7, 4), b.batch(7, 4))  # fresh iterator, same batch
    assert not np.array_equal(a.batch(7, 4), TokenWindows(ids, 16, seed=6).batch(7, 4))
    # each window is seq_len + 1 consecutive tokens of the stream
    w = a.window(3)
    np.testing.assert_array_equal(w, ids[48:65])
    # one epoch visits every window exactly once
    n = a.num_windows
    rows = np.concatenate([a.batch(s, 1) for s in range(n)])
    seen = {tuple(r) for r in rows}
    assert len(seen) == len({tuple(a.window(i)) for i in range(n)})
    # per-host slices concatenate to the global batch
    hosts = [a.batch(9, 8, process_index=i, process_count=4) for i in range(4)]
    np.testing.assert_array_equal(np.concatenate(hosts), a.batch(9, 8))
    with pytest.raises(ValueError, match="divisible"):
        a.batch(0, 6, process_count=4)
    train, evals = a.split(0.1)
    assert train.num_windows + evals.num_windows == a.num_windows
    # eval is the tail of the stream, disjoint from train (they share only the boundary token)
    cut = train.num_windows * 16
    np.testing.assert_array_equal(train.tokens, ids[: cut + 1])
    np.testing.assert_array_equal(evals.window(0), ids[cut : cut + 17])


def test_read_text_corpus_reports_file_and_line(tmp_path):
    good = tmp_path / "c.jsonl"
    good.write_text(json.dumps({"text": "a b"}) + "\n\n" + json.dumps({"text": "c"}) + "\n")
    assert read_text_corpus(str(good)) == ["a b", "c"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "ok"}) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        read_text_corpus(str(bad))
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"wrong.jsonl:1: expected an object with a string field 'text'"):
        read_text_corpus(str(wrong))
    txt = tmp_path / "c.txt"
    txt.write_text("first doc\nline two\n\nsecond doc\n")
    assert read_text_corpus(str(txt)) == ["first doc\nline two", "second doc"]


def test_given_or_trained_prefers_the_given_tokenizer_then_the_cache_then_trains(tmp_path, tokenizer):
    from humanai_jax.data.tokenizer import given_or_trained

    calls = []

    def train(out):
        calls.append(out)
        return train_tokenizer(generate_corpus(20, seed=1), 300, out)

    cache = str(tmp_path / "tok")
    first = given_or_trained("", cache, train)
    assert calls == [cache] and len(first) == 300
    again = given_or_trained("", cache, train)  # a resumed run reuses the cached one, no retraining
    assert calls == [cache] and again.get_vocab() == first.get_vocab()
    given = given_or_trained(tokenizer, cache, train)  # a named tokenizer dir wins over the cache
    assert given.get_vocab() == load_tokenizer(tokenizer).get_vocab() and calls == [cache]
    with pytest.raises(ValueError, match="has no chat_template"):
        given_or_trained(tokenizer, cache, train, chat=True)
