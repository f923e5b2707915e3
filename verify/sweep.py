"""SAT sweeping: prove a boolean network's atoms equal to circuit signals, bottom-up, merging them.

A single miter of a deep arithmetic circuit (a 16x16 array multiplier) does not finish with a
SAT solver: nothing tells the solver which neuron computes which partial sum. Equivalence
checkers find out by simulation and prove it piece by piece. Here, on the pseudo-Boolean
encoding of verify/smt_boolean.py (`NetworkEncoder`: every boolean or levelled neuron is a sum
of atoms [L >= t], L a linear form over earlier atoms):

1. `AtomGraph.simulate` evaluates every atom on random inputs of the domain (the sparsity
   promise respected: at most K active features), exactly (integer-scaled weights), layer of
   atoms by layer of atoms; `dsl.semantics.signal_values` evaluates every circuit signal.
2. Atoms and signals with the same values on every sample (or opposite values) form candidate
   classes (`Classes`).
3. `sweep` visits the atoms in topological order (their ids). For each atom with a candidate
   (a circuit signal of its class, else an earlier atom) one query on the solver that holds the
   whole encoding (network, circuit, the domain's cardinality constraint) asks whether the two
   differ. unsat: the equality is a consequence of what the solver holds and is added to it (a
   merge: later queries see the two as one, so each one is local in effect); sat: the model is
   an input of the domain on which they differ, simulated (with its one-bit neighbours in the
   domain) to split the classes, and the atom is retried; unknown (its time-out): skipped.

Soundness: every equality added is entailed by the constraints already in the solver, which
include the domain's; adding an entailed constraint leaves the solver's models unchanged, so
any later unsat answer (an output proved) is exactly as valid as without sweeping. A query
never drops a constraint: the domain is in the solver before the first one. Nothing here ever
says an output is right; verify/smt_boolean.py still asks each output's query (the same
rounding margins and flagged rules) on the swept solver. docs/proofs/sweep.md.
"""

from __future__ import annotations

import math
import time

import numpy as np
import z3

from dsl.nodes import CONST, INPUT, K, KIND, OFFSETS, OP, OPERANDS, TABLE
from dsl.semantics import signal_values

SAMPLES = 2048            # random domain inputs simulated before the first query (at most)
SAMPLE_CELLS = 1 << 25    # ... and at most this many node values (large networks get fewer)
NEIGHBOURS = 31           # one-bit variants of each counterexample simulated with it
RETRIES = 4               # queries per atom (each refuted one refines its class)


# ================================================================ simulation

def _lcm(values) -> int:
    d = 1
    for v in values:
        d = d * v.denominator // math.gcd(d, v.denominator)
    return d


class AtomGraph:
    """The atoms of a `NetworkEncoder` as integer threshold gates, for simulation.

    Atom a is an input feature (`feature[a]` >= 0) or [sum_i w_i atom_i >= T] with integer w
    and T (the exact rational definition scaled by its common denominator). `levels` groups the
    defined atoms by depth, so a level reads only atoms of lower levels.
    """

    def __init__(self, enc):
        n = len(enc.bools)
        self.n = n
        self.feature = np.full(n, -1, dtype=np.int64)
        depth = np.zeros(n, dtype=np.int64)
        self.fan_in = np.zeros(n, dtype=np.int64)
        defs = {}
        for a in range(n):
            if a not in enc.definitions:
                self.feature[a] = int(enc.chain[a][0][1])       # chain key ("x", f)
                continue
            ids, coefs, t = enc.definitions[a]
            d = _lcm(list(coefs) + [t])
            defs[a] = ([int(i) for i in ids], [int(c * d) for c in coefs], math.ceil(t * d))
            depth[a] = 1 + max((depth[i] for i in ids), default=0)
            self.fan_in[a] = len(ids)
        # int64 sums are exact only below 2^63: beyond, the network is not swept
        self.exact = all(sum(map(abs, w)) + abs(t) < 1 << 62 for _, w, t in defs.values())
        by_depth = {}
        for a in defs:
            by_depth.setdefault(int(depth[a]), []).append(a)
        self.levels = [self._level(by_depth[k], defs) for k in sorted(by_depth)]

    def is_copy(self, atom: int) -> bool:
        """Whether the atom reads a single atom (it is that atom, its negation or a constant)."""
        return self.fan_in[atom] <= 1

    @staticmethod
    def _level(atoms, defs):
        rows, cols, ws = [], [], []
        for r, a in enumerate(atoms):
            ids, coefs, _ = defs[a]
            rows += [r] * len(ids)
            cols += ids
            ws += coefs
        return (np.asarray(atoms, np.int64), np.asarray(rows, np.int64),
                np.asarray(cols, np.int64), np.asarray(ws, np.int64),
                np.asarray([defs[a][2] for a in atoms], np.int64))

    def simulate(self, x: np.ndarray) -> np.ndarray:
        """bool [n_atoms, S]: every atom's value on the 0/1 inputs x [S, m]."""
        vals = np.zeros((self.n, len(x)), dtype=bool)
        is_feature = self.feature >= 0
        vals[is_feature] = x[:, self.feature[is_feature]].T.astype(bool)
        for atoms, rows, cols, ws, thresholds in self.levels:
            sums = np.zeros((len(atoms), len(x)), dtype=np.int64)
            np.add.at(sums, rows, vals[cols].astype(np.int64) * ws[:, None])
            vals[atoms] = sums >= thresholds[:, None]
        return vals


def sample_domain(m: int, sparsity, count: int, rng) -> np.ndarray:
    """bool [count, m]: random inputs of the domain (at most `sparsity` active when given;
    the number active uniform in 0..K, so the inputs near the bound K are well represented)."""
    if sparsity is None:
        return rng.random((count, m)) < 0.5
    x = np.zeros((count, m), dtype=bool)
    k = rng.integers(0, min(int(sparsity), m) + 1, size=count)
    keys = rng.random((count, m))
    order = np.argsort(keys, axis=1)
    for i in range(count):
        x[i, order[i, :k[i]]] = True
    return x


def neighbours(x: np.ndarray, sparsity, count: int, rng) -> np.ndarray:
    """x [m] and up to `count` copies with one bit flipped, all inside the domain."""
    m = len(x)
    flips = rng.choice(m, size=min(count, m), replace=False) if m else np.zeros(0, np.int64)
    out = np.repeat(x[None, :], len(flips) + 1, axis=0)
    out[np.arange(1, len(flips) + 1), flips] ^= True
    if sparsity is not None:
        out = out[out.sum(axis=1) <= sparsity]
    return out


# ================================================================ candidate classes

class Classes:
    """Nodes with equal (or opposite) simulation values. Node ids: circuit signals 0..S-1,
    atoms S + a. `values` [n_nodes, samples] grows by columns as inputs are added."""

    def __init__(self, circuit, graph: AtomGraph, x: np.ndarray):
        self.circuit, self.graph = circuit, graph
        self.n_signals = circuit.n_signals
        self.values = self._simulate(x)
        self._rebuild()

    def _simulate(self, x):
        sig = signal_values(self.circuit, x.astype(np.uint8)).T.astype(bool)
        return np.concatenate([sig, self.graph.simulate(x)])

    def _rebuild(self):
        norm = self.values ^ self.values[:, :1]               # complement so sample 0 is 0
        packed = np.packbits(norm, axis=1)
        self.members = {}
        self.key = [row.tobytes() for row in packed]
        for node, key in enumerate(self.key):
            self.members.setdefault(key, []).append(node)

    def add_inputs(self, x: np.ndarray) -> None:
        """Simulate more inputs and split the classes they tell apart."""
        self.values = np.concatenate([self.values, self._simulate(x)], axis=1)
        self._rebuild()

    def candidate(self, atom: int, skip=()):
        """(node, opposite) for atom `atom`: a circuit signal of its class (the latest one),
        else the earliest atom of its class before it; None when alone. `skip`: nodes tried."""
        node = self.n_signals + atom
        mates = [v for v in self.members[self.key[node]] if v != node and v not in skip]
        signals = [v for v in mates if v < self.n_signals]
        earlier = [v for v in mates if self.n_signals <= v < node]
        pick = signals[-1] if signals else (earlier[0] if earlier else None)
        if pick is None:
            return None
        return pick, bool(self.values[node, 0] != self.values[pick, 0])


# ================================================================ circuit signals as variables

class SignalVars:
    """One z3 Bool per circuit signal, defined from its operands' Bools (added to the solver
    on first use, cone first): queries name a signal by one variable, so an equality proved
    about it is about the same literal every later query reads. Definitions of fresh
    variables keep the solver's models (projected on the old variables) unchanged.
    Circuits without don't-care values only (two-valued gates)."""

    def __init__(self, solver, spec):
        self.solver, self.spec = solver, spec
        self.vars = {}

    def __getitem__(self, sig: int):
        if sig not in self.vars:
            new, stack = set(), [int(sig)]
            while stack:                    # the cone down to signals already defined
                s = stack.pop()
                if s not in self.vars and s not in new:
                    new.add(s)
                    stack.extend(self.spec.index.operands(s).tolist())
            for s in sorted(new):           # ids are a topological order
                self.vars[s] = self._define(s)
        return self.vars[sig]

    def _define(self, sig: int):
        data, local = self.spec.index.node(sig)
        kind = data[KIND]
        if kind == INPUT:
            return self.spec.feature(sig)
        if kind == CONST:
            return z3.BoolVal(local == 1)
        var = z3.Bool(f"sig{sig}")
        if kind == TABLE:
            self.solver.add(var == self.spec.signal(sig)[0])
            return var
        ops = data[OPERANDS][data[OFFSETS][local]:data[OFFSETS][local + 1]].tolist()
        args = [self.vars[int(o)] for o in ops]
        op = data[OP]
        if op == "not":
            value = z3.Not(args[0])
        elif op == "and":
            value = z3.And(args)
        elif op == "or":
            value = z3.Or(args)
        elif op == "xor":
            value = args[0]
            for a in args[1:]:
                value = z3.Xor(value, a)
        elif op == "ite":
            value = z3.If(args[0], args[1], args[2])
        else:
            pb = {"atleast": z3.PbGe, "atmost": z3.PbLe, "exactly": z3.PbEq}[op]
            value = pb([(a, 1) for a in args], int(data[K][local]))
        self.solver.add(var == value)
        return var


# ================================================================ the sweep

def sweep(solver, enc, spec, features: dict, circuit, time_limit: float = 60.0,
          query_ms: int = 1_000, seed: int = 0, signals: SignalVars | None = None,
          merges: list | None = None):
    """Prove atoms of `enc` equal to circuit signals or earlier atoms and add each proved
    equality to `solver` (which must already hold the network, the domain and nothing that
    is not entailed by them). Circuits with don't-care values are not swept.

    Args:
        solver: the z3 solver of `verify.smt_boolean.encode` (network + domain constraints).
        enc: its `NetworkEncoder` (atoms, definitions); spec: its `SpecEncoder`.
        features: feature index -> z3 Bool (shared by `enc` and `spec`).
        circuit: the reference circuit.
        time_limit: seconds for the whole sweep; atoms left are not merged.
        query_ms: z3 time limit of one equivalence query.
        signals: the circuit's `SignalVars` on this solver (default: new ones).
        merges: a list to append each proved equality to, as (atom, node, opposite): node a
            circuit signal id, or n_signals + an earlier atom; opposite: atom == not node.
    Returns:
        (statistics: atoms, copies, merged (proved equal), refuted and unknown queries,
        samples, seconds, complete; the `SignalVars`, None for don't-care circuits).
    """
    start = time.perf_counter()
    stats = {"atoms": 0, "copies": 0, "merged": 0, "refuted": 0, "unknown": 0, "samples": 0,
             "complete": True, "seconds": 0.0}
    if circuit.has_dont_care:
        stats["complete"] = False
        return stats, None
    rng = np.random.default_rng(seed)
    graph = AtomGraph(enc)
    if not graph.exact:
        stats["complete"] = False
        return stats, signals
    m = circuit.n_inputs
    count = min(SAMPLES, max(256, SAMPLE_CELLS // (graph.n + circuit.n_signals) // 64 * 64))
    x = sample_domain(m, circuit.sparsity, count, rng)
    x[0] = False                                           # the all-zero input is in every domain
    classes = Classes(circuit, graph, x)
    solver.set("timeout", int(query_ms))
    feats = [features[f] if f in features else spec.feature(f) for f in range(m)]
    signals = SignalVars(solver, spec) if signals is None else signals
    for atom in range(graph.n):
        if graph.feature[atom] >= 0:
            continue
        stats["atoms"] += 1
        if graph.is_copy(atom):          # [w a >= T] is a, not a or constant by definition
            stats["copies"] += 1
            continue
        if time.perf_counter() - start > time_limit:
            stats["complete"] = False
            break
        merged = _sweep_atom(solver, enc, signals, classes, atom, feats, circuit.sparsity, rng,
                             stats)
        if merged is not None and merges is not None:
            merges.append((atom, *merged))
    stats["samples"] = int(classes.values.shape[1])
    stats["seconds"] = round(time.perf_counter() - start, 3)
    return stats, signals


def _term(node: int, n_signals: int, enc, signals: SignalVars):
    return signals[node] if node < n_signals else enc.bools[node - n_signals]


def _sweep_atom(solver, enc, signals, classes, atom, feats, sparsity, rng, stats):
    """Merge one atom with a candidate of its class, refining the class on counterexamples;
    (node, opposite) when merged, else None."""
    tried = set()
    var = enc.bools[atom]
    for _ in range(RETRIES):
        found = classes.candidate(atom, tried)
        if found is None:
            return None
        node, opposite = found
        target = _term(node, classes.n_signals, enc, signals)
        target = z3.Not(target) if opposite else target
        lit = z3.FreshBool("sweep")
        solver.add(z3.Implies(lit, z3.Xor(var, target)))
        answer = solver.check(lit)
        solver.add(z3.Not(lit))
        if answer == z3.unsat:
            solver.add(var == target)
            stats["merged"] += 1
            return node, opposite
        if answer == z3.unknown:
            stats["unknown"] += 1
            tried.add(node)
            continue
        stats["refuted"] += 1
        model = solver.model()
        x = np.array([z3.is_true(model.eval(f, model_completion=True)) for f in feats])
        classes.add_inputs(neighbours(x, sparsity, NEIGHBOURS, rng))
    return None


# ================================================================ the driver's view

FIRST_TRY_MS = 1_000      # budget of a query tried before sweeping (most circuits need less)


class Sweeper:
    """Sweeping on demand for verify/smt_boolean.py: one `sweep` of the solver the first time a
    query needs it; from then on the circuit's signals are its variables (`signal`).

    `applies` is False for circuits with don't-care values (three-valued signals: the driver
    keeps the SpecEncoder terms and never sweeps)."""

    def __init__(self, solver, enc, spec, features: dict, circuit, time_limit: float):
        self.solver, self.enc, self.spec = solver, enc, spec
        self.features, self.circuit, self.time_limit = features, circuit, time_limit
        self.applies = not circuit.has_dont_care
        self.signals = SignalVars(solver, spec) if self.applies else None
        self.stats = None
        self.level = solver.num_scopes()      # every definition and merge is added here

    @property
    def pending(self) -> bool:
        """Whether a sweep could still help (it applies and has not run)."""
        return self.applies and self.stats is None

    def budget(self, timeout_ms: int) -> int:
        """The z3 time limit for the next query (call it at the solver's base level): short
        while a sweep is pending, else `timeout_ms`. FIRST_TRY_MS <= 0 sweeps right away."""
        if self.pending and FIRST_TRY_MS <= 0:
            self.run()
        return min(int(timeout_ms), FIRST_TRY_MS) if self.pending else int(timeout_ms)

    def signal(self, driver: int):
        """(value, known) z3 terms of a circuit signal: the SpecEncoder's until a sweep has
        run, then its variable (known is always true: no don't cares when swept). Call it at
        the solver's base level (a variable's definition is added on first use)."""
        if not self.stats:
            return self.spec.signal(driver)
        return self.signals[driver], z3.BoolVal(True)

    def run(self) -> dict:
        """Sweep the solver once (at its base level); the statistics."""
        if self.pending:
            if self.solver.num_scopes() != self.level:   # a query's assertion would stay in
                raise RuntimeError("sweep outside the solver's base level")
            self.stats, _ = sweep(self.solver, self.enc, self.spec, self.features, self.circuit,
                                  time_limit=self.time_limit, signals=self.signals)
        return self.stats

    def describe(self) -> str:
        """A clause for the report's note ('' when no sweep ran)."""
        if not self.stats:
            return ""
        st = self.stats
        return (f" after SAT sweeping: {st['merged']} atoms proved equal to circuit signals or "
                f"earlier atoms, {st['copies']} copies, {st['atoms'] - st['merged'] - st['copies']}"
                f" left, in {st['seconds']} s")
