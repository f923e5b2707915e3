"""Exhaustive verification: the network against the reference on EVERY input of the domain.

Both sides are computed as "the all-zero input's outputs, plus the outputs that differ":
`dsl.semantics.evaluate_active` for the specification and `SupModule.forward_delta` for the
network (weights of the real torch module, on its device). For one input, an output that
neither side changes has the baseline values on both sides; since the all-zero input is itself
in the domain, those baseline comparisons are made once. So the cost of an input is what it
touches (k weight columns and the neurons they change), not the number of outputs.

`verify_exhaustive(circuit, module, shard=(i, n))` checks ranks of the shard's part of the
domain (dsl/domain.py order) and returns a report (verify/report.py).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from dsl.domain import SparseDomain
from dsl.semantics import DONT_CARE, evaluate_active

from .progress import progress_bar

DEFAULT_BATCH = 1 << 16


def margins(spec: np.ndarray, y: np.ndarray, threshold: float) -> np.ndarray:
    """Signed distance to the threshold on the correct side (<= 0 wrong for spec 1, < 0 for 0).

    An output decodes to 1 when y > threshold, so spec 1 needs y - t > 0 and spec 0 needs
    t - y >= 0.
    """
    return np.where(spec == 1, y - threshold, threshold - y)


def is_wrong(spec: np.ndarray, y: np.ndarray, threshold: float) -> np.ndarray:
    return (spec != DONT_CARE) & ((y > threshold) != (spec == 1))


class ExhaustiveCheck:
    """Accumulates one pass over (part of) the domain."""

    def __init__(self, circuit, module, max_counterexamples: int):
        self.circuit, self.module = circuit, module
        self.threshold = module.threshold
        self.max_counterexamples = max_counterexamples
        zero = np.full((1, 1), -1, dtype=np.int64)
        ref0 = evaluate_active(circuit, zero)
        net0 = module.forward_delta(zero)
        self.spec_base = ref0.base
        self.net_base = net0.base.double().cpu().numpy()
        cared = self.spec_base != DONT_CARE
        self.base_margin = margins(self.spec_base, self.net_base, self.threshold)[cared]
        self.wrong_base = np.flatnonzero(is_wrong(self.spec_base, self.net_base, self.threshold))
        self.n_out = len(self.spec_base)
        self.base_cared = int(cared.sum())
        self.inputs = self.outputs = self.failing = 0
        self.min_margin = math.inf
        self.counterexamples = []

    def check(self, active: np.ndarray) -> None:
        ref = evaluate_active(self.circuit, active, chunk=len(active))
        net = self.module.forward_delta(torch.as_tensor(active, device=self.module.device))
        n_out = self.n_out
        ref_keys = ref.rows * n_out + ref.outputs                       # few, sorted
        net_keys = net.rows.cpu().numpy() * n_out + net.outputs.cpu().numpy()   # sorted
        net_vals = net.values.double().cpu().numpy()
        # entries the network changed: the spec is a reference change or the baseline
        net_outs = net_keys % n_out
        spec_at_net = _overlay(net_keys, ref_keys, ref.values, self.spec_base[net_outs])
        # reference changes the network did not change: the network has its baseline there
        only_ref = ~_contains(net_keys, ref_keys)
        extra_keys = ref_keys[only_ref]
        extra_outs = ref.outputs[only_ref]
        keys = np.concatenate([net_keys, extra_keys])
        outs = np.concatenate([net_outs, extra_outs])
        spec = np.concatenate([spec_at_net, ref.values[only_ref]])
        y = np.concatenate([net_vals, self.net_base[extra_outs]])
        rows = keys // n_out
        cared = spec != DONT_CARE
        wrong = is_wrong(spec, y, self.threshold)
        if cared.any():
            self.min_margin = min(self.min_margin, float(margins(spec, y, self.threshold)[cared].min()))
        self.inputs += len(active)
        self.outputs += len(active) * self.base_cared + int(
            cared.sum() - (self.spec_base[outs] != DONT_CARE).sum())
        bad_rows = self._failing_rows(rows, outs, wrong, len(active))
        self.failing += len(bad_rows)
        for row in bad_rows[: self.max_counterexamples - len(self.counterexamples)]:
            self._record(active[row], row, rows, outs, wrong, y)

    def _failing_rows(self, rows, outs, wrong, batch) -> np.ndarray:
        bad = np.zeros(batch, dtype=bool)
        bad[rows[wrong]] = True
        if len(self.wrong_base):
            # an output wrong at baseline stays wrong on inputs that do not change it
            covered = np.bincount(rows[np.isin(outs, self.wrong_base)], minlength=batch)
            bad |= covered < len(self.wrong_base)
        return np.flatnonzero(bad)

    def _record(self, active_row, row, rows, outs, wrong, y) -> None:
        sel = rows == row
        changed = dict(zip(outs[sel].tolist(), y[sel].tolist()))
        wrong_outs = set(outs[sel & wrong].tolist())
        wrong_outs |= {o for o in self.wrong_base.tolist() if o not in changed}
        wrong_outs = sorted(wrong_outs)
        names = self.circuit.output_names(wrong_outs[:50])
        features = [int(f) for f in active_row if f >= 0]
        self.counterexamples.append({
            "active": self.circuit.input_names(features),
            "wrong": names,
            "values": {n: changed.get(o, float(self.net_base[o])) for n, o in zip(names, wrong_outs)},
        })

    @property
    def margin(self):
        values = [self.min_margin] + ([float(self.base_margin.min())] if len(self.base_margin) else [])
        best = min(values)
        return None if math.isinf(best) else best


def _contains(sorted_keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """bool per query key: present in sorted_keys."""
    if len(sorted_keys) == 0:
        return np.zeros(len(query), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, query), len(sorted_keys) - 1)
    return sorted_keys[pos] == query


def _overlay(keys, change_keys, change_values, base_values):
    """Values at `keys`: the changed value where a change exists, else the baseline."""
    out = np.array(base_values, dtype=np.float64 if change_values.dtype.kind == "f" else change_values.dtype)
    if len(change_keys):
        pos = np.searchsorted(change_keys, keys)
        pos = np.minimum(pos, len(change_keys) - 1)
        hit = change_keys[pos] == keys
        out[hit] = change_values[pos[hit]]
    return out


def verify_exhaustive(circuit, module, shard=(1, 1), batch: int = DEFAULT_BATCH,
                      max_counterexamples: int = 20, progress: bool = True) -> dict:
    domain = SparseDomain(circuit.n_inputs, circuit.sparsity)
    start_rank, stop_rank = domain.shard(*shard)
    start = time.perf_counter()
    check = ExhaustiveCheck(circuit, module, max_counterexamples)
    with progress_bar(stop_rank - start_rank, "inputs", enabled=progress) as bar:
        for first, active in domain.batches(batch, start_rank, stop_rank):
            check.check(active)
            bar.update(len(active))
    seconds = time.perf_counter() - start
    # one shard alone proves nothing about the whole domain: merge the shards for a verdict
    verified = False if check.failing else (True if shard[1] == 1 else None)
    return {
        "verified": verified, "method": "exhaustive",
        "inputs_checked": check.inputs, "outputs_checked": check.outputs,
        "failing_inputs": check.failing,
        "counterexamples": check.counterexamples, "max_counterexamples": max_counterexamples,
        "min_margin": check.margin, "seconds": round(seconds, 3),
        "inputs_per_second": round(check.inputs / seconds, 1) if seconds > 0 else None,
        "domain_size": domain.size, "shard": {"i": shard[0], "n": shard[1],
                                              "ranks": [start_rank, stop_rank]},
        "complete": shard[1] == 1,
        "device": str(module.device), "dtype": str(module.dtype).replace("torch.", ""),
    }
