"""Reproducible random constants of the language: `pairs(N, COUNT, seed=S)` and `perm(N, seed=S)`.

The language promises the same pairs and permutations on every machine and version, so these do
not use numpy's generators (whose streams may change between releases). They use SplitMix64, a
fixed 64-bit mixing function, evaluated on counters with numpy's wrapping uint64 arithmetic.
"""

from __future__ import annotations

import numpy as np

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(seed: int, start: int, count: int) -> np.ndarray:
    """uint64 [count]: outputs start .. start+count-1 of the SplitMix64 stream of `seed`."""
    with np.errstate(over="ignore"):
        state = np.uint64(seed & 0xFFFFFFFFFFFFFFFF) + _GAMMA * (
            np.arange(start + 1, start + count + 1, dtype=np.uint64))
        z = state
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def pair_count(n: int) -> int:
    """C(n, 2): the number of unordered pairs of n items."""
    return n * (n - 1) // 2


def unrank_pairs(ranks: np.ndarray) -> np.ndarray:
    """int64 [len, 2] pairs (u, v), u < v, of the colex ranks C(v, 2) + u."""
    ranks = np.asarray(ranks, dtype=np.int64)
    v = ((1 + np.sqrt(1 + 8 * ranks.astype(np.float64))) // 2).astype(np.int64)
    # float rounding can be off by one either way near perfect squares: correct exactly
    v -= (v * (v - 1) // 2 > ranks)
    v += ((v + 1) * v // 2 <= ranks)
    u = ranks - v * (v - 1) // 2
    return np.stack([u, v], axis=1)


def pairs(n: int, count: int, seed: int) -> np.ndarray:
    """`count` distinct pairs (u, v), 0 <= u < v < n, sorted by (u, v), as int64 [count, 2].

    The chosen set is the first `count` distinct values of the stream r_i mod C(n, 2) (i = 0, 1,
    ...), or, when `count` is more than a quarter of all pairs, the `count` pairs with the
    smallest keys r_rank (a uniform random subset). Either way a pure function of the arguments.
    """
    total = pair_count(n)
    if count < 0 or count > total:
        raise ValueError(f"pairs({n}, {count}): there are only {total} pairs of {n} features")
    if count == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if 4 * count >= total:
        keys = splitmix64(seed, 0, total)
        ranks = np.argsort(keys, kind="stable")[:count]
    else:
        ranks = _first_distinct(seed, total, count)
    chosen = unrank_pairs(ranks)
    return chosen[np.lexsort((chosen[:, 1], chosen[:, 0]))]


def _first_distinct(seed: int, total: int, count: int) -> np.ndarray:
    drawn = 0
    chunk = count + count // 2 + 16
    stream = np.zeros(0, dtype=np.int64)
    while True:
        fresh = (splitmix64(seed, drawn, chunk) % np.uint64(total)).astype(np.int64)
        drawn += chunk
        stream = np.concatenate([stream, fresh])
        values, first = np.unique(stream, return_index=True)
        if len(values) >= count:
            keep = np.sort(first)[:count]
            return stream[keep]
        chunk = 2 * (count - len(values)) + 16


def perm(n: int, seed: int) -> np.ndarray:
    """A permutation of 0 .. n-1 as int64 [n]: the order of the stream's first n outputs."""
    if n < 0:
        raise ValueError(f"perm({n}): the size must not be negative")
    return np.argsort(splitmix64(seed, 0, n), kind="stable").astype(np.int64)
