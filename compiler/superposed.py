"""The `superposed` target: many output features computed by far fewer neurons (one layer).

Outputs that are threshold gates over input features (pairwise or n-ary AND, OR, atleast(k),
and plain copies of a feature) are computed in superposition by output channels
(compiler/channels.py): each output owns t neurons, each neuron listens to the operands of every
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
from dataclasses import dataclass, field

import numpy as np

from dsl import csr
from dsl.nodes import GATE, Circuit

from .channels import (Assignment, ChannelSpec, assign_design, assign_random, failing_outputs,
                       listen_sets, repair)
from .dense import compile_dense, input_families, output_families
from .network import CARRY, CHANNEL, Layer, Network

CONSTRUCTIONS = ("output-channels", "design", "input-channels")
DEFAULT_CHANNELS = (4, 6, 8, 12, 16)


@dataclass
class SuperposedOptions:
    construction: str = "output-channels"
    width: int | None = None          # fixed n (skip the search)
    channel: int | None = None        # fixed t
    channels: tuple = DEFAULT_CHANNELS
    seed: int = 0
    repair_rounds: int = 40
    max_error: float | None = None    # accept a measured error rate <= this (compiler/error_budget.py)
    multilevel: bool = True           # superpose gates over exact intermediate features (compiler/multilevel.py)
    input_code: int | None = None     # inputs arrive as a DIM-wide sign code (compiler/codes.py)
    output_code: int | None = None    # outputs leave as a DIM-wide sign code read by a fixed decoder
    code_seed: int = 0
    log: list = field(default_factory=list)


# ------------------------------------------------------------------ which outputs

def superposable(circuit: Circuit):
    """(positions, ChannelSpec) of outputs that are threshold gates over distinct input features."""
    m = circuit.n_inputs
    drivers = circuit.output_drivers
    graph = circuit.graph
    firsts = np.array([graph.nodes[k]["first"] for k in circuit.signal_nodes])
    node_of = np.searchsorted(firsts, drivers, side="right") - 1
    take = np.zeros(len(drivers), dtype=bool)
    k = np.zeros(len(drivers), dtype=np.int64)
    lens = np.zeros(len(drivers), dtype=np.int64)
    rows_of = {}
    copies = drivers < m
    take[copies], k[copies], lens[copies] = True, 1, 1
    for idx in np.unique(node_of[~copies]):
        data = graph.nodes[circuit.signal_nodes[idx]]
        if data["kind"] != GATE or data["op"] not in ("and", "or", "atleast"):
            continue
        sel = np.flatnonzero(node_of == idx)
        local = drivers[sel] - data["first"]
        off, ops = csr.gather_rows(data["offsets"], data["operands"], local)
        all_inputs = ~csr.row_any(off, ops >= m)
        in_order = csr.sort_within_rows(off, ops)
        distinct = csr.row_sum(off, csr.first_of_run(off, in_order).astype(np.int64)) == csr.lengths(off)
        ok = all_inputs & distinct
        n = csr.lengths(off)
        kk = {"and": n, "or": np.ones_like(n)}.get(data["op"], data["k"][local] if data["k"] is not None else n)
        take[sel[ok]] = True
        k[sel[ok]] = kk[ok]
        lens[sel[ok]] = n[ok]
        rows_of[idx] = (sel, off, ops)
    positions = np.flatnonzero(take)
    f_len = lens[positions]
    f_off = csr.offsets_from_lengths(f_len)
    f_feat = np.empty(f_off[-1], dtype=np.int64)
    slot = np.full(len(drivers), -1, dtype=np.int64)
    slot[positions] = np.arange(len(positions))
    copy_pos = np.flatnonzero(copies)
    f_feat[f_off[slot[copy_pos]]] = drivers[copy_pos]
    for sel, off, ops in rows_of.values():
        chosen = sel[take[sel]]
        if len(chosen) == 0:
            continue
        keep_rows = np.flatnonzero(take[sel])
        o2, v2 = csr.gather_rows(off, ops, keep_rows)
        starts = f_off[slot[chosen]]
        within = np.arange(len(v2)) - np.repeat(o2[:-1], csr.lengths(o2))
        f_feat[np.repeat(starts, csr.lengths(o2)) + within] = v2
    return positions, ChannelSpec(m, circuit.sparsity, f_off, f_feat, k[positions])


# ------------------------------------------------------------------ search

def _attempt(spec, n, t, construction, seed, rounds, give_up=True):
    rng = np.random.default_rng(seed)
    if construction == "input-channels":
        a = assign_input_channels(spec, n, t, rng)
    elif construction == "design":
        a = assign_design(spec, n, t, rng)
    else:
        a = assign_random(spec, n, t, rng)
    left = repair(spec, a, rng, rounds=rounds,
                  give_up=max(64, spec.n_outputs // 10) if give_up else None)
    return a, left


def assign_input_channels(spec: ChannelSpec, n: int, t: int, rng) -> Assignment:
    """Universal-AND style: every neuron listens to each feature with probability p chosen so
    that an output's operands share about t neurons; output j's channel is the set of neurons
    listening to all its operands (at least one: missing ones are added)."""
    r = max(1, int(np.max(np.diff(spec.f_offsets), initial=1)))
    p = min(1.0, (t / n) ** (1.0 / r))
    listen = rng.random((n, spec.m)) < p
    chans = []
    for j in range(spec.n_outputs):
        feats = spec.f_features[spec.f_offsets[j]:spec.f_offsets[j + 1]]
        members = np.flatnonzero(listen[:, feats].all(axis=1))
        if len(members) < 1:
            members = rng.choice(n, size=min(t, n), replace=False)
        chans.append(np.sort(members))
    lens = np.array([len(c) for c in chans])
    width = int(lens.max())
    # pad to a uniform width with extra random neurons so the repair machinery applies
    c = np.zeros((spec.n_outputs, width), dtype=np.int64)
    for j, ch in enumerate(chans):
        extra = rng.choice(np.setdiff1d(np.arange(n), ch), size=width - len(ch), replace=False)
        c[j] = np.concatenate([ch, extra])
    return Assignment(n, csr.uniform(spec.n_outputs, width), c.ravel(),
                      np.full(n, int(spec.k.max()) if len(spec.k) else 1, dtype=np.int64))


def search(spec: ChannelSpec, options: SuperposedOptions, progress=None):
    """Smallest (n, t) whose repaired assignment has no failing output. Returns Assignment."""
    if len(np.unique(spec.k)) > 1 and options.construction == "input-channels":
        options.construction = "output-channels"
    ts = (options.channel,) if options.channel else options.channels
    best = None
    for t in ts:
        if options.width:
            a, left = _attempt(spec, options.width, t, options.construction, options.seed,
                               options.repair_rounds, options.max_error is None)
            options.log.append({"n": options.width, "t": t, "failing": left})
            if _accept(spec, a, left, options) and (best is None or a.n < best.n):
                best = a
            continue
        # superposition must beat one neuron per output, so widths stop below m'
        lo, hi = max(t + 1, t * len(np.unique(spec.k))), spec.n_outputs - 1
        found = None
        if lo > hi:
            continue
        while lo < hi:                      # smallest n in [lo, hi] that works
            mid = (lo + hi) // 2
            a, left = _attempt(spec, mid, t, options.construction, options.seed, options.repair_rounds,
                               options.max_error is None)
            options.log.append({"n": mid, "t": t, "failing": left})
            if progress:
                progress(options.log[-1])
            if _accept(spec, a, left, options):
                hi, found = mid, a
            else:
                lo = mid + 1
            if best is not None and lo >= best.n:
                break
        if found is not None and (best is None or found.n < best.n):
            best = found
    return best


def _accept(spec, a, left, options) -> bool:
    from .error_budget import within
    return within(spec, a, left, options.max_error, seed=options.seed)


# ------------------------------------------------------------------ network

def compile_superposed(circuit: Circuit, options: SuperposedOptions | None = None,
                       progress=None) -> Network:
    options = options or SuperposedOptions()
    if options.construction not in CONSTRUCTIONS:
        raise ValueError(f"unknown construction '{options.construction}' "
                         f"(choose from {', '.join(CONSTRUCTIONS)})")
    if options.input_code is not None or options.output_code is not None:
        from .codes import compile_coded
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
        return _merge(circuit, spec, positions, assignment, dense, outputs)

    from .multilevel import compile_levels
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
        from .error_budget import measure_error
        measured = measure_error(spec, assignment, seed=options.seed)
        net.meta.update({"max_error": options.max_error, "measured_error": measured.as_dict()})
        if measured.failing_outputs:
            net.meta["exact_by"] = ("not exact: measured error rate (compiler/error_budget.py); "
                                    "the failing outputs are wrong on some inputs")
    return net


def _merge(circuit, spec, positions, a, dense, rest) -> Network:
    m = circuit.n_inputs
    n_out = circuit.n_outputs
    dense_hidden = dense.hidden if dense is not None else []
    depth = max(1 if a is not None else 0, len(dense_hidden))
    n_sup = a.n if a is not None else 0
    layers = []
    prev_dense_width, prev_width = m, m
    for level in range(depth):
        d = dense_hidden[level] if level < len(dense_hidden) else None
        parts = []
        if d is not None:
            parts.append((d.rows, d.cols, d.vals, d.bias, d.role, d.signal, d.part, d.n_out))
        if a is not None:
            if level == 0:
                l_off, l_feat = listen_sets(spec, a)
                rows = csr.row_of_each(l_off)
                parts.append((rows, l_feat, np.ones(len(l_feat)), -(a.neuron_k - 1.0),
                              np.full(n_sup, CHANNEL, np.int8), np.arange(n_sup),
                              np.zeros(n_sup, np.int64), n_sup))
            else:  # carry the channel neurons up, unchanged
                idx = np.arange(n_sup)
                parts.append((idx, prev_dense_width + idx, np.ones(n_sup), np.zeros(n_sup),
                              np.full(n_sup, CARRY, np.int8), idx, np.zeros(n_sup, np.int64), n_sup))
        layers.append(_stack(parts, prev_width if level else m))
        prev_dense_width = d.n_out if d is not None else 0
        prev_width = layers[-1].n_out
    layers.append(_readout(circuit, spec, positions, a, dense, rest, prev_dense_width,
                           prev_width, n_out))
    return Network("superposed", m, layers, np.arange(m, dtype=np.int64),
                   output_families=output_families(circuit), input_families=input_families(circuit),
                   sparsity=circuit.sparsity, circuit_name=circuit.name)


def _stack(parts, n_in) -> Layer:
    """Neurons of several blocks side by side (block b's rows are offset by the widths before)."""
    rows, cols, vals, bias, role, signal, part = [], [], [], [], [], [], []
    offset = 0
    for r, c, v, b, ro, s, p, width in parts:
        rows.append(r + offset)
        cols.append(c)
        vals.append(v)
        bias.append(b)
        role.append(ro)
        signal.append(s)
        part.append(p)
        offset += width
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
    return Layer(n_in, offset, cat(rows, np.int64), cat(cols, np.int64), cat(vals, np.float64),
                 cat(bias, np.float64), True, cat(role, np.int8), cat(signal, np.int64),
                 cat(part, np.int64))


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
