"""Exhaustive check of networks with a sparse decoder (coded outputs): only what an input touches.

A coded network (compiler/superposed/rs_compile.py: `--output-code rs`) ends in a fixed linear
decoder y = R z + b whose rows are sparse (output (a, b) reads its c code coordinates), after
a linear code layer that the event-driven path cannot follow sparsely. The dense path computes
all m' read-out values of every input; this path computes, per batch of inputs,

* z(x), the read-out's input, with the module itself (`readout_input`, the activations the
  dense path reads, in the module's dtype), and the coordinates where z(x) differs from z(0)
  bit for bit: the input's changes S(x) (coordinate, new value);
* every output whose value or specification can differ from the all-zero input's, evaluated
  exactly as b_j + sum_k R_jk z_k(x) (float64 sum of the module's dtype values, rounded once to
  the module's dtype; `SparseDecoder.values`), and compared with the reference like the dense
  path (`dsl.semantics.evaluate_active`: the baseline plus the changes).

An output j whose decoder row reads t = |supp(R_j) ∩ S(x)| changed coordinates:

* t = 0: its value is bit for bit the all-zero input's (the same numbers summed the same way),
  its specification is the baseline unless the reference changes it (then it is evaluated);
  the all-zero verdict and margin are checked once (outputs wrong there are evaluated for
  every input, so every failing input is found and listed like the dense path lists it);
* 1 <= t < L: its value is a function of the t changed (coordinate, value) pairs only. A table
  per such key (built the first time the key occurs, from the same evaluation) lists the
  outputs reading all t coordinates whose value there is wrong or within MARGIN_FLOOR of the
  threshold against the baseline specification; only those are evaluated at the input;
* t >= L: found through an index of the L-subsets of every decoder row's support, and
  evaluated (L = 1, 2 or 3, chosen by the cost measured on a sample).

So every output of every input is decided: either evaluated, or equal to a value evaluated
once (the baseline, or a table entry) that is correct with margin > MARGIN_FLOOR. Wrong
outputs and failing inputs are exactly the dense path's, and so are the counterexamples; the
minimum margin is exact when at most MARGIN_FLOOR or at most the smallest table margin, else
a lower bound (as on the event-driven path). Nothing about the code's construction is used:
only the stored weights, the module's own z, and the reference.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from backends import SupModule
from dsl.semantics import DONT_CARE, evaluate_active

from .compare import (MARGIN_FLOOR, contains_sorted, decision_threshold, is_wrong, lookup_sorted,
                      margins)
from .progress import progress_bar

MAX_ROW = 64              # decoder rows reading more coordinates: not this path
MAX_INDEX = 1 << 25       # entries of one subset index at most
MAX_LEVEL = 3
CELLS = 1 << 23           # candidate entries (about) per batch
SUBSET_CAP = 1 << 24      # subsets enumerated per batch at most (else the batch is halved)
COST_UNIT = 2.5e-8        # seconds per unit of `choose_level`'s estimate (2-core CI machine)


# ---------------------------------------------------------------- applicability


def affine_readout_problem(layers) -> str:
    """'' when the last of `layers` is an affine read-out (no ReLU) after at least one other
    layer, else why not (shared by this path and the event-driven queries' check)."""
    if len(layers) < 2:
        return "the read-out is the network's only layer"
    if layers[-1].relu:
        return "the read-out layer has a ReLU"
    return ""


def coded_problem(module) -> str:
    """Why this path does not apply to `module`, or '' when it does: a layered module whose
    read-out is an affine layer after at least one other layer, with at most MAX_ROW entries
    per output row."""
    if not isinstance(module, SupModule):
        return "not a layered network"
    layers = module.layers()
    why = affine_readout_problem(layers)
    if why:
        return why
    last = layers[-1]
    widest = int(torch.bincount(last.rows, minlength=last.n_out).max()) if len(last.rows) else 0
    if widest > MAX_ROW:
        return f"a read-out row reads {widest} coordinates (this path takes at most {MAX_ROW})"
    return ""


def prefers_coded(module) -> bool:
    """Whether the exhaustive verifier's 'auto' takes this path: a linear layer before a sparse
    read-out (coded outputs), which the event-driven path cannot follow sparsely; sparse means
    every read-out row reads at most a quarter of its input (else the dense product wins)."""
    if coded_problem(module):
        return False
    layers = module.layers()
    last = layers[-1]
    widest = int(torch.bincount(last.rows, minlength=last.n_out).max()) if len(last.rows) else 0
    return widest * 4 <= last.n_in and any(not layer.relu for layer in layers[:-1])


# ---------------------------------------------------------------- pieces


class SparseDecoder:
    """The read-out layer as padded rows: output j reads cols[j, :width[j]] with vals."""

    def __init__(self, layer, dtype: torch.dtype):
        self.dtype = dtype
        rows = layer.rows.cpu().numpy().astype(np.int64)
        cols = layer.cols.cpu().numpy().astype(np.int64)
        vals = layer.vals.detach().cpu().double().numpy()
        self.n_out, self.n_in = layer.n_out, layer.n_in
        self.bias = layer.bias.detach().cpu().double().numpy()
        order = np.lexsort((cols, rows))
        rows, cols, vals = rows[order], cols[order], vals[order]
        width = np.bincount(rows, minlength=self.n_out)
        w = max(1, int(width.max(initial=0)))
        slot = np.arange(len(rows)) - (np.cumsum(width) - width)[rows]
        self.cols = np.zeros((self.n_out, w), np.int64)
        self.vals = np.zeros((self.n_out, w), np.float64)
        self.cols[rows, slot] = cols
        self.vals[rows, slot] = vals
        self.pad = np.arange(w)[None, :] >= width[:, None]
        self.any_pad = bool(self.pad.any())
        self.width = w
        self.cols_t = np.ascontiguousarray(self.cols.T)     # [w, n_out]: slot k of every row
        self.vals_t = np.ascontiguousarray(self.vals.T)

    def supports(self) -> list:
        """Per output, its distinct coordinates (sorted)."""
        return [np.unique(self.cols[j][~self.pad[j]]) for j in range(self.n_out)]

    def values(self, z: np.ndarray, rows: np.ndarray, outs: np.ndarray) -> np.ndarray:
        """y[rows, outs] = sum_k R[outs, k] z[rows, k] + b[outs] in float64, slot by slot in
        row order, rounded once to the module's dtype (returned as float64). The same numbers
        in the same order give the same bits, which the tables rely on. Padding slots add 0
        (masked where z is not finite, where 0 * z would not be 0)."""
        flat = z.reshape(-1)
        base = rows * z.shape[1]
        masked = self.any_pad and not np.isfinite(z).all()
        y = np.zeros(len(outs), np.float64)
        for k in range(self.width):
            term = self.vals_t[k][outs] * flat[base + self.cols_t[k][outs]]
            if masked:
                term[self.pad[outs, k]] = 0.0
            y += term
        y += self.bias[outs]
        return torch.from_numpy(y).to(self.dtype).double().numpy()


def combos(k: int, t: int) -> np.ndarray:
    """All t-subsets of range(k), ascending, as int64 [C(k, t), t]."""
    return np.array(list(itertools.combinations(range(k), t)), dtype=np.int64).reshape(-1, t)


def row_subsets(starts: np.ndarray, counts: np.ndarray, t: int):
    """For rows whose entries are [starts[r], starts[r] + counts[r]): every t-subset of each
    row's entries, as (row [N], entry positions [N, t])."""
    rows_out, pos_out = [np.zeros(0, np.int64)], [np.zeros((0, t), np.int64)]
    for k in np.unique(counts[counts >= t]):
        rows = np.flatnonzero(counts == k)
        comb = combos(int(k), t)
        pos = starts[rows][:, None, None] + comb[None]
        rows_out.append(np.repeat(rows, len(comb)))
        pos_out.append(pos.reshape(-1, t))
    return np.concatenate(rows_out), np.concatenate(pos_out)


def subset_count(counts: np.ndarray, t: int) -> int:
    """Sum over rows of C(count, t)."""
    ks, n = np.unique(counts, return_counts=True)
    return int(sum(math.comb(int(k), t) * int(c) for k, c in zip(ks, n)))


def combine(parts: np.ndarray, base: int) -> np.ndarray:
    """One int64 key per row of `parts` [N, t] (digits < base, most significant first)."""
    key = np.zeros(len(parts), np.int64)
    for a in range(parts.shape[1]):
        key = key * base + parts[:, a]
    return key


DENSE_KEYS = 1 << 26      # key spaces up to this size are looked up through a dense array


class KeyMap:
    """Sorted distinct int64 keys in [0, space) with the position of a query key: through a
    dense array when the space is small, else by binary search."""

    def __init__(self, keys: np.ndarray, space: int):
        self.keys, self.space = keys, space
        self.slot = None
        if space <= DENSE_KEYS and len(keys):
            self.slot = np.full(space, -1, np.int32 if len(keys) < (1 << 31) else np.int64)
            self.slot[keys] = np.arange(len(keys))

    def find(self, query: np.ndarray):
        """(position, present) of every query key."""
        if len(self.keys) == 0:
            return np.zeros(len(query), np.int64), np.zeros(len(query), bool)
        if self.slot is not None:
            pos = self.slot[query]
            return pos, pos >= 0
        pos = np.minimum(np.searchsorted(self.keys, query), len(self.keys) - 1)
        return pos, self.keys[pos] == query


def expand(found, ptr: np.ndarray, items: np.ndarray):
    """For lists items[ptr[i]:ptr[i+1]] and `found` = (position, present) of each query:
    (query index, item) for every item of every query key present."""
    pos, hit = found
    q = np.flatnonzero(hit)
    lo, hi = ptr[pos[q]], ptr[pos[q] + 1]
    n = hi - lo
    keep = n > 0
    q, lo, n = q[keep], lo[keep], n[keep]
    total = int(n.sum())
    if total == len(q):                       # one item each (common): no expansion
        return q, items[lo]
    which = np.repeat(q, n)
    offsets = np.cumsum(n) - n
    entry = np.repeat(lo - offsets, n) + np.arange(total)
    return which, items[entry]


class SubsetIndex:
    """Outputs by the t-subsets of their decoder support: key (coordinates ascending, base
    n_in) -> outputs whose row reads all of them."""

    def __init__(self, supports: list, n_in: int, t: int):
        self.t, self.base = t, n_in
        keys, outs = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        sizes = np.array([len(s) for s in supports])
        for s in np.unique(sizes[sizes >= t]):
            which = np.flatnonzero(sizes == s)
            coords = np.stack([supports[j] for j in which])          # [n, s]
            comb = combos(int(s), t)
            parts = coords[:, comb].reshape(-1, t)
            keys.append(combine(parts, n_in))
            outs.append(np.repeat(which, len(comb)))
        keys, outs = np.concatenate(keys), np.concatenate(outs)
        order = np.argsort(keys, kind="stable")
        keys, self.outs = keys[order], outs[order]
        uniq, first = np.unique(keys, return_index=True)
        self.map = KeyMap(uniq, n_in ** t)
        self.ptr = np.append(first, len(keys)).astype(np.int64)

    @staticmethod
    def size(supports: list, t: int) -> int:
        """Entries the index of level t would hold."""
        return sum(math.comb(len(s), t) for s in supports)

    def lookup(self, key: np.ndarray):
        """(query index, output) for every output reading every coordinate of each key."""
        return expand(self.map.find(key), self.ptr, self.outs)


class ValueIds:
    """Small integer ids of the values z takes at changed coordinates (by float64 bits)."""

    def __init__(self):
        self.ids: dict = {}
        self.values = np.zeros(0, np.float64)   # by id

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Ids of `values` (float64), registering new ones."""
        bits = np.ascontiguousarray(values, dtype=np.float64).view(np.int64)
        uniq, inverse = np.unique(bits, return_inverse=True)
        for u in uniq.tolist():
            if u not in self.ids:
                self.ids[u] = len(self.ids)
                self.values = np.append(self.values, np.array([u], np.int64).view(np.float64))
        return np.array([self.ids[u] for u in uniq.tolist()], np.int64)[inverse.reshape(-1)]

    def __len__(self) -> int:
        return len(self.ids)


class TouchTable:
    """Level-t table: key (the t changed values' combination id, the t coordinates ascending)
    -> outputs reading all t coordinates whose value with exactly those coordinates changed
    (to those values) is wrong or within MARGIN_FLOOR of the threshold (against the baseline
    specification)."""

    def __init__(self, check, t: int):
        self.check, self.t = check, t
        self.space = check.decoder.n_in ** t
        self.combos: dict = {}               # tuple of value ids -> combination id
        self.combo_vids = []
        self.map = KeyMap(np.zeros(0, np.int64), 0)
        self.ptr = np.zeros(1, np.int64)
        self.bad = np.zeros(0, np.int64)
        self.min_margin = math.inf           # over every cared entry of every built key

    def keys_of(self, coords: np.ndarray, vids: np.ndarray) -> np.ndarray:
        """Table keys of subsets with coordinates `coords` [N, t] and value ids `vids` [N, t]."""
        nv = max(len(self.check.values), 1)
        vkey = combine(vids, nv)
        uniq, inverse = np.unique(vkey, return_inverse=True)
        ids = []
        for u in uniq.tolist():
            digits = tuple(int(u // nv ** (self.t - 1 - a)) % nv for a in range(self.t))
            if digits not in self.combos:
                self.combos[digits] = len(self.combos)
                self.combo_vids.append(digits)
            ids.append(self.combos[digits])
        combo = np.array(ids, np.int64)[inverse.reshape(-1)]
        return combo * self.space + combine(coords, self.check.decoder.n_in)

    def lookup(self, key: np.ndarray):
        """(query index, output) for the bad outputs of every key (built when new)."""
        found = self.map.find(key)
        if not found[1].all():
            self._build(np.unique(key[~found[1]]))
            found = self.map.find(key)
        return expand(found, self.ptr, self.bad)

    def _build(self, new: np.ndarray) -> None:
        check, t = self.check, self.t
        d = check.decoder.n_in
        combo, rest = new // self.space, new % self.space
        coords = np.zeros((len(new), t), np.int64)
        for a in range(t - 1, -1, -1):
            coords[:, a] = rest % d
            rest //= d
        vids = np.array(self.combo_vids, np.int64).reshape(-1, t)[combo]
        which, outs = check.index[t].lookup(combine(coords, d))
        step = max(1, CELLS // max(d, 1))
        bad_keys, bad_outs = [], []
        for lo in range(0, len(new), step):
            sel = (which >= lo) & (which < lo + step)
            w, o = which[sel] - lo, outs[sel]
            z = np.repeat(check.z0[None], min(step, len(new) - lo), axis=0)
            rr = np.arange(len(z))[:, None]
            z[rr, coords[lo:lo + step]] = check.values.values[vids[lo:lo + step]]
            y = check.decoder.values(z, w, o)
            spec = check.spec_base[o]
            cared = spec != DONT_CARE
            margin = margins(spec, y, check.threshold)
            if cared.any():
                self.min_margin = min(self.min_margin, float(margin[cared].min()))
            bad = cared & (is_wrong(spec, y, check.threshold) | (margin <= MARGIN_FLOOR))
            bad_keys.append(new[lo + w[bad]])
            bad_outs.append(o[bad])
        old_keys = self.map.keys
        keys = np.concatenate([np.repeat(old_keys, np.diff(self.ptr))] + bad_keys)
        outs = np.concatenate([self.bad] + bad_outs)
        order = np.argsort(keys, kind="stable")
        keys, self.bad = keys[order], outs[order]
        all_keys = np.sort(np.concatenate([old_keys, new]))
        self.ptr = np.concatenate([[0], np.searchsorted(keys, all_keys, side="right")]
                                  ).astype(np.int64)
        self.map = KeyMap(all_keys, self.space * max(len(self.combos), 1))


# ---------------------------------------------------------------- the check


class CodedCheck:
    """Accumulates one pass of the coded path over (part of) the domain (module docstring).
    Has the counters `verify.exhaustive` reports: inputs, outputs, failing, counterexamples."""

    def __init__(self, circuit, module, max_counterexamples: int, level: int | None = None):
        why = coded_problem(module)
        if why:
            raise ValueError(f"the coded path does not apply: {why}")
        self.circuit, self.module = circuit, module
        self.threshold = decision_threshold(module)
        self.max_counterexamples = max_counterexamples
        self.decoder = SparseDecoder(module.layers()[-1], module.dtype)
        self.values = ValueIds()
        zero = np.full((1, 1), -1, dtype=np.int64)
        self.spec_base = evaluate_active(circuit, zero).base
        self.z0 = self._z(zero)[0]
        self.z0_bits = self.z0.view(np.int32 if self.z0.dtype == np.float32 else np.int64)
        n_out = self.decoder.n_out
        y0 = self.decoder.values(self.z0[None], np.zeros(n_out, np.int64), np.arange(n_out))
        self.net_base = y0
        cared = self.spec_base != DONT_CARE
        self.base_margin = margins(self.spec_base, y0, self.threshold)[cared]
        self.wrong_base = np.flatnonzero(is_wrong(self.spec_base, y0, self.threshold))
        self.n_out, self.base_cared = n_out, int(cared.sum())
        self.supports = self.decoder.supports()
        self.index, self.tables = {}, {}
        self.level = level
        self.inputs = self.outputs = self.failing = 0
        self.min_margin = math.inf
        self.counterexamples = []

    # ------------------------------------------------------------ set-up
    def levels(self) -> list:
        """Levels L whose subset index fits (MAX_INDEX entries, keys within int64)."""
        d = max(self.decoder.n_in, 2)
        return [t for t in range(1, MAX_LEVEL + 1)
                if t * math.log2(d) < 62 and SubsetIndex.size(self.supports, t) <= MAX_INDEX]

    def _index(self, t: int) -> SubsetIndex:
        if t not in self.index:
            self.index[t] = SubsetIndex(self.supports, self.decoder.n_in, t)
        return self.index[t]

    def choose_level(self, sample: np.ndarray) -> int:
        """The level with the fewest estimated operations per input on `sample` (subsets
        enumerated plus decoder entries evaluated), unless fixed at construction."""
        options = self.levels()
        if not options:
            raise ValueError("the coded path does not apply: no subset index fits")
        if self.level is not None:
            if self.level not in options:
                raise ValueError(f"level {self.level} does not fit (levels {options})")
            return self._set_level(self.level)
        _, (_, coords), counts, starts = self._changes(sample)
        best, best_cost = options[0], math.inf
        for level in options:
            enumerated = sum(subset_count(counts, t) for t in range(1, level + 1))
            if enumerated > (1 << 26):
                continue
            rows, pos = row_subsets(starts, counts, level)
            _, outs = self._index(level).lookup(combine(coords[pos], self.decoder.n_in))
            cost = enumerated * 4 + len(outs) * (self.decoder.width + 4)
            if cost < best_cost:
                best, best_cost = level, cost
        self.cost_per_input = best_cost / max(len(sample), 1)
        return self._set_level(best)

    def seconds_per_input(self) -> float:
        """Estimated seconds per input beyond z (after `choose_level`), to compare with the
        dense read-out's `verify.dense_check.dense_cost`."""
        return getattr(self, "cost_per_input", math.inf) * COST_UNIT

    def _set_level(self, level: int) -> int:
        self.level = level
        for t in range(1, level + 1):
            self._index(t)
        self.tables = {t: TouchTable(self, t) for t in range(1, level)}
        return level

    def batch_size(self) -> int:
        """Inputs per batch: about CELLS candidate entries and z values."""
        per = max(getattr(self, "cost_per_input", 1.0), float(self.decoder.n_in))
        return int(max(256, min(1 << 16, CELLS // per)))

    # ------------------------------------------------------------ one batch
    def _z(self, active: np.ndarray) -> np.ndarray:
        """z = the read-out's input [B, n_in], as the module computes it (float32 / float64
        as computed, other dtypes widened to float64: every value kept exactly)."""
        t = torch.as_tensor(active, device=self.module.device)
        z = self.module.readout_input(t)
        if z.dtype not in (torch.float32, torch.float64):
            z = z.double()
        return z.cpu().numpy()

    def _changes(self, active: np.ndarray):
        z = self._z(active)
        changed = z.view(self.z0_bits.dtype) != self.z0_bits[None]
        rows, coords = np.nonzero(changed)
        counts = np.bincount(rows, minlength=len(active))
        starts = np.cumsum(counts) - counts
        return z, (rows, coords), counts, starts

    def candidates(self, z, changes, counts, starts):
        """(rows, outputs) to evaluate: table entries that are bad, level-L index outputs."""
        rows_c, coords = changes
        d = self.decoder.n_in
        vids = self.values(z[rows_c, coords]) if self.level > 1 else None
        got_rows, got_outs = [], []
        for t in range(1, self.level):
            rows, pos = row_subsets(starts, counts, t)
            which, outs = self.tables[t].lookup(self.tables[t].keys_of(coords[pos], vids[pos]))
            got_rows.append(rows[which])
            got_outs.append(outs)
        rows, pos = row_subsets(starts, counts, self.level)
        which, outs = self.index[self.level].lookup(combine(coords[pos], d))
        got_rows.append(rows[which])
        got_outs.append(outs)
        return got_rows, got_outs

    def check(self, active: np.ndarray) -> None:
        """Check one batch of inputs (padded active-feature lists)."""
        batch = len(active)
        z, changes, counts, starts = self._changes(active)
        if subset_count(counts, self.level) > SUBSET_CAP:     # z changed in many coordinates
            if batch > 1:
                self.check(active[:batch // 2])
                self.check(active[batch // 2:])
                return
            got_rows, got_outs = [np.zeros(self.n_out, np.int64)], [np.arange(self.n_out)]
        else:
            got_rows, got_outs = self.candidates(z, changes, counts, starts)
        ref = evaluate_active(self.circuit, active, chunk=max(batch, 1))
        ref_keys = ref.rows * self.n_out + ref.outputs
        order = np.argsort(ref_keys, kind="stable")
        ref_keys, ref_values = ref_keys[order], ref.values[order]
        if len(ref_keys):       # evaluated below through the reference's changes anyway
            got_rows, got_outs = drop_known(got_rows, got_outs, ref_keys, self.n_out)
        got_rows.append(ref.rows)
        got_outs.append(ref.outputs)
        if len(self.wrong_base):
            got_rows.append(np.repeat(np.arange(batch), len(self.wrong_base)))
            got_outs.append(np.tile(self.wrong_base, batch))
        rows = np.concatenate(got_rows).astype(np.int64)
        outs = np.concatenate(got_outs).astype(np.int64)
        y = self.decoder.values(z, rows, outs)
        spec = lookup_sorted(ref_keys, ref_values, rows * self.n_out + outs,
                             self.spec_base[outs])
        cared = spec != DONT_CARE
        wrong = is_wrong(spec, y, self.threshold)
        if cared.any():
            self.min_margin = min(self.min_margin,
                                  float(margins(spec, y, self.threshold)[cared].min()))
        self.inputs += batch
        self.outputs += batch * self.base_cared + int(
            (ref.values != DONT_CARE).sum() - (self.spec_base[ref.outputs] != DONT_CARE).sum())
        bad_rows = np.unique(rows[wrong])
        self.failing += len(bad_rows)
        for row in bad_rows[: self.max_counterexamples - len(self.counterexamples)]:
            self._record(active[row], rows == row, outs, wrong, y)

    def _record(self, active_row, in_row, outs, wrong, y) -> None:
        sel = np.flatnonzero(in_row & wrong)
        wrong_outs, first = np.unique(outs[sel], return_index=True)
        wrong_outs, values = wrong_outs[:50], y[sel][first][:50]
        names = self.circuit.output_names(wrong_outs.tolist())
        features = [int(f) for f in active_row if f >= 0]
        self.counterexamples.append({
            "active": self.circuit.input_names(features),
            "wrong": names,
            "values": dict(zip(names, values.tolist())),
        })

    # ------------------------------------------------------------ verdict
    @property
    def margin(self):
        """(minimum margin, exact?): every evaluated entry and the baseline; entries left to
        the tables have margin > MARGIN_FLOOR and >= the tables' smallest margin, so the
        value is exact when at most either, else that bound is reported."""
        values = [self.min_margin] + ([float(self.base_margin.min())]
                                      if len(self.base_margin) else [])
        best = min(values)
        tables = min((tb.min_margin for tb in self.tables.values()), default=math.inf)
        bound = max(MARGIN_FLOOR, tables)
        if math.isinf(best):
            return (None, True) if math.isinf(tables) else (tables, False)
        if best <= bound:
            return best, True
        return bound, False


def drop_known(rows_list: list, outs_list: list, known: np.ndarray, n_out: int):
    """The candidate lists without the entries whose key row * n_out + output is in the
    sorted `known`."""
    rows_out, outs_out = [], []
    for rows, outs in zip(rows_list, outs_list):
        keep = ~contains_sorted(known, rows * n_out + outs)
        rows_out.append(rows[keep])
        outs_out.append(outs[keep])
    return rows_out, outs_out


def sample_inputs(domain, start_rank: int, stop_rank: int) -> np.ndarray:
    """Up to 256 inputs spread over the ranks [start_rank, stop_rank)."""
    if domain.size == 0:
        return np.full((1, 1), -1, np.int64)
    sample = np.unique(np.linspace(start_rank, max(start_rank, stop_rank - 1),
                                   num=min(256, max(stop_rank - start_rank, 1))).astype(np.int64))
    return domain.unrank(sample)


def run_coded(check: CodedCheck, domain, start_rank: int, stop_rank: int,
              progress: bool = True) -> CodedCheck:
    """Check the ranks [start_rank, stop_rank) of `domain` with `check`: the level chosen on
    up to 256 inputs spread over the range (unless chosen already), then batch by batch."""
    if check.level is None or not check.index:
        check.choose_level(sample_inputs(domain, start_rank, stop_rank))
    with progress_bar(stop_rank - start_rank, "inputs", enabled=progress) as bar:
        for _, active in domain.batches(check.batch_size(), start_rank, stop_rank):
            check.check(active)
            bar.update(len(active))
    return check
