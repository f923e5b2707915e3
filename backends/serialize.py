"""Save and load networks: safetensors tensors plus JSON metadata, never pickle.

`save(net, "model.safetensors")` writes every array of the network (per-layer COO weights,
biases, neuron roles, the input map, the index arrays of the input and output families) as
named tensors, and the rest (target, widths, names, threshold, sparsity, accounting) as JSON
in the safetensors header's metadata. A `model.json` beside it repeats the metadata for people
to read. `load` parses only that data: nothing in the file is ever executed.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from compiler.network import Layer, Network

FORMAT = "sup-network"
VERSION = 1
LAYER_ARRAYS = ("rows", "cols", "vals", "bias", "role", "signal", "part")


class ModelFileError(Exception):
    """A model file that cannot be read as a sup network."""


def model_path(path) -> Path:
    path = Path(path)
    return path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")


def save(net: Network, path, extra: dict | None = None) -> Path:
    path = model_path(path)
    if getattr(net, "target", None) == "conditional":
        return _save_conditional(net, path, extra)
    tensors = {"input_map": np.ascontiguousarray(net.input_map, dtype=np.int64)}
    layers = []
    for i, layer in enumerate(net.layers):
        for name in LAYER_ARRAYS:
            value = getattr(layer, name)
            if value is not None:
                tensors[f"layers.{i}.{name}"] = np.ascontiguousarray(value)
        layers.append({"n_in": layer.n_in, "n_out": layer.n_out, "relu": layer.relu})
    for prefix, families in (("outputs", net.output_families), ("inputs", net.input_families)):
        for j, (_, index) in enumerate(families):
            tensors[f"{prefix}.{j}.index"] = np.ascontiguousarray(index, dtype=np.int64)
    meta = {
        "format": FORMAT, "version": VERSION, "target": net.target, "n_inputs": net.n_inputs,
        "threshold": net.threshold, "sparsity": net.sparsity, "circuit_name": net.circuit_name,
        "layers": layers, "output_families": [n for n, _ in net.output_families],
        "input_families": [n for n, _ in net.input_families], "meta": net.meta,
        **(extra or {}),
    }
    text = json.dumps(meta, default=_json_default)
    try:
        save_file(tensors, str(path), metadata={"sup": text})
    except SafetensorError as exc:  # e.g. a missing folder: report it as the OSError it is
        raise OSError(errno.EIO, str(exc), str(path)) from None
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, default=_json_default) + "\n")
    return path


def load(path) -> Network:
    path = model_path(path)
    try:
        tensors = load_file(str(path))
        meta = _read_metadata(path)
    except (OSError, SafetensorError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a readable sup model ({exc})") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ModelFileError(f"{path}: not a {FORMAT} version {VERSION} file")
    if meta.get("target") == "conditional":
        return _load_conditional(tensors, meta, path)
    try:
        layers = []
        for i, shape in enumerate(meta["layers"]):
            arrays = {name: tensors.get(f"layers.{i}.{name}") for name in LAYER_ARRAYS}
            if not isinstance(shape["relu"], bool):
                raise TypeError(f"layer {i}: relu must be true or false")
            layers.append(Layer(int(shape["n_in"]), int(shape["n_out"]), arrays["rows"],
                                arrays["cols"], arrays["vals"], arrays["bias"], shape["relu"],
                                arrays["role"], arrays["signal"], arrays["part"]))
        outputs = [(name, tensors[f"outputs.{j}.index"])
                   for j, name in enumerate(meta["output_families"])]
        inputs = [(name, tensors[f"inputs.{j}.index"])
                  for j, name in enumerate(meta["input_families"])]
        net = Network(meta["target"], int(meta["n_inputs"]), layers, tensors["input_map"],
                      float(meta["threshold"]), outputs, inputs, meta["sparsity"],
                      meta["circuit_name"], meta.get("meta", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: incomplete sup model ({exc})") from None
    _check_consistent(net, path)
    return net


def _read_metadata(path: Path) -> dict:
    from safetensors import safe_open
    with safe_open(str(path), framework="numpy") as handle:
        header = handle.metadata() or {}
    if "sup" not in header:
        raise ValueError("no sup metadata")
    meta = json.loads(header["sup"])
    if not isinstance(meta, dict):
        raise ValueError("the sup metadata is not a JSON object")
    return meta


def _check_consistent(net: Network, path: Path) -> None:
    """Reject files whose arrays do not fit their declared shapes (so later code cannot index
    out of bounds on a crafted file): arrays present, 1-D (index tables 2-D), integer where they
    index, finite where they are weights, and every index in range."""
    problems = _problems(net)
    if problems:
        raise ModelFileError(f"{path}: inconsistent sup model: {'; '.join(problems)}")


def _is_ints(a, ndim: int = 1) -> bool:
    return isinstance(a, np.ndarray) and a.ndim == ndim and a.dtype.kind in "iu"


def _is_reals(a) -> bool:
    return (isinstance(a, np.ndarray) and a.ndim == 1 and a.dtype.kind in "iuf"
            and bool(np.isfinite(a).all()))


def _problems(net: Network) -> list:
    if not net.layers:
        return ["no layers (a network has at least its read-out)"]
    if net.n_inputs < 0 or any(layer.n_in < 0 or layer.n_out < 0 for layer in net.layers):
        return ["negative width"]
    if not (net.sparsity is None or (isinstance(net.sparsity, int)
                                     and not isinstance(net.sparsity, bool) and net.sparsity >= 0)):
        return ["sparsity is not a non-negative integer"]
    if not np.isfinite(net.threshold):
        return ["threshold is not a finite number"]
    width = net.layers[0].n_in
    problems = []
    if not _is_ints(net.input_map):
        problems.append("input map is not an integer vector")
    elif len(net.input_map) != net.n_inputs or (len(net.input_map) and (
            net.input_map.min() < 0 or net.input_map.max() >= width)):
        problems.append("input map does not fit the first layer")
    for i, layer in enumerate(net.layers):
        if i and layer.n_in != net.layers[i - 1].n_out:
            problems.append(f"layer {i} width mismatch")
        if not (_is_ints(layer.rows) and _is_ints(layer.cols) and _is_reals(layer.vals)
                and _is_reals(layer.bias)):
            problems.append(f"layer {i} arrays missing, of the wrong type or not finite")
        elif (not len(layer.rows) == len(layer.cols) == len(layer.vals)
              or len(layer.bias) != layer.n_out):
            problems.append(f"layer {i} arrays disagree")
        elif len(layer.rows) and (layer.rows.min() < 0 or layer.rows.max() >= layer.n_out
                                  or layer.cols.min() < 0 or layer.cols.max() >= layer.n_in):
            problems.append(f"layer {i} indices out of range")
        for name in ("role", "signal", "part"):
            value = getattr(layer, name)
            if value is not None and not (_is_ints(value) and len(value) == layer.n_out):
                problems.append(f"layer {i} {name} array does not fit the layer")
    for what, families in (("output", net.output_families), ("input", net.input_families)):
        if not all(isinstance(name, str) and _is_ints(index, 2) for name, index in families):
            problems.append(f"{what} families are not names with 2-D integer index arrays")
    if not problems and sum(len(index) for _, index in net.output_families) != net.n_outputs:
        problems.append("output names do not match the read-out")
    return problems


# ---------------------------------------------------------------------- conditional networks
# A ConditionalNetwork (compiler/conditional.py) is stored as its Forest arrays
# (`forest.<field>` tensors), the family index arrays as above, and JSON metadata with
# target "conditional", n_inputs, n_outputs and the naming data. Loading checks every array's
# type and shape and runs `Forest.validate()` (indices in range, CSR offsets well formed,
# trees acyclic), so a crafted file is a ModelFileError, never a crash or a runaway walk.

MAX_INPUTS = 1 << 31   # a file without input families may not declare more features than this


def _save_conditional(net, path: Path, extra: dict | None) -> Path:
    tensors = {f"forest.{name}": np.ascontiguousarray(value)
               for name, value in net.forest.arrays().items()}
    meta = _family_tensors(net, tensors)
    meta.update({"format": FORMAT, "version": VERSION, "target": "conditional",
                 "n_inputs": net.n_inputs, "n_outputs": net.n_outputs,
                 "threshold": net.threshold, "sparsity": net.sparsity,
                 "circuit_name": net.circuit_name, "meta": net.meta, **(extra or {})})
    return _write(tensors, meta, path)


def _family_tensors(net, tensors: dict) -> dict:
    for prefix, families in (("outputs", net.output_families), ("inputs", net.input_families)):
        for j, (_, index) in enumerate(families):
            tensors[f"{prefix}.{j}.index"] = np.ascontiguousarray(index, dtype=np.int64)
    return {"output_families": [n for n, _ in net.output_families],
            "input_families": [n for n, _ in net.input_families]}


def _write(tensors: dict, meta: dict, path: Path) -> Path:
    text = json.dumps(meta, default=_json_default)
    try:
        save_file(tensors, str(path), metadata={"sup": text})
    except SafetensorError as exc:
        raise OSError(errno.EIO, str(exc), str(path)) from None
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, default=_json_default) + "\n")
    return path


def _load_conditional(tensors: dict, meta: dict, path: Path):
    from compiler.conditional import ConditionalNetwork
    from compiler.tree import Forest
    try:
        n_inputs, n_outputs = _count(meta["n_inputs"]), _count(meta["n_outputs"])
        forest = Forest(n_inputs, n_outputs, **_forest_arrays(tensors))
        outputs = [(name, tensors[f"outputs.{j}.index"])
                   for j, name in enumerate(meta["output_families"])]
        inputs = [(name, tensors[f"inputs.{j}.index"])
                  for j, name in enumerate(meta["input_families"])]
        net = ConditionalNetwork(n_inputs, forest, float(meta["threshold"]), outputs, inputs,
                                 meta["sparsity"], str(meta["circuit_name"]),
                                 meta.get("meta", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: incomplete sup model ({exc})") from None
    problems = _conditional_problems(net)
    if not problems:
        try:
            forest.validate()
        except (ValueError, IndexError) as exc:
            problems = [str(exc)]
    if problems:
        raise ModelFileError(f"{path}: inconsistent sup model: {'; '.join(problems)}")
    return net


def _count(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_INPUTS:
        raise ValueError(f"{value!r} is not a count")
    return value


def _forest_arrays(tensors: dict) -> dict:
    """The Forest's arrays from `forest.<name>` tensors, each of the type and rank of the
    field (integers where they index, reals where they weigh); ValueError otherwise."""
    from compiler.tree import Forest
    template = Forest(0, 0).arrays()
    arrays = {}
    for name, like in template.items():
        value = tensors.get(f"forest.{name}")
        if not isinstance(value, np.ndarray) or value.ndim != like.ndim:
            raise ValueError(f"forest array {name} missing or of the wrong rank")
        if like.ndim == 2 and value.shape[1:] != like.shape[1:]:
            raise ValueError(f"forest array {name} has the wrong shape")
        integer = like.dtype.kind in "iu"
        if value.dtype.kind not in ("iu" if integer else "iuf"):
            raise ValueError(f"forest array {name} has the wrong type {value.dtype}")
        if integer and value.dtype == np.uint64 and value.size and value.max() > np.iinfo(np.int64).max:
            raise ValueError(f"forest array {name}: index out of range")
        arrays[name] = value.astype(like.dtype if integer else np.float64)
    return arrays


def _conditional_problems(net) -> list:
    if not (net.sparsity is None or (isinstance(net.sparsity, int)
                                     and not isinstance(net.sparsity, bool) and net.sparsity >= 0)):
        return ["sparsity is not a non-negative integer"]
    if not np.isfinite(net.threshold):
        return ["threshold is not a finite number"]
    for what, families in (("output", net.output_families), ("input", net.input_families)):
        if not all(isinstance(name, str) and _is_ints(index, 2) for name, index in families):
            return [f"{what} families are not names with 2-D integer index arrays"]
    if sum(len(index) for _, index in net.output_families) != net.n_outputs:
        return ["output names do not match the read-out"]
    if net.input_families and sum(len(index) for _, index in net.input_families) != net.n_inputs:
        return ["input names do not match the inputs"]
    return []


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
