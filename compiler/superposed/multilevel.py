"""Superposition beyond the first level: threshold gates over exact 0/1 intermediate features.

An output that is an AND / OR / atleast gate over other signals is superposed over the exact
0/1 values the dense lowering gives those signals, with the sparsity `sparsity_bound` proves
for them. `compile_levels` builds such blocks level by level and keeps them only when the
network has fewer neurons than with the dense fallback; `candidates` picks the outputs.

Proof: docs/proofs/multilevel.md
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from dsl import csr
from dsl.domain import SparseDomain
from dsl.nodes import FIRST, GATE, K, KIND, OFFSETS, OP, OPERANDS, Circuit

from dsl.semantics import active_to_dense, signal_values

from ..dense.lowering import lower_signals
from ..network import CHANNEL, Layer, carry_layer, stack_layers, sum_duplicates
from .channels import ChannelSpec, listen_sets
from .search import search

SUPERPOSABLE_OPS = ("and", "or", "atleast")
EXACT_BOUND_LIMIT = 1 << 20        # enumerate the domain for K' when it has at most this many inputs


# ------------------------------------------------------------------ which outputs

def candidates(circuit: Circuit, positions):
    """(positions, features, ChannelSpec over features) of outputs among `positions` that are
    AND / OR / atleast gates over distinct operands, not all of them input features and none
    of them a negation."""
    m = circuit.n_inputs
    positions = np.asarray(positions, dtype=np.int64)
    drivers = circuit.output_drivers[positions]
    node_of = circuit.node_of_signal(drivers) if len(drivers) else np.zeros(0, np.int64)
    chosen, rows, ks = [], [], []
    for idx in np.unique(node_of):
        data = circuit.graph.nodes[circuit.signal_nodes[idx]]
        if data[KIND] != GATE or data[OP] not in SUPERPOSABLE_OPS:
            continue
        for p in positions[node_of == idx].tolist():
            local = int(circuit.output_drivers[p] - data[FIRST])
            ops = data[OPERANDS][data[OFFSETS][local]:data[OFFSETS][local + 1]]
            n = len(ops)
            k = {"and": n, "or": 1}.get(data[OP], int(data[K][local]) if data[K] is not None else n)
            if len(np.unique(ops)) != n or not (ops >= m).any() or not 1 <= k <= n:
                continue
            if _negated(circuit, ops):         # a negation is 1 almost everywhere: not sparse
                continue
            chosen.append(p)
            rows.append(np.sort(ops))
            ks.append(k)
    if not chosen:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), None
    order = np.argsort(chosen)
    chosen = np.asarray(chosen, dtype=np.int64)[order]
    rows = [rows[i] for i in order]
    ks = np.asarray(ks, dtype=np.int64)[order]
    features = np.unique(np.concatenate(rows))
    f_off = csr.offsets_from_lengths(np.array([len(r) for r in rows], dtype=np.int64))
    f_feat = np.searchsorted(features, np.concatenate(rows))
    bound, how = sparsity_bound(circuit, features)
    spec = ChannelSpec(len(features), bound, f_off, f_feat, ks)
    spec.bound_how = how
    return chosen, features, spec


def _negated(circuit, ops) -> bool:
    nodes = circuit.node_of_signal(ops[ops >= circuit.n_inputs + 2])
    return any(circuit.graph.nodes[circuit.signal_nodes[i]].get(OP) == "not"
               for i in np.unique(nodes).tolist())


# ------------------------------------------------------------------ sparsity of the features

def sparsity_bound(circuit: Circuit, features: np.ndarray):
    """(K', how): at most K' of the signals `features` are 1 (or don't care) on any input of
    the domain.

    * exact, when every feature is an input or an AND of distinct input features:
      `and_maximum` (a search over unions of operand sets, argument there);
    * exact, when the domain has at most EXACT_BOUND_LIMIT inputs: the reference semantics of
      every signal on every input, maximum of the number of nonzero features;
    * otherwise, when every feature is an input or an AND / OR / atleast gate over distinct
      input features (threshold k_g over F_g; an input is k = 1 over itself), the minimum of
      (a) the number of features;
      (b) floor(D / k_min): a feature that is 1 has at least k_g of its operands active, so
          sum over the features that are 1 of k_g <= sum_{f active} deg(f) <= D, the sum of
          the K largest operand degrees deg(f) = #{g : f in F_g};
      (c) for ANDs (k_g = |F_g|) only: a feature that is 1 has F_g inside the active set S,
          |S| <= K, so per arity r at most C(K, r) distinct operand sets (times the largest
          number of features sharing one operand set), and at most the number of arity-r
          features;
    * otherwise the number of features (no sparsity used).
    """
    m, K = circuit.n_inputs, circuit.sparsity
    n = len(features)
    domain = SparseDomain(m, K)
    shapes = _threshold_shapes(circuit, features) if K is not None else None
    if shapes is not None and (shapes[1] == [len(s) for s in shapes[0]]).all():
        found = and_maximum(shapes[0], K)
        if found is not None and found[1]:
            return min(found[0], n), ("exact: largest number of AND features whose operand sets "
                                      "fit in K active features")
    if domain.size <= EXACT_BOUND_LIMIT:
        return _enumerated_bound(circuit, features, domain), \
            f"exact: maximum over all {domain.size:,} inputs of the domain"
    if shapes is None:
        return n, "trivial: the number of intermediate features (not all are thresholds of inputs)"
    sets, ks = shapes
    degree = np.bincount(np.concatenate(sets), minlength=m)
    top = int(np.sort(degree)[::-1][:K].sum())
    bounds = [n, top // int(ks.min())]
    arity = np.array([len(s) for s in sets])
    if (ks == arity).all():
        total = 0
        for r in np.unique(arity).tolist():
            same = [tuple(s.tolist()) for s, a in zip(sets, arity) if a == r]
            mult = max(np.unique(np.array(same), axis=0, return_counts=True)[1])
            total += min(math.comb(K, r) * int(mult), len(same))
        bounds.append(total)
        found = and_maximum(sets, K)
        if found is not None:
            bounds.append(found[0])
    return int(min(bounds)), ("bound: min(features, top-K operand degrees / k_min, "
                              "AND operand sets inside K active features)")


def and_maximum(sets, K, budget: int = 200_000):
    """(value, exact): value >= max over |S| <= K of #{g : F_g inside S} for AND features
    (operand sets F_g), with equality when `exact`; None when the search exceeds `budget`
    states.

    A maximizing S may drop every feature no true gate uses, so S is a union of operand sets.
    Split S into components connected by the gates inside it: no gate spans two components, so
    the count is the sum over components. Hence max(K) <= max over partitions of K of the sum
    of best_connected(s), where best_connected(s) maximizes over connected unions of operand
    sets with at most s features (found by growing unions one intersecting operand set at a
    time); the partition may reuse one component, so this is exact only when a single
    connected union attains it (then that union is a witness).
    """
    key_sets = [frozenset(s.tolist()) for s in sets]
    count_of = {}
    for fs in key_sets:
        count_of[fs] = count_of.get(fs, 0) + 1
    by_feature = {}
    for fs in count_of:
        for f in fs:
            by_feature.setdefault(f, []).append(fs)
    best = [0] * (K + 1)
    seen, stack = set(), [fs for fs in count_of if len(fs) <= K]
    while stack:
        union = stack.pop()
        if union in seen:
            continue
        seen.add(union)
        if len(seen) > budget:
            return None
        inside = {g for f in union for g in by_feature[f] if g <= union}
        value = sum(count_of[g] for g in inside)
        best[len(union)] = max(best[len(union)], value)
        for f in union:
            for g in by_feature[f]:
                grown = union | g
                if len(grown) <= K and grown != union and grown not in seen:
                    stack.append(grown)
    for s in range(1, K + 1):                # connected best with at most s features
        best[s] = max(best[s], best[s - 1])
    # Best over partitions of K (knapsack over sizes): an upper bound, since it may use the same
    # component twice; exact when one connected union attains it.
    total = [0] * (K + 1)
    for cap in range(1, K + 1):
        total[cap] = max(best[s] + total[cap - s] for s in range(1, cap + 1))
    return total[K], total[K] == best[K]


def _enumerated_bound(circuit, features, domain) -> int:
    step = max(1, (1 << 24) // max(circuit.n_signals, 1))
    best = 0
    for start in range(0, domain.size, step):
        active = domain.unrank(np.arange(start, min(start + step, domain.size), dtype=np.int64))
        values = signal_values(circuit, active_to_dense(active, circuit.n_inputs))
        best = max(best, int((values[:, features] != 0).sum(axis=1).max()))
    return best


def _threshold_shapes(circuit, features):
    """(operand sets, k) per feature when every feature is an input or a threshold gate over
    distinct input features; else None."""
    m = circuit.n_inputs
    sets, ks = [], []
    node_of = circuit.node_of_signal(features)
    for f, idx in zip(features.tolist(), node_of.tolist()):
        if f < m:
            sets.append(np.array([f]))
            ks.append(1)
            continue
        data = circuit.graph.nodes[circuit.signal_nodes[idx]]
        if data[KIND] != GATE or data[OP] not in SUPERPOSABLE_OPS:
            return None
        local = f - data[FIRST]
        ops = data[OPERANDS][data[OFFSETS][local]:data[OFFSETS][local + 1]]
        if (ops >= m).any() or len(np.unique(ops)) != len(ops):
            return None
        n = len(ops)
        ks.append({"and": n, "or": 1}.get(data[OP], int(data[K][local]) if data[K] is not None else n))
        sets.append(np.sort(ops))
    return sets, np.array(ks, dtype=np.int64)


# ------------------------------------------------------------------ the block

def feature_layers(circuit: Circuit, features: np.ndarray):
    """Dense hidden layers computing the signals `features`, and their 0/1 value forms (an
    affine read-out with one row per feature)."""
    return lower_signals(circuit, features)


def channel_block(circuit, features, spec, a):
    """(hidden layers, read-out) over the inputs: dense intermediate features, then the channel
    neurons reading their forms, then the channel AND read-out (one row per superposed output)."""
    layers, forms = feature_layers(circuit, features)
    l_off, l_feat = listen_sets(spec, a)
    order = np.argsort(forms.rows, kind="stable")
    f_off = csr.offsets_from_lengths(np.bincount(forms.rows, minlength=len(features)))
    f_cols, f_vals = forms.cols[order], forms.vals[order]
    neuron = csr.row_of_each(l_off)
    t_off, cols = csr.gather_rows(f_off, f_cols, l_feat)
    _, vals = csr.gather_rows(f_off, f_vals, l_feat)
    rows, cols, vals = sum_duplicates(neuron[csr.row_of_each(t_off)], cols, vals)
    bias = np.bincount(neuron, weights=forms.bias[l_feat], minlength=a.n) - (a.neuron_k - 1.0)
    layers.append(Layer(forms.n_in, a.n, rows, cols, vals, bias, True,
                        np.full(a.n, CHANNEL, np.int8), np.arange(a.n, dtype=np.int64),
                        np.zeros(a.n, np.int64)))
    slot = csr.row_of_each(a.c_offsets)
    readout = Layer(a.n, spec.n_outputs, slot, a.c_neurons.copy(), np.ones(len(slot)),
                    -(a.channel_sizes() - 1.0), relu=False)
    return layers, readout


def side_by_side(net, layers, readout, positions):
    """`net` with a second block (hidden `layers` from the inputs, `readout` rows for output
    `positions`) next to it. The shallower block is padded with carry neurons relu(h) = h (h is
    a ReLU output or an input, so h >= 0) for the top-layer units its read-out reads."""
    depth = max(len(net.hidden), len(layers))
    m = net.input_width
    (a_layers, a_cols), (b_layers, b_cols) = (_pad(net.hidden, net.readout.cols, depth, m),
                                              _pad(layers, readout.cols, depth, m))
    merged, a_prev = [], 0
    for level in range(depth):
        shift = a_prev if level else 0
        merged.append(stack_layers([a_layers[level], b_layers[level]],
                                   a_layers[level].n_in + (b_layers[level].n_in if level else 0),
                                   col_shifts=(0, shift)))
        a_prev = a_layers[level].n_out
    a_out = net.readout
    rows = np.concatenate([a_out.rows, positions[readout.rows]])
    cols = np.concatenate([a_cols, b_cols + (a_prev if depth else 0)])
    vals = np.concatenate([a_out.vals, readout.vals])
    bias = a_out.bias.copy()
    bias[positions] += readout.bias
    n_in = merged[-1].n_out if merged else m
    return dataclasses.replace(net, layers=merged + [Layer(n_in, a_out.n_out, rows, cols, vals,
                                                           bias, relu=False)], meta=dict(net.meta))


def _pad(layers, cols, depth, m):
    """(layers padded to `depth` with carries of the read columns, read-out columns after)."""
    if len(layers) == depth:
        return list(layers), cols
    needed, local = np.unique(cols, return_inverse=True)
    width = layers[-1].n_out if layers else m
    out = list(layers)
    for level in range(len(layers), depth):
        out.append(carry_layer(width if level == len(layers) else len(needed),
                          needed if level == len(layers) else np.arange(len(needed))))
    return out, local.reshape(-1)


# ------------------------------------------------------------------ choosing

def compile_levels(circuit: Circuit, rest, build, options):
    """The network for the outputs `rest` not superposed at the first level: `build(outputs)`
    gives the network with `outputs` compiled densely. Returns (network, info) where info has
    `dense_positions` (outputs left dense) and `levels` (one entry per superposed level >= 2)."""
    rest = np.asarray(rest, dtype=np.int64)
    plain = build(rest)
    if not options.multilevel or len(rest) == 0:
        return plain, {"dense_positions": rest, "levels": []}
    positions, features, spec = candidates(circuit, rest)
    if len(positions) == 0:
        return plain, {"dense_positions": rest, "levels": []}
    sub = dataclasses.replace(options, max_error=None, width=None, log=[])
    a = search(spec, sub)
    info = {"dense_positions": rest, "levels": [_level_entry(circuit, positions, features, spec,
                                                              a, used=False)]}
    if a is None:
        info["levels"][0]["reason"] = "no channel width below one neuron per output is exact"
        return plain, info
    left = np.setdiff1d(rest, positions)
    layers, readout = channel_block(circuit, features, spec, a)
    with_block = side_by_side(build(left), layers, readout, positions)
    n_with, n_plain = _neurons(with_block), _neurons(plain)
    info["levels"][0].update(neurons_with=n_with, neurons_dense_fallback=n_plain)
    if n_with >= n_plain:
        info["levels"][0]["reason"] = "no saving over the dense fallback"
        return plain, info
    info["levels"][0]["used"] = True
    info["dense_positions"] = left
    return with_block, info


def _neurons(net) -> int:
    return int(sum(layer.n_out for layer in net.hidden))


def _level_entry(circuit, positions, features, spec, a, used):
    depth = circuit.signal_depth()[circuit.output_drivers[positions]]
    by_depth = {int(d): int(c) for d, c in zip(*np.unique(depth, return_counts=True))}
    return {"level": ">=2", "outputs": int(len(positions)), "outputs_by_circuit_depth": by_depth,
            "intermediate_features": int(len(features)), "feature_sparsity": int(spec.sparsity),
            "feature_sparsity_how": spec.bound_how,
            "channel_neurons": int(a.n) if a is not None else 0,
            "channel_size": int(a.channel_sizes().max()) if a is not None else 0,
            "used": used, "exact_by": "combinatorial channel criterion over the intermediate "
                                      "features (compiler/channels.py)"}
