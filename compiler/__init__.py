"""Compiler: circuits (dsl) to ReLU networks, with exact accounting.

    from compiler import compile_circuit, account
    net = compile_circuit(circuit, target="dense")
    account(net)["neurons"]

Every target implements `compiler.target.Target` and is registered in `TARGETS`: `dense`
(compiler/dense/), `superposed` (compiler/superposed/), `conditional` (compiler/conditional/).
The shared layered representation and the one way to build and stack layers is
compiler/network.py; the accounting of layered networks is compiler/accounting.py. See
docs/architecture.md.
"""

from __future__ import annotations

# each target subpackage registers its target; the order is the order users see
from . import dense  # noqa: F401, I001
from . import superposed  # noqa: F401
from . import conditional  # noqa: F401
from .accounting import Accounting, format_accounting
from .network import CompiledNetwork, Layer, Network
from .target import (METHODS, TARGETS, CompileNotes, OptionError, Target, TargetUnavailable,
                     register, unregister)


def compile_circuit(circuit, target: str = "dense", progress=None, **options) -> CompiledNetwork:
    """Compile `circuit` (a dsl Circuit) with the target called `target`.

    Args:
        circuit: the circuit (from `dsl.load` / `dsl.loads`).
        target: a name in TARGETS ("dense", "superposed", "conditional", or a registered one).
        progress: optional callable receiving the search's step dicts (superposed).
        **options: the target's options (see its `options_type`); None means the default.
    Returns:
        The compiled network (`Network`, or `ConditionalNetwork` for trees).
    Raises:
        TargetUnavailable: unknown target, or the circuit cannot be compiled by it (a
            `CodeError` when codes cannot be exact is one).
        OptionError: an option the target does not take, or a value it cannot use.
    """
    chosen = TARGETS.get_target(target)
    return chosen.compile(circuit, chosen.make_options(**options), progress=progress)


def account(net) -> Accounting:
    """Exact accounting of a compiled network, by its target (read as `info["neurons"]` or
    `info.neurons`; `info.to_json()` is the JSON form).

    Args:
        net: a compiled network (`net.target` names a registered target).
    Returns:
        The `Accounting`: neurons, layers, parameters, ops per input, bounds (counting
        rules: docs/proofs/accounting.md).
    Raises:
        TargetUnavailable: `net.target` is not registered.
    """
    return TARGETS.get_target(net.target).account(net)


__all__ = ["Accounting", "CompileNotes", "CompiledNetwork", "Layer", "METHODS", "Network",
           "OptionError", "TARGETS", "Target", "TargetUnavailable", "account", "compile_circuit",
           "format_accounting", "register", "unregister"]
