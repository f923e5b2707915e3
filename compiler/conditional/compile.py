"""The `conditional` target: a forest of neuron trees, O(log n) operations per input for tables.

Koyuncu ("Memorization Capacity of Neural Networks with Conditional Computation", ICLR 2023):
n stored input-output pairs need O(sqrt n) operations per input in an ordinary ReLU network,
O(log n) in a conditional one, where a neuron's sign decides which neuron runs next. The
representation is `compiler.conditional.tree.Forest`; this module decides how each output is compiled:

* outputs read straight from a lookup table whose input bits are distinct input features:
  compiler/conditional/tables.py (binary search on the key sum 2^i x_i, or a reduced decision diagram on
  the bits, whichever has fewer operations on its worst input);
* every other output: compiler/conditional/synthesis.py, which synthesises trees from the exact dense
  compilation (branch on the most balanced undecided neuron, fold neurons whose sign is fixed
  on the inputs reaching a node, stop when the rest is affine), exact on the whole domain.

The network class is `ConditionalNetwork` (compiler/conditional/network.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dsl.domain import RowDomain, verification_domain
from dsl.nodes import COUNT, FIRST, NAME

from ..accounting import expected_active, ops_per_input
from ..dense import compile_dense
from ..network import input_families, output_families
from .network import ConditionalNetwork
from .synthesis import synthesize_circuit
from .tables import METHODS, compile_table, spec_from_table
from .tree import Forest

# ---------------------------------------------------------------------------- compilation

@dataclass
class ConditionalOptions:
    """Options of the conditional target."""
    table_method: str = "auto"        # 'auto', 'key' (binary search on the key), 'bits' (diagram)
    max_domain: int = 1 << 20         # largest cone domain the synthesis pass enumerates
    mean_samples: int = 1 << 14       # inputs sampled for the mean ops when the domain is larger
    mean_work: int = 1 << 23          # (inputs x trees walked) up to this: the mean walks the
                                      # whole domain; above it, a uniform sample of it
    seed: int = 0


def table_outputs(circuit) -> list:
    """[(table node key, output positions driven directly by its bits)] for every table."""
    drivers = circuit.output_drivers
    found = []
    for key in circuit.table_nodes():
        data = circuit.graph.nodes[key]
        lo, hi = data[FIRST], data[FIRST] + data[COUNT]
        positions = np.flatnonzero((drivers >= lo) & (drivers < hi))
        if len(positions):
            found.append((key, positions))
    return found


def compile_conditional(circuit, options: ConditionalOptions | None = None) -> ConditionalNetwork:
    """Compile every output of `circuit` into a forest of neuron trees (module docstring).
    Raises ValueError for an unknown table method, SynthesisTooLarge when a cone's domain is
    over the synthesis limits."""
    options = options or ConditionalOptions()
    if options.table_method not in METHODS:
        raise ValueError(f"unknown table method '{options.table_method}' "
                         f"(choose from {', '.join(METHODS)})")
    m, n_out = circuit.n_inputs, circuit.n_outputs
    parts, tables = [], []
    done = np.zeros(n_out, bool)
    for key, positions in table_outputs(circuit):
        spec = spec_from_table(circuit, key, positions)
        if spec is None:
            continue
        forest, method = compile_table(spec, options.table_method, circuit.sparsity)
        parts.append(forest)
        done[positions] = True
        tables.append({"table": circuit.graph.nodes[key][NAME], "method": method,
                       "rows": int(len(spec.keys)), "bits": spec.width,
                       "log2_rows": int(np.ceil(np.log2(max(len(spec.keys), 1)))), "outputs": int(len(positions)),
                       "gates": forest.n_gates, "leaves": forest.n_leaves, "depth": forest.depth(),
                       "ops_max": forest.max_ops(circuit.sparsity)})
    rest = np.flatnonzero(~done)
    synthesized = 0
    if len(rest):
        part = synthesize_circuit(circuit, rest, max_inputs=options.max_domain)
        parts.append(part)
        synthesized = int(part.n_trees)
    forest = Forest.concat(m, n_out, parts)
    forest.validate()
    net = ConditionalNetwork(m, forest, output_families=output_families(circuit),
                             input_families=input_families(circuit), sparsity=circuit.sparsity,
                             circuit_name=circuit.name)
    net.meta = {"tables": tables, "synthesized_trees": synthesized,
                "table_trees": len(tables), **_costs(circuit, net, options)}
    return net


def _costs(circuit, net: ConditionalNetwork, options: ConditionalOptions) -> dict:
    """Ops per input over the domain (max bound, mean measured) beside the unconditional
    (dense) network's ops for the same function and log2 of the domain size."""
    domain, label = _domain(circuit)
    size = int(domain.size)
    per_input = max(1.0, net.forest.touched_per_feature() * expected_active(circuit.n_inputs,
                                                                           circuit.sparsity))
    if size * per_input <= options.mean_work:
        ops = np.concatenate([net.forest.ops(active) for _, active in domain.batches(1 << 16)])
        over = label
    else:
        rng = np.random.default_rng(options.seed)
        samples = int(min(options.mean_samples, max(256, options.mean_work // per_input)))
        ranks = np.unique(rng.integers(0, size, samples))
        ops = net.forest.ops(domain.unrank(ranks))
        over = f"{len(ranks):,} uniform samples of the {label}"
    dense_max, dense_mean = ops_per_input(compile_dense(circuit))
    return {"ops_max": net.forest.max_ops(circuit.sparsity), "ops_mean": float(ops.mean()),
            "ops_max_seen": int(ops.max(initial=0)), "ops_mean_over": over, "domain_size": size,
            "log2_n": math.ceil(math.log2(size)) if size > 1 else 0,
            "unconditional_ops_max": int(dense_max), "unconditional_ops_mean": float(dense_mean)}


def _domain(circuit):
    """(domain, description): the table rows where the language says so, else the sparse domain."""
    domain = verification_domain(circuit)
    if isinstance(domain, RowDomain):
        return domain, f"rows of table {domain.table}"
    return domain, "domain"
