"""Vectorized helpers for ragged rows stored as CSR (offsets + flat values).

A gate family with n gates keeps its operands as `offsets` (int64 [n + 1]) and `values`
(int64 [nnz]); gate j reads values[offsets[j]:offsets[j + 1]]. These helpers transform all rows
at once with numpy, never with a Python loop over rows.
"""

from __future__ import annotations

import numpy as np


def lengths(offsets: np.ndarray) -> np.ndarray:
    """Row lengths [n] of CSR `offsets` [n + 1]."""
    return np.diff(offsets)


def offsets_from_lengths(lens: np.ndarray) -> np.ndarray:
    """CSR offsets [n + 1] (starting at 0) of rows with lengths `lens` [n]."""
    out = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=out[1:])
    return out


def uniform(n: int, width: int) -> np.ndarray:
    """Offsets of n rows of the same width."""
    return np.arange(0, n * width + 1, width, dtype=np.int64) if width else np.zeros(n + 1, np.int64)


def row_of_each(offsets: np.ndarray) -> np.ndarray:
    """int64 [nnz]: the row each value belongs to."""
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), lengths(offsets))


def concat_ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """int64: the ranges [starts_i, starts_i + lens_i) one after the other."""
    ends = np.cumsum(lens, dtype=np.int64)
    return np.repeat(np.asarray(starts, dtype=np.int64) - (ends - lens), lens) + np.arange(
        int(ends[-1]) if len(ends) else 0, dtype=np.int64)


def gather_rows(offsets: np.ndarray, values: np.ndarray, rows: np.ndarray):
    """The CSR made of rows `rows` (in that order, repeats allowed)."""
    rows = np.asarray(rows, dtype=np.int64)
    lens = offsets[rows + 1] - offsets[rows]
    return offsets_from_lengths(lens), values[concat_ranges(offsets[rows], lens)]


def filter_values(offsets: np.ndarray, values: np.ndarray, keep: np.ndarray):
    """Drop the values where keep is False, keeping row boundaries."""
    rows = row_of_each(offsets)[keep]
    lens = np.bincount(rows, minlength=len(offsets) - 1)
    return offsets_from_lengths(lens), values[keep]


def sort_within_rows(offsets: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values sorted ascending inside each row (row boundaries unchanged)."""
    rows = row_of_each(offsets)
    return values[np.lexsort((values, rows))]


def first_of_run(offsets: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """bool [nnz]: True where a value differs from the previous value of its row."""
    first = np.ones(len(sorted_values), dtype=bool)
    if len(sorted_values) > 1:
        first[1:] = sorted_values[1:] != sorted_values[:-1]
    first[offsets[:-1][lengths(offsets) > 0]] = True
    return first


def row_sum(offsets: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sum of each row (empty rows give 0), with wrapping arithmetic for unsigned values."""
    cumulative = np.zeros(len(values) + 1, dtype=values.dtype)
    with np.errstate(over="ignore"):
        np.cumsum(values, out=cumulative[1:])
        return cumulative[offsets[1:]] - cumulative[offsets[:-1]]


def row_any(offsets: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """bool [n]: whether any of each row's `flags` is set."""
    return row_sum(offsets, flags.astype(np.int64)) > 0


def rows_equal(off_a, val_a, rows_a, off_b, val_b, rows_b) -> np.ndarray:
    """bool [len(rows_a)]: row rows_a[i] of A equals row rows_b[i] of B."""
    len_a = off_a[rows_a + 1] - off_a[rows_a]
    len_b = off_b[rows_b + 1] - off_b[rows_b]
    same = len_a == len_b
    if not same.any():
        return same
    cand = np.flatnonzero(same)
    oa, va = gather_rows(off_a, val_a, rows_a[cand])
    ob, vb = gather_rows(off_b, val_b, rows_b[cand])
    mismatch = row_any(oa, va != vb)
    same[cand[mismatch]] = False
    return same
