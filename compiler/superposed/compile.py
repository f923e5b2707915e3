"""The `superposed` target: many output features computed by far fewer neurons (one layer).

Outputs that are threshold gates over input features (pairwise or n-ary AND, OR, atleast(k),
and plain copies of a feature) are computed in superposition by output channels
(channels.py): each output owns t neurons, each neuron listens to the operands of every
output it serves, and the read-out is the AND of the channel, sum h - (t - 1). Exactness on the
whole sparse domain is a combinatorial property of the assignment, decided exactly by
`channels.failing_outputs`; the search keeps only assignments where no output fails:

1. for each channel size t in a small set, binary-search the smallest width n for which a
   balanced random (or design) assignment can be repaired to zero failing outputs;
2. keep the (n, t) with the fewest neurons.

Constructions: `output-channels` (balanced random channels, Adler & Shavit's output-channel
structure), `design` (transversal-design lines: channels share at most one neuron),
`input-channels` (Haenni et al.'s universal AND: neurons listen to random feature subsets,
output (a, b) reads every neuron listening to both; repaired like the others).

Every other output (negations, xor, multi-level logic, constants) falls back to the exact dense
lowering inside the same network: the superposed neurons sit in hidden layer 1 and are carried
up when the dense part is deeper. The network's `meta` records what was superposed.
"""

from __future__ import annotations

import time

import numpy as np

from dsl import csr
from dsl.nodes import Circuit

from ..dense import compile_dense
from ..network import (CARRY, CHANNEL, Layer, Network, input_families, neuron_block,
                       output_families, stack_layers)
from .channels import listen_sets
from .codes import compile_coded
from .error_budget import measure_error
from .multilevel import compile_levels
from .options import CONSTRUCTIONS, SuperposedOptions
from .search import search
from .select import superposable


def compile_superposed(circuit: Circuit, options: SuperposedOptions | None = None,
                       progress=None) -> Network:
    """The superposed network of `circuit` (module docstring): channel neurons for the outputs
    that qualify, the dense lowering for the rest. ValueError for an unknown construction;
    CodeError (compiler/superposed/codes.py) when codes are asked for and cannot be exact."""
    options = options or SuperposedOptions()
    if options.construction not in CONSTRUCTIONS:
        raise ValueError(f"unknown construction '{options.construction}' "
                         f"(choose from {', '.join(CONSTRUCTIONS)})")
    if options.input_code is not None or options.output_code is not None:
        return compile_coded(circuit, options)
    start = time.perf_counter()
    positions, spec = superposable(circuit)
    rest = np.setdiff1d(np.arange(circuit.n_outputs), positions)
    assignment = search(spec, options, progress) if len(positions) else None
    if len(positions) and assignment is None:
        # no width up to the naive one worked: give up superposition for these outputs
        rest, positions, assignment = np.arange(circuit.n_outputs), positions[:0], None
    def build(outputs):
        dense = compile_dense(circuit, outputs=outputs) if len(outputs) else None
        return merge_network(circuit, spec, positions, assignment, dense, outputs)

    net, levels = compile_levels(circuit, rest, build, options)
    rest = levels.get("dense_positions", rest)
    net.meta.update({
        "construction": options.construction,
        "superposed_outputs": int(circuit.n_outputs - len(rest)), "dense_outputs": int(len(rest)),
        "channel_neurons": int(assignment.n) if assignment is not None else 0,
        "channel_size": int(assignment.channel_sizes().max()) if assignment is not None else 0,
        "search": options.log[-200:], "search_seconds": round(time.perf_counter() - start, 3),
        "exact_by": "combinatorial channel criterion (compiler/channels.py)",
        "levels": [{"level": 1, "outputs": int(len(positions)), "over": "input features",
                    "feature_sparsity": circuit.sparsity,
                    "channel_neurons": int(assignment.n) if assignment is not None else 0}]
                  + levels.get("levels", []),
    })
    if options.max_error is not None and assignment is not None:
        measured = measure_error(spec, assignment, seed=options.seed)
        net.meta.update({"max_error": options.max_error, "measured_error": measured.as_dict()})
        if measured.failing_outputs:
            net.meta["exact_by"] = ("not exact: measured error rate (compiler/error_budget.py); "
                                    "the failing outputs are wrong on some inputs")
    return net


def merge_network(circuit, spec, positions, a, dense, rest) -> Network:
    """The network with channel assignment `a` for the outputs `positions` (hidden layer 1,
    carried up when the dense part is deeper) beside `dense`, the dense network of `rest`."""
    m = circuit.n_inputs
    n_out = circuit.n_outputs
    dense_hidden = dense.hidden if dense is not None else []
    depth = max(1 if a is not None else 0, len(dense_hidden))
    n_sup = a.n if a is not None else 0
    layers = []
    prev_dense_width, prev_width = m, m
    for level in range(depth):
        d = dense_hidden[level] if level < len(dense_hidden) else None
        blocks = [d] if d is not None else []
        if a is not None:
            if level == 0:
                l_off, l_feat = listen_sets(spec, a)
                blocks.append(neuron_block(m, csr.row_of_each(l_off), l_feat, np.ones(len(l_feat)),
                                           -(a.neuron_k - 1.0), CHANNEL, np.arange(n_sup)))
            else:  # carry the channel neurons up, unchanged
                idx = np.arange(n_sup)
                blocks.append(neuron_block(prev_width, idx, prev_dense_width + idx, np.ones(n_sup),
                                           np.zeros(n_sup), CARRY, idx))
        layers.append(stack_layers(blocks, prev_width if level else m))
        prev_dense_width = d.n_out if d is not None else 0
        prev_width = layers[-1].n_out
    layers.append(_readout(circuit, spec, positions, a, dense, rest, prev_dense_width,
                           prev_width, n_out))
    return Network("superposed", m, layers, np.arange(m, dtype=np.int64),
                   output_families=output_families(circuit), input_families=input_families(circuit),
                   sparsity=circuit.sparsity, circuit_name=circuit.name)


def _readout(circuit, spec, positions, a, dense, rest, dense_width, n_in, n_out) -> Layer:
    rows, cols, vals = [], [], []
    bias = np.zeros(n_out)
    if dense is not None:
        ro = dense.readout
        rows.append(rest[ro.rows])
        cols.append(ro.cols)
        vals.append(ro.vals)
        bias[rest] = ro.bias
    if a is not None:
        slot = csr.row_of_each(a.c_offsets)
        rows.append(positions[slot])
        cols.append(dense_width + a.c_neurons)
        vals.append(np.ones(len(slot)))
        bias[positions] = -(a.channel_sizes() - 1.0)
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
    return Layer(n_in, n_out, cat(rows, np.int64), cat(cols, np.int64), cat(vals, np.float64),
                 bias, relu=False)
