"""Synthesis of conditional trees (`compiler.conditional.tree.Forest`) from unconditional ReLU networks.

Koyuncu-style unconditional -> conditional pass: each tree node carries the affine form of the
current layer's pre-activations, folds neurons whose sign is fixed on the inputs reaching it
and branches on one undecided neuron otherwise. `synthesize_network` reproduces a network on a
given input set; `synthesize_circuit` does so for a circuit's dense network on its whole
domain, one tree per group of independent outputs (`SynthesisTooLarge` when a cone is over the
limits).

Proof: docs/proofs/conditional.md
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from dsl import csr
from dsl.domain import SparseDomain

from ..dense import compile_dense
from ..network import Network, sum_duplicates
from .tree import NEURON, Forest, leaf_code

DEFAULT_MAX_INPUTS = 1 << 20      # largest cone domain synthesised per group
DEFAULT_MAX_WORK = 1 << 27        # largest (domain size x widest layer) per group
_TOL = 1e-12                      # relative spread below which values count as equal
_CHECK_TOL = 1e-9                 # relative error a leaf may show against the network
_CHUNK = 1 << 22                  # elements per block in bulk evaluations


class SynthesisTooLarge(ValueError):
    """A group of outputs whose cone domain is too large to synthesise a tree over."""

    def __init__(self, output: str, size: int, limit: int, what: str = "inputs in its cone domain"):
        self.output, self.size, self.limit = output, size, limit
        self.domain_limit = what == "inputs in its cone domain"   # --max-domain can raise it
        super().__init__(f"output {output}: {size:,} {what}, more than the limit {limit:,} "
                         "for conditional synthesis")


# ====================================================================== public API

def synthesize_network(net: Network, inputs: np.ndarray, outputs=None, output_ids=None,
                       n_outputs: Optional[int] = None) -> Forest:
    """A forest equal to `net`'s read-out on every input of S = `inputs`.

    inputs: int64 [|S|, w] active-feature lists (-1 padded). outputs: read-out rows to
    synthesise (default all). output_ids: the Forest's output id of each of them (default the
    rows themselves); n_outputs: the Forest's number of outputs (default the network's).
    """
    rows = np.arange(net.n_outputs, dtype=np.int64) if outputs is None else np.asarray(outputs, np.int64)
    ids = rows if output_ids is None else np.asarray(output_ids, np.int64)
    n_out = net.n_outputs if n_outputs is None else int(n_outputs)
    fnet = _FeatureNet.build(net, rows)
    domain = _SetDomain(np.asarray(inputs, np.int64).reshape(len(inputs), -1), net.n_inputs)
    names = lambda r: (net.output_names()[int(rows[r])] if net.output_families  # noqa: E731
                       else f"#{int(rows[r])}")
    return _synthesize(fnet, domain, ids, n_out, names)


def synthesize_circuit(circuit, positions, max_inputs: int = DEFAULT_MAX_INPUTS,
                       max_work: int = DEFAULT_MAX_WORK) -> Forest:
    """The conditional trees of the outputs at `positions` (declaration order), synthesised
    from their dense compilation, exact on the whole sparse domain. Output ids are the global
    positions; outputs not listed have output_tree -1. Raises SynthesisTooLarge for a group
    whose cone domain has more than `max_inputs` inputs (or whose domain size times widest
    layer exceeds `max_work`)."""
    positions = np.asarray(positions, dtype=np.int64).reshape(-1)
    m, n_out = circuit.n_inputs, circuit.n_outputs
    if len(positions) == 0:
        return Forest.concat(m, n_out, [])
    net = compile_dense(circuit, outputs=positions)
    fnet = _FeatureNet.build(net, np.arange(len(positions), dtype=np.int64))
    domain = _ConeDomain(circuit.sparsity, max_inputs, max_work)
    names = lambda r: circuit.output_names([int(positions[r])])[0]  # noqa: E731
    return _synthesize(fnet, domain, positions, n_out, names)


# ====================================================================== the network over features

@dataclass
class _FeatureNet:
    """The selected part of a network with hidden layer 0 (or a layer-less read-out) reading
    input features instead of input columns. Layers are COO (rows, cols, vals) + bias."""
    m: int
    hidden: list            # [(rows, cols, vals, bias)]
    readout: tuple          # (rows, cols, vals, bias) over the selected outputs 0..n-1
    offsets: np.ndarray     # int64 [D + 1]: global index of each hidden layer's first neuron

    @staticmethod
    def build(net: Network, rows: np.ndarray) -> "_FeatureNet":
        m = net.n_inputs
        to_feature = np.full(net.input_width, -1, np.int64)
        if len(np.unique(net.input_map)) != len(net.input_map):
            raise ValueError("synthesis needs distinct input columns for distinct features")
        to_feature[net.input_map] = np.arange(m, dtype=np.int64)
        layers = [_coo(layer) for layer in net.layers]
        first = layers[0]
        keep = to_feature[first[1]] >= 0
        layers[0] = (*_summed(first[0][keep], to_feature[first[1][keep]], first[2][keep]), first[3])
        r_rows, r_cols, r_vals, r_bias = layers[-1]
        pos = np.full(net.n_outputs, -1, np.int64)
        pos[rows] = np.arange(len(rows))
        sel = pos[r_rows] >= 0
        readout = (pos[r_rows[sel]], r_cols[sel], r_vals[sel], r_bias[rows])
        widths = [layer.n_out for layer in net.hidden]
        return _FeatureNet(m, layers[:-1], readout, csr.offsets_from_lengths(np.array(widths, np.int64)))

    @property
    def depth(self) -> int:
        return len(self.hidden)

    @property
    def n_selected(self) -> int:
        return len(self.readout[3])


def _coo(layer):
    nz = layer.vals != 0
    return (layer.rows[nz].astype(np.int64), layer.cols[nz].astype(np.int64),
            layer.vals[nz].astype(np.float64), layer.bias.astype(np.float64))


def _summed(rows, cols, vals):
    """COO with repeated (row, col) entries summed (a no-op check on sorted unique entries)."""
    keys = rows * np.int64(cols.max(initial=0) + 1) + cols
    if np.all(keys[1:] > keys[:-1]):
        return rows, cols, vals
    return sum_duplicates(rows, cols, vals)


def _groups(fnet: _FeatureNet):
    """(group of each selected output, group of each global neuron), -1 = none.

    Only cone neurons (with a path to a selected output) take part; outputs with no hidden
    neuron get group -1."""
    D, n_sel = fnet.depth, fnet.n_selected
    N = int(fnet.offsets[-1])
    if D == 0:
        return np.full(n_sel, -1, np.int64), np.full(0, -1, np.int64)
    needed = np.zeros(N, bool)
    r_rows, r_cols = fnet.readout[0], fnet.readout[1]
    needed[fnet.offsets[D - 1] + r_cols] = True
    src, dst = [N + r_rows], [fnet.offsets[D - 1] + r_cols]
    for layer in range(D - 1, 0, -1):
        rows, cols = fnet.hidden[layer][0], fnet.hidden[layer][1]
        use = needed[fnet.offsets[layer] + rows]
        needed[fnet.offsets[layer - 1] + cols[use]] = True
        src.append(fnet.offsets[layer] + rows[use])
        dst.append(fnet.offsets[layer - 1] + cols[use])
    src, dst = np.concatenate(src), np.concatenate(dst)
    graph = sp.coo_matrix((np.ones(len(src)), (src, dst)), shape=(N + n_sel, N + n_sel))
    _, label = connected_components(graph, directed=False)
    has_neuron = np.zeros(n_sel, bool)
    has_neuron[r_rows] = True
    out_label = np.where(has_neuron, label[N:], -1)
    uniq, out_group = np.unique(out_label[has_neuron], return_inverse=True)
    out_group_full = np.full(n_sel, -1, np.int64)
    out_group_full[has_neuron] = out_group
    lookup = np.full(N + n_sel, -1, np.int64)
    lookup[uniq] = np.arange(len(uniq))
    neuron_group = np.where(needed, lookup[label[:N]], -1)
    return out_group_full, neuron_group


# ====================================================================== domains

class _ConeDomain:
    """Circuit mode: every input with at most k active features among a group's cone."""

    def __init__(self, k, max_inputs, max_work):
        self.k, self.max_inputs, self.max_work = k, max_inputs, max_work
        self._cache = {}

    def patterns(self, d: int, name_of=None) -> np.ndarray:
        """float64 [p, d]: every 0/1 row with at most k ones (cached by d)."""
        if d not in self._cache:
            dom = SparseDomain(d, self.k)
            if dom.size > self.max_inputs:
                raise SynthesisTooLarge(name_of() if name_of else "?", dom.size, self.max_inputs)
            if dom.size * max(d, 1) > self.max_work:     # bound the enumeration's memory too
                raise SynthesisTooLarge(name_of() if name_of else "?", dom.size * max(d, 1),
                                        self.max_work, "(cone inputs x cone features) elements")
            active = dom.unrank(np.arange(dom.size, dtype=np.int64))
            x = np.zeros((dom.size, d + 1))
            r, s = np.nonzero(active >= 0)
            x[r, active[r, s]] = 1.0
            self._cache[d] = x[:, :d]
        return self._cache[d]

    def too_large(self, d: int, width: int) -> bool:
        size = SparseDomain(d, self.k).size
        return size > self.max_inputs or size * max(width, 1) > self.max_work

    def group_inputs(self, feats: np.ndarray, width: int, name_of) -> np.ndarray:
        x = self.patterns(len(feats), name_of)
        if len(x) * max(width, 1) > self.max_work:
            raise SynthesisTooLarge(name_of(), len(x) * max(width, 1), self.max_work,
                                    "(cone inputs x layer width) elements")
        return x

    def neuron_stats(self, a_off, a_cols, a_vals, bias, name_of):
        """(zmin, zmax, pmin, pmax) of z = a.x + b per row over its own cone domain (pmin/pmax
        over the inputs with z > 0; +inf/-inf when there are none)."""
        G = len(bias)
        out = np.zeros((4, G))
        fan = np.diff(a_off)
        for f in np.unique(fan):
            rows = np.flatnonzero(fan == f)
            x = self.patterns(int(f), lambda: name_of(int(rows[0])))
            _, vals = csr.gather_rows(a_off, a_vals, rows)
            a = vals.reshape(len(rows), int(f))
            step = max(1, _CHUNK // max(len(x), 1))
            for lo in range(0, len(rows), step):
                sl = slice(lo, lo + step)
                z = a[sl] @ x.T + bias[rows[sl], None]
                out[:, rows[sl]] = _z_stats(z, axis=1)
        return out


class _SetDomain:
    """Network mode: the given set S (projected on each group's features, duplicates removed)."""

    def __init__(self, active: np.ndarray, m: int):
        n = len(active)
        r, s = np.nonzero(active >= 0)
        self.x = sp.csr_matrix((np.ones(len(r)), (r, active[r, s])), shape=(n, m))
        self.x.sum_duplicates()
        self.x.data[:] = 1.0

    @staticmethod
    def too_large(d: int, width: int) -> bool:
        return False

    def group_inputs(self, feats: np.ndarray, width: int, name_of) -> np.ndarray:
        sub = self.x[:, feats].toarray()
        return np.unique(sub, axis=0) if len(sub) else sub

    def neuron_stats(self, a_off, a_cols, a_vals, bias, name_of):
        G = len(bias)
        a = sp.csc_matrix((a_vals, a_cols, a_off), shape=(self.x.shape[1], G))
        out = np.zeros((4, G))
        step = max(1, _CHUNK // max(self.x.shape[0], 1))
        for lo in range(0, G, step):
            sl = slice(lo, min(lo + step, G))
            z = (self.x @ a[:, sl]).toarray() + bias[None, sl]
            out[:, sl] = _z_stats(z, axis=0)
        return out


def _z_stats(z: np.ndarray, axis: int) -> np.ndarray:
    if z.shape[axis] == 0:                        # no input at all: any value is exact
        z = np.zeros((1, z.shape[1]) if axis == 0 else (z.shape[0], 1))
    pos = z > 0
    return np.stack([z.min(axis=axis), z.max(axis=axis),
                     np.where(pos, z, np.inf).min(axis=axis),
                     np.where(pos, z, -np.inf).max(axis=axis)])


# ====================================================================== driver

def _synthesize(fnet: _FeatureNet, domain, ids: np.ndarray, n_out: int, name_of) -> Forest:
    out_group, neuron_group = _groups(fnet)
    parts = []
    free = np.flatnonzero(out_group < 0)
    if len(free):
        parts.append(_free_outputs(fnet, free, domain, ids, n_out))
    n_groups = int(out_group.max(initial=-1)) + 1
    if n_groups:
        sizes = np.bincount(neuron_group[neuron_group >= 0], minlength=n_groups)
        single = sizes == 1
        if single.any() and fnet.depth == 1:
            parts.append(_single_neuron_groups(fnet, np.flatnonzero(single), out_group,
                                               neuron_group, domain, ids, n_out, name_of))
        else:
            single[:] = False
        general = np.flatnonzero(~single)
        if len(general):
            parts.append(_general_groups(fnet, general, out_group, neuron_group, domain, ids,
                                         n_out, name_of))
    return Forest.concat(fnet.m, n_out, parts)


# ---------------------------------------------------------------------- outputs with no neuron

def _free_outputs(fnet, free, domain, ids, n_out) -> Forest:
    """One leaf-only tree for the outputs that read no hidden neuron: their read-out is a
    constant, or (a network without hidden layers) an affine form of the input features."""
    r_rows, r_cols, r_vals, r_bias = fnet.readout
    order = np.argsort(r_rows, kind="stable")
    off = csr.offsets_from_lengths(np.bincount(r_rows, minlength=fnet.n_selected))
    t_off, t_cols, t_vals = _take_rows(off, r_cols[order], r_vals[order], free)
    const = r_bias[free].astype(np.float64)
    if len(t_cols) and isinstance(domain, _SetDomain) and domain.x.shape[0]:
        forms = sp.csr_matrix((t_vals, t_cols, t_off), shape=(len(free), fnet.m))
        y = (domain.x @ forms.T).toarray() + const
        fixed = np.ptp(y, axis=0) <= _TOL * (1 + np.abs(y).max(axis=0))
        t_off, t_cols, t_vals = _take_rows(t_off, t_cols, t_vals, np.arange(len(free)),
                                           keep_terms=~fixed)
        const = np.where(fixed, y[0], const)
    listed = np.flatnonzero((np.diff(t_off) > 0) | (const != 0))
    t_off, t_cols, t_vals = _take_rows(t_off, t_cols, t_vals, listed)
    return _leaf_only_tree(fnet.m, n_out, ids[free], ids[free[listed]], const[listed],
                           t_off, t_cols, t_vals)


def _take_rows(off, cols, vals, rows, keep_terms=None):
    """CSR rows `rows` of (cols, vals); rows where keep_terms is False come back empty."""
    rows = np.asarray(rows, np.int64)
    if keep_terms is not None:
        lens = np.where(keep_terms, off[rows + 1] - off[rows], 0)
    else:
        lens = off[rows + 1] - off[rows]
    new_off = csr.offsets_from_lengths(lens)
    idx = np.repeat(off[rows] - new_off[:-1], lens) + np.arange(new_off[-1])
    return new_off, cols[idx], vals[idx]


def _leaf_only_tree(m, n_out, owned, entry_ids, const, t_off, t_cols, t_vals) -> Forest:
    """A forest of one tree that is one leaf listing the given entries."""
    f = Forest(m, n_out)
    f.tree_root = leaf_code([0])
    f.output_tree = np.full(n_out, -1, np.int64)
    f.output_tree[owned] = 0
    f.leaf_tree = np.zeros(1, np.int64)
    f.leaf_offsets = np.array([0, len(entry_ids)], np.int64)
    f.leaf_row = np.full(1, -1, np.int64)
    f.entry_output = np.asarray(entry_ids, np.int64)
    f.entry_const = np.asarray(const, np.float64)
    f.entry_offsets, f.term_cols, f.term_vals = t_off, t_cols, t_vals.astype(np.float64)
    return f


# ---------------------------------------------------------------------- one-neuron groups, in bulk

def _single_neuron_groups(fnet, gs, out_group, neuron_group, domain, ids, n_out, name_of) -> Forest:
    """One tree per group made of one first-layer neuron (one-hidden-layer networks): a leaf
    when the neuron's sign never changes on the domain, else a gate on the neuron with a
    constant left leaf (z <= 0) and an affine or constant right leaf. No loop over groups."""
    G = len(gs)
    gpos = np.full(int(out_group.max()) + 2, -1, np.int64)   # index -1 (no group) -> -1
    gpos[gs] = np.arange(G)
    cone = np.flatnonzero(neuron_group >= 0)
    cone = cone[gpos[neuron_group[cone]] >= 0]
    neuron = np.empty(G, np.int64)
    neuron[gpos[neuron_group[cone]]] = cone
    rows, cols, vals, bias = fnet.hidden[0]
    order = np.argsort(rows, kind="stable")
    off = csr.offsets_from_lengths(np.bincount(rows, minlength=len(bias)))
    a_off, a_cols, a_vals = _take_rows(off, cols[order], vals[order], neuron)
    b = bias[neuron]

    outs = np.flatnonzero(gpos[out_group] >= 0)
    og = gpos[out_group[outs]]
    order = np.argsort(og, kind="stable")
    outs, og = outs[order], og[order]
    first_out = outs[np.searchsorted(og, np.arange(G))]
    zmin, zmax, pmin, pmax = domain.neuron_stats(a_off, a_cols, a_vals, b,
                                                 lambda i: name_of(int(first_out[i])))
    r_rows, _, r_vals, r_bias = fnet.readout
    w = np.bincount(r_rows, weights=r_vals, minlength=fnet.n_selected)[outs]
    c = r_bias[outs]

    dead, linear = zmax <= 0, zmin >= 0
    split = ~dead & ~linear
    n_split = int(split.sum())
    srank = np.cumsum(split) - 1
    # main leaf of every group (the left leaf of a split group), then right leaves of splits
    lo, hi = np.where(linear, zmin, 0.0)[og], np.where(linear, zmax, 0.0)[og]
    main_aff = ~_equal_values(w, c, lo, hi)
    main_const = np.where(linear[og] & ~main_aff, c + w * zmin[og], c)
    right = split[og]
    r_aff = ~_equal_values(w[right], c[right], pmin[og[right]], pmax[og[right]])
    r_const = c[right] + w[right] * pmin[og[right]]
    e_leaf = np.concatenate([og, G + srank[og[right]]])
    e_group = np.concatenate([og, og[right]])
    e_out = np.concatenate([outs, outs[right]])
    e_w = np.concatenate([w, w[right]])
    e_aff = np.concatenate([main_aff, r_aff])
    e_const = np.where(e_aff, np.concatenate([c, c[right]]) + e_w * b[e_group],
                       np.concatenate([main_const, r_const]))
    keep = e_aff | (e_const != 0)
    e_leaf, e_group, e_out, e_w, e_aff, e_const = (v[keep] for v in (
        e_leaf, e_group, e_out, e_w, e_aff, e_const))
    t_off, t_cols, t_vals = _take_rows(a_off, a_cols, a_vals, e_group, keep_terms=e_aff)
    t_vals = t_vals * np.repeat(e_w, np.diff(t_off))

    f = Forest(fnet.m, n_out)
    split_groups = np.flatnonzero(split)
    f.tree_root = np.where(split, srank, leaf_code(np.arange(G)))
    f.output_tree = np.full(n_out, -1, np.int64)
    f.output_tree[ids[outs]] = og
    f.gate_tree = split_groups
    f.gate_offsets, f.gate_cols, f.gate_vals = _take_rows(a_off, a_cols, a_vals, split_groups)
    f.gate_bias = b[split_groups]
    f.gate_child = np.stack([leaf_code(split_groups), leaf_code(G + np.arange(n_split))], axis=1)
    f.gate_kind = np.full(n_split, NEURON, np.int8)
    f.gate_source = fnet.offsets[0] + neuron[split_groups]
    f.leaf_tree = np.concatenate([np.arange(G), split_groups])
    f.leaf_offsets = csr.offsets_from_lengths(np.bincount(e_leaf, minlength=G + n_split))
    f.leaf_row = np.full(G + n_split, -1, np.int64)
    f.entry_output = ids[e_out]
    f.entry_const = e_const
    f.entry_offsets, f.term_cols, f.term_vals = t_off, t_cols, t_vals
    return f


def _equal_values(w, c, zlo, zhi) -> np.ndarray:
    """c + w z takes one value for z in [zlo, zhi] (up to the relative tolerance)."""
    spread = np.abs(w) * (zhi - zlo)
    return spread <= _TOL * (1 + np.abs(c) + np.abs(w) * np.maximum(np.abs(zlo), np.abs(zhi)))


# ---------------------------------------------------------------------- general groups

@dataclass
class _SubNet:
    """One group's network, dense and local: features `feats` (global ids), hidden layers
    (W [n_l, n_{l-1}], b), read-out (W, b) for outputs `outs` (selected rows), `neurons`
    (global index of each local neuron, per layer) and `cone` (bool [n_outs, n_l]: output o
    depends on neuron j of layer l)."""
    feats: np.ndarray
    weights: list
    biases: list
    outs: np.ndarray
    neurons: list
    cone: list

    def forward(self, x: np.ndarray) -> np.ndarray:
        h = x
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w.T + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0)
        return h

    @property
    def width(self) -> int:
        return max((len(b) for b in self.biases), default=1)

    def restrict(self, o: int) -> "_SubNet":
        """The sub-network of output `o` alone: its cone neurons and features."""
        keep = [c[o] for c in self.cone]
        w0 = self.weights[0][keep[0]]
        used = (w0 != 0).any(axis=0)
        weights = [w0[:, used]]
        for layer in range(1, len(keep)):
            weights.append(self.weights[layer][keep[layer]][:, keep[layer - 1]])
        weights.append(self.weights[-1][[o]][:, keep[-1]])
        biases = [b[k] for b, k in zip(self.biases, keep)] + [self.biases[-1][[o]]]
        return _SubNet(self.feats[used], weights, biases, self.outs[[o]],
                       [n[k] for n, k in zip(self.neurons, keep)],
                       [c[[o]][:, k] for c, k in zip(self.cone, keep)])


class _GroupIndex:
    """Sorted views of a network's cone neurons and entries by group, to cut out one group's
    sub-network in time proportional to its size."""

    def __init__(self, fnet: _FeatureNet, out_group, neuron_group):
        self.fnet = fnet
        D, offs = fnet.depth, fnet.offsets
        self.loc = np.zeros(int(offs[-1]), np.int64)
        self.layer_neurons, self.layer_entries = [], []
        for layer in range(D):
            grp = neuron_group[offs[layer]:offs[layer + 1]]
            order = np.argsort(grp, kind="stable")
            srt_grp = grp[order]
            self.loc[offs[layer] + order] = np.arange(len(order)) - np.searchsorted(srt_grp, srt_grp)
            self.layer_neurons.append((order, srt_grp))
            rows = fnet.hidden[layer][0]
            self.layer_entries.append(self._by_group(grp[rows]))
        order = np.argsort(out_group, kind="stable")
        self.outputs = (order, out_group[order])
        self.out_loc = np.zeros(len(out_group), np.int64)
        self.out_loc[order] = np.arange(len(order)) - np.searchsorted(out_group[order], out_group[order])
        self.readout_entries = self._by_group(out_group[fnet.readout[0]])

    @staticmethod
    def _by_group(groups):
        order = np.argsort(groups, kind="stable")
        return order, groups[order]

    @staticmethod
    def _slice(view, g):
        order, srt = view
        return order[np.searchsorted(srt, g):np.searchsorted(srt, g, side="right")]

    def subnet(self, g: int) -> _SubNet:
        fnet, offs = self.fnet, self.fnet.offsets
        weights, biases, neurons = [], [], []
        feats = np.zeros(0, np.int64)
        for layer in range(fnet.depth):
            rows, cols, vals, bias = fnet.hidden[layer]
            nl = self._slice(self.layer_neurons[layer], g)
            e = self._slice(self.layer_entries[layer], g)
            r = self.loc[offs[layer] + rows[e]]
            if layer == 0:
                feats, c = np.unique(cols[e], return_inverse=True)
                n_in = len(feats)
            else:
                c, n_in = self.loc[offs[layer - 1] + cols[e]], len(neurons[-1])
            w = np.zeros((len(nl), n_in))
            np.add.at(w, (r, c), vals[e])
            weights.append(w)
            biases.append(bias[nl])
            neurons.append(offs[layer] + nl)
        rows, cols, vals, bias = fnet.readout
        outs = self._slice(self.outputs, g)
        e = self._slice(self.readout_entries, g)
        w = np.zeros((len(outs), len(neurons[-1])))
        np.add.at(w, (self.out_loc[rows[e]], self.loc[offs[-2] + cols[e]]), vals[e])
        weights.append(w)
        biases.append(bias[outs])
        cone = [weights[-1] != 0]
        for w in weights[-2:0:-1]:
            cone.append((cone[-1].astype(np.int64) @ (w != 0).astype(np.int64)) > 0)
        return _SubNet(feats, weights, biases, outs, neurons, cone[::-1])


def _general_groups(fnet, groups, out_group, neuron_group, domain, ids, n_out, name_of) -> Forest:
    """One tree per group by the recursive synthesis (see docs/proofs/conditional.md)."""
    index = _GroupIndex(fnet, out_group, neuron_group)
    builder = _ForestBuilder(fnet.m, n_out)
    for g in groups:
        sub = index.subnet(int(g))
        parts = [sub]
        if domain.too_large(len(sub.feats), sub.width) and len(sub.outs) > 1:
            parts = [sub.restrict(o) for o in range(len(sub.outs))]
        for part in parts:
            x = domain.group_inputs(part.feats, part.width, lambda: name_of(int(part.outs[0])))
            builder.add_tree(part, x, ids[part.outs])
    return builder.forest()


@dataclass
class _Node:
    """A pending tree node: the inputs reaching it (rows of x), the hidden layer whose
    pre-activations (a, c) are being decided (depth = the read-out), their values z on those
    inputs, and where its code goes (parent gate and side, or -1: the tree's root)."""
    idx: np.ndarray
    layer: int
    a: np.ndarray
    c: np.ndarray
    z: Optional[np.ndarray]
    parent: int
    side: int


class _ForestBuilder:
    """Accumulates synthesised trees (gates and leaves in Python lists) into one Forest."""

    def __init__(self, m: int, n_out: int):
        self.m, self.n_out = m, n_out
        self.roots, self.owned = [], []
        self.g_tree, self.g_cols, self.g_vals, self.g_bias, self.g_src = [], [], [], [], []
        self.g_child = []
        self.l_tree, self.l_size = [], []
        self.e_out, self.e_const, self.e_cols, self.e_vals = [], [], [], []

    # ------------------------------------------------------------------ one tree
    def add_tree(self, sub: _SubNet, x: np.ndarray, out_ids: np.ndarray) -> None:
        tree = len(self.roots)
        self.roots.append(0)
        self.owned.append((out_ids, tree))
        y = sub.forward(x)
        stack = [self._start(sub, x)]
        while stack:
            node = stack.pop()
            stack.extend(self._expand(tree, sub, x, y, out_ids, node))

    @staticmethod
    def _start(sub, x):
        a, c = sub.weights[0], sub.biases[0]
        z = x @ a.T + c if len(sub.weights) > 1 else None
        return _Node(np.arange(len(x)), 0, a, c, z, -1, 0)

    def _expand(self, tree, sub, x, y, out_ids, node) -> list:
        """Decide, compose, then emit a gate (returns its two children) or a leaf ([])."""
        depth = len(sub.weights) - 1
        ys = y[node.idx]
        live = np.ptp(ys, axis=0) > _TOL * (1 + np.abs(ys).max(axis=0)) if len(ys) else \
            np.zeros(ys.shape[1], bool)
        while live.any() and node.layer < depth:
            rel = sub.cone[node.layer][live].any(axis=0)
            z = node.z
            pos, neg = (z > 0).any(axis=0), (z < 0).any(axis=0)
            undecided = rel & pos & neg
            if undecided.any():
                return self._gate(tree, sub, x, node, undecided)
            on = rel & pos                    # z >= 0 everywhere here: relu(z) = z
            w, b = sub.weights[node.layer + 1], sub.biases[node.layer + 1]
            node.a = w[:, on] @ node.a[on]
            node.c = w[:, on] @ node.c[on] + b
            node.layer += 1
            node.z = x[node.idx] @ node.a.T + node.c if node.layer < depth else None
        self._leaf(tree, sub, x, ys, live, out_ids, node)
        return []

    def _code(self, node, code) -> None:
        if node.parent < 0:
            self.roots[-1] = code
        else:
            self.g_child[node.parent][node.side] = code

    def _gate(self, tree, sub, x, node, undecided) -> list:
        z = node.z
        n = len(node.idx)
        cand = np.flatnonzero(undecided)
        balance = np.abs(2 * (z[:, cand] > 0).sum(axis=0) - n)
        terms = (node.a[cand] != 0).sum(axis=1)
        j = int(cand[np.lexsort((terms, balance))[0]])
        cols, vals, bias = _fold(node.a[j], node.c[j], x[node.idx], sub.feats)
        gate = len(self.g_bias)
        self._code(node, gate)
        self.g_tree.append(tree)
        self.g_cols.append(cols)
        self.g_vals.append(vals)
        self.g_bias.append(bias)
        self.g_src.append(int(sub.neurons[node.layer][j]))
        self.g_child.append([0, 0])
        right = z[:, j] > 0
        return [_Node(node.idx[side], node.layer, node.a, node.c, z[side], gate, k)
                for k, side in ((0, ~right), (1, right))]

    def _leaf(self, tree, sub, x, ys, live, out_ids, node) -> None:
        leaf = len(self.l_tree)
        self._code(node, int(leaf_code(leaf)))
        xs = x[node.idx]
        count = 0
        for o in range(len(out_ids)):
            if live[o]:
                cols, vals, const = _fold(node.a[o], node.c[o], xs, sub.feats)
                pred = xs[:, np.searchsorted(sub.feats, cols)] @ vals + const
                err = np.abs(pred - ys[:, o]).max()
                if err > _CHECK_TOL * (1 + np.abs(ys[:, o]).max()):
                    raise AssertionError(f"synthesis: leaf differs from the network by {err}")
            else:
                cols, vals, const = np.zeros(0, np.int64), np.zeros(0), float(ys[0, o]) if len(ys) else 0.0
                if const == 0:
                    continue
            self.e_out.append(int(out_ids[o]))
            self.e_const.append(const)
            self.e_cols.append(cols)
            self.e_vals.append(vals)
            count += 1
        self.l_tree.append(tree)
        self.l_size.append(count)

    # ------------------------------------------------------------------ assembly
    def forest(self) -> Forest:
        f = Forest(self.m, self.n_out)
        f.tree_root = np.asarray(self.roots, np.int64)
        f.output_tree = np.full(self.n_out, -1, np.int64)
        for ids, tree in self.owned:
            f.output_tree[ids] = tree
        f.gate_tree = np.asarray(self.g_tree, np.int64)
        f.gate_offsets, f.gate_cols, f.gate_vals = _ragged(self.g_cols, self.g_vals)
        f.gate_bias = np.asarray(self.g_bias, np.float64)
        f.gate_child = np.asarray(self.g_child, np.int64).reshape(-1, 2)
        f.gate_kind = np.full(len(self.g_tree), NEURON, np.int8)
        f.gate_source = np.asarray(self.g_src, np.int64)
        f.leaf_tree = np.asarray(self.l_tree, np.int64)
        f.leaf_offsets = csr.offsets_from_lengths(np.asarray(self.l_size, np.int64))
        f.leaf_row = np.full(len(self.l_tree), -1, np.int64)
        f.entry_output = np.asarray(self.e_out, np.int64)
        f.entry_const = np.asarray(self.e_const, np.float64)
        f.entry_offsets, f.term_cols, f.term_vals = _ragged(self.e_cols, self.e_vals)
        return f


def _fold(a: np.ndarray, c: float, xs: np.ndarray, feats: np.ndarray):
    """(global feature columns, weights, constant) of the affine form a.x + c, with the
    features that are constant on the rows xs folded into the constant."""
    if len(xs):
        fixed = xs.min(axis=0) == xs.max(axis=0)
        const = float(c + a[fixed] @ xs[0, fixed])
    else:
        fixed, const = np.zeros(len(a), bool), float(c)
    keep = ~fixed & (a != 0)
    return feats[keep], a[keep].astype(np.float64), const


def _ragged(cols: list, vals: list):
    lens = np.array([len(c) for c in cols], np.int64)
    if not len(cols):
        return np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return (csr.offsets_from_lengths(lens), np.concatenate(cols).astype(np.int64),
            np.concatenate(vals).astype(np.float64))
