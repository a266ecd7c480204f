"""Loaders and splits of humanai_jax.recsys.data, checked against brute-force parsing."""

import collections

import numpy as np
import pytest

from conftest import require_shared
from humanai_jax.recsys import data


def _write(path, text):
    path.write_text(text)
    return path


def _as_sets(mat):
    out = collections.defaultdict(set)
    coo = mat.tocoo()
    for u, i in zip(coo.row, coo.col):
        out[int(u)].add(int(i))
    return dict(out)


def test_lightgcn_text_roundtrip(tmp_path):
    _write(tmp_path / "train.txt", "0 3 1 2\n1 0\n2 4 4 1\n")
    _write(tmp_path / "test.txt", "0 0\n1\n2 5\n")  # user 1 has no test item; item 5 is cold (not in train)
    d = data.load_lightgcn_text(str(tmp_path), test_only_ids="keep")
    assert (d.n_users, d.n_items) == (3, 6)  # max id + 1 over train and test
    assert _as_sets(d.train) == {0: {1, 2, 3}, 1: {0}, 2: {1, 4}}
    assert _as_sets(d.test) == {0: {0}, 2: {5}}
    # File order kept, duplicates removed.
    assert d.train_pairs.tolist() == [[0, 3], [0, 1], [0, 2], [1, 0], [2, 4], [2, 1]]
    assert d.valid is None


def test_lightgcn_text_malformed_line_names_file_and_line(tmp_path):
    _write(tmp_path / "train.txt", "0 1 2\n1 3\n2 x 4\n")
    _write(tmp_path / "test.txt", "0 0\n")
    with pytest.raises(data.DataFormatError, match=r"train\.txt:3"):
        data.load_lightgcn_text(str(tmp_path))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.txt"):
        data.load_lightgcn_text(str(tmp_path))


def test_real_ml1m_m1_counts():
    d = data.load_lightgcn_text(str(require_shared("recsys/ml1m_m1")))
    assert d.summary() == {"name": "ml1m_m1", "users": 6022, "items": 3043, "train": 796244, "test": 99455}
    assert d.train.multiply(d.test).nnz == 0


def test_real_lastfm_has_valid():
    with pytest.raises(data.DataFormatError, match=r"test\.txt:\d+: item id \d+ appears here but never"):
        data.load_lightgcn_text(str(require_shared("recsys/lastfm")))  # 2,382 cold test items
    d = data.load_lightgcn_text(str(require_shared("recsys/lastfm")), test_only_ids="keep")
    assert d.valid is not None and d.valid.nnz > 0
    assert d.n_users == 1885
    assert d.train.multiply(d.valid).nnz == 0


def test_recbole_leave_one_out_on_ml100k():
    path = require_shared("recsys/ml-100k/ml-100k.inter")
    d = data.load_recbole_inter(str(path), split="leave_one_out")
    # Brute force: parse the file by hand; each user's latest interaction (ties: file order) is test.
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]
    by_user = collections.defaultdict(list)
    for pos, (u, i, _, t) in enumerate(rows):
        by_user[u].append((float(t), pos, i))
    user_ids = {u: k for k, u in enumerate(dict.fromkeys(r[0] for r in rows))}
    item_ids = {i: k for k, i in enumerate(dict.fromkeys(r[1] for r in rows))}
    expected_test = {user_ids[u]: {item_ids[max(h)[2]]} for u, h in by_user.items()}
    assert (d.n_users, d.n_items) == (943, 1682)
    assert _as_sets(d.test) == expected_test
    assert d.test.nnz == 943 and d.valid.nnz == 943 and d.train.nnz == 100000 - 2 * 943


def test_recbole_malformed_line(tmp_path):
    p = _write(tmp_path / "x.inter", "user_id:token\titem_id:token\trating:float\n1\t2\t3\n1\t3\n")
    with pytest.raises(data.DataFormatError, match=r"x\.inter:3"):
        data.load_recbole_inter(str(p))


def test_recbole_ratio_split(tmp_path):
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"u{u}\ti{i}\t{i}" for u in range(3) for i in range(10)]
    d = data.load_recbole_inter(str(_write(tmp_path / "r.inter", "\n".join(lines) + "\n")), split="ratio")
    for u in range(3):  # time order: first 8 train, then 1 valid, then 1 test
        assert _as_sets(d.train)[u] == set(range(8))
        assert _as_sets(d.valid)[u] == {8}
        assert _as_sets(d.test)[u] == {9}


def test_synthetic_is_long_tailed_deterministic_and_disjoint():
    a = data.synthetic_long_tail(300, 200, seed=3)
    b = data.synthetic_long_tail(300, 200, seed=3)
    assert (a.train != b.train).nnz == 0 and (a.test != b.test).nnz == 0
    assert a.train.multiply(a.test).nnz == 0
    degree = np.sort(np.asarray((a.train + a.test).sum(0)).ravel())[::-1]
    share = degree / degree.sum()
    assert share[:20].sum() > 0.2 and share[-100:].sum() < 0.35  # top 10% of items: over twice their uniform share
    assert np.all(np.diff(a.test.indptr) >= 1)


def test_carve_validation_partitions_train():
    d = data.synthetic_long_tail(200, 150, seed=1)
    s = data.carve_validation(d, 0.1, seed=0)
    assert s.train.multiply(s.valid).nnz == 0
    assert ((s.train + s.valid) != d.train).nnz == 0
    assert 0.05 < s.valid.nnz / d.train.nnz < 0.11


# ----------------------------------------------------------------------------- bad data (issue 22, item 4)


def _folder(tmp_path, train, test, valid=None):
    _write(tmp_path / "train.txt", train)
    _write(tmp_path / "test.txt", test)
    if valid is not None:
        _write(tmp_path / "valid.txt", valid)
    return str(tmp_path)


def test_empty_train_or_test_file_is_refused(tmp_path):
    with pytest.raises(data.DataFormatError, match=r"train\.txt: no \(user, item\) pairs"):
        data.load_lightgcn_text(_folder(tmp_path, "", "0 1\n"))
    with pytest.raises(data.DataFormatError, match=r"test\.txt: no \(user, item\) pairs"):
        data.load_lightgcn_text(_folder(tmp_path, "0 1\n1 0\n", "0\n1\n"))  # users listed, no items


def test_ids_only_in_test_error_names_file_and_line_or_follow_the_policy(tmp_path):
    d = _folder(tmp_path, "0 0 1\n1 1 2\n", "0 2\n1 0 7\n")  # item 7: only in test, line 2
    with pytest.raises(data.DataFormatError, match=r"test\.txt:2: item id 7 appears here but never in .*train\.txt"):
        data.load_lightgcn_text(d)
    dropped = data.load_lightgcn_text(d, test_only_ids="drop")
    assert dropped.n_items == 3 and _as_sets(dropped.test) == {0: {2}, 1: {0}}
    kept = data.load_lightgcn_text(d, test_only_ids="keep")
    assert kept.n_items == 8 and _as_sets(kept.test) == {0: {2}, 1: {0, 7}}
    _write(tmp_path / "test.txt", "0 2\n5 1\n")  # user 5 has test items and no train line
    with pytest.raises(data.DataFormatError, match=r"test\.txt:2: user id 5 appears here but never"):
        data.load_lightgcn_text(d)
    _write(tmp_path / "test.txt", "0 2\n")
    _write(tmp_path / "valid.txt", "1 9\n")  # valid is checked the same way
    with pytest.raises(data.DataFormatError, match=r"valid\.txt:1: item id 9"):
        data.load_lightgcn_text(d)


def test_absurd_id_is_refused_with_file_and_line_before_allocating(tmp_path, monkeypatch):
    d = _folder(tmp_path, "0 0 1 2\n1 1 2\n2 0 10000000 1\n", "0 2\n")
    allocations = []
    monkeypatch.setattr(data, "pairs_to_csr", lambda *a: allocations.append(a))
    with pytest.raises(data.DataFormatError, match=r"train\.txt:3: item id 10,000,000 but only 4 distinct"):
        data.load_lightgcn_text(d)
    assert allocations == []  # refused before any matrix is sized
    _write(tmp_path / "train.txt", "0 0 1\n10000000 1 2\n")  # absurd user id
    with pytest.raises(data.DataFormatError, match=r"train\.txt:2: user id 10,000,000"):
        data.load_lightgcn_text(d)


def test_gappy_but_plausible_ids_are_accepted(tmp_path):
    # Gaps (items filtered upstream) are fine as long as max id + 1 stays near the number of ids.
    d = data.load_lightgcn_text(_folder(tmp_path, "0 0 5\n1 5 900\n", "0 900\n"))
    assert d.n_items == 901


def test_holdout_pairs_reads_only_train_pairs_and_partitions_them():
    d = data.synthetic_long_tail(200, 150, seed=1)
    train, valid = data.holdout_pairs(d.train_pairs, 0.1, seed=4)
    joined = np.concatenate([train, valid])
    assert len(joined) == len(d.train_pairs)
    assert set(map(tuple, joined.tolist())) == set(map(tuple, d.train_pairs.tolist()))
    counts = collections.Counter(d.train_pairs[:, 0].tolist())
    held = collections.Counter(valid[:, 0].tolist())
    assert all(held[u] == int(np.floor(0.1 * n)) for u, n in counts.items() if n >= 2)
    again = data.holdout_pairs(d.train_pairs, 0.1, seed=4)[1]
    assert np.array_equal(again, valid)
