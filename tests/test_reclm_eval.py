"""RecLM metrics (docs/reclm.md §5.5) against hand-computed values, and reply parsing."""

import numpy as np
import pytest

from humanai_jax.methods.reclm import evaluate as rev


def test_sample_metrics_hand_values():
    catalog = {"A", "B", "C", "D", "E"}
    out = ["B", "X", "A", "B", "C"]  # X is off-catalogue, B repeats, A at rank 3
    m = rev.sample_metrics(out, "A", history={"C", "E"}, catalog=catalog, n=10)
    assert m["hr@10"] == 1.0 and m["mrr@10"] == pytest.approx(1 / 3)
    assert m["ndcg@10"] == pytest.approx(1 / np.log2(4))
    assert (m["ood@10"], m["repeat@10"], m["in_history@10"], m["exact_count"]) == (1.0, 1.0, 1.0, 0.0)
    # only the first n count; exact-count looks at the list before truncation
    m = rev.sample_metrics(["B", "C", "A"], "A", set(), catalog, n=2)
    assert m["hr@10"] == 0.0 and m["exact_count"] == 0.0 and m["ndcg@10"] == 0.0
    assert rev.sample_metrics(["B", "A"], "A", set(), catalog, n=2)["exact_count"] == 1.0


def test_aggregate_counts_fractions_and_empty_replies():
    catalog = {"A", "B"}
    per = [rev.sample_metrics(["A", "Z"], "A", set(), catalog, n=2), rev.sample_metrics([], "B", set(), catalog, n=2)]
    agg = rev.aggregate(per, n=2)
    assert agg["hr@10"] == 0.5 and agg["hr@10_skip_empty"] == 1.0 and agg["n_empty"] == 1 and agg["n"] == 2
    assert agg["ood@10"] == 0.5 and agg["ood@10_frac"] == 0.25
    with pytest.raises(ValueError):
        rev.aggregate([])


def test_parse_tokens_spans_stop_and_unclosed():
    S, E, STOP = 90, 91, 92
    row = [1, S, 3, 4, E, 2, S, 5, E, S, 6, STOP, S, 7, E]
    assert rev.parse_tokens(row, S, E, STOP) == [(3, 4), (5,)]  # the span cut by the stop is not an item
    assert rev.parse_tokens([E, S, S, 3, E], S, E, STOP) == [(3,)]  # a second SOI restarts the span


def test_decode_replies_cgen_in_catalogue_and_ret_forced_both_greedy_and_sampled():
    """An untrained model decoded through both RecLM paths: every cgen span is a catalogue title, every ret
    span is a forced title, no item repeats within a reply, sampling included."""
    import jax

    from humanai_jax.backbone import ModelConfig, init_params
    from humanai_jax.decoding import build_item_trie
    from humanai_jax.methods.reclm.retrieval import init_item_proj

    V, SOI, EOI, EOT = 48, 45, 46, 47
    titles = [[3, 4], [3, 5], [6], [7, 8, 9], [10]]
    cfg = ModelConfig.small(vocab_size=V, d_model=16, n_layers=1, n_heads=2, tie_embeddings=False)
    params = {"lm": init_params(cfg, jax.random.key(0))}
    params["lm"]["lm_head"] = params["lm"]["lm_head"].at[:, SOI].add(3.0)  # <SOI> often, so spans happen
    params["proj"] = init_item_proj(jax.random.key(1), 16, hidden=8, out=4)
    params["items"] = jax.random.normal(jax.random.key(2), (len(titles), 4))

    class Codec:  # the codec fields decode_replies reads
        soi_id, eoi_id, eot_id = SOI, EOI, EOT

    trie = build_item_trie(titles, soi_id=SOI, eoi_id=EOI, vocab_size=V, window=2)
    prompts = [[1, 2, 11], [12, 13], [14]]
    for variant, temperature in (("cgen", 0.0), ("ret", 1.0), ("cgen", 1.0)):  # one compile each
        rows = rev.decode_replies(params, cfg, Codec, prompts, variant=variant, trie=trie, title_ids=titles,
                                  max_new_tokens=40, temperature=temperature, max_items=4)
        spans = [rev.parse_tokens(r, SOI, EOI, EOT) for r in rows]
        assert sum(map(len, spans)) >= 3
        for s in spans:
            assert all(list(t) in titles for t in s)
            # both stop opening spans once their buffer of max_items is full (ret: decoding/forcing.py bans
            # the trigger), so no item ever comes twice
            assert len(set(s)) == len(s), (variant, temperature, s)
            assert len(s) <= 4
    # The ablation: the same model decoded without the trie writes spans that are not catalogue titles.
    free = rev.decode_replies(params, cfg, Codec, prompts, variant="cgen", trie=trie, title_ids=titles,
                              max_new_tokens=40, temperature=1.0, max_items=4, constrained=False)
    free_spans = [t for r in free for t in rev.parse_tokens(r, SOI, EOI, EOT)]
    assert free_spans and any(list(t) not in titles for t in free_spans)
