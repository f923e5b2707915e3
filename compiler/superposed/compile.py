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
from dataclasses import replace

import numpy as np

from dsl import csr
from dsl.nodes import Circuit

from ..dense import compile_dense
from ..network import (CARRY, CHANNEL, Layer, Network, input_families, neuron_block,
                       output_families, stack_layers)
from ..target import TargetUnavailable
from .channels import failing_outputs, listen_sets
from .codes import compile_coded
from .error_budget import measure_error
from .multilevel import compile_levels
from .options import CONSTRUCTIONS, SuperposedOptions
from .rs_compile import compile_rs, is_code_kind
from .search import (COPY_REASON, Group, copy_rows, search, search_groups,
                     sub_spec)
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
    coded = options.input_code is not None or options.output_code is not None
    if coded and (circuit.n_inputs == 0 or circuit.n_outputs == 0):
        raise TargetUnavailable("input / output codes need a circuit with at least one input "
                                f"and one output ({circuit.name} has {circuit.n_inputs} and "
                                f"{circuit.n_outputs})")
    if is_code_kind(options.input_code) or is_code_kind(options.output_code):
        return compile_rs(circuit, options)            # combinatorial codes (rs_compile.py)
    if options.input_code is not None or options.output_code is not None:
        return compile_coded(circuit, options)
    start = time.perf_counter()
    positions, spec = superposable(circuit)
    if options.width is not None:
        rows, assignment, groups = _fixed_width(spec, options, progress)
    elif len(positions):
        rows, assignment, groups = search_groups(spec, options, progress)
    else:
        rows, assignment, groups = np.zeros(0, np.int64), None, []
    spec, positions = sub_spec(spec, rows), positions[rows]
    if assignment is not None and options.max_error is None \
            and sum(g.assignment is not None for g in groups) > 1:
        _check_merged(spec, assignment, options)
    rest = np.setdiff1d(np.arange(circuit.n_outputs), positions)

    def build(outputs):
        dense = compile_dense(circuit, outputs=outputs) if len(outputs) else None
        return merge_network(circuit, spec, positions, assignment, dense, outputs)

    net, levels = compile_levels(circuit, rest, build, options)
    rest = levels.get("dense_positions", rest)
    superposed = assignment is not None or len(rest) < circuit.n_outputs
    kept = None
    if superposed and options.width is None:
        net, kept = _keep_cheaper(circuit, spec, net)
        if kept["form"] == "dense":
            rest, positions, assignment = np.arange(circuit.n_outputs), positions[:0], None
            for group in groups:
                if group.assignment is not None:
                    group.assignment = None
                    group.reason = "the dense form of the whole circuit is cheaper"
            levels = {"levels": [dict(level, used=False, reason="the dense form is cheaper")
                                 for level in levels.get("levels", [])]}
    net.meta.update({
        "construction": options.construction,
        "superposed_outputs": int(circuit.n_outputs - len(rest)), "dense_outputs": int(len(rest)),
        "channel_neurons": int(assignment.n) if assignment is not None else 0,
        "channel_size": int(assignment.channel_sizes().max()) if assignment is not None else 0,
        "groups": [g.to_json() for g in groups],
        "search": options.log[-200:], "search_seconds": round(time.perf_counter() - start, 3),
        "exact_by": "combinatorial channel criterion (compiler/channels.py)",
        "levels": [{"level": 1, "outputs": int(len(positions)), "over": "input features",
                    "feature_sparsity": circuit.sparsity,
                    "channel_neurons": int(assignment.n) if assignment is not None else 0}]
                  + levels.get("levels", []),
    })
    if kept is not None:
        net.meta["kept"] = kept
    if options.width is not None:
        net.meta["width"] = {"requested": int(options.width), "honoured": assignment is not None}
    if options.max_error is not None and assignment is not None:
        measured = measure_error(spec, assignment, seed=options.seed)
        net.meta.update({"max_error": options.max_error, "measured_error": measured.as_dict()})
        if measured.failing_outputs:
            net.meta["exact_by"] = ("not exact: measured error rate (compiler/error_budget.py); "
                                    "the failing outputs are wrong on some inputs")
    return net


def _fixed_width(spec, options: SuperposedOptions, progress):
    """(rows, assignment, groups) for a given width: one assignment of `options.width` neurons
    for every output that qualifies except plain copies, or none (then, with options.strict,
    TargetUnavailable naming the smallest width the search finds)."""
    copies = copy_rows(spec)
    groups = [Group(f"{len(copies):,} copies of input features", copies, reason=COPY_REASON)] \
        if len(copies) else []
    rows = np.setdiff1d(np.arange(spec.n_outputs), copies)
    width, count = int(options.width), len(rows)
    goal = "exact" if options.max_error is None else f"within the error rate {options.max_error:g}"
    assignment, problem = None, None
    if count == 0:
        problem = ("no output qualifies for superposition (an AND / OR / atleast gate over input "
                   "features)")
    elif width >= count:
        problem = (f"a width of {width:,} channel neurons is not below the {count:,} outputs it "
                   "would serve (superposition uses fewer neurons than outputs)")
    else:
        assignment = search(sub_spec(spec, rows), options, progress)
        if assignment is None:
            failing = min((e["failing"] for e in options.log), default=count)
            sizes = sorted({e["t"] for e in options.log})
            problem = (f"no channel assignment of {width:,} neurons is {goal} for the {count:,} "
                       f"outputs that qualify (channels of {', '.join(map(str, sizes))}; at best "
                       f"{failing:,} outputs still failed)")
    if problem is None:
        groups.append(Group(f"{count:,} outputs at width {width:,}", rows, assignment))
        return rows, assignment, groups
    if options.strict:
        raise TargetUnavailable(f"width {width:,}: {problem}; {_smallest(spec, options, goal)}",
                                option="width")
    groups.append(Group(f"{count:,} outputs at width {width:,}", rows, reason=problem))
    return np.zeros(0, np.int64), None, groups


def _smallest(spec, options: SuperposedOptions, goal: str) -> str:
    """What the search finds without a width, for the message of a width not honoured."""
    free = replace(options, width=None, strict=False, log=[])
    rows, a, groups = search_groups(spec, free)
    if a is None:
        return f"no width below the number of outputs is {goal} for them"
    count = int(sum(len(g.rows) for g in groups if not g.reason or g.assignment is not None))
    sizes = sorted(set(a.channel_sizes().tolist()))
    smallest = "smallest exact width" if goal == "exact" else f"smallest width {goal}"
    return (f"the {smallest} the search finds is {a.n:,} (channels of "
            f"{', '.join(map(str, sizes))}, superposing {len(rows):,} of those {count:,} outputs)")


def _check_merged(spec, a, options) -> None:
    """The merged groups' assignment, re-checked by the exact criterion (groups share no
    neuron, so it holds when each group's does; this guards the merge itself)."""
    bad = failing_outputs(spec, a, max_bytes=options.max_memory, device=options.check_device)
    if len(bad):
        raise RuntimeError(f"internal error: {len(bad)} outputs of the merged channel "
                           "assignment are not exact")


def network_cost(net: Network) -> tuple:
    """(neurons, nonzero parameters) of a layered network, counted as compiler/accounting.py
    counts them (ReLU units of the hidden layers; nonzero weights and biases)."""
    neurons = sum(layer.n_out for layer in net.layers[:-1] if layer.relu)
    params = sum(layer.nnz + int(np.count_nonzero(layer.bias)) for layer in net.layers)
    return int(neurons), int(params)


def _keep_cheaper(circuit, spec, net):
    """(network, note): `net`, or the all-dense network of the circuit when that has fewer
    neurons (or as many and fewer parameters); the note records both costs and the choice."""
    dense = merge_network(circuit, spec, np.zeros(0, np.int64), None, compile_dense(circuit),
                          np.arange(circuit.n_outputs))
    (n_s, p_s), (n_d, p_d) = network_cost(net), network_cost(dense)
    keep = n_s < n_d or (n_s == n_d and p_s <= p_d)
    note = {"form": "superposed" if keep else "dense", "neurons": n_s if keep else n_d,
            "params": p_s if keep else p_d, "superposed_neurons": n_s, "superposed_params": p_s,
            "dense_neurons": n_d, "dense_params": p_d}
    return (net, note) if keep else (dense, note)


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
