"""Cones: the part of a network and of a circuit that one output depends on.

SMT verification decomposes per output: only the neurons with a path to the output's read-out
row, and only the gates in the driver's fan-in, are encoded. Both are found by walking the
sparse structure backwards, vectorized per layer / per gate family.
"""

from __future__ import annotations

import numpy as np

from dsl.nodes import FIRST, GATE, INPUTS, KIND, OFFSETS, OPERANDS, TABLE


def network_cone(layers, output: int) -> list[np.ndarray]:
    """Neuron indices per layer (layer 0 = input columns) that read-out row `output` uses.

    `layers` are `compiler.network.Layer`s (verify/smt.py's `module_layers`). Returns
    [cols_0, neurons_1, ..., neurons_D, [output]] (sorted arrays).
    """
    needed = [np.array([output], dtype=np.int64)]
    for layer in reversed(layers):
        mask = np.isin(layer.rows, needed[-1]) & (layer.vals != 0)
        needed.append(np.unique(layer.cols[mask]))
    return needed[::-1]


class SignalIndex:
    """For each signal id: its node's data and local position (cached lookups)."""

    def __init__(self, circuit):
        self.circuit = circuit
        self.keys = circuit.signal_nodes

    def node(self, sig: int):
        """(node data, position within the node) of signal `sig`."""
        i = int(self.circuit.node_of_signal(sig))
        data = self.circuit.graph.nodes[self.keys[i]]
        return data, sig - data[FIRST]

    def operands(self, sig: int) -> np.ndarray:
        """The signals `sig` reads: a gate's operands, a table's input bits, none otherwise."""
        data, local = self.node(sig)
        if data[KIND] == GATE:
            return data[OPERANDS][data[OFFSETS][local]:data[OFFSETS][local + 1]]
        if data[KIND] == TABLE:
            return data[INPUTS]
        return np.zeros(0, dtype=np.int64)


def signal_cone(index: SignalIndex, driver: int) -> list[int]:
    """Signals the driver depends on (itself included), in increasing id (topological) order."""
    seen, stack = {int(driver)}, [int(driver)]
    while stack:
        for op in index.operands(stack.pop()).tolist():
            if op not in seen:
                seen.add(op)
                stack.append(op)
    return sorted(seen)
