"""The `conditional` target: a forest of neuron trees, O(log n) operations per input for tables.

Koyuncu ("Memorization Capacity of Neural Networks with Conditional Computation", ICLR 2023):
n stored input-output pairs need O(sqrt n) operations per input in an ordinary ReLU network,
O(log n) in a conditional one, where a neuron's sign decides which neuron runs next. The
representation is `compiler.tree.Forest`; this module decides how each output is compiled:

* outputs read straight from a lookup table whose input bits are distinct input features:
  compiler/tree_tables.py (binary search on the key sum 2^i x_i, or a reduced decision diagram on
  the bits, whichever has fewer operations on its worst input);
* every other output: compiler/synthesis.py, which synthesises trees from the exact dense
  compilation (branch on the most balanced undecided neuron, fold neurons whose sign is fixed
  on the inputs reaching a node, stop when the rest is affine), exact on the whole domain.

`ConditionalNetwork` carries the forest with the same naming data as `compiler.network.Network`
(families, sparsity, threshold, meta) so the backends and the verifier treat both alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .tree import Forest


@dataclass
class ConditionalNetwork:
    """A compiled conditional network: `forest` plus what names its inputs and outputs."""
    n_inputs: int
    forest: Forest
    threshold: float = 0.5
    output_families: list = field(default_factory=list)   # [(name, index int64 [n, d])]
    input_families: list = field(default_factory=list)
    sparsity: Optional[int] = None
    circuit_name: str = ""
    meta: dict = field(default_factory=dict)
    target: str = "conditional"

    @property
    def n_outputs(self) -> int:
        return self.forest.n_outputs

    def output_names(self) -> list[str]:
        from dsl.nodes import member_name
        return [member_name(name, idx) for name, index in self.output_families for idx in index]

    def forward_active(self, active) -> np.ndarray:
        """Read-out values y [B, n_out] (float64) for lists of active features [B, w]."""
        return self.forest.walk(np.asarray(active, dtype=np.int64))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Read-out values for 0/1 feature rows x [B, m]."""
        from dsl.domain import from_dense
        return self.forward_active(from_dense(np.asarray(x, dtype=bool)))

    def decide(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x) > self.threshold
