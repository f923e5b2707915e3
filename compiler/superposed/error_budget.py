"""Measured error of a channel assignment, for `--max-error RATE` (approximate superposition).

The error rate is the fraction of the sparse domain's inputs on which some output is wrong.
`measure_error` computes it exactly (counting over the cores of the failing outputs' listen
sets) or bounds it by sampling (Clopper-Pearson, 95%); `within` says whether an assignment's
rate (or its upper bound) is within the budget. The result is an `ErrorMeasure`.

Derivation: docs/proofs/error-budget.md
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from dsl import csr
from dsl.domain import SparseDomain
from dsl.sampling import uniform_inputs, upper_bound

from .channels import Assignment, ChannelSpec, failing_outputs, listen_sets

EXACT_CELLS = 300_000_000      # cores x channel neurons evaluated exactly at most
SAMPLES = 200_000
CONFIDENCE = 0.95
BATCH = 1 << 15


@dataclass
class ErrorMeasure:
    """A measured error rate: exact or sampled (with its Clopper-Pearson upper bound), and what it counted."""
    failing_outputs: int
    outputs: int
    domain_size: int
    how: str                     # "exact" or "sampled"
    rate: float                  # exact rate, or the sampled failure fraction
    upper: float                 # = rate when exact; Clopper-Pearson upper bound when sampled
    failing_inputs: int | None = None    # exact count (exact only)
    samples: int | None = None
    sample_failures: int | None = None
    confidence: float | None = None

    def as_dict(self) -> dict:
        """The fields that are set, as a dict (for the network's meta)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def measure_error(spec: ChannelSpec, a: Assignment, failing=None, listen=None,
                  exact_cells: int = EXACT_CELLS, samples: int = SAMPLES,
                  seed: int = 0) -> ErrorMeasure:
    """The error rate of assignment `a` (definition: docs/proofs/error-budget.md), exact or sampled."""
    if listen is None:
        listen = listen_sets(spec, a)
    if failing is None:
        failing = failing_outputs(spec, a, listen)
    domain = SparseDomain(spec.m, spec.sparsity)
    base = dict(failing_outputs=int(len(failing)), outputs=int(spec.n_outputs),
                domain_size=int(domain.size))
    if len(failing) == 0:
        return ErrorMeasure(**base, how="exact", rate=0.0, upper=0.0, failing_inputs=0)
    sub = _SubNetwork(spec, a, listen, np.asarray(failing, dtype=np.int64))
    cores = SparseDomain(len(sub.universe), spec.sparsity)
    if cores.fits_int64 and cores.size * max(sub.n_neurons, 1) <= exact_cells:
        count = _exact_count(sub, cores, spec.m, spec.sparsity)
        rate = count / domain.size
        return ErrorMeasure(**base, how="exact", rate=rate, upper=rate, failing_inputs=int(count))
    return _sampled(sub, domain, samples, seed, base)


class _SubNetwork:
    """The channels of the failing outputs J only, over the features U they listen to."""

    def __init__(self, spec, a, listen, failing):
        l_off, l_feat = listen
        c_off, c_neu = csr.gather_rows(a.c_offsets, a.c_neurons, failing)
        neurons, local = np.unique(c_neu, return_inverse=True)
        n_off, n_feat = csr.gather_rows(l_off, l_feat, neurons)
        f_off, f_feat = csr.gather_rows(spec.f_offsets, spec.f_features, failing)
        self.universe = np.unique(np.concatenate([n_feat, f_feat]))
        self.n_neurons = len(neurons)
        u = len(self.universe)
        self.position = np.full(spec.m + 1, u, dtype=np.int64)   # feature -> row; -1 -> u
        self.position[self.universe] = np.arange(u)
        # listen[row, neuron] and operands[row, output], with an all-zero row u for padding
        self.listen = np.zeros((u + 1, len(neurons)), dtype=np.int16)
        self.listen[self.position[n_feat], csr.row_of_each(n_off)] = 1
        self.operands = np.zeros((u + 1, len(failing)), dtype=np.int16)
        np.add.at(self.operands, (self.position[f_feat], csr.row_of_each(f_off)), 1)
        self.theta = a.neuron_k[neurons].astype(np.int64) - 1
        self.incidence = np.zeros((len(neurons), len(failing)), dtype=np.int64)
        np.add.at(self.incidence, (local.reshape(-1), csr.row_of_each(c_off)), 1)
        self.t = csr.lengths(c_off)
        self.k = spec.k[failing]

    def wrong(self, rows: np.ndarray) -> np.ndarray:
        """bool [B]: some failing output is wrong on the input whose U-rows are `rows` [B, K]."""
        counts = self.listen[rows].sum(axis=1, dtype=np.int64)          # [B, neurons]
        h = np.maximum(counts - self.theta[None, :], 0)
        says = h @ self.incidence >= self.t[None, :]
        truth = self.operands[rows].sum(axis=1, dtype=np.int64) >= self.k[None, :]
        return (says != truth).any(axis=1)


def _exact_count(sub: _SubNetwork, cores: SparseDomain, m: int, sparsity) -> int:
    u = len(sub.universe)
    k = cores.max_weight
    outside = m - u
    extend = [sum(math.comb(outside, r) for r in range(sparsity - w + 1)) if sparsity is not None
              else 2 ** outside for w in range(k + 1)]
    total = 0
    for start in range(0, cores.size, BATCH):
        ranks = np.arange(start, min(start + BATCH, cores.size), dtype=np.int64)
        local = cores.unrank(ranks)
        rows = np.where(local < 0, u, local)
        bad = sub.wrong(rows)
        if bad.any():
            weights = (local[bad] >= 0).sum(axis=1)
            total += sum(extend[w] * int(c) for w, c in enumerate(np.bincount(weights, minlength=k + 1)))
    return total


def _sampled(sub: _SubNetwork, domain: SparseDomain, samples: int, seed: int, base) -> ErrorMeasure:
    rng = np.random.default_rng(seed)
    failures = 0
    for start in range(0, samples, BATCH):
        active = uniform_inputs(domain, min(BATCH, samples - start), rng)
        failures += int(sub.wrong(sub.position[np.where(active < 0, -1, active)]).sum())
    return ErrorMeasure(**base, how="sampled", rate=failures / max(samples, 1),
                        upper=upper_bound(failures, samples, CONFIDENCE), samples=samples,
                        sample_failures=failures, confidence=CONFIDENCE)


def within(spec: ChannelSpec, a: Assignment, left: int, max_error: float | None, **kw) -> bool:
    """Acceptance in the width search: exact, or (with a budget) measured error <= max_error."""
    if left == 0:
        return True
    if max_error is None or left > max(1, spec.n_outputs // 4):
        return False             # (a search shortcut: a quarter of the outputs failing is hopeless)
    return measure_error(spec, a, **kw).upper <= max_error
