r"""Model merging (LM-Cocktail, as HumanLLM's `training/lm_cocktail.py`): theta = alpha*sft + (1-alpha)*base.

  python -m experiments.humanllm_merge --sft /ckpt/sft_hf --base /ckpt/base_hf --out /ckpt/merged_hf [--alpha 0.5]

Both inputs are HF checkpoint directories (config.json + safetensors), e.g. the `hf_sft` folder an SFT
run writes with `export_hf=True` and the base model it started from. The merge is tensor by tensor
(`humanai_jax.methods.humanllm.sft.merge_params`); integer tensors are copied from the SFT model. The output
directory gets the merged safetensors, the SFT model's config, and its tokenizer files if present.
"""

from __future__ import annotations

import os
import shutil
import sys

from absl import app, flags

_SFT = flags.DEFINE_string("sft", None, "HF checkpoint dir of the fine-tuned model.")
_BASE = flags.DEFINE_string("base", None, "HF checkpoint dir of the base model.")
_OUT = flags.DEFINE_string("out", None, "Output dir for the merged checkpoint.")
_ALPHA = flags.DEFINE_float("alpha", 0.5, "Weight of the SFT model.")

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                    "chat_template.jinja", "generation_config.json")


def merge_checkpoints(sft_dir: str, base_dir: str, out_dir: str, alpha: float = 0.5) -> None:
    from humanai_jax.backbone.hf import load_pretrained, save_pretrained
    from humanai_jax.methods.humanllm.sft import merge_params

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    sft_cfg, sft = load_pretrained(sft_dir)
    _, base = load_pretrained(base_dir)  # shapes and dtypes are checked leaf by leaf
    merged = merge_params(sft, base, alpha)
    save_pretrained(out_dir, sft_cfg, merged)
    for name in _TOKENIZER_FILES:
        src = os.path.join(sft_dir, name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(out_dir, name))


def main(argv):
    del argv
    merge_checkpoints(_SFT.value, _BASE.value, _OUT.value, _ALPHA.value)
    print(f"merged {_ALPHA.value} * {_SFT.value} + {1 - _ALPHA.value} * {_BASE.value} -> {_OUT.value}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["sft", "base", "out"])
    sys.exit(app.run(main))
