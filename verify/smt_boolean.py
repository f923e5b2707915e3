"""SMT proofs over Boolean neurons: a layered network as a pseudo-Boolean circuit, one miter.

Most compiled networks have hidden ReLU neurons that take only the values 0 and 1 whenever
their inputs are 0/1 (every dense gate neuron, every multilevel wire). Such a neuron
relu(w . h + b) equals the Boolean threshold [w . h + b > 0]; with the weights scaled to
integers it is a pseudo-Boolean constraint (z3 `PbGe`), which SAT-based solvers handle far
better than the exact-real `If` per ReLU of verify/smt.py. Here:

* `neuron_is_boolean` decides whether a neuron is boolean-valued over every 0/1 fan-in (a
  superset of what the domain reaches): distinct subset sums of its exact rational weights
  when they are few, else a pseudo-Boolean query (a 0/1 input with 0 < pre != 1?).
* `NetworkEncoder` generalises this to neurons with a few values (the parts relu(s - p) of an
  n-input XOR): relu(pre) = sum_k (v_k - v_{k-1}) [L >= v_k - c] over its distinct positive
  values v_k, with atoms [L >= t] shared between neurons of the same linear form L. Neurons
  with too many values keep the exact real encoding (Real + If).
* `verify_smt_boolean` encodes the network once, the circuit with `SpecEncoder`, the sparsity
  promise as `AtMost`, and asks one miter: is some output wrong or within its float rounding
  bound of the threshold? unsat proves every output. Otherwise each output is decided on its
  own (same solver, push/pop) as verify/smt.py decides it: 'proved', 'flagged' (exact proof,
  thin margin: undecided), 'refuted' only after the counterexample replays on the module and
  the reference, 'undecided' on a time-out (never verified). When the miter or an output's
  query does not finish within 1 s, verify/sweep.py sweeps the solver first (simulation,
  bottom-up proved merges of atoms with circuit signals; docs/proofs/sweep.md) and the query
  is asked again with its full time limit: deep arithmetic (a 16x16 multiplier) needs it.
* Rounding: the per-output bound is the smaller of verify/smt.py's `rounding_bounds` and
  `tight_rounding_bounds` (the same recursion with each neuron's largest exact value, and
  error 0 for rows that compute exactly in float: integer weights on integer values below
  1/unit).

Networks whose neurons are mostly not boolean (superposed channel networks) go to
verify/smt.py's per-output cones, as fast as before.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction

import numpy as np
import z3

from .local_proof import prove_locally
from .report import returns_report
from .smt import (Outcomes, SpecEncoder, decide, layer_rows, replay_model, rounding_setup,
                  unit_roundoff, verify_smt)
from .sweep import Sweeper

MAX_SUBSET_SUMS = 1 << 14      # distinct subset sums enumerated before a PB query decides


# ================================================================ which neurons are boolean

def _frac(x: float) -> Fraction:
    return Fraction(float(x))


def _scale(weights: list[Fraction], *extra: Fraction) -> int:
    """The least common denominator of the weights and `extra` (all become integers)."""
    d = 1
    for w in list(weights) + list(extra):
        d = d * w.denominator // math.gcd(d, w.denominator)
    return d


def _subset_sums(weights: list[Fraction], cap: int):
    """The distinct sums of subsets of `weights`, or None when there are more than `cap`."""
    sums = {Fraction(0)}
    for w in weights:
        sums |= {s + w for s in sums}
        if len(sums) > cap:
            return None
    return sums


def neuron_is_boolean(weights: list[Fraction], bias: Fraction, timeout_ms: int = 2_000,
                      cap: int = MAX_SUBSET_SUMS) -> bool:
    """Whether relu(sum w_i x_i + bias) is 0 or 1 for every x in {0,1}^n (exact rationals).

    Enumerates the distinct subset sums when they are at most `cap`; otherwise asks z3 for an
    x with 0 < pre-activation != 1 over integers scaled by the common denominator. A time-out
    answers False (the neuron keeps the real encoding, which is always sound).
    """
    weights = [w for w in weights if w != 0]
    sums = _subset_sums(weights, cap)
    if sums is not None:
        return all(s + bias <= 0 or s + bias == 1 for s in sums)
    d = _scale(weights, bias)
    xs = [z3.Bool(f"q{i}") for i in range(len(weights))]
    terms = [(x, int(w * d)) for x, w in zip(xs, weights)]
    solver = z3.SolverFor("QF_FD")
    solver.set("timeout", int(timeout_ms))
    solver.add(z3.PbGe(terms, int(-bias * d) + 1))          # pre > 0
    solver.add(z3.Not(z3.PbEq(terms, int((1 - bias) * d))))  # pre != 1
    return solver.check() == z3.unsat


def input_columns_boolean(input_map: np.ndarray, n_in: int, sparsity) -> np.ndarray:
    """Per input column: whether its value is 0/1 (fed by at most one feature, or by several
    under a sparsity promise of at most 1 active feature)."""
    fed = np.bincount(input_map, minlength=n_in)
    return (fed <= 1) | (sparsity is not None and sparsity <= 1)


def classify_neurons(layers, input_bool: np.ndarray, timeout_ms: int = 2_000) -> list[np.ndarray]:
    """Per hidden layer, a boolean mask of its neurons that are provably 0/1-valued.

    A ReLU neuron qualifies when every input it reads (nonzero weight) is boolean and
    `neuron_is_boolean` holds for its exact weights; linear (non-ReLU) neurons never do.
    """
    is_bool = np.asarray(input_bool, dtype=bool)
    masks = []
    for layer in layers[:-1]:
        mask = np.zeros(layer.n_out, dtype=bool)
        if layer.relu:
            cache = {}
            for r, (cols, vals) in enumerate(layer_rows(layer)):
                if not is_bool[cols].all():
                    continue
                key = (tuple(vals.tolist()), float(layer.bias[r]))
                if key not in cache:
                    ws, b = [_frac(v) for v in vals], _frac(layer.bias[r])
                    cache[key] = _fits(ws, b) and neuron_is_boolean(ws, b, timeout_ms)
                mask[r] = cache[key]
        masks.append(mask)
        is_bool = mask
    return masks


# ================================================================ the encoding

def _real(f: Fraction):
    return z3.RealVal(f"{f.numerator}/{f.denominator}")


def _as_real(term):
    return z3.If(term, 1, 0) if z3.is_bool(term) else term


INT_LIMIT = (1 << 31) - 1      # z3's pseudo-Boolean coefficients are C ints


def _fits(ws: list[Fraction], b: Fraction) -> bool:
    """Whether the weights and bias scaled to integers fit z3's pseudo-Boolean coefficients."""
    d = _scale(ws)
    return sum(abs(w * d) for w in ws) < INT_LIMIT


def _pb_above(args, ws: list[Fraction], bound: Fraction, strict: bool):
    """z3 Bool: sum w_i args_i > bound (strict) or <= bound (not strict), exactly.

    The weights are scaled by their common denominator d to integers; the sum is then an
    integer, so `> bound` is `>= floor(d bound) + 1` and `<= bound` is `<= floor(d bound)`."""
    d = _scale(ws)
    terms = [(a, int(w * d)) for a, w in zip(args, ws)]
    rhs = math.floor(bound * d)
    if not terms:
        return z3.BoolVal(0 > bound if strict else 0 <= bound)
    total = sum(abs(c) for _, c in terms)
    rhs = max(min(rhs, total), -total - 1)   # beyond every reachable sum: the same meaning
    return z3.PbGe(terms, rhs + 1) if strict else z3.PbLe(terms, rhs)


MAX_LEVELS = 32       # a neuron with more distinct positive values keeps the real encoding


def _pb_at_least(bools, coefs: list[Fraction], t: Fraction):
    """z3 Bool: sum coefs_i bools_i >= t, exactly (integer-scaled pseudo-Boolean)."""
    d = _scale(coefs)
    terms = [(b, int(c * d)) for b, c in zip(bools, coefs)]
    total = sum(abs(c) for _, c in terms)
    rhs = max(min(math.ceil(t * d), total + 1), -total)   # beyond every sum: the same meaning
    return z3.PbGe(terms, rhs)


class Form:
    """A value as a linear pseudo-Boolean expression: const + sum coef * [atom], atoms by id."""

    def __init__(self, terms=None, const=Fraction(0)):
        self.terms, self.const = dict(terms or {}), const

    def key(self) -> tuple:
        """The linear part, canonical (atoms sorted): neurons with the same one share atoms."""
        return tuple(sorted(self.terms.items()))


def _combine(values, cols, ws, bias):
    """sum w * values[c] + bias: a Form when every value read is one, else a z3 Real term."""
    args = [values[int(c)] for c in cols]
    if all(isinstance(a, Form) for a in args):
        terms, const = {}, bias
        for a, w in zip(args, ws):
            for atom, c in a.terms.items():
                terms[atom] = terms.get(atom, Fraction(0)) + c * w
            const += a.const * w
        return Form({k: v for k, v in terms.items() if v != 0}, const)
    return ("real", args, ws, bias)


class NetworkEncoder:
    """z3 encoding of a layered network; each value a `Form` over atoms, or a z3 Real.

    An atom is a Bool [L >= t] for a linear form L over earlier atoms (input features are
    atoms of their own). Atoms of the same L form a chain ([L >= t] implies [L >= t'] for
    t' < t), so the values a Form can take are the sums, over chains, of prefix sums of its
    coefficients in threshold order: a superset of what the domain reaches. A ReLU neuron
    whose pre-activation L + c has at most MAX_LEVELS distinct positive values
    0 < v_1 < ... < v_m is exactly relu = sum_k (v_k - v_{k-1}) [L >= v_k - c]: a boolean
    neuron is the case m = 1, an integer-valued one unary bits; neurons of one L (the parts of
    an n-input XOR) share atoms. Other neurons are Reals with an If. Linear neurons are Forms.
    `kinds` counts boolean (m = 1), levelled (m > 1), linear and real neurons.
    """

    def __init__(self, layers, input_map, feature, timeout_ms: int = 2_000):
        self.layers, self.timeout_ms = layers, timeout_ms
        self.kinds = {"boolean": 0, "levelled": 0, "linear": 0, "real": 0}
        self.constraints = []           # atom definitions (z3 Bool terms)
        self.upper = []                 # per hidden layer: max exact value per neuron (inf: unknown)
        self.integral = []              # per hidden layer: exact value always an integer
        self.bools = []                 # atom id -> z3 Bool
        self.chain = []                 # atom id -> (chain key, threshold)
        self.atoms = {}                 # (chain key, threshold) -> atom id
        self.definitions = {}           # atom id -> (atom ids, coefficients, t): [sum >= t]
        cols = {}
        for f, c in enumerate(input_map.tolist()):
            cols.setdefault(int(c), {})[self._new_atom(feature(f), ("x", f), Fraction(1))] = \
                Fraction(1)
        self.values = {c: Form(cols.get(c, {})) for c in range(layers[0].n_in)}

    def _new_atom(self, var, key, t) -> int:
        self.bools.append(var)
        self.chain.append((key, t))
        self.atoms[(key, t)] = len(self.bools) - 1
        return len(self.bools) - 1

    def _atom(self, form: Form, t: Fraction) -> int:
        """The atom [linear part of form >= t] (created on first use)."""
        key = form.key()
        if (key, t) not in self.atoms:
            var = z3.Bool(f"a{len(self.bools)}")
            ids = list(form.terms)
            self.constraints.append(var == _pb_at_least([self.bools[i] for i in ids],
                                                        [form.terms[i] for i in ids], t))
            self._new_atom(var, key, t)
            self.definitions[len(self.bools) - 1] = (ids, [form.terms[i] for i in ids], t)
        return self.atoms[(key, t)]

    def values_of(self, form: Form, cap: int = 1 << 12):
        """The set of values `form` can take (chains respected), or None beyond `cap`."""
        chains = {}
        for atom, c in form.terms.items():
            key, t = self.chain[atom]
            chains.setdefault(key, []).append((t, c))
        sums = {form.const}
        for members in chains.values():
            members.sort(key=lambda tc: tc[0])
            prefix, acc = [Fraction(0)], Fraction(0)
            for _, c in members:
                acc += c
                prefix.append(acc)
            sums = {s + p for s in sums for p in set(prefix)}
            if len(sums) > cap:
                return None
        return sums

    def hidden(self) -> None:
        """Encode every hidden layer (atom definitions go into `constraints`)."""
        for li, layer in enumerate(self.layers[:-1]):
            new = {}
            top = np.full(layer.n_out, np.inf)
            whole = np.zeros(layer.n_out, dtype=bool)
            for r, (cols, vals) in enumerate(layer_rows(layer)):
                pre = _combine(self.values, cols, [_frac(v) for v in vals], _frac(layer.bias[r]))
                new[r] = self._neuron(f"{li}_{r}", pre, layer.relu)
                if layer.relu and isinstance(new[r], Form):
                    top[r] = float(sum(new[r].terms.values(), Fraction(0)))  # levels add up
                    whole[r] = all(c.denominator == 1 for c in new[r].terms.values())
            self.upper.append(top)
            self.integral.append(whole)
            self.values = new

    def _neuron(self, name, pre, relu):
        if not relu and isinstance(pre, Form):
            self.kinds["linear"] += 1
            return pre
        if isinstance(pre, Form) and _fits(list(pre.terms.values()), pre.const):
            levels = self.values_of(pre)
            if levels is None and neuron_is_boolean(list(pre.terms.values()), pre.const,
                                                    self.timeout_ms, cap=0):
                levels = {Fraction(0), Fraction(1)}
            if levels is not None:
                positive = sorted(v for v in levels if v > 0)
                if len(positive) <= MAX_LEVELS:
                    self.kinds["boolean" if len(positive) <= 1 else "levelled"] += 1
                    terms, last = {}, Fraction(0)
                    for v in positive:
                        terms[self._atom(pre, v - pre.const)] = v - last
                        last = v
                    return Form(terms)
        self.kinds["real" if relu else "linear"] += 1
        value = self.real(pre)
        if not relu:
            return value
        h = z3.Real(f"h{name}")
        self.constraints.append(h == z3.If(value > 0, value, 0))
        return h

    def real(self, value):
        """A Form or a combination tuple as a z3 Real term."""
        if isinstance(value, Form):
            return z3.Sum([_real(c) * z3.If(self.bools[a], 1, 0) for a, c in value.terms.items()]
                          + [_real(value.const)])
        if isinstance(value, tuple):
            _, args, ws, bias = value
            return z3.Sum([_real(w) * self.real(a) for a, w in zip(args, ws)] + [_real(bias)])
        return value

    def readout_above(self, row: int, bound: Fraction, strict: bool):
        """z3 Bool: read-out row `row` > bound (strict) or <= bound (not strict); a
        pseudo-Boolean constraint when the row is a Form."""
        layer = self.layers[-1]
        keep = (layer.rows == row) & (layer.vals != 0)
        y = _combine(self.values, layer.cols[keep], [_frac(v) for v in layer.vals[keep]],
                     _frac(layer.bias[row]))
        if isinstance(y, Form) and _fits(list(y.terms.values()), y.const):
            ids = list(y.terms)
            return _pb_above([self.bools[i] for i in ids], [y.terms[i] for i in ids],
                             bound - y.const, strict)
        y = self.real(y)
        return y > _real(bound) if strict else y <= _real(bound)


# ================================================================ driver

def tight_rounding_bounds(layers, unit: float, input_upper, uppers, integral) -> np.ndarray:
    """verify/smt.py's `rounding_bounds` (same error recursion, E = |W| E' + gamma_n (|W| U' +
    |b|)) with each ReLU neuron's bound U the smaller of interval propagation and its largest
    exact value from the encoding (`NetworkEncoder.upper`: the sum of its level steps, a bound
    over every 0/1 assignment of its atoms). Interval bounds alone grow with depth (about 1e12
    on a 32-layer multiplier) and would leave every output flagged.

    Exact rows: a row whose weights and bias are integers, whose inputs are exact integers
    (`integral`, inputs: feature counts) and whose |W| U' + |b| is at most 1/unit (2^24 in
    float32) has every partial sum an integer the dtype represents, in any summation order:
    its float value is exact, error 0."""
    upper = np.asarray(input_upper, float)
    err = np.zeros(layers[0].n_in)
    exact_in = np.ones(layers[0].n_in, dtype=bool)
    signed = False
    for i, layer in enumerate(layers):
        rows, cols, vals, bias = layer.rows, layer.cols, layer.vals, layer.bias
        fan_in = np.bincount(rows, minlength=layer.n_out).max(initial=0) + 1
        gamma = fan_in * unit / (1 - fan_in * unit)
        pos = np.abs(vals) if signed else np.maximum(vals, 0)
        magnitude = np.bincount(rows, weights=np.abs(vals) * upper[cols],
                                minlength=layer.n_out) + np.abs(bias)
        pre_upper = np.bincount(rows, weights=pos * upper[cols], minlength=layer.n_out) + bias
        err = (np.bincount(rows, weights=np.abs(vals) * err[cols], minlength=layer.n_out)
               + gamma * magnitude)
        bad = (vals != np.round(vals)) | ~exact_in[cols]
        exact = ((np.bincount(rows, weights=bad, minlength=layer.n_out) == 0)
                 & (bias == np.round(bias)) & (magnitude <= 1 / unit))
        err = np.where(exact, 0.0, err)
        upper = np.maximum(pre_upper, 0) if layer.relu else magnitude
        if layer.relu and i < len(uppers):
            upper = np.minimum(upper, uppers[i])
            exact_in = exact & integral[i]
        else:
            exact_in = np.zeros(layer.n_out, dtype=bool)
        signed = not layer.relu
    return err


def _wrong(net, spec_value, o, threshold: Fraction, margin: Fraction):
    """z3 Bool: output o wrong, or within `margin` of the threshold."""
    low = net.readout_above(o, threshold + margin, strict=False)      # y <= t + d
    high = net.readout_above(o, threshold - margin, strict=True)      # y > t - d
    return z3.Or(z3.And(spec_value, low), z3.And(z3.Not(spec_value), high))


def encode(circuit, module, timeout_ms: int = 2_000):
    """Everything the proofs share: (solver, network encoder, spec encoder, features,
    per-output rounding bounds, threshold). The solver is z3's SAT-based QF_FD one when no
    neuron needed a Real, else the default."""
    layers, input_map, delta, threshold = rounding_setup(circuit, module)
    features = {}
    spec = SpecEncoder(circuit, features)
    for f in range(len(input_map)):
        spec.feature(f)
    net = NetworkEncoder(layers, input_map, spec.feature, timeout_ms)
    net.hidden()
    fed = np.bincount(input_map, minlength=layers[0].n_in).astype(np.float64)
    if circuit.sparsity is not None:
        fed = np.minimum(fed, circuit.sparsity)
    delta = np.minimum(delta, tight_rounding_bounds(layers, unit_roundoff(module.dtype),
                                                    np.maximum(fed, 1.0), net.upper, net.integral))
    solver = z3.SolverFor("QF_FD") if net.kinds["real"] == 0 else z3.Solver()
    for constraint in net.constraints:
        solver.add(constraint)
    if circuit.sparsity is not None and features:
        solver.add(z3.AtMost(*features.values(), circuit.sparsity))
    return solver, net, spec, features, delta, threshold


def _miter(solver, wrongs, timeout_ms: int, sweeper):
    """One query: is some output wrong (`wrongs()`: the terms)? Tried briefly first when a
    sweep may follow, then with the whole budget on the swept solver."""
    solver.set("timeout", sweeper.budget(timeout_ms) if sweeper else timeout_ms)
    terms = wrongs()
    solver.push()
    solver.add(z3.Or(terms) if terms else z3.BoolVal(False))
    miter = solver.check()
    solver.pop()
    if miter == z3.unknown and sweeper and sweeper.pending:
        sweeper.run()
        return _miter(solver, wrongs, timeout_ms, sweeper)
    return miter


def _decide_output(solver, query, features, timeout_ms: int, sweeper, replay):
    """`decide` one output (`query()`: its wrong and exact terms); a solver time-out while a
    sweep is pending sweeps and retries."""
    solver.set("timeout", sweeper.budget(timeout_ms) if sweeper else int(timeout_ms))
    wrong, exact = query()
    level = solver.num_scopes()
    solver.push()
    status, detail = decide(solver, wrong, exact, features, replay)
    solver.pop(solver.num_scopes() - level)     # decide may leave its own scope open
    if status == "undecided" and str(detail).startswith("solver:") and sweeper \
            and sweeper.pending:
        sweeper.run()
        return _decide_output(solver, query, features, timeout_ms, sweeper, replay)
    return status, detail


@returns_report
def verify_smt_boolean(circuit, net, module, timeout_ms: int = 10_000, outputs=None,
                       max_counterexamples: int = 20, progress: bool = True) -> dict:
    """Prove every output of a layered network equal to its specification on the domain, with
    boolean neurons encoded as pseudo-Boolean thresholds (see the module docstring).

    Args:
        circuit: the reference circuit.
        net: the compiled network (unused: the encoding reads the module's weights).
        module: the SupModule whose stored weights are encoded.
        timeout_ms: z3 time limit per output query (the miter gets one per output checked).
        outputs: output positions to check (default: all).
        max_counterexamples: how many replayed counterexamples to keep.
        progress: unused (kept for the verify() signature).
    Returns:
        The report of verify/smt.py plus `encoding` (how many neurons were boolean / real, the
        solver, whether one miter query decided everything).
    Raises:
        ValueError: the module's dtype is not float32 or float64.
    """
    start = time.perf_counter()
    # structural hashing first: every output proved by enumeration over small cuts, no z3
    fast = prove_locally(circuit, module, outputs, tight_rounding_bounds, timeout_ms)
    if fast is not None:
        return fast
    solver, enc, spec, features, delta, threshold = encode(circuit, module)
    kinds = dict(enc.kinds)
    pure = kinds["real"] == 0
    # mostly multi-valued neurons (superposed channel networks): one miter over them is slow
    # (pairs_small: > 100 s against seconds per cone); keep verify/smt.py's per-output cones
    if kinds["real"] + kinds["levelled"] > kinds["boolean"]:
        report = verify_smt(circuit, net, module, timeout_ms=timeout_ms, outputs=outputs,
                            max_counterexamples=max_counterexamples, progress=progress)
        report["encoding"] = {"name": "real", **kinds, "solver": "z3 default",
                              "miter": "per output cone",
                              "why": "most ReLU neurons are not boolean (channel networks)"}
        return report
    drivers, names = circuit.output_drivers, circuit.output_names()
    todo = list(range(len(drivers)) if outputs is None else outputs)
    t = _frac(threshold)
    # SAT sweeping the first time a query times out; then the circuit's signals are variables
    sweeper = Sweeper(solver, enc, spec, features, circuit, timeout_ms / 1000 * max(len(todo), 1)
                      ) if pure else None
    cache = {}

    def query(o):
        """(wrong, exact) of output o over the circuit's current terms."""
        key = (o, bool(sweeper and sweeper.stats))
        if key not in cache:
            value, known = (sweeper or spec).signal(int(drivers[o]))
            cache[key] = (z3.And(known, _wrong(enc, value, o, t, _frac(delta[o]))),
                          z3.And(known, _wrong(enc, value, o, t, Fraction(0))))
        return cache[key]

    for o in todo:
        query(o)
    encoded = time.perf_counter() - start
    outcomes = Outcomes(names, max_counterexamples)
    miter = _miter(solver, lambda: [query(o)[0] for o in todo],
                   int(timeout_ms) * max(len(todo), 1), sweeper)
    if miter == z3.unsat:
        for o in todo:
            outcomes.record(o, "proved", None)
    else:
        for o in todo:
            status, detail = _decide_output(solver, lambda o=o: query(o), features, timeout_ms,
                                            sweeper, lambda active, o=o: replay_model(
                                                circuit, module, o, active, threshold))
            outcomes.record(o, status, detail)
    return {
        **outcomes.report_fields(len(todo)),
        "max_rounding_bound": float(delta.max(initial=0.0)),
        "min_margin": None,
        "encoding": {"name": "pseudo-Boolean" if pure else "mixed pseudo-Boolean/real", **kinds,
                     "solver": "QF_FD (SAT + pseudo-Boolean)" if pure else "z3 default",
                     "miter": "one query" if miter == z3.unsat else f"per output (miter {miter})",
                     "sweep": sweeper.stats if sweeper else None,
                     "seconds_encoding": round(encoded, 3)},
        "note": f"encoding {'pseudo-Boolean' if pure else 'mixed pseudo-Boolean/real'} "
                f"({kinds['boolean']} boolean, {kinds['levelled']} levelled, {kinds['real']} real "
                f"neurons; miter {'proved in one query' if miter == z3.unsat else str(miter)}"
                f"{sweeper.describe() if sweeper else ''}): "
                "neurons are thresholds over the stored weights as exact rationals, or exact "
                "reals; every proved output also has a margin above its float rounding bound, "
                "except flagged ones, which leave the verdict undecided",
        "seconds": round(time.perf_counter() - start, 3),
        "timeout_ms": timeout_ms, "dtype": str(module.dtype).replace("torch.", ""),
    }
