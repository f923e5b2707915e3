"""Two levels with every stream coded: threshold gates over ANDs of input features.

Circuit shape: every output is an AND / OR / atleast gate over intermediate signals ("wires"),
and every wire is the AND of r1 distinct input features (the same r1 for all wires), e.g. ANDs
of ANDs. The network (docs/proofs/rs-codes.md, "Two levels"):

    v  = E x                   input code, c blocks of q                  (codes.input)
    h1 = relu(H1 v - rho)      level 1: universal count of active r1-sets
    z1 = W1 h1                 the level-1 code: active r1-sets per (block, symbol set)
    h2 = relu(H2 z1 - rho)     level 2: counts over the level-1 code
    z2 = W2 h2                 the level-2 code: active terms per (block, set of z1 symbols)
    y  = R z2 - (c - 1)        decoder (codes.output), threshold 1/2

z1 is itself a superimposed code: its "features" are all r1-subsets of input features, the
symbol of a subset P at block s is its symbol set there (alphabet A = sets of size <= r1),
at most K2 = C(K, r1) of them are active, and two distinct subsets share a symbol in at most
r1 * lambda blocks. Level 2 is the construction of rs_terms over that code, its neurons pruned
to the symbol sets the outputs read (the universal layer over A would be far larger). Exact
when c >= r1 lambda W2 + 1, W2 the largest sum of bound_weight(r, K2) over an output's terms.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import sparse

from dsl.nodes import FIRST, GATE, K, KIND, OFFSETS, OP, OPERANDS

from ..network import CHANNEL, Layer, Network
from .codes import CodeError
from .rs_codes import (GaloisField, RSParams, code_matrix, field_of, field_order_at_least,
                       integer_root_ceil, symbols)
from .rs_terms import Layout, SymbolSets, bound_weight, rho_weights, thresholds

OPS = ("and", "or", "atleast")


class TwoLevels:
    """The circuit's two levels: `wires` int64 [W, r1] (input features of each wire), and per
    output its operand wires and threshold k (`out_offsets`, `out_wires`, `out_k`)."""

    def __init__(self, wires, out_offsets, out_wires, out_k):
        self.wires, self.out_offsets = wires, out_offsets
        self.out_wires, self.out_k = out_wires, out_k

    @property
    def r1(self) -> int:
        """Features per wire."""
        return int(self.wires.shape[1])


def _gate(circuit, signal: int):
    """(op, operands, k) of the gate driving `signal`, or None."""
    idx = int(circuit.node_of_signal(np.array([signal]))[0])
    data = circuit.graph.nodes[circuit.signal_nodes[idx]]
    if data.get(KIND) != GATE or data.get(OP) not in OPS:
        return None
    local = signal - data[FIRST]
    ops = np.asarray(data[OPERANDS][data[OFFSETS][local]:data[OFFSETS][local + 1]], np.int64)
    k = {"and": len(ops), "or": 1}.get(data[OP])
    if k is None:
        k = int(data[K][local]) if data[K] is not None else len(ops)
    return data[OP], ops, k


def two_levels(circuit) -> TwoLevels:
    """The two-level shape of `circuit` (module docstring); CodeError saying what differs."""
    m = circuit.n_inputs
    wire_of, wires, offs, out_w, out_k = {}, [], [0], [], []
    for j, driver in enumerate(circuit.output_drivers.tolist()):
        gate = _gate(circuit, driver) if driver >= m + 2 else None
        if gate is None or not (gate[1] >= m + 2).all() or len(np.unique(gate[1])) != len(gate[1]):
            raise CodeError("two coded levels need every output to be an AND / OR / atleast of "
                            f"distinct intermediate signals (output {circuit.output_names([j])[0]} "
                            "is not)")
        for w in gate[1].tolist():
            if w not in wire_of:
                inner = _gate(circuit, w)
                if inner is None or inner[0] != "and" or not (inner[1] < m).all() \
                        or len(np.unique(inner[1])) != len(inner[1]):
                    raise CodeError("two coded levels need every intermediate signal to be the "
                                    "AND of distinct input features")
                wire_of[w] = len(wires)
                wires.append(np.sort(inner[1]))
        ids = [wire_of[w] for w in gate[1].tolist()]
        out_w += ids
        offs.append(len(out_w))
        out_k.append(gate[2])
    if len({len(w) for w in wires}) != 1:
        raise CodeError("two coded levels need every intermediate AND to have the same arity")
    wires = np.array(wires, dtype=np.int64)
    if len({tuple(w) for w in wires.tolist()}) != len(wires):
        raise CodeError("two intermediate signals are the AND of the same features")
    return TwoLevels(wires, np.array(offs, np.int64), np.array(out_w, np.int64),
                     np.array(out_k, np.int64))


def level2_terms(levels: TwoLevels, K2: int):
    """{r: (outputs [T], wires [T, r])}: the k-subsets of each output's operand wires (terms
    with r > K2 can never be active and are dropped), and the weight W2 per output."""
    terms, weight = {}, np.zeros(len(levels.out_k), dtype=np.int64)
    for j in range(len(levels.out_k)):
        ops = levels.out_wires[levels.out_offsets[j]:levels.out_offsets[j + 1]]
        k = int(levels.out_k[j])
        if k < 1:
            raise CodeError("an output with a threshold below 1 (constant true)")
        if k > K2:
            continue
        combos = list(itertools.combinations(ops.tolist(), k))
        if len(combos) > 64:
            raise CodeError("an output with more than 64 terms")
        outs, feats = terms.setdefault(k, ([], []))
        outs += [j] * len(combos)
        feats += combos
        weight[j] += len(combos) * bound_weight(k, K2)
    return {r: (np.array(o, np.int64), np.array(f, np.int64).reshape(-1, r))
            for r, (o, f) in terms.items()}, weight


def choose_two_level(m: int, K: int, r1: int, W2: int) -> RSParams:
    """The (q, lambda, c) with the fewest level-1 neurons: c = r1 lambda W2 + 1 blocks,
    q^(lambda+1) >= m, c <= q + 1."""
    best = None
    for lam in range(0, 64):
        c = r1 * lam * W2 + 1
        q = field_order_at_least(max(2, c - 1, integer_root_ceil(m, lam + 1)))
        cand = RSParams(m, K, q, lam, c, None, (r1,), r1 * W2)
        if best is None or cand.n < best.n:
            best = cand
        if q == field_order_at_least(max(2, c - 1)) and lam >= 1:
            break
    field = GaloisField(best.q)
    return RSParams(best.m, best.K, best.q, best.lam, best.c, field.modulus, (r1,), best.weight)


def compile_two_levels(circuit, with_input: bool, with_output: bool) -> Network:
    """The network of a two-level circuit (module docstring)."""
    K = circuit.sparsity
    if K is None:
        raise CodeError("rs codes need a sparsity promise (`sparsity K;` in the circuit)")
    K = min(int(K), circuit.n_inputs)
    levels = two_levels(circuit)
    r1 = levels.r1
    if r1 > K:
        raise CodeError(f"sparsity {K}: no intermediate AND of {r1} features is ever true")
    K2 = math.comb(K, r1)
    terms, weight = level2_terms(levels, K2)
    if not terms:
        raise CodeError("no output can ever be true on the domain (compile without codes)")
    params = choose_two_level(circuit.n_inputs, K, r1, int(weight.max()))
    return build_two_levels(params, levels, terms, K2, with_input, with_output)


def build_two_levels(params: RSParams, levels: TwoLevels, terms: dict, K2: int,
                     with_input: bool = True, with_output: bool = True) -> Network:
    """The layers of the two-level network for `params` (see the module docstring)."""
    problems = params.problems() + field_of(params).problems()
    if problems:
        raise CodeError("rs code parameters are not exact: " + "; ".join(problems))
    m, q, c, K, r1 = params.m, params.q, params.c, params.K, levels.r1
    sym = symbols(params)
    one = Layout(c, q, K, (r1,))
    S1 = len(one.sets[r1])
    # level-2 symbols: each wire's symbol set per block, an index into level 1's code block
    sym2 = np.stack([one.sets[r1].rank(sym[levels.wires, s]) for s in range(c)], axis=1)
    e_rows, e_cols = code_matrix(sym, q)
    enc = sparse.csr_matrix((np.ones(len(e_rows)), (e_rows, e_cols)), shape=(c * q, m))
    hr, hc, hv, hb, rho1 = one.hidden()
    H1 = sparse.csr_matrix((hv, (hr, hc)), shape=(one.n, c * q))
    wr, wc, wv = one.code()
    W1 = sparse.csr_matrix((wv, (wr, wc)), shape=(one.d_out, one.n))
    H2, b2, W2, R, n_z2 = _level_two(c, S1, K2, sym2, terms, len(levels.out_k), S1)
    layers = []
    if with_input:
        layers.append(_layer(enc, np.zeros(c * q), False))
        first = _layer(H1, hb, True)
    else:
        first = _layer(H1 @ enc, hb, True)
    layers += [first, _layer(W1, np.zeros(one.d_out), False)]
    second = _layer(H2, b2, True)
    layers.append(second)
    r_bias = np.full(len(levels.out_k), -(c - 1.0))
    if with_output:
        layers += [_layer(W2, np.zeros(n_z2), False), _layer(R, r_bias, False)]
    else:
        layers.append(_layer(R @ W2, r_bias, False))
    for layer, rho in ((first, rho1), (second, None)):
        layer.role = np.full(layer.n_out, CHANNEL, np.int8)
        layer.signal = np.arange(layer.n_out, dtype=np.int64)
        if rho is not None:
            layer.part = np.asarray(rho, np.int64)
    net = Network("superposed", m, layers, np.arange(m, dtype=np.int64))
    lam, r2 = params.lam, max(terms)
    code_kind = f"rs (Kautz-Singleton over GF({q}), lambda={lam}, c={c}), 0/1 weights"
    net.meta["codes"] = {
        "kind": "rs-levels", "rs": params.as_dict(), "levels": 2,
        # two codewords of the input code share <= lambda blocks; two level-2 terms of r2
        # wires (r1 features each) share <= r2 r1 lambda: the normalised coherence bounds
        "input": {"dim": c * q, "features": m, "stream": "input", "layer": 0, "kind": code_kind,
                  "q": q, "blocks": c, "lambda": lam, "params": len(e_rows),
                  "coherence": min(1.0, lam / c), "coherence_is_bound": True}
        if with_input else None,
        "level1": {"dim": one.d_out, "features": f"all {r1}-subsets of the inputs",
                   "sparsity": K2, "agreement_max": r1 * lam, "neurons": one.n,
                   "layer": _index(layers, first) + 1},
        "level2": {"neurons": int(H2.shape[0]), "dim": int(n_z2),
                   "layer": _index(layers, second)},
        "output": {"dim": int(n_z2), "features": len(levels.out_k), "stream": "output",
                   "layer": len(layers) - 1, "kind": "level-2 term counts read by a 0/1 decoder",
                   "params": int(R.nnz), "blocks": c,
                   "coherence": min(1.0, r2 * r1 * lam / c), "coherence_is_bound": True}
        if with_output else None,
        "neuron_layers": [_index(layers, first), _index(layers, second)],
        "certificate": {"proved": False, "kind": "rs-levels", "margin": None,
                        "reason": "the structural certificate covers one coded level; two "
                                  "levels are checked by `sup verify --method exhaustive`"},
    }
    net.meta["codes"] = {k: v for k, v in net.meta["codes"].items() if v is not None}
    return net


def _level_two(c, S1, K2, sym2, terms, n_out, alphabet):
    """(H2, bias, W2, R, width of z2): level 2 over z1 (symbols 0 .. alphabet - 1 per block),
    pruned to the symbol sets the outputs read."""
    neuron_keys, code_keys, dec_rows, dec_cols = [], [], [], []
    used = {}                                               # (r, s, set) -> z2 coordinate
    for r, (outs, wires) in sorted(terms.items()):
        sets = SymbolSets(alphabet, r)
        for s in range(c):
            idx = sets.rank(sym2[wires, s])                 # [T]
            for j_out, j_set in zip(outs.tolist(), idx.tolist()):
                key = (r, s, j_set)
                if key not in used:
                    used[key] = len(used)
                dec_rows.append(j_out)
                dec_cols.append(used[key])
    neurons = {}                                            # (r, s, subset, t) -> row
    n_rows, n_cols, n_bias, c_rows, c_cols, c_vals = [], [], [], [], [], []
    sets_of = {}
    for (r, s, j_set), z in used.items():
        sets = sets_of.setdefault(r, SymbolSets(alphabet, r))
        members = sets.members[j_set][sets.members[j_set] >= 0]
        rho, a = thresholds(r, K2), rho_weights(r, K2)
        for size in range(1, len(members) + 1):
            for sub in itertools.combinations(members.tolist(), size):
                sub_idx = int(sets.rank(np.array([sub]))[0])
                sign = -1.0 if (len(members) - size) % 2 else 1.0
                for t in range(len(rho)):
                    key = (r, s, sub_idx, t)
                    if key not in neurons:
                        neurons[key] = len(neurons)
                        n_rows += [neurons[key]] * len(sub)
                        n_cols += [s * S1 + x for x in sub]
                        n_bias.append(-float(rho[t]))
                    c_rows.append(z)
                    c_cols.append(neurons[key])
                    c_vals.append(sign * a[t])
    n, width = len(neurons), len(used)
    H2 = sparse.csr_matrix((np.ones(len(n_rows)), (n_rows, n_cols)), shape=(n, c * S1))
    W2 = sparse.csr_matrix((c_vals, (c_rows, c_cols)), shape=(width, n))
    R = sparse.csr_matrix((np.ones(len(dec_rows)), (dec_rows, dec_cols)), shape=(n_out, width))
    R.data[:] = 1.0                                          # a coordinate read twice counts once
    return H2, np.array(n_bias), W2, R, width


def _index(layers, layer) -> int:
    """Position of `layer` in `layers` by identity (Layer equality compares arrays)."""
    return next(i for i, item in enumerate(layers) if item is layer)


def _layer(matrix, bias, relu: bool) -> Layer:
    coo = sparse.coo_matrix(matrix)
    coo.sum_duplicates()
    keep = coo.data != 0
    return Layer(coo.shape[1], coo.shape[0], coo.row[keep].astype(np.int64),
                 coo.col[keep].astype(np.int64), coo.data[keep].astype(np.float64),
                 np.asarray(bias, dtype=np.float64), relu)
