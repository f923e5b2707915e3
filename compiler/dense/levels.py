"""Which signals a network needs and in which layer each one lives.

For a circuit (dsl/nodes.py) this computes, per signal id, vectorized per gate family:

* `base`, `negated`: a NOT gate is its operand with `negated` set (negations cost no neuron:
  the consumer folds 1 - h into its weights). Other signals are their own base.
* `live`: the signal feeds an output (dead wires are not compiled).
* `level`: the hidden layer whose neurons compute the signal (inputs and constants 0; a gate
  1 + the deepest operand; a NOT gate the level of its operand).
* `need`: the deepest layer at which some consumer reads the (base) signal; a signal needed
  above its own level is passed through one carry neuron per extra layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsl import csr
from dsl.nodes import COUNT, FIRST, GATE, INPUTS, KIND, OFFSETS, OP, OPERANDS, TABLE, Circuit


@dataclass
class SignalLevels:
    """Per signal id: `base`, `negated`, `live`, `level`, `need` (module docstring), and the depth D."""
    base: np.ndarray
    negated: np.ndarray
    live: np.ndarray
    level: np.ndarray
    need: np.ndarray
    depth: int          # number of hidden layers D (the read-out reads layer D)


def _reads(data: dict) -> np.ndarray:
    return data[OPERANDS] if data[KIND] == GATE else data[INPUTS]


def analyse(circuit: Circuit, drivers=None) -> SignalLevels:
    """Levels for computing the signals `drivers` (default: every output's driver)."""
    n = circuit.n_signals
    graph = circuit.graph
    base = np.arange(n, dtype=np.int64)
    negated = np.zeros(n, dtype=bool)
    level = np.zeros(n, dtype=np.int64)
    for key in circuit.signal_nodes:
        data = graph.nodes[key]
        lo, hi = data[FIRST], data[FIRST] + data[COUNT]
        if data[KIND] == GATE and data[OP] == "not":
            base[lo:hi] = base[data[OPERANDS]]
            negated[lo:hi] = ~negated[data[OPERANDS]]
            level[lo:hi] = level[data[OPERANDS]]
        elif data[KIND] == GATE:
            level[lo:hi] = 1 + np.maximum.reduceat(level[data[OPERANDS]], data[OFFSETS][:-1])
        elif data[KIND] == TABLE:
            level[lo:hi] = 1 + (level[data[INPUTS]].max() if len(data[INPUTS]) else 0)

    drivers = circuit.output_drivers if drivers is None else np.asarray(drivers, dtype=np.int64)
    live = np.zeros(n, dtype=bool)
    live[drivers] = True
    for key in reversed(circuit.signal_nodes):
        data = graph.nodes[key]
        lo, hi = data[FIRST], data[FIRST] + data[COUNT]
        if data[KIND] == GATE:
            rows = np.flatnonzero(live[lo:hi])
            if len(rows):
                _, ops = csr.gather_rows(data[OFFSETS], data[OPERANDS], rows)
                live[ops] = True
        elif data[KIND] == TABLE and live[lo:hi].any():
            live[data[INPUTS]] = True

    depth = int(level[drivers].max()) if len(drivers) else 0
    need = np.full(n, -1, dtype=np.int64)
    np.maximum.at(need, base[drivers], depth)
    for key in circuit.signal_nodes:
        data = graph.nodes[key]
        lo, hi = data[FIRST], data[FIRST] + data[COUNT]
        if data[KIND] == GATE and data[OP] != "not":
            rows = np.flatnonzero(live[lo:hi])
            if len(rows):
                off, ops = csr.gather_rows(data[OFFSETS], data[OPERANDS], rows)
                reader_level = np.repeat(level[lo + rows], csr.lengths(off))
                np.maximum.at(need, base[ops], reader_level - 1)
        elif data[KIND] == TABLE and live[lo:hi].any():
            np.maximum.at(need, base[data[INPUTS]], level[lo] - 1)
    return SignalLevels(base, negated, live, level, need, depth)
