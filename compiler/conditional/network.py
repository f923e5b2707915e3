"""The network of the conditional target: a forest of neuron trees plus the shared naming.

`ConditionalNetwork` carries a `Forest` (compiler/conditional/tree.py) with the same naming
data as a layered `compiler.network.Network` (families, sparsity, threshold, meta), so the
backends and the verifiers treat both alike. It stores itself as the Forest's arrays
(`forest.<field>`), the family index tables and JSON fields; loading checks every array's type
and shape and runs `Forest.validate()` (indices in range, CSR offsets well formed, trees
acyclic), so a crafted file is refused, never a crash or a runaway walk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsl.domain import from_dense

from ..network import (CompiledNetwork, NetworkFormatError, family_arrays, naming_fields,
                       naming_from_stored, naming_problems)
from .tree import Forest

MAX_INPUTS = 1 << 31   # a file without input families may not declare more features than this


@dataclass
class ConditionalNetwork(CompiledNetwork):
    """A compiled conditional network: `forest` plus what names its inputs and outputs."""
    n_inputs: int
    forest: Forest
    target: str = "conditional"

    @property
    def n_outputs(self) -> int:
        """Number of outputs (read-out values)."""
        return self.forest.n_outputs

    def forward_active(self, active) -> np.ndarray:
        """Read-out values y [B, n_out] (float64) for lists of active features [B, w]."""
        return self.forest.walk(np.asarray(active, dtype=np.int64))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Read-out values for 0/1 feature rows x [B, m]."""
        return self.forward_active(from_dense(np.asarray(x, dtype=bool)))

    def decide(self, x: np.ndarray) -> np.ndarray:
        """Output bits [B, n_out] for 0/1 feature rows x [B, m]."""
        return self.forward(x) > self.threshold

    def to_arrays(self) -> tuple:
        """(named arrays, JSON fields) that store this network (backends/serialize.py)."""
        tensors = {f"forest.{name}": np.ascontiguousarray(value)
                   for name, value in self.forest.arrays().items()}
        tensors.update(family_arrays(self))
        return tensors, {"n_inputs": self.n_inputs, "n_outputs": self.n_outputs,
                         **naming_fields(self)}

    @classmethod
    def from_arrays(cls, tensors: dict, meta: dict) -> "ConditionalNetwork":
        """The network stored by `to_arrays` (NetworkFormatError when incomplete)."""
        try:
            n_inputs, n_outputs = _count(meta["n_inputs"]), _count(meta["n_outputs"])
            forest = Forest(n_inputs, n_outputs, **_forest_arrays(tensors))
            return cls(n_inputs, forest, target=str(meta["target"]),
                       **naming_from_stored(tensors, meta))
        except (KeyError, TypeError, ValueError) as exc:
            raise NetworkFormatError(f"incomplete sup model ({exc})") from None

    def problems(self) -> list:
        """Why this (loaded) network is inconsistent; [] when it is well formed."""
        problems = naming_problems(self)
        if problems:
            return problems
        if sum(len(index) for _, index in self.output_families) != self.n_outputs:
            return ["output names do not match the read-out"]
        if self.input_families and sum(len(index) for _, index in self.input_families) != self.n_inputs:
            return ["input names do not match the inputs"]
        try:
            self.forest.validate()
        except (ValueError, IndexError) as exc:
            return [str(exc)]
        return []


def _count(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_INPUTS:
        raise ValueError(f"{value!r} is not a count")
    return value


def _forest_arrays(tensors: dict) -> dict:
    """The Forest's arrays from `forest.<name>` tensors, each of the type and rank of the
    field (integers where they index, reals where they weigh); ValueError otherwise."""
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
