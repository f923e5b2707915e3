"""Ground truth of a compiled layered network: what every site carries, for interpretability.

    gt = ground_truth(net, circuit)         # circuit optional: it names gates and gives semantics
    gt.sites["layers.0.hook_post"].neurons[3]["meaning"]   # "g[4] = x[4] & x[5] (part 1 of 1)"
    values = gt.feature_values(x)           # site -> true values [B, width] for 0/1 inputs x
    gt.edges                                # [("hook_in", "layers.0.hook_pre"), ...]
    text = gt.to_json(); GroundTruth.from_json(text)

Sites use the module's hook names (backends/torch_module.py): `hook_in` (h_0, features placed by
`net.input_map`), `layers.{i}.hook_pre` (W_i h + b_i) and `layers.{i}.hook_post` (after the
ReLU; equal to hook_pre for a linear layer and the read-out), `hook_out` (read-out values).

Each site is one of three kinds, decided by where it sits:
  * `encoded` (no ReLU between the inputs and the site: `hook_in`, an input code's stream):
    activation = x @ encoder + offset exactly, one encoder row (the feature's direction) per
    input feature; for a coded stream the rows are the columns of the code matrix.
  * `decoded` (no ReLU between the site and the read-out: an output code's stream, the
    read-out): outputs = activation @ decoder + offset exactly (linear), output j is 1 when its
    value exceeds the threshold; decoder column j is output j's read direction.
  * `neurons` (a ReLU layer): each neuron's role and meaning as text, the units of the site
    below it hears with their weights (for a first layer, the input features, its weights
    composed with the encoder), and the outputs it serves (those with a path of nonzero weights
    from it to their read-out row). The last ReLU layer also has a decoder: output j's value is
    activation @ decoder[:, j] + offset[j], so decoder column j is output j's direction there
    (for a channel layer: its channel's neurons, weighted by the read-out).

`feature_values(x)` gives, per site, the activations the ground truth predicts (encoded sites
from x alone, neuron sites from their hears applied to the values below, decoded sites through
the layers above the last ReLU); `semantic_values(circuit, x)` gives the circuit's own values
(dsl/semantics.py) of the features the ground truth names: inputs at encoded sites, outputs at
decoded sites, and at neuron sites the signal of each neuron that is `exact` (a carry, or the
only neuron of an AND gate: its activation equals the signal's 0/1 value). Tests check both
against the module's activations.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from scipy import sparse

from compiler.network import (CARRY, CHANNEL, GATE_NEURON, ROLE_NAMES, TABLE_ROW, Network,
                              family_member_names)
from dsl.nodes import (COUNT, DRIVERS, FIRST, INDEX, NAME, OP, OFFSETS, OPERANDS, SHAPE,
                       Circuit, member_name)
from dsl.semantics import signal_values

FORMAT = "sup-ground-truth"
VERSION = 1
MAX_GROUND_TRUTH_WEIGHTS = 1_000_000  # sidecars are written for networks up to this many weights


class GroundTruthError(ValueError):
    """A network the ground truth cannot describe, or a malformed ground-truth file."""


@dataclass
class Site:
    """What one hook site carries (see the module docstring for the three kinds)."""
    name: str
    kind: str                      # "encoded", "decoded" or "neurons"
    width: int
    layer: Optional[int] = None    # the layer index (None for hook_in / hook_out)
    features: list = field(default_factory=list)   # names of the features it carries
    encoder: Optional[dict] = None  # sparse [n_features, width] (encoded sites; `dense_of`)
    decoder: Optional[dict] = None  # sparse [width, n_outputs] (decoded sites)
    offset: Optional[list] = None   # [width] (encoded) or [n_outputs] (decoded)
    neurons: Optional[list] = None  # per neuron: dict (neurons sites)


def sparse_of(matrix) -> dict:
    """A dense or scipy sparse matrix as JSON-ready COO: {"shape", "rows", "cols", "vals"}."""
    coo = sparse.coo_matrix(matrix)
    coo.sum_duplicates()
    keep = coo.data != 0
    return {"shape": list(coo.shape), "rows": coo.row[keep].tolist(),
            "cols": coo.col[keep].tolist(), "vals": coo.data[keep].tolist()}


def _csr(layer):
    """A layer's weights as scipy CSR [n_out, n_in] (duplicates summed)."""
    return sparse.csr_matrix((layer.vals, (layer.rows, layer.cols)),
                             shape=(layer.n_out, layer.n_in))


def dense_of(coo: dict) -> np.ndarray:
    """The dense float64 matrix of a `sparse_of` dict."""
    out = np.zeros(coo["shape"])
    np.add.at(out, (np.asarray(coo["rows"], np.int64), np.asarray(coo["cols"], np.int64)),
              coo["vals"])
    return out


def _signal_names(circuit: Optional[Circuit]) -> dict:
    """Signal id -> name: inputs, named wires and outputs (declared order wins)."""
    if circuit is None:
        return {}
    names = {i: n for i, n in enumerate(circuit.input_names())}
    for key in list(circuit.wire_nodes) + list(circuit.output_nodes):
        data = circuit.graph.nodes[key]
        index = data.get(INDEX)
        if index is None:
            shape = data.get(SHAPE) or ()
            index = np.indices(shape).reshape(len(shape), -1).T if shape else np.zeros((1, 0))
        for drv, idx in zip(data[DRIVERS], index):
            names.setdefault(int(drv), member_name(data[NAME], idx))
    return names


def _gate_info(circuit: Optional[Circuit]) -> dict:
    """Gate signal id -> (op, operand signal ids); a table output with don't-care bits ->
    ("table*", []) (its carried value is free where the table does not care)."""
    info = {}
    if circuit is None:
        return info
    if circuit.has_dont_care:
        for key in circuit.table_nodes():
            data = circuit.graph.nodes[key]
            for j in range(data[COUNT]):
                info[int(data[FIRST]) + j] = ("table*", [])
    for key in circuit.gate_nodes():
        data = circuit.graph.nodes[key]
        off, ops = data[OFFSETS], data[OPERANDS]
        for j in range(len(off) - 1):
            info[int(data[FIRST]) + j] = (data[OP], [int(s) for s in ops[off[j]:off[j + 1]]])
    return info


_SYMBOL = {"and": " & ", "or": " | ", "xor": " ^ "}


def describe_signal(sid: int, names: dict, gates: dict) -> str:
    """`"g[4] = x[4] & x[5]"`, `"x[3]"` or `"signal 17"` (without a circuit)."""
    name = names.get(sid, f"signal {sid}")
    if sid not in gates or gates[sid][0] == "table*":
        return name
    op, operands = gates[sid]
    args = [names.get(s, f"signal {s}") for s in operands]
    body = _SYMBOL[op].join(args) if op in _SYMBOL else f"{op}({', '.join(args)})"
    return f"{name} = {body}"


def _parts_count(layer) -> dict:
    """(role, signal) -> number of neurons of that signal in the layer."""
    counts: dict = {}
    for r, s in zip(layer.role, layer.signal):
        counts[(int(r), int(s))] = counts.get((int(r), int(s)), 0) + 1
    return counts


def _meaning(role: int, sid: int, part: int, count: int, names, gates, serves) -> str:
    """One neuron's meaning in words."""
    if role == CARRY:
        return f"carry {names.get(sid, f'signal {sid}')}"
    if role == GATE_NEURON:
        return f"{describe_signal(sid, names, gates)} (part {part + 1} of {count})"
    if role == TABLE_ROW:
        return f"row {part} of the table of {names.get(sid, f'signal {sid}')}"
    if role == CHANNEL:
        shown = ", ".join(serves[:4]) + (", ..." if len(serves) > 4 else "")
        return f"channel neuron {sid}: shared by {len(serves)} outputs ({shown})"
    return ROLE_NAMES.get(role, "neuron")


def _exact(role: int, sid: int, count: int, gates: dict) -> bool:
    """Whether the neuron's activation is exactly the 0/1 value of its signal."""
    if role == CARRY:
        return gates.get(sid, ("",))[0] != "table*"
    return role == GATE_NEURON and count == 1 and gates.get(sid, ("",))[0] == "and"


def _reach(net: Network) -> list:
    """Per layer i: CSR [n_out_i, n_outputs], nonzero where a path of nonzero weights leads from
    the unit to the output's read-out row."""
    reach = [None] * len(net.layers)
    below = sparse.identity(net.n_outputs, format="csr")
    for i in range(len(net.layers) - 1, -1, -1):
        reach[i] = below
        layer = net.layers[i]
        nz = layer.vals != 0
        pattern = sparse.csr_matrix((np.ones(int(nz.sum())), (layer.rows[nz], layer.cols[nz])),
                                    shape=(layer.n_out, layer.n_in))
        below = (pattern.T @ below).tocsr()
        below.data[:] = 1.0
    return reach


def _linear_prefix(net: Network) -> int:
    """Number of leading linear layers (those whose sites are encoded)."""
    n = 0
    for layer in net.hidden:
        if layer.relu:
            break
        n += 1
    return n


def _linear_suffix_start(net: Network) -> int:
    """Index of the first layer after the last ReLU layer (its sites and above are decoded)."""
    last = max((i for i, layer in enumerate(net.layers) if layer.relu), default=-1)
    return last + 1


def _neuron_site(net, i, names, gates, reach, out_names, hears_enc) -> Site:
    """The `neurons` description of ReLU layer i (pre and post share it)."""
    layer = net.layers[i]
    counts = _parts_count(layer) if layer.role is not None else {}
    w = _csr(layer) if hears_enc is None else (_csr(layer) @ hears_enc.T).tocsr()
    below = "feature" if hears_enc is not None else f"layers.{i - 1}.hook_post"
    neurons = []
    for n in range(layer.n_out):
        role = int(layer.role[n]) if layer.role is not None else -1
        sid = int(layer.signal[n]) if layer.signal is not None else -1
        part = int(layer.part[n]) if layer.part is not None else 0
        count = counts.get((role, sid), 1)
        r = reach[i]
        serves = [out_names[j] for j in np.sort(r.indices[r.indptr[n]:r.indptr[n + 1]])]
        cols, vals = w.indices[w.indptr[n]:w.indptr[n + 1]], w.data[w.indptr[n]:w.indptr[n + 1]]
        scale = np.abs(vals).max(initial=0.0)
        keep = np.nonzero(np.abs(vals) >= 0.5 * scale)[0] if scale > 0 else []
        neurons.append({
            "role": ROLE_NAMES.get(role, "neuron"), "signal": sid, "part": part,
            "meaning": _meaning(role, sid, part, count, names, gates, serves),
            "exact": names.get(sid) if _exact(role, sid, count, gates) and sid in names else None,
            "hears_from": below, "hears": [[int(cols[k]), float(vals[k])] for k in keep],
            "bias": float(layer.bias[n]), "serves": serves})
    return Site(f"layers.{i}.hook_post", "neurons", layer.n_out, i, neurons=neurons)


@dataclass
class GroundTruth:
    """Sites (hook name -> Site), edges between sites, and the weights needed to predict values."""
    sites: dict
    edges: list
    threshold: float
    input_names: list
    output_names: list
    weights: list       # per layer: {"n_in", "n_out", "rows", "cols", "vals", "bias", "relu"}
    input_map: list

    # ------------------------------------------------------------ values
    def feature_values(self, x) -> dict:
        """site name -> float64 [B, width]: the activations the ground truth predicts for 0/1
        inputs x [B, n_inputs] (encoded sites from x and their encoder, neuron and decoded
        sites from the layers' recorded weights over the values below)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.input_names):
            raise GroundTruthError(f"expected inputs of shape [B, {len(self.input_names)}], "
                                   f"got {list(x.shape)}")
        values = {}
        hook_in = self.sites["hook_in"]
        h = x @ dense_of(hook_in.encoder)
        values["hook_in"] = h
        for i, w in enumerate(self.weights):
            site_post = self.sites[f"layers.{i}.hook_post"]
            if site_post.kind == "encoded":
                pre = x @ dense_of(site_post.encoder) + np.asarray(site_post.offset)
            else:
                pre = _affine(w, h)
            values[f"layers.{i}.hook_pre"] = pre
            h = np.maximum(pre, 0) if w["relu"] else pre
            values[f"layers.{i}.hook_post"] = h
        values["hook_out"] = h
        return values

    def decisions(self, x) -> np.ndarray:
        """bool [B, n_outputs]: output bits predicted by the ground truth."""
        return self.feature_values(x)["hook_out"] > self.threshold

    def semantic_values(self, circuit: Circuit, x) -> dict:
        """site name -> (columns, uint8 values [B, len(columns)]): the circuit's own values of
        the features the ground truth names at the site (encoded: every input feature, as
        columns of the encoder; decoded: every output; neurons: the exact neurons' signals;
        2 = don't care)."""
        x = np.asarray(x).astype(bool)
        sig = signal_values(circuit, x)
        out = {}
        lookup = {n: i for i, n in enumerate(circuit.input_names())}
        names = _signal_names(circuit)
        by_name = {v: k for k, v in names.items()}
        for name, site in self.sites.items():
            if site.kind == "encoded":
                out[name] = (list(range(len(self.input_names))), x.astype(np.uint8))
            elif site.kind == "decoded":
                out[name] = (list(range(len(self.output_names))),
                             sig[:, circuit.output_drivers])
            else:
                cols = [n for n, d in enumerate(site.neurons) if d["exact"] is not None]
                ids = [by_name.get(site.neurons[n]["exact"], lookup.get(site.neurons[n]["exact"]))
                       for n in cols]
                out[name] = (cols, sig[:, ids] if cols else np.zeros((len(x), 0), np.uint8))
        return out

    def dependents(self, site: str, neuron: int) -> list:
        """Names of the outputs whose value depends on `neuron` of a neuron site."""
        data = self.sites[site]
        if data.kind != "neurons":
            raise GroundTruthError(f"{site} is not a neuron site")
        return list(data.neurons[neuron]["serves"])

    # ------------------------------------------------------------ storage
    def to_json(self) -> str:
        """The ground truth as JSON text (no pickle; `from_json` reads it back)."""
        return json.dumps({"format": FORMAT, "version": VERSION, "threshold": self.threshold,
                           "input_names": self.input_names, "output_names": self.output_names,
                           "edges": self.edges, "input_map": self.input_map,
                           "weights": self.weights,
                           "sites": {k: asdict(v) for k, v in self.sites.items()
                                     if not k.endswith("hook_pre")}})

    @classmethod
    def from_json(cls, text: str) -> "GroundTruth":
        """The ground truth written by `to_json` (GroundTruthError when malformed)."""
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT or data.get("version") != VERSION:
                raise GroundTruthError(f"not a {FORMAT} version {VERSION} document")
            stored = {k: Site(**v) for k, v in data["sites"].items()}
            sites = {}
            for name, site in stored.items():   # a pre site describes what its post site does
                if site.layer is not None and name.endswith("hook_post"):
                    pre = f"layers.{site.layer}.hook_pre"
                    sites[pre] = Site(**{**asdict(site), "name": pre})
                sites[name] = site
            return cls(sites, [tuple(e) for e in data["edges"]], float(data["threshold"]),
                       data["input_names"], data["output_names"], data["weights"],
                       data["input_map"])
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise GroundTruthError(f"malformed ground truth ({exc})") from None

    def site_names(self) -> list:
        """Every site, in forward order."""
        return list(self.sites)


def _affine(w: dict, h: np.ndarray) -> np.ndarray:
    out = np.repeat(np.asarray(w["bias"], np.float64)[None, :], len(h), axis=0)
    rows, cols = np.asarray(w["rows"], np.int64), np.asarray(w["cols"], np.int64)
    np.add.at(out.T, rows, (h[:, cols] * np.asarray(w["vals"], np.float64)).T)
    return out


def _layer_weights(layer) -> dict:
    return {"n_in": layer.n_in, "n_out": layer.n_out, "relu": bool(layer.relu),
            "rows": layer.rows.tolist(), "cols": layer.cols.tolist(),
            "vals": layer.vals.tolist(), "bias": layer.bias.tolist()}


def _encoders(net: Network) -> list:
    """Encoder [m, width] (and offset) of hook_in and each leading linear layer."""
    enc = sparse.csr_matrix((np.ones(net.n_inputs), (np.arange(net.n_inputs), net.input_map)),
                            shape=(net.n_inputs, net.input_width))
    offset = np.zeros(net.input_width)
    result = [(enc, offset)]
    for layer in net.layers[:_linear_prefix(net)]:
        w = _csr(layer)
        enc, offset = (enc @ w.T).tocsr(), w @ offset + layer.bias
        result.append((enc, offset))
    return result


def _decoders(net: Network, start: int) -> dict:
    """Layer index i >= start-1 -> (decoder [n_out_i, n_outputs], offset) of its post site."""
    dec, off = sparse.identity(net.n_outputs, format="csr"), np.zeros(net.n_outputs)
    result = {len(net.layers) - 1: (dec, off)}
    for i in range(len(net.layers) - 1, start - 1, -1):
        layer = net.layers[i]
        off = off + dec.T @ layer.bias
        dec = (_csr(layer).T @ dec).tocsr()
        result[i - 1] = (dec, off)
    return result


def ground_truth(net: Network, circuit: Optional[Circuit] = None) -> GroundTruth:
    """The ground truth of a layered network (dense, superposed, coded, multilevel).

    Args:
        net: a `compiler.network.Network`.
        circuit: the circuit it was compiled from; names the gates in neuron meanings and is
            needed only for that (and for `semantic_values`).
    Returns:
        A `GroundTruth`.
    Raises:
        GroundTruthError: `net` is not a layered network (a conditional forest).
    """
    if not isinstance(net, Network):
        raise GroundTruthError(f"ground truth describes layered networks, not a "
                               f"{type(net).__name__} (compile with --target dense or superposed)")
    names, gates = _signal_names(circuit), _gate_info(circuit)
    in_names = family_member_names(net.input_families) or [f"x[{i}]" for i in range(net.n_inputs)]
    out_names = net.output_names() or [f"y[{j}]" for j in range(net.n_outputs)]
    encoders, prefix = _encoders(net), _linear_prefix(net)
    start = _linear_suffix_start(net)
    decoders, reach = _decoders(net, start), _reach(net)
    sites = {"hook_in": Site("hook_in", "encoded", net.input_width, None, in_names,
                             sparse_of(encoders[0][0]), None, encoders[0][1].tolist())}
    edges = []
    previous = "hook_in"
    for i, layer in enumerate(net.layers):
        pre, post = f"layers.{i}.hook_pre", f"layers.{i}.hook_post"
        if i < prefix:
            enc, off = encoders[i + 1]
            site = Site(post, "encoded", layer.n_out, i, in_names, sparse_of(enc), None,
                        off.tolist())
        elif i >= start:
            dec, off = decoders[i]
            site = Site(post, "decoded", layer.n_out, i, out_names, None, sparse_of(dec),
                        off.tolist())
        else:
            hears = encoders[i][0] if i <= prefix else None
            site = _neuron_site(net, i, names, gates, reach, out_names, hears)
            if i == start - 1:   # the last ReLU layer: outputs are linear read-outs of it
                dec, off = decoders[i]
                site.features, site.decoder, site.offset = out_names, sparse_of(dec), off.tolist()
        sites[pre] = Site(pre, site.kind, site.width, i, site.features, site.encoder,
                          site.decoder, site.offset, site.neurons)
        sites[post] = site
        edges += [(previous, pre), (pre, post)]
        previous = post
    sites["hook_out"] = Site("hook_out", "decoded", net.n_outputs, None, out_names,
                             None, sparse_of(sparse.identity(net.n_outputs)), [0.0] * net.n_outputs)
    edges.append((previous, "hook_out"))
    return GroundTruth(sites, edges, float(net.threshold), in_names, out_names,
                       [_layer_weights(layer) for layer in net.layers], net.input_map.tolist())


def sample_inputs(n_inputs: int, samples: int, rng, k: Optional[int] = None,
                  p: Optional[float] = None, sparsity: Optional[int] = None) -> np.ndarray:
    """bool [samples, n_inputs] inputs: i.i.d. features on with probability `p`, or exactly `k`
    features on, or (neither given) a uniform count 0..sparsity (n_inputs without a promise)
    of features on, chosen uniformly: random inputs of the sparse domain."""
    if p is not None:
        return rng.random((samples, n_inputs)) < p
    if k is None:
        top = n_inputs if sparsity is None else min(sparsity, n_inputs)
        counts = rng.integers(0, top + 1, samples)
    else:
        if not 0 <= k <= n_inputs:
            raise GroundTruthError(f"k must be in 0..{n_inputs}, got {k}")
        counts = np.full(samples, k)
    ranks = np.argsort(rng.random((samples, n_inputs)), axis=1)
    return ranks < counts[:, None]


def sidecar_path(model_path) -> Path:
    """`model.groundtruth.json` beside `model.safetensors`."""
    path = Path(model_path)
    return path.with_name(path.stem + ".groundtruth.json")


def save_ground_truth(net, model_path, circuit: Optional[Circuit] = None) -> Optional[Path]:
    """Write the sidecar of a layered network saved at `model_path` (None when the network is
    not layered or too large for a JSON sidecar: MAX_GROUND_TRUTH_WEIGHTS weights)."""
    size = sum(len(layer.vals) for layer in net.layers) if isinstance(net, Network) else 0
    if not isinstance(net, Network) or size > MAX_GROUND_TRUTH_WEIGHTS:
        return None
    path = sidecar_path(model_path)
    path.write_text(ground_truth(net, circuit).to_json())
    return path


def load_ground_truth(model_path) -> GroundTruth:
    """The sidecar saved beside a model (GroundTruthError when missing or malformed)."""
    path = sidecar_path(model_path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise GroundTruthError(f"no ground truth beside the model ({exc})") from None
    return GroundTruth.from_json(text)
