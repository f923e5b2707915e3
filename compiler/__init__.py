"""Compiler: circuits (dsl) to ReLU networks, with exact accounting.

    from compiler import compile_circuit, account
    net = compile_circuit(circuit, target="dense")
    account(net)["neurons"]

Targets: `dense` (compiler/dense.py), `superposed` (compiler/superposed.py, channels.py),
`conditional` (compiler/conditional.py: trees of neurons, compiler/tree.py; tables in
tree_tables.py, everything else synthesised from the dense network in synthesis.py). The layered
network representation is compiler/network.py.
"""

from __future__ import annotations

from .accounting import account, format_accounting
from .dense import compile_dense
from .network import Layer, Network

TARGETS = ("dense", "superposed", "conditional")


class TargetUnavailable(Exception):
    """The requested target is not implemented (yet)."""


def compile_circuit(circuit, target: str = "dense", **options) -> Network:
    if target == "dense":
        return compile_dense(circuit)
    if target == "superposed":
        from .superposed import SuperposedOptions, compile_superposed
        progress = options.pop("progress", None)
        return compile_superposed(circuit, SuperposedOptions(**options), progress=progress)
    if target == "conditional":
        from .conditional import ConditionalOptions, compile_conditional
        from .synthesis import SynthesisTooLarge
        options.pop("progress", None)
        try:
            return compile_conditional(circuit, ConditionalOptions(**options))
        except SynthesisTooLarge as exc:
            hint = ("raise it with --max-domain, or compile with --target dense"
                    if exc.domain_limit else "a memory bound; compile with --target dense")
            raise TargetUnavailable(f"conditional target: {exc} ({hint})") from None
    if target in TARGETS:
        raise TargetUnavailable(f"the '{target}' target is not available in this version; "
                                "use --target dense")
    raise TargetUnavailable(f"unknown target '{target}' (choose from {', '.join(TARGETS)})")


__all__ = ["Layer", "Network", "TARGETS", "TargetUnavailable", "account", "compile_circuit",
           "format_accounting"]
