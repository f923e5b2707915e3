"""Save and load networks: safetensors tensors plus JSON metadata, never pickle.

`save(net, "model.safetensors")` writes the arrays of the network (its `to_arrays()`: per-layer
COO weights, biases, neuron roles, the input map, a forest's arrays, the index tables of the
input and output families) as named tensors, and the rest (format, target, widths, names,
threshold, sparsity, accounting) as JSON in the safetensors header's metadata. A `model.json`
beside it repeats the metadata for people to read. `load` parses only that data: nothing in the
file is ever executed. The target named in the file must be registered (compiler.TARGETS); its
network class rebuilds the network and lists what is inconsistent (`problems()`), and any
problem refuses the file.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from compiler import TARGETS, CompiledNetwork
from compiler.network import NetworkFormatError

from .ground_truth import save_ground_truth

FORMAT = "sup-network"
VERSION = 1


class ModelFileError(Exception):
    """A model file that cannot be read as a sup network."""


def model_path(path) -> Path:
    """`path` with the `.safetensors` suffix added when it has none."""
    path = Path(path)
    return path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")


def save(net: CompiledNetwork, path, extra: dict | None = None) -> Path:
    """Write `net` to `path` (`.safetensors` added when missing) and `<path>.json`.

    Args:
        net: a compiled network of a registered target.
        path: the file to write.
        extra: more JSON fields for the metadata (e.g. the accounting).
    Returns:
        The path written.
    Raises:
        OSError: the file cannot be written.
    """
    path = model_path(path)
    tensors, fields = net.to_arrays()
    meta = {"format": FORMAT, "version": VERSION, "target": net.target, **fields, **(extra or {})}
    text = json.dumps(meta, default=_json_default)
    try:
        save_file(tensors, str(path), metadata={"sup": text})
    except SafetensorError as exc:  # e.g. a missing folder: report it as the OSError it is
        raise OSError(errno.EIO, str(exc), str(path)) from None
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, default=_json_default) + "\n")
    save_ground_truth(net, path)  # model.groundtruth.json for a layered network of modest size
    return path


def load(path) -> CompiledNetwork:
    """The network saved at `path`.

    Args:
        path: the file written by `save` (`.safetensors` added when missing).
    Returns:
        The network, of its target's `network_type`, checked consistent (`net.problems()`).
    Raises:
        ModelFileError: not a readable sup model, an unknown target, or arrays and fields that
            do not make a consistent network (so no later code can index out of bounds or
            compute something other than what the file says).
    """
    path = model_path(path)
    try:
        tensors = load_file(str(path))
        meta = _read_metadata(path)
    except (OSError, SafetensorError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a readable sup model ({exc})") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ModelFileError(f"{path}: not a {FORMAT} version {VERSION} file")
    target = meta.get("target")
    if not isinstance(target, str) or target not in TARGETS:
        raise ModelFileError(f"{path}: unknown target {target!r} (this version knows "
                             f"{', '.join(TARGETS)})")
    try:
        net = TARGETS[target].network_type.from_arrays(tensors, meta)
    except NetworkFormatError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    problems = net.problems()
    if problems:
        raise ModelFileError(f"{path}: inconsistent sup model: {'; '.join(problems)}")
    return net


def _read_metadata(path: Path) -> dict:
    with safe_open(str(path), framework="numpy") as handle:
        header = handle.metadata() or {}
    if "sup" not in header:
        raise ValueError("no sup metadata")
    meta = json.loads(header["sup"])
    if not isinstance(meta, dict):
        raise ValueError("the sup metadata is not a JSON object")
    return meta


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
