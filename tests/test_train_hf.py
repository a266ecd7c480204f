"""The `hf` variant fine-tunes a HF checkpoint directory: the trainer's first logged loss equals
transformers' loss on the same batch, training runs sharded, and the export reloads in transformers."""

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from configs.lm import get_config
from experiments.run import run_experiment
from humanai_jax.data import TokenWindows, generate_corpus, tokenize_documents, train_tokenizer


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    from transformers import AutoModelForCausalLM, Qwen2Config

    path = str(tmp_path_factory.mktemp("tiny_qwen2"))
    tokenizer = train_tokenizer(generate_corpus(200, seed=7), 300, path)
    cfg = Qwen2Config(vocab_size=384, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                      eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    return path


def test_hf_variant_fine_tunes_and_matches_torch_loss(hf_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    c = get_config(f"hf,hf_path={hf_dir},steps=3")
    c.data.update(num_docs=200, seq_len=32)
    c.train.update(batch_size=4, log_every=1, eval_every=0, progress=False, peak_flops=1e10, loss_chunk=8)
    c.ckpt.every = 0
    results = run_experiment(c, str(tmp_path))
    assert results["final_step"] == 3 and np.isfinite(results["final_loss"])

    # independent reference: transformers' loss on the step-0 batch the trainer consumed
    tok = AutoTokenizer.from_pretrained(hf_dir)
    windows, _ = TokenWindows(tokenize_documents(tok, generate_corpus(200, seed=0)), 32, seed=0).split(c.data.eval_fraction)
    batch = torch.tensor(windows.batch(0, 4), dtype=torch.long)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        logits = model(batch[:, :-1]).logits
        ref = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
    first = [json.loads(line) for line in open(tmp_path / "metrics.jsonl") if '"loss"' in line][0]
    assert first["step"] == 1
    np.testing.assert_allclose(first["loss"], float(ref), rtol=1e-5)

    # the export is a HF dir transformers loads; training moved the weights
    exported = AutoModelForCausalLM.from_pretrained(results["hf_export"], dtype=torch.float32)
    assert os.path.exists(os.path.join(results["hf_export"], "tokenizer.json"))
    w0 = model.state_dict()["model.layers.0.mlp.up_proj.weight"]
    w1 = exported.state_dict()["model.layers.0.mlp.up_proj.weight"]
    assert w0.shape == w1.shape and not torch.allclose(w0, w1)
