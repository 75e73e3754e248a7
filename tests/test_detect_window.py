"""The detectors' building blocks against naive references: string hashing, sliding
windows (sums and distinct counts at the anchors a batch touched), expiry and caps,
distinct counters and heavy hitters."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from flowscope.detect.distinct import DistinctCounter, TopSources
from flowscope.detect.hashing import combine, hash_strings
from flowscope.detect.window import Contributions, WindowStore


# ------------------------------------------------------------------ hashing
def test_string_hashes_are_stable_across_arrays_slices_and_chunks() -> None:
    words = ["10.0.0.1", "2a00:d40:1:3:192:12:193:11", "", "10.0.0.1", "192.168.1.255", "x" * 45]
    h = hash_strings(pa.array(words))
    assert h[0] == h[3] and len(set(h.tolist())) == 5
    sliced = hash_strings(pa.array(["pad", *words]).slice(1))
    chunked = hash_strings(pa.chunked_array([pa.array(words[:2]), pa.array(words[2:])]))
    large = hash_strings(pa.array(words, pa.large_string()))
    dictionary = hash_strings(pa.array(words).dictionary_encode())
    for other in (sliced, chunked, large, dictionary):
        assert other.tolist() == h.tolist()
    assert hash_strings(pa.array([None, ""]))[0] == hash_strings(pa.array([""]))[0]
    assert hash_strings(pa.array([], pa.string())).shape == (0,)


@given(st.lists(st.text(max_size=50), min_size=1, max_size=50))
def test_equal_strings_hash_equal_and_distinct_ones_differ(words: list[str]) -> None:
    h = hash_strings(pa.array(words)).tolist()
    for i, a in enumerate(words):
        for j, b in enumerate(words):
            assert (h[i] == h[j]) == (a == b)


def test_combine_is_order_sensitive() -> None:
    a, b = np.array([1, 2], dtype=np.uint64), np.array([2, 1], dtype=np.uint64)
    assert combine(a, b)[0] != combine(b, a)[0]
    assert combine(a, b)[0] == combine(b, a)[1]


# ------------------------------------------------------------------ windows
def _contrib(rows: list[tuple[int, int, int, int, int]]) -> Contributions:
    """rows of (key, bucket, item, weight, value)."""
    a = np.array(rows, dtype=np.int64).reshape(-1, 5)
    n = len(a)
    key = a[:, 0].astype(np.uint64)
    return Contributions(
        key=key,
        incident=key,
        bucket=a[:, 1],
        values=a[:, [3, 4]].astype(np.float64),
        items=a[:, [2]].astype(np.uint64),
        t_first=a[:, 1],
        t_last=a[:, 1],
        row=np.zeros(n, dtype=np.int64),
    )


row_st = st.tuples(
    st.integers(0, 3),  # key
    st.integers(0, 40),  # bucket
    st.integers(0, 5),  # item
    st.integers(0, 1),  # weight
    st.integers(1, 3),  # value
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(row_st, min_size=1, max_size=25), min_size=1, max_size=4), st.integers(1, 6)
)
def test_window_sums_and_distinct_counts_match_a_naive_count(
    batches: list[list[tuple[int, int, int, int, int]]], nb: int
) -> None:
    store = WindowStore(
        window_ns=nb, n_buckets=nb, retention_ns=10_000, n_values=2, n_items=1,
        max_keys=1000, max_rows=100_000,
    )  # fmt: skip
    seen: list[tuple[int, int, int, int, int]] = []
    for batch in batches:
        touched = store.add(_contrib(batch))
        seen += batch
        stats = store.evaluate(touched)
        # naive state: (key, bucket, item) → summed weight and value
        agg: dict[tuple[int, int, int], list[int]] = defaultdict(lambda: [0, 0])
        for k, b, i, w, v in seen:
            agg[k, b, i][0] += w
            agg[k, b, i][1] += v
        expected = {}
        for k, a in {(k, b) for (k, b, _) in agg}:
            if not any(k == tk and tb <= a < tb + nb for tk, tb, *_ in batch):
                continue
            inside = [(i, wv) for (kk, b, i), wv in agg.items() if kk == k and a - nb < b <= a]
            expected[k, a] = (
                sum(wv[0] for _, wv in inside),
                sum(wv[1] for _, wv in inside),
                len({i for i, wv in inside if wv[0] > 0}),
            )
        got = {
            (int(k), int(b)): (s[0], s[1], d[0])
            for k, b, s, d in zip(stats.key, stats.bucket, stats.sums, stats.distinct, strict=True)
        }
        assert got == expected


def test_retracted_rows_cancel_and_empty_rows_go() -> None:
    store = WindowStore(
        window_ns=10, n_buckets=10, retention_ns=100, n_values=2, n_items=1, max_keys=10,
        max_rows=100,
    )  # fmt: skip
    store.add(_contrib([(1, 5, 7, 1, 3)]))
    touched = store.add(_contrib([(1, 5, 7, -1, -3)]))
    stats = store.evaluate(touched)
    assert stats.sums.tolist() == [[0.0, 0.0]] and stats.distinct.tolist() == [[0.0]]
    store.expire(10)
    assert store.rows == 0


def test_store_expires_by_capture_time_and_obeys_its_caps() -> None:
    store = WindowStore(
        window_ns=10, n_buckets=10, retention_ns=20, n_values=2, n_items=1, max_keys=5,
        max_rows=12,
    )  # fmt: skip
    store.add(_contrib([(k, k, 0, 1, 1) for k in range(20)]))
    store.expire(19)  # newest 5 keys stay (keys 15…19), older ones evicted
    assert store.keys == 5 and store.evicted_keys == 15
    store.add(_contrib([(19, b, i, 1, 1) for b in range(14, 20) for i in range(3)]))
    store.expire(20)
    assert store.rows <= 12 and store.evicted_rows > 0
    store.expire(20 + 40)  # beyond the retention: everything goes
    assert store.rows == 0


# ------------------------------------------------------------------ counters
def test_distinct_counter_exact_then_sketch() -> None:
    c = DistinctCounter(exact_limit=100)
    c.add(np.arange(50, dtype=np.uint64))
    c.add(np.arange(25, 75, dtype=np.uint64))
    assert c.exact and c.count() == 75 and len(c.values()) == 75
    c.add(np.arange(50_000, dtype=np.uint64))
    assert not c.exact and abs(c.count() - 50_000) < 50_000 * 0.08
    assert len(c.values()) == 0


def test_top_sources_find_the_heavy_hitter_among_many() -> None:
    top = TopSources(k=8)
    rng = np.random.default_rng(0)
    for _ in range(20):
        noise = rng.integers(1, 2**63, 500).astype(np.uint64)
        hashes = np.concatenate([noise, np.full(200, 42, dtype=np.uint64)])
        top.add(hashes, np.ones(len(hashes)), lambda i: "attacker" if i >= 500 else None)
    (name, weight), *_ = top.top()
    assert name == "attacker" and weight >= 4000
    assert top.total == 20 * 700
