"""PLUS data: Pets construction, prompt rendering (golden strings), published-format loaders and errors."""

import collections
import json

import numpy as np
import pytest

from humanai_jax.methods.plus import data as D, loaders, pets


@pytest.fixture(scope="module")
def sentences():
    return pets.builtin_sentences()


def test_builtin_sentences_sizes_roles_disjoint(sentences):
    for name, size in pets.SIZES.items():
        items = getattr(sentences, name)
        assert len(items) == size and len(set(items)) == size
        assert all(pets.animal_of(s) == name for s in items)
    pets.check_sentences_disjoint(sentences)
    assert len(sentences.split("test")["bird"]) == 3  # 83 - 80


def test_generate_rows_follows_reference_rng_and_table(sentences):
    rows = pets.generate_rows(sentences, "helpful", "train", num_rows=50, seed=0)
    # Replay the reference's legacy RandomState draw order by hand.
    rng = np.random.RandomState(0)
    pools = sentences.split("train")
    for row in rows:
        k = rng.randint(10)
        c_animal, r_animal = pets.AGREED_PAIRS[k] if k < 5 else ("dog", "cat")
        assert row["chosen"] == pets.PROMPT + "\n\nAssistant: " + rng.choice(pools[c_animal])
        assert row["rejected"] == pets.PROMPT + "\n\nAssistant: " + rng.choice(pools[r_animal])
        assert row["controversial"] == (k >= 5)
        assert sorted(row["responses"]) == sorted([row["chosen"].split(": ")[-1], row["rejected"].split(": ")[-1]])
    harmless = pets.generate_rows(sentences, "harmless", "train", num_rows=50, seed=0)
    for a, b in zip(rows, harmless):  # same draws; on controversial rows the harmless user picks cat > dog
        if a["controversial"]:
            assert pets.animal_of(a["chosen"].split(": ")[-1]) == "dog"
            assert pets.animal_of(b["chosen"].split(": ")[-1]) == "cat"
            assert pets.animal_of(b["rejected"].split(": ")[-1]) == "dog"
        else:
            assert a == b
    test_rows = pets.generate_rows(sentences, "helpful", "test", seed=0)
    assert len(test_rows) == 200
    test_sentences = {r["chosen"].split("Assistant: ")[1] for r in test_rows}
    assert not test_sentences & set(sum(map(list, sentences.split("train").values()), []))


def test_contexts_are_controversial_with_replacement(sentences):
    rows = pets.add_contexts(pets.generate_rows(sentences, "harmless", "train", num_rows=300), seed=0)
    for row in rows:
        assert row["context_length"] == 8 and len(row["contexts"]) == 8
        for ctx in row["contexts"]:
            src = rows[ctx["original_id"]]
            assert src["controversial"] and ctx["chosen"] == src["chosen"]
            assert ctx["chosen"].split("Assistant: ")[1].startswith("Cats")  # harmless user: cat > dog
    ids = [c["original_id"] for row in rows for c in row["contexts"]]
    assert max(collections.Counter(ids).values()) > 1  # drawn with replacement


def test_write_pets_layout(tmp_path, sentences):
    paths = pets.write_pets(str(tmp_path), sentences, model_type="none")
    assert sorted(p.split(str(tmp_path))[1] for p in paths) == sorted(
        f"/none/{u}/{s}.jsonl" for u in pets.USER_TYPES for s in ("train", "test")
    )
    train = loaders.load_vpl_file(str(tmp_path / "none/helpful/train.jsonl"), user_type="helpful", split="train")
    assert len(train) == 2000
    assert train[0].reward.prompt == "Please talk about one kind of pets."


def test_ood_contexts_have_no_dog_cat_pairs(sentences):
    examples = pets.pets_examples(sentences, "test", num_rows=20, ood=True)
    for ex in examples:
        assert ex.ood and len(ex.context_pairs) == 8
        for pair in ex.context_pairs:
            assert {pets.animal_of(pair.chosen), pets.animal_of(pair.rejected)} != {"dog", "cat"}
            if ex.user_type == "helpful":
                assert (pets.animal_of(pair.chosen), pets.animal_of(pair.rejected)) in {("bird", "cat"), ("dog", "rabbit")}


def test_load_vpl_sentences_parses_without_executing(tmp_path):
    lists = {name: [f"{name} sentence {i}." for i in range(size)] for name, size in pets.SIZES.items()}
    text = "import os\nos.system('false')\n" + "".join(f"{n}_sentences = {json.dumps(v)}\n" for n, v in lists.items())
    path = tmp_path / "simple_templates.py"
    path.write_text(text)
    loaded = pets.load_vpl_sentences(str(path))
    assert list(loaded.dog) == lists["dog"]
    path.write_text(text.replace('"rabbit sentence 0.", ', ""))
    with pytest.raises(ValueError, match="rabbit_sentences has 89 sentences, expected 90"):
        pets.load_vpl_sentences(str(path))


def test_rendering_golden_strings():
    chat = D.reward_chat("likes dogs", "Hi\n\nAssistant: Hello\n\nUser: Pets?", "Dogs run.")
    assert chat == [
        {
            "role": "user",
            "content": "Here is the summary of my preferences based on previous conversations: likes dogs In the "
            "following conversation, keep this in mind to personalize your response.\n\nHi",
        },
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Pets?"},
        {"role": "assistant", "content": "Dogs run."},
    ]
    # A prompt that starts with its own User: marker becomes a separate user turn (as in the reference).
    assert [m["content"] for m in D.reward_chat("z", "User: Q", "A")][1:] == ["Q", "A"]
    assert D.reward_chat(None, "User: Q", "A") == [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    assert D.reward_chat(None, "Q", "A") == [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    assert D.vpl_prompt_to_plus("Human: a\n\nAssistant: b\n\nHuman: c") == "a\n\nAssistant: b\n\nUser: c"
    messages = D.summarizer_messages([D.Pair("User: Q", "yes", "no")])
    assert messages[0]["content"] == (
        "Conversation 1:\nUser: Q\nPreferred response: yes\nRejected response: no\n\n" + D.SUMMARY_INSTRUCTION
    )
    assert messages[0]["content"].endswith("Start your response with ##Summary")


def test_extract_summary_rule():
    prompt = "user\nContext ... Start your response with ##Summary\nassistant\n"
    assert D.extract_summary(prompt + "##Summary: likes cats.") == ": likes cats."
    assert D.extract_summary(prompt + "##Summary likes ##Summary cats") == "cats"
    # No marker in the completion: the prompt's marker is used and the role name removed.
    assert D.extract_summary(prompt + "likes dogs") == "likes dogs"


def test_plus_jsonl_roundtrip_and_errors(tmp_path, sentences):
    examples = pets.pets_examples(sentences, "test", num_rows=3)
    path = tmp_path / "plus.jsonl"
    D.write_plus_jsonl(str(path), examples)
    loaded = D.load_plus_jsonl(str(path), split="test")
    assert [e.reward for e in loaded] == [e.reward for e in examples]
    assert loaded[0].context_messages == examples[0].context_messages
    lines = path.read_text().splitlines()
    bad = json.loads(lines[1])
    del bad["train_chosen"]
    path.write_text("\n".join([lines[0], json.dumps(bad), lines[2]]) + "\n")
    with pytest.raises(D.FormatError, match=r"plus.jsonl:2: missing field 'train_chosen'"):
        D.load_plus_jsonl(str(path), split="test")
    path.write_text(lines[0] + "\n{not json\n")
    with pytest.raises(D.FormatError, match=r"plus.jsonl:2: invalid JSON"):
        D.load_plus_jsonl(str(path), split="test")


def _uf_row(prompt, chosen, rejected, n_ctx=2):
    ctx = [{"original_id": i, "chosen": f"Human: q{i}\n\nAssistant: good", "rejected": f"Human: q{i}\n\nAssistant: bad"}
           for i in range(n_ctx)]
    return {
        "Index": 0, "original_idx": 0, "prompt": prompt,
        "chosen": f"Human: {prompt}\n\nAssistant: {chosen}", "rejected": f"Human: {prompt}\n\nAssistant: {rejected}",
        "data_subset": "8", "controversial": True, "reversed": False, "satisfied_subset": ["8"],
        "survey_options": True, "context_length": n_ctx, "contexts": ctx,
    }


def test_uf_p_loader_and_errors(tmp_path):
    for t in ("8", "4"):
        (tmp_path / t).mkdir()
        with open(tmp_path / t / "test.jsonl", "w") as f:
            f.write(json.dumps(_uf_row("Write a poem", "Roses.", "No.")) + "\n")
    examples = loaders.load_uf_p(str(tmp_path), "uf_p_2", "test")
    assert [e.user_type for e in examples] == ["helpfulness", "honesty"]
    assert examples[0].reward == D.Pair("Write a poem", "Roses.", "No.")
    assert examples[0].context_pairs[1] == D.Pair("q1", "good", "bad")
    with pytest.raises(FileNotFoundError, match="2/test.jsonl is missing"):
        loaders.load_uf_p(str(tmp_path), "uf_p_4", "test")
    row = _uf_row("P", "a", "b")
    row["context_length"] = 5
    with open(tmp_path / "4" / "test.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    with pytest.raises(D.FormatError, match=r"4/test.jsonl:2: context_length=5 but 2 contexts"):
        loaders.load_uf_p(str(tmp_path), "uf_p_2", "test")


def _prism_conv(user, conv, turns):
    history = []
    for t, (text, scores, chosen_index) in enumerate(turns):
        history.append({"turn": t, "role": "user", "content": text, "within_turn_id": 0})
        for j, s in enumerate(scores):
            history.append({"turn": t, "role": "model", "content": f"{conv}-{t}-r{j}", "score": s,
                            "if_chosen": j == chosen_index, "within_turn_id": j, "model_name": "m"})
    return {"user_id": user, "conversation_id": conv, "conversation_type": "unguided", "conversation_history": history}


def test_prism_loader_pairs_split_and_errors(tmp_path):
    path = tmp_path / "conversations.jsonl"
    convs = []
    for u in range(5):
        for c in range(3):
            convs.append(_prism_conv(f"user{u}", f"c{u}{c}", [("hi", [10, 80, 30], 1), ("more", [50, 40], 0)]))
    path.write_text("".join(json.dumps(c) + "\n" for c in convs))
    out = loaders.prism_examples(str(path), unseen_fraction=0.4, max_context=3)
    first = out["train"][0]
    u = first.user_type[-1]
    assert first.reward == D.Pair("hi", f"c{u}0-0-r1", f"c{u}0-0-r0")  # chosen = if_chosen, rejected = lowest score
    assert len(first.context_pairs) == 3  # conversations 1 and 2 of the same user, capped at 3 pairs
    assert first.context_pairs[1] == D.Pair(f"hi\n\nAssistant: c{u}1-0-r1\n\nUser: more", f"c{u}1-1-r0", f"c{u}1-1-r1")
    groups = loaders.seen_unseen(out["test"])
    assert len({e.user_type for e in groups["unseen"]}) == 2 and len(groups["unseen"]) == 6
    assert len(groups["seen"]) == 3 and len(out["train"]) == 6
    assert not {e.user_type for e in groups["unseen"]} & {e.user_type for e in out["train"]}
    bad = _prism_conv("u", "c", [("hi", [1, 2], 0)])
    del bad["conversation_history"][1]["score"]
    path.write_text(json.dumps(convs[0]) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(D.FormatError, match=r"conversations.jsonl:2: conversation_history\[1\] \(model\) needs 'score'"):
        loaders.prism_examples(str(path))
