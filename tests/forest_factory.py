"""Random and hand-built conditional networks for tests (no compiler needed).

`random_forest` draws trees with registers, gates over inputs and registers, and leaves whose
entries have constants and terms; weights are small integers and biases half-integers, so every
gate value is exact in float32 and float64 and never 0 (no tie for rounding to break).
`key_table_forest` is one binary-search tree over a register key = sum_i 2^i x_i, the shape the
table compiler produces.
"""

from __future__ import annotations

import numpy as np

from compiler.conditional import ConditionalNetwork
from compiler.conditional.tree import BIT_TEST, KEY_SPLIT, Forest


class _Builder:
    def __init__(self, m: int, n_out: int):
        self.m, self.n_out = m, n_out
        self.lists = {k: [] for k in ("tree_root", "reg_tree", "reg_len", "reg_cols", "reg_vals",
                                      "reg_bias", "gate_tree", "gate_len", "gate_cols",
                                      "gate_vals", "gate_bias", "gate_child", "gate_kind",
                                      "gate_source", "leaf_tree", "leaf_len", "leaf_row",
                                      "entry_output", "entry_const", "entry_len", "term_cols",
                                      "term_vals")}
        self.output_tree = np.zeros(n_out, np.int64)

    def register(self, tree, cols, vals, bias) -> int:
        L = self.lists
        L["reg_tree"].append(tree), L["reg_len"].append(len(cols))
        L["reg_cols"].extend(cols), L["reg_vals"].extend(vals), L["reg_bias"].append(bias)
        return len(L["reg_tree"]) - 1

    def gate(self, tree, cols, vals, bias, kind=BIT_TEST) -> int:
        L = self.lists
        L["gate_tree"].append(tree), L["gate_len"].append(len(cols))
        L["gate_cols"].extend(cols), L["gate_vals"].extend(vals), L["gate_bias"].append(bias)
        L["gate_child"].append([0, 0]), L["gate_kind"].append(kind), L["gate_source"].append(-1)
        return len(L["gate_tree"]) - 1

    def leaf(self, tree, entries, row=-1) -> int:
        """entries: [(output, const, cols, vals)]; returns the leaf's node code."""
        L = self.lists
        L["leaf_tree"].append(tree), L["leaf_len"].append(len(entries)), L["leaf_row"].append(row)
        for out, const, cols, vals in entries:
            L["entry_output"].append(out), L["entry_const"].append(const)
            L["entry_len"].append(len(cols)), L["term_cols"].extend(cols)
            L["term_vals"].extend(vals)
        return -len(L["leaf_tree"])

    def forest(self) -> Forest:
        L = self.lists
        off = lambda name: np.concatenate([[0], np.cumsum(L[name])]).astype(np.int64)  # noqa: E731
        i64 = lambda name: np.asarray(L[name], np.int64)  # noqa: E731
        f64 = lambda name: np.asarray(L[name], np.float64)  # noqa: E731
        return Forest(
            self.m, self.n_out, tree_root=i64("tree_root"), output_tree=self.output_tree,
            reg_tree=i64("reg_tree"), reg_offsets=off("reg_len"), reg_cols=i64("reg_cols"),
            reg_vals=f64("reg_vals"), reg_bias=f64("reg_bias"), gate_tree=i64("gate_tree"),
            gate_offsets=off("gate_len"), gate_cols=i64("gate_cols"), gate_vals=f64("gate_vals"),
            gate_bias=f64("gate_bias"),
            gate_child=np.asarray(L["gate_child"], np.int64).reshape(-1, 2),
            gate_kind=np.asarray(L["gate_kind"], np.int8), gate_source=i64("gate_source"),
            leaf_tree=i64("leaf_tree"), leaf_offsets=off("leaf_len"), leaf_row=i64("leaf_row"),
            entry_output=i64("entry_output"), entry_const=f64("entry_const"),
            entry_offsets=off("entry_len"), term_cols=i64("term_cols"), term_vals=f64("term_vals"))


def random_forest(rng, m: int = 12, n_out: int = 9, n_trees: int = 4, max_depth: int = 4) -> Forest:
    b = _Builder(m, n_out)
    owner = rng.integers(0, n_trees, size=n_out)
    b.output_tree = owner.astype(np.int64)
    for t in range(n_trees):
        regs = [b.register(t, *_terms(rng, list(range(m)), 1, 4, (1, 2, 4, -1)),
                           float(rng.choice([0.0, -1.0, 2.0])))
                for _ in range(int(rng.integers(0, 3)))]
        cols = list(range(m)) + [m + r for r in regs]
        outs = np.flatnonzero(owner == t)

        def node(depth):
            if depth >= max_depth or rng.random() < 0.25:
                chosen = [o for o in outs if rng.random() < 0.7]
                return b.leaf(t, [(int(o), float(rng.choice([0.0, 1.0, 0.75])),
                                   *_terms(rng, cols, 0, 2, (1, -1, 2))) for o in chosen])
            g = b.gate(t, *_terms(rng, cols, 1, 4, (1, -1, 2, -3)), float(rng.integers(-3, 3)) + 0.5)
            left, right = node(depth + 1), node(depth + 1)
            b.lists["gate_child"][g] = [left, right]
            return g

        b.lists["tree_root"].append(node(0))
    return b.forest()


def _terms(rng, cols, lo, hi, values):
    n = int(rng.integers(lo, hi + 1))
    chosen = rng.choice(cols, size=min(n, len(cols)), replace=False) if n else []
    return [int(c) for c in chosen], [float(rng.choice(values)) for _ in chosen]


def key_table_forest(m: int, keys, values, out_bits=None) -> Forest:
    """One tree: register t = sum_i 2^i x_i over features 0..m-1, binary search on the sorted
    `keys` (gate t - (key - 1/2)), a leaf per row writing constant 1 for its 1 bits.
    Inputs off the table reach the leaf of the nearest row below (a don't-care default)."""
    keys = np.asarray(keys, np.int64)
    values = np.asarray(values, bool)
    n_out = values.shape[1]
    b = _Builder(m, n_out)
    reg = b.register(0, list(range(m)), [float(1 << i) for i in range(m)], 0.0)

    def node(lo, hi):
        if hi - lo == 1:
            return b.leaf(0, [(int(o), 1.0, [], []) for o in np.flatnonzero(values[lo])], row=lo)
        mid = (lo + hi) // 2
        g = b.gate(0, [m + reg], [1.0], -(float(keys[mid]) - 0.5), kind=KEY_SPLIT)
        left, right = node(lo, mid), node(mid, hi)
        b.lists["gate_child"][g] = [left, right]
        return g

    b.lists["tree_root"].append(node(0, len(keys)))
    return b.forest()


def network(forest: Forest, sparsity=None, names=None) -> ConditionalNetwork:
    """A ConditionalNetwork with inputs x[m] and outputs y[n_out] (or the given names)."""
    m, n = forest.n_inputs, forest.n_outputs
    idx = lambda k: np.arange(k, dtype=np.int64)[:, None]  # noqa: E731
    return ConditionalNetwork(m, forest, output_families=[(names or "y", idx(n))],
                              input_families=[("x", idx(m))], sparsity=sparsity,
                              circuit_name="handmade")
