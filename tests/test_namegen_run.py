"""NAMeGEn runs: traces + manifest in the workdir, a replayed run reproduces results exactly, a killed run
resumes without repeating finished queries, config variants, and the experiment entry point end to end."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("cnlunar")
pytest.importorskip("rank_bm25")

from configs.namegen import get_config  # noqa: E402
from humanai_jax.agents import GenConfig, RecordingBackend, ReplayBackend  # noqa: E402
from humanai_jax.methods.namegen import data, hanzi, metrics, pipeline, poems, runner  # noqa: E402
from humanai_jax.methods.namegen.backends import build_backend, mock_backend  # noqa: E402

ROWS = [{"id": f"q{i}", "query": q, "up_w": [0.2] * 5} for i, q in enumerate([
    "请为一个于2029年12月25日凌晨12点出生的女孩起个名字，姓伏，希望她温柔清雅。",
    "请为一个于2031年3月5日下午3点出生的男孩起名，姓林，希望他志向远大。",
    "请为一个于2026年夏天出生的女孩起名，姓江，喜欢宋词。"])]


def spec(methods=("full", "baseline_base")):
    return runner.RunSpec(methods=methods, seeds=(0, 1), settings=pipeline.Settings(), gen=GenConfig(temperature=0.7),
                          judge_gen=GenConfig(temperature=0.2))


def go(backend, workdir, methods=("full", "baseline_base")):
    store, table = poems.PoemStore(poems.sample_poems()), hanzi.load_hanzi_table()
    return runner.run_namegen(ROWS, store, table, backend, backend, spec(methods), str(workdir))


def test_traces_manifest_and_results(tmp_path):
    res = go(mock_backend(), tmp_path)
    full = res["methods"]["full"]
    assert full["n_queries"] == 6 and full["n_failed"] == 0 and full["CMOC"]["n"] == 6
    assert full["final_flags"] == {"2": 6} and res["methods"]["baseline_base"]["CMOC"]["n"] == 6
    lines = [json.loads(x) for x in open(tmp_path / "traces.jsonl", encoding="utf-8")]
    calls = [x for x in lines if x["type"] == "llm_call"]
    assert {"agent", "prompt_hash", "usage", "latency_s", "parsed", "parse_error", "attempt", "messages"} <= set(calls[0])
    assert {c["agent"] for c in calls} >= {"namegen.full.MOG.generate", "namegen.metric.full.judge.emoc",
                                           "namegen.baseline_base.baseline.base"}
    assert [x["step"] for x in lines] == list(range(len(lines)))
    assert any(x["type"] == "event" and x["name"] == "flag" for x in lines)
    manifest = json.load(open(tmp_path / "manifest.json", encoding="utf-8"))
    assert manifest["resumes"] == 0 and "mog_generate.txt" in manifest["prompts"] and manifest["packages"]["cnlunar"]
    assert len(open(tmp_path / "outputs.jsonl").readlines()) == 12
    # every reported metric is recomputable from the trace and the inputs
    again = runner.metrics_from_traces(str(tmp_path / "traces.jsonl"), ROWS, poems.sample_poems(),
                                       hanzi.load_hanzi_table())
    for method in ("full", "baseline_base"):
        for k in ("CMOC", "EMOC_w", "Acc", "IMOC_std", "n_dropped"):
            assert again[method][k] == res["methods"][method][k]


def test_replayed_run_reproduces_results_exactly(tmp_path):
    cassette = tmp_path / "cassette.jsonl"
    recorded = go(RecordingBackend(mock_backend(), str(cassette)), tmp_path / "a")
    replayed = go(ReplayBackend(str(cassette)), tmp_path / "b")
    assert json.dumps(recorded, sort_keys=True) == json.dumps(replayed, sort_keys=True)
    assert (tmp_path / "a" / "outputs.jsonl").read_text() == (tmp_path / "b" / "outputs.jsonl").read_text()
    via_config = build_backend({"kind": "replay", "replay": str(cassette)})
    assert go(via_config, tmp_path / "c") == recorded


class Killed(RuntimeError):
    pass


class Counting:
    """Wraps a backend; records every request; raises Killed after `limit` calls (a crash mid-run)."""

    def __init__(self, inner, limit=None):
        self.inner, self.limit, self.requests = inner, limit, []
        self.name = inner.name

    def chat(self, messages, cfg, *, tag=""):
        if self.limit is not None and len(self.requests) >= self.limit:
            raise Killed("killed")
        self.requests.append(json.dumps(messages, ensure_ascii=False))
        return self.inner.chat(messages, cfg, tag=tag)

    def chat_batch(self, batch, cfg, *, tags=None):
        return [self.chat(m, cfg, tag=t) for m, t in zip(batch, tags or [""] * len(batch))]


def test_killed_run_resumes_without_repeating_finished_queries(tmp_path):
    ref_backend = Counting(mock_backend())
    reference = go(ref_backend, tmp_path / "ref", methods=("full",))
    first = Counting(mock_backend(), limit=len(ref_backend.requests) // 2)  # dies mid-run
    with pytest.raises(Killed):
        go(first, tmp_path / "run", methods=("full",))
    finished = {json.loads(x)["key"] for x in open(tmp_path / "run" / "outputs.jsonl")}
    assert 0 < len(finished) < 6
    n_before = len(open(tmp_path / "run" / "traces.jsonl").readlines())
    second = Counting(mock_backend())
    resumed = go(second, tmp_path / "run", methods=("full",))
    assert resumed == reference
    lines = [json.loads(x) for x in open(tmp_path / "run" / "traces.jsonl", encoding="utf-8")]
    assert [x["step"] for x in lines] == list(range(len(lines)))  # steps stay monotonic across the resume
    rerun = {f"full|{x['gen_config']['seed']}|{x['item_id']}" for x in lines[n_before:]
             if x["type"] == "llm_call" and x["agent"].startswith("namegen.full")}
    assert rerun and not rerun & finished  # no finished unit is asked again
    assert rerun | finished == {f"full|{s}|{r['id']}" for s in (0, 1) for r in ROWS}
    assert len(first.requests) + len(second.requests) < len(ref_backend.requests) + 40  # at most one unit redone
    assert json.load(open(tmp_path / "run" / "manifest.json"))["resumes"] == 1


def test_config_variants_resolve():
    for variant in runner.METHODS:
        c = get_config(variant)
        assert c.methods == variant and c.backend.kind == "mock" and c.plumbing
    assert set(get_config("compare").methods.split(",")) == set(runner.METHODS)
    c = get_config("full,kind=openai,base_url=http://127.0.0.1:8000,model=m,limit=0")
    assert (c.backend.kind, c.backend.base_url, c.limit, c.plumbing) == ("openai", "http://127.0.0.1:8000", 0, False)
    with pytest.raises(ValueError, match="Unknown variant"):
        get_config("nope")
    with pytest.raises(ValueError, match="unknown backend.kind"):
        build_backend({"kind": "nope"})


@pytest.mark.skipif(not os.path.exists(os.path.join(data.default_data_dir(), "test_data_500.csv")),
                    reason="CBNames data absent")
def test_experiment_entry_point_plumbing_run(tmp_path):
    from experiments.run import run_experiment
    config = get_config("full,limit=2")
    results = run_experiment(config, str(tmp_path))
    assert results["plumbing"] is True and results["n_queries"] == 2
    assert results["methods"]["full"]["CMOC"]["n"] == 2
    assert results["CMOC"] == results["methods"]["full"]["CMOC"]["mean"] and results["n_failed"] == 0
    assert {"results.json", "traces.jsonl", "manifest.json", "outputs.jsonl"} <= set(os.listdir(tmp_path))


def _tiny_hf_checkpoint(path) -> str:
    """A random-weight Qwen2-style checkpoint with a byte-level BPE tokenizer (ChatML template): plumbing only."""
    import jax
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from humanai_jax.backbone import ModelConfig, init_params, save_pretrained

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([r["query"] for r in ROWS] * 10, trainer=trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=template)
    fast.save_pretrained(str(path))
    config = ModelConfig(vocab_size=len(fast), d_model=32, n_layers=1, n_heads=4, n_kv_heads=2, head_dim=8,
                         mlp_dim=64, model_type="qwen2", qkv_bias=True, eos_token_id=fast.convert_tokens_to_ids(
                             "<|im_end|>"), pad_token_id=0, max_position_embeddings=8192)
    save_pretrained(str(path), config, init_params(config, jax.random.key(0)))
    return str(path)


@pytest.mark.slow
def test_in_process_tiny_model_plumbing(tmp_path):
    """End to end through JaxChatBackend with a random tiny model: every reply is garbage, so every structured
    call exhausts its 3 attempts and the documented fallbacks / failures are taken; nothing crashes."""
    backend = build_backend({"kind": "hf", "checkpoint": _tiny_hf_checkpoint(tmp_path / "ckpt")})
    s = runner.RunSpec(methods=("wo_R", "baseline_base"), seeds=(0,), gen=GenConfig(max_tokens=8),
                       judge_gen=GenConfig(max_tokens=8), settings=pipeline.Settings(max_round=1))
    res = runner.run_namegen(ROWS[:1], poems.PoemStore(poems.sample_poems()), hanzi.load_hanzi_table(), backend,
                             backend, s, str(tmp_path / "run"))
    assert res["methods"]["wo_R"]["n_failed"] == 1 and res["methods"]["baseline_base"]["n_failed"] == 1
    lines = [json.loads(x) for x in open(tmp_path / "run" / "traces.jsonl", encoding="utf-8")]
    calls = [x for x in lines if x["type"] == "llm_call"]
    assert calls and all(c["usage"]["completion_tokens"] <= 8 for c in calls)
    assert {c["attempt"] for c in calls} == {1, 2, 3}


def _varied_backend():
    """The plumbing model with judge scores that differ per query, and an EMOC judge that never answers
    properly for the third query (dropped)."""
    from humanai_jax.agents import ScriptedBackend
    from humanai_jax.methods.namegen.backends import mock_rules

    def emoc(messages):
        text = messages[0]["content"]
        if "江" in text:
            return "无法评分"
        return json.dumps({"评估分数": [len(text) % 4, 3, 1, 2, 0]})

    def lr(messages):
        return json.dumps({"评估分数": [3, len(messages[0]["content"]) % 3, 2, 2, 1]})

    claims = json.dumps({"古诗信息": [{"题目": "静夜思", "诗句": "举头望明月", "诗人": "李白", "朝代": "唐"}],
                         "字和五行": [{"字": "清", "五行": "火"}], "出生信息": {"生肖": "鸡"}}, ensure_ascii=False)
    return ScriptedBackend([(".*judge\\.emoc", None, emoc), (".*judge\\.lr", None, lr),
                            (".*judge\\.acc_extract", None, claims)] + mock_rules())


def test_metrics_recomputed_from_traces_after_a_resume(tmp_path):
    first = Counting(_varied_backend(), limit=100)
    with pytest.raises(Killed):
        go(first, tmp_path)
    res = go(_varied_backend(), tmp_path)
    full = res["methods"]["full"]
    assert full["n_dropped"] == 2 and full["CMOC"]["n"] == 4 and full["CMOC"]["std"] > 0
    again = runner.metrics_from_traces(str(tmp_path / "traces.jsonl"), ROWS, poems.sample_poems(),
                                       hanzi.load_hanzi_table())
    for method in ("full", "baseline_base"):
        for k in metrics.METRICS:
            assert again[method][k] == res["methods"][method][k], (method, k)
        assert again[method]["n_dropped"] == res["methods"][method]["n_dropped"]
