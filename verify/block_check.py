"""Blocked exhaustive check: every input of a sparse domain, covered block by block.

For one-hidden-layer networks with integer weights (the superposed target's shape) this path
covers the whole domain block by block in colex order, each input either evaluated exactly or
inside a block whose bound proves it correct. `integer_network` decides whether the path
applies; `BlockCheck` checks ranges of blocks (`domain_blocks`) and records `BlockStats`.

Proof: docs/proofs/block-check.md
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from backends import SupModule
from compiler.superposed import superposable
from dsl import csr
from dsl.domain import SparseDomain
from dsl.semantics import DONT_CARE, evaluate_active

from .compare import MARGIN_FLOOR, contains_sorted, decision_threshold, is_wrong, lookup_sorted, margins

MAX_DENSE = 1 << 27          # largest dense table (elements) this path builds
MAX_LINEAR_ENTRIES = 1 << 25  # largest g = R W it precomputes for linear blocks
MANTISSA = {"float32": 24, "float64": 53, "float16": 11, "bfloat16": 8}


@dataclass
class BlockStats:
    """Counters of one block check: blocks, and how many (block, output) pairs each bound settled."""
    blocks: int = 0
    candidates: int = 0          # (block, output) pairs the feature bound could not settle
    by_interval: int = 0
    by_linear: int = 0
    exhaustive_pairs: int = 0    # pairs evaluated on every input of the block
    evaluations: int = 0         # (input, output) values computed exactly

    def as_dict(self) -> dict:
        """The counters as a dict (for the report)."""
        return dict(self.__dict__)


@dataclass
class IntegerNetwork:
    """One-hidden-layer integer network in the arrays the block check needs."""
    m: int
    n_hidden: int
    n_out: int
    wt: np.ndarray               # int64 [m, N]: weight of feature f into neuron j
    bias: np.ndarray             # int64 [N]
    r_off: np.ndarray            # read-out rows (CSR by output): neurons, weights
    r_nei: np.ndarray
    r_val: np.ndarray
    rt_off: np.ndarray           # read-out columns (CSR by neuron): outputs, weights
    rt_out: np.ndarray
    rt_val: np.ndarray
    r_bias: np.ndarray           # int64 [n_out]
    h0: np.ndarray               # hidden values on the all-zero input
    y0: np.ndarray               # read-out values on the all-zero input
    pmax: np.ndarray             # int64 [m + 1, N]: max of W[j, c] over c < h (row h)
    pmin: np.ndarray
    bound: "FeatureBound"        # the feature bound (docs/proofs/block-check.md)
    w_key: np.ndarray            # sorted j * m + c of the nonzero first-layer weights
    linear: "LinearTable | None" = None

    def readout_entries(self, outs: np.ndarray):
        """(position in outs, neuron, weight) of every read-out entry of the given outputs."""
        deg = self.r_off[outs + 1] - self.r_off[outs]
        e = csr.concat_ranges(self.r_off[outs], deg)
        return np.repeat(np.arange(len(outs)), deg), self.r_nei[e], self.r_val[e]


@dataclass
class LinearTable:
    """g_o[c] = sum_j R_oj W_jc outside o's operands, for outputs that are threshold gates over
    input features: prefix extrema per output (key, pmax, pmin, row_start) when the table fits
    in MAX_LINEAR_ENTRIES, else the rows are computed for the pairs that ask."""
    has: np.ndarray              # bool [n_out]: output is a threshold gate over features
    sup_off: np.ndarray          # operands (CSR by output; empty where not `has`)
    sup_feat: np.ndarray
    r: object                    # scipy CSR read-out [n_out, N]
    key: np.ndarray | None = None      # sorted o * m + c of the entries
    pmax: np.ndarray | None = None
    pmin: np.ndarray | None = None
    row_start: np.ndarray | None = None
    _w_t: np.ndarray | None = None

    def extrema(self, outs: np.ndarray, hi: np.ndarray, wt: np.ndarray):
        """(min, max) of g_o[c] over c < hi outside the operands, 0 included."""
        if self.key is None:
            return self._computed(outs, hi, wt)
        m = wt.shape[0]
        if len(self.key) == 0:
            zero = np.zeros(len(outs))
            return zero, zero
        pos = np.searchsorted(self.key, outs * m + hi) - 1
        found = pos >= self.row_start[outs]
        gmax = np.where(found, self.pmax[np.maximum(pos, 0)], 0.0)
        gmin = np.where(found, self.pmin[np.maximum(pos, 0)], 0.0)
        return np.minimum(gmin, 0.0), np.maximum(gmax, 0.0)

    def _computed(self, outs, hi, wt):
        m = wt.shape[0]
        gmin, gmax = np.zeros(len(outs)), np.zeros(len(outs))
        step = max(1, (1 << 24) // max(m, 1))
        if self._w_t is None:
            self._w_t = np.ascontiguousarray(wt.T, dtype=np.float64)             # [N, m]
        for a in range(0, len(outs), step):
            o, h = outs[a:a + step], hi[a:a + step]
            width = max(1, min(m, int(h.max(initial=1))))       # columns c < hi only
            w_t = self._w_t if width == m else np.ascontiguousarray(self._w_t[:, :width])
            g = np.asarray(self.r[o] @ w_t)
            g[np.arange(width)[None, :] >= h[:, None]] = 0.0
            n_sup = self.sup_off[o + 1] - self.sup_off[o]
            feat = self.sup_feat[csr.concat_ranges(self.sup_off[o], n_sup)]
            row = np.repeat(np.arange(len(o)), n_sup)
            g[row[feat < width], feat[feat < width]] = 0.0
            gmin[a:a + step], gmax[a:a + step] = g.min(axis=1), g.max(axis=1)
        return np.minimum(gmin, 0.0), np.maximum(gmax, 0.0)


def integer_network(module, circuit, domain) -> tuple[IntegerNetwork | None, str]:
    """The module's weights as an IntegerNetwork, or (None, why the path does not apply)."""
    if not isinstance(domain, SparseDomain):
        return None, "the domain is a table's rows"
    if not isinstance(module, SupModule):
        return None, "not a layered network"
    layers = [layer.numpy() for layer in module.layers()]
    if len(layers) != 2 or not layers[0].relu or layers[1].relu:
        return None, "not one ReLU hidden layer and an affine read-out"
    hidden, readout = layers
    rows0, cols0, vals0, bias0 = hidden.rows, hidden.cols, hidden.vals, hidden.bias
    rows1, cols1, vals1, bias1 = readout.rows, readout.cols, readout.vals, readout.bias
    if not all(np.all(v == np.round(v)) for v in (vals0, bias0, vals1, bias1)):
        return None, "weights are not all integers"
    input_map = module.input_map.cpu().numpy()
    m, n_hidden, width, n_out = len(input_map), hidden.n_out, hidden.n_in, readout.n_out
    if len(np.unique(input_map)) != m:
        return None, "inputs do not map to distinct columns"
    if m * n_hidden > MAX_DENSE:
        return None, f"a dense table of {m} features x {n_hidden} neurons would be too large"
    feature_of = np.full(width, -1, dtype=np.int64)
    feature_of[input_map] = np.arange(m)
    f = feature_of[cols0.astype(np.int64)]
    keep = f >= 0
    wt = np.zeros((m, n_hidden), dtype=np.int64)
    np.add.at(wt, (f[keep], rows0.astype(np.int64)[keep]), vals0.astype(np.int64)[keep])
    bias = bias0.astype(np.int64)
    r = sp.csr_matrix((vals1, (rows1.astype(np.int64), cols1.astype(np.int64))),
                      shape=(n_out, n_hidden))
    r.sum_duplicates()
    r.eliminate_zeros()
    rt = r.T.tocsr()
    k = domain.max_weight
    # exactness: every partial sum the module forms is an integer below 2^mantissa
    top = np.sort(wt, axis=0)
    rise = np.clip(top[::-1][:k], 0, None).sum(axis=0)
    fall = np.clip(-top[:k], 0, None).sum(axis=0)
    pre_bound = np.abs(bias) + np.maximum(rise, fall)
    hmax = np.clip(bias + rise, 0, None)
    out_bound = np.abs(bias1) + abs(r) @ hmax.astype(np.float64)
    bits = MANTISSA.get(str(module.dtype).replace("torch.", ""), 24)
    if max(float(pre_bound.max(initial=0)), float(out_bound.max(initial=0))) >= 2.0 ** bits:
        return None, f"sums may exceed 2^{bits}, where {module.dtype} stops being exact"
    h0 = np.clip(bias, 0, None)
    r_bias = bias1.astype(np.int64)
    y0 = r_bias + (r @ h0.astype(np.float64)).astype(np.int64)
    pmax, pmin = _prefix_extrema(wt)
    nz_c, nz_j = np.nonzero(wt)
    w_key = np.sort(nz_j * m + nz_c)
    net = IntegerNetwork(m, n_hidden, n_out, wt, bias, r.indptr.astype(np.int64),
                         r.indices.astype(np.int64), r.data.astype(np.int64),
                         rt.indptr.astype(np.int64), rt.indices.astype(np.int64),
                         rt.data.astype(np.int64), r_bias, h0, y0, pmax, pmin,
                         FeatureBound(wt, bias, r, reuse=k > 2), w_key)
    net.linear = _linear_table(net, r, circuit)     # None: no threshold-gate outputs
    return net, ""


def _prefix_extrema(wt: np.ndarray):
    """pmax[h, j] = max_{c < h} W[j, c] (row 0: +-inf stand-ins, never used)."""
    big = np.iinfo(np.int64).max // 4
    pmax = np.empty((wt.shape[0] + 1, wt.shape[1]), dtype=np.int64)
    pmin = np.empty_like(pmax)
    pmax[0], pmin[0] = -big, big
    np.maximum.accumulate(wt, axis=0, out=pmax[1:])
    np.minimum.accumulate(wt, axis=0, out=pmin[1:])
    return pmax, pmin


class FeatureBound:
    """G_up, G_dn [m, n_out] and A_up, A_dn [n_out] of the feature bound (docs/proofs/block-check.md):
    a dense table when it fits in `max_dense` elements and `reuse` says rows are asked for many
    times (domains of weight 3 and more), else rows computed when asked for. At weight <= 2
    each block's Q is one feature, asked for once: on demand costs no more than the table, and
    a shard of the domain computes only its own blocks' rows."""

    max_dense = MAX_DENSE
    row_batch = 256              # features per product when the table is built

    def __init__(self, wt, bias, r, reuse: bool = True):
        wp = np.clip(wt.max(axis=0, initial=0), 0, None).astype(np.float64)
        wn = np.clip(-wt.min(axis=0, initial=0), 0, None).astype(np.float64)
        dormant_up = (bias + wp) <= 0
        dormant_dn = bias <= 0
        rpos = r.maximum(0).tocsr()
        rneg = (-r).maximum(0).tocsr()

        def per_neuron(scale_pos, scale_neg):                                    # [N, n_out]
            return (rpos @ sp.diags(scale_pos) + rneg @ sp.diags(scale_neg)).T.tocsr()
        self.c_up = per_neuron(wp * dormant_up, wn * dormant_dn)
        self.c_dn = per_neuron(wn * dormant_dn, wp * dormant_up)
        self.a_up = np.asarray(per_neuron(wp * ~dormant_up, wn * ~dormant_dn).sum(axis=0)).ravel()
        self.a_dn = np.asarray(per_neuron(wn * ~dormant_dn, wp * ~dormant_up).sum(axis=0)).ravel()
        self.feeds = wt > 0                                     # bool [m, N], dense like wt
        self.c_up_t = self.c_up.T.tocsr()                                       # [n_out, N]
        self.c_dn_t = self.c_dn.T.tocsr()
        self.dense = reuse and wt.shape[0] * r.shape[0] <= self.max_dense
        self.has_dn = self.c_dn.nnz > 0
        if self.dense:
            self.g_up = self._table(self.c_up_t)
            self.g_dn = self._table(self.c_dn_t) if self.has_dn else None

    def _table(self, c_t) -> np.ndarray:
        """G = feeds C row batch by row batch, each as (C^T feeds[rows]^T)^T: C sparse, feeds
        dense (a sparse-by-sparse product with a dense result is many times slower)."""
        m, step = self.feeds.shape[0], self.row_batch
        table = np.empty((m, c_t.shape[0]))
        for a in range(0, m, step):
            table[a:a + step] = (c_t @ self.feeds[a:a + step].T.astype(np.float64)).T
        return table

    def sums(self, q: np.ndarray):
        """(sum of G_up rows, sum of G_dn rows) over the features of each row of q [B, j-1]."""
        if q.shape[1] == 0:
            return 0.0, 0.0
        if self.dense:
            up = self.g_up[q].sum(axis=1)
            dn = self.g_dn[q].sum(axis=1) if self.has_dn else 0.0
            return up, dn
        # G is linear in feeds: the sum of Q's rows of G is (the sum of Q's rows of feeds) C
        fed = self.feeds[q].sum(axis=1, dtype=np.float64)                         # [B, N]
        up = _transposed(self.c_up_t @ fed.T)
        dn = _transposed(self.c_dn_t @ fed.T) if self.has_dn else 0.0
        return up, dn


def _transposed(a: np.ndarray, step: int = 512) -> np.ndarray:
    """a.T as a C-ordered array, copied in slabs of rows (about twice as fast as one strided
    copy of a tall array)."""
    out = np.empty((a.shape[1], a.shape[0]), dtype=a.dtype)
    for i in range(0, a.shape[0], step):
        out[:, i:i + step] = a[i:i + step].T
    return out


def _linear_table(net: IntegerNetwork, r, circuit) -> LinearTable | None:
    positions, spec = superposable(circuit)
    if len(positions) == 0:
        return None
    has = np.zeros(net.n_out, dtype=bool)
    has[positions] = True
    lens = np.diff(spec.f_offsets)
    owner = np.repeat(positions, lens)
    order = np.argsort(owner, kind="stable")
    sup_feat = spec.f_features[order].astype(np.int64)
    sup_len = np.bincount(owner, minlength=net.n_out)
    sup_off = np.concatenate([[0], np.cumsum(sup_len)])
    table = LinearTable(has, sup_off, sup_feat, r)
    w_nnz = np.count_nonzero(net.wt, axis=0).astype(np.float64)      # per neuron
    if float((abs(r) @ w_nnz).sum()) > MAX_LINEAR_ENTRIES:
        return table
    g = (r @ sp.csr_matrix(net.wt.T)).tocsr()                                    # [n_out, m]
    g.sum_duplicates()
    rows = np.repeat(np.arange(net.n_out), np.diff(g.indptr))
    cols, vals = g.indices.astype(np.int64), g.data.astype(np.float64)
    # drop the operands' entries and every entry of outputs without a known support
    sup_key = np.repeat(np.arange(net.n_out), sup_len) * net.m + sup_feat
    key = rows * net.m + cols
    keep = has[rows] & ~np.isin(key, sup_key)
    key, vals, rows = key[keep], vals[keep], rows[keep]
    order = np.argsort(key, kind="stable")
    key, vals, rows = key[order], vals[order], rows[order]
    span = 2.0 * (np.abs(vals).max(initial=0) + 1)
    table.key = key
    table.pmax = np.maximum.accumulate(vals + rows * span) - rows * span
    table.pmin = -(np.maximum.accumulate(-vals + rows * span) - rows * span)
    table.row_start = np.searchsorted(key, np.arange(net.n_out) * net.m)
    return table


def domain_blocks(domain: SparseDomain, start: int, stop: int, max_blocks: int):
    """Yield (Q [B, j-1], lo [B], hi [B]) covering ranks [start, stop) of weight j >= 1."""
    offsets = domain.weight_offsets()
    m = domain.m
    for j in range(1, domain.max_weight + 1):
        a, b = max(start, offsets[j]) - offsets[j], min(stop, offsets[j + 1]) - offsets[j]
        if a >= b:
            continue
        if j == 1:
            yield np.zeros((1, 0), dtype=np.int64), np.array([a]), np.array([b])
            continue
        first = domain.unrank(np.array([offsets[j] + a]))[0, :j]
        last = domain.unrank(np.array([offsets[j] + b - 1]))[0, :j]
        q_rank = lambda q: sum(math.comb(int(v) - 1, i + 1) for i, v in enumerate(q))
        r_first, r_last = q_rank(first[1:]), q_rank(last[1:])
        sub = SparseDomain(m - 1, j - 1)
        sub_offset = sub.weight_offsets()[j - 1]
        for r0 in range(r_first, r_last + 1, max_blocks):
            ranks = np.arange(r0, min(r0 + max_blocks, r_last + 1), dtype=np.int64)
            q = sub.unrank(ranks + sub_offset)[:, :j - 1] + 1
            lo = np.zeros(len(ranks), dtype=np.int64)
            hi = q[:, 0].copy()
            if ranks[0] == r_first:
                lo[0] = first[0]
            if ranks[-1] == r_last:
                hi[-1] = last[0] + 1
            yield q, lo, hi


class BlockCheck:
    """One pass of the block check over rank ranges; fields mirror ExhaustiveCheck's."""

    def __init__(self, circuit, module, net: IntegerNetwork, max_counterexamples: int):
        self.circuit, self.module, self.net = circuit, module, net
        self.threshold = decision_threshold(module)    # as the module's `decide` compares
        self.max_counterexamples = max_counterexamples
        self.spec_base = evaluate_active(circuit, np.full((1, 1), -1, dtype=np.int64)).base
        self.cared_base = self.spec_base != DONT_CARE
        self.base_cared = int(self.cared_base.sum())
        self.inputs = self.outputs = self.failing = 0
        self.min_margin = math.inf
        self.counterexamples = []
        self.stats = BlockStats()

    # ------------------------------------------------------------------ driver
    def check_empty_input(self) -> None:
        """The all-zero input (rank 0)."""
        y = self.net.y0.astype(np.float64)
        self._account(np.ones(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8))
        wrong = np.flatnonzero(self._compare(self.spec_base, y))
        if len(wrong):
            self.failing += 1
            self._record([], wrong, y[wrong])

    def check_blocks(self, q: np.ndarray, lo: np.ndarray, hi: np.ndarray, width: int) -> int:
        """Check every input Q_b + {c}, lo_b <= c < hi_b; returns the number of inputs."""
        net, t = self.net, self.threshold
        n_b, n_out = len(q), net.n_out
        self.stats.blocks += n_b
        s = net.bias[None, :] + net.wt[q].sum(axis=1)                # [B, N]; Q may be empty
        hq = np.clip(s, 0, None)
        yq = self._block_base(hq)                                     # [B, n_out]
        g_up, g_dn = net.bound.sums(q)
        upper = yq + net.bound.a_up + g_up
        lower = yq - net.bound.a_dn - g_dn
        sb = self.spec_base[None, :]
        risky = ((sb == 0) & (upper > t - MARGIN_FLOOR)) | ((sb == 1) & (lower < t + MARGIN_FLOOR))
        # the specification on every input of the blocks
        counts = hi - lo
        in_off = np.concatenate([[0], np.cumsum(counts)])
        n_in = int(in_off[-1])
        blk_of = np.repeat(np.arange(n_b), counts)
        c_of = lo[blk_of] + np.arange(n_in) - in_off[blk_of]
        active = np.full((n_in, width), -1, dtype=np.int64)
        active[:, 0] = c_of
        active[:, 1:q.shape[1] + 1] = q[blk_of]
        ref = evaluate_active(self.circuit, active, chunk=max(n_in, 1))
        self._account(np.full(1, n_in), ref.outputs, ref.values)
        change_key = ref.rows * n_out + ref.outputs                   # sorted (row, output)
        pair_key = np.unique(blk_of[ref.rows] * n_out + ref.outputs)
        cand = np.union1d(np.flatnonzero(risky), pair_key)
        changed = np.isin(cand, pair_key, assume_unique=True)
        cb, co = cand // n_out, cand % n_out
        self.stats.candidates += len(cand)
        todo = self._interval(s, hi, yq, cb, co, changed)
        self.stats.by_interval += int(len(cand) - todo.sum())
        cb, co = cb[todo], co[todo]
        triples = []
        if net.linear is not None and len(cb):
            lin, support_triples = self._linear(s, hi, lo, q, yq, cb, co, width)
            self.stats.by_linear += int(lin.sum())
            triples.append(support_triples)
            cb, co = cb[~lin], co[~lin]
        self.stats.exhaustive_pairs += len(cb)
        work = (net.r_off[co + 1] - net.r_off[co]) * counts[cb]
        bounds = np.searchsorted(np.cumsum(work), np.arange(1, 1 + (int(work.sum()) >> 23)) << 23)
        for part in np.split(np.arange(len(cb)), np.unique(bounds)):
            triples.append(self._every_input(s, lo, hi, yq, cb[part], co[part], blk_of, c_of, ref))
        tb, tc, to = (np.concatenate(p) for p in zip(*triples))
        self._evaluate(s, q, in_off, lo, tb, tc, to, change_key, ref.values)
        return n_in

    # ------------------------------------------------------------------ steps
    def _block_base(self, hq: np.ndarray) -> np.ndarray:
        """y(Q) for every block: the baseline plus the neurons whose state Q changes."""
        net = self.net
        bi, j = np.nonzero(hq != net.h0[None, :])
        yq = np.repeat(net.y0[None, :].astype(np.float64), len(hq), axis=0)
        if len(bi):
            deg = net.rt_off[j + 1] - net.rt_off[j]
            e = csr.concat_ranges(net.rt_off[j], deg)
            rb = np.repeat(bi, deg)
            delta = np.repeat((hq[bi, j] - net.h0[j]).astype(np.float64), deg) * net.rt_val[e]
            yq += np.bincount(rb * net.n_out + net.rt_out[e], weights=delta,
                              minlength=yq.size).reshape(yq.shape)
        return yq

    def _interval(self, s, hi, yq, cb, co, changed) -> np.ndarray:
        """True where the interval bound with Q's neuron states does not settle the pair."""
        net, t = self.net, self.threshold
        pb, j, w = net.readout_entries(co)
        bj = cb[pb]
        sj = s[bj, j]
        hqj = np.clip(sj, 0, None)
        dhi = np.clip(sj + net.pmax[hi[bj], j], 0, None) - hqj
        dlo = np.clip(sj + net.pmin[hi[bj], j], 0, None) - hqj
        up = np.bincount(pb, weights=np.maximum(w * dhi, w * dlo), minlength=len(cb))
        dn = np.bincount(pb, weights=np.minimum(w * dhi, w * dlo), minlength=len(cb))
        y = yq[cb, co]
        sb = self.spec_base[co]
        safe = ~changed & (((sb == 0) & (y + up <= t - MARGIN_FLOOR))
                           | ((sb == 1) & (y + dn >= t + MARGIN_FLOOR)))
        return ~safe

    def _linear(self, s, hi, lo, q, yq, cb, co, width):
        """(settled mask, operand triples) for pairs whose neurons are all active on the block."""
        net, t, lin = self.net, self.threshold, self.net.linear
        pb, j, _ = net.readout_entries(co)
        sj = s[cb[pb], j]
        inactive = (sj < 0) | (sj + np.minimum(net.pmin[hi[cb[pb]], j], 0) < 0)
        ok = lin.has[co] & (np.bincount(pb, weights=inactive, minlength=len(cb)) == 0)
        idx = np.flatnonzero(ok)
        if len(idx) == 0:
            return ok, _no_triples()
        b, o = cb[idx], co[idx]
        spec_q = self._spec_at_q(q, b, o, width)
        gmin, gmax = lin.extrema(o, hi[b], net.wt)
        y = yq[b, o]
        settled = ((spec_q == DONT_CARE) | ((spec_q == 0) & (y + gmax <= t - MARGIN_FLOOR))
                   | ((spec_q == 1) & (y + gmin >= t + MARGIN_FLOOR)))
        ok[idx[~settled]] = False
        b, o = b[settled], o[settled]
        n_sup = lin.sup_off[o + 1] - lin.sup_off[o]
        feat = lin.sup_feat[csr.concat_ranges(lin.sup_off[o], n_sup)]
        tb, to = np.repeat(b, n_sup), np.repeat(o, n_sup)
        inside = (feat >= lo[tb]) & (feat < hi[tb])
        return ok, (tb[inside], feat[inside], to[inside])

    def _every_input(self, s, lo, hi, yq, cb, co, blk_of, c_of, ref):
        """Triples covering every input of each pair's block. Where few inputs move a neuron
        of the output: those inputs and the ones where the specification changes, one by one;
        the others all have the value y(Q) and the baseline specification, checked once (all
        evaluated if that is wrong, so failures are counted input by input). Elsewhere: every
        input of the block."""
        net, m = self.net, self.net.m
        if len(cb) == 0:
            return _no_triples()
        pp, j, _ = net.readout_entries(co)
        start = np.searchsorted(net.w_key, j * m + lo[cb[pp]])
        stop = np.searchsorted(net.w_key, j * m + hi[cb[pp]])
        span = hi[cb] - lo[cb]
        sparse = np.bincount(pp, weights=stop - start, minlength=len(cb)) < span / 2
        dense = np.flatnonzero(~sparse)
        dense_p = np.repeat(dense, span[dense])
        dense_c = lo[cb[dense_p]] + csr.concat_ranges(np.zeros(len(dense), np.int64), span[dense])
        keep = sparse[pp]
        p_of, c_at = self._moving_inputs(s, lo, hi, yq, cb, co, blk_of, c_of, ref, sparse,
                                         pp[keep], j[keep], start[keep], stop[keep])
        p_of, c_at = np.concatenate([p_of, dense_p]), np.concatenate([c_at, dense_c])
        return cb[p_of], c_at, co[p_of]

    def _moving_inputs(self, s, lo, hi, yq, cb, co, blk_of, c_of, ref, sparse, pp, j, start,
                       stop):
        """(pair, c) of the sparse pairs' inputs that need an evaluation."""
        net, m = self.net, self.net.m
        idx = csr.concat_ranges(start, stop - start)
        pe, je = np.repeat(pp, stop - start), np.repeat(j, stop - start)
        c = net.w_key[idx] - je * m
        sj = s[cb[pe], je]
        moves = np.clip(sj + net.wt[c, je], 0, None) != np.clip(sj, 0, None)
        want = cb * net.n_out + co                                    # sorted
        change_pair = blk_of[ref.rows] * net.n_out + ref.outputs
        sel = np.flatnonzero(contains_sorted(want, change_pair))
        sel_p = np.searchsorted(want, change_pair[sel])
        sel = sel[sparse[sel_p]]
        sel_p = sel_p[sparse[sel_p]]
        pairs = np.concatenate([pe[moves], sel_p])
        cs = np.concatenate([c[moves], c_of[ref.rows[sel]]])
        # distinct (pair, c) through a bitmap of the pairs' ranges (no sort)
        rows_of = np.cumsum(sparse) - 1
        width = int((hi[cb] - lo[cb])[sparse].max(initial=0))
        seen = np.zeros((int(sparse.sum()), max(width, 1)), dtype=bool)
        seen[rows_of[pairs], cs - lo[cb[pairs]]] = True
        r, off = np.nonzero(seen)
        sparse_idx = np.flatnonzero(sparse)
        p_of = sparse_idx[r]
        c_at = lo[cb[p_of]] + off
        rest = (hi[cb] - lo[cb]) - np.bincount(p_of, minlength=len(cb))
        y, spec = yq[cb, co], self.spec_base[co]
        check = sparse & (rest > 0)
        bad = np.flatnonzero(self._compare(spec[check], y[check]))
        bad = np.flatnonzero(check)[bad]
        if len(bad):      # evaluate every input of those pairs
            seen[rows_of[bad]] = False
            n_all = hi[cb[bad]] - lo[cb[bad]]
            extra_p = np.repeat(bad, n_all)
            extra_c = lo[cb[extra_p]] + csr.concat_ranges(np.zeros(len(bad), np.int64), n_all)
            keep = ~np.isin(p_of, bad)
            p_of = np.concatenate([p_of[keep], extra_p])
            c_at = np.concatenate([c_at[keep], extra_c])
        return p_of, c_at

    def _spec_at_q(self, q, b, o, width) -> np.ndarray:
        """The specification of output o on the input Q_b (weight j - 1)."""
        ub, inv = np.unique(b, return_inverse=True)
        active = np.full((len(ub), width), -1, dtype=np.int64)
        active[:, :q.shape[1]] = q[ub]
        ref = evaluate_active(self.circuit, active, chunk=max(len(ub), 1))
        keys = ref.rows * self.net.n_out + ref.outputs
        want = inv * self.net.n_out + o
        return lookup_sorted(keys, ref.values, want, self.spec_base[o])

    def _evaluate(self, s, q, in_off, lo, tb, tc, to, change_key, change_val) -> None:
        """Exact values of the triples (block, c, output), compared with the specification."""
        net = self.net
        if len(tb) == 0:
            return
        self.stats.evaluations += len(tb)
        step = max(1, (1 << 22) // max(int(np.diff(net.r_off).max(initial=1)), 1))
        for a in range(0, len(tb), step):
            b, c, o = tb[a:a + step], tc[a:a + step], to[a:a + step]
            pt, j, w = net.readout_entries(o)
            h = np.clip(s[b[pt], j] + net.wt[c[pt], j], 0, None)
            y = net.r_bias[o] + np.bincount(pt, weights=w * h, minlength=len(b))
            row = in_off[b] + c - lo[b]
            spec = lookup_sorted(change_key, change_val, row * net.n_out + o, self.spec_base[o])
            wrong = self._compare(spec, y)
            if wrong.any():
                self._failures(q, b[wrong], c[wrong], o[wrong], y[wrong], row[wrong])

    def _compare(self, spec: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Wrong mask of exact values; the smallest cared margin joins min_margin."""
        cared = spec != DONT_CARE
        if cared.any():
            self.min_margin = min(self.min_margin,
                                  float(margins(spec, y, self.threshold)[cared].min()))
        return is_wrong(spec, y, self.threshold)

    def _failures(self, q, b, c, o, y, row) -> None:
        rows, first = np.unique(row, return_index=True)
        self.failing += len(rows)
        for i in first[: max(0, self.max_counterexamples - len(self.counterexamples))]:
            sel = row == row[i]
            features = sorted([int(c[i])] + [int(v) for v in q[b[i]]])
            self._record(features, o[sel], y[sel])

    def _record(self, features, outs, values) -> None:
        """A counterexample, replayed on the module: its values must be what the check computed."""
        replay = self.module.forward_active([features] if features else [[-1]])[0]
        replay = replay.double().cpu().numpy()[outs]
        if not np.array_equal(replay, np.asarray(values, dtype=np.float64)):
            raise RuntimeError("block check: a counterexample's values differ on the module "
                               f"(computed {list(values)[:5]}, module {replay[:5].tolist()})")
        outs = [int(v) for v in outs[:50]]
        names = self.circuit.output_names(outs)
        self.counterexamples.append({
            "active": self.circuit.input_names(features), "wrong": names,
            "values": dict(zip(names, replay[:50].tolist()))})

    def _account(self, n_inputs, outs, vals) -> None:
        """Inputs and cared (input, output) pairs: the baseline's, corrected by the changes."""
        n = int(n_inputs.sum())
        self.inputs += n
        self.outputs += n * self.base_cared + int((vals != DONT_CARE).sum()
                                                  - self.cared_base[outs].sum())


def _no_triples():
    empty = np.zeros(0, dtype=np.int64)
    return empty, empty, empty
