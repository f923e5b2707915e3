"""Exhaustive verification: the network against the reference on EVERY input of the domain.

Both sides are computed as "the all-zero input's outputs, plus the outputs that differ":
`dsl.semantics.evaluate_active` for the specification and `SupModule.forward_delta` for the
network (weights of the real torch module, on its device). For one input, an output that
neither side changes has the baseline values on both sides; since the all-zero input is itself
in the domain, those baseline comparisons are made once. So the cost of an input is what it
touches (k weight columns and the neurons they change), not the number of outputs.

`verify_exhaustive(circuit, module, shard=(i, n))` checks ranks of the shard's part of the
domain (dsl/domain.py order) and returns a report (verify/report.py). The domain is
`dsl.domain.verification_domain(circuit)`: the sparse domain of the sparsity promise, or the
rows of a table whose default is don't care (report field `domain`: "table rows"). Conditional
networks (backends/tree_module.py) run the same checks: dense read-out values from
`forward_active`, or the delta form (`forward_delta`) when they have many outputs.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from backends import SupModule
from dsl.domain import verification_domain
from dsl.semantics import DONT_CARE, evaluate_active

from .compare import MARGIN_FLOOR, contains_sorted as _contains, is_wrong, lookup_sorted, margins  # noqa: F401
from .compare import decision_threshold
from .block_check import BlockCheck, domain_blocks, integer_network
from .coded_check import (CodedCheck, affine_readout_problem, coded_problem, prefers_coded,
                          run_coded, sample_inputs)
from .dense_check import delta_cost, dense_cost, readout_for
from .progress import progress_bar
from .smt import module_layers, rounding_bounds
from .smt_tree import dyadic_scale
from .report import returns_report
from .tensor_check import TensorCheck, device_unrank, tensor_applies

# how the exhaustive check evaluates inputs
PATHS = ("auto", "blocks", "coded", "delta", "dense", "tensor")

DEFAULT_BATCH = 1 << 16


class ExhaustiveCheck:
    """Accumulates one pass over (part of) the domain."""

    def __init__(self, circuit, module, max_counterexamples: int):
        self.circuit, self.module = circuit, module
        self.threshold = decision_threshold(module)   # as the module's `decide` compares
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
        self._bound_cache = None
        self.dense = None
        if delta_problem(module):     # the event-driven queries would not be the module's values
            self.dense = readout_for(module)

    def _bounds(self):
        """Read-out entries worth returning: those that can be wrong or lower the margin.

        With floor = max(0, min(smallest margin so far, MARGIN_FLOOR)), an output that is 0 at
        baseline matters only where y >= t - floor, an output that is 1 only where
        y <= t + floor; every other entry decodes correctly with margin > floor, so pruning it
        changes no decision, and the minimum margin is exact whenever it is at most
        MARGIN_FLOOR (otherwise the report gives MARGIN_FLOOR as a lower bound).
        """
        floor = max(0.0, min(self.min_margin, MARGIN_FLOOR))
        if self._bound_cache is None or self._bound_cache[0] != floor:
            t = self.threshold
            upper = np.where(self.spec_base == 0, np.nextafter(t - floor, -math.inf), math.inf)
            lower = np.where(self.spec_base == 1, t + floor, -math.inf)
            dev, dt = self.module.device, self.module.dtype
            self._bound_cache = (floor, torch.as_tensor(lower, dtype=dt, device=dev),
                                 torch.as_tensor(upper, dtype=dt, device=dev))
        return self._bound_cache[1], self._bound_cache[2]

    def choose_path(self, sample: np.ndarray) -> str:
        """'dense' read-out or 'delta' (event-driven), whichever is estimated cheaper."""
        if self.dense is not None:    # chosen already (`delta_problem`)
            return "dense"
        if not isinstance(self.module, SupModule):   # a forest (backends/tree_module.py)
            if self.module.prefers_delta:
                return "delta"
            self.dense = readout_for(self.module)
            return "dense"
        if any(not layer.relu for layer in self.module.layers()[:-1]):
            # a linear layer before the read-out (coded inputs / outputs, compiler/codes.py)
            # changes every code coordinate: nothing stays sparse for the event-driven path.
            # Decided from the module's layers, not from the compiler's bookkeeping (meta).
            self.dense = readout_for(self.module)
            return "dense"
        sample_t = torch.as_tensor(sample, device=self.module.device)
        if dense_cost(self.module) < delta_cost(self.module, sample_t):
            self.dense = readout_for(self.module)
            return "dense"
        return "delta"

    def check(self, active: np.ndarray) -> None:
        if self.dense is not None:
            step = self.dense.step(self.n_out)
            for start in range(0, len(active), step):
                self._check_dense(active[start:start + step])
            return
        n_out, batch = self.n_out, len(active)
        ref = evaluate_active(self.circuit, active, chunk=batch)
        # exact read-out wherever the spec changes, and for outputs wrong at baseline
        q_rows, q_outs = ref.rows, ref.outputs
        if len(self.wrong_base):
            q_rows = np.concatenate([q_rows, np.repeat(np.arange(batch), len(self.wrong_base))])
            q_outs = np.concatenate([q_outs, np.tile(self.wrong_base, batch)])
        q_keys, first = np.unique(q_rows * n_out + q_outs, return_index=True)
        q_rows, q_outs = q_keys // n_out, q_keys % n_out
        dev = self.module.device
        lower, upper = self._bounds()
        net = self.module.forward_delta(
            torch.as_tensor(active, device=dev), lower=lower, upper=upper,
            queries=(torch.as_tensor(q_rows, device=dev), torch.as_tensor(q_outs, device=dev)))
        q_y = net.query_values.double().cpu().numpy()
        q_spec = _overlay(q_keys, ref.rows * n_out + ref.outputs, ref.values, self.spec_base[q_outs])
        kept_keys = net.rows.cpu().numpy() * n_out + net.outputs.cpu().numpy()
        fresh = ~_contains(q_keys, kept_keys)                 # kept entries not queried
        kept_keys = kept_keys[fresh]
        kept_y = net.values.double().cpu().numpy()[fresh]
        keys = np.concatenate([q_keys, kept_keys])
        outs = keys % n_out
        spec = np.concatenate([q_spec, self.spec_base[kept_keys % n_out]])
        y = np.concatenate([q_y, kept_y])
        rows = keys // n_out
        cared = spec != DONT_CARE
        wrong = is_wrong(spec, y, self.threshold)
        if cared.any():
            self.min_margin = min(self.min_margin, float(margins(spec, y, self.threshold)[cared].min()))
        self.inputs += batch
        self.outputs += batch * self.base_cared + int(
            (q_spec != DONT_CARE).sum() - (self.spec_base[q_outs] != DONT_CARE).sum())
        bad_rows = np.unique(rows[wrong])
        self.failing += len(bad_rows)
        for row in bad_rows[: self.max_counterexamples - len(self.counterexamples)]:
            self._record(active[row], row, rows, outs, wrong, y)

    def _check_dense(self, active: np.ndarray) -> None:
        ref = evaluate_active(self.circuit, active, chunk=len(active))
        rows, outs, y, margin, cared = self.dense.compare(active, self.spec_base, ref,
                                                          self.threshold)
        self.min_margin = min(self.min_margin, margin)
        self.inputs += len(active)
        self.outputs += cared
        bad_rows = np.unique(rows)
        self.failing += len(bad_rows)
        wrong = np.ones(len(rows), dtype=bool)
        for row in bad_rows[: self.max_counterexamples - len(self.counterexamples)]:
            self._record(active[row], row, rows, outs, wrong, y)

    def _record(self, active_row, row, rows, outs, wrong, y) -> None:
        sel = (rows == row) & wrong
        wrong_outs = outs[sel][:50].tolist()
        names = self.circuit.output_names(wrong_outs)
        features = [int(f) for f in active_row if f >= 0]
        self.counterexamples.append({
            "active": self.circuit.input_names(features),
            "wrong": names,
            "values": dict(zip(names, y[sel][:50].tolist())),
        })

    @property
    def margin(self):
        """(minimum margin, exact?): exact when at most MARGIN_FLOOR, else a lower bound."""
        values = [self.min_margin] + ([float(self.base_margin.min())] if len(self.base_margin) else [])
        best = min(values)
        if math.isinf(best):
            return None, True
        if best <= MARGIN_FLOOR or self.dense is not None:
            return best, True
        return MARGIN_FLOOR, False


def delta_problem(module) -> str:
    """Why the event-driven forward's exact read-out queries (backends/delta.py `_query`) would
    not be the module's values, or '' when they are: they add the last hidden layer's changes
    to the read-out's baseline, so they assume an affine read-out (a stored relu flag on it
    would be skipped) that reads distinct hidden units in sorted order (not input columns,
    which an input map may list in any order, or twice). Such modules are checked on the dense
    path, with the module's own forward_active (verify/dense_check.py `readout_for`)."""
    if not isinstance(module, SupModule):       # a forest: its own event-driven engine
        return ""
    return affine_readout_problem(module.layers())


def _overlay(keys, change_keys, change_values, base_values):
    """Values at `keys`: the changed value where a change exists, else the baseline."""
    kind = np.float64 if change_values.dtype.kind == "f" else change_values.dtype
    return lookup_sorted(change_keys, change_values, keys, np.asarray(base_values, dtype=kind))


@returns_report
def verify_exhaustive(circuit, module, shard=(1, 1), batch: int = DEFAULT_BATCH,
                      max_counterexamples: int = 20, progress: bool = True,
                      path: str = "auto") -> dict:
    """Check every input of the shard; `path`: 'blocks', 'coded', 'delta', 'dense', 'tensor' or
    'auto'.

    auto takes, on a GPU, the tensor path (verify/tensor_check.py: dense blocks exact in low
    precision) where it applies; else the coded path (verify/coded_check.py: a linear layer
    before a sparse read-out, coded outputs) where it applies; else the block path
    (verify/block_check.py) where it applies (one-hidden-layer integer networks on a sparse
    domain), else the cheaper of dense and delta."""
    domain = verification_domain(circuit)       # the sparse domain, or a table's rows
    start_rank, stop_rank = domain.shard(*shard)
    start = time.perf_counter()
    if path == "tensor" or (path == "auto" and module.device.type == "cuda"):
        why = tensor_applies(module, circuit, domain)
        if not why:
            return _verify_tensor(circuit, module, domain, shard, max_counterexamples,
                                  progress, start)
        if path == "tensor":
            raise ValueError(f"the tensor path does not apply: {why}")
    if path == "coded" or (path == "auto" and prefers_coded(module)):
        if coded_problem(module):
            raise ValueError(f"the coded path does not apply: {coded_problem(module)}")
        coded = CodedCheck(circuit, module, max_counterexamples)
        coded.choose_level(sample_inputs(domain, 0, domain.size))   # same in every shard
        # auto: only where it beats the dense read-out (few outputs: dense is cheaper)
        if path == "coded" or coded.seconds_per_input() < dense_cost(module):
            return _verify_coded(circuit, module, domain, shard, coded, progress, start)
    if path in ("auto", "blocks"):
        net, why = integer_network(module, circuit, domain)
        if net is not None:
            return _verify_blocks(circuit, module, net, domain, shard, max_counterexamples,
                                  progress, start)
        if path == "blocks":
            raise ValueError(f"the block path does not apply: {why}")
    check = ExhaustiveCheck(circuit, module, max_counterexamples)
    sample_ranks = np.linspace(start_rank, max(start_rank, stop_rank - 1),
                               num=min(256, max(stop_rank - start_rank, 1))).astype(np.int64)
    if path == "delta" and delta_problem(module):
        raise ValueError(f"the delta path does not apply: {delta_problem(module)}")
    path = check.choose_path(domain.unrank(np.unique(sample_ranks))) if path == "auto" else path
    if path == "dense" and check.dense is None:
        check.dense = readout_for(module)
    with progress_bar(stop_rank - start_rank, "inputs", enabled=progress) as bar:
        for first, active in domain.batches(batch, start_rank, stop_rank):
            check.check(active)
            bar.update(len(active))
    margin = check.margin
    return _report(check, domain, shard, start, margin[0], not margin[1],
                   "dense" if check.dense is not None else "delta", module)


def _verify_blocks(circuit, module, net, domain, shard, max_counterexamples, progress,
                   start) -> dict:
    start_rank, stop_rank = domain.shard(*shard)
    check = BlockCheck(circuit, module, net, max_counterexamples)
    width = max(domain.max_weight, 1)
    # [blocks, outputs] arrays of at most 2^20 entries (8 MB): 4x larger ones ran ~1.5x
    # slower when two processes shared the cache (docs/benchmarks.md, Ray workers)
    max_blocks = max(1, min((1 << 20) // max(net.n_out, 1), (1 << 20) // max(net.m, 1)))
    with progress_bar(stop_rank - start_rank, "inputs", enabled=progress) as bar:
        if start_rank == 0 and stop_rank > 0:
            check.check_empty_input()
            bar.update(1)
        for q, lo, hi in domain_blocks(domain, start_rank, stop_rank, max_blocks):
            bar.update(check.check_blocks(q, lo, hi, width))
    best = check.min_margin
    exact = best <= MARGIN_FLOOR or math.isinf(best)
    report = _report(check, domain, shard, start, None if math.isinf(best) else
                     (best if exact else MARGIN_FLOOR), not exact, "blocks", module)
    report["block_stats"] = check.stats.as_dict()
    return report


def _verify_coded(circuit, module, domain, shard, check, progress, start) -> dict:
    start_rank, stop_rank = domain.shard(*shard)
    check = run_coded(check, domain, start_rank, stop_rank, progress)
    best, exact = check.margin
    report = _report(check, domain, shard, start, best, not exact, "coded", module)
    report["coded"] = {"level": check.level,
                       "table_keys": {str(t): len(tb.map.keys) for t, tb in check.tables.items()}}
    return report


def _verify_tensor(circuit, module, domain, shard, max_counterexamples, progress, start,
                   dtype=None) -> dict:
    start_rank, stop_rank = domain.shard(*shard)
    check = TensorCheck(circuit, module, max_counterexamples, dtype=dtype)
    step = check.block_size()
    with progress_bar(stop_rank - start_rank, "inputs", enabled=progress) as bar:
        for first in range(start_rank, stop_rank, step):     # enumerated on the device
            last = min(first + step, stop_rank)
            check.check(device_unrank(domain, first, last, check.device))
            bar.update(last - first)
    best = check.min_margin
    report = _report(check, domain, shard, start, None if math.isinf(best) else best, False,
                     "tensor", module)
    report["exactness"] = check.exactness.as_dict()
    return report


def _report(check, domain, shard, start, min_margin, margin_is_bound, path, module) -> dict:
    start_rank, stop_rank = domain.shard(*shard)
    seconds = time.perf_counter() - start
    # one shard alone proves nothing about the whole domain: merge the shards for a verdict
    verified = False if check.failing else (True if shard[1] == 1 else None)
    # the margin must clear what another evaluation order of the module could change
    slack = rounding_slack(module, getattr(domain, "max_weight", None))
    # (slack 0: exact in every order, so even margin 0, a 0 read exactly at t, is sound)
    thin = slack > 0 and not check.failing and min_margin is not None and min_margin <= slack
    if thin:
        verified = None
    extra = {"thin_margin": True, "rounding_slack": slack,
             "note": f"no input failed, but the smallest margin {min_margin:.3g} is within "
                     f"{slack:.3g}, how far float rounding in another evaluation order of the "
                     "module (forward, forward_active, the paths here) can move a read-out: "
                     "undecided (try a float64 module, or SMT)"} if thin else {}
    return {
        "verified": verified, "method": "exhaustive",
        "inputs_checked": check.inputs, "outputs_checked": check.outputs,
        "failing_inputs": check.failing,
        "counterexamples": check.counterexamples,
        "max_counterexamples": check.max_counterexamples,
        "min_margin": min_margin, "min_margin_is_lower_bound": margin_is_bound,
        "seconds": round(seconds, 3),
        "inputs_per_second": round(check.inputs / seconds, 1) if seconds > 0 else None,
        "domain_size": domain.size, "domain": getattr(domain, "kind", "sparse"),
        "shard": {"i": shard[0], "n": shard[1], "ranks": [start_rank, stop_rank]},
        "complete": shard[1] == 1,
        "device": str(module.device), "dtype": str(module.dtype).replace("torch.", ""),
        "path": path, **extra,
    }


def rounding_slack(module, sparsity=None) -> float:
    """How far two evaluation orders of the module's forward can put one read-out value apart.

    The layered module sums in different orders in `forward`, `forward_active`, the dense
    read-out and the event-driven path (baseline plus changes), so values off by rounding can
    decide differently at the threshold. 0 when every sum is exact in the module's dtype
    (`_exact_in_dtype`); else verify/smt.py's interval bound (any order of an n-term dot
    product rounds by at most gamma_n times its magnitude) with 8 times the unit roundoff: one
    side's plain sums and the other's baseline-plus-changes form (differences of hidden values
    and a longer sum, at most ~6 times the bound) together. A verified verdict needs a margin
    above it. Forests (ConditionalModule) are checked with their own forward_active: 0."""
    if not isinstance(module, SupModule):
        return 0.0
    layers = module_layers(module)
    input_map = module.input_map.detach().cpu().numpy()
    fed = np.maximum(np.bincount(input_map, minlength=layers[0].n_in), 1).astype(np.float64)
    if _exact_in_dtype(layers, fed, module.dtype):
        return 0.0
    unit = float(torch.finfo(module.dtype).eps) / 2
    return float(rounding_bounds(layers, 8 * unit, fed, sparsity).max(initial=0.0))


def _exact_in_dtype(layers, fed, dtype) -> bool:
    """Every weight and bias a multiple of 2^-S (per layer, inputs integers) and every partial
    sum, also of hidden-value differences, at most 2^p / 4 times that unit: then each sum is
    exact whatever the order (float32 / float64; other dtypes: integers only)."""
    p = 1 - int(round(math.log2(float(torch.finfo(dtype).eps))))
    upper, scale = fed, np.zeros(len(fed), dtype=np.int64)
    for layer in layers:
        cols, rows = np.asarray(layer.cols, np.int64), np.asarray(layer.rows, np.int64)
        vals, bias = np.asarray(layer.vals, np.float64), np.asarray(layer.bias, np.float64)
        term = dyadic_scale(vals) + scale[cols]
        s = int(max(term.max(initial=0), dyadic_scale(bias).max(initial=0)))
        if s and dtype not in (torch.float32, torch.float64):
            return False
        magnitude = (np.bincount(rows, weights=np.abs(vals) * upper[cols], minlength=layer.n_out)
                     + np.abs(bias))
        if s > 2000 or float(magnitude.max(initial=0.0)) * 2.0 ** (s + 2) > 2.0 ** p:
            return False
        upper, scale = magnitude, np.full(layer.n_out, s, dtype=np.int64)
    return True
