"""Reference semantics: the value of every output for a whole batch of inputs, with numpy.

This is the specification the verifier checks networks against. Values are ternary uint8:
0, 1, or DONT_CARE (2) for bits a table leaves unspecified. Don't-care propagates the way a
ternary simulator does: a gate is known when its known operands decide it (0 & X = 0,
atleast(2, 1, 1, X) = 1) and don't care otherwise; a table with a don't-care input bit gives
don't care on all its outputs.

Two evaluators compute the same thing:

* `evaluate(circuit, x)` walks the gate families in id order over a dense [B, n_signals]
  matrix. It is the definition: short and direct.
* `evaluate_active(circuit, active)` is event-driven for sparse inputs: it evaluates the
  all-zero input once, then for each input only the gates whose operands changed from that
  baseline. A million-output family costs the gates actually touched, not a million per input.
  Tests check it against `evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import csr
from .nodes import (CARE, COUNT, DEFAULT_CARE, DEFAULT_VALUES, FIRST, GATE, INPUT, INPUTS, K, KEYS,
                    KIND, OFFSETS, OP, OPERANDS, TABLE, VALUES, Circuit)

DONT_CARE = 2
_NOT = np.array([1, 0, DONT_CARE], dtype=np.uint8)


# ====================================================================== gate functions

def gate_from_counts(op: str, ones, unknown, n, k=None) -> np.ndarray:
    """Value of a symmetric gate from the number of operands that are 1 and that are unknown."""
    lo, hi = ones, ones + unknown
    if op == "xor":
        return np.where(unknown > 0, DONT_CARE, lo % 2).astype(np.uint8)
    if op == "and":
        k, op = n, "atleast"
    elif op == "or":
        k, op = 1, "atleast"
    if op == "atleast":
        yes, no = lo >= k, hi < k
    elif op == "atmost":
        yes, no = hi <= k, lo > k
    elif op == "exactly":
        yes, no = (lo == k) & (hi == k), (k < lo) | (k > hi)
    else:
        raise ValueError(f"not a symmetric op: {op}")
    return np.where(yes, 1, np.where(no, 0, DONT_CARE)).astype(np.uint8)


def ite_value(c, t, e) -> np.ndarray:
    """Ternary if-then-else: t where c = 1, e where c = 0, else their common value or DONT_CARE."""
    agree = np.where(t == e, t, DONT_CARE)
    return np.where(c == 1, t, np.where(c == 0, e, agree)).astype(np.uint8)


def table_value(data: dict, bits: np.ndarray) -> np.ndarray:
    """Outputs [R, count] of a table node for input bits [R, w] (ternary)."""
    rows = len(bits)
    unknown = (bits == DONT_CARE).any(axis=1)
    weights = np.left_shift(np.uint64(1), np.arange(bits.shape[1], dtype=np.uint64))
    keys = (bits.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64) if bits.shape[1] \
        else np.zeros(rows, np.uint64)
    table_keys = data[KEYS]
    pos = np.minimum(np.searchsorted(table_keys, keys), max(len(table_keys) - 1, 0))
    hit = (table_keys[pos] == keys) if len(table_keys) else np.zeros(rows, bool)
    values = np.where(hit[:, None], data[VALUES][pos] if len(table_keys) else False,
                      data[DEFAULT_VALUES][None, :])
    care = np.where(hit[:, None], data[CARE][pos] if len(table_keys) else False,
                    data[DEFAULT_CARE][None, :])
    out = np.where(care, values, DONT_CARE).astype(np.uint8)
    out[unknown] = DONT_CARE
    return out


def gate_rows(data: dict, slot_values: np.ndarray, offsets: np.ndarray, k) -> np.ndarray:
    """Values of gates whose operand values are given flat per CSR row (1-D slot_values)."""
    op = data[OP]
    if op == "not":
        return _NOT[slot_values]
    if op == "ite":
        cte = slot_values.reshape(-1, 3)
        return ite_value(cte[:, 0], cte[:, 1], cte[:, 2])
    ones = csr.row_sum(offsets, (slot_values == 1).astype(np.int64))
    unknown = csr.row_sum(offsets, (slot_values == DONT_CARE).astype(np.int64))
    return gate_from_counts(op, ones, unknown, csr.lengths(offsets), k)


# ====================================================================== inputs

def as_dense(circuit: Circuit, x) -> np.ndarray:
    """bool [B, m] from a 0/1 matrix."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != circuit.n_inputs:
        raise ValueError(f"expected a [B, {circuit.n_inputs}] 0/1 matrix, got shape {x.shape}")
    return x.astype(bool)


def as_active(circuit: Circuit, active) -> np.ndarray:
    """Padded int64 [B, K] (-1 = none) from a padded array or a list of lists of features."""
    if isinstance(active, np.ndarray) and active.ndim == 2:
        arr = active.astype(np.int64)
    else:
        rows = [list(r) for r in active]
        width = max((len(r) for r in rows), default=0)
        arr = np.full((len(rows), max(width, 1)), -1, dtype=np.int64)
        for i, r in enumerate(rows):
            arr[i, :len(r)] = r
    if ((arr < -1) | (arr >= circuit.n_inputs)).any():
        raise ValueError(f"active features must be in 0..{circuit.n_inputs - 1}")
    return arr


def active_to_dense(active: np.ndarray, m: int) -> np.ndarray:
    """bool [B, m] 0/1 rows from padded active-feature lists [B, w] (-1 = none)."""
    x = np.zeros((len(active), m), dtype=bool)
    rows, cols = np.nonzero(active >= 0)
    x[rows, active[rows, cols]] = True
    return x


# ====================================================================== dense evaluation

def evaluate(circuit: Circuit, x, max_cells: int = 1 << 26) -> np.ndarray:
    """uint8 [B, n_outputs] (0, 1 or DONT_CARE) for 0/1 inputs x [B, m]."""
    x = as_dense(circuit, x)
    chunk = max(1, max_cells // max(circuit.n_signals, 1))
    parts = [_evaluate_chunk(circuit, x[i:i + chunk]) for i in range(0, len(x), chunk)]
    if not parts:
        return np.zeros((0, circuit.n_outputs), dtype=np.uint8)
    return np.concatenate(parts)


def signal_values(circuit: Circuit, x: np.ndarray) -> np.ndarray:
    """uint8 [B, n_signals]: the value of every signal (inputs, constants, gates, tables)."""
    values = np.zeros((len(x), circuit.n_signals), dtype=np.uint8)
    values[:, :circuit.n_inputs] = x
    values[:, circuit.n_inputs + 1] = 1
    for key in circuit.signal_nodes:
        data = circuit.graph.nodes[key]
        lo, hi = data[FIRST], data[FIRST] + data[COUNT]
        if data[KIND] == GATE:
            values[:, lo:hi] = _dense_gate(data, values)
        elif data[KIND] == TABLE:
            values[:, lo:hi] = table_value(data, values[:, data[INPUTS]])
    return values


def _evaluate_chunk(circuit: Circuit, x: np.ndarray) -> np.ndarray:
    return signal_values(circuit, x)[:, circuit.output_drivers]


def _dense_gate(data: dict, values: np.ndarray) -> np.ndarray:
    """[B, count] values of one gate node, every gate of it at once."""
    op, offsets, operands = data[OP], data[OFFSETS], data[OPERANDS]
    reads = values[:, operands]                        # [B, nnz]
    if op == "not":
        return _NOT[reads]
    if op == "ite":
        cte = reads.reshape(len(values), -1, 3)
        return ite_value(cte[..., 0], cte[..., 1], cte[..., 2])
    starts = offsets[:-1]
    ones = np.add.reduceat((reads == 1).astype(np.int64), starts, axis=1)
    unknown = np.add.reduceat((reads == DONT_CARE).astype(np.int64), starts, axis=1)
    return gate_from_counts(op, ones, unknown, np.diff(offsets), data[K])


# ====================================================================== sparse evaluation

@dataclass
class SparseEval:
    """Outputs of B inputs as a baseline plus the differences from it.

    base     uint8 [n_outputs]: the outputs on the all-zero input
    rows, outputs, values   int64 / int64 / uint8 [n_changes], sorted by (row, output): output
             `outputs[i]` of input `rows[i]` is `values[i]` (which differs from base)
    """
    n_rows: int
    base: np.ndarray
    rows: np.ndarray
    outputs: np.ndarray
    values: np.ndarray

    def dense(self, start: int = 0, stop=None) -> np.ndarray:
        """uint8 [stop - start, n_outputs]: all outputs of inputs start .. stop-1."""
        stop = self.n_rows if stop is None else stop
        out = np.repeat(self.base[None, :], stop - start, axis=0)
        lo, hi = np.searchsorted(self.rows, [start, stop])
        out[self.rows[lo:hi] - start, self.outputs[lo:hi]] = self.values[lo:hi]
        return out

    def ones(self, row: int) -> np.ndarray:
        """Positions of the outputs that are 1 for input `row`."""
        lo, hi = np.searchsorted(self.rows, [row, row + 1])
        value = self.base.copy()
        value[self.outputs[lo:hi]] = self.values[lo:hi]
        return np.flatnonzero(value == 1)


def evaluate_active(circuit: Circuit, active, chunk: int = 8192, progress=None) -> SparseEval:
    """Outputs for inputs given as lists of active features (padded int64 [B, K] or lists)."""
    active = as_active(circuit, active)
    base_signals = signal_values(circuit, np.zeros((1, circuit.n_inputs), dtype=bool))[0]
    engine = _EventEngine(circuit, base_signals)
    parts = []
    for start in range(0, len(active), chunk):
        rows, outs, vals = engine.run(active[start:start + chunk])
        parts.append((rows + start, outs, vals))
        if progress is not None:
            progress(min(chunk, len(active) - start))
    if parts:
        rows, outs, vals = (np.concatenate(p) for p in zip(*parts))
    else:
        rows = outs = np.zeros(0, np.int64)
        vals = np.zeros(0, np.uint8)
    return SparseEval(len(active), base_signals[circuit.output_drivers], rows, outs, vals)


class _Changes:
    """Signals of one node that differ from the baseline: sorted keys row * count + member."""

    def __init__(self, first: int, count: int, rows, members, values):
        self.first, self.count = first, count
        keys = rows * count + members
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.rows, self.members, self.values = rows[order], members[order], values[order]

    @property
    def signals(self) -> np.ndarray:
        return self.members + self.first

    def lookup(self, rows, members, into: np.ndarray) -> None:
        if len(self.keys) == 0:
            return
        query = rows * self.count + members
        pos = np.minimum(np.searchsorted(self.keys, query), len(self.keys) - 1)
        hit = self.keys[pos] == query
        into[hit] = self.values[pos[hit]]


class _EventEngine:
    """Propagates changes from the all-zero baseline through the gate families in id order."""

    def __init__(self, circuit: Circuit, base: np.ndarray):
        self.c = circuit
        self.base = base
        self.exact = not (base == DONT_CARE).any() and not circuit.has_dont_care
        self.indexes = {}

    # ---------------------------------------------------------------- driver
    def run(self, active: np.ndarray):
        graph = self.c.graph
        self.changes = {}
        for idx, key in enumerate(self.c.signal_nodes):
            data = graph.nodes[key]
            if data[KIND] == INPUT:
                self._input_changes(idx, data, active)
            elif data[KIND] in (GATE, TABLE):
                incoming = [self.changes[p] for p in graph.predecessors(key) if p in self.changes]
                if not incoming:
                    continue
                rows = np.concatenate([ch.rows for ch in incoming])
                sigs = np.concatenate([ch.signals for ch in incoming])
                vals = np.concatenate([ch.values for ch in incoming])
                if data[KIND] == GATE:
                    found = self._gate(key, data, rows, sigs, vals)
                else:
                    found = self._table(data, rows, sigs)
                if found is not None and len(found[0]):
                    self.changes[key] = _Changes(data[FIRST], data[COUNT], *found)
        return self._outputs()

    def _input_changes(self, idx, data, active) -> None:
        lo, hi = data[FIRST], data[FIRST] + data[COUNT]
        rows, cols = np.nonzero((active >= lo) & (active < hi))
        if len(rows):
            members = active[rows, cols] - lo
            self.changes[self.c.signal_nodes[idx]] = _Changes(
                lo, data[COUNT], rows.astype(np.int64), members.astype(np.int64),
                np.ones(len(rows), np.uint8))

    def value(self, rows: np.ndarray, sigs: np.ndarray) -> np.ndarray:
        """Value of signal sigs[i] on input rows[i]."""
        out = self.base[sigs].copy()
        node = self.c.node_of_signal(sigs)
        for n in np.unique(node):
            ch = self.changes.get(self.c.signal_nodes[n])
            if ch is None:
                continue
            sel = np.flatnonzero(node == n)
            part = out[sel]
            ch.lookup(rows[sel], sigs[sel] - ch.first, part)
            out[sel] = part
        return out

    # ---------------------------------------------------------------- gates
    def _gate(self, key, data, rows, sigs, vals):
        index = self._index(key, data)
        cand_rows, cand_members = [], []
        if index["pairs"] is not None:
            r, m = self._pair_join(index["pairs"], rows, sigs, vals)
            cand_rows.append(r)
            cand_members.append(m)
        r, m = self._watch_candidates(index, rows, sigs)
        cand_rows.append(r)
        cand_members.append(m)
        rows_c, members = np.concatenate(cand_rows), np.concatenate(cand_members)
        if not index["unique"] and len(rows_c):
            keys = np.unique(rows_c * data[COUNT] + members)
            rows_c, members = keys // data[COUNT], keys % data[COUNT]
        if len(rows_c) == 0:
            return None
        off, operands = csr.gather_rows(data[OFFSETS], data[OPERANDS], members)
        slot_rows = np.repeat(rows_c, csr.lengths(off))
        k = None if data[K] is None else data[K][members]
        new = gate_rows(data, self.value(slot_rows, operands), off, k)
        differ = new != self.base[members + data[FIRST]]
        return rows_c[differ], members[differ], new[differ]

    def _watch_candidates(self, index, rows, sigs):
        lo = np.searchsorted(index["sig"], sigs, side="left")
        hi = np.searchsorted(index["sig"], sigs, side="right")
        lens = hi - lo
        total = int(lens.sum())
        if total == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        rep = np.repeat(np.arange(len(sigs)), lens)
        within = np.arange(total) - csr.offsets_from_lengths(lens)[rep]
        return rows[rep], index["member"][lo[rep] + within]

    def _pair_join(self, pairs, rows, sigs, vals):
        """Two-operand ANDs whose operands are both 0 at baseline: 1 only when both changed to 1.
        Join the changes of each input with themselves and look the pairs up."""
        keys, members, width = pairs
        up = vals == 1
        r, s = rows[up], sigs[up]
        order = np.lexsort((s, r))
        r, s = r[order], s[order]
        group_end = np.searchsorted(r, r, side="right")
        lens = group_end - np.arange(len(r)) - 1
        total = int(lens.sum())
        if total == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        i = np.repeat(np.arange(len(r)), lens)
        j = i + 1 + (np.arange(total) - csr.offsets_from_lengths(lens)[i])
        query = s[i] * width + s[j]
        pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        hit = keys[pos] == query
        return r[i][hit], members[pos[hit]]

    def _index(self, key, data) -> dict:
        """Which operand slots can change each gate (cached per node).

        With no don't-care anywhere, an AND that is 0 at baseline can only turn 1 if one chosen
        baseline-0 operand (its watch) changes, and dually for OR; two-operand ANDs with both
        operands 0 at baseline go to the pair join. Every other gate watches all its operands.
        """
        if key in self.indexes:
            return self.indexes[key]
        offsets, operands = data[OFFSETS], data[OPERANDS]
        count, op = data[COUNT], data[OP]
        rows = csr.row_of_each(offsets)
        watch = np.ones(len(operands), dtype=bool)
        pairs = None
        unique = op in ("not",)
        if self.exact and op in ("and", "or"):
            controlling = 0 if op == "and" else 1
            gate_base = self.base[data[FIRST]:data[FIRST] + count]
            base_ops = self.base[operands]
            is_ctrl = base_ops == controlling
            first_ctrl = _first_true_per_row(rows, is_ctrl)
            single = gate_base[rows] == controlling
            watch = np.where(single, first_ctrl, True)
            if op == "and":
                lens = csr.lengths(offsets)
                both_zero = (lens == 2) & (csr.row_sum(offsets, is_ctrl.astype(np.int64)) == 2)
                if both_zero.any():
                    members = np.flatnonzero(both_zero)
                    a = operands[offsets[members]]
                    b = operands[offsets[members] + 1]
                    width = np.int64(self.c.n_signals)
                    pk = a * width + b
                    order = np.argsort(pk)
                    pairs = (pk[order], members[order], width)
                    watch &= ~both_zero[rows]
            unique = bool((np.bincount(rows[watch], minlength=count) <= 1).all())
        sig, member = operands[watch], rows[watch]
        order = np.argsort(sig, kind="stable")
        index = {"sig": sig[order], "member": member[order], "pairs": pairs, "unique": unique}
        self.indexes[key] = index
        return index

    # ---------------------------------------------------------------- tables
    def _table(self, data, rows, sigs):
        touched = np.unique(rows[np.isin(sigs, data[INPUTS])])
        if len(touched) == 0:
            return None
        w = len(data[INPUTS])
        bits = self.value(np.repeat(touched, w), np.tile(data[INPUTS], len(touched)))
        out = table_value(data, bits.reshape(len(touched), w))
        base = self.base[data[FIRST]:data[FIRST] + data[COUNT]]
        r, m = np.nonzero(out != base[None, :])
        return touched[r], m.astype(np.int64), out[r, m]

    # ---------------------------------------------------------------- outputs
    def _outputs(self):
        drivers = self.c.output_drivers
        if "by_driver" not in self.indexes:
            order = np.argsort(drivers, kind="stable")
            self.indexes["by_driver"] = (drivers[order], order)
        sorted_drivers, positions = self.indexes["by_driver"]
        parts = []
        for ch in self.changes.values():
            sigs = ch.signals
            lo = np.searchsorted(sorted_drivers, sigs, side="left")
            hi = np.searchsorted(sorted_drivers, sigs, side="right")
            lens = hi - lo
            if lens.sum() == 0:
                continue
            rep = np.repeat(np.arange(len(sigs)), lens)
            within = np.arange(int(lens.sum())) - csr.offsets_from_lengths(lens)[rep]
            parts.append((ch.rows[rep], positions[lo[rep] + within], ch.values[rep]))
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8)
        rows, outs, vals = (np.concatenate(p) for p in zip(*parts))
        order = np.lexsort((outs, rows))
        return rows[order], outs[order], vals[order]


def _first_true_per_row(rows: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """bool like flags: True only at the first True of each row (rows non-decreasing)."""
    pos = np.flatnonzero(flags)
    first = np.ones(len(pos), dtype=bool)
    first[1:] = rows[pos[1:]] != rows[pos[:-1]]
    out = np.zeros(len(flags), dtype=bool)
    out[pos[first]] = True
    return out
