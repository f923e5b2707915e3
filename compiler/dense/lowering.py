"""The `dense` target: exact lowering of every gate to ReLU neurons, layer by layer.

Every neuron takes integer values and every signal is exactly 0 or 1 on 0/1 inputs; a signal
read two or more layers above its own passes through carry neurons. `compile_dense` builds the
network (optionally for some outputs only); `lower_signals` lowers chosen signals for the
multilevel superposed blocks.

Gate table: docs/proofs/dense-lowering.md
"""

from __future__ import annotations

import numpy as np

from dsl import csr
from dsl.nodes import (CARE, COUNT, DEFAULT_CARE, DEFAULT_VALUES, FIRST, GATE, INPUTS, K, KEYS,
                       KIND, OFFSETS, OP, OPERANDS, TABLE, VALUES, Circuit)

from ..network import (CARRY, GATE_NEURON, TABLE_ROW, Layer, Network, input_families,
                       output_families, stack_layers)
from .forms import FormTable, combine, lookup
from .levels import analyse


def compile_dense(circuit: Circuit, outputs=None) -> Network:
    """Exact network for all outputs, or only for the output positions `outputs` (the read-out
    then has one row per selected output, in that order)."""
    drivers = circuit.output_drivers if outputs is None else circuit.output_drivers[outputs]
    hidden, readout = lower_signals(circuit, drivers)
    m = circuit.n_inputs
    return Network("dense", m, hidden + [readout], np.arange(m, dtype=np.int64),
                   output_families=output_families(circuit),
                   input_families=input_families(circuit),
                   sparsity=circuit.sparsity, circuit_name=circuit.name)


def lower_signals(circuit: Circuit, signals: np.ndarray) -> tuple:
    """(hidden layers, read-out) computing the circuit signals `signals` exactly from the input
    features: one read-out row per signal, its value exactly 0 or 1 on every input."""
    m = circuit.n_inputs          # the constant-0 signal's id is m
    lv = analyse(circuit, signals)
    table = FormTable(np.arange(m, dtype=np.int64), np.arange(m + 1, dtype=np.int64),
                      np.arange(m, dtype=np.int64), np.ones(m), np.zeros(m))
    layers, width = [], m
    for level in range(1, lv.depth + 1):
        layer, table = build_layer(circuit, lv, level, table, width, m)
        layers.append(layer)
        width = layer.n_out
    return layers, readout_layer(signals, lv, table, width, m)


class _LayerParts:
    """Neurons of one layer being assembled: weights (COO), biases, roles, value forms."""

    def __init__(self):
        self.rows, self.cols, self.vals, self.bias = [], [], [], []
        self.role, self.signal, self.part = [], [], []
        self.form_sig, self.form_off, self.form_nrn, self.form_cf, self.form_const = [], [], [], [], []
        self.count = 0

    def add_neurons(self, rows, cols, vals, bias, role, signal, part) -> int:
        first = self.count
        self.rows.append(rows)
        self.cols.append(cols)
        self.vals.append(vals)
        self.bias.append(bias)
        self.role.append(np.full(len(bias), role, dtype=np.int8))
        self.signal.append(signal)
        self.part.append(part)
        self.count += len(bias)
        return first

    def add_forms(self, signals, offsets, neurons, coefs, const) -> None:
        self.form_sig.append(signals)
        self.form_off.append(offsets)
        self.form_nrn.append(neurons)
        self.form_cf.append(coefs)
        self.form_const.append(const)

    def layer(self, n_in: int) -> Layer:
        blocks = [Layer(n_in, len(b), r, c, v, b, True, ro, s, p) for r, c, v, b, ro, s, p
                  in zip(self.rows, self.cols, self.vals, self.bias, self.role, self.signal,
                         self.part)]
        return stack_layers(blocks, n_in)

    def table(self) -> FormTable:
        offsets, shift = [np.zeros(1, np.int64)], 0
        for off in self.form_off:
            offsets.append(off[1:] + shift)
            shift += off[-1]
        cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
        return FormTable.build(cat(self.form_sig, np.int64), np.concatenate(offsets),
                               cat(self.form_nrn, np.int64), cat(self.form_cf, np.float64),
                               cat(self.form_const, np.float64))


def build_layer(circuit, lv, level, prev_table, n_in, const0):
    """Hidden layer `level` of the dense lowering and the value forms of the signals it makes
    (a FormTable: each live signal as an affine form of this layer's neurons)."""
    parts = _LayerParts()
    for key in circuit.signal_nodes:
        data = circuit.graph.nodes[key]
        lo, hi = data[FIRST], data[FIRST] + data[COUNT]
        here = lv.live[lo:hi] & (lv.level[lo:hi] == level)
        if not here.any():
            continue
        if data[KIND] == GATE and data[OP] != "not":
            _gate_neurons(parts, data, np.flatnonzero(here), prev_table, lv, const0)
        elif data[KIND] == TABLE:
            _table_neurons(parts, data, prev_table, lv, const0)
    _carry_neurons(parts, lv, level, prev_table, const0)
    return parts.layer(n_in), parts.table()


def _gate_neurons(parts, data, members, prev_table, lv, const0) -> None:
    op = data[OP]
    offsets, operands = data[OFFSETS], data[OPERANDS]
    n = csr.lengths(offsets)[members]
    k = data[K][members] if data[K] is not None else np.zeros(len(members), np.int64)
    if op == "ite":
        spec = _ite_spec(len(members))
    else:
        spec = _symmetric_spec(op, n, k)
    neuron_member, bias, value_coef, value_const, slot_coef = spec
    slot_off, slot_sig = csr.gather_rows(offsets, operands, members[neuron_member])
    if op == "ite":
        slot_cf = slot_coef.ravel()
    else:
        slot_cf = np.repeat(slot_coef, csr.lengths(slot_off)).astype(np.float64)
    rows, cols, vals, total_bias = combine(slot_off, slot_sig, slot_cf, bias, prev_table,
                                           lv.base, lv.negated, const0)
    signal = data[FIRST] + members
    part = np.arange(len(neuron_member)) - np.searchsorted(neuron_member, neuron_member)
    first = parts.add_neurons(rows, cols, vals, total_bias, GATE_NEURON, signal[neuron_member], part)
    per_member = np.bincount(neuron_member, minlength=len(members))
    parts.add_forms(signal, csr.offsets_from_lengths(per_member),
                    first + np.arange(len(neuron_member)), value_coef, value_const)


def _symmetric_spec(op, n, k):
    """Neurons of symmetric gates: (member of each neuron, bias, value coefficient, value
    constant per member, sign of the operand sum in each neuron)."""
    g = len(n)
    if op == "and":
        return np.arange(g), -(n - 1.0), np.ones(g), np.zeros(g), np.ones(g)
    if op == "or":
        return np.arange(g), np.ones(g), -np.ones(g), np.ones(g), -np.ones(g)
    if op == "xor":
        count = n
    elif op == "atleast":
        count = np.full(g, 2)
    elif op == "atmost":
        count = np.where((k == 0) | (k == n - 1), 1, 2)
    else:  # exactly
        count = np.where(k == 0, 1, 3)
    member = np.repeat(np.arange(g), count)
    p = np.arange(len(member)) - csr.offsets_from_lengths(count)[member]
    nm, km, cm = n[member], k[member], count[member]
    sign = np.ones(len(member))
    if op == "xor":
        bias = -p.astype(np.float64)
        coef = np.where(p == 0, 1.0, 2.0 * (-1.0) ** p)
        const = np.zeros(g)
    elif op == "atleast":
        bias = -km + 1.0 - p
        coef = np.where(p == 0, 1.0, -1.0)
        const = np.zeros(g)
    elif op == "atmost":
        single_zero = (cm == 1) & (km == 0)
        single_nand = (cm == 1) & (km != 0)
        sign = np.where(single_zero, -1.0, 1.0)
        bias = np.where(single_zero, 1.0, np.where(single_nand, -(nm - 1.0), -km - p * 1.0))
        coef = np.where(single_zero, 1.0, np.where(single_nand, -1.0, np.where(p == 0, -1.0, 1.0)))
        const = np.where((count == 1) & (k == 0), 0.0, 1.0)
    else:  # exactly
        single = cm == 1
        sign = np.where(single, -1.0, 1.0)
        bias = np.where(single, 1.0, -km + 1.0 - p)
        coef = np.where(single, 1.0, np.array([1.0, -2.0, 1.0])[np.minimum(p, 2)])
        const = np.zeros(g)
    return member, bias.astype(np.float64), coef, const, sign


def _ite_spec(g: int):
    member = np.repeat(np.arange(g), 2)
    bias = np.tile([-1.0, 0.0], g)
    coef = np.ones(2 * g)
    slot = np.tile(np.array([[1.0, 1.0, 0.0], [-1.0, 0.0, 1.0]]), (g, 1))
    return member, bias, coef, np.zeros(g), slot


def _table_neurons(parts, data, prev_table, lv, const0) -> None:
    keys, values, care = data[KEYS], data[VALUES], data[CARE]
    inputs = data[INPUTS]
    w, count = len(inputs), data[COUNT]
    default = _table_defaults(data)
    differs = care & (values != default[None, :])           # [R, count]
    rows = np.flatnonzero(differs.any(axis=1))
    bits = ((keys[rows, None] >> np.arange(w, dtype=np.uint64)) & np.uint64(1)).astype(np.float64)
    slot_off = csr.uniform(len(rows), w)
    slot_sig = np.tile(inputs, len(rows))
    slot_cf = (2.0 * bits - 1.0).ravel()
    bias = -(bits.sum(axis=1) - 1.0)
    r, c, v, b = combine(slot_off, slot_sig, slot_cf, bias, prev_table, lv.base, lv.negated, const0)
    first = parts.add_neurons(r, c, v, b, TABLE_ROW, np.full(len(rows), data[FIRST]), rows)
    out_rows, out_bits = np.nonzero(differs[rows].T)          # sorted by output bit
    coefs = values[rows][out_bits, out_rows].astype(np.float64) - default[out_rows]
    per_output = np.bincount(out_rows, minlength=count)
    parts.add_forms(data[FIRST] + np.arange(count), csr.offsets_from_lengths(per_output),
                    first + out_bits, coefs, default.astype(np.float64))


def _table_defaults(data) -> np.ndarray:
    """The value each output takes off the rows: the default, or where the default is don't
    care, the majority value of the rows (so fewer rows need weights)."""
    care, values = data[CARE], data[VALUES]
    ones = (care & values).sum(axis=0)
    zeros = (care & ~values).sum(axis=0)
    return np.where(data[DEFAULT_CARE], data[DEFAULT_VALUES], ones > zeros)


def _carry_neurons(parts, lv, level, prev_table, const0) -> None:
    n = len(lv.base)
    sig = np.arange(n)
    carry = np.flatnonzero((lv.base == sig) & (lv.level < level) & (lv.need >= level)
                           & (sig != const0) & (sig != const0 + 1))
    if len(carry) == 0:
        return
    rows, cols, vals, bias = combine(csr.uniform(len(carry), 1), carry, np.ones(len(carry)),
                                     np.zeros(len(carry)), prev_table, lv.base, lv.negated, const0)
    first = parts.add_neurons(rows, cols, vals, bias, CARRY, carry, np.zeros(len(carry), np.int64))
    parts.add_forms(carry, csr.uniform(len(carry), 1), first + np.arange(len(carry)),
                    np.ones(len(carry)), np.zeros(len(carry)))


def readout_layer(drivers, lv, table, n_in, const0) -> Layer:
    """The affine read-out: each driver's value form over the last hidden layer."""
    n_out = len(drivers)
    off, nrn, cf, const = lookup(table, drivers, lv.base, lv.negated, const0)
    rows = csr.row_of_each(off)
    keep = cf != 0
    return Layer(n_in, n_out, rows[keep], nrn[keep], cf[keep], const.astype(np.float64), relu=False)
