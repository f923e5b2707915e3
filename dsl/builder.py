"""A circuit graph under construction: the part of building a `Circuit` that every front end shares.

The elaborator (`dsl/elaborate.py`) and the readers of standard formats (`dsl/formats/`) both
build the graph of dsl/nodes.py the same way:

    gb = GraphBuilder()
    x = gb.add_input("x", (4,))                # INPUT node, ids 0..3 (inputs first, in order)
    gates = gb.finish_inputs()                 # CONST node (ids m, m+1) and the GateBuilder
    y = gates.make("and", offsets, operands)   # gates: folded, simplified, shared (dsl/gates.py)
    gb.add_named("output", "y", index, y)      # OUTPUT (or WIRE) node: a named family
    circuit = gb.circuit("name", sparsity=None, file="x.sup")

Signal ids, node keys and attributes are exactly those documented in dsl/nodes.py.
"""

from __future__ import annotations

from typing import Optional

import networkx as nx
import numpy as np

from .gates import GateBuilder, add_reference_edges
from .nodes import (COLUMN, CONST, COUNT, DRIVERS, FIRST, INDEX, INPUT, KIND, LABEL, LINE, NAME,
                    OUTPUT, SHAPE, WIRE, Circuit)


class GraphBuilder:
    """Owns the graph, the signal-node bookkeeping and (after the inputs) the GateBuilder."""

    def __init__(self):
        self.graph = nx.DiGraph()
        self.signal_nodes: list = []     # keys of signal-holding nodes, in id order
        self.node_firsts: list = []      # first id of each of those nodes
        self.inputs: list = []           # INPUT node keys in declaration order
        self.outputs: list = []          # OUTPUT node keys in declaration order
        self.wires: list = []            # WIRE node keys in declaration order
        self.n_inputs = 0
        self.gates: Optional[GateBuilder] = None

    def add_input(self, name: str, shape: tuple = (), line: int = 0, column: int = 0) -> np.ndarray:
        """Declare an input family (shape () for a scalar); returns its signal ids."""
        if self.gates is not None:
            raise RuntimeError("inputs must be declared before finish_inputs()")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        first = self.n_inputs
        key = f"input:{name}"
        self.graph.add_node(key, **{KIND: INPUT, LABEL: name, NAME: name, SHAPE: tuple(shape),
                                    FIRST: first, COUNT: count, LINE: line, COLUMN: column})
        self.inputs.append(key)
        self.signal_nodes.append(key)
        self.node_firsts.append(first)
        self.n_inputs += count
        return np.arange(first, first + count, dtype=np.int64)

    def finish_inputs(self) -> GateBuilder:
        """Add the constants 0 and 1 (ids m and m + 1) and start the gate builder."""
        self.graph.add_node("const", **{KIND: CONST, LABEL: "0/1", FIRST: self.n_inputs, COUNT: 2,
                                        LINE: 0, COLUMN: 0})
        self.signal_nodes.append("const")
        self.node_firsts.append(self.n_inputs)
        self.gates = GateBuilder(self.graph, self.n_inputs, self.signal_nodes, self.node_firsts)
        return self.gates

    def add_named(self, kind: str, name: str, index: np.ndarray, drivers: np.ndarray,
                  line: int = 0, column: int = 0) -> str:
        """Add a WIRE or OUTPUT family: member j is `name[index[j]]`, driven by drivers[j]."""
        node_kind = OUTPUT if kind == OUTPUT else WIRE
        index = np.asarray(index, dtype=np.int64)
        drivers = np.ascontiguousarray(drivers, dtype=np.int64)
        key = f"{node_kind}:{name}"
        self.graph.add_node(key, **{KIND: node_kind, LABEL: name, NAME: name, INDEX: index,
                                    DRIVERS: drivers, COUNT: len(drivers),
                                    SHAPE: () if index.shape[1] == 0 else None,
                                    LINE: line, COLUMN: column})
        add_reference_edges(self.graph, self.signal_nodes, self.node_firsts, key, drivers)
        (self.outputs if node_kind == OUTPUT else self.wires).append(key)
        return key

    def circuit(self, name: str, sparsity: Optional[int] = None,
                file: Optional[str] = None) -> Circuit:
        """The finished `Circuit` named `name` over the graph built so far (sparsity None: no promise)."""
        return Circuit(name, self.graph, self.n_inputs, sparsity, self.gates.next_id,
                       self.signal_nodes, self.outputs, self.wires, self.inputs, file=file)
