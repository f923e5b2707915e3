"""SMT proofs with z3: each output of a network equals its specification on the whole domain.

`verify_smt` encodes each output's cone (features with the sparsity promise, the stored
weights as exact rationals, the circuit's gates) and asks z3 for an input where the read-out is
wrong or within its float rounding bound (`rounding_bounds`); counterexamples are reported only
after they replay on the torch module and the reference.

Encoding and soundness: docs/proofs/smt.md
"""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import torch
import z3

from dsl.nodes import (CARE, CONST, COUNT, DEFAULT_CARE, DEFAULT_VALUES, FIRST, INPUT, INPUTS, K,
                       KEYS, KIND, OFFSETS, OP, OPERANDS, TABLE, VALUES)
from dsl.semantics import DONT_CARE, evaluate_active

from .compare import decision_threshold
from .cones import SignalIndex, network_cone, signal_cone
from .progress import progress_bar
from .report import returns_report


def _real(x: float):
    f = Fraction(float(x))
    return z3.RealVal(f"{f.numerator}/{f.denominator}")


# ================================================================ float rounding bounds

def _row_top_sum(rows: np.ndarray, values: np.ndarray, n_out: int, k: int) -> np.ndarray:
    """Per row, the sum of its k largest entries of `values` (COO rows; values >= 0)."""
    order = np.lexsort((-values, rows))
    rows, values = rows[order], values[order]
    starts = np.searchsorted(rows, np.arange(n_out))
    rank = np.arange(len(rows)) - starts[rows]
    keep = rank < k
    return np.bincount(rows[keep], weights=values[keep], minlength=n_out)


def rounding_bounds(layers, unit_roundoff: float, input_upper=None,
                    sparsity=None) -> np.ndarray:
    """Per read-out row, a bound on |float forward - exact forward| for 0/1 inputs.

    Interval propagation bounds every activation: inputs lie in [0, 1] (in [0, input_upper[c]]
    where given: the number of features an input map sends to column c), a ReLU neuron in
    [0, U] with U = relu(sum_{w > 0} w U' + b). A dot product of n terms rounds by at most
    gamma_n * (sum |w| U' + |b|), gamma_n = n u / (1 - n u); errors of the previous layer pass
    through |W|: E = |W| E' + gamma_n (|W| U' + |b|). ReLU does not increase errors.
    With `sparsity` K (and every input column fed by at most one feature), the first layer's
    sums hold at most K nonzero inputs: its row magnitudes are the K largest |w| (and the K
    largest positive w for the upper bound), not the whole row.
    """
    upper = np.ones(layers[0].n_in) if input_upper is None else np.asarray(input_upper, float)
    err = np.zeros(layers[0].n_in)
    signed = False
    sparse_first = sparsity is not None and float(upper.max(initial=0.0)) <= 1.0
    for i, layer in enumerate(layers):
        rows, cols, vals, bias = layer.rows, layer.cols, layer.vals, layer.bias
        n_out = layer.n_out
        fan_in = np.bincount(rows, minlength=n_out).max(initial=0) + 1
        gamma = fan_in * unit_roundoff / (1 - fan_in * unit_roundoff)
        # inputs of a linear layer's successor may be negative (an input / output code,
        # compiler/superposed/codes.py): then only |W| U' bounds the pre-activation
        pos = np.maximum(vals, 0) if not signed else np.abs(vals)
        if i == 0 and sparse_first:
            magnitude = _row_top_sum(rows, np.abs(vals), n_out, int(sparsity)) + np.abs(bias)
            pre_upper = _row_top_sum(rows, pos, n_out, int(sparsity)) + bias
        else:
            magnitude = (np.bincount(rows, weights=np.abs(vals) * upper[cols], minlength=n_out)
                         + np.abs(bias))
            pre_upper = np.bincount(rows, weights=pos * upper[cols], minlength=n_out) + bias
        err = np.bincount(rows, weights=np.abs(vals) * err[cols], minlength=n_out) + gamma * magnitude
        upper = np.maximum(pre_upper, 0) if layer.relu else magnitude
        signed = not layer.relu
    return err


def module_layers(module) -> list:
    """The weights exactly as the module stores them (its dtype), as float64 numpy
    `compiler.network.Layer`s (through the module's public `layers()`)."""
    return [layer.numpy() for layer in module.layers()]


def unit_roundoff(dtype) -> float:
    """u = 2^-p of a float dtype the rounding bounds are derived for (float32, float64);
    others (float16 / bfloat16: narrow exponent ranges, overflow) are refused."""
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"SMT verification supports float32 and float64 modules, not {dtype}")
    return float(torch.finfo(dtype).eps) / 2


# ================================================================ encoders

class SpecEncoder:
    """z3 encoding of the circuit's signals: (value, known) pairs, cached per signal."""

    def __init__(self, circuit, features: dict):
        self.circuit = circuit
        self.index = SignalIndex(circuit)
        self.ternary = circuit.has_dont_care
        self.features = features
        self.cache = {}
        self.table_cache = {}

    def feature(self, f: int):
        """The z3 Bool of input feature `f` (created on first use, shared through `features`)."""
        if f not in self.features:
            self.features[f] = z3.Bool(f"x{f}")
        return self.features[f]

    def signal(self, driver: int):
        """The (value, known) z3 terms of signal `driver`, encoding its cone on first use."""
        for sig in signal_cone(self.index, driver):
            if sig not in self.cache:
                self.cache[sig] = self._encode(sig)
        return self.cache[driver]

    def _encode(self, sig: int):
        data, local = self.index.node(sig)
        kind = data[KIND]
        if kind == INPUT:
            return self.feature(sig), z3.BoolVal(True)
        if kind == CONST:
            return z3.BoolVal(local == 1), z3.BoolVal(True)
        if kind == TABLE:
            return self._table(data)[local]
        ops = data[OPERANDS][data[OFFSETS][local]:data[OFFSETS][local + 1]]
        args = [self.cache[int(o)] for o in ops]
        k = None if data[K] is None else int(data[K][local])
        return self._gate(data[OP], args, k)

    def _gate(self, op, args, k):
        vals = [a[0] for a in args]
        if not self.ternary:
            true = z3.BoolVal(True)
            if op == "not":
                return z3.Not(vals[0]), true
            if op == "and":
                return z3.And(vals), true
            if op == "or":
                return z3.Or(vals), true
            if op == "xor":
                acc = vals[0]
                for v in vals[1:]:
                    acc = z3.Xor(acc, v)
                return acc, true
            if op == "ite":
                return z3.If(vals[0], vals[1], vals[2]), true
            pb = {"atleast": z3.PbGe, "atmost": z3.PbLe, "exactly": z3.PbEq}[op]
            return pb([(v, 1) for v in vals], k), true
        known = [a[1] for a in args]
        if op == "not":
            return z3.Not(vals[0]), known[0]
        if op == "ite":
            (c, ck), (t, tk), (e, ek) = args
            value = z3.If(ck, z3.If(c, t, e), t)
            know = z3.If(ck, z3.If(c, tk, ek), z3.And(tk, ek, t == e))
            return value, know
        if op == "xor":
            acc = vals[0]
            for v in vals[1:]:
                acc = z3.Xor(acc, v)
            return acc, z3.And(known)
        lo = z3.Sum([z3.If(z3.And(v, kn), 1, 0) for v, kn in zip(vals, known)])
        hi = lo + z3.Sum([z3.If(kn, 0, 1) for kn in known])
        n = len(vals)
        if op in ("and", "or"):
            op, k = "atleast", (n if op == "and" else 1)
        if op == "atleast":
            yes, no = lo >= k, hi < k
        elif op == "atmost":
            yes, no = hi <= k, lo > k
        else:
            yes, no = z3.And(lo == k, hi == k), z3.Or(lo > k, hi < k)
        return yes, z3.Or(yes, no)

    def _table(self, data):
        key = data[FIRST]
        if key in self.table_cache:
            return self.table_cache[key]
        bits = [self.cache[int(s)] if int(s) in self.cache else self.signal(int(s))
                for s in data[INPUTS]]
        all_known = z3.And([b[1] for b in bits]) if bits else z3.BoolVal(True)
        matches = []
        for key_r in data[KEYS].tolist():
            lits = [b[0] if (key_r >> i) & 1 else z3.Not(b[0]) for i, b in enumerate(bits)]
            matches.append(z3.And(lits) if lits else z3.BoolVal(True))
        none = z3.Not(z3.Or(matches)) if matches else z3.BoolVal(True)
        out = []
        for j in range(data[COUNT]):
            ones = [m for m, v, c in zip(matches, data[VALUES][:, j], data[CARE][:, j]) if v and c]
            cared = [m for m, c in zip(matches, data[CARE][:, j]) if c]
            value = z3.Or(ones + ([none] if data[DEFAULT_VALUES][j] else []))
            know = z3.Or(cared + ([none] if data[DEFAULT_CARE][j] else []))
            out.append((value, z3.And(know, all_known)))
        self.table_cache[key] = out
        return out


def _network_output(layers, input_map, cone, features, solver, spec):
    """z3 Real term of one read-out row; neurons become Real variables with ReLU constraints."""
    col_terms = {}
    for f in np.flatnonzero(np.isin(input_map, cone[0])).tolist():
        col_terms.setdefault(int(input_map[f]), []).append(z3.If(spec.feature(f), 1, 0))
    values = {c: z3.Sum(t) if len(t) > 1 else t[0] for c, t in col_terms.items()}
    for li, layer in enumerate(layers):
        wanted = cone[li + 1]
        mask = np.isin(layer.rows, wanted)
        rows, cols, vals = layer.rows[mask], layer.cols[mask], layer.vals[mask]
        order = np.argsort(rows, kind="stable")
        rows, cols, vals = rows[order], cols[order], vals[order]
        bounds = np.searchsorted(rows, wanted), np.searchsorted(rows, wanted, side="right")
        new = {}
        for n, lo, hi in zip(wanted.tolist(), *bounds):
            terms = [_real(v) * values[int(c)] for c, v in zip(cols[lo:hi], vals[lo:hi])
                     if int(c) in values]
            pre = z3.Sum(terms + [_real(layer.bias[n])]) if terms else _real(layer.bias[n])
            if layer.relu:
                h = z3.Real(f"h{li}_{n}")
                solver.add(h == z3.If(pre > 0, pre, 0))
                new[n] = h
            else:
                new[n] = pre
        values = new
    return values


# ================================================================ verdicts

class Outcomes:
    """Per-output results of an SMT run ('proved', 'flagged', 'refuted', 'undecided') and the
    verdict: False on any refuted output, True only when every output is proved with a margin
    above its rounding bound, else None (undecided)."""

    def __init__(self, names, max_counterexamples: int):
        self.names, self.max_counterexamples = names, max_counterexamples
        self.proved, self.flagged, self.refuted, self.undecided = [], [], [], []
        self.counterexamples = []

    def record(self, o: int, status: str, detail) -> None:
        """Record output `o`'s status ('proved', 'flagged', 'refuted' or 'undecided') and its detail."""
        if status in ("proved", "flagged"):
            self.proved.append(o)
            if status == "flagged":
                self.flagged.append(self.names[o])
        elif status == "refuted":
            self.refuted.append(o)
            if len(self.counterexamples) < self.max_counterexamples:
                self.counterexamples.append(detail)
        else:
            self.undecided.append({"output": self.names[o], "reason": detail})

    @property
    def verified(self):
        """The verdict: False on a refuted output, True when all are proved unflagged, else None."""
        return False if self.refuted else (True if not self.undecided and not self.flagged else None)

    def report_fields(self, total: int) -> dict:
        """The report fields of the outcomes (`total`: outputs checked)."""
        return {"verified": self.verified, "method": "smt", "inputs_checked": None,
                "outputs_checked": len(self.proved), "outputs_total": total,
                "outputs_refuted": len(self.refuted), "counterexamples": self.counterexamples,
                "undecided": self.undecided[:50], "outputs_undecided": len(self.undecided),
                "flagged_rounding": self.flagged[:50], "outputs_flagged": len(self.flagged)}


# ================================================================ driver

@returns_report
def verify_smt(circuit, net, module, timeout_ms: int = 10_000, outputs=None,
               max_counterexamples: int = 20, progress: bool = True) -> dict:
    """Prove each output of a layered network equal to its specification on the whole domain.

    Args:
        circuit: the reference circuit.
        net: the compiled network (the encoding reads the module's weights, not this).
        module: the SupModule whose stored weights are encoded.
        timeout_ms: z3 time limit per output query.
        outputs: output positions to check (default: all).
        max_counterexamples: how many replayed counterexamples to keep.
        progress: show a progress bar.
    Returns:
        The report: `verified` True only when every output is proved with a margin above its
        rounding bound, False with a replayed counterexample, None otherwise; per-output counts,
        `counterexamples`, `undecided`, `flagged_rounding`.
    Raises:
        ValueError: the module's dtype is not float32 or float64.
    """
    start = time.perf_counter()
    layers, input_map, delta, threshold = rounding_setup(circuit, module)
    drivers = circuit.output_drivers
    names = circuit.output_names()
    todo = range(len(drivers)) if outputs is None else outputs
    outcomes = Outcomes(names, max_counterexamples)
    seconds_per = []
    with progress_bar(len(todo), "outputs", enabled=progress) as bar:
        for o in todo:
            t0 = time.perf_counter()
            status, detail = _prove_output(circuit, input_map, module, layers, o,
                                           int(drivers[o]), float(delta[o]), threshold,
                                           timeout_ms)
            seconds_per.append(time.perf_counter() - t0)
            outcomes.record(o, status, detail)
            bar.update(1)
    # a flagged output is proved over exact reals, but float rounding could flip it: undecided
    return {
        **outcomes.report_fields(len(todo)),
        "max_rounding_bound": float(delta.max(initial=0.0)),
        "min_margin": None,
        "note": "proofs are over exact real arithmetic with the module's stored weights as "
                "rationals; every proved output also has a margin above its float rounding "
                "bound, except flagged ones, which leave the verdict undecided (check them "
                "exhaustively)",
        "seconds": round(time.perf_counter() - start, 3),
        "seconds_per_output": round(float(np.mean(seconds_per)), 5) if seconds_per else None,
        "timeout_ms": timeout_ms, "dtype": str(module.dtype).replace("torch.", ""),
    }


def rounding_setup(circuit, module):
    """What every layered SMT encoding reads from the module: its layers (`module_layers`), its
    input map, the per-output rounding bound of its dtype, and its decision threshold.

    Returns:
        (layers, input_map int64 [m], delta float64 [n_out], threshold as `decide` compares).
    """
    layers = module_layers(module)
    unit = unit_roundoff(module.dtype)
    # the input map as the module stores it (not the compiler's copy); a column that several
    # features feed sums them (forward_active), so it can reach min(count, K), not just 1
    input_map = module.input_map.detach().cpu().numpy()
    fed = np.bincount(input_map, minlength=layers[0].n_in).astype(np.float64)
    if circuit.sparsity is not None:
        fed = np.minimum(fed, circuit.sparsity)
    delta = rounding_bounds(layers, unit, np.maximum(fed, 1.0))
    return layers, input_map, delta, decision_threshold(module)


def _prove_output(circuit, input_map, module, layers, o, driver, delta, threshold, timeout_ms):
    cone = network_cone(layers, o)
    features = {}
    spec = SpecEncoder(circuit, features)
    value, known = spec.signal(driver)
    solver = z3.Solver()
    solver.set("timeout", int(timeout_ms))
    y = _network_output(layers, input_map, cone, features, solver, spec)[o]
    if circuit.sparsity is not None and features:
        solver.add(z3.AtMost(*features.values(), circuit.sparsity))
    t, d = _real(threshold), _real(delta)
    near = z3.Or(z3.And(value, y <= t + d), z3.And(z3.Not(value), y > t - d))
    exact = z3.Or(z3.And(value, y <= t), z3.And(z3.Not(value), y > t))
    solver.add(known)
    return decide(solver, near, exact, features,
                  lambda active: replay_model(circuit, module, o, active, threshold))


def decide(solver, near, exact, features: dict, replay):
    """Verdict of one output's query on `solver` (the network, spec and domain added).

    `near`: wrong or within the rounding bound of the threshold; `exact`: wrong. unsat on
    `near` proves the output; otherwise unsat on `exact` means only the margin is thin
    ('flagged'). With `near` None (no rounding to allow for) unsat on `exact` proves it. A
    model of `exact` is decoded into the active features and handed to `replay`, which alone
    may call it a counterexample; unknown or a time-out is 'undecided'.
    """
    if near is not None:
        solver.push()
        solver.add(near)
        first = solver.check()
        if first == z3.unsat:
            return "proved", None
        if first == z3.unknown:
            return "undecided", f"solver: {solver.reason_unknown()}"
        solver.pop()
    solver.add(exact)
    second = solver.check()
    if second == z3.unsat:
        return ("proved" if near is None else "flagged"), None
    if second == z3.unknown:
        return "undecided", f"solver: {solver.reason_unknown()}"
    model = solver.model()
    active = sorted(f for f, var in features.items() if z3.is_true(model.eval(var, True)))
    return replay(active)


def replay_model(circuit, module, o, active, threshold):
    """Confirm an SMT model on the real module and the reference before calling it a bug."""
    spec = evaluate_active(circuit, [active]).dense()[0, o]
    y = float(module.forward_active([active if active else [-1]])[0, o])
    names = circuit.input_names(active)
    if spec != DONT_CARE and (y > threshold) != (spec == 1):
        out_name = circuit.output_names([o])[0]
        return "refuted", {"active": names, "wrong": [out_name], "values": {out_name: y},
                           "expected": {out_name: int(spec)}}
    return "undecided", f"exact-real counterexample {names} does not replay in float (y={y})"


def layer_rows(layer):
    """Per output row of a numpy Layer: (cols, vals) with nonzero weights (row order)."""
    keep = layer.vals != 0
    rows, cols, vals = layer.rows[keep], layer.cols[keep], layer.vals[keep]
    order = np.argsort(rows, kind="stable")
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.searchsorted(rows, np.arange(layer.n_out + 1))
    return [(cols[starts[r]:starts[r + 1]], vals[starts[r]:starts[r + 1]])
            for r in range(layer.n_out)]
