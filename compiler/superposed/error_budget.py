"""Measured error of a channel assignment, for `--max-error RATE` (approximate superposition).

Definition. The *error rate* of a network is the fraction of the inputs of the sparse domain
(every input with at most K active features, each counted once: the uniform distribution on
the domain) on which at least one output is wrong. This is the quantity that
`sup verify --method exhaustive` counts (`failing_inputs / domain_size`) and that
`--method sample` bounds (Clopper-Pearson on its uniform half). Outputs compiled densely are
exact and never contribute.

Measurement. `channels.failing_outputs` names exactly the outputs that are wrong on some input.
Output j's value depends only on the active features inside U_j, the union of the listen sets
of its channel (its operands are in U_j too). Let U be the union of U_j over the failing
outputs J and u = |U|. Whether an input S is wrong depends only on its *core* S & U, so

    failing inputs = sum over cores c (subsets of U, |c| <= K) that are wrong for some j in J
                     of the number of ways to add at most K - |c| features outside U
                   = sum_c  sum_{r=0}^{K-|c|} C(m - u, r).

* exact: when the cores (C(u, <= K) of them) times the neurons of J's channels fit a budget,
  every core is evaluated with integer arithmetic (h_i = relu(|L_i & c| - theta_i), output
  says 1 iff sum_{i in C_j} h_i >= t_j, specification |c & F_j| >= k_j) and the count above
  is exact; the rate is exact.
* sampled: otherwise, uniform inputs of the whole domain (verify/sample.py's sampler) are
  evaluated on J's channels only, and the report gives the failure fraction and the exact
  one-sided Clopper-Pearson upper bound at 95% (verify/sample.py). The search compares this
  *upper bound* with RATE, so a sampled network is accepted only when the bound is within it.

No assignment with failing outputs is ever called exact: the network's meta records the rate,
how it was measured, and the failing outputs, and every verifier still reports the failures.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from dsl import csr
from dsl.domain import SparseDomain

from .channels import Assignment, ChannelSpec, failing_outputs, listen_sets

EXACT_CELLS = 300_000_000      # cores x channel neurons evaluated exactly at most
SAMPLES = 200_000
CONFIDENCE = 0.95
BATCH = 1 << 15


@dataclass
class ErrorMeasure:
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
        return {k: v for k, v in asdict(self).items() if v is not None}


def measure_error(spec: ChannelSpec, a: Assignment, failing=None, listen=None,
                  exact_cells: int = EXACT_CELLS, samples: int = SAMPLES,
                  seed: int = 0) -> ErrorMeasure:
    """The error rate of assignment `a` (definition above), exact or sampled."""
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
    from dsl.sampling import uniform_inputs, upper_bound
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
