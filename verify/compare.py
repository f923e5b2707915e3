"""Output comparisons and sorted-key lookups shared by the exhaustive paths.

Both the per-input path (verify/exhaustive.py) and the block path (verify/block_check.py)
decide an output the same way, report margins the same way, and look up specification changes
stored as sorted keys row * n_outputs + output.
"""

from __future__ import annotations

import numpy as np
import torch

from dsl.semantics import DONT_CARE

MARGIN_FLOOR = 0.5  # margins above this are reported as a bound (pruning keeps the rest)


def decision_threshold(module) -> float:
    """The threshold the module's decision `values > threshold` really compares against.

    torch does not promote a Python (or 0-dim) float against a tensor: the stored float64
    threshold is rounded to the module's dtype first, so a float32 module stored with threshold
    0.99999999999 decides `y > 1.0`. Every verifier decides with this value (a number of the
    module's dtype, so bounds cast to that dtype keep their side of it). The module's own
    `decide` is probed at the value and just above it; a module that decides some other way
    is refused (ValueError) rather than verified against a rule it does not follow.
    """
    t = float(module.threshold)
    dtype = getattr(module, "dtype", torch.float64)
    t_eff = float(torch.as_tensor(t, dtype=dtype))
    decide = getattr(module, "decide", None)
    if decide is not None:
        at = torch.as_tensor([t_eff], dtype=dtype, device=module.device)
        above = torch.nextafter(at, torch.full_like(at, float("inf")))
        below = torch.nextafter(at, torch.full_like(at, -float("inf")))
        got = [bool(decide(v)[0]) for v in (below, at, above)]
        if got != [False, False, True]:
            raise ValueError(f"the module's decision is not `value > {t!r}` in {dtype} "
                             f"(decides {got} just below, at and just above {t_eff!r})")
    return t_eff


def margins(spec: np.ndarray, y: np.ndarray, threshold: float) -> np.ndarray:
    """Signed distance to the threshold on the correct side (<= 0 wrong for spec 1, < 0 for 0).

    An output decodes to 1 when y > threshold, so spec 1 needs y - t > 0 and spec 0 needs
    t - y >= 0.
    """
    return np.where(spec == 1, y - threshold, threshold - y)


def is_wrong(spec: np.ndarray, y: np.ndarray, threshold: float) -> np.ndarray:
    """bool mask: cared specification bits whose read-out `y` is on the wrong side of `threshold`."""
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
