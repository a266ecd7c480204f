"""RecLM training: the cgen and ret losses against brute-force numpy references, the optimizer schedule,
the HF-checkpoint start (logits equal transformers' after the <SOI>/<EOI> resize), and a tiny end-to-end
run on hand-written RecBole files (OOD = 0 and Repeat = 0 asserted inside the run)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from humanai_jax.backbone import ModelConfig, forward, init_params
from humanai_jax.decoding import build_item_trie
from humanai_jax.methods.reclm import encode, train as rtrain
from humanai_jax.methods.reclm.retrieval import init_item_proj, item_proj
from humanai_jax.methods.reclm.scope_loss import span_nodes

V, SOI, EOI = 40, 37, 38
TITLES = [[3, 4], [3, 5], [6], [3, 4, 7]]


def _setup(variant):
    cfg = ModelConfig.small(vocab_size=V, d_model=16, n_layers=1, n_heads=2, tie_embeddings=False)
    params = {"lm": init_params(cfg, jax.random.key(0))}
    params["lm"]["lm_head"] = jax.random.normal(jax.random.key(1), params["lm"]["lm_head"].shape)
    reply = [10, SOI, 3, 4, EOI, 11, SOI, 6, EOI, 12]
    rows = [encode.build_row([1, 2, SOI, 9], reply, 16,
                             lm_mask=encode.ret_lm_mask(reply, SOI, EOI) if variant == "ret" else None),
            encode.build_row([1, 2, 5, 8, 8, 8], reply[:5] + [12], 16,
                             lm_mask=encode.ret_lm_mask(reply[:5] + [12], SOI, EOI) if variant == "ret" else None)]
    tokens = np.stack([r[0] for r in rows])
    mask = np.stack([r[1] for r in rows])
    batch = {"tokens": tokens, "mask": mask}
    trie = build_item_trie(TITLES, soi_id=SOI, eoi_id=EOI, vocab_size=V, window=2)
    if variant == "cgen":
        batch["span_node"] = span_nodes(np.where(mask[:, 1:] > 0, tokens[:, 1:], -1), trie)
    else:
        params["proj"] = init_item_proj(jax.random.key(2), 16, hidden=8, out=6)
        params["items"] = jax.random.normal(jax.random.key(3), (len(TITLES), 6))
        pos = [encode.retrieval_targets(tokens[0], 4, [0, 2], SOI, 3), encode.retrieval_targets(tokens[1], 6, [0], SOI, 3)]
        batch["ret_pos"] = np.stack([p for p, _ in pos])
        batch["ret_item"] = np.stack([i for _, i in pos])
    return cfg, params, batch, trie


def _log_softmax(z):
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


def test_cgen_loss_equals_masked_softmax_reference():
    cfg, params, batch, trie = _setup("cgen")
    lc, dev = rtrain.LossConfig("cgen", cfg), trie.to_device()
    loss, _ = jax.jit(lambda p, b: rtrain.reclm_loss(p, b, lc, dev))(params, batch)
    logits = np.asarray(forward(params["lm"], jnp.asarray(batch["tokens"][:, :-1]), cfg))
    per_row = []
    for b in range(2):
        toks, w = batch["tokens"][b], batch["mask"][b]
        nll, in_span, prefix = [], False, []
        for p in range(1, len(toks)):
            tok = int(toks[p])
            z = logits[b, p - 1].astype(np.float64)
            if w[p] > 0 and in_span and tok != EOI:
                # allowed = children of the node reached by the span's earlier tokens (brute force over titles)
                kids = {t[len(prefix)] if len(t) > len(prefix) else EOI for t in TITLES if t[:len(prefix)] == prefix}
                z = np.where(np.isin(np.arange(V), list(kids)), z, -np.inf)
            if w[p] > 0:
                nll.append(-_log_softmax(z)[tok])
            if w[p] > 0 and tok == SOI:
                in_span, prefix = True, []
            elif in_span and tok == EOI:
                in_span = False
            elif in_span:
                prefix.append(tok)
        per_row.append(np.mean(nll))
    np.testing.assert_allclose(float(loss), np.mean(per_row), rtol=1e-5)


def test_ret_loss_equals_reference():
    cfg, params, batch, _ = _setup("ret")
    lc = rtrain.LossConfig("ret", cfg, loss_norm="per_token")
    loss, parts = jax.jit(lambda p, b: rtrain.reclm_loss(p, b, lc, None))(params, batch)
    logits, hidden = forward(params["lm"], jnp.asarray(batch["tokens"][:, :-1]), cfg, return_hidden=True)
    logits, hidden = np.asarray(logits, np.float64), np.asarray(hidden)
    toks, w = batch["tokens"][:, 1:], batch["mask"][:, 1:]
    lm = sum(-_log_softmax(logits[b, t])[toks[b, t]] for b in range(2) for t in range(toks.shape[1]) if w[b, t])
    lm /= w.sum()
    # title tokens and EOI are not LM targets; the reply's SOIs are
    assert w[0].sum() == 5 and w[1].sum() == 3
    ret = []
    for b in range(2):
        for p, i in zip(batch["ret_pos"][b], batch["ret_item"][b]):
            if p >= 0:
                assert batch["tokens"][b, p + 1] == SOI
                s = np.asarray(item_proj(params["proj"], hidden[b, p])) @ np.asarray(params["items"]).T
                ret.append(-_log_softmax(s.astype(np.float64))[i])
    assert len(ret) == 3
    np.testing.assert_allclose(float(parts["ret_loss"]), np.mean(ret), rtol=1e-5)
    np.testing.assert_allclose(float(parts["lm_loss"]), lm, rtol=1e-5)
    np.testing.assert_allclose(float(loss), lm + np.mean(ret), rtol=1e-5)


def test_normalise_per_sample_and_per_token():
    x = jnp.asarray([[1.0, 3.0, 5.0], [2.0, 0.0, 0.0], [9.0, 9.0, 9.0]])
    w = jnp.asarray([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert float(rtrain.normalise(x, w, "per_sample")) == pytest.approx((3.0 + 2.0) / 2)
    assert float(rtrain.normalise(x, w, "per_token")) == pytest.approx(11.0 / 4)


def test_optimizer_schedule_and_decay_mask():
    tx, schedule = rtrain.make_optimizer(1e-2, 800, warmup_frac=0.0125, end_lr=0.0, weight_decay=0.5)
    assert float(schedule(0)) == 0.0 and float(schedule(10)) == pytest.approx(1e-2)
    assert float(schedule(10 + 395)) == pytest.approx(1e-2 * 0.5 ** 2, rel=1e-4)  # polynomial, power 2
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones((2,))}
    state = tx.init(params)
    zero = jax.tree.map(jnp.zeros_like, params)
    for _ in range(11):
        updates, state = tx.update(zero, state, params)
    assert float(jnp.abs(updates["b"]).max()) == 0.0 and float(jnp.abs(updates["w"]).max()) > 0.0


def _loss_after_training(variant: str, steps: int = 30) -> tuple[float, float]:
    import optax

    cfg, params, batch, trie = _setup(variant)
    lc, dev = rtrain.LossConfig(variant, cfg), trie.to_device()
    loss_and_grad = jax.jit(jax.value_and_grad(lambda p: rtrain.reclm_loss(p, batch, lc, dev)[0]))
    tx = optax.adam(1e-2)
    opt, losses = tx.init(params), []
    for _ in range(steps + 1):
        loss, grads = loss_and_grad(params)
        losses.append(float(loss))
        upd, opt = tx.update(grads, opt, params)
        params = optax.apply_updates(params, upd)
    return losses[0], losses[-1]


@pytest.mark.parametrize("variant", ["cgen", "ret"])
def test_training_reduces_the_loss(variant):
    first, last = _loss_after_training(variant)
    assert last < 0.5 * first


@pytest.mark.parametrize("variant", ["cgen", "ret"])
def test_lora_trains_adapters_and_embeddings_only(variant):
    """LoRA through the real optimizer wrapper: the base layer stack and final norm stay bitwise equal
    and hold no optimizer state; adapters, embeddings (and ret's head/table) move; the loss falls."""
    import optax

    from humanai_jax.train import lora

    cfg, params, batch, trie = _setup(variant)
    lc = rtrain.LossConfig(variant, cfg, lora=lora.LoraConfig(rank=4, alpha=8.0))
    params["lora"] = lora.init_adapters(params["lm"], lc.lora, jax.random.key(9))
    assert rtrain.reclm_loss(params, batch, lc, trie.to_device())[0] == pytest.approx(
        float(rtrain.reclm_loss({k: v for k, v in params.items() if k != "lora"}, batch,
                                rtrain.LossConfig(variant, cfg), trie.to_device())[0]), rel=1e-6)  # B = 0: the base
    tx = rtrain.with_frozen_base(optax.adamw(1e-2), params, lc)
    opt = tx.init(params)
    n_state = sum(x.size for x in jax.tree.leaves(opt))
    trainable = lora.count(params["lora"]) + params["lm"]["embed"].size + params["lm"]["lm_head"].size + sum(
        lora.count(v) for k, v in params.items() if k in ("proj", "items"))
    assert n_state <= 2 * trainable + 10  # Adam moments of the trainable leaves only (+ step counters)
    loss_and_grad = jax.jit(jax.value_and_grad(lambda p: rtrain.reclm_loss(p, batch, lc, trie.to_device())[0]))
    start, losses = params, []
    for _ in range(30):
        loss, grads = loss_and_grad(params)
        losses.append(float(loss))
        upd, opt = tx.update(grads, opt, params)
        params = optax.apply_updates(params, upd)
    assert losses[-1] < 0.7 * losses[0]
    for name in ("layers", "final_norm"):
        for a, b in zip(jax.tree.leaves(params["lm"][name]), jax.tree.leaves(start["lm"][name])):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(params["lm"]["embed"]), np.asarray(start["lm"]["embed"]))
    assert np.abs(np.asarray(params["lora"]["wq"]["b"])).max() > 0  # B left zero
    merged = rtrain.merged(params, lc)
    assert "lora" not in merged and merged["lm"]["layers"]["wq"].shape == params["lm"]["layers"]["wq"].shape
    plain = rtrain.reclm_loss(merged, batch, rtrain.LossConfig(variant, cfg), trie.to_device())[0]
    np.testing.assert_allclose(float(plain), float(loss_and_grad(params)[0]), rtol=1e-5)


# ------------------------------------------------------------------------------ HF checkpoint start
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, Qwen2Config

    from humanai_jax.data import generate_corpus, train_tokenizer

    path = str(tmp_path_factory.mktemp("tiny_qwen2_reclm"))
    tok = train_tokenizer(generate_corpus(100, seed=3) + ["Toy Story", "Heat"], 300, path)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML
    tok.eos_token = "<|im_end|>"
    tok.save_pretrained(path)
    cfg = Qwen2Config(vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, tie_word_embeddings=False, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    return path


def test_hf_start_resizes_and_keeps_the_checkpoint_logits(hf_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from configs.reclm import get_config
    from humanai_jax.data.tokenizer import load_tokenizer
    from humanai_jax.methods.reclm.model import initial_model

    tok = load_tokenizer(hf_dir)
    codec = encode.ChatCodec.create(tok)
    assert codec.eot_id == tok.convert_tokens_to_ids("<|im_end|>") and not codec.own_format
    c = get_config(f"ret,hf_path={hf_dir}")
    model_cfg, params = initial_model(c, tok, codec, n_items=5, variant="ret", rng=jax.random.PRNGKey(0))
    assert model_cfg.vocab_size == 320 >= len(tok) and codec.soi_id < 320  # new ids fall inside existing rows
    assert params["items"].shape == (5, c.item_proj.dim)
    ids = codec.prompt_ids("Recommend something like Heat")
    ref = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        want = ref(torch.tensor([ids])).logits[0].numpy()
    got = np.asarray(forward(params["lm"], jnp.asarray([ids]), model_cfg))[0]
    keep = [i for i in range(320) if i not in (codec.soi_id, codec.eoi_id)]
    np.testing.assert_allclose(got[:, keep], want[:, keep], rtol=2e-4, atol=2e-4)
    # <SOI>'s input row is the mean of "start of an item"'s token rows (the reference's init)
    phrase = tok.convert_tokens_to_ids(tok.tokenize("start of an item"))
    emb = ref.get_input_embeddings().weight.detach().numpy()
    np.testing.assert_allclose(np.asarray(params["lm"]["embed"][codec.soi_id]), emb[phrase].mean(0), rtol=1e-5)


# ------------------------------------------------------------------------------ end to end
def _tiny_recbole(tmp_path, n_users=24, n_items=30, length=8):
    rng = np.random.default_rng(0)
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(n_users):
        start = int(rng.integers(n_items))
        for k in range(length):  # a walk through the catalogue: the next item is predictable
            inter.append(f"u{u}\ti{(start + k) % n_items}\t4\t{1000 + k}")
    names = ["Heat", "Casino", "Alien", "Aliens", "Fargo", "Se7en", "Ronin", "Big", "Jaws", "Cars"]
    items = ["item_id:token\tmovie_title:token_seq"] + [f"i{i}\t{names[i % 10]} {'II' * (i // 10)}".strip()
                                                        for i in range(n_items)]
    (tmp_path / "t.inter").write_text("\n".join(inter) + "\n")
    (tmp_path / "t.item").write_text("\n".join(items) + "\n")


@pytest.mark.slow
def test_tiny_table_runs_end_to_end(tmp_path):
    from configs.reclm import get_config
    from experiments.run import run_experiment

    _tiny_recbole(tmp_path)
    c = get_config("table")
    c.seeds = (0, 1)
    c.data.update(inter_path=str(tmp_path / "t.inter"), item_path=str(tmp_path / "t.item"), min_len=8, max_len=8,
                  n_users=50, vocab_size=300, seq_len=256)
    c.sasrec.update(steps=20, eval_every=10, d_model=16, inner=16)
    c.model.update(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, mlp_dim=64)
    c.item_proj.update(hidden=32, dim=8)
    c.train.update(epochs=2, batch_size=8)
    c.eval.update(n_val_users=8, max_new_tokens=96, batch=16, general_docs=8)
    res = run_experiment(c, str(tmp_path / "run"))
    for m in ("cgen", "ret", "sasrec", "popularity"):
        assert set(res["methods"][m]["hr@10"]) == {"mean", "std", "per_seed"}
        assert len(res["methods"][m]["hr@10"]["per_seed"]) == 2
    for m in ("cgen", "ret"):
        assert res["methods"][m]["ood@10"]["per_seed"] == [0.0, 0.0]
        assert res["methods"][m]["repeat@10"]["per_seed"] == [0.0, 0.0]
    assert os.path.exists(tmp_path / "run" / "seed_1" / "cgen" / "generations.json")
