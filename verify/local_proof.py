"""Local proofs by enumeration: the structural-hashing fast path of `sup verify --method smt`.

Equivalence checkers (ABC's `cec`) first hash the structure: a node whose fan-ins are known
to be circuit signals is compared with the candidate signal directly, and circuits that are
equal gate by gate need no SAT call. Here, for a layered network whose weights and biases
are all integers (every dense network), before any z3 work:

1. Every input column, then every neuron in layer order, gets an exact *local function*:
   a small support (a sorted tuple of circuit signal ids) and the neuron's exact integer value
   for every one of the 2^k assignments of those signals (a numpy truth table). A neuron's
   table is computed from its fan-ins' tables over the union of their supports (at most
   `MAX_SUPPORT` signals), with the stored weights as exact integers and the ReLU applied;
   signals the table does not depend on are dropped.
2. A 0/1 table that is not a constant or one support signal is matched with a circuit signal:
   candidates have the same values on random domain inputs (as verify/sweep.py's classes),
   and a candidate is accepted only when its cone, evaluated over the same support (the cut;
   `cut_table`), gives the same table (or its complement) on ALL 2^k assignments. The neuron
   is then that signal: support (s,), table [0, 1] (or [1, 0]).
3. Each checked output's read-out row is a table over its support; the output's driver is
   evaluated over that support too, and the output is proved when, on every assignment, the
   read-out exceeds threshold + delta where the driver is 1 and is at most threshold - delta
   where it is 0 (delta: the same per-output float rounding bound as verify/smt_boolean.py,
   computed with this pass's exact neuron maxima as the encoder's `upper`).

Soundness: by induction in layer order, each table gives the neuron's exact value on every
input x as table[signals of x restricted to the support]: the support signals of x form one
of the 2^k assignments enumerated, so an equality checked on all of them holds for every x
(in particular on the domain). Simulation only proposes candidates. An equality that holds
only under the sparsity promise fails the enumeration and is left to z3, never assumed.
When any output is not proved this way (support too large, a non-integer weight, a thin
margin, a circuit with don't-care values, a wrong output), `prove_locally` returns None and
the z3 path runs unchanged; counterexamples always come from it.
"""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np

from dsl.nodes import CONST, GATE, INPUT, K, KIND, OFFSETS, OP, OPERANDS, TABLE, INPUTS
from dsl.semantics import gate_from_counts, signal_values, table_value

from .cones import SignalIndex
from .smt import Outcomes, layer_rows, rounding_setup, unit_roundoff
from .sweep import sample_domain

ENABLED = True          # False: always the z3 path (tests of that path switch it off)
MAX_SUPPORT = 12        # signals of one local truth table (4,096 assignments)
MAX_CUT_NODES = 64      # circuit signals evaluated for one candidate over a cut
CANDIDATES = 4          # circuit signals tried per neuron
SAMPLES = 256           # random domain inputs that propose candidates
EXHAUSTIVE = 1 << 10    # ... or every input, when there are at most this many
SORTED = 16             # latest members of a class ranked per polarity (structure first)
INT_LIMIT = 1 << 50     # larger |weights| or tables: not attempted (exact in int64 and float64)

_BITS = {}


def _bits(k: int) -> np.ndarray:
    """int64 [k, 2^k]: bit j of assignment i (cached)."""
    if k not in _BITS:
        _BITS[k] = (np.arange(1 << k, dtype=np.int64)[None, :] >> np.arange(k)[:, None]) & 1
    return _BITS[k]


def _spread(support, table, union_pos, bits):
    """`table` (over `support`) re-indexed by the assignments of the union (positions given)."""
    if not support:
        return np.broadcast_to(table[0], bits.shape[1:])
    idx = bits[union_pos[support[0]]].copy()
    for j, s in enumerate(support[1:], 1):
        idx |= bits[union_pos[s]] << j
    return table[idx]


def _reduce(support, table):
    """Drop the support signals `table` does not depend on: (support, table)."""
    keep = []
    t = table.reshape((2,) * len(support)) if support else table
    # axis of signal j is len(support) - 1 - j (bit j of the flat index)
    for j in range(len(support)):
        ax = len(support) - 1 - j
        lo, hi = np.take(t, 0, axis=ax), np.take(t, 1, axis=ax)
        keep.append(not np.array_equal(lo, hi))
    if all(keep):
        return tuple(support), table
    for j in range(len(support)):          # low bits first: higher axes go first
        if not keep[j]:
            t = np.take(t, 0, axis=len(support) - 1 - j)
    new = tuple(s for s, k in zip(support, keep) if k)
    return new, np.ascontiguousarray(t).reshape(-1)


class CutEvaluator:
    """Truth tables of circuit signals over a cut (a support of free signals)."""

    def __init__(self, circuit):
        self.index = SignalIndex(circuit)
        self.alias = {}      # signal -> (signal, flip): proved equal (or opposite) everywhere
        self.reads, self.nodes = {}, {}

    def operands(self, sig: int) -> list:
        """The signals `sig` reads (as ints; cached)."""
        if sig not in self.reads:
            self.reads[sig] = [int(o) for o in self.index.operands(sig).tolist()]
        return self.reads[sig]

    def node(self, sig: int):
        """(node data, position) of a signal (cached: the circuit's lookup is slow)."""
        if sig not in self.nodes:
            self.nodes[sig] = self.index.node(sig)
        return self.nodes[sig]

    def table(self, sig: int, support) -> np.ndarray | None:
        """uint8 [2^k]: signal `sig` for every assignment of `support`, evaluated through its
        cone down to the support; None when the cone reaches an input outside the support or
        has more than MAX_CUT_NODES signals."""
        bits = _bits(len(support))
        memo = {s: bits[j].astype(np.uint8) for j, s in enumerate(support)}
        order, stack, seen = [], [int(sig)], set()
        while stack:                               # the cone above the cut
            s = stack.pop()
            if s in memo or s in seen:
                continue
            rep, flip = self.alias.get(s, (None, False))
            if rep in memo and rep in support:     # a signal proved equal to a cut signal
                memo[s] = memo[rep] ^ np.uint8(flip)
                continue
            seen.add(s)
            if len(seen) > MAX_CUT_NODES:
                return None
            data, _ = self.node(s)
            if data[KIND] == INPUT:
                return None
            order.append(s)
            stack.extend(self.operands(s))
        n = 1 << len(support)
        for s in sorted(order):                    # ids are a topological order
            memo[s] = self._value(s, memo, n)
        return memo[int(sig)]

    def _value(self, s: int, memo: dict, n: int) -> np.ndarray:
        data, local = self.node(s)
        if data[KIND] == CONST:
            return np.full(n, int(local == 1), dtype=np.uint8)
        if data[KIND] == TABLE:
            bits = np.stack([memo[int(i)] for i in data[INPUTS]], axis=1)
            return table_value(data, bits)[:, local].astype(np.uint8)
        if data[KIND] != GATE:
            raise ValueError(f"unknown signal kind {data[KIND]}")
        ops = data[OPERANDS][data[OFFSETS][local]:data[OFFSETS][local + 1]].tolist()
        args = [memo[int(o)] for o in ops]
        op = data[OP]
        if op == "not":
            return 1 - args[0]
        if op == "ite":
            return np.where(args[0] == 1, args[1], args[2]).astype(np.uint8)
        ones = np.sum(args, axis=0, dtype=np.int64)
        k = None if data[K] is None else int(data[K][local])
        return gate_from_counts(op, ones, np.zeros_like(ones), len(args), k)


class LocalProver:
    """Exact local truth tables of a layered network's neurons (module docstring)."""

    def __init__(self, circuit, layers, input_map, seed: int = 0):
        self.circuit, self.layers = circuit, layers
        self.cut = CutEvaluator(circuit)
        m = circuit.n_inputs
        if (1 << m) <= EXHAUSTIVE:
            x = (np.arange(1 << m)[:, None] >> np.arange(m)[None, :]) & 1 == 1
            if circuit.sparsity is not None:
                x = x[x.sum(axis=1) <= circuit.sparsity]
        else:
            x = sample_domain(m, circuit.sparsity, SAMPLES, np.random.default_rng(seed))
            x[0] = False
        self.sim = signal_values(circuit, x.astype(np.uint8)).T.astype(bool)  # [signals, S]
        self.by_key = {}
        for s, row in enumerate(np.packbits(self.sim, axis=1)):
            self.by_key.setdefault(row.tobytes(), []).append(s)
        self.stats = {"neurons": 0, "matched": 0, "copies": 0, "tables": 0, "groups": 0, "substituted": 0,
                      "boolean": 0, "levelled": 0, "linear": 0, "real": 0,
                      "enumerated": 0}
        self.values = self._inputs(input_map, layers[0].n_in)
        self.cache = {}

    def _inputs(self, input_map, n_in: int) -> list:
        fed = {}
        for f, c in enumerate(input_map.tolist()):
            fed.setdefault(int(c), []).append(f)
        values = []
        for c in range(n_in):
            support = tuple(sorted(fed.get(c, [])))
            if len(support) > MAX_SUPPORT:
                values.append(None)
                continue
            table = _bits(len(support)).sum(axis=0) if support else np.zeros(1, np.int64)
            values.append((support, table.astype(np.int64)))
        return values

    def combine(self, cols, ws, bias: int, relu: bool):
        """(support, table) of relu?(sum ws * values[cols] + bias), or None beyond MAX_SUPPORT."""
        args = [self.values[c] for c in cols]
        if any(a is None for a in args):
            return None
        terms = self._grouped(args, ws)
        union = sorted(set().union(*(t[0] for t in terms)))
        if len(union) > MAX_SUPPORT:
            return None
        bits = _bits(len(union))
        pos = {s: j for j, s in enumerate(union)}
        acc = np.full(1 << len(union), bias, dtype=np.int64)
        for support, table in terms:
            acc += _spread(support, table, pos, bits)
        if np.abs(acc).max(initial=0) >= INT_LIMIT:
            return None
        if relu:
            np.maximum(acc, 0, out=acc)
        self.stats["enumerated"] += len(acc)
        return _reduce(tuple(union), acc)

    def _grouped(self, args, ws) -> list:
        """The weighted fan-ins as (support, table) terms; fan-ins with the same support (the
        parts of one levelled gate: an XOR's relu(s) and relu(s - 1)) are summed into one
        term, and a two-valued sum a + (b - a) g is matched as g with a circuit signal."""
        groups = {}
        for (support, table), w in zip(args, ws):
            groups.setdefault(support, []).append((table, w))
        terms = []
        for support, members in groups.items():
            total = members[0][0] * members[0][1]
            for table, w in members[1:]:
                total = total + table * w
            if len(members) > 1 and len(support) > 1:
                levels = np.unique(total)
                if len(levels) <= 2:
                    low, high = int(levels[0]), int(levels[-1])
                    support, bit = self.match(support, (total == high).astype(np.int64))
                    total = low + (high - low) * bit
                    self.stats["groups"] += 1
            terms.append((support, total))
        return terms

    def match(self, support, table):
        """A 0/1 table as one circuit signal (support (s,), table [0,1] or [1,0]) when a
        candidate equals it (or its complement) on every assignment; else unchanged."""
        if len(support) <= 1 or table.min() < 0 or table.max() > 1:
            if len(support) == 1:
                self.stats["copies"] += 1
            return support, table
        idx = np.zeros(self.sim.shape[1], dtype=np.int64)
        for j, s in enumerate(support):
            idx |= self.sim[s].astype(np.int64) << j
        sample = table[idx].astype(bool)
        inside = set(support)
        cands = [(c, flip) for flip in (False, True)
                 for c in self.by_key.get(np.packbits(sample ^ flip).tobytes(), [])[-SORTED:]]
        # structural candidates first: a gate reading only support signals
        cands.sort(key=lambda cf: (not set(self.cut.operands(cf[0])) <= inside, -cf[0]))
        proved = []
        for cand, flip in cands[:CANDIDATES]:
            cut = self.cut.table(cand, support)
            if cut is not None and np.array_equal(cut ^ flip, table):
                proved.append((cand, flip))
        if not proved:
            self.stats["tables"] += 1
            return support, table
        self.stats["matched"] += 1
        (rep, flip), rep_flip = proved[0], proved[0][1]
        for cand, flip in proved[1:]:           # both equal the table: equal to each other
            self.cut.alias.setdefault(cand, (rep, flip != rep_flip))
        return (rep,), np.array([1, 0] if rep_flip else [0, 1], dtype=np.int64)

    def hidden(self) -> tuple[list, list] | None:
        """Tables of every hidden layer (`values` ends as the last one); per layer, each
        neuron's largest exact value (the rounding bounds' `upper`). None when a neuron has
        no table (its support is too large)."""
        uppers = []
        for layer in self.layers[:-1]:
            new, top = [], np.zeros(layer.n_out)
            for r, (cols, vals) in enumerate(layer_rows(layer)):
                value = self._neuron(cols.tolist(), vals.astype(np.int64).tolist(),
                                     int(layer.bias[r]), layer.relu)
                if value is None:
                    return None
                new.append(value)
                top[r] = float(value[1].max())
                self.stats["neurons"] += 1
                self.stats["boolean" if top[r] <= 1 else "levelled"] += 1
            uppers.append(top if layer.relu else np.full(layer.n_out, np.inf))
            self.values = new
        return uppers

    def substitute(self, support, table):
        """Remove support signals that are functions of the other support signals: s = f(rest)
        on every input (its cone evaluated over the rest), so table[rest, s] is exactly
        table[rest, f(rest)] (assignments where s != f(rest) never occur). (support, table)."""
        for s in sorted(support, reverse=True):
            if s not in support:
                continue
            rest = tuple(v for v in support if v != s)
            f = self.cut.table(s, rest)
            if f is None:
                continue
            j = support.index(s)
            low = np.arange(1 << len(rest), dtype=np.int64)
            # the index in `support` of (rest assignment, s = f): insert bit j
            idx = ((low >> j) << (j + 1)) | (low & ((1 << j) - 1)) | (f.astype(np.int64) << j)
            support, table = _reduce(rest, table[idx])
            self.stats["substituted"] += 1
        return support, table

    def _neuron(self, cols, ws, bias: int, relu: bool):
        """`combine` then `match`, cached on the fan-in tables (copies of one signal through
        many layers, repeated gates)."""
        args = [self.values[c] for c in cols]
        if any(a is None for a in args):
            return None
        key = (tuple((a[0], a[1].tobytes()) for a in args), tuple(ws), bias, relu)
        if key not in self.cache:
            value = self.combine(cols, ws, bias, relu)
            self.cache[key] = self.match(*value) if value is not None and relu else value
        return self.cache[key]

    def output_proved(self, o: int, driver: int, threshold: Fraction, delta: Fraction) -> bool:
        """Whether read-out row o is above threshold + delta exactly where the driver is 1
        and at most threshold - delta where it is 0, on every assignment of its support (after
        `substitute` when the first check fails)."""
        layer = self.layers[-1]
        keep = (layer.rows == o) & (layer.vals != 0)
        y = self.combine(layer.cols[keep].tolist(), layer.vals[keep].astype(np.int64).tolist(),
                         int(layer.bias[o]), layer.relu)
        if y is None:
            return False
        if self._check(*y, driver, threshold, delta):
            return True
        return self._check(*self.substitute(*y), driver, threshold, delta)

    def _check(self, support, table, driver, threshold, delta) -> bool:
        spec = self.cut.table(int(driver), support)
        if spec is None:
            return False
        ones, zeros = table[spec == 1], table[spec == 0]
        if len(ones) and not Fraction(int(ones.min())) > threshold + delta:
            return False
        return not len(zeros) or Fraction(int(zeros.max())) <= threshold - delta


def integral(layers) -> bool:
    """Whether every weight and bias is an integer of magnitude below INT_LIMIT."""
    for layer in layers:
        for a in (layer.vals, layer.bias):
            if len(a) and (not np.isfinite(a).all() or (a != np.round(a)).any()
                           or np.abs(a).max() >= INT_LIMIT):
                return False
    return True


def prove_locally(circuit, module, outputs=None, tight_bounds=None, timeout_ms=None):
    """Prove every checked output by local enumeration, or None (the caller's z3 path runs).

    Args:
        circuit: the reference circuit; module: the SupModule (its stored weights are read).
        outputs: output positions to check (default: all).
        tight_bounds: verify.smt_boolean.tight_rounding_bounds (passed in to keep imports
            one way); with it the rounding bound per output is the smaller of the two bounds,
            the encoder's `upper` replaced by this pass's exact maxima.
        timeout_ms: recorded in the report only.
    Returns:
        A report dict with `verified` True and `encoding` name "local enumeration" when every
        checked output is proved, else None.
    Raises:
        ValueError: the module's dtype is not float32 or float64 (as the z3 path).
    """
    start = time.perf_counter()
    if not ENABLED or circuit.has_dont_care:
        return None
    layers, input_map, delta, threshold = rounding_setup(circuit, module)
    if not integral(layers) or any(not layer.relu for layer in layers[:-1]):
        return None
    prover = LocalProver(circuit, layers, input_map)
    uppers = prover.hidden()
    if uppers is None:
        return None
    if tight_bounds is not None:
        fed = np.bincount(input_map, minlength=layers[0].n_in).astype(np.float64)
        if circuit.sparsity is not None:
            fed = np.minimum(fed, circuit.sparsity)
        whole = [np.isfinite(u) for u in uppers]
        delta = np.minimum(delta, tight_bounds(layers, unit_roundoff(module.dtype),
                                               np.maximum(fed, 1.0), uppers, whole))
    drivers, names = circuit.output_drivers, circuit.output_names()
    todo = list(range(len(drivers)) if outputs is None else outputs)
    t = Fraction(float(threshold))
    for o in todo:
        d = float(delta[o])
        if not np.isfinite(d) or not prover.output_proved(o, int(drivers[o]), t, Fraction(d)):
            return None
    outcomes = Outcomes(names, 0)
    for o in todo:
        outcomes.record(o, "proved", None)
    st = prover.stats
    return {
        **outcomes.report_fields(len(todo)),
        "max_rounding_bound": float(delta.max(initial=0.0)),
        "min_margin": None,
        "encoding": {"name": "local enumeration", **st, "solver": "none (numpy truth tables)",
                     "miter": "none"},
        "note": f"local enumeration (structural hashing, no solver): {st['neurons']} neurons as "
                f"exact truth tables over at most {MAX_SUPPORT} circuit signals, {st['matched']} "
                f"proved equal to circuit signals on every assignment of their supports, "
                f"{st['copies']} copies; every output's read-out is above threshold + its "
                "float rounding bound exactly where the circuit says 1 and at most threshold "
                "- bound where it says 0, on every assignment of its support",
        "seconds": round(time.perf_counter() - start, 3),
        "timeout_ms": timeout_ms, "dtype": str(module.dtype).replace("torch.", ""),
    }
