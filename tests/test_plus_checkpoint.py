"""PLUS on a real HF checkpoint directory (`model.hf_path`, `rm_model.hf_path`): a tiny random-weight
Qwen2-style checkpoint written with our exporter and a byte-level BPE tokenizer with a ChatML template. The
summarizer and RM start from its weights and read its chat template; a run goes end to end."""

import jax
import numpy as np
import optax
import pytest

from configs.plus import get_config
from experiments.run import run_experiment
from humanai_jax.methods.plus import data as D, loop, pets, setup as S, text as T
from humanai_jax.train.runtime import mesh_and_rules

TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from humanai_jax.backbone import ModelConfig, init_params, save_pretrained

    path = str(tmp_path_factory.mktemp("ckpt"))
    task = S.build_data(get_config("tiny"))  # the tokenizer is trained on Pets text (any BPE covers every byte)
    texts = [D.SUMMARY_INSTRUCTION, D.RM_PREFIX, *pets.ORACLE_SUMMARIES.values()]
    texts += [ex.context_messages[-1]["content"] + ex.reward.chosen for ex in task.splits["train"]]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts * 5, trainer=trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   chat_template=TEMPLATE)
    fast.save_pretrained(path)
    cfg = ModelConfig(vocab_size=len(fast) + 8, d_model=32, n_layers=1, n_heads=4, n_kv_heads=2, head_dim=8,
                      mlp_dim=64, model_type="qwen2", qkv_bias=True, eos_token_id=0, pad_token_id=0,
                      max_position_embeddings=2048)
    save_pretrained(path, cfg, init_params(cfg, jax.random.key(0)))
    return path


def _config(path, **shapes):
    config = get_config("tiny")
    config.model.hf_path = config.rm_model.hf_path = path
    config.shapes.update({**dict(prompt_len=256, completion_len=24, rm_len=160, context_rm_len=400), **shapes})
    return config


def test_the_checkpoints_tokenizer_template_and_weights_are_used(checkpoint):
    from humanai_jax.backbone import load_pretrained
    from humanai_jax.data.tokenizer import load_tokenizer

    config = _config(checkpoint)
    task = S.build_data(config)
    chat = S.build_chat(config, task)
    tokenizer = load_tokenizer(checkpoint)
    assert isinstance(chat, T.CheckpointChat) and chat.end_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    codec = loop.Codec(chat, loop.Shapes(256, 24, 160))
    ex = task.splits["train"][0]
    want = tokenizer.apply_chat_template(list(ex.context_messages), tokenize=True, add_generation_prompt=True)
    assert codec.prompt_ids(ex) == list(want if isinstance(want, list) else want["input_ids"])
    completion = codec.completion_ids("helpful and harmless")
    assert completion[-1] == chat.end_id
    assert codec.summaries([codec.prompt_ids(ex)], [completion]) == ["helpful and harmless"]  # §2.2 on real BPE
    rm_row = codec.rm_ids("likes dogs", ex.reward, "chosen")
    text = tokenizer.decode(rm_row)  # §2.3's turns, rendered by the checkpoint's template
    assert text.startswith("<|im_start|>user\nHere is the summary of my preferences based on previous "
                           "conversations: likes dogs In the following conversation")
    assert text.endswith(f"<|im_start|>assistant\n{ex.reward.chosen}<|im_end|>\n")

    actor_cfg, actor_w = S.build_model(config.model, chat, 280)
    rm_cfg, rm_w = S.build_model(config.rm_model, chat, 280)
    _, reference = load_pretrained(checkpoint)
    txs = {k: optax.sgd(0.1) for k in ("actor", "critic", "rm")}
    mesh, rules = mesh_and_rules(config)
    with jax.set_mesh(mesh):
        state = S.init_state(config, actor_cfg, rm_cfg, txs, jax.random.PRNGKey(0), rules,
                             {"actor": actor_w, "rm": rm_w})
    for got, want in ((state["actor"]["params"], reference), (state["rm"]["params"]["backbone"], reference),
                      (state["critic"]["params"]["backbone"], reference), (state["ref"], reference)):
        jax.tree.map(np.testing.assert_array_equal, got, want)
    assert state["rm"]["params"]["head"].shape == (actor_cfg.d_model, 1)


def test_plus_runs_end_to_end_on_a_checkpoint(checkpoint, tmp_path):
    results = run_experiment(_config(checkpoint), str(tmp_path))
    assert results["complete"] and results["method"] == "plus"
    assert 0.0 <= results["seen_accuracy"] <= 1.0 and results["seen_mean_log_sigmoid"] < 0.0
    assert (tmp_path / "tokenizer" / "tokenizer.json").exists()


def test_checkpoint_mismatches_are_refused(checkpoint, tmp_path):
    config = _config(checkpoint, prompt_len=16)
    with pytest.raises(ValueError, match="shapes.prompt_len=16 but the longest summarizer prompt"):
        run_experiment(config, str(tmp_path / "a"))
    config = _config(checkpoint)
    config.rm_model.hf_path = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError):
        run_experiment(config, str(tmp_path / "b"))


def test_one_model_from_a_checkpoint_the_other_from_scratch(checkpoint, tmp_path):
    """rm_model.hf_path alone: the RM loads the checkpoint; the summarizer trains from scratch, sized to the
    checkpoint's tokenizer (both read the same text side)."""
    config = _config(checkpoint)
    config.model.hf_path = ""
    task = S.build_data(config)
    chat = S.build_chat(config, task)
    actor_cfg, actor_w = S.build_model(config.model, chat, 280)
    assert actor_w is None and actor_cfg.vocab_size == chat.vocab_size and actor_cfg.d_model == config.model.d_model
    results = run_experiment(config, str(tmp_path))
    assert results["complete"]


def test_a_checkpoint_mismatch_is_refused_naming_the_tensor(checkpoint, tmp_path):
    import json
    import shutil

    small = tmp_path / "small"
    shutil.copytree(checkpoint, small)
    cfg = json.loads((small / "config.json").read_text())
    cfg["vocab_size"] = 100
    (small / "config.json").write_text(json.dumps(cfg))
    config = _config(str(small))
    with pytest.raises(ValueError, match=r"Tensor model.embed_tokens.weight has shape \(608, 32\), expected \(100, 32\)"):
        run_experiment(config, str(tmp_path / "run"))
