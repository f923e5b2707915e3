"""Sampling for domains too large to enumerate. Never reports "verified".

Two samplers, half the budget each:
* uniform: ranks drawn uniformly from the whole domain (dsl/domain.py), so the failure rate
  estimate is about the domain's uniform distribution;
* aimed: inputs that share features with an output's support (the input features in its
  circuit cone): pick an output, activate a random non-empty subset of its support (up to K),
  fill the rest of the budget with random features. These hit the cases where an output
  should fire or nearly fires, which uniform sampling at large m almost never does.

The report gives the failures found (replayed counterexamples, same checker as exhaustive) and
an exact one-sided Clopper-Pearson upper confidence bound on the uniform failure rate.
"""

from __future__ import annotations

import time

import numpy as np

from dsl.domain import RowDomain, verification_domain
from dsl.sampling import uniform_inputs, upper_bound  # noqa: F401  (part of this module's API)

from .cones import SignalIndex, signal_cone
from .exhaustive import ExhaustiveCheck
from .progress import progress_bar
from .report import returns_report


def aimed_inputs(circuit, count: int, rng) -> np.ndarray:
    """`count` padded active-feature lists aimed at random outputs' supports (module docstring)."""
    m, k = circuit.n_inputs, circuit.sparsity if circuit.sparsity is not None else circuit.n_inputs
    width = min(k, m)              # sparsity 0: only the all-zero input is in the domain
    index = SignalIndex(circuit)
    drivers = circuit.output_drivers
    out = np.full((count, max(width, 1)), -1, dtype=np.int64)
    support_cache = {}
    for i in range(count):
        o = int(rng.integers(len(drivers))) if len(drivers) else 0
        if o not in support_cache:
            cone = signal_cone(index, int(drivers[o])) if len(drivers) else []
            support_cache[o] = np.array([s for s in cone if s < m], dtype=np.int64)
        support = support_cache[o]
        chosen = set()
        if len(support) and width:
            take = int(rng.integers(1, min(width, len(support)) + 1))
            chosen.update(rng.choice(support, size=take, replace=False).tolist())
        extra = int(rng.integers(0, width - len(chosen) + 1)) if width > len(chosen) else 0
        target = min(width, len(chosen) + extra)
        while len(chosen) < target:
            chosen.add(int(rng.integers(m)))
        row = sorted(chosen)[:width]
        out[i, :len(row)] = row
    return out


@returns_report
def verify_sample(circuit, module, samples: int = 100_000, seed: int = 0, batch: int = 1 << 14,
                  confidence: float = 0.95, max_counterexamples: int = 20,
                  progress: bool = True) -> dict:
    """Check `module` on random inputs of the domain, half uniform and half aimed.

    Args:
        circuit: the reference circuit.
        module: the torch module (SupModule or ConditionalModule).
        samples: total inputs; seed: the random seed; batch: inputs per batch.
        confidence: level of the Clopper-Pearson bound on the uniform failure rate.
        max_counterexamples: how many replayed counterexamples to keep.
        progress: show a progress bar.
    Returns:
        The report: `verified` False when an input fails, else None (sampling never proves),
        failures per sampler, `error_rate_upper_bound`, `min_margin`, counterexamples.
    """
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    domain = verification_domain(circuit)     # the sparse domain, or a table's rows
    n_uniform = samples - samples // 2
    results = {}
    aimed = ((lambda n: uniform_inputs(domain, n, rng)) if isinstance(domain, RowDomain)
             else (lambda n: aimed_inputs(circuit, n, rng)))   # off a table's rows: don't care
    with progress_bar(samples, "inputs", enabled=progress) as bar:
        for name, count, make in (("uniform", n_uniform, lambda n: uniform_inputs(domain, n, rng)),
                                  ("aimed", samples // 2, aimed)):
            check = ExhaustiveCheck(circuit, module, max_counterexamples)
            done = 0
            while done < count:
                n = min(batch, count - done)
                check.check(make(n))
                done += n
                bar.update(n)
            results[name] = check
    uni, aim = results["uniform"], results["aimed"]
    failing = uni.failing + aim.failing
    margins = [m[0] for m in (uni.margin, aim.margin) if m[0] is not None]
    return {
        "verified": False if failing else None, "method": "sample",
        "inputs_checked": uni.inputs + aim.inputs, "outputs_checked": uni.outputs + aim.outputs,
        "failing_inputs": failing,
        "counterexamples": (uni.counterexamples + aim.counterexamples)[:max_counterexamples],
        "min_margin": min(margins) if margins else None,
        "uniform_samples": uni.inputs, "uniform_failures": uni.failing,
        "aimed_samples": aim.inputs, "aimed_failures": aim.failing,
        "error_rate_upper_bound": upper_bound(uni.failing, uni.inputs, confidence),
        "confidence": confidence, "domain_size": domain.size,
        "note": "sampling never proves correctness; the bound is on the failure rate of a "
                "uniformly random input of the domain",
        "seconds": round(time.perf_counter() - start, 3), "seed": seed,
    }
