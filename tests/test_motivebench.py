"""MotiveBench: loader errors with file:line, option-order math, reference prompts byte for byte,
extraction rules on hand cases, metrics by hand, baselines, and scripted end-to-end runs (an always-gold
model scores 100% under every order, a fixed-letter model scores chance), record/replay."""

from __future__ import annotations

import ast
import copy
import json
import os
import pathlib

import ml_collections
import numpy as np
import pytest

from humanai_jax.agents import ScriptedBackend
from humanai_jax.methods.motivebench import backends, baselines, data, extract, metrics, orders, prompting, runner

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "motivebench"


def _opts(texts):
    return [f"{'ABCDEF'[i]}. {t}" for i, t in enumerate(texts)]


def _record(idx, golds=("B", "A", "F")):
    r = {"idx": idx}
    for k, (task, (stem_key, opt_key, gold_key)) in enumerate(data.TASK_KEYS.items()):
        r[stem_key] = f"Scenario {idx}: Mia, a nurse, {task} question {k}. Why does she stay late at the ward?"
        r[opt_key] = _opts([f"option {idx}-{task}-{j} " + "word " * j for j in range(6)])
        r[gold_key] = golds[k]
    return r


RECORDS = [_record(0, ("B", "A", "F")), _record(1, ("D", "D", "C")), _record(2, ("E", "B", "A"))]


def _write(path, records, indent=4):
    path.write_text(json.dumps(records, indent=indent), encoding="utf-8")
    return str(path)


@pytest.fixture
def qdir(tmp_path):
    for src in data.SOURCES:
        _write(tmp_path / f"{src}_questions.json", RECORDS)
    return str(tmp_path)


# ------------------------------------------------------------------------------------------ loader
def test_loader_reads_records(qdir):
    sc = data.load_questions(os.path.join(qdir, "Blog_questions.json"))
    assert [s.idx for s in sc] == [0, 1, 2] and sc[0].source == "Blog"
    item = sc[1].items["BR"]
    assert item.gold == "D" and item.item_id == "Blog/1/BR" and item.option_texts()[0].startswith("option 1-BR-0")
    assert len(data.items_of(sc)) == 9
    limited = data.load_sources(qdir, limit=2)
    assert {k: len(v) for k, v in limited.items()} == {"Persona": 2, "Blog": 2, "Amazon": 2}


def _line_of_record(path, n):
    """1-based line where the n-th record's `{` is (indent=4 layout)."""
    lines = pathlib.Path(path).read_text().splitlines()
    starts = [i + 1 for i, ln in enumerate(lines) if ln == "    {"]
    return starts[n]


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("Options 2"), "missing ['Options 2']"),
    (lambda r: r.update({"extra": 1}), "unexpected ['extra']"),
    (lambda r: r["Options 1"].pop(), "'Options 1' has 5 options"),
    (lambda r: r["Options 3"].__setitem__(2, "X. wrong"), "'Options 3'[2] must start with 'C. '"),
    (lambda r: r.update({"Correct Answer 2": "G"}), "'Correct Answer 2' must be one letter A-F"),
    (lambda r: r.update({"idx": "1"}), "'idx' must be an integer"),
    (lambda r: r.update({"idx": 0}), "duplicate idx 0 (first at line 2)"),
    (lambda r: r.update({"Behavior Reasoning Question": "  "}), "must be a non-empty string"),
])
def test_loader_errors_name_file_and_line(tmp_path, mutate, message):
    records = copy.deepcopy(RECORDS)
    mutate(records[1])
    path = _write(tmp_path / "Persona_questions.json", records)
    with pytest.raises(data.MotiveBenchFormatError) as e:
        data.load_questions(path)
    assert str(e.value).startswith(f"{path}:{_line_of_record(path, 1)}: ")
    assert message in str(e.value)


def test_loader_bad_json_and_shape(tmp_path):
    p = tmp_path / "Amazon_questions.json"
    p.write_text('[\n  {"idx": 0,\n   "x": }\n]')
    with pytest.raises(data.MotiveBenchFormatError, match=r"Amazon_questions.json:3: invalid JSON"):
        data.load_questions(str(p))
    p.write_text('{"idx": 0}')
    with pytest.raises(data.MotiveBenchFormatError, match="expected a JSON array"):
        data.load_questions(str(p))
    with pytest.raises(FileNotFoundError, match="Blog_questions.json"):
        data.load_sources(str(tmp_path), ["Blog"])


@pytest.mark.skipif(not SHARED.exists(), reason=f"MotiveBench data not present at {SHARED}")
def test_released_files_load_with_spec_counts():
    sc = data.load_sources(str(SHARED))
    assert {k: len(v) for k, v in sc.items()} == {"Persona": 100, "Blog": 50, "Amazon": 50}
    # docs/motivebench.md §2.3: Persona's MR gold is B for 45 of 100 items
    assert sum(s.items["MR"].gold == "B" for s in sc["Persona"]) == 45


# ------------------------------------------------------------------------------------------ orders
def test_permutation_math_by_hand():
    opts = _opts(["a", "b", "c", "d", "e", "f"])
    order = (3, 1, 6, 5, 4, 2)
    assert orders.permute_options(opts, order) == ["A. c", "B. a", "C. f", "D. e", "E. d", "F. b"]
    assert orders.permuted_gold("B", order) == "F"  # original option 2 is shown sixth
    assert orders.permuted_gold("C", order) == "A"
    assert orders.original_index("C", order) == 5
    assert len(orders.orders("base6")) == 6 and len(orders.orders("all18")) == 18
    assert len(set(orders.orders("all18"))) == 18
    with pytest.raises(ValueError, match="base6, all18"):
        orders.orders("all24")
    with pytest.raises(ValueError, match="permutation of 1..6"):
        orders.permute_options(opts, (1, 1, 2, 3, 4, 5))


def test_gold_text_is_invariant_under_every_order():
    opts = _opts([f"text {i}" for i in range(6)])
    for order in orders.orders("all18"):
        shown = orders.permute_options(opts, order)
        for gold in "ABCDEF":
            new = orders.permuted_gold(gold, order)
            assert shown["ABCDEF".index(new)][3:] == opts["ABCDEF".index(gold)][3:]
            assert orders.original_index(new, order) == "ABCDEF".index(gold)


# ------------------------------------------------------------------------------------------ prompts
def test_prompts_match_the_reference_layout():
    item = data.parse_record(RECORDS[0], "Persona", ValueError).items["BR"]
    order = (2, 3, 5, 6, 1, 4)
    shown = [f"{'ABCDEF'[i]}. {item.options[j - 1].split('. ', 1)[1]}" for i, j in enumerate(order)]
    ref_direct = ("The following is a Behavioral Reasoning Question. Based on the content of the given question, please "
                  "infer the most likely answer and output the answer index.\n\n" + item.stem + "\nOptions: "
                  + str(shown) + "\n\nPlease answer this multiple-choice question. The result can only return "
                  "**one character without any other explanation**.")
    messages, gold = prompting.build_messages(item, order, "direct")
    assert messages == [{"role": "system", "content": "You ara a helpful AI assistant."},
                        {"role": "user", "content": ref_direct}]
    assert gold == "ABCDEF"[order.index(1)]  # gold A (option 1) is shown fifth -> E
    cot = prompting.question_text(item, order, "cot")
    assert cot.endswith("finally output the most likely option letter. **The last line of your reply should only "
                        "contain one character of your final choice.**")
    assert prompting.build_messages(item, order, "cot", system="")[0][0]["role"] == "user"


# ------------------------------------------------------------------------------------------ extraction
@pytest.mark.parametrize("text, mode, ref, rob", [
    ("C", "direct", "C", "C"),
    ("**C**", "direct", "C", "C"),
    ("Answer: C.", "direct", "A", "C"),            # the reference takes the first character
    ("C. She wants to impress her colleagues.", "direct", "C", "C"),
    ("'d'", "direct", "D", None),                  # robust: letters must be capitals
    ("The answer is (E).", "direct", "T", "E"),
    ("A person like her would choose B", "direct", "A", "B"),  # the article "A" is skipped
    ("assistant\n\nB", "direct", "B", "B"),
    ("", "direct", None, None),
    ("I am not sure.", "direct", "I", None),
    ("Step 1: she is anxious (option B fits).\nSo the final answer is D.\nD", "cot", "D", "D"),
    ("Reasoning about A and B...\n**F**", "cot", "F", "F"),
    ("Reasoning.\nThe answer is C.", "cot", "C", "C"),
    ("Reasoning.\nFinal answer: B) because she cares", "cot", "E", "B"),  # 'assistant' strip eats the s
    ("Reasoning with options A and C.\nNone fits.", "cot", "S", None),
    ("<think>maybe A</think>\nE", "cot", "E", "E"),
])
def test_extraction_rules_on_hand_cases(text, mode, ref, rob):
    assert extract.reference_letter(text, mode) == ref
    assert extract.robust_letter(text, mode) == rob
    assert extract.extract(text, mode, "robust") == rob
    with pytest.raises(ValueError, match="reference, robust"):
        extract.extract(text, mode, "fuzzy")


# ------------------------------------------------------------------------------------------ metrics
def test_metrics_by_hand():
    # 2 scenarios x 2 orders; scenario 0 all right in order 0; scenario 1 only MR right in both orders
    recs = []
    for order in (0, 1):
        for idx in (0, 1):
            for task in data.TASKS:
                right = (idx == 0 and order == 0) or (idx == 1 and task == "MR")
                recs.append(dict(source="S", idx=idx, task=task, order=order, gold="A",
                                 pred="A" if right else ("B" if task != "BR" else None)))
    out = metrics.summarize(recs, 2)
    assert out["MR"]["per_order"] == [1.0, 0.5] and out["MR"]["mean"] == 0.75 and out["MR"]["var"] == 0.0625
    assert out["BR"]["per_order"] == [0.5, 0.0] and out["BR"]["hits"] == 1 and out["BR"]["n"] == 4
    assert out["all"]["per_order"] == [0.5, 0.0]
    assert out["invalid_rate"] == pytest.approx(3 / 12)  # BR wrong answers are None: 3 of 12
    from scipy.stats import binomtest

    ci = binomtest(3, 4).proportion_ci(0.95, "exact")
    assert out["MR"]["ci95"] == pytest.approx([ci.low, ci.high])
    with pytest.raises(ValueError, match="expected 1"):
        metrics.summarize(recs[:-1], 2)


# ------------------------------------------------------------------------------------------ baselines
def test_baselines_by_hand():
    rec = _record(0, ("D", "A", "A"))
    rec["Motivation Reasoning Question"] = "Mia feeds stray cats every evening near the hospital garden."
    rec["Options 1"] = _opts(["She is bored.", "She loves stray cats and feeds them.", "x", "A much longer option "
                              "about nothing relevant at all here", "y", "z"])
    item = data.parse_record(rec, "S", ValueError).items["MR"]
    ident, rev = (1, 2, 3, 4, 5, 6), (6, 5, 4, 3, 2, 1)
    assert baselines.baseline_letter("longest", item, ident) == "D"
    assert baselines.baseline_letter("longest", item, rev) == "C"
    assert baselines.baseline_letter("overlap", item, ident) == "B"  # stray, cats, feeds
    assert baselines.baseline_letter("first", item, rev) == "A"
    rng = np.random.default_rng(0)
    assert {baselines.baseline_letter("random", item, ident, rng) for _ in range(200)} == set("ABCDEF")


# ------------------------------------------------------------------------------------------ end to end
def _gold_text_model(scenarios_by_source):
    """Always picks the option whose text is the gold text, whatever the order (reads the prompt)."""
    gold = {it.stem: it.option_texts()[it.gold_index] for scs in scenarios_by_source.values()
            for sc in scs for it in sc.items.values()}

    def answer(messages):
        user = messages[-1]["content"]
        stem = next(s for s in gold if s in user)
        shown = ast.literal_eval(user.split("\nOptions: ", 1)[1].split("\n\n", 1)[0])
        return next(o[0] for o in shown if o[3:] == gold[stem])
    return ScriptedBackend([("motivebench.direct", None, answer),
                            ("motivebench.cot", None, lambda m: "Thinking...\n" + answer(m))])


@pytest.mark.parametrize("order_set", ["base6", "all18"])
def test_gold_text_model_scores_100_under_every_order(qdir, order_set):
    sc = data.load_sources(qdir)
    for mode in ("direct", "cot"):
        out = runner.evaluate(_gold_text_model(sc), sc, mode=mode, order_set=order_set, log=lambda *a: None)
        for rule in ("reference", "robust"):
            o = out["rules"][rule]["overall"]
            for m in metrics.METRICS:
                assert o[m]["per_order"] == [1.0] * len(orders.orders(order_set)), (rule, m)
            assert o["invalid_rate"] == 0.0
        assert out["n_calls"] == 3 * 3 * 3 * len(orders.orders(order_set))


@pytest.mark.parametrize("letter", list("ABCDEF"))
def test_fixed_letter_model_scores_chance_over_base6(qdir, letter):
    sc = data.load_sources(qdir, ["Persona"])
    backend = ScriptedBackend([(".*", None, letter)])
    out = runner.evaluate(backend, sc, mode="direct", log=lambda *a: None)
    o = out["rules"]["robust"]["overall"]
    for task in data.TASKS:
        assert o[task]["mean"] == pytest.approx(1 / 6)  # each original option is shown as `letter` once
        # per order: right exactly where the permuted gold is `letter`
        want = [np.mean([orders.permuted_gold(s.items[task].gold, order) == letter for s in sc["Persona"]])
                for order in orders.BASE6]
        assert o[task]["per_order"] == pytest.approx(want)


def _config(qdir, **backend):
    from configs.motivebench import get_config

    c = get_config("baselines")
    c.data_dir = qdir
    c.backend.update(backend)
    return c


def test_experiment_writes_results_and_replays_exactly(qdir, tmp_path):
    from experiments import motivebench as exp

    cassette = str(tmp_path / "cassette.jsonl")
    first = exp.run(_config(qdir, script="letter:C", record=cassette), str(tmp_path / "a"))
    assert first["model"] == "scripted" and first["n_calls"] == 3 * 9 * 6
    assert first["rules"]["robust"]["overall"]["MR"]["mean"] == pytest.approx(1 / 6)
    assert set(first["baselines"]) == set(baselines.BASELINES)
    assert set(first["rules"]["robust"]["by_source"]) == set(data.SOURCES)
    traces = (tmp_path / "a" / "traces.jsonl").read_text().splitlines()
    assert len(traces) == first["n_calls"] and json.loads(traces[0])["parsed"]["robust"] == "C"
    again = exp.run(_config(qdir, kind="replay", replay=cassette), str(tmp_path / "b"))
    assert again["rules"] == first["rules"] and again["model"] == "replay"
    # every number is recomputable from the trace alone
    assert runner.scores_from_traces(str(tmp_path / "a" / "traces.jsonl"), 6) == first["rules"]


def test_backend_config_errors():
    with pytest.raises(ValueError, match="unknown backend.kind"):
        backends.build_backend(ml_collections.ConfigDict({"kind": "vllm"}))
    with pytest.raises(ValueError, match="letter:<A-F>"):
        backends.build_backend({"kind": "scripted", "script": "letter:Z"})
    with pytest.raises(FileNotFoundError, match="not a directory"):
        backends.build_backend({"kind": "hf", "checkpoint": "/nonexistent/model"})
    with pytest.raises(ValueError, match="base_url"):
        backends.build_backend({"kind": "openai", "base_url": "", "model": "m"})


def test_parse_mode_uses_a_second_model(qdir):
    sc = data.load_sources(qdir, ["Amazon"], limit=1)
    model = ScriptedBackend([("motivebench.cot", None, "Long reasoning without a clear letter")])
    parser = ScriptedBackend([("motivebench.parse", None, lambda m: "b) is my pick")])
    out = runner.evaluate(model, sc, mode="cot", parse_backend=parser, log=lambda *a: None)
    assert out["rules"]["robust"]["overall"]["invalid_rate"] == 1.0
    assert out["rules"]["parse"]["overall"]["invalid_rate"] == 0.0
    assert {p["parse"] for p in out["predictions"]} == {"B"}
    assert parser.calls[0].messages[0]["content"].startswith("Extract the letters of the option")


def test_project_run_dir_params_are_restored(tmp_path):
    """A run dir of our trainer (config.json model block + tokenizer + orbax checkpoint) loads back exactly."""
    import jax
    import orbax.checkpoint as ocp

    from configs.lm import get_config as lm_config
    from humanai_jax.backbone.params import init_params
    from humanai_jax.data.tokenizer import train_tokenizer
    from humanai_jax.train.model_block import model_config

    cfg = lm_config("tiny")
    cfg.model.update(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, mlp_dim=64)
    tok = train_tokenizer(["a tiny corpus for a tiny tokenizer"] * 4, 300, str(tmp_path / "tokenizer"))
    mcfg = model_config(cfg, tok)
    shapes = jax.eval_shape(lambda r: init_params(mcfg, r), jax.random.PRNGKey(1))  # no compile: numpy values
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(s.dtype), shapes)
    (tmp_path / "config.json").write_text(cfg.to_json())
    ck = ocp.StandardCheckpointer()
    ck.save(str(tmp_path / "checkpoints" / "7" / "state"), {"params": params, "step": 7})
    ck.wait_until_finished()
    loaded_cfg, loaded, step = backends.load_project_params(str(tmp_path), tok)
    assert step == 7 and loaded_cfg == mcfg
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(params)))
    cfg.model.d_model = 64  # a config that no longer matches the checkpoint is refused
    (tmp_path / "config.json").write_text(cfg.to_json())
    with pytest.raises(ValueError, match="do not match"):
        backends.load_project_params(str(tmp_path), tok)


def test_need_normalisation_table():
    from humanai_jax.methods.motivebench.sources import normalize_need

    assert normalize_need("social") == normalize_need("Love needs") == "love_belonging"
    assert normalize_need("Self-Actualization Needs") == "self_actualization"
    assert normalize_need(" Respect needs ") == "esteem"
    assert normalize_need("social', 'esteem") is None and normalize_need("NO") is None
    assert normalize_need(None) is None and normalize_need("Convenience") is None


@pytest.mark.skipif(not SHARED.exists(), reason=f"MotiveBench data not present at {SHARED}")
def test_raw_sources_level_counts():
    from collections import Counter

    from humanai_jax.methods.motivebench.sources import load_amazon_scenarios, load_blog_extracted

    amazon = Counter(r["level"] for r in load_amazon_scenarios(str(SHARED / "amazon_scenarios_1000.json")))
    # docs/motivebench.md §3: social 293 + Love needs 36; esteem 244 + Respect 4; 13 missing + 6 multi/unknown -> None
    assert amazon["love_belonging"] == 329 and amazon["esteem"] == 248 and amazon[None] == 19
    blog = Counter(r["level"] for r in load_blog_extracted(str(SHARED / "blog_extracted.json")).values())
    assert blog == {"love_belonging": 233, "esteem": 178, "self_actualization": 173, "safety": 47}


@pytest.mark.slow  # ~7 s CPU (JAX compiles the decoder); the HTTP path is covered in test_learnarena_server.py
def test_hf_checkpoint_in_process(qdir, tmp_path):
    """kind=hf: any HF checkpoint dir decoded in process by JaxChatBackend (random tiny weights: plumbing)."""
    serving_loading = pytest.importorskip("humanai_jax.serving.loading")
    ckpt = serving_loading.make_tiny_checkpoint(tmp_path / "tiny", n_layers=1)
    backend, info = backends.build_backend({"kind": "hf", "checkpoint": str(ckpt), "max_batch": 32})
    assert info == {"kind": "hf", "name": "hf:tiny", "repetition_penalty": False}
    sc = data.load_sources(qdir, ["Amazon"], limit=1)
    from humanai_jax.agents import GenConfig

    out = runner.evaluate(backend, sc, mode="direct", gen_cfg=GenConfig(max_tokens=2), log=lambda *a: None)
    assert out["n_calls"] == 18 and out["n_errors"] == 0
    again = runner.evaluate(backend, sc, mode="direct", gen_cfg=GenConfig(max_tokens=2), log=lambda *a: None)
    assert again["predictions"] == out["predictions"]  # greedy: the same replies on a re-run
