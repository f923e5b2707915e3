"""The circuit graph: node kinds, attribute names and their meaning.

A circuit is a `networkx.DiGraph` whose nodes are *families* of signals; every scalar signal
has a global integer id (inputs 0 .. m-1, the constants m and m + 1, then gates and table bits
in topological order). The attribute names are the module constants below, each with its
meaning next to it; code reads `data[FIRST]`, never `data["first"]`. `Circuit` holds the graph plus flat arrays derived from it.

Full reference (signals, node kinds, attributes per kind, gate semantics, edges, graph
attributes): docs/circuit-graph.md
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import networkx as nx
import numpy as np

# ---- node kinds: the values of the KIND attribute
INPUT, CONST, GATE, TABLE, WIRE, OUTPUT = "input", "const", "gate", "table", "wire", "output"
OPS = ("not", "and", "or", "xor", "atleast", "atmost", "exactly", "ite")
THRESHOLD_OPS = ("atleast", "atmost", "exactly")
SIGNAL_KINDS = (INPUT, CONST, GATE, TABLE)

# ---- node attributes of every node
KIND = "kind"          # one of INPUT, CONST, GATE, TABLE, WIRE, OUTPUT
LABEL = "label"        # short text for drawings
LINE = "line"          # source line where the node was defined (0 when not from source)
COLUMN = "column"      # source column where the node was defined (0 when not from source)
COUNT = "count"        # number of members (signals, or named members of a WIRE / OUTPUT)

# ---- signal-holding nodes (INPUT, CONST, GATE, TABLE)
FIRST = "first"        # first signal id of the node; it holds ids first .. first + count - 1

# ---- INPUT, TABLE, WIRE, OUTPUT
NAME = "name"          # the declared name (of a TABLE: the table's own name)
SHAPE = "shape"        # INPUT: (), (n,) for x[n], (n1, n2) for g[n1,n2]; WIRE/OUTPUT: () or None

# ---- GATE
OP = "op"              # the operator, one of OPS
OFFSETS = "offsets"    # int64 [count + 1]: gate j reads operands[offsets[j]:offsets[j + 1]]
OPERANDS = "operands"  # int64 [nnz]: global signal ids, sorted within a gate except for 'ite'
K = "k"                # int64 [count]: k of 'atleast'/'atmost'/'exactly'; None for other ops

# ---- TABLE
OUT_NAME = "out_name"  # the name of the table's output family
INPUTS = "inputs"      # int64 [w]: signal ids of the input bits, as listed (bit i of a key)
KEYS = "keys"          # uint64 [R] sorted: row r matches iff sum_i value(inputs[i]) << i == keys[r]
VALUES = "values"      # bool [R, count]: the row's output bits (False where don't care)
CARE = "care"          # bool [R, count]: False where the row says '*'
DEFAULT_VALUES = "default_values"  # bool [count]: VALUES for inputs matching no row
DEFAULT_CARE = "default_care"      # bool [count]: CARE for inputs matching no row

# ---- WIRE, OUTPUT (a named family of signals; SHAPE is () for a scalar, else None)
INDEX = "index"        # int64 [count, d]: index tuple of each member (d = 0: a scalar)
DRIVERS = "drivers"    # int64 [count]: the signal id of each member

# ---- edge attribute
REFS = "refs"          # number of member-level references (operand slots, table inputs, drivers)

# ---- graph attribute
SIGNAL_NAMES = "signal_names"  # optional dict {gate signal id: net name}, from dsl/formats readers

__all__ = [
    "INPUT", "CONST", "GATE", "TABLE", "WIRE", "OUTPUT", "OPS", "THRESHOLD_OPS", "SIGNAL_KINDS",
    "KIND", "LABEL", "LINE", "COLUMN", "COUNT", "FIRST", "NAME", "SHAPE",
    "OP", "OFFSETS", "OPERANDS", "K",
    "OUT_NAME", "INPUTS", "KEYS", "VALUES", "CARE", "DEFAULT_VALUES", "DEFAULT_CARE",
    "INDEX", "DRIVERS", "REFS", "SIGNAL_NAMES",
    "member_name", "Circuit",
]


def member_name(name: str, index) -> str:
    """The user-visible name of one member: `a`, `x[3]`, `y[3,5]`."""
    if len(index) == 0:
        return name
    return f"{name}[{','.join(str(int(i)) for i in index)}]"


@dataclass
class Circuit:
    """An elaborated circuit: the graph plus flat arrays derived from it for fast evaluation.

    Attributes:
        name        circuit name
        graph       the networkx.DiGraph documented in docs/circuit-graph.md
        n_inputs    m, the number of input features (= their signal ids 0 .. m-1)
        sparsity    K from `sparsity K;`, or None when every assignment is allowed
        n_signals   total number of signal ids
        signal_nodes  keys of the signal-holding nodes in id order (a topological order)
        output_nodes  keys of the OUTPUT nodes in declaration order
        wire_nodes    keys of the WIRE nodes in declaration order
        input_nodes   keys of the INPUT nodes in declaration order
        file        source file, if any
    """
    name: str
    graph: nx.DiGraph
    n_inputs: int
    sparsity: Optional[int]
    n_signals: int
    signal_nodes: list
    output_nodes: list
    wire_nodes: list
    input_nodes: list
    file: Optional[str] = None
    _cache: dict = field(default_factory=dict, repr=False)

    # ---- outputs
    @property
    def output_drivers(self) -> np.ndarray:
        """int64 [n_outputs]: the signal driving each output, outputs in declaration order."""
        if "drivers" not in self._cache:
            parts = [self.graph.nodes[k][DRIVERS] for k in self.output_nodes]
            self._cache["drivers"] = (np.concatenate(parts) if parts
                                      else np.zeros(0, dtype=np.int64))
        return self._cache["drivers"]

    @property
    def n_outputs(self) -> int:
        """Number of scalar outputs."""
        return int(self.output_drivers.shape[0])

    def output_names(self, positions=None) -> list[str]:
        """Names like `y[3,5]` of the outputs at `positions` (all outputs by default)."""
        return self._member_names(self.output_nodes, positions)

    def input_names(self, positions=None) -> list[str]:
        """Names of input features (ids 0 .. m-1) at `positions` (all by default)."""
        return self._member_names(self.input_nodes, positions)

    def _member_names(self, keys, positions) -> list[str]:
        starts, names, indexes = [], [], []
        offset = 0
        for key in keys:
            data = self.graph.nodes[key]
            index = data[INDEX] if INDEX in data else _box_index(data[SHAPE])
            starts.append(offset)
            names.append(data[NAME])
            indexes.append(index)
            offset += len(index)
        if positions is None:
            positions = range(offset)
        starts = np.asarray(starts, dtype=np.int64)
        result = []
        for p in positions:
            f = int(np.searchsorted(starts, p, side="right")) - 1
            result.append(member_name(names[f], indexes[f][p - starts[f]]))
        return result

    # ---- inputs
    def input_lookup(self) -> dict[str, int]:
        """Map from every input member name (`a`, `x[3]`) to its feature id."""
        if "input_lookup" not in self._cache:
            self._cache["input_lookup"] = {n: i for i, n in enumerate(self.input_names())}
        return self._cache["input_lookup"]

    # ---- gates
    def gate_nodes(self) -> list:
        """Keys of the GATE nodes, in signal-id order."""
        return [k for k in self.signal_nodes if self.graph.nodes[k][KIND] == GATE]

    def table_nodes(self) -> list:
        """Keys of the TABLE nodes, in signal-id order."""
        return [k for k in self.signal_nodes if self.graph.nodes[k][KIND] == TABLE]

    @property
    def n_gates(self) -> int:
        """Number of scalar gates (NOT gates included)."""
        return sum(self.graph.nodes[k][COUNT] for k in self.gate_nodes())

    @property
    def n_wires(self) -> int:
        """Number of scalar named wires."""
        return sum(self.graph.nodes[k][COUNT] for k in self.wire_nodes)

    @property
    def has_dont_care(self) -> bool:
        """Whether some table has a don't-care output bit (in a row or its default)."""
        for key in self.table_nodes():
            data = self.graph.nodes[key]
            if not data[CARE].all() or not data[DEFAULT_CARE].all():
                return True
        return False

    def signal_depth(self) -> np.ndarray:
        """int64 [n_signals]: gates (and tables) on the longest path from an input or constant."""
        if "depth" not in self._cache:
            depth = np.zeros(self.n_signals, dtype=np.int64)
            for key in self.signal_nodes:
                data = self.graph.nodes[key]
                lo, hi = data[FIRST], data[FIRST] + data[COUNT]
                if data[KIND] == GATE:
                    reads = depth[data[OPERANDS]]
                    depth[lo:hi] = 1 + np.maximum.reduceat(reads, data[OFFSETS][:-1])
                elif data[KIND] == TABLE:
                    depth[lo:hi] = 1 + (depth[data[INPUTS]].max() if len(data[INPUTS]) else 0)
            self._cache["depth"] = depth
        return self._cache["depth"]

    @property
    def depth(self) -> int:
        """Gates and tables on the longest path from an input to an output (0 without outputs)."""
        drivers = self.output_drivers
        return int(self.signal_depth()[drivers].max()) if len(drivers) else 0

    @property
    def signal_firsts(self) -> np.ndarray:
        """int64 [len(signal_nodes)]: the first signal id of each signal-holding node (cached)."""
        if "signal_firsts" not in self._cache:
            self._cache["signal_firsts"] = np.array(
                [self.graph.nodes[k][FIRST] for k in self.signal_nodes], dtype=np.int64)
        return self._cache["signal_firsts"]

    def node_of_signal(self, ids) -> np.ndarray:
        """Index into `signal_nodes` of the node holding each signal id: the one lookup from a
        signal to its node that every module uses."""
        return np.searchsorted(self.signal_firsts, np.asarray(ids), side="right") - 1


def _box_index(shape) -> np.ndarray:
    """All index tuples of a box shape in row-major order, as int64 [count, d]."""
    if len(shape) == 0:
        return np.zeros((1, 0), dtype=np.int64)
    grids = np.indices(shape).reshape(len(shape), -1).T
    return grids.astype(np.int64)
