"""The network representation shared by every target: layers of sparse weights with ReLU between.

A `Network` maps m input features to n outputs:

    h_0 = x                       (x: 0/1 features, column input_map[f] holds feature f)
    h_L = relu(W_L h_{L-1} + b_L)  for the hidden layers L = 1 .. D
    y   = W_out h_D + b_out        (the read-out, affine)
    output i is 1 when y_i > threshold (0.5)

A layer with relu=False before the read-out is linear: the fixed encoder / code layer of a
network with inputs or outputs in superposition (compiler/codes.py, `meta["codes"]`).

Weights are kept as COO triples (rows, cols, vals; float64, exact small integers for the exact
targets). Every hidden neuron records what it is for (`role`, `signal`, `part`), so each weight
has a known meaning: role GATE_NEURON computes part `part` of gate `signal`, CARRY passes signal
`signal` through a layer unchanged, TABLE_ROW fires exactly on row `part` of the table whose first
output is `signal`. Targets with their own structure (a conditional tree) extend this class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

GATE_NEURON, CARRY, TABLE_ROW, CHANNEL = 0, 1, 2, 3
ROLE_NAMES = {GATE_NEURON: "gate", CARRY: "carry", TABLE_ROW: "table row", CHANNEL: "channel"}


def family_member_names(families) -> list[str]:
    """Member names (`y[3,5]`) of [(family name, index int64 [n, d])], in order."""
    from dsl.nodes import member_name
    return [member_name(name, idx) for name, index in families for idx in index]


@dataclass
class Layer:
    """An affine map [n_out x n_in] in COO form, followed by ReLU when `relu`."""
    n_in: int
    n_out: int
    rows: np.ndarray        # int64 [nnz]
    cols: np.ndarray        # int64 [nnz]
    vals: np.ndarray        # float64 [nnz]
    bias: np.ndarray        # float64 [n_out]
    relu: bool = True
    role: Optional[np.ndarray] = None    # int8 [n_out] (hidden layers)
    signal: Optional[np.ndarray] = None  # int64 [n_out]
    part: Optional[np.ndarray] = None    # int64 [n_out]

    @property
    def nnz(self) -> int:
        return int(np.count_nonzero(self.vals))

    def column_nnz(self) -> np.ndarray:
        """int64 [n_in]: nonzero weights in each input column."""
        return np.bincount(self.cols[self.vals != 0], minlength=self.n_in)

    def dense(self) -> np.ndarray:
        w = np.zeros((self.n_out, self.n_in))
        np.add.at(w, (self.rows, self.cols), self.vals)
        return w

    def apply(self, h: np.ndarray) -> np.ndarray:
        """[B, n_in] -> [B, n_out] in float64 (the numpy reference forward)."""
        out = np.repeat(self.bias[None, :], len(h), axis=0)
        for start in range(0, len(self.vals), 1 << 22):
            sl = slice(start, start + (1 << 22))
            contrib = h[:, self.cols[sl]] * self.vals[sl]
            np.add.at(out.T, self.rows[sl], contrib.T)
        return np.maximum(out, 0) if self.relu else out


@dataclass
class Network:
    """A compiled network. `layers[:-1]` are hidden ReLU layers, `layers[-1]` is the read-out."""
    target: str
    n_inputs: int
    layers: list
    input_map: np.ndarray                  # int64 [m]: feature f feeds column input_map[f]
    threshold: float = 0.5
    output_families: list = field(default_factory=list)   # [(name, index int64 [n, d])]
    input_families: list = field(default_factory=list)
    sparsity: Optional[int] = None
    circuit_name: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def hidden(self) -> list:
        return self.layers[:-1]

    @property
    def readout(self) -> Layer:
        return self.layers[-1]

    @property
    def n_outputs(self) -> int:
        return self.readout.n_out

    @property
    def input_width(self) -> int:
        return self.layers[0].n_in

    def output_names(self) -> list[str]:
        return family_member_names(self.output_families)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Read-out values y [B, n_out] (float64) for 0/1 features x [B, m]."""
        h = np.zeros((len(x), self.input_width))
        h[:, self.input_map] = x
        for layer in self.layers:
            h = layer.apply(h)
        return h

    def decide(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x) > self.threshold
