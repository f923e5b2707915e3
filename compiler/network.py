"""The network representation shared by every target: layers of sparse weights with ReLU between.

A `Network` maps m input features to n outputs:

    h_0 = x                       (x: 0/1 features, column input_map[f] holds feature f;
                                   a column fed by several features holds their sum)
    h_L = relu(W_L h_{L-1} + b_L)  for the hidden layers L = 1 .. D
    y   = W_out h_D + b_out        (the read-out, affine)
    output i is 1 when y_i > threshold (0.5)

A layer with relu=False before the read-out is linear: the fixed encoder / code layer of a
network with inputs or outputs in superposition (compiler/superposed/codes.py, `meta["codes"]`).

Weights are kept as COO triples (rows, cols, vals; float64, exact small integers for the exact
targets). Every hidden neuron records what it is for (`role`, `signal`, `part`), so each weight
has a known meaning: role GATE_NEURON computes part `part` of gate `signal`, CARRY passes signal
`signal` through a layer unchanged, TABLE_ROW fires exactly on row `part` of the table whose first
output is `signal`. Targets with their own structure (a conditional tree) extend this class.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from typing import Optional

import numpy as np

from dsl.nodes import INDEX, NAME, SHAPE, Circuit, member_name

GATE_NEURON, CARRY, TABLE_ROW, CHANNEL = 0, 1, 2, 3
ROLE_NAMES = {GATE_NEURON: "gate", CARRY: "carry", TABLE_ROW: "table row", CHANNEL: "channel"}


def family_member_names(families) -> list[str]:
    """Member names (`y[3,5]`) of [(family name, index int64 [n, d])], in order."""
    return [member_name(name, idx) for name, index in families for idx in index]


def output_families(circuit: Circuit) -> list:
    """[(name, index int64 [n, d])] of the circuit's output families, in declaration order."""
    return [(circuit.graph.nodes[k][NAME], circuit.graph.nodes[k][INDEX])
            for k in circuit.output_nodes]


def input_families(circuit: Circuit) -> list:
    """[(name, index int64 [n, d])] of the circuit's input families (a scalar: one row of
    width 0), in declaration order."""
    out = []
    for key in circuit.input_nodes:
        data = circuit.graph.nodes[key]
        shape = data[SHAPE]
        index = (np.indices(shape).reshape(len(shape), -1).T.astype(np.int64) if shape
                 else np.zeros((1, 0), np.int64))
        out.append((data[NAME], index))
    return out


def sum_duplicates(rows, cols, vals):
    """COO (rows, cols, vals) with equal (row, col) entries summed and zeros dropped."""
    if len(rows) == 0:
        return rows, cols, vals
    width = np.int64(cols.max() + 1)
    keys = rows * width + cols
    uniq, inverse = np.unique(keys, return_inverse=True)
    summed = np.bincount(inverse.reshape(-1), weights=vals, minlength=len(uniq))
    keep = summed != 0
    return uniq[keep] // width, uniq[keep] % width, summed[keep]


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
        """Number of nonzero weights."""
        return int(np.count_nonzero(self.vals))

    def column_nnz(self) -> np.ndarray:
        """int64 [n_in]: nonzero weights in each input column."""
        return np.bincount(self.cols[self.vals != 0], minlength=self.n_in)

    def dense(self) -> np.ndarray:
        """The weights as a dense float64 [n_out, n_in] matrix (duplicate entries summed)."""
        w = np.zeros((self.n_out, self.n_in))
        np.add.at(w, (self.rows, self.cols), self.vals)
        return w

    @classmethod
    def from_dense(cls, matrix: np.ndarray, bias: np.ndarray, relu: bool) -> "Layer":
        """The layer of a dense [n_out, n_in] matrix (its nonzero entries) and a bias."""
        n_out, n_in = matrix.shape
        rows, cols = np.nonzero(matrix)
        return cls(n_in, n_out, rows.astype(np.int64), cols.astype(np.int64),
                   matrix[rows, cols].astype(np.float64), np.asarray(bias, dtype=np.float64), relu)

    def apply(self, h: np.ndarray) -> np.ndarray:
        """[B, n_in] -> [B, n_out] in float64 (the numpy reference forward)."""
        out = np.repeat(self.bias[None, :], len(h), axis=0)
        for start in range(0, len(self.vals), 1 << 22):
            sl = slice(start, start + (1 << 22))
            contrib = h[:, self.cols[sl]] * self.vals[sl]
            np.add.at(out.T, self.rows[sl], contrib.T)
        return np.maximum(out, 0) if self.relu else out


def _cat(parts: list, dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def stack_layers(blocks: list, n_in: int, col_shifts=None, relu: bool = True) -> Layer:
    """One layer holding the neurons of several blocks side by side: block b's rows follow the
    rows of the blocks before it, its columns are shifted by `col_shifts[b]` (default 0). A block
    without roles contributes CARRY neurons of signal 0 (a pass-through)."""
    rows, cols, vals, bias, role, signal, part = [], [], [], [], [], [], []
    offset = 0
    for b, block in enumerate(blocks):
        shift = 0 if col_shifts is None else col_shifts[b]
        rows.append(block.rows + offset)
        cols.append(block.cols + shift)
        vals.append(block.vals)
        bias.append(block.bias)
        width = block.n_out
        role.append(block.role if block.role is not None else np.full(width, CARRY, np.int8))
        signal.append(block.signal if block.signal is not None else np.zeros(width, np.int64))
        part.append(block.part if block.part is not None else np.zeros(width, np.int64))
        offset += width
    return Layer(n_in, offset, _cat(rows, np.int64), _cat(cols, np.int64), _cat(vals, np.float64),
                 _cat(bias, np.float64), relu, _cat(role, np.int8), _cat(signal, np.int64),
                 _cat(part, np.int64))


def neuron_block(n_in: int, rows, cols, vals, bias, role: int, signal, part=None) -> Layer:
    """A hidden ReLU block of len(bias) neurons of one role (COO weights)."""
    n = len(bias)
    return Layer(n_in, n, np.asarray(rows, np.int64), np.asarray(cols, np.int64),
                 np.asarray(vals, np.float64), np.asarray(bias, np.float64), True,
                 np.full(n, role, np.int8), np.asarray(signal, np.int64),
                 np.zeros(n, np.int64) if part is None else np.asarray(part, np.int64))


def carry_layer(n_in: int, take: np.ndarray) -> Layer:
    """CARRY neurons relu(h) = h passing the units `take` of a non-negative layer up unchanged."""
    idx = np.arange(len(take), dtype=np.int64)
    return neuron_block(n_in, idx, take, np.ones(len(take)), np.zeros(len(take)), CARRY, take)


@dataclass
class CompiledNetwork:
    """What every target's network shares: how its inputs and outputs are named, the decision
    threshold, the sparsity promise it was compiled for, and free-form compile notes (`meta`,
    never read to compute an output). Subclasses add the computation (layers, a forest)."""
    _: KW_ONLY
    threshold: float = 0.5                 # output i is 1 when its read-out value > threshold
    output_families: list = field(default_factory=list)   # [(name, index int64 [n, d])]
    input_families: list = field(default_factory=list)
    sparsity: Optional[int] = None
    circuit_name: str = ""
    meta: dict = field(default_factory=dict)

    def output_names(self) -> list[str]:
        """Member names of the outputs, in read-out order (`y[3,5]`)."""
        return family_member_names(self.output_families)


@dataclass
class Network(CompiledNetwork):
    """A layered network. `layers[:-1]` are hidden (ReLU or linear code) layers, `layers[-1]` is
    the affine read-out."""
    target: str
    n_inputs: int
    layers: list
    input_map: np.ndarray                  # int64 [m]: feature f feeds column input_map[f]

    @property
    def hidden(self) -> list:
        """The hidden layers (every layer but the read-out)."""
        return self.layers[:-1]

    @property
    def readout(self) -> Layer:
        """The affine read-out layer."""
        return self.layers[-1]

    @property
    def n_outputs(self) -> int:
        """Number of outputs (read-out rows)."""
        return self.readout.n_out

    @property
    def input_width(self) -> int:
        """Number of columns of the first layer's input."""
        return self.layers[0].n_in

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Read-out values y [B, n_out] (float64) for 0/1 features x [B, m]. A column that
        several features feed (a non-injective input map) holds their sum, as in every module
        and verifier."""
        h = np.zeros((len(x), self.input_width))
        np.add.at(h.T, self.input_map, np.asarray(x, dtype=np.float64).T)
        for layer in self.layers:
            h = layer.apply(h)
        return h

    def decide(self, x: np.ndarray) -> np.ndarray:
        """Output bits [B, n_out] for 0/1 features x [B, m]."""
        return self.forward(x) > self.threshold

    def to_arrays(self) -> tuple:
        """(named arrays, JSON fields) that store this network (backends/serialize.py)."""
        return network_to_arrays(self)

    @classmethod
    def from_arrays(cls, tensors: dict, meta: dict) -> "Network":
        """The network stored by `to_arrays` (NetworkFormatError when incomplete)."""
        return network_from_arrays(tensors, meta)

    def problems(self) -> list:
        """Why this (loaded) network is inconsistent; [] when it is well formed."""
        return network_problems(self)


# ------------------------------------------------------------------ stored form

LAYER_ARRAYS = ("rows", "cols", "vals", "bias", "role", "signal", "part")


class NetworkFormatError(ValueError):
    """Stored arrays or fields that do not make a well-formed network."""


def is_ints(a, ndim: int = 1) -> bool:
    """An integer numpy array of rank `ndim`."""
    return isinstance(a, np.ndarray) and a.ndim == ndim and a.dtype.kind in "iu"


def is_reals(a) -> bool:
    """A finite real (or integer) numpy vector."""
    return (isinstance(a, np.ndarray) and a.ndim == 1 and a.dtype.kind in "iuf"
            and bool(np.isfinite(a).all()))


def naming_fields(net: CompiledNetwork) -> dict:
    """The JSON fields every stored network has: threshold, sparsity, names, meta."""
    return {"threshold": net.threshold, "sparsity": net.sparsity,
            "circuit_name": net.circuit_name,
            "output_families": [n for n, _ in net.output_families],
            "input_families": [n for n, _ in net.input_families], "meta": net.meta}


def family_arrays(net: CompiledNetwork) -> dict:
    """The families' index tables as named arrays (`outputs.<j>.index`, `inputs.<j>.index`)."""
    tensors = {}
    for prefix, families in (("outputs", net.output_families), ("inputs", net.input_families)):
        for j, (_, index) in enumerate(families):
            tensors[f"{prefix}.{j}.index"] = np.ascontiguousarray(index, dtype=np.int64)
    return tensors


def naming_from_stored(tensors: dict, meta: dict) -> dict:
    """Keyword arguments of CompiledNetwork from stored arrays and JSON (KeyError, TypeError or
    ValueError when something is missing or of the wrong type)."""
    threshold = meta["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError("threshold is not a number")
    return {"threshold": float(threshold), "sparsity": meta["sparsity"],
            "circuit_name": str(meta["circuit_name"]), "meta": meta.get("meta", {}),
            "output_families": [(name, tensors[f"outputs.{j}.index"])
                                for j, name in enumerate(meta["output_families"])],
            "input_families": [(name, tensors[f"inputs.{j}.index"])
                               for j, name in enumerate(meta["input_families"])]}


def naming_problems(net: CompiledNetwork) -> list:
    """What is wrong with the shared fields of a loaded network ([] when nothing)."""
    if not (net.sparsity is None or (isinstance(net.sparsity, int)
                                     and not isinstance(net.sparsity, bool) and net.sparsity >= 0)):
        return ["sparsity is not a non-negative integer"]
    if not np.isfinite(net.threshold):
        return ["threshold is not a finite number"]
    if not isinstance(net.meta, dict):
        return ["meta is not a JSON object"]
    for what, families in (("output", net.output_families), ("input", net.input_families)):
        if not all(isinstance(name, str) and is_ints(index, 2) for name, index in families):
            return [f"{what} families are not names with 2-D integer index arrays"]
    return []


def network_to_arrays(net: Network) -> tuple:
    """(named arrays, JSON fields) of a layered network, for backends/serialize.py."""
    tensors = {"input_map": np.ascontiguousarray(net.input_map, dtype=np.int64)}
    layers = []
    for i, layer in enumerate(net.layers):
        for name in LAYER_ARRAYS:
            value = getattr(layer, name)
            if value is not None:
                tensors[f"layers.{i}.{name}"] = np.ascontiguousarray(value)
        layers.append({"n_in": layer.n_in, "n_out": layer.n_out, "relu": layer.relu})
    tensors.update(family_arrays(net))
    return tensors, {"n_inputs": net.n_inputs, "layers": layers, **naming_fields(net)}


def network_from_arrays(tensors: dict, meta: dict) -> Network:
    """The layered network stored as `network_to_arrays` wrote it (NetworkFormatError when
    fields are missing or of the wrong type; check `network_problems` after)."""
    try:
        layers = []
        for i, shape in enumerate(meta["layers"]):
            arrays = {name: tensors.get(f"layers.{i}.{name}") for name in LAYER_ARRAYS}
            if not isinstance(shape["relu"], bool):
                raise TypeError(f"layer {i}: relu must be true or false")
            layers.append(Layer(int(shape["n_in"]), int(shape["n_out"]), arrays["rows"],
                                arrays["cols"], arrays["vals"], arrays["bias"], shape["relu"],
                                arrays["role"], arrays["signal"], arrays["part"]))
        return Network(meta["target"], int(meta["n_inputs"]), layers, tensors["input_map"],
                       **naming_from_stored(tensors, meta))
    except (KeyError, TypeError, ValueError) as exc:
        raise NetworkFormatError(f"incomplete sup model ({exc})") from None


def network_problems(net: Network) -> list:
    """Why a loaded layered network is inconsistent ([] when it is not): arrays present, 1-D
    (index tables 2-D), integer where they index, finite where they are weights, every index in
    range, widths chained, names matching the read-out. So no later code can index out of
    bounds on a crafted file."""
    if not net.layers:
        return ["no layers (a network has at least its read-out)"]
    if net.n_inputs < 0 or any(layer.n_in < 0 or layer.n_out < 0 for layer in net.layers):
        return ["negative width"]
    problems = naming_problems(net)
    if problems:
        return problems
    width = net.layers[0].n_in
    if not is_ints(net.input_map):
        problems.append("input map is not an integer vector")
    elif len(net.input_map) != net.n_inputs or (len(net.input_map) and (
            net.input_map.min() < 0 or net.input_map.max() >= width)):
        problems.append("input map does not fit the first layer")
    for i, layer in enumerate(net.layers):
        problems += _layer_problems(i, layer, net.layers[i - 1] if i else None)
    if not problems and sum(len(index) for _, index in net.output_families) != net.n_outputs:
        problems.append("output names do not match the read-out")
    return problems


def _layer_problems(i: int, layer: Layer, below: Optional[Layer]) -> list:
    problems = []
    if below is not None and layer.n_in != below.n_out:
        problems.append(f"layer {i} width mismatch")
    if not (is_ints(layer.rows) and is_ints(layer.cols) and is_reals(layer.vals)
            and is_reals(layer.bias)):
        problems.append(f"layer {i} arrays missing, of the wrong type or not finite")
    elif (not len(layer.rows) == len(layer.cols) == len(layer.vals)
          or len(layer.bias) != layer.n_out):
        problems.append(f"layer {i} arrays disagree")
    elif len(layer.rows) and (layer.rows.min() < 0 or layer.rows.max() >= layer.n_out
                              or layer.cols.min() < 0 or layer.cols.max() >= layer.n_in):
        problems.append(f"layer {i} indices out of range")
    for name in ("role", "signal", "part"):
        value = getattr(layer, name)
        if value is not None and not (is_ints(value) and len(value) == layer.n_out):
            problems.append(f"layer {i} {name} array does not fit the layer")
    return problems
