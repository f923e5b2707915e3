"""Affine forms: each available signal as `const + sum coef * h_j` over one layer's neurons.

The lowering keeps, for every layer L, a `FormTable` of the (base) signals available there:
gates computed in layer L and signals carried into it. `lookup` returns the forms of any signals
(negations folded: the form of !s is 1 - form(s); constants have no terms) as CSR rows, and
`combine` builds neuron pre-activations `bias + sum_j coef_j * form(operand_j)` for a whole
family at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsl import csr

from ..network import sum_duplicates


@dataclass
class FormTable:
    """The affine forms of the signals available in one layer, CSR over signals sorted by id."""
    signals: np.ndarray     # int64 [S], sorted base signal ids
    offsets: np.ndarray     # int64 [S + 1]
    neurons: np.ndarray     # int64 [nnz]: neuron index within the layer
    coefs: np.ndarray       # float64 [nnz]
    const: np.ndarray       # float64 [S]

    @staticmethod
    def build(signals, offsets, neurons, coefs, const) -> "FormTable":
        """A FormTable of unsorted CSR forms (rows reordered by signal id)."""
        order = np.argsort(signals, kind="stable")
        off, nrn = csr.gather_rows(offsets, neurons, order)
        _, cf = csr.gather_rows(offsets, coefs, order)
        return FormTable(signals[order], off, nrn, cf, const[order])


def lookup(table: FormTable, sigs: np.ndarray, base: np.ndarray, negated: np.ndarray,
           const0: int):
    """CSR forms (offsets, neurons, coefs, const) of signals `sigs` in this table's layer."""
    b = base[sigs]
    neg = negated[sigs]
    is_const = (b == const0) | (b == const0 + 1)
    pos = np.searchsorted(table.signals, b)
    pos = np.minimum(pos, max(len(table.signals) - 1, 0))
    if len(table.signals) == 0:     # an empty layer (a circuit without inputs): constants only
        missing = ~is_const
    else:
        missing = ~is_const & (table.signals[pos] != b)
    if missing.any():
        raise AssertionError(f"signal {int(b[missing][0])} is not available in this layer")
    rows = np.where(is_const, 0, pos)
    if len(table.signals) == 0:
        off = np.zeros(len(rows) + 1, dtype=np.int64)
        nrn, cf = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    else:
        off, nrn = csr.gather_rows(table.offsets, table.neurons, rows)
        _, cf = csr.gather_rows(table.offsets, table.coefs, rows)
    const = table.const[rows] if len(table.const) else np.zeros(len(rows))
    # constants: no terms, value 0 or 1
    if is_const.any():
        keep = ~np.repeat(is_const, csr.lengths(off))
        off, nrn = csr.filter_values(off, nrn, keep)
        cf = cf[keep]
        const = np.where(is_const, (b == const0 + 1).astype(np.float64), const)
    sign = np.where(neg, -1.0, 1.0)
    cf = cf * np.repeat(sign, csr.lengths(off))
    const = np.where(neg, 1.0 - const, const)
    return off, nrn, cf, const


def combine(slot_offsets, slot_signals, slot_coefs, bias, table, base, negated, const0):
    """Pre-activations of neurons: neuron i = bias[i] + sum over its slots of coef * form(signal).

    Slots are given in CSR per neuron. Returns COO (rows, cols, vals) with duplicates summed,
    and the total bias.
    """
    f_off, f_nrn, f_cf, f_const = lookup(table, slot_signals, base, negated, const0)
    slot_neuron = csr.row_of_each(slot_offsets)
    total_bias = bias + np.bincount(slot_neuron, weights=slot_coefs * f_const,
                                    minlength=len(bias))
    term_slot = csr.row_of_each(f_off)
    rows = slot_neuron[term_slot]
    cols = f_nrn
    vals = slot_coefs[term_slot] * f_cf
    return (*sum_duplicates(rows, cols, vals), total_bias)
