"""RecLM-cgen catalogue constraint: trie vs brute force, mask vs a literal port of the reference
processor, and the end-to-end guarantee with random weights at high temperature."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from humanai_jax.backbone import ModelConfig, init_params
from humanai_jax.decoding import ItemConstraint, build_item_trie, generate
from humanai_jax.decoding.trie import children_mask
from humanai_jax.methods.reclm import add_item_tokens


# ----------------------------------------------------------------------------- reference port
class _Node:
    """RecAI `RecLM-cgen/train_utils/processor.py` `Node`, ported literally."""

    def __init__(self, token_id):
        self.token_id, self.children, self.count = token_id, {}, 0

    def add_child(self, t):
        if t not in self.children:
            self.children[t] = _Node(t)
        self.children[t].count += 1

    def __getitem__(self, t):
        return self.children.get(t)


class _TrieLink:
    """`Trie_link.__init__` and `constrain_search_list` (eos search kept; torch ops as lists)."""

    def __init__(self, item_ids, soi, eoi, eos=-1):
        self.soi, self.eoi, self.eos, self.trie = soi, eoi, eos, _Node(-1)
        for ids in item_ids:
            node = self.trie
            for t in [soi] + list(ids) + [eoi]:
                node.add_child(t)
                node = node[t]

    def next_tokens(self, seq):
        node = self.trie
        for t in seq:
            node = node[t]
            if node is None:
                return None
        return list(node.children)

    def constrain_search_list(self, input_ids):
        ids = list(input_ids)
        eos = [i for i, t in enumerate(ids) if t == self.eos]
        last_eos = eos[-1] if eos else -1
        sois = [i for i, t in enumerate(ids) if t == self.soi and i > last_eos]
        eois = [i for i, t in enumerate(ids) if t == self.eoi and i > last_eos]
        if (sois[-1] if sois else -1) <= (eois[-1] if eois else -1):
            return None
        visited, node = {}, None
        for s in sois:
            node, i = self.trie, s
            while i < len(ids):
                node = node[ids[i]]
                if node is None:
                    break
                visited[id(node)] = visited.get(id(node), 0) + 1
                if ids[i] == self.eoi:
                    break
                i += 1
        if node is None:
            return None
        return [t for t, c in node.children.items() if visited.get(id(c), 0) < c.count]


# ----------------------------------------------------------------------------- catalogues
SMALL = [[3, 4], [3, 4, 5], [3, 4, 6, 7], [3, 8], [9], [9, 3], [10, 11, 12], [10, 11, 13], [4, 3]]
SMALL_V, SMALL_SOI, SMALL_EOI = 16, 14, 15


def _titles(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    a = "The A Return Night Star Dark Last Lost Little Big Red Blue Secret Silent Golden Broken".split()
    b = "King Queen River City Garden Dream Storm Island Heart Shadow Road Moon Fire House Game Child Man".split()
    c = "of in on at from beyond under".split()
    d = "Paris Rome Time Love War Summer Winter Tomorrow Yesterday Space Ice Stone".split()
    titles = set()
    while len(titles) < n:
        kind = rng.integers(4)
        t = f"{rng.choice(a)} {rng.choice(b)}"
        if kind >= 1:
            t += f" {rng.choice(c)} {rng.choice(d)}"
        if kind == 2:
            t += f" {rng.integers(2, 9)}"
        if kind == 3:
            t += f" ({rng.integers(1990, 2020)})"
        titles.add(t)
    return sorted(titles) + ["Alien", "Alien 3", "Alien Resurrection"]  # a title that prefixes others


@pytest.fixture(scope="module")
def catalogue():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    titles = _titles()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=800, special_tokens=["<pad>", "<eos>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(titles, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    soi, eoi = add_item_tokens(tokenizer)
    ids = tokenizer(titles, add_special_tokens=False)["input_ids"]
    trie = build_item_trie(ids, soi_id=soi, eoi_id=eoi, vocab_size=len(tokenizer), window=8)
    return titles, ids, tokenizer, trie


# ----------------------------------------------------------------------------- trie
def _walk(trie, path):
    node = 0
    for t in path:
        node = trie.child(node, t)
        assert node >= 0
    return node


def test_trie_children_and_counts_match_brute_force(catalogue):
    _, ids, _, trie = catalogue
    paths = [tuple(p) + (trie.eoi_id,) for p in ids]
    rng = np.random.default_rng(0)
    prefixes = {p[:d] for p in (paths[i] for i in rng.choice(len(paths), 300)) for d in range(len(p))}
    prefixes = sorted(prefixes)
    nodes = [_walk(trie, p) for p in prefixes]
    dense = np.asarray(children_mask(trie.to_device(), jnp.asarray(nodes, jnp.int32)))
    for prefix, node, row in zip(prefixes, nodes, dense):
        d = len(prefix)
        below = [p for p in paths if p[:d] == prefix]
        assert set(trie.children_tokens(node)) == {p[d] for p in below}
        assert set(np.nonzero(row)[0]) == {p[d] for p in below}
        assert trie.hi[node] - trie.lo[node] == len(below)
    assert trie.num_heavy > 1  # both the dense (heavy) and the window (light) paths were checked
    leaves = [_walk(trie, p) for p in paths]
    assert sorted(trie.rank_to_item[trie.leaf_rank[leaves]].tolist()) == list(range(len(paths)))
    np.testing.assert_array_equal(trie.rank_to_item[trie.leaf_rank[leaves]], np.arange(len(paths)))


def test_build_rejects_bad_catalogues():
    kw = dict(soi_id=SMALL_SOI, eoi_id=SMALL_EOI, vocab_size=SMALL_V)
    with pytest.raises(ValueError, match="same title"):
        build_item_trie([[1, 2], [3], [1, 2]], **kw)
    with pytest.raises(ValueError, match="item 1 has an empty title"):
        build_item_trie([[1], []], **kw)
    with pytest.raises(ValueError, match="control token"):
        build_item_trie([[1, SMALL_EOI]], **kw)
    with pytest.raises(ValueError, match="outside"):
        build_item_trie([[1, 99]], **kw)


def test_title_tokenization_in_context_equals_standalone(catalogue):
    titles, ids, tokenizer, trie = catalogue
    for start in range(0, 600, 10):  # reference reply format: "1. <SOI>T1<EOI>\n 2. <SOI>T2<EOI>"
        chunk = list(range(start, start + 10))
        reply = "\n ".join(f"{k + 1}. <SOI>{titles[i]}<EOI>" for k, i in enumerate(chunk)) + "\n"
        enc = tokenizer(reply, add_special_tokens=False)["input_ids"]
        sois = [j for j, t in enumerate(enc) if t == trie.soi_id]
        eois = [j for j, t in enumerate(enc) if t == trie.eoi_id]
        assert [enc[s + 1: e] for s, e in zip(sois, eois)] == [ids[i] for i in chunk]


# ----------------------------------------------------------------------------- mask vs reference
def test_mask_matches_reference_processor_on_random_replies():
    trie = build_item_trie(SMALL, soi_id=SMALL_SOI, eoi_id=SMALL_EOI, vocab_size=SMALL_V, window=2).to_device()
    ref = _TrieLink(SMALL, SMALL_SOI, SMALL_EOI)
    con = ItemConstraint(trie, max_items=16)
    allowed_fn, update_fn = jax.jit(con.allowed), jax.jit(con.update)
    b, steps = 12, 90
    rng = np.random.default_rng(0)
    state = con.init_state(b)
    replies = [[] for _ in range(b)]
    compared = 0
    for _ in range(steps):
        allowed, empty = allowed_fn(state)
        allowed, empty = np.asarray(allowed), np.asarray(empty)
        assert not empty.any()
        toks = []
        for r in range(b):
            ref_set = ref.constrain_search_list(replies[r])
            ours = set(np.nonzero(allowed[r])[0].tolist())
            if ref_set is None:  # outside a span: free (SOI only once the catalogue is used up)
                exhausted = int(state.n_emitted[r]) >= len(SMALL)
                assert ours == set(range(SMALL_V)) - ({SMALL_SOI} if exhausted else set())
            else:
                assert ours == set(ref_set), (replies[r], ours, ref_set)
                compared += 1
            # favour <SOI> outside spans so replies hold many items and de-dup is exercised
            choice = SMALL_SOI if ref_set is None and SMALL_SOI in ours and rng.random() < 0.6 else rng.choice(sorted(ours))
            toks.append(int(choice))
            replies[r].append(int(choice))
        state = update_fn(state, jnp.asarray(toks, jnp.int32), jnp.ones((b,), bool))
    assert compared > 300
    assert int(np.max(np.asarray(state.n_emitted))) == len(SMALL)  # some reply used the whole catalogue


def test_off_trie_token_leaves_span_and_dead_rows_keep_state():
    trie = build_item_trie(SMALL, soi_id=SMALL_SOI, eoi_id=SMALL_EOI, vocab_size=SMALL_V, window=2).to_device()
    con = ItemConstraint(trie, max_items=4, forbid_eoi_outside=True)
    state = con.init_state(2)
    update = jax.jit(con.update)
    for tok, active in [([SMALL_SOI, SMALL_SOI], [True, True]), ([3, 3], [True, False]), ([1, 3], [True, False])]:
        state = update(state, jnp.asarray(tok), jnp.asarray(active))
    assert np.asarray(state.in_span).tolist() == [False, True]  # row 0 fell off with token 1
    allowed, _ = jax.jit(con.allowed)(state)
    allowed = np.asarray(allowed)
    assert allowed[0].sum() == SMALL_V - 1 and not allowed[0, SMALL_EOI]  # free, but no stray EOI
    assert set(np.nonzero(allowed[1])[0]) == {3, 4, 9, 10}  # row 1 (inactive) stayed at the SOI node


# ----------------------------------------------------------------------------- the guarantee
def _biased_random_model(vocab, soi, stop, seed=0):
    """Random weights; a constant component in every embedding makes one hidden direction always
    positive, and the head reads it into <SOI> and the stop token, so replies hold many spans."""
    config = ModelConfig.small(vocab_size=vocab, d_model=32, n_layers=1, n_heads=2, tie_embeddings=False)
    params = init_params(config, jax.random.key(seed))
    k1, k2 = jax.random.split(jax.random.key(seed + 1))
    params["embed"] = jax.random.normal(k1, params["embed"].shape).at[:, 0].add(4.0)
    head = 0.3 * jax.random.normal(k2, params["lm_head"].shape)
    params["lm_head"] = head.at[:, soi].set(0).at[0, soi].set(3.5).at[:, stop].set(0).at[0, stop].set(0.9)
    return config, params


def _parse(tokens, soi, eoi):
    """Closed spans (SOI ... EOI) of a reply, and the trailing unfinished one (or None)."""
    spans, cur = [], None
    for t in tokens:
        if cur is None:
            if t == soi:
                cur = []
        elif t == eoi:
            spans.append(tuple(cur))
            cur = None
        else:
            cur.append(t)
    return spans, cur


def test_every_span_is_one_catalogue_title_without_repeats(catalogue):
    titles, ids, tokenizer, trie = catalogue
    soi, eoi, stop = trie.soi_id, trie.eoi_id, tokenizer.eos_token_id
    config, params = _biased_random_model(trie.vocab_size, soi, stop)
    con = ItemConstraint(trie.to_device(), max_items=32)
    rng = np.random.default_rng(1)
    prompts = [list(rng.integers(2, 400, size=n)) for n in rng.integers(3, 30, size=16)]
    toks, lens, state = generate(
        params, config, prompts, max_new_tokens=200, temperature=2.0, rng=jax.random.key(0),
        constraint=con, stop_token_ids=[stop], return_state=True,
    )
    catalogue_ids = {tuple(t): i for i, t in enumerate(ids)}
    prefixes = {tuple(t[:d]) for t in ids for d in range(len(t) + 1)}
    n_spans = 0
    for row, n, recorded in zip(toks, lens, con.emitted_items(state.cstate)):
        spans, open_span = _parse(row[:n].tolist(), soi, eoi)
        items = [catalogue_ids.get(s) for s in spans]
        assert None not in items, [tokenizer.decode(s) for s in spans if s not in catalogue_ids]
        assert len(set(items)) == len(items)  # no repeats within a reply
        assert items == recorded
        assert open_span is None or tuple(open_span) in prefixes
        n_spans += len(spans)
    assert n_spans > 150  # the test saw many spans
    assert not np.asarray(state.guard_fired).any()
    assert (lens < 200).any()  # some rows stopped on their own


def test_small_catalogue_is_used_up_without_repeats_or_dead_ends():
    stop = 1
    trie = build_item_trie(SMALL, soi_id=SMALL_SOI, eoi_id=SMALL_EOI, vocab_size=SMALL_V, window=2)
    config, params = _biased_random_model(SMALL_V, SMALL_SOI, stop, seed=3)
    con = ItemConstraint(trie.to_device(), max_items=16)
    toks, lens, state = generate(
        params, config, [[2, 3, 4]] * 6, max_new_tokens=150, temperature=1.0, rng=jax.random.key(1),
        constraint=con, return_state=True,
    )
    catalogue_ids = {tuple(t): i for i, t in enumerate(SMALL)}
    counts = []
    for row, n in zip(toks, lens):
        spans, _ = _parse(row[:n].tolist(), SMALL_SOI, SMALL_EOI)
        items = [catalogue_ids[s] for s in spans]
        assert len(set(items)) == len(items)
        counts.append(len(items))
    assert max(counts) == len(SMALL)  # some reply recommended every item, never one twice
    assert not np.asarray(state.guard_fired).any()


# ----------------------------------------------------------------------------- hardening
def test_build_rejects_bad_control_tokens():
    for soi, eoi, match in [(SMALL_V, SMALL_EOI, "soi_id .* outside"), (SMALL_SOI, -1, "eoi_id -1 is outside"),
                            (SMALL_SOI, SMALL_V + 5, "eoi_id .* outside"), (SMALL_SOI, SMALL_SOI, "must differ")]:
        with pytest.raises(ValueError, match=match):
            build_item_trie(SMALL, soi_id=soi, eoi_id=eoi, vocab_size=SMALL_V)


def test_prompt_ending_inside_a_span_constrains_the_first_tokens():
    """A prompt that ends in `<SOI> 10 11` (an open title) continues from that trie node: the reply starts with
    12 or 13 and then <EOI> (titles [10, 11, 12], [10, 11, 13]); `<SOI> 3 4 6` can only become [3, 4, 6, 7]."""
    trie = build_item_trie(SMALL, soi_id=SMALL_SOI, eoi_id=SMALL_EOI, vocab_size=SMALL_V, window=2)
    config, params = _biased_random_model(SMALL_V, SMALL_SOI, 1, seed=5)
    con = ItemConstraint(trie.to_device(), max_items=16)
    prompts = [[2, SMALL_SOI, 10, 11]] * 8 + [[SMALL_SOI, 9, SMALL_EOI, 2, SMALL_SOI, 3, 4, 6]] * 4 + [[2, 3]] * 4
    toks, lens, state = generate(params, config, prompts, max_new_tokens=6, temperature=1.0, rng=jax.random.key(2),
                                 constraint=con, return_state=True)
    assert {tuple(r[:2]) for r in toks[:8].tolist()} <= {(12, SMALL_EOI), (13, SMALL_EOI)}
    assert all(tuple(r[:2]) == (7, SMALL_EOI) for r in toks[8:12].tolist())
    recorded = con.emitted_items(state.cstate)
    assert all(r[:1] in ([6], [7]) for r in recorded[:8])  # the completed title is the reply's first item
    assert all(r[:1] == [2] for r in recorded[8:12])  # [9] closed inside the prompt is not recorded
    assert not np.asarray(state.guard_fired).any()


def test_stop_token_inside_a_title_is_refused():
    trie = build_item_trie(SMALL, soi_id=SMALL_SOI, eoi_id=SMALL_EOI, vocab_size=SMALL_V, window=2)
    config, params = _biased_random_model(SMALL_V, SMALL_SOI, 1)
    con = ItemConstraint(trie.to_device())
    with pytest.raises(ValueError, match=r"stop token\(s\) \[4\] occur inside item titles"):
        generate(params, config, [[2]], max_new_tokens=4, constraint=con, stop_token_ids=[1, 4])
    generate(params, config, [[2]], max_new_tokens=4, constraint=con, stop_token_ids=[1, SMALL_EOI])  # fine
