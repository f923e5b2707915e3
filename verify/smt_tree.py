"""SMT proofs with z3 for conditional networks (forests of neuron trees, compiler/conditional/tree.py).

    report = verify_smt_tree(circuit, net, module=None, timeout_ms=10_000,
                             max_counterexamples=20, progress=True, outputs=None,
                             max_size=200_000)

One query per output over its tree (registers and gates as exact pseudo-Boolean constraints)
and its specification cone; the report has the fields of `verify_smt` plus `target`,
`trees_encoded`, `trees_too_large`, `thin_gates` and `outputs_too_large`.

Encoding, float rounding and soundness: docs/proofs/smt.md
"""

from __future__ import annotations

import functools
import math
import time
from fractions import Fraction

import numpy as np
import z3

from dsl import csr
from dsl.nodes import FIRST, INPUTS, KEYS, KIND, TABLE

from .cones import SignalIndex, signal_cone
from .progress import progress_bar
from .compare import decision_threshold
from .smt import Outcomes, SpecEncoder, decide, replay_model, unit_roundoff
from .report import returns_report

MAX_SIZE = 200_000


# ================================================================ weights and rounding bounds

_VALUE_FIELDS = ("reg_vals", "reg_bias", "gate_vals", "gate_bias", "entry_const", "term_vals")


def tree_weights(forest, module=None) -> tuple[dict, int]:
    """(value arrays as float64, significand bits p) as the evaluator stores them.

    With a module, its buffers (float32 or float64); without, the forest's float64 arrays."""
    if module is None:
        return {name: np.asarray(getattr(forest, name), np.float64) for name in _VALUE_FIELDS}, 53
    out = {name: getattr(module, name).detach().cpu().double().numpy() for name in _VALUE_FIELDS}
    # p from the dtype itself (float16 / bfloat16 are refused, not given float64's 53 bits)
    return out, -int(round(math.log2(unit_roundoff(module.dtype))))


def dyadic_scale(values: np.ndarray) -> np.ndarray:
    """Per value, the least s >= 0 with value * 2^s an integer (finite floats are dyadic)."""
    values = np.asarray(values, np.float64)
    frac, exp = np.frexp(values)                    # values = frac * 2^exp, |frac| in [0.5, 1)
    mant = np.abs(np.ldexp(frac, 53)).astype(np.int64)   # exact integer, values = mant 2^(exp-53)
    tz = np.zeros(len(values), np.int64)
    nz = mant != 0
    low = mant[nz] & -mant[nz]
    tz[nz] = np.round(np.log2(low.astype(np.float64))).astype(np.int64)
    s = 53 - exp.astype(np.int64) - tz
    s[~nz] = 0
    return np.maximum(s, 0)


def _row_bounds(offsets, cols, vals, bias, upper, err, scale, p: int):
    """(upper bound of |value|, rounding error bound, exact scale or -1) per affine row.

    upper / err / scale are per column of v = [x, registers] (scale -1: not known exact)."""
    n = len(offsets) - 1
    rows = csr.row_of_each(offsets)
    unit = 2.0 ** -p
    w = np.abs(vals)
    magnitude = np.bincount(rows, weights=w * (upper[cols] + err[cols]), minlength=n) + np.abs(bias)
    carried = np.bincount(rows, weights=w * err[cols], minlength=n)
    n_terms = np.bincount(rows, minlength=n) + (bias != 0)
    gamma = n_terms * unit / (1 - n_terms * unit)
    # exactness: every term w * v and the bias multiples of 2^-S, magnitude * 2^S <= 2^p
    col_scale = scale[cols]
    term_scale = np.where(col_scale >= 0, dyadic_scale(vals) + col_scale, 10 ** 6)
    S = np.maximum(_segment_max(rows, term_scale, n), np.where(bias != 0, dyadic_scale(bias), 0))
    inputs_exact = ~np.bincount(rows, weights=(err[cols] > 0) | (col_scale < 0),
                                minlength=n).astype(bool)
    with np.errstate(divide="ignore"):
        log_mag = np.where(magnitude > 0, np.log2(np.maximum(magnitude, 1e-300)), -np.inf)
    exact = inputs_exact & (S < 2000) & (log_mag + S <= p)
    error = np.where(exact, 0.0, carried + gamma * magnitude)
    row_upper = np.bincount(rows, weights=w * upper[cols], minlength=n) + np.abs(bias)
    return row_upper, error, np.where(exact, S, -1)


def _segment_max(rows, values, n):
    out = np.zeros(n, np.int64)
    if len(rows):
        np.maximum.at(out, rows, values.astype(np.int64))
    return out


def rounding_bounds_tree(forest, weights: dict, p: int) -> tuple[np.ndarray, np.ndarray]:
    """(per gate, per leaf entry): bounds on |float - exact| of the gate pre-activations and of
    the leaf read-out values, for 0/1 inputs (docs/proofs/smt.md)."""
    m = forest.n_inputs
    ones = np.ones(m)
    r_up, r_err, r_scale = _row_bounds(forest.reg_offsets, forest.reg_cols, weights["reg_vals"],
                                       weights["reg_bias"], ones, np.zeros(m),
                                       np.zeros(m, np.int64), p)
    upper = np.concatenate([ones, r_up])
    err = np.concatenate([np.zeros(m), r_err])
    scale = np.concatenate([np.zeros(m, np.int64), r_scale])
    _, g_err, _ = _row_bounds(forest.gate_offsets, forest.gate_cols, weights["gate_vals"],
                              weights["gate_bias"], upper, err, scale, p)
    _, e_err, _ = _row_bounds(forest.entry_offsets, forest.term_cols, weights["term_vals"],
                              weights["entry_const"], upper, err, scale, p)
    return g_err, e_err


# ================================================================ tree encoding
#
# Every stored weight is a float, hence a dyadic rational, and a gate reads 0/1 features and
# registers that are themselves affine in the features: substituting the registers, each gate
# condition g > 0 and each read-out comparison y > c is a linear inequality over 0/1 features
# with rational coefficients, i.e. after scaling by the common denominator an integer
# pseudo-Boolean constraint sum A_f x_f >= k. z3 gets those as PbGe (or, when a coefficient does
# not fit in 32 bits, as an integer sum of If terms), so every query is Boolean plus linear
# integer arithmetic, exact.

_ZERO_FORM = ({}, Fraction(0))


def _form(cols, vals, bias, m, reg_forms) -> tuple[dict, Fraction]:
    """The affine row w . [x, r] + b as (feature -> Fraction coefficient, Fraction constant),
    registers substituted."""
    coef, const = {}, Fraction(float(bias))
    for c, v in zip(cols.tolist(), vals.tolist()):
        if v == 0:
            continue
        w = Fraction(v)
        if c < m:
            coef[c] = coef.get(c, 0) + w
        else:
            r_coef, r_const = reg_forms[c - m]
            for f, a in r_coef.items():
                coef[f] = coef.get(f, 0) + w * a
            const += w * r_const
    return {f: a for f, a in coef.items() if a != 0}, const


class _Atoms:
    """z3 Bools of 'form > c', cached (the same inequality is built once)."""

    def __init__(self, feature):
        self.feature = feature
        self.cache = {}
        self.sums = {}

    def gt(self, form, c) -> z3.BoolRef:
        coef, const = form
        bound = Fraction(c) - const                  # sum coef_f x_f > bound
        if not coef:
            return z3.BoolVal(0 > bound)
        denom = 1
        for a in coef.values():
            denom = math.lcm(denom, a.denominator)
        denom = math.lcm(denom, bound.denominator)
        ints = {f: int(a * denom) for f, a in coef.items()}
        k = math.floor(bound * denom) + 1           # sum A_f x_f >= k
        # literals with positive coefficients: A x = -|A| + |A| (not x) for A < 0
        lits = []
        for f, a in sorted(ints.items()):
            if a > 0:
                lits.append((f, True, a))
            else:
                lits.append((f, False, -a))
                k += -a
        g = 0
        for _, _, a in lits:
            g = math.gcd(g, a)
        lits = [(f, pos, a // g) for f, pos, a in lits]
        k = -(-k // g)
        total = sum(a for _, _, a in lits)
        if k <= 0:
            return z3.BoolVal(True)
        if k > total:
            return z3.BoolVal(False)
        key = (tuple(lits), k)
        if key not in self.cache:
            self.cache[key] = self._build(lits, k)
        return self.cache[key]

    def _build(self, lits, k):
        terms = [(self.feature(f) if pos else z3.Not(self.feature(f)), a) for f, pos, a in lits]
        if len(terms) == 1:
            return terms[0][0]
        if all(a == 1 for _, a in terms) and k == 1:
            return z3.Or([t for t, _ in terms])
        if all(a == 1 for _, a in terms) and k == len(terms):
            return z3.And([t for t, _ in terms])
        limit = 2 ** 31 - 1
        if k <= limit and sum(a for _, a in terms) <= limit:
            return z3.PbGe(terms, k)
        # big coefficients (a table key): one shared integer sum per coefficient vector
        sig = tuple((f, pos, a) for f, pos, a in lits)
        if sig not in self.sums:
            self.sums[sig] = z3.Sum([z3.If(t, z3.IntVal(a), z3.IntVal(0)) for t, a in terms])
        return self.sums[sig] >= k


def _ite(c, a, b):
    """If(c, a, b) with the obvious collapses (shared nodes make equal branches common)."""
    if z3.eq(a, b) or z3.is_true(c):
        return a
    if z3.is_false(c):
        return b
    if z3.is_true(a) and z3.is_false(b):
        return c
    if z3.is_false(a) and z3.is_true(b):
        return z3.Not(c)
    return z3.If(c, a, b)


def _not(b):
    return z3.BoolVal(False) if z3.is_true(b) else z3.BoolVal(True) if z3.is_false(b) else z3.Not(b)


def _leaf_wrong(atoms, form, d, value, t):
    """Bool: a read-out `form` (rounding bound d) is on the wrong side of t for spec `value`:
    y <= t + d where the spec says 1, y > t - d where it says 0."""
    return _ite(value, _not(atoms.gt(form, t + d)), atoms.gt(form, t - d))


class _Tree:
    """One tree: reachable nodes in topological order, and (once encoded) its gate conditions
    and leaf read-outs as exact linear forms over the features."""

    def __init__(self, forest, t: int, g_err, e_err, by_tree_regs):
        self.forest, self.t = forest, t
        self.g_err, self.e_err = g_err, e_err
        f = forest
        root = int(f.tree_root[t])
        order, seen, stack = [], set(), [(root, False)]
        while stack:            # iterative DFS; a node is finished after all its children
            code, done = stack.pop()
            if done:
                order.append(code)
                continue
            if code in seen:
                continue
            seen.add(code)
            stack.append((code, True))
            if code >= 0:
                stack.extend((c, False) for c in f.gate_child[code].tolist() if c not in seen)
        self.postorder = order                        # children before parents
        self.root = root
        self.gates = [c for c in order if c >= 0]
        self.leaves = [-1 - c for c in order if c < 0]
        self.registers = by_tree_regs.get(t, [])
        go, eo, lo, ro = f.gate_offsets, f.entry_offsets, f.leaf_offsets, f.reg_offsets
        entries = [e for leaf in self.leaves for e in range(lo[leaf], lo[leaf + 1])]
        reg_terms = {j: int(ro[j + 1] - ro[j]) for j in self.registers}
        m = f.n_inputs

        def row_size(offsets, cols, r):    # terms after substituting registers
            cs = cols[offsets[r]:offsets[r + 1]]
            return int((cs < m).sum()) + sum(reg_terms.get(int(c) - m, 0) for c in cs[cs >= m])
        self.size = (len(order) + sum(row_size(go, f.gate_cols, g) for g in self.gates)
                     + sum(row_size(eo, f.term_cols, e) + 1 for e in entries))
        self.encoded = False

    def encode(self, weights, atoms: _Atoms):
        """Build the forms (once) with the stored `weights`; `atoms` makes the z3 Bools."""
        f, w, m = self.forest, weights, self.forest.n_inputs
        self.atoms = atoms
        reg_forms = {}
        for j in self.registers:
            lo, hi = f.reg_offsets[j], f.reg_offsets[j + 1]
            reg_forms[j] = _form(f.reg_cols[lo:hi], w["reg_vals"][lo:hi], w["reg_bias"][j], m, {})
        self.form, self.cond = {}, {}
        for g in self.gates:
            lo, hi = f.gate_offsets[g], f.gate_offsets[g + 1]
            self.form[g] = _form(f.gate_cols[lo:hi], w["gate_vals"][lo:hi], w["gate_bias"][g],
                                 m, reg_forms)
            self.cond[g] = atoms.gt(self.form[g], 0)
        self.leaf_entries = {}
        for leaf in self.leaves:
            entries = {}
            for e in range(f.leaf_offsets[leaf], f.leaf_offsets[leaf + 1]):
                lo, hi = f.entry_offsets[e], f.entry_offsets[e + 1]
                entries[int(f.entry_output[e])] = (
                    _form(f.term_cols[lo:hi], w["term_vals"][lo:hi], w["entry_const"][e], m,
                          reg_forms), Fraction(float(self.e_err[e])))
            self.leaf_entries[leaf] = entries
        self.features = sorted({c for form in list(self.form.values())
                                + [fm for es in self.leaf_entries.values() for fm, _ in es.values()]
                                for c in form[0]})
        self.encoded = True

    def wrong(self, o: int, value, threshold: float, widen: bool):
        """Bool: the read-out of output o at the leaf reached is on the wrong side of the
        threshold for the spec value `value` (widened by the leaf's rounding bound when
        `widen`): a nested If over the gate conditions, memoized over shared nodes."""
        t = Fraction(threshold)
        val = {}
        for code in self.postorder:
            if code < 0:
                form, d = self.leaf_entries[-1 - code].get(o, (_ZERO_FORM, Fraction(0)))
                d = d if widen else Fraction(0)
                val[code] = _leaf_wrong(self.atoms, form, d, value, t)
            else:
                c0, c1 = (int(c) for c in self.forest.gate_child[code])
                val[code] = _ite(self.cond[code], val[c1], val[c0])
        return val[self.root]

    def reach(self):
        """{gate: Bool} 'the input reaches this gate'."""
        incoming = {self.root: [z3.BoolVal(True)]}
        reach = {}
        for code in reversed(self.postorder):           # parents first
            here = incoming.get(code, [])
            reach[code] = here[0] if len(here) == 1 else z3.Or(here)
            if code >= 0:
                c0, c1 = (int(c) for c in self.forest.gate_child[code])
                incoming.setdefault(c0, []).append(z3.And(reach[code], z3.Not(self.cond[code])))
                incoming.setdefault(c1, []).append(z3.And(reach[code], self.cond[code]))
        return {g: reach[g] for g in self.gates}


# ================================================================ driver

@returns_report
def verify_smt_tree(circuit, net, module=None, timeout_ms: int = 10_000,
                    max_counterexamples: int = 20, progress: bool = True, outputs=None,
                    max_size: int = MAX_SIZE) -> dict:
    """Prove each output of a conditional network against `circuit` (docs/proofs/smt.md).

    Args:
        circuit: the reference circuit.
        net: a `ConditionalNetwork` or a bare `Forest`.
        module: its `ConditionalModule` (optional: without it the forest's float64 arrays are
            encoded and counterexamples are replayed on `Forest.walk`).
        timeout_ms: z3 time limit per query.
        max_counterexamples: how many replayed counterexamples to keep.
        progress: show a progress bar.
        outputs: output positions to check (default: all).
        max_size: trees larger than this (nodes plus terms plus spec rows) are not encoded;
            their outputs are undecided.
    Returns:
        The report: the fields of `verify_smt` plus `target`, `trees_encoded`,
        `trees_too_large`, `thin_gates` and `outputs_too_large`.
    """
    start = time.perf_counter()
    forest = getattr(net, "forest", net)
    # the threshold the module's `decide` compares with (its dtype's rounding of the stored
    # one); without a module, the network's own (the numpy walk compares in float64), and
    # for a bare Forest, which stores none, the networks' default 0.5
    threshold = (decision_threshold(module) if module is not None
                 else float(getattr(net, "threshold", 0.5)))
    evaluator = module if module is not None else _WalkEvaluator(forest)
    weights, p = tree_weights(forest, module)
    g_err, e_err = rounding_bounds_tree(forest, weights, p)
    drivers = circuit.output_drivers
    names = circuit.output_names()
    todo = list(range(len(drivers))) if outputs is None else [int(o) for o in outputs]
    by_tree_regs = {}
    for j, t in enumerate(forest.reg_tree.tolist()):
        by_tree_regs.setdefault(t, []).append(j)
    groups = {}
    for o in todo:
        groups.setdefault(int(forest.output_tree[o]), []).append(o)

    index = SignalIndex(circuit)
    outcomes = Outcomes(names, max_counterexamples)
    seconds_per, thin_gates, too_large = [], [], []
    trees_encoded = 0
    atoms = _Atoms(functools.lru_cache(maxsize=None)(lambda f: z3.Bool(f"x{f}")))  # as the spec's
    with progress_bar(len(todo), "outputs", enabled=progress) as bar:
        for t, outs in groups.items():
            tree = None if t < 0 else _Tree(forest, t, g_err, e_err, by_tree_regs)
            gate_status, gate_note = "ok", None
            shared, spec = 0.0, None
            if tree is not None and tree.size > max_size:
                too_large.append(t)
                for o in outs:
                    outcomes.record(o, "undecided",
                                    f"tree {t} too large for SMT ({tree.size:,} nodes and "
                                    f"terms > max_size {max_size:,}); check it exhaustively")
                    seconds_per.append(0.0)
                    bar.update(1)
                continue
            for o in outs:
                q0 = time.perf_counter()
                spec_size = _spec_size(circuit, index, int(drivers[o]))
                size = spec_size + (tree.size if tree is not None else 0)
                if size > max_size:
                    outcomes.record(o, "undecided",
                                    f"query too large for SMT ({size:,} tree nodes and terms "
                                    f"plus table entries > max_size {max_size:,}); check it "
                                    f"exhaustively")
                    too_large.append(t)
                    seconds_per.append(time.perf_counter() - q0)
                    bar.update(1)
                    continue
                if spec is None:       # one spec per tree: its outputs share table encodings
                    features = {}
                    spec = SpecEncoder(circuit, features)
                if tree is not None and not tree.encoded:
                    tree.encode(weights, atoms)
                    trees_encoded += 1
                    gate_status, gate_note, thin = _gate_margins(tree, circuit.sparsity,
                                                                 timeout_ms)
                    thin_gates.extend({"tree": t, "gate": g, "bound": float(g_err[g])}
                                      for g in thin)
                    shared = time.perf_counter() - q0
                    q0 = time.perf_counter()
                status, detail = _prove_output(circuit, evaluator, tree, atoms, o,
                                               int(drivers[o]), spec, features, threshold,
                                               timeout_ms)
                if status in ("proved", "flagged") and gate_status == "thin":
                    status = "flagged"
                elif status in ("proved", "flagged") and gate_status == "unknown":
                    status, detail = "undecided", gate_note
                seconds_per.append(time.perf_counter() - q0 + shared / len(outs))
                outcomes.record(o, status, detail)
                bar.update(1)
    bounds = np.concatenate([g_err, e_err])
    return {
        **outcomes.report_fields(len(todo)), "target": "conditional",
        "thin_gates": thin_gates[:50], "gates_thin": len(thin_gates),
        "trees_encoded": trees_encoded, "trees_too_large": sorted(set(too_large))[:50],
        "outputs_too_large": sum(1 for u in outcomes.undecided if "too large" in u["reason"]),
        "max_rounding_bound": float(bounds.max(initial=0.0)),
        "min_margin": None,
        "note": "proofs follow the branch conditions over exact real arithmetic with the stored "
                "weights as rationals; every proved output also has a margin above its float "
                "rounding bound at its leaf and every reachable gate a margin above its own, "
                "except flagged ones (thin margin), which leave the verdict undecided (check "
                "them exhaustively)",
        "seconds": round(time.perf_counter() - start, 3),
        "seconds_per_output": round(float(np.mean(seconds_per)), 5) if seconds_per else None,
        "timeout_ms": timeout_ms, "max_size": max_size,
        "dtype": "float32" if p == 24 else "float64",
    }


class _WalkEvaluator:
    """The numpy reference walk with the module interface `replay_model` uses."""

    def __init__(self, forest):
        self.forest = forest

    def forward_active(self, active):
        rows = [list(r) for r in active]
        width = max(1, max(len(r) for r in rows))
        arr = np.full((len(rows), width), -1, np.int64)
        for i, r in enumerate(rows):
            arr[i, :len(r)] = r
        return self.forest.walk(arr)


def _spec_size(circuit, index, driver: int) -> int:
    """Signals of the cone plus rows x width of its tables (what the spec encoding builds)."""
    cone = signal_cone(index, driver)
    size, seen = len(cone), set()
    for sig in cone:
        data, _ = index.node(sig)
        if data[KIND] == TABLE and data[FIRST] not in seen:
            seen.add(data[FIRST])
            size += len(data[KEYS]) * max(1, len(data[INPUTS]))
    return size


def _solver(timeout_ms, sparsity, features):
    solver = z3.Solver()
    solver.set("timeout", int(timeout_ms))
    if sparsity is not None and features:
        solver.add(z3.AtMost(*features, int(sparsity)))
    return solver


def _gate_margins(tree: _Tree, sparsity, timeout_ms):
    """('ok' | 'thin' | 'unknown', note, thin gates): does some input of the domain reach a
    gate g with -E_g < g <= E_g (where float could branch the other way)?"""
    candidates = [g for g in tree.gates if tree.g_err[g] > 0]
    if not candidates:
        return "ok", None, []
    reach = tree.reach()
    near = {}
    for g in candidates:
        e = Fraction(float(tree.g_err[g]))
        near[g] = z3.And(reach[g], tree.atoms.gt(tree.form[g], -e), _not(tree.atoms.gt(tree.form[g], e)))
    feats = [tree.atoms.feature(f) for f in tree.features]
    solver = _solver(timeout_ms, sparsity, feats)
    solver.add(z3.Or(list(near.values())))
    result = solver.check()
    if result == z3.unsat:
        return "ok", None, []
    if result == z3.unknown:
        return "unknown", f"gate margin check: solver {solver.reason_unknown()}", []
    model = solver.model()
    thin = [g for g, cond in near.items() if z3.is_true(model.eval(cond, True))]
    return "thin", None, thin


def _prove_output(circuit, evaluator, tree, atoms, o, driver, spec, features, threshold,
                  timeout_ms):
    value, known = spec.signal(driver)
    if tree is None:               # an output of no tree reads 0
        near = exact = _leaf_wrong(atoms, _ZERO_FORM, Fraction(0), value, Fraction(threshold))
    else:
        for f in tree.features:
            spec.feature(f)
        near = tree.wrong(o, value, threshold, widen=True)
        exact = tree.wrong(o, value, threshold, widen=False)
    solver = _solver(timeout_ms, circuit.sparsity, list(features.values()))
    solver.add(known)
    return decide(solver, None if z3.eq(near, exact) else near, exact, features,
                  lambda active: replay_model(circuit, evaluator, o, active, threshold))
