"""Lookup tables as conditional trees: binary search on a key, or a reduced bit decision diagram.

`spec_from_table` reads a table node into a `TableSpec`; `key_search` builds a binary search
over the table key, `bit_diagram` a reduced decision diagram over single input bits, and
`compile_table` keeps the cheaper of the two (fewer operations on the worst input).

Construction: docs/proofs/conditional.md
"""

from __future__ import annotations

import numpy as np

from dsl import csr
from dsl.nodes import CARE, DEFAULT_CARE, DEFAULT_VALUES, FIRST, INPUTS, KEYS, VALUES

from .tree import BIT_TEST, KEY_SPLIT, Forest, leaf_code

MAX_KEY_BITS = 52   # float64 holds every integer key below 2^53 exactly
METHODS = ("auto", "key", "bits")


class TableSpec:
    """What one table tree must compute: rows, default, and which outputs read which bit."""

    def __init__(self, m, n_outputs, bits, keys, values, default, out_pos, out_bit):
        self.m, self.n_outputs = m, n_outputs
        self.bits = np.asarray(bits, np.int64)          # [w] input features, bit i of the key
        self.keys = np.asarray(keys, np.uint64)         # [R] sorted distinct
        self.values = np.asarray(values, bool)          # [R, c] (don't care stored as False)
        self.default = None if default is None else np.asarray(default, bool)  # [c] or None
        self.out_pos = np.asarray(out_pos, np.int64)    # outputs written by the tree
        self.out_bit = np.asarray(out_bit, np.int64)    # ... each reading this table bit

    @property
    def width(self) -> int:
        """Number of input bits w."""
        return len(self.bits)

    def patterns(self):
        """(pattern id per row [R], default pattern id or -1, unique patterns [P, q] bool).

        A pattern is the vector of the tree's output values at a leaf."""
        rows = self.values[:, self.out_bit]
        if self.default is not None:
            rows = np.concatenate([rows, self.default[self.out_bit][None, :]])
        uniq, inv = np.unique(rows, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        if len(uniq) == 0:                       # no rows and no default: one all-0 leaf
            uniq = np.zeros((1, rows.shape[1]), bool)
        if self.default is not None:
            return inv[:-1], int(inv[-1]), uniq
        return inv, -1, uniq


def spec_from_table(circuit, key: str, positions: np.ndarray) -> TableSpec | None:
    """The TableSpec of table node `key` for the outputs at `positions` (each driven by one of
    its bits), or None when the table's inputs are not distinct input features."""
    data = circuit.graph.nodes[key]
    bits = np.asarray(data[INPUTS], np.int64)
    if (bits >= circuit.n_inputs).any() or len(np.unique(bits)) != len(bits):
        return None
    values = data[VALUES] & data[CARE]
    default = None if not data[DEFAULT_CARE].any() else data[DEFAULT_VALUES] & data[DEFAULT_CARE]
    drivers = circuit.output_drivers[positions]
    return TableSpec(circuit.n_inputs, circuit.n_outputs, bits, data[KEYS], values, default,
                     positions, drivers - data[FIRST])


# ---------------------------------------------------------------------------- leaves

def _leaves(spec: TableSpec, uniq: np.ndarray, tree: int = 0) -> dict:
    """Leaf arrays: one leaf per distinct pattern; entries only for bits that are 1."""
    n_leaves, q = uniq.shape
    ones = uniq.astype(bool)
    counts = ones.sum(axis=1)
    leaf_of, slot = np.nonzero(ones)
    return {
        "leaf_tree": np.full(n_leaves, tree, np.int64),
        "leaf_offsets": csr.offsets_from_lengths(counts),
        "leaf_row": np.full(n_leaves, -1, np.int64),
        "entry_output": spec.out_pos[slot],
        "entry_const": np.ones(len(slot)),
        "entry_offsets": np.zeros(len(slot) + 1, np.int64),
        "term_cols": np.zeros(0, np.int64),
        "term_vals": np.zeros(0),
    }


def _forest(spec: TableSpec, root: int, gates: dict, leaves: dict, registers: dict | None) -> Forest:
    f = Forest(spec.m, spec.n_outputs)
    f.tree_root = np.array([root], np.int64)
    f.output_tree = np.full(spec.n_outputs, -1, np.int64)
    f.output_tree[spec.out_pos] = 0
    for name, value in {**gates, **leaves, **(registers or {})}.items():
        setattr(f, name, value)
    return f


# ---------------------------------------------------------------------------- key search

def key_search(spec: TableSpec) -> Forest | None:
    """Binary search on the key register; None when the key does not fit float64 exactly."""
    w = spec.width
    if w > MAX_KEY_BITS:
        return None
    row_pat, default_pat, uniq = spec.patterns()
    keys = spec.keys.astype(np.int64)
    if default_pat < 0:
        starts, piece_pat = keys, row_pat
    else:
        # pieces: each key, and the gap after each key (and before the first) when not empty
        gap_start = np.concatenate([[0], keys + 1])
        gap_end = np.concatenate([keys, [1 << w]])           # exclusive
        starts = np.concatenate([keys, gap_start[gap_end > gap_start]])
        pats = np.concatenate([row_pat, np.full(int((gap_end > gap_start).sum()), default_pat)])
        order = np.argsort(starts, kind="stable")
        starts, piece_pat = starts[order], pats[order]
    if len(starts) == 0:                         # no rows, default don't care: one leaf
        starts, piece_pat = np.zeros(1, np.int64), np.zeros(1, np.int64)
    # merge consecutive pieces with the same outputs
    keep = np.concatenate([[True], piece_pat[1:] != piece_pat[:-1]])
    starts, piece_pat = starts[keep], piece_pat[keep]
    root, gates = _bisect(starts, leaf_code(piece_pat), register_col=spec.m)
    registers = {
        "reg_tree": np.zeros(1, np.int64),
        "reg_offsets": np.array([0, w], np.int64),
        "reg_cols": spec.bits.copy(),
        "reg_vals": np.ldexp(1.0, np.arange(w)),
        "reg_bias": np.zeros(1),
    }
    return _forest(spec, root, gates, _leaves(spec, uniq), registers)


def _bisect(starts: np.ndarray, piece_code: np.ndarray, register_col: int):
    """A balanced search tree over pieces [starts[p], starts[p+1]) of the key line.

    Built level by level: a range of pieces [lo, hi) with more than one piece becomes the gate
    t - (starts[mid] - 1/2) > 0 with the left half [lo, mid) and the right half [mid, hi)."""
    n = len(starts)
    child_rows, child_side, child_code = [], [], []
    bias, source = [], []
    lo, hi = np.array([0]), np.array([n])
    parent, side = np.array([-1]), np.array([0])
    next_id, root = 0, None
    while len(lo):
        single = hi - lo == 1
        codes = np.empty(len(lo), np.int64)
        codes[single] = piece_code[lo[single]]
        multi = np.flatnonzero(~single)
        ids = next_id + np.arange(len(multi))
        codes[multi] = ids
        next_id += len(multi)
        mid = (lo[multi] + hi[multi] + 1) // 2
        bias.append(0.5 - starts[mid].astype(np.float64))
        source.append(mid)
        has_parent = parent >= 0
        if not has_parent.all():
            root = int(codes[~has_parent][0])
        child_rows.append(parent[has_parent])
        child_side.append(side[has_parent])
        child_code.append(codes[has_parent])
        lo, hi, parent, side = (np.concatenate([lo[multi], mid]), np.concatenate([mid, hi[multi]]),
                                np.concatenate([ids, ids]),
                                np.concatenate([np.zeros(len(ids), np.int64), np.ones(len(ids), np.int64)]))
    n_gates = next_id
    child = np.zeros((n_gates, 2), np.int64)
    child[np.concatenate(child_rows), np.concatenate(child_side)] = np.concatenate(child_code)
    gates = {
        "gate_tree": np.zeros(n_gates, np.int64),
        "gate_offsets": np.arange(n_gates + 1, dtype=np.int64),
        "gate_cols": np.full(n_gates, register_col, np.int64),
        "gate_vals": np.ones(n_gates),
        "gate_bias": np.concatenate(bias),
        "gate_child": child,
        "gate_kind": np.full(n_gates, KEY_SPLIT, np.int8),
        "gate_source": np.concatenate(source).astype(np.int64),
    }
    return root, gates


# ---------------------------------------------------------------------------- bit diagram

def bit_diagram(spec: TableSpec) -> Forest:
    """A reduced decision diagram on the table's bits (see docs/proofs/conditional.md).

    Built top-down one level at a time for all nodes at once (numpy), then reduced bottom-up."""
    w, n_rows = spec.width, len(spec.keys)
    row_pat, default_pat, uniq = spec.patterns()
    bits_of_row = ((spec.keys[:, None] >> np.arange(w, dtype=np.uint64)) & np.uint64(1)).astype(bool)
    cared = default_pat >= 0
    empty_code = int(leaf_code(default_pat if cared else 0))
    rows = np.arange(n_rows)
    node = np.zeros(n_rows, np.int64)                 # node (within the level) of each live row
    tested = np.zeros((1, w), bool)
    parent, side = np.array([-1]), np.array([0])      # where each node of the level hangs
    gate_bits, links, level_starts = [], [], []
    next_gate, root = 0, (empty_code if n_rows == 0 else None)
    while len(parent) and n_rows:
        n_nodes = len(parent)
        size = np.bincount(node, minlength=n_nodes)
        pmin = np.full(n_nodes, np.iinfo(np.int64).max)
        pmax = np.full(n_nodes, -1)
        np.minimum.at(pmin, node, row_pat[rows])
        np.maximum.at(pmax, node, row_pat[rows])
        uniform = pmin == pmax
        leaf = uniform & ((pmin == default_pat) | tested.all(axis=1)) if cared else uniform
        codes = np.where(leaf, leaf_code(pmin), 0)
        split = np.flatnonzero(~leaf)
        codes[split] = next_gate + np.arange(len(split))
        level_starts.append(next_gate)
        next_gate += len(split)
        if (parent < 0).any():
            root = int(codes[0])
        else:
            links.append((parent, side, codes))
        if not len(split):
            break
        ones = np.stack([np.bincount(node, weights=bits_of_row[rows, b], minlength=n_nodes)
                         for b in range(w)], axis=1)[split]
        balance = np.abs(2 * ones - size[split, None])
        balance[tested[split]] = np.inf
        bit = np.argmin(balance, axis=1)
        gate_bits.append(bit)
        gate_ids = codes[split]
        ones_at = ones[np.arange(len(split)), bit]
        counts = np.stack([size[split] - ones_at, ones_at], axis=1)      # rows per side
        has = counts > 0
        child_node = np.full((n_nodes, 2), -1, np.int64)
        child_node[split[:, None].repeat(2, 1)[has], np.tile([0, 1], (len(split), 1))[has]] = \
            np.arange(int(has.sum()))
        if cared or not has.all():
            empty = ~has
            links.append((np.repeat(gate_ids, 2).reshape(-1, 2)[empty],
                          np.tile([0, 1], (len(split), 1))[empty],
                          np.full(int(empty.sum()), empty_code, np.int64)))
        new_tested = np.repeat(tested[split], 2, axis=0).reshape(len(split), 2, w)
        new_tested[np.arange(len(split)), :, bit] = True
        bit_of_node = np.full(n_nodes, -1, np.int64)
        bit_of_node[split] = bit
        live = bit_of_node[node] >= 0
        rows, node = rows[live], node[live]
        sides = bits_of_row[rows, bit_of_node[node]].astype(np.int64)
        node = child_node[node, sides]
        parent = np.repeat(gate_ids, 2).reshape(-1, 2)[has]
        side = np.tile([0, 1], (len(split), 1))[has]
        tested = new_tested[has]
    child = np.zeros((next_gate, 2), np.int64)
    for p, s, c in links:
        child[p, s] = c
    bits = np.concatenate(gate_bits).astype(np.int64) if gate_bits else np.zeros(0, np.int64)
    root, bits, child = _reduce(root, bits, child, level_starts + [next_gate])
    n_gates = len(bits)
    gates = {
        "gate_tree": np.zeros(n_gates, np.int64),
        "gate_offsets": np.arange(n_gates + 1, dtype=np.int64),
        "gate_cols": spec.bits[bits],
        "gate_vals": np.ones(n_gates),
        "gate_bias": np.full(n_gates, -0.5),
        "gate_child": child,
        "gate_kind": np.full(n_gates, BIT_TEST, np.int8),
        "gate_source": bits,
    }
    return _forest(spec, root, gates, _leaves(spec, uniq), None)


def _reduce(root: int, bits: np.ndarray, child: np.ndarray, bounds: list):
    """OBDD-style reduction, one level at a time from the deepest: gates with the same bit and
    the same (reduced) children are shared, a gate whose two children are equal is replaced
    by that child. `bounds`: first gate id of every level (gate ids grow with depth)."""
    n = len(bits)
    canon = np.arange(n, dtype=np.int64)

    def remap(c):
        c = c.copy()
        c[c >= 0] = canon[c[c >= 0]]
        return c

    for lo, hi in reversed(list(zip(bounds[:-1], bounds[1:]))):
        if hi <= lo:
            continue
        ids = np.arange(lo, hi)
        child[ids] = remap(child[ids])
        same = child[ids, 0] == child[ids, 1]
        canon[ids[same]] = child[ids[same], 0]
        rest = ids[~same]
        if len(rest):
            keys = np.stack([bits[rest], child[rest, 0], child[rest, 1]], axis=1)
            _, first, inv = np.unique(keys, axis=0, return_index=True, return_inverse=True)
            canon[rest] = rest[first[inv.reshape(-1)]]
    root = int(remap(np.array([root]))[0])
    keep = np.zeros(n, bool)
    frontier = np.array([root]) if root >= 0 else np.zeros(0, np.int64)
    while len(frontier):
        keep[frontier] = True
        nxt = child[frontier].ravel()
        nxt = np.unique(nxt[nxt >= 0])
        frontier = nxt[~keep[nxt]]
    new_id = np.cumsum(keep) - 1
    child = child[keep]
    child[child >= 0] = new_id[child[child >= 0]]
    root = int(new_id[root]) if root >= 0 else root
    return root, bits[keep], child


# ---------------------------------------------------------------------------- choice

def compile_table(spec: TableSpec, method: str = "auto", sparsity=None) -> tuple[Forest, str]:
    """(forest of one tree, method used): the method with the fewest worst-case operations."""
    candidates = []
    if method in ("auto", "key"):
        forest = key_search(spec)
        if forest is not None:
            candidates.append((forest, "key"))
        elif method == "key":
            raise ValueError(f"a key of {spec.width} bits does not fit a float64 register "
                             f"(at most {MAX_KEY_BITS}); use the bit diagram")
    if method in ("auto", "bits"):
        candidates.append((bit_diagram(spec), "bits"))
    return min(candidates, key=lambda c: (c[0].max_ops(sparsity), c[0].params()))
