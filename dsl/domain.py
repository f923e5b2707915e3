"""The sparse domain of a circuit: every input assignment with at most K active features.

A circuit with m boolean input features is checked (and compiled) on its *sparse domain*: all
assignments in which at most K features are 1 (K=None means no limit, i.e. all 2^m
assignments of the full cube). This module numbers those assignments so that they can be
enumerated in batches, split into shards for parallel checking, and addressed one by one.

An assignment is represented by its sorted list of active features, padded with -1 at the end
to a fixed width (the *padded active* form, an int64 array [N, width]); `to_dense` and
`from_dense` convert to and from 0/1 matrices [N, m].

Order of the domain (the meaning of a rank):

* first by weight, the number j of active features: j = 0, 1, ..., K;
* within weight j, by the colex rank (combinatorial number system) of the sorted active set
  c_1 < c_2 < ... < c_j, namely  colex = sum_{i=1..j} C(c_i, i).

So  rank = sum_{i<j} C(m, i) + colex.  The full cube uses the same order with K = m. For
example with m = 4, K = 2 the ranks 0..10 are  {}, {0}, {1}, {2}, {3}, {0,1}, {0,2}, {1,2},
{0,3}, {1,3}, {2,3}.

`size` is an exact Python int and may exceed int64; enumeration (`rank`, `unrank`, `batches`)
needs ranks to fit in int64 and raises `DomainTooLargeError` (both an OverflowError and a
ValueError) otherwise. `shard` works for any size.
"""

from __future__ import annotations

import math
import operator
import re
from typing import Iterator

import numpy as np

from .nodes import DEFAULT_CARE, INPUT, INPUTS, KEYS, KIND, NAME, TABLE
from .semantics import DONT_CARE, evaluate_active

INT64_MAX = int(np.iinfo(np.int64).max)

_SHARD_RE = re.compile(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*")
_SHARD_MESSAGE = "shard must look like I/N with 1 <= I <= N"


class DomainTooLargeError(OverflowError, ValueError):
    """The domain has more than 2^63 - 1 elements, so its ranks do not fit in int64."""


class _EnumerableDomain:
    """Rank-ordered enumeration shared by SparseDomain and RowDomain: both provide `m`,
    `size`, `max_weight`, `fits_int64` and `unrank`."""

    def _require_int64(self) -> None:
        """Raise DomainTooLargeError when ranks do not fit in int64."""
        if not self.fits_int64:
            raise DomainTooLargeError(
                f"the domain of m={self.m} features with at most {self.max_weight} active has "
                f"{self.size} elements, more than 2^63 - 1: it cannot be enumerated")

    # ------------------------------------------------------------------ enumeration

    def batches(self, batch_size: int, start: int = 0,
                stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (first_rank, active) covering the ranks [start, stop) in order.

        `active` is the padded int64 array [B, K] of ranks first_rank .. first_rank + B - 1;
        every batch has `batch_size` rows except possibly the last. stop=None means `size`.
        """
        batch_size = operator.index(batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        start, stop = self._check_range(start, stop)
        self._require_int64()
        for first in range(start, stop, batch_size):
            last = min(first + batch_size, stop)
            yield first, self.unrank(np.arange(first, last, dtype=np.int64))

    def _check_range(self, start: int, stop: int | None) -> tuple[int, int]:
        """(start, stop) as ints with 0 <= start <= stop <= size, else ValueError."""
        start = operator.index(start)
        stop = self.size if stop is None else operator.index(stop)
        if not 0 <= start <= stop <= self.size:
            raise ValueError(f"need 0 <= start <= stop <= size={self.size}, "
                             f"got start={start}, stop={stop}")
        return start, stop

    def shard(self, i: int, n: int) -> tuple[int, int]:
        """Rank range [start, stop) of the 1-based shard i of n.

        start = floor((i-1) * size / n), stop = floor(i * size / n): the n shards are
        contiguous and partition [0, size) exactly (some are empty when n > size).
        """
        i, n = operator.index(i), operator.index(n)
        if not 1 <= i <= n:
            raise ValueError(f"{_SHARD_MESSAGE}, got {i}/{n}")
        return (i - 1) * self.size // n, i * self.size // n

    def dense(self, active) -> np.ndarray:
        """`to_dense(active, self.m)`: the 0/1 bool matrix [N, m] of padded active arrays."""
        return to_dense(active, self.m)


class SparseDomain(_EnumerableDomain):
    """All assignments of `m` boolean features with at most `k` ones (k=None: all 2^m).

    `k >= m` is the full cube as well. `max_weight` is the effective K (m for the full cube)
    and is the width of the padded active arrays that `unrank` and `batches` return. See the
    module docstring for the order of the ranks.
    """

    def __init__(self, m: int, k: int | None = None):
        m = operator.index(m)
        if m < 0:
            raise ValueError(f"number of features m must be >= 0, got {m}")
        if k is not None:
            k = operator.index(k)
            if k < 0:
                raise ValueError(f"maximum number of active features k must be >= 0, got {k}")
        self.m = m
        self.k = k
        self.max_weight = m if k is None or k >= m else k
        self._counts = [math.comb(m, j) for j in range(self.max_weight + 1)]
        self.size = sum(self._counts)
        self._tables: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ basic facts

    @property
    def is_full(self) -> bool:
        """True when the domain is the whole cube {0,1}^m."""
        return self.max_weight == self.m

    @property
    def fits_int64(self) -> bool:
        """True when every rank (and the size) fits in int64, so enumeration is possible."""
        return self.size <= INT64_MAX

    def weights_count(self) -> list[int]:
        """Number of assignments of each weight: [C(m, j) for j = 0..K]."""
        return list(self._counts)

    def weight_offsets(self) -> list[int]:
        """First rank of each weight j = 0..K, followed by `size` (length K + 2)."""
        offsets = [0]
        for count in self._counts:
            offsets.append(offsets[-1] + count)
        return offsets

    def __repr__(self) -> str:
        return f"SparseDomain(m={self.m}, k={self.k})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseDomain):
            return NotImplemented
        return (self.m, self.max_weight) == (other.m, other.max_weight)

    def __hash__(self) -> int:
        return hash((SparseDomain, self.m, self.max_weight))

    # ------------------------------------------------------------------ tables

    def rank_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(binom, offsets) that `unrank` uses: binom[i, c] = C(c, i) (i = 0..K, c < m) and
        the first rank of each weight followed by `size`, as int64; for unranking elsewhere
        (e.g. on a GPU, verify/tensor_check.py)."""
        return self._get_tables()

    def _get_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(binom, offsets): binom[i, c] = C(c, i) for i = 0..K, c = 0..m-1 and the weight
        offsets as int64 (built once; values are at most `size`, so they fit)."""
        if self._tables is None:
            self._require_int64()
            binom = np.zeros((self.max_weight + 1, self.m), dtype=np.int64)
            binom[0] = 1
            for i in range(1, self.max_weight + 1):
                # C(c, i) = sum_{t < c} C(t, i - 1)
                np.cumsum(binom[i - 1, :-1], out=binom[i, 1:])
            offsets = np.array(self.weight_offsets(), dtype=np.int64)
            self._tables = (binom, offsets)
        return self._tables

    # ------------------------------------------------------------------ unrank

    def unrank(self, ranks) -> np.ndarray:
        """Padded active features of the given ranks: int64 [len(ranks), K], -1 at the end.

        `ranks` is a 1-D array-like of integers (a scalar is taken as one rank), each in
        [0, size); otherwise ValueError.
        """
        binom, offsets = self._get_tables()
        r = self._check_ranks(ranks)
        weight = np.searchsorted(offsets, r, side="right") - 1
        local = r - offsets[weight]
        out = np.full((r.size, self.max_weight), -1, dtype=np.int64)
        if r.size == 0:
            return out
        if np.all(weight[1:] >= weight[:-1]):
            bounds = np.searchsorted(weight, np.arange(self.max_weight + 2))
            for j in range(1, self.max_weight + 1):
                part = slice(bounds[j], bounds[j + 1])
                out[part, :j] = self._colex_unrank(local[part], j, binom)
        else:
            for j in range(1, self.max_weight + 1):
                rows = np.flatnonzero(weight == j)
                out[rows, :j] = self._colex_unrank(local[rows], j, binom)
        return out

    def _check_ranks(self, ranks) -> np.ndarray:
        """Ranks as a 1-D int64 array, after checking they are integers in [0, size)."""
        arr = np.atleast_1d(np.asarray(ranks))
        if arr.ndim != 1:
            raise ValueError(f"ranks must be a 1-D array, got shape {arr.shape}")
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        if arr.dtype.kind not in "iu":
            raise ValueError(f"ranks must be integers, got dtype {arr.dtype}")
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or high >= self.size:
            bad = low if low < 0 else high
            raise ValueError(f"rank {bad} is out of range [0, {self.size}) for {self!r}")
        return arr.astype(np.int64, copy=False)

    @staticmethod
    def _colex_unrank(local: np.ndarray, j: int, binom: np.ndarray) -> np.ndarray:
        """Sorted j-subsets [n, j] with the given colex ranks (greedy, largest element first)."""
        out = np.empty((local.size, j), dtype=np.int64)
        rest = local.copy()
        for i in range(j, 1, -1):
            c = np.searchsorted(binom[i], rest, side="right") - 1
            out[:, i - 1] = c
            rest -= binom[i, c]
        out[:, 0] = rest  # C(c, 1) = c
        return out

    # ------------------------------------------------------------------ rank

    def rank(self, active) -> np.ndarray:
        """Ranks (int64 [N]) of padded active arrays [N, W]; the inverse of `unrank`.

        Entries -1 are padding; each row's real entries may come in any order. A row with an
        entry outside [0, m) (other than -1), a repeated feature, or more than K active
        features raises ValueError.
        """
        binom, offsets = self._get_tables()
        arr = _as_active(active)
        self._check_features(arr)
        valid = arr >= 0
        weight = valid.sum(axis=1)
        if weight.size and int(weight.max()) > self.max_weight:
            row = int(np.argmax(weight))
            raise ValueError(f"row {row} has {int(weight[row])} active features, more than "
                             f"the maximum {self.max_weight} of {self!r}")
        srt = np.sort(np.where(valid, arr, self.m), axis=1)[:, :self.max_weight]
        self._check_duplicates(srt)
        ranks = offsets[weight].copy()
        for col in range(srt.shape[1]):
            c = srt[:, col]
            present = c < self.m
            ranks[present] += binom[col + 1, c[present]]
        return ranks

    def _check_features(self, arr: np.ndarray) -> None:
        """ValueError when an entry is neither -1 nor a feature in [0, m)."""
        bad = (arr != -1) & ((arr < 0) | (arr >= self.m))
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise ValueError(f"feature {int(arr[row, col])} in row {int(row)} is out of range "
                             f"[0, {self.m}) (use -1 for padding)")

    def _check_duplicates(self, srt: np.ndarray) -> None:
        """ValueError when a sorted row (padded with m) repeats a feature."""
        if srt.shape[1] < 2:
            return
        dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] < self.m)
        if dup.any():
            row, col = np.argwhere(dup)[0]
            raise ValueError(f"feature {int(srt[row, col])} appears twice in row {int(row)}")

# ---------------------------------------------------------------------- module functions


def _as_active(active) -> np.ndarray:
    """A padded active array as 2-D int64, after checking its shape and dtype."""
    arr = np.asarray(active)
    if arr.ndim != 2:
        raise ValueError(f"active must be a 2-D array [N, width], got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(arr.shape, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"active features must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and int(arr.max()) > INT64_MAX:
        raise ValueError(f"feature {int(arr.max())} is out of range")
    return arr.astype(np.int64, copy=False)


def to_dense(active, m: int) -> np.ndarray:
    """Bool matrix [N, m] with row r true exactly at the features listed in active[r].

    `active` is a padded active array [N, W] (-1 is padding). Entries outside [0, m) other
    than -1 raise ValueError; repeated features are simply set once.
    """
    m = operator.index(m)
    if m < 0:
        raise ValueError(f"number of features m must be >= 0, got {m}")
    arr = _as_active(active)
    bad = (arr != -1) & ((arr < 0) | (arr >= m))
    if bad.any():
        raise ValueError(f"feature {int(arr[bad][0])} is out of range [0, {m})")
    out = np.zeros((arr.shape[0], m), dtype=bool)
    rows, cols = np.nonzero(arr >= 0)
    out[rows, arr[rows, cols]] = True
    return out


def from_dense(x, width: int | None = None) -> np.ndarray:
    """Padded active array of a 0/1 (or bool) matrix [N, m]: the inverse of `to_dense`.

    Row r lists the columns where x[r] is nonzero, increasing, padded with -1 at the end.
    The width is `width` when given (ValueError if a row has more ones), otherwise the
    largest row weight but at least 1 column (so N rows of no ones give [N, 1] of -1).
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"dense input must be a 2-D array [N, m], got shape {x.shape}")
    nz = x != 0
    weight = nz.sum(axis=1)
    top = int(weight.max()) if weight.size else 0
    if width is None:
        width = max(top, 1)
    else:
        width = operator.index(width)
        if width < top:
            raise ValueError(f"a row has {top} ones, more than width {width}")
    out = np.full((x.shape[0], width), -1, dtype=np.int64)
    rows, cols = np.nonzero(nz)
    starts = np.cumsum(weight) - weight
    out[rows, np.arange(rows.size) - starts[rows]] = cols
    return out


def parse_shard(text: str) -> tuple[int, int]:
    """Parse a shard spec such as "2/8" into (2, 8); ValueError unless 1 <= I <= N."""
    match = _SHARD_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{_SHARD_MESSAGE}, got {text!r}")
    i, n = int(match.group(1)), int(match.group(2))
    if not 1 <= i <= n:
        raise ValueError(f"{_SHARD_MESSAGE}, got {text!r}")
    return i, n


# ---------------------------------------------------------------------- table-rows domains

class RowDomain(_EnumerableDomain):
    """The rows of a lookup table as a domain (sup-language.md: for a table whose default is
    don't care, the domain is its rows), filtered by the sparsity promise.

    The table's w input bits are distinct input features covering all m features; row r is the
    input whose feature `bits[i]` is bit i of `keys[r]`. Ranks follow the sorted keys; the
    interface is SparseDomain's (size, shard, batches, unrank, rank), padded active arrays are
    sorted by feature and `max_weight` wide (at least 1 column).
    """

    kind = "table rows"

    def __init__(self, m: int, bits, keys, k: int | None = None):
        self.m, self.k = operator.index(m), k
        self.bits = np.asarray(bits, dtype=np.int64)
        keys = np.unique(np.asarray(keys, dtype=np.uint64))
        weight = _popcount(keys)
        if k is not None:
            keep = weight <= k
            keys, weight = keys[keep], weight[keep]
        self.keys, self._weight = keys, weight
        self.size = len(keys)
        self.max_weight = int(weight.max()) if len(weight) else 0
        self.table = ""

    fits_int64 = True
    is_full = False

    def __repr__(self) -> str:
        return f"RowDomain(m={self.m}, rows={self.size}, k={self.k})"

    def weights_count(self) -> list[int]:
        """Number of rows of each weight (active features): list indexed 0 .. max_weight."""
        return np.bincount(self._weight, minlength=self.max_weight + 1).tolist()

    def unrank(self, ranks) -> np.ndarray:
        """Padded active features (sorted, -1 at the end) of the rows at `ranks`."""
        r = np.atleast_1d(np.asarray(ranks))
        if r.ndim != 1 or (r.size and r.dtype.kind not in "iu"):
            raise ValueError("ranks must be a 1-D array of integers")
        if r.size and (int(r.min()) < 0 or int(r.max()) >= self.size):
            raise ValueError(f"rank out of range [0, {self.size}) for {self!r}")
        keys = self.keys[r.astype(np.int64)]
        width = max(self.max_weight, 1)
        if not len(keys):
            return np.full((0, width), -1, dtype=np.int64)
        on = ((keys[:, None] >> np.arange(len(self.bits), dtype=np.uint64)) & np.uint64(1)) == 1
        feats = np.where(on, self.bits[None, :], self.m)
        feats.sort(axis=1)
        return _pad_cols(feats[:, :width], width, self.m)

    def rank(self, active) -> np.ndarray:
        """Ranks of padded active arrays; ValueError for an input that is not a row."""
        arr = _as_active(active)
        pos = np.full(self.m + 1, -1, dtype=np.int64)
        pos[self.bits] = np.arange(len(self.bits))
        bit = np.where(arr >= 0, pos[np.where(arr >= 0, arr, self.m)], -1)
        if np.any((arr >= 0) & (bit < 0)):
            raise ValueError("an active feature is not a bit of the table")
        keys = np.where(bit >= 0, np.left_shift(np.uint64(1), np.maximum(bit, 0).astype(np.uint64)),
                        np.uint64(0)).sum(axis=1, dtype=np.uint64)
        ranks = np.searchsorted(self.keys, keys)
        ok = ranks < self.size
        ok[ok] = self.keys[ranks[ok]] == keys[ok]
        if not ok.all():
            raise ValueError(f"row {int(np.flatnonzero(~ok)[0])} is not an input of {self!r}")
        return ranks.astype(np.int64)


def _pad_cols(feats: np.ndarray, width: int, m: int) -> np.ndarray:
    out = np.full((len(feats), width), -1, dtype=np.int64)
    out[:, :feats.shape[1]] = np.where(feats < m, feats, -1)
    return out


def _popcount(keys: np.ndarray) -> np.ndarray:
    count = np.zeros(len(keys), dtype=np.int64)
    rest = keys.copy()
    while rest.any():
        count += (rest & np.uint64(1)).astype(np.int64)
        rest >>= np.uint64(1)
    return count


def verification_domain(circuit):
    """The domain a network for `circuit` must be correct on: a `RowDomain` when the circuit
    reads its inputs only through one table whose default is don't care (and whose input bits
    are all the input features, each once), else the `SparseDomain` of the sparsity promise.

    Exactness of the row domain: the outputs depend on the inputs only through the table's
    bits, which are the (all don't-care) default on every input matching no row, so every
    output has one and the same value on all those inputs; one off-table input is evaluated
    and the row domain is used only if all its outputs are don't care."""
    found = _rows_only_table(circuit)
    if found is None:
        return SparseDomain(circuit.n_inputs, circuit.sparsity)
    key, data = found
    domain = RowDomain(circuit.n_inputs, data[INPUTS], data[KEYS], circuit.sparsity)
    domain.table = data.get(NAME, key)
    return domain


def _rows_only_table(circuit):
    graph, m = circuit.graph, circuit.n_inputs
    tables = [k for k in circuit.signal_nodes if graph.nodes[k][KIND] == TABLE]
    candidates = []
    for key in tables:
        data = graph.nodes[key]
        bits = np.asarray(data[INPUTS], dtype=np.int64)
        if (not data[DEFAULT_CARE].any() and len(bits) == m and len(bits) <= 64
                and np.array_equal(np.sort(bits), np.arange(m))):
            candidates.append(key)
    if len(candidates) != 1 or not circuit.output_nodes:
        return None
    table = candidates[0]
    seen, stack = {table}, list(circuit.output_nodes)
    while stack:                      # every path from an output to an input crosses the table
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if graph.nodes[node][KIND] == INPUT:
            return None
        stack.extend(graph.predecessors(node))
    data = graph.nodes[table]
    off_key = _key_off_table(data[KEYS], len(data[INPUTS]))
    if off_key is not None:
        bits = np.asarray(data[INPUTS], dtype=np.int64)
        on = [int(b) for i, b in enumerate(bits) if (off_key >> i) & 1]
        row = np.array([on or [-1]], dtype=np.int64)
        if not np.all(evaluate_active(circuit, row).dense()[0] == DONT_CARE):
            return None
    return table, data


def _key_off_table(keys: np.ndarray, w: int):
    """The smallest key in [0, 2^w) that is not a row, or None when every key is a row."""
    keys = np.asarray(keys, dtype=np.uint64)
    gaps = np.flatnonzero(keys != np.arange(len(keys), dtype=np.uint64))
    first = int(gaps[0]) if len(gaps) else len(keys)
    return first if first < (1 << w) else None
