"""Output comparisons and sorted-key lookups shared by the exhaustive paths.

Both the per-input path (verify/exhaustive.py) and the block path (verify/block_check.py)
decide an output the same way, report margins the same way, and look up specification changes
stored as sorted keys row * n_outputs + output.
"""

from __future__ import annotations

import numpy as np

from dsl.semantics import DONT_CARE

MARGIN_FLOOR = 0.5  # margins above this are reported as a bound (pruning keeps the rest)


def margins(spec: np.ndarray, y: np.ndarray, threshold: float) -> np.ndarray:
    """Signed distance to the threshold on the correct side (<= 0 wrong for spec 1, < 0 for 0).

    An output decodes to 1 when y > threshold, so spec 1 needs y - t > 0 and spec 0 needs
    t - y >= 0.
    """
    return np.where(spec == 1, y - threshold, threshold - y)


def is_wrong(spec: np.ndarray, y: np.ndarray, threshold: float) -> np.ndarray:
    return (spec != DONT_CARE) & ((y > threshold) != (spec == 1))


def lookup_sorted(keys: np.ndarray, values: np.ndarray, want: np.ndarray, default: np.ndarray):
    """values at `want` in the sorted `keys`, else `default`."""
    out = np.array(default, copy=True)
    if len(keys) and len(want):
        pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
        hit = keys[pos] == want
        out[hit] = values[pos[hit]]
    return out


def contains_sorted(sorted_keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """bool per query: present in sorted_keys."""
    if len(sorted_keys) == 0:
        return np.zeros(len(query), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, query), len(sorted_keys) - 1)
    return sorted_keys[pos] == query
