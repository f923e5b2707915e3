"""The `dense` target: one neuron per gate (exact lowering, compiler/dense/lowering.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..target import Target, register
from ..network import Network
from .lowering import compile_dense


@dataclass
class DenseOptions:
    """The dense target has no options."""


class DenseTarget(Target):
    """Every gate lowered exactly to ReLU neurons, layer by layer (compiler/dense/lowering.py)."""
    name = "dense"
    summary = "one neuron per gate, exact on every input"
    options_type = DenseOptions

    def compile(self, circuit, options, progress=None) -> Network:
        """The exact dense network of every output of `circuit`."""
        return compile_dense(circuit)


DENSE = register(DenseTarget())

__all__ = ["DENSE", "DenseOptions", "DenseTarget", "compile_dense"]
