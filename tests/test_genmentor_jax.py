"""GenMentor plumbing through our own in-process model (docs/agents.md §3): a tiny random-weights model behind
`JaxChatBackend` as the Skill Requirement Mapper (as in the default run, where the trained goal-to-skill model
sits there). Its replies are not valid JSON, so the capped repair runs out and the learner is recorded as
failed at that stage, with every attempt in the trace and the mapper named in the manifest (fast)."""

import json

import jax

from humanai_jax.agents.jax_backend import JaxChatBackend
from humanai_jax.backbone.config import ModelConfig
from humanai_jax.backbone.params import init_params
from humanai_jax.methods.genmentor import backends as B, content as C, goal2skill as G, runner as R


def test_tutoring_run_with_an_in_process_jax_mapper(tmp_path):
    texts = [m["content"] for m in G.prompt_messages("I want to become a data analyst.")]
    tok = G.chat_tokenizer(texts * 4, 320, str(tmp_path / "tok"))
    cfg = ModelConfig.small(vocab_size=384, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, mlp_dim=64,
                            eos_token_id=tok.eos_token_id)
    mapper = JaxChatBackend(init_params(cfg, jax.random.PRNGKey(0)), cfg, tok, name="tiny(random)", max_batch=4)
    learner = {"id": "l1", "goal": "I want to become a data analyst.", "learner_information": "Some SQL.",
               "gold": [{"name": "SQL", "required_level": "beginner"}]}
    spec = R.RunSpec(judge=False, mapper_max_tokens=6)
    res = R.run_tutoring(str(tmp_path / "run"), [learner], B.mock_backend(), spec, retriever=C.Retrieved([]),
                         mapper_backend=mapper)
    assert res["n_failed"] == 1 and res["failed_stages"] == ["skills.genmentor"]
    assert res["n_calls"] == 1 + 3  # the goal refiner (mock), then 3 mapper attempts
    trace = [json.loads(x) for x in open(tmp_path / "run" / "traces.jsonl", encoding="utf-8")]
    calls = [t for t in trace if t.get("agent") == "skill_gap.skill_mapper.genmentor"]
    assert [c["attempt"] for c in calls] == [1, 2, 3] and all(c["backend"] == "tiny(random)" for c in calls)
    assert all(c["parse_error"] and c["gen_config"]["max_tokens"] == 6 for c in calls)
    # the mock refiner returns the goal unchanged: the mapper got exactly the goal-to-skill SFT prompt
    assert calls[0]["messages"] == G.prompt_messages(learner["goal"])
    assert any(t.get("name") == "learner_failed" for t in trace)
    manifest = json.load(open(tmp_path / "run" / "manifest.json"))
    assert manifest["mapper_backend"] == "tiny(random)" and manifest["backend"] == "mock(plumbing)"
