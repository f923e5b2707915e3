"""The conditional network representation: a forest of neuron trees (Koyuncu's conditional ReLU net).

A `Forest` maps m 0/1 input features to n_out read-out values; each output belongs to one tree,
each gate is one neuron whose sign picks the branch, and only the path an input takes is
computed. The forest is stored as flat numpy arrays (CSR for the ragged parts); `Forest.walk`
is the numpy reference evaluation, `Forest.ops` / `max_ops` / `params` the costs.

Representation and semantics: docs/proofs/conditional.md
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

import numpy as np

from dsl import csr

KEY_SPLIT, BIT_TEST, NEURON = 0, 1, 2
WALK_CELLS = 1 << 21   # (input, tree) pairs per chunk of the reference walk
GATE_KIND_NAMES = {KEY_SPLIT: "key split", BIT_TEST: "bit test", NEURON: "neuron"}


def leaf_code(leaf_ids):
    """Node code of leaves (-1 - id)."""
    return -1 - np.asarray(leaf_ids, dtype=np.int64)


def _i64(n=0):
    return np.zeros(n, dtype=np.int64)


@dataclass
class Forest:
    """A forest of neuron trees over m input features; see docs/proofs/conditional.md."""
    n_inputs: int
    n_outputs: int
    # trees
    tree_root: np.ndarray = field(default_factory=_i64)          # int64 [T] node code
    output_tree: np.ndarray = field(default_factory=_i64)        # int64 [n_out] tree of each output
    # registers (CSR over input features)
    reg_tree: np.ndarray = field(default_factory=_i64)           # int64 [K]
    reg_offsets: np.ndarray = field(default_factory=lambda: _i64(1))
    reg_cols: np.ndarray = field(default_factory=_i64)           # input features
    reg_vals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    reg_bias: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # gates (CSR over v = [x, registers])
    gate_tree: np.ndarray = field(default_factory=_i64)          # int64 [N]
    gate_offsets: np.ndarray = field(default_factory=lambda: _i64(1))
    gate_cols: np.ndarray = field(default_factory=_i64)
    gate_vals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gate_bias: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gate_child: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    gate_kind: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    gate_source: np.ndarray = field(default_factory=_i64)
    # leaves: CSR leaf -> entries (output, constant, CSR entry -> terms over v)
    leaf_tree: np.ndarray = field(default_factory=_i64)          # int64 [L]
    leaf_offsets: np.ndarray = field(default_factory=lambda: _i64(1))
    leaf_row: np.ndarray = field(default_factory=_i64)
    entry_output: np.ndarray = field(default_factory=_i64)       # int64 [E] global output id
    entry_const: np.ndarray = field(default_factory=lambda: np.zeros(0))
    entry_offsets: np.ndarray = field(default_factory=lambda: _i64(1))
    term_cols: np.ndarray = field(default_factory=_i64)
    term_vals: np.ndarray = field(default_factory=lambda: np.zeros(0))

    # ------------------------------------------------------------------ sizes
    n_trees = property(lambda self: len(self.tree_root), doc="Number of trees.")
    n_registers = property(lambda self: len(self.reg_tree), doc="Number of key registers.")
    n_gates = property(lambda self: len(self.gate_tree), doc="Number of gates (neurons).")
    n_leaves = property(lambda self: len(self.leaf_tree), doc="Number of leaves.")

    def arrays(self) -> dict:
        """Every array field by name (for saving)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if isinstance(getattr(self, f.name), np.ndarray)}

    # ------------------------------------------------------------------ assembly
    @staticmethod
    def concat(m: int, n_out: int, parts: list) -> "Forest":
        """One forest made of `parts` (forests over the same inputs and output ids)."""
        out = Forest(m, n_out)
        if not parts:
            out.output_tree = np.full(n_out, -1, np.int64)
            return out
        t_off = g_off = l_off = k_off = 0
        acc = {f.name: [] for f in fields(Forest)
               if f.name not in ("n_inputs", "n_outputs", "output_tree")}
        output_tree = np.full(n_out, -1, np.int64)
        for p in parts:
            shift_col = lambda c: np.where(c >= m, c + k_off, c)  # noqa: E731
            shift_code = lambda c: np.where(c >= 0, c + g_off, c - l_off)  # noqa: E731
            acc["tree_root"].append(shift_code(p.tree_root))
            owned = p.output_tree >= 0
            output_tree[owned] = p.output_tree[owned] + t_off
            acc["reg_tree"].append(p.reg_tree + t_off)
            acc["reg_cols"].append(p.reg_cols)
            acc["reg_vals"].append(p.reg_vals)
            acc["reg_bias"].append(p.reg_bias)
            acc["reg_offsets"].append(np.diff(p.reg_offsets))
            acc["gate_tree"].append(p.gate_tree + t_off)
            acc["gate_offsets"].append(np.diff(p.gate_offsets))
            acc["gate_cols"].append(shift_col(p.gate_cols))
            acc["gate_vals"].append(p.gate_vals)
            acc["gate_bias"].append(p.gate_bias)
            acc["gate_child"].append(shift_code(p.gate_child))
            acc["gate_kind"].append(p.gate_kind)
            acc["gate_source"].append(p.gate_source)
            acc["leaf_tree"].append(p.leaf_tree + t_off)
            acc["leaf_offsets"].append(np.diff(p.leaf_offsets))
            acc["leaf_row"].append(p.leaf_row)
            acc["entry_output"].append(p.entry_output)
            acc["entry_const"].append(p.entry_const)
            acc["entry_offsets"].append(np.diff(p.entry_offsets))
            acc["term_cols"].append(shift_col(p.term_cols))
            acc["term_vals"].append(p.term_vals)
            t_off += p.n_trees
            g_off += p.n_gates
            l_off += p.n_leaves
            k_off += p.n_registers
        for name, chunks in acc.items():
            value = np.concatenate(chunks) if name != "gate_child" else np.concatenate(chunks).reshape(-1, 2)
            if name.endswith("_offsets"):
                value = csr.offsets_from_lengths(value)
            setattr(out, name, value)
        out.output_tree = output_tree
        return out

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ValueError unless every index is in range and every tree is acyclic."""
        m, K, N, L = self.n_inputs, self.n_registers, self.n_gates, self.n_leaves
        T = self.n_trees

        def in_range(name, arr, lo, hi):
            arr = np.asarray(arr)
            if arr.size and (arr.min() < lo or arr.max() >= hi):
                raise ValueError(f"{name}: index out of range")

        def offsets_ok(name, offsets, rows, nnz):
            if (len(offsets) != rows + 1 or offsets[0] != 0 or offsets[-1] != nnz
                    or np.any(np.diff(offsets) < 0)):
                raise ValueError(f"{name}: malformed offsets")

        if len(self.output_tree) != self.n_outputs:
            raise ValueError("output_tree: wrong length")
        in_range("output_tree", self.output_tree, -1, T)  # -1: no tree, the output reads 0
        in_range("tree_root", self.tree_root, -L, N)
        for name, n in (("reg_tree", K), ("gate_tree", N), ("leaf_tree", L)):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: wrong length")
            in_range(name, getattr(self, name), 0, T)
        offsets_ok("reg_offsets", self.reg_offsets, K, len(self.reg_cols))
        offsets_ok("gate_offsets", self.gate_offsets, N, len(self.gate_cols))
        offsets_ok("leaf_offsets", self.leaf_offsets, L, len(self.entry_output))
        offsets_ok("entry_offsets", self.entry_offsets, len(self.entry_output), len(self.term_cols))
        for a, b in (("reg_cols", "reg_vals"), ("gate_cols", "gate_vals"), ("term_cols", "term_vals"),
                     ("entry_output", "entry_const")):
            if len(getattr(self, a)) != len(getattr(self, b)):
                raise ValueError(f"{a} and {b} differ in length")
        for name, n in (("reg_bias", K), ("gate_bias", N), ("gate_kind", N), ("gate_source", N),
                        ("leaf_row", L)):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: wrong length")
        if self.gate_child.shape != (N, 2):
            raise ValueError("gate_child: wrong shape")
        in_range("reg_cols", self.reg_cols, 0, m)
        in_range("gate_cols", self.gate_cols, 0, m + K)
        in_range("term_cols", self.term_cols, 0, m + K)
        in_range("gate_child", self.gate_child, -L, N)
        in_range("entry_output", self.entry_output, 0, self.n_outputs)
        for name in ("reg_vals", "reg_bias", "gate_vals", "gate_bias", "entry_const", "term_vals"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"{name}: not finite")
        # a register, gate or leaf entry may only read registers / outputs of its own tree
        gate_rows = csr.row_of_each(self.gate_offsets)
        reg_use = self.gate_cols >= m
        if np.any(self.reg_tree[self.gate_cols[reg_use] - m] != self.gate_tree[gate_rows[reg_use]]):
            raise ValueError("a gate reads a register of another tree")
        entry_leaf = csr.row_of_each(self.leaf_offsets)
        if np.any(self.output_tree[self.entry_output] != self.leaf_tree[entry_leaf]):
            raise ValueError("a leaf writes an output of another tree")
        children = self.gate_child[self.gate_child >= 0]
        parents = np.repeat(np.arange(N), 2)[(self.gate_child >= 0).ravel()]
        if np.any(self.gate_tree[children] != self.gate_tree[parents]):
            raise ValueError("a gate's child belongs to another tree")
        self.gate_levels()  # raises on a cycle

    # ------------------------------------------------------------------ structure
    def gate_levels(self) -> np.ndarray:
        """int64 [N]: longest number of gates above each reachable gate (-1 if unreachable)."""
        N = self.n_gates
        level = np.full(N, -1, np.int64)
        frontier = self.tree_root[self.tree_root >= 0]
        depth = 0
        while len(frontier):
            if depth > N:
                raise ValueError("the gates form a cycle")
            level[frontier] = depth
            nxt = self.gate_child[frontier].ravel()
            frontier = np.unique(nxt[nxt >= 0])
            depth += 1
        return level

    def depth(self) -> int:
        """Most gates on any root-to-leaf path (0 for a forest of leaves)."""
        levels = self.gate_levels()
        return int(levels.max()) + 1 if len(levels) and levels.max() >= 0 else 0

    # ------------------------------------------------------------------ evaluation (reference)
    def registers(self, active: np.ndarray) -> np.ndarray:
        """float64 [B, K]: every register on every input (active: int64 [B, w], -1 padded)."""
        B = len(active)
        x = _dense(active, self.n_inputs)
        out = np.repeat(self.reg_bias[None, :], B, axis=0)
        rows = csr.row_of_each(self.reg_offsets)
        if len(rows):
            np.add.at(out.T, rows, (x[:, self.reg_cols] * self.reg_vals).T)
        return out

    def walk(self, active: np.ndarray, with_ops: bool = False):
        """Read-out values y [B, n_out] (float64), and with `with_ops` the ops per input [B].

        The numpy reference evaluation. A tree none of whose weights reads an active feature
        ends where it ends on the all-zero input (computed once); the other (input, tree) pairs
        descend one gate level per iteration. Inputs: active features, int64 [B, w], -1 padded.
        """
        active = _as_active(active)
        derived = self._derived()
        step = max(1, WALK_CELLS // max(self.n_outputs, 1))      # bound memory: y is [B, n_out]
        parts = [self._walk_chunk(active[i:i + step], derived, with_ops)
                 for i in range(0, len(active), step)] or [self._walk_chunk(active, derived, with_ops)]
        if with_ops:
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        return np.concatenate(parts)

    def ops(self, active: np.ndarray) -> np.ndarray:
        """int64 [B]: operations on the path each input takes (see `walk`), without the
        [B, n_out] read-out, so it also suits forests with millions of outputs."""
        active = _as_active(active)
        derived = self._derived()
        step = max(1, WALK_CELLS // 4)
        parts = [self._chunk_ops(active[i:i + step], derived)[0]
                 for i in range(0, len(active), step)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def _walk_chunk(self, active, derived, with_ops):
        y = np.repeat(derived.base_y[None, :], len(active), axis=0)
        ops, (sample, tree, leaf, v) = self._chunk_ops(active, derived, with_ops)
        cleared_off, cleared = csr.gather_rows(derived.out_off, derived.out_ids, tree)
        y[np.repeat(sample, np.diff(cleared_off)), cleared] = 0.0
        entry, e_sample, value = self._leaf_values(leaf, sample, v)
        y[e_sample, self.entry_output[entry]] = value
        return (y, ops) if with_ops else y

    def _chunk_ops(self, active, derived, with_ops=True):
        """(ops per input or None, (sample, tree, leaf, v) of the touched pairs)."""
        sample, tree, leaf, pair_ops, v = self._walk_touched(active, derived, with_ops)
        ops = None
        if with_ops:
            ops = np.full(len(active), derived.base_ops.sum())
            np.add.at(ops, sample, pair_ops - derived.base_ops[tree])
        return ops, (sample, tree, leaf, v)

    def touched_per_feature(self) -> float:
        """Mean number of trees one active feature sends down a path of their own."""
        return len(self._derived().f_trees) / max(self.n_inputs, 1)

    def _derived(self) -> "_Derived":
        """What every walk needs from the arrays, recomputed only when they changed in place
        (a cheap fingerprint is compared once per public call)."""
        stamp = self._stamp()
        cached = getattr(self, "_derived_cache", None)
        if cached is None or cached.stamp != stamp:
            base_y, base_ops = self._baseline()
            f_off, f_trees = self._feature_trees()
            out_off, out_ids = self._tree_outputs()
            cached = _Derived(stamp, base_y, base_ops, f_off, f_trees, out_off, out_ids)
            self._derived_cache = cached
        return cached

    def _baseline(self):
        """(y at the all-zero input [n_out], ops of each tree at the all-zero input [T])."""
        zero = np.full((1, 1), -1, np.int64)
        trees = np.arange(self.n_trees, dtype=np.int64)
        leaf, ops, v = self._walk_pairs(np.zeros(self.n_trees, np.int64), trees, zero, True)
        y = np.zeros(self.n_outputs)
        entry, _, value = self._leaf_values(leaf, np.zeros(len(leaf), np.int64), v)
        y[self.entry_output[entry]] = value
        return y, ops

    def _tree_outputs(self):
        """CSR tree -> its outputs."""
        owned = np.flatnonzero(self.output_tree >= 0)
        order = owned[np.argsort(self.output_tree[owned], kind="stable")]
        counts = np.bincount(self.output_tree[owned], minlength=self.n_trees)
        return csr.offsets_from_lengths(counts), order

    def _feature_trees(self):
        """CSR feature -> trees with a register, gate or leaf term reading it."""
        m = self.n_inputs
        g_tree = self.gate_tree[csr.row_of_each(self.gate_offsets)]
        e_leaf = csr.row_of_each(self.leaf_offsets)
        t_tree = self.leaf_tree[e_leaf][csr.row_of_each(self.entry_offsets)]
        cols = np.concatenate([self.reg_cols, self.gate_cols, self.term_cols])
        trees = np.concatenate([self.reg_tree[csr.row_of_each(self.reg_offsets)], g_tree, t_tree])
        keep = cols < m
        pairs = np.unique(cols[keep] * max(self.n_trees, 1) + trees[keep])
        feats, trs = pairs // max(self.n_trees, 1), pairs % max(self.n_trees, 1)
        return csr.offsets_from_lengths(np.bincount(feats, minlength=m)), trs

    def _stamp(self) -> tuple:
        """A cheap fingerprint of every array, so caches notice arrays changed in place."""
        out = []
        for value in self.arrays().values():
            flat = np.asarray(value, dtype=np.float64).ravel()
            out += [flat.size, float(flat @ np.arange(1, flat.size + 1, dtype=np.float64)) if flat.size else 0.0]
        return tuple(out)

    def _walk_touched(self, active, derived, with_ops):
        """(sample, tree, leaf, ops, v) for every (input, tree) pair the input touches."""
        f_off, f_trees = derived.f_off, derived.f_trees
        rows, slots = np.nonzero(active >= 0)
        feats = active[rows, slots]
        t_off, trees = csr.gather_rows(f_off, f_trees, feats)
        samples = np.repeat(rows, np.diff(t_off))
        keys = np.sort(samples * max(self.n_trees, 1) + trees)
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys
        sample, tree = keys // max(self.n_trees, 1), keys % max(self.n_trees, 1)
        leaf, ops, v = self._walk_pairs(sample, tree, active, with_ops)
        return sample, tree, leaf, ops, v

    def _walk_pairs(self, sample, tree, active, with_ops):
        """(leaf id, ops, v) of each (input, tree) pair: the tree walked on that input."""
        m = self.n_inputs
        x = _dense(active, m)
        v = _Values(x, self.registers(active) if self.n_registers else None)
        ops = np.zeros(len(sample), np.int64)
        if with_ops and self.n_registers:
            r_off, r_ids = _group(self.reg_tree, self.n_trees)
            p_off, regs = csr.gather_rows(r_off, r_ids, tree)
            owner = np.repeat(np.arange(len(sample)), np.diff(p_off))
            n_terms = _row_active_terms(self.reg_offsets, self.reg_cols, regs, x, sample[owner])
            np.add.at(ops, owner, _affine_ops(n_terms, self.reg_bias[regs], 0))
        code = self.tree_root[tree].copy()
        pair = np.arange(len(sample))
        at_gate = code >= 0
        while at_gate.any():
            p = pair[at_gate]
            g = code[p]
            value, n_terms = _affine(self.gate_offsets, self.gate_cols, self.gate_vals,
                                     self.gate_bias, g, sample[p], v, m)
            if with_ops:
                ops[p] += _affine_ops(n_terms, self.gate_bias[g], self._mults(
                    self.gate_offsets, self.gate_cols, self.gate_vals, g)) + 1
            code[p] = self.gate_child[g, (value > 0).astype(np.int64)]
            at_gate = code >= 0
        leaf = -1 - code
        if with_ops:
            lo, hi = self.leaf_offsets[leaf], self.leaf_offsets[leaf + 1]
            entry = _expand(lo, hi)
            owner = np.repeat(pair, hi - lo)
            _, n_terms = _affine(self.entry_offsets, self.term_cols, self.term_vals,
                                 self.entry_const, entry, sample[owner], v, m)
            has_terms = (self.entry_offsets[entry + 1] - self.entry_offsets[entry]) > 0
            cost = _affine_ops(n_terms, self.entry_const[entry], self._mults(
                self.entry_offsets, self.term_cols, self.term_vals, entry)) + 1
            np.add.at(ops, owner[has_terms], cost[has_terms])
        return leaf, ops, v

    def _leaf_values(self, leaf, sample, v):
        """(entry ids, their input, their values) of the leaves reached."""
        lo, hi = self.leaf_offsets[leaf], self.leaf_offsets[leaf + 1]
        entry = _expand(lo, hi)
        e_sample = np.repeat(sample, hi - lo)
        value, _ = _affine(self.entry_offsets, self.term_cols, self.term_vals,
                           self.entry_const, entry, e_sample, v, self.n_inputs)
        return entry, e_sample, value

    def _mults(self, offsets, cols, vals, rows) -> np.ndarray:
        """Multiplications of rows `rows`: terms on registers with |w| != 1."""
        costly = ((cols >= self.n_inputs) & (np.abs(vals) != 1)).astype(np.int64)
        prefix = np.concatenate([[0], np.cumsum(costly)])
        return prefix[offsets[rows + 1]] - prefix[offsets[rows]]

    # ------------------------------------------------------------------ costs
    def max_ops(self, sparsity: Optional[int]) -> int:
        """An upper bound on ops per input over every input with at most `sparsity` active
        features (exact when every leaf is reachable, as in the compilers' trees)."""
        m = self.n_inputs
        k = m if sparsity is None else min(sparsity, m)
        reg_terms = np.minimum(np.diff(self.reg_offsets), k)
        reg_cost = _affine_ops(reg_terms, self.reg_bias, 0)
        tree_cost = np.bincount(self.reg_tree, weights=reg_cost, minlength=self.n_trees)
        g_terms = _row_terms_bound(self.gate_offsets, self.gate_cols, m, k)
        g_cost = _affine_ops(g_terms, self.gate_bias, self._mults(
            self.gate_offsets, self.gate_cols, self.gate_vals, np.arange(self.n_gates))) + 1
        e_terms = _row_terms_bound(self.entry_offsets, self.term_cols, m, k)
        e_cost = _affine_ops(e_terms, self.entry_const, self._mults(
            self.entry_offsets, self.term_cols, self.term_vals, np.arange(len(self.entry_output))))
        e_cost = np.where(np.diff(self.entry_offsets) > 0, e_cost + 1, 0)
        leaf_cost = np.bincount(csr.row_of_each(self.leaf_offsets), weights=e_cost,
                                minlength=self.n_leaves)
        below = np.zeros(self.n_gates)
        levels = self.gate_levels()
        for level in range(int(levels.max(initial=-1)), -1, -1):
            g = np.flatnonzero(levels == level)
            below[g] = g_cost[g] + _by_code(self.gate_child[g], below, leaf_cost).max(axis=1)
        root_cost = _by_code(self.tree_root, below, leaf_cost)
        return int(round(float((root_cost + tree_cost).sum())))

    def params(self) -> int:
        """Stored numbers the computation uses: nonzero weights and biases of registers and
        gates, leaf constants and terms (structure arrays such as child links not counted)."""
        return int(np.count_nonzero(self.reg_vals) + np.count_nonzero(self.reg_bias)
                   + np.count_nonzero(self.gate_vals) + np.count_nonzero(self.gate_bias)
                   + np.count_nonzero(self.entry_const) + np.count_nonzero(self.term_vals))


# ---------------------------------------------------------------------- helpers

@dataclass
class _Derived:
    """Per-forest data every walk uses (see Forest._derived)."""
    stamp: tuple
    base_y: np.ndarray          # read-out at the all-zero input [n_out]
    base_ops: np.ndarray        # ops of each tree at the all-zero input [T]
    f_off: np.ndarray           # CSR feature -> trees reading it
    f_trees: np.ndarray
    out_off: np.ndarray         # CSR tree -> its outputs
    out_ids: np.ndarray


def _by_code(codes: np.ndarray, gate_values: np.ndarray, leaf_values: np.ndarray) -> np.ndarray:
    """gate_values[code] for gate codes, leaf_values[-1 - code] for leaf codes."""
    out = np.zeros(codes.shape, dtype=np.result_type(gate_values, leaf_values))
    gates = codes >= 0
    out[gates] = gate_values[codes[gates]]
    out[~gates] = leaf_values[-1 - codes[~gates]]
    return out


def _as_active(active) -> np.ndarray:
    active = np.asarray(active, dtype=np.int64)
    return active.reshape(len(active), -1) if active.size or active.ndim == 2 else active.reshape(0, 1)


def _expand(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenation of the ranges [lo_i, hi_i)."""
    return csr.concat_ranges(lo, hi - lo)


def _group(owner: np.ndarray, n: int):
    """CSR n -> indices i with owner[i] == n."""
    order = np.argsort(owner, kind="stable")
    return csr.offsets_from_lengths(np.bincount(owner, minlength=n)), order


def _row_active_terms(offsets, cols, rows, x, samples) -> np.ndarray:
    """Terms of rows `rows` (over input features) that are active on inputs `samples`."""
    lo, hi = offsets[rows], offsets[rows + 1]
    idx = _expand(lo, hi)
    owner = np.repeat(np.arange(len(rows)), hi - lo)
    hit = x[samples[owner], cols[idx]]
    return np.bincount(owner[hit], minlength=len(rows))


def _dense(active: np.ndarray, m: int) -> np.ndarray:
    x = np.zeros((len(active), m + 1), dtype=bool)
    rows, slots = np.nonzero(active >= 0)
    x[rows, active[rows, slots]] = True
    return x[:, :m]


class _Values:
    """The vector v = [x, registers] of each input, without materialising it densely."""

    def __init__(self, x: np.ndarray, registers):
        self.x, self.registers, self.m = x, registers, x.shape[1]

    def at(self, samples: np.ndarray, cols: np.ndarray) -> np.ndarray:
        out = np.zeros(len(cols))
        feature = cols < self.m
        out[feature] = self.x[samples[feature], cols[feature]]
        if self.registers is not None and not feature.all():
            out[~feature] = self.registers[samples[~feature], cols[~feature] - self.m]
        return out


def _affine(offsets, cols, vals, bias, rows, samples, v, m):
    """(values, evaluated term counts) of the affine rows `rows` on inputs `samples`.

    Terms on input features count only when the feature is active (sparse evaluation)."""
    lo, hi = offsets[rows], offsets[rows + 1]
    counts = hi - lo
    total = int(counts.sum())
    value = bias[rows].astype(np.float64).copy()
    n_terms = np.zeros(len(rows), np.int64)
    if total:
        owner = np.repeat(np.arange(len(rows)), counts)
        idx = np.repeat(lo - np.cumsum(np.concatenate([[0], counts[:-1]])), counts) + np.arange(total)
        c = cols[idx]
        vals_at = v.at(samples[owner], c)
        np.add.at(value, owner, vals_at * vals[idx])
        evaluated = (c >= m) | (vals_at != 0)
        n_terms = np.bincount(owner[evaluated], minlength=len(rows))
    return value, n_terms


def _affine_ops(n_terms, bias, mults):
    """Additions (terms + nonzero bias - 1, at least 0) plus multiplications."""
    adds = np.maximum(n_terms + (np.asarray(bias) != 0) - 1, 0)
    return adds + mults


def _row_terms_bound(offsets, cols, m, k):
    """Per row: register terms plus min(input terms, k)."""
    rows = csr.row_of_each(offsets)
    n = len(offsets) - 1
    on_inputs = np.bincount(rows[cols < m], minlength=n)
    on_regs = np.bincount(rows[cols >= m], minlength=n)
    return on_regs + np.minimum(on_inputs, k)
