r"""The HumanLLM data pipeline for one platform: raw dump -> rule filters -> LLM stages -> SFT samples.

  python -m experiments.humanllm_pipeline --platform blogger --blogs /data/blogs.zip \
      --base_url http://127.0.0.1:8000 --model Llama-3.3-70B-Instruct \
      [--judge_base_url http://127.0.0.1:8001 --judge_model Qwen2.5-72B-Instruct] --workdir /tmp/hl_blogger

  --platform reddit  --submissions S.jsonl[.gz] --comments C.jsonl[.gz]
  --platform twitter --users U.jsonl --tweets T.jsonl
  --platform amazon  --reviews Books.jsonl.gz --meta meta_Books.jsonl.gz --category Books

The models are served behind any OpenAI-compatible endpoint (vLLM, our own server). The generator
runs at temperature 0.3 and the judge at 0.3, as in the reference. Re-running the command resumes.
Outputs (see humanai_jax/methods/humanllm/pipeline.py): WORKDIR/sft/{train,test}.jsonl and WORKDIR/report.json.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

_PLATFORM = flags.DEFINE_enum("platform", None, ["reddit", "twitter", "blogger", "amazon"], "Source platform.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.")
_BASE_URL = flags.DEFINE_string("base_url", None, "OpenAI-compatible server of the generator model.")
_MODEL = flags.DEFINE_string("model", "meta-llama/Llama-3.3-70B-Instruct", "Generator model name.")
_JUDGE_URL = flags.DEFINE_string("judge_base_url", "", "Judge server (default: the generator's).")
_JUDGE_MODEL = flags.DEFINE_string("judge_model", "Qwen/Qwen2.5-72B-Instruct", "Judge model name.")
_API_KEY_ENV = flags.DEFINE_string("api_key_env", "OPENAI_API_KEY", "Env var holding the API key.")
_CONCURRENCY = flags.DEFINE_integer("max_concurrency", 8, "Parallel HTTP requests.")
_TOKENIZER = flags.DEFINE_string(
    "tokenizer", "", "HF tokenizer dir (e.g. Qwen2.5-7B-Instruct's): prompt truncation to max_in_length tokens and "
    "the 8,192-token SFT sample filter after the chat template; without it words are counted and no filter runs.")
_INPUTS = {name: flags.DEFINE_string(name, "", f"Input: {name}.") for name in
           ("submissions", "comments", "users", "tweets", "blogs", "reviews", "meta", "category")}


class _RoutedBackend:
    """Sends judge calls (tags `humanllm.judge.*`) to the judge backend, everything else to the generator."""

    name = "routed"

    def __init__(self, generator, judge):
        self.generator, self.judge = generator, judge

    def _pick(self, tag):
        return self.judge if tag.startswith("humanllm.judge") else self.generator

    def chat(self, messages, cfg, *, tag=""):
        return self._pick(tag).chat(messages, cfg, tag=tag)

    def chat_batch(self, batch, cfg, *, tags=None):
        tag = (tags or [""])[0]
        return self._pick(tag).chat_batch(batch, cfg, tags=tags)


def main(argv):
    del argv
    from humanai_jax.agents import OpenAICompatBackend
    from humanai_jax.methods.humanllm.pipeline import run_pipeline

    gen = OpenAICompatBackend(_BASE_URL.value, _MODEL.value, api_key_env=_API_KEY_ENV.value,
                              max_concurrency=_CONCURRENCY.value)
    judge = OpenAICompatBackend(_JUDGE_URL.value or _BASE_URL.value, _JUDGE_MODEL.value,
                                api_key_env=_API_KEY_ENV.value, max_concurrency=_CONCURRENCY.value)
    from humanai_jax.methods.humanllm.stages import LLMSettings

    inputs = {k: f.value for k, f in _INPUTS.items() if f.value}
    settings, length_fn = LLMSettings(), None
    if _TOKENIZER.value:
        from humanai_jax.data.tokenizer import load_tokenizer
        from humanai_jax.methods.humanllm.tokenize import tokenize_chat

        tok = load_tokenizer(_TOKENIZER.value)
        settings = LLMSettings(tokenizer=tok)
        length_fn = lambda sample: len(tokenize_chat(tok, sample["messages"])[0])  # noqa: E731
    report = run_pipeline(_PLATFORM.value, inputs, _WORKDIR.value, _RoutedBackend(gen, judge), settings=settings,
                          length_fn=length_fn)
    print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    flags.mark_flags_as_required(["platform", "workdir", "base_url"])
    sys.exit(app.run(main))
