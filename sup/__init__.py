"""sup: compile boolean feature circuits into ReLU networks and verify them.

The Python API in five calls (the `sup` command is `sup.cli`)::

    import sup
    circuit = sup.load("examples/pairs_small.sup")        # .sup, .aag/.aig, .bench, .blif
    net = sup.compile(circuit, target="superposed")       # any name in sup.TARGETS
    print(sup.account(net)["neurons"])                    # exact accounting
    sup.save(net, "out/model")                            # safetensors + JSON, never pickle
    report = sup.verify(circuit, sup.load_model("out/model"), method="exhaustive")
    assert report["verified"] is True

`sup.to_module(net)` gives the torch module (CPU or CUDA). The packages underneath, in the
order they depend on each other: dsl (language, circuit graph, reference semantics) ←
compiler (targets) ← backends (torch modules, files) ← verify (checks and proofs) ← sup.cli.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

import backends
import compiler
import verify as verification
from compiler import TARGETS, Accounting, CompiledNetwork
from dsl import Circuit, Limits, formats
from dsl import loads as _parse_text

__all__ = ["TARGETS", "account", "compile", "load", "load_model", "loads", "save", "to_module",
           "verify"]


def load(path, limits: Optional[Limits] = None) -> Circuit:
    """Read a circuit: a .sup file, or AIGER (.aag/.aig), ISCAS .bench or BLIF by extension.

    Raises:
        dsl.SupError: the file is not a valid circuit (message with FILE:LINE:COL).
    """
    return formats.load(path, limits)


def loads(source: str, name: Optional[str] = None) -> Circuit:
    """Parse and elaborate .sup source text (dsl.SupError on bad input)."""
    return _parse_text(source, name=name)


def compile(circuit: Circuit, target: str = "dense", **options) -> CompiledNetwork:  # noqa: A001
    """Compile `circuit` with the target called `target` (options: see the target's
    `options_type`, e.g. superposed `width=`, `construction=`, conditional `max_domain=`).

    Raises:
        compiler.TargetUnavailable: unknown target, or one that cannot compile this circuit.
        compiler.OptionError: an option the target does not take or cannot use.
    """
    return compiler.compile_circuit(circuit, target, **options)


def account(net: CompiledNetwork) -> Accounting:
    """The exact accounting of a network: neurons, parameters, ops per input, the bounds."""
    return compiler.account(net)


def save(net: CompiledNetwork, path, extra: Optional[dict] = None) -> Path:
    """Write `net` to `path`(.safetensors) and its JSON metadata beside it.

    Args:
        net: a compiled network.
        path: the file to write (`.safetensors` added when missing).
        extra: more JSON fields for the metadata (e.g. the accounting).
    Returns:
        The path written.
    Raises:
        OSError: the file cannot be written.
    """
    return backends.save(net, path, extra)


def load_model(path) -> CompiledNetwork:
    """Read a network written by `save`.

    Args:
        path: the model file (`.safetensors` added when missing).
    Returns:
        The network (`Network` or `ConditionalNetwork`).
    Raises:
        backends.ModelFileError: not a consistent sup model of a registered target.
    """
    return backends.load(path)


def to_module(net: CompiledNetwork, dtype: Optional[torch.dtype] = None, device=None):
    """The torch module running `net`.

    Args:
        net: a compiled network.
        dtype: the float type (default: the target's, float32 or float64).
        device: where to run (default: CUDA when available, else the CPU).
    Returns:
        A `SupModule` for a layered network, a `ConditionalModule` for a forest.
    Raises:
        TypeError: no module runs this network's class.
    """
    return backends.to_module(net, dtype=dtype, device=device)


def verify(circuit: Circuit, net: CompiledNetwork, method: str = "exhaustive", module=None,
           **options) -> dict:
    """Check `net` against `circuit` by `method` ('exhaustive', 'smt', 'sample',
    'structural'); returns the report, whose `verified` is True only with a full check or a
    proof, False with a replayed counterexample, None when undecided. Options: see
    `verify.verify` (shard, batch, path, timeout_ms, samples, seed, max_counterexamples,
    progress).

    Raises:
        verify.MethodUnavailable: the method does not apply to this network's target.
    """
    options.setdefault("progress", False)
    return verification.verify(circuit, net, module, method, **options)
