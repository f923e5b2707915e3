"""Accounting of a conditional network (Koyuncu's measure): gates, parameters, ops on the path."""

from __future__ import annotations

import numpy as np

from ..accounting import Accounting, bounds


def account_conditional(net) -> Accounting:
    """Accounting of a ConditionalNetwork (compiler/conditional/network.py), Koyuncu's measure.

    neurons = gates (one neuron each, evaluated only on the path taken); ops per input count
    the additions, multiplications and comparisons on the path actually taken (compiler/conditional/tree.py
    `walk`): max is a bound over every input of the domain, mean is measured over the domain
    (or a uniform sample of it, see `conditional.ops_mean_over`)."""
    f, meta = net.forest, net.meta
    m, K = f.n_inputs, f.n_registers
    tree_outputs = np.bincount(f.output_tree[f.output_tree >= 0], minlength=f.n_trees)
    with_terms = int((np.diff(f.entry_offsets) > 0).sum())
    params_dense = (f.n_gates * (m + K + 1) + K * (m + 1)
                    + int(tree_outputs[f.leaf_tree].sum()) + with_terms * (m + K))
    params = f.params()
    depth = f.depth()
    weights = [np.abs(a).max(initial=0.0) for a in (f.reg_vals, f.reg_bias, f.gate_vals,
                                                    f.gate_bias, f.entry_const, f.term_vals)]
    ops_max = meta.get("ops_max", f.max_ops(net.sparsity))
    conditional = {k: meta[k] for k in ("ops_mean_over", "domain_size", "log2_n", "unconditional_ops_max",
                                        "unconditional_ops_mean", "ops_max_seen", "tables",
                                        "table_trees", "synthesized_trees") if k in meta}
    conditional.update({"trees": f.n_trees, "gates": f.n_gates, "leaves": f.n_leaves,
                        "registers": K, "depth": depth})
    return Accounting(
        target=net.target, inputs=net.n_inputs, outputs=net.n_outputs, neurons=f.n_gates,
        neurons_per_layer=[], neurons_by_role={"gate": f.n_gates}, layers=depth + 1,
        params_nonzero=params, params_dense=int(params_dense), ops_per_input_max=int(ops_max),
        ops_per_input_mean=round(float(meta.get("ops_mean", float("nan"))), 3),
        max_weight=float(max(weights)), bounds=bounds(net.n_outputs, f.n_gates, params),
        conditional=conditional)
