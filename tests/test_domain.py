"""Tests of dsl/domain.py against an independent brute-force enumeration of the sparse domain."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl.domain import (DomainTooLargeError, SparseDomain, from_dense, parse_shard,
                        to_dense)

SMALL = [(m, k) for m in range(9) for k in [*range(m + 1), m + 2, None]]


def brute_force(m: int, k: int | None) -> list[tuple[int, ...]]:
    """All subsets of range(m) of size <= k, in the documented order (weight, then colex)."""
    top = m if k is None else min(k, m)
    out = []
    for j in range(top + 1):
        # colex order: compare the sorted tuples from their largest element down
        out.extend(sorted(itertools.combinations(range(m), j), key=lambda c: c[::-1]))
    return out


def padded(subsets: list[tuple[int, ...]], width: int) -> np.ndarray:
    """Brute-force subsets as a padded int64 array [N, width]."""
    arr = np.full((len(subsets), width), -1, dtype=np.int64)
    for row, subset in enumerate(subsets):
        arr[row, :len(subset)] = subset
    return arr


@pytest.mark.parametrize("m,k", SMALL)
def test_size_and_counts(m, k):
    dom = SparseDomain(m, k)
    expected = brute_force(m, k)
    assert dom.size == len(expected)
    assert isinstance(dom.size, int)
    assert sum(dom.weights_count()) == dom.size
    assert dom.max_weight == (m if k is None else min(k, m))
    assert dom.is_full == (dom.size == 2 ** m)


@pytest.mark.parametrize("m,k", SMALL)
def test_unrank_matches_brute_force(m, k):
    dom = SparseDomain(m, k)
    expected = padded(brute_force(m, k), dom.max_weight)
    got = dom.unrank(np.arange(dom.size))
    assert got.dtype == np.int64
    assert got.shape == (dom.size, dom.max_weight)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("m,k", SMALL)
def test_rank_inverts_unrank(m, k):
    dom = SparseDomain(m, k)
    ranks = np.arange(dom.size)
    np.testing.assert_array_equal(dom.rank(dom.unrank(ranks)), ranks)
    shuffled = np.random.default_rng(m * 31 + (k or 0)).permutation(ranks)
    np.testing.assert_array_equal(dom.unrank(shuffled), dom.unrank(ranks)[shuffled])
    np.testing.assert_array_equal(dom.rank(dom.unrank(shuffled)), shuffled)


def test_rank_accepts_unsorted_rows_and_other_widths():
    dom = SparseDomain(6, 3)
    rows = brute_force(6, 3)
    rng = np.random.default_rng(0)
    wide = np.full((len(rows), 5), -1, dtype=np.int64)
    for r, subset in enumerate(rows):
        wide[r, :len(subset)] = rng.permutation(subset)
    np.testing.assert_array_equal(dom.rank(wide), np.arange(dom.size))
    narrow = padded(rows[:22], 2)  # weights 0..2 only
    np.testing.assert_array_equal(dom.rank(narrow), np.arange(22))
    np.testing.assert_array_equal(dom.rank(np.zeros((3, 0), dtype=np.int64)), [0, 0, 0])
    assert dom.rank(np.array([[-1, 4, -1, 2]])).tolist() == [dom.rank([[2, 4]])[0]]


@pytest.mark.parametrize("m,k", [(0, None), (1, 0), (5, 2), (7, None), (8, 3)])
@pytest.mark.parametrize("batch_size", [1, 3, 7, 1000])
def test_batches_concatenate_to_full_list(m, k, batch_size):
    dom = SparseDomain(m, k)
    expected = padded(brute_force(m, k), dom.max_weight)
    firsts, parts = [], []
    for first, active in dom.batches(batch_size):
        assert active.shape[1] == dom.max_weight
        assert 1 <= len(active) <= batch_size
        firsts.append(first)
        parts.append(active)
    assert firsts == list(range(0, dom.size, batch_size))
    np.testing.assert_array_equal(np.concatenate(parts), expected)


def test_batches_subrange():
    dom = SparseDomain(8, 3)
    expected = padded(brute_force(8, 3), 3)
    got = list(dom.batches(5, start=11, stop=50))
    assert [first for first, _ in got] == list(range(11, 50, 5))
    np.testing.assert_array_equal(np.concatenate([a for _, a in got]), expected[11:50])
    assert list(dom.batches(5, start=20, stop=20)) == []
    with pytest.raises(ValueError):
        list(dom.batches(0))
    with pytest.raises(ValueError):
        list(dom.batches(4, start=10, stop=5))
    with pytest.raises(ValueError):
        list(dom.batches(4, stop=dom.size + 1))


@pytest.mark.parametrize("m,k", [(0, None), (3, 1), (6, 2), (8, None)])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000])
def test_shards_partition(m, k, n):
    dom = SparseDomain(m, k)
    shards = [dom.shard(i, n) for i in range(1, n + 1)]
    assert shards[0][0] == 0
    assert shards[-1][1] == dom.size
    for (_, stop), (start, _) in zip(shards, shards[1:]):
        assert stop == start
    for i, (start, stop) in enumerate(shards, start=1):
        assert start == (i - 1) * dom.size // n and stop == i * dom.size // n
        assert start <= stop
    covered = [r for i in range(1, n + 1) for first, a in dom.batches(3, *shards[i - 1])
               for r in range(first, first + len(a))]
    assert covered == list(range(dom.size))


def test_shard_errors():
    dom = SparseDomain(5, 2)
    for i, n in [(0, 4), (5, 4), (1, 0), (-1, 3)]:
        with pytest.raises(ValueError, match="1 <= I <= N"):
            dom.shard(i, n)


@pytest.mark.parametrize("m,k", SMALL)
def test_dense_round_trip(m, k):
    dom = SparseDomain(m, k)
    active = dom.unrank(np.arange(dom.size))
    dense = to_dense(active, m)
    assert dense.dtype == bool and dense.shape == (dom.size, m)
    expected = np.zeros((dom.size, m), dtype=bool)
    for row, subset in enumerate(brute_force(m, k)):
        expected[row, list(subset)] = True
    np.testing.assert_array_equal(dense, expected)
    np.testing.assert_array_equal(dom.dense(active), expected)
    back = from_dense(dense, width=dom.max_weight)
    np.testing.assert_array_equal(back, active)
    auto = from_dense(dense.astype(np.int8))
    assert auto.shape[1] == max(dom.max_weight, 1)
    np.testing.assert_array_equal(dom.rank(auto), np.arange(dom.size))


def test_from_dense_width_rules():
    assert from_dense(np.zeros((2, 3))).tolist() == [[-1], [-1]]
    assert from_dense(np.zeros((0, 3))).shape == (0, 1)
    assert from_dense([[0, 1, 1], [1, 0, 0]]).tolist() == [[1, 2], [0, -1]]
    assert from_dense([[0, 1, 1]], width=4).tolist() == [[1, 2, -1, -1]]
    with pytest.raises(ValueError):
        from_dense([[1, 1, 1]], width=2)
    with pytest.raises(ValueError):
        from_dense([1, 0, 1])
    with pytest.raises(ValueError):
        to_dense([[0, 5]], 5)


def test_bad_arguments():
    with pytest.raises(ValueError):
        SparseDomain(-1, 2)
    with pytest.raises(ValueError):
        SparseDomain(4, -1)
    dom = SparseDomain(6, 2)
    for bad in ([-1], [dom.size], [0, 3, dom.size + 10]):
        with pytest.raises(ValueError, match="out of range"):
            dom.unrank(bad)
    with pytest.raises(ValueError):
        dom.unrank([0.5])
    with pytest.raises(ValueError):
        dom.unrank([[0, 1]])


@pytest.mark.parametrize("active,match", [
    ([[2, 2]], "twice"),
    ([[3, -1, 3]], "twice"),
    ([[0, 6]], "out of range"),
    ([[0, -2]], "out of range"),
    ([[0, 1, 2]], "more than"),
    ([[0, 1, 2, 3, -1]], "more than"),
])
def test_rank_errors(active, match):
    with pytest.raises(ValueError, match=match):
        SparseDomain(6, 2).rank(np.array(active))


def test_rank_rejects_bad_shapes():
    dom = SparseDomain(6, 2)
    with pytest.raises(ValueError):
        dom.rank([1, 2])
    with pytest.raises(ValueError):
        dom.rank([[0.0, 1.0]])


@pytest.mark.parametrize("text,expected", [("1/1", (1, 1)), ("2/8", (2, 8)),
                                           (" 8 / 8 ", (8, 8))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["", "2", "0/8", "9/8", "1/0", "-1/4", "a/b", "1/2/3",
                                  "1.0/2", "1 2", None, 3])
def test_parse_shard_errors(text):
    with pytest.raises(ValueError, match=r"shard must look like I/N with 1 <= I <= N"):
        parse_shard(text)


def test_large_m():
    dom = SparseDomain(4096, 3)
    assert dom.size == 1 + 4096 + math.comb(4096, 2) + math.comb(4096, 3)
    last = dom.unrank([dom.size - 1])
    assert last.tolist() == [[4093, 4094, 4095]]
    assert dom.rank(last).tolist() == [dom.size - 1]
    first3 = dom.weight_offsets()[3]
    assert dom.unrank([first3, first3 - 1]).tolist() == [[0, 1, 2], [4094, 4095, -1]]


def test_too_large_domain():
    dom = SparseDomain(64, None)
    assert dom.size == 2 ** 64
    assert dom.shard(2, 2) == (2 ** 63, 2 ** 64)
    with pytest.raises(DomainTooLargeError):
        dom.unrank([0])
    with pytest.raises(OverflowError):
        list(dom.batches(10))
    with pytest.raises(ValueError):
        dom.rank([[0]])
    assert SparseDomain(62, None).unrank([2 ** 62 - 1]).tolist() == [list(range(62))]


@st.composite
def domains_and_ranks(draw):
    """A random domain with m <= 60, K <= 4 (or None for m <= 12) and ranks inside it."""
    m = draw(st.integers(0, 60))
    k = draw(st.one_of(st.integers(0, 4), st.none())) if m <= 12 else draw(st.integers(0, 4))
    dom = SparseDomain(m, k)
    ranks = draw(st.lists(st.integers(0, dom.size - 1), min_size=1, max_size=20))
    return dom, ranks


@settings(max_examples=300, deadline=None)
@given(domains_and_ranks())
def test_random_round_trip(case):
    dom, ranks = case
    active = dom.unrank(ranks)
    assert active.shape == (len(ranks), dom.max_weight)
    for row in active.tolist():
        real = [c for c in row if c != -1]
        assert row == real + [-1] * (len(row) - len(real))
        assert all(0 <= c < dom.m for c in real)
        assert all(a < b for a, b in zip(real, real[1:]))
        assert len(real) <= dom.max_weight
    np.testing.assert_array_equal(dom.rank(active), ranks)
    expected = [sum(math.comb(dom.m, i) for i in range(len(real)))
                + sum(math.comb(c, i) for i, c in enumerate(real, start=1))
                for real in ([c for c in row if c != -1] for row in active.tolist())]
    assert expected == list(ranks)
