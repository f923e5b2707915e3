"""Uniform sampling of an input domain and a one-sided confidence bound on a failure rate.

Used by the sampling verifier (verify/sample.py) and by the compiler's measured error budget
(compiler/superposed/error_budget.py), which is why it lives below both.
"""

from __future__ import annotations

import math

import numpy as np

from .domain import RowDomain, SparseDomain


def _log_binom_cdf(x: int, n: int, p: float) -> float:
    """log P[Bin(n, p) <= x]."""
    if p <= 0:
        return 0.0
    if p >= 1:
        return 0.0 if x >= n else -math.inf
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
             + i * math.log(p) + (n - i) * math.log1p(-p) for i in range(x + 1)]
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


def upper_bound(failures: int, n: int, confidence: float = 0.95) -> float:
    """Clopper-Pearson: the largest p with P[Bin(n, p) <= failures] >= 1 - confidence."""
    if n == 0:
        return 1.0
    if failures >= n:
        return 1.0
    target = math.log(1 - confidence)
    lo, hi = failures / n, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if _log_binom_cdf(failures, n, mid) > target:
            lo = mid
        else:
            hi = mid
    return hi


def uniform_inputs(domain: SparseDomain | RowDomain, count: int, rng) -> np.ndarray:
    """int64 [count, w]: inputs drawn uniformly from the domain (active features, -1 padded)."""
    if domain.size == 0:                     # a table whose rows all break the sparsity promise
        return np.full((0, max(domain.max_weight, 1)), -1, dtype=np.int64)
    if domain.fits_int64:
        ranks = rng.integers(0, domain.size, size=count, dtype=np.int64)
        return domain.unrank(ranks)
    # huge domains: weight by C(m, j), then a uniform j-subset
    weights = np.array([float(w) for w in domain.weights_count()])
    sizes = rng.choice(len(weights), size=count, p=weights / weights.sum())
    out = np.full((count, max(domain.max_weight, 1)), -1, dtype=np.int64)
    for i, j in enumerate(sizes):
        out[i, :j] = np.sort(rng.choice(domain.m, size=j, replace=False))
    return out
