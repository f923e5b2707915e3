"""The fixed-shape tree walk of `ConditionalModule` (issue 18): no host round trip per level.

The general walk (backends/tree_module.py) compacts the live (input, tree) pairs after every
gate level and expands each gate's ragged terms with data-dependent sizes; on CUDA every such
step waits for the device. When every gate has few terms (the common case: key-search and
bit-diagram tables have one term per gate, synthesised forests a handful), the forest is
padded once at construction (`fixed_tables`) into dense tables

    gate  g:  fw_gate_idx [N + 1, 2 + T_reg + T_in]  children, register cols, input cols
              fw_gate_w   [N + 1, 1 + T_reg + T_in]  bias, weights (padding: weight 0)
    leaf  l:  fw_leaf_entries [L + 1, E_max]         entry ids (padding: a dump entry E)
              fw_l_{in,reg}_{col,val,pos}            every term of the leaf's entries, with
                                                     the entry's position in the leaf
    tree  t:  fw_tree_outputs [T, O_max]             output ids (padding: dump column n_out)
    feature:  fw_fr_reg / fw_fr_val [m + 1, R]       registers it feeds (padding: register K)

and every pair is walked for exactly `depth` levels with
`code = where(code >= 0, child[gate, value > 0], code)`: a pair that has reached its leaf
keeps its code. Shapes depend only on the number of pairs, so the level loop is a fixed
sequence of kernels with no synchronisation. Padding terms have weight 0, so they add +-0.0.

Per-input context (`FixedInputs`), built once per chunk with fixed-shape kernels:

* feature membership: a dense 0/1 bitmap [B, m + 1] when small, else the sorted keys
  sample * (m + 1) + feature searched with `searchsorted` (fixed shape as well);
* registers: bias + scatter-add of the active features' register columns (padded
  feature -> register table), as a dense [B, K + 1] matrix when small, else sorted keys.

Exactness (docs/proofs/conditional.md): the fixed walk evaluates the same terms as the general
walk; only the order of the additions may differ, and only for rows with two or more non-zero
terms. Every compiler of this repository emits integer or half-integer weights and keys below
2^53, whose sums are exact in float64 in any order, and one-term gates (all gates of tables)
round identically (bias + w * v in both walks). `fixed_tables` returns None outside the caps:
the module then keeps the general walk.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

MAX_TERMS = 16         # input or register terms of one gate, padded
MAX_CELLS = 1 << 23    # cells of one padded table
PAD_SLACK = 4          # padded leaf / output tables at most 4x the ragged ones (+ slack)
MIN_CELLS = 1 << 12
MAX_REGISTERS = 256    # registers one feature feeds, padded
DENSE_CELLS = 1 << 24  # inputs x (features or registers) of a chunk below which maps are dense
DENSE_TREES = 4        # forests of at most this many trees walk every (input, tree) pair


# ---------------------------------------------------------------------- construction

def pad_rows(offsets, cols, vals, n_rows: int, pad_col: int, width_cap: int = MAX_TERMS):
    """CSR rows as dense (cols [n_rows + 1, W], vals [n_rows + 1, W]); row n_rows and every
    padding cell are (pad_col, 0.0). None when W > width_cap or the table is too large."""
    counts = np.diff(offsets).astype(np.int64)
    width = int(counts.max()) if len(counts) else 0
    if width > width_cap or (n_rows + 1) * width > MAX_CELLS:
        return None
    out_c = np.full((n_rows + 1, width), pad_col, np.int64)
    out_v = np.zeros((n_rows + 1, width), np.float64)
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), counts)
    slot = np.arange(len(cols), dtype=np.int64) - np.repeat(np.asarray(offsets[:-1], np.int64),
                                                            counts)
    out_c[rows, slot] = cols
    out_v[rows, slot] = vals
    return out_c, out_v


def _split_terms(offsets, cols, vals, m: int, n_rows: int, K: int, prefix: str) -> Optional[dict]:
    """A row table's input terms and register terms, each padded (see `pad_rows`)."""
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(offsets))
    out = {}
    for part, keep, shift, pad in (("in", cols < m, 0, 0), ("reg", cols >= m, m, K)):
        counts = np.bincount(rows[keep], minlength=n_rows)
        padded = pad_rows(_ptr(counts), cols[keep] - shift, vals[keep], n_rows, pad)
        if padded is None:
            return None
        out[f"{prefix}_{part}_col"], out[f"{prefix}_{part}_val"] = padded
    return out


def fixed_tables(f) -> Optional[dict]:
    """Padded arrays for the fixed-shape walk of Forest `f` (names fw_*), or None when a gate
    has more than MAX_TERMS input or register terms or a table exceeds MAX_CELLS.

    The leaf tables (fw_leaf_entries, fw_l_*, fw_tree_outputs, fw_entry_slot, fw_entry_const)
    are left out when they do not fit (`leaf_tables`); leaves are then expanded the general
    way. fw_gate_shape holds (T_reg, T_in); fw_tree_feats (few trees) feature -> trees."""
    m, K, N = f.n_inputs, f.n_registers, f.n_gates
    gates = _split_terms(f.gate_offsets, f.gate_cols, f.gate_vals, m, N, K, "g")
    regs = _feature_registers(f)
    if gates is None or regs is None:
        return None
    # one gather per level for the integers, one for the reals:
    # fw_gate_idx = [child 0, child 1, register cols, input cols], fw_gate_w = [bias, weights]
    child = np.concatenate([f.gate_child, [[-1, -1]]]).astype(np.int64)
    out = {"fw_gate_idx": np.hstack([child, gates["g_reg_col"], gates["g_in_col"]]),
           "fw_gate_w": np.hstack([np.append(f.gate_bias, 0.0)[:, None], gates["g_reg_val"],
                                   gates["g_in_val"]]),
           "fw_gate_shape": np.array([gates["g_reg_col"].shape[1], gates["g_in_col"].shape[1]]),
           **regs}
    if f.n_trees <= DENSE_TREES:
        out["fw_tree_feats"] = _feature_trees(f)
    leaves = leaf_tables(f)
    if leaves is not None:
        out.update(leaves)
    return out


def _feature_trees(f) -> np.ndarray:
    """bool [m + 1, T + 1]: does a register, gate or leaf term of tree t read feature f? (row m
    and column T: padding)."""
    m, T = f.n_inputs, f.n_trees
    out = np.zeros((m + 1, T + 1), bool)
    reg_rows = np.repeat(np.arange(f.n_registers), np.diff(f.reg_offsets))
    out[f.reg_cols, f.reg_tree[reg_rows]] = True
    gate_rows = np.repeat(np.arange(f.n_gates), np.diff(f.gate_offsets))
    g_in = f.gate_cols < m
    out[f.gate_cols[g_in], f.gate_tree[gate_rows[g_in]]] = True
    entry_leaf = np.repeat(np.arange(f.n_leaves), np.diff(f.leaf_offsets))
    term_entry = np.repeat(np.arange(len(f.entry_output)), np.diff(f.entry_offsets))
    t_in = f.term_cols < m
    out[f.term_cols[t_in], f.leaf_tree[entry_leaf[term_entry[t_in]]]] = True
    return out


def _feature_registers(f) -> Optional[dict]:
    """Padded feature -> (register, weight) table [m + 1, R]; row m (padding) is empty."""
    m, K = f.n_inputs, f.n_registers
    reg_rows = np.repeat(np.arange(K, dtype=np.int64), np.diff(f.reg_offsets))
    order = np.argsort(f.reg_cols, kind="stable")
    counts = np.bincount(f.reg_cols, minlength=m) if len(f.reg_cols) else np.zeros(m, np.int64)
    padded = pad_rows(_ptr(counts), reg_rows[order], f.reg_vals[order], m, K,
                      width_cap=MAX_REGISTERS)
    if padded is None:
        return None
    return {"fw_fr_reg": padded[0], "fw_fr_val": padded[1],
            "fw_reg_bias": np.append(f.reg_bias, 0.0)}


def leaf_tables(f) -> Optional[dict]:
    """Padded leaf -> entries, leaf -> terms (input and register terms of all its entries, with
    the entry's position in the leaf), tree -> outputs and each entry's slot among its tree's
    outputs; None when a padded leaf row costs more than PAD_SLACK x the mean ragged one (+16)
    or the output table more than PAD_SLACK x the ragged one."""
    m, K, T, n_out = f.n_inputs, f.n_registers, f.n_trees, f.n_outputs
    E, L = len(f.entry_output), f.n_leaves
    owned = np.flatnonzero(f.output_tree >= 0)
    per_tree = np.bincount(f.output_tree[owned], minlength=T)
    o_max = int(per_tree.max()) if T else 0
    per_leaf = np.diff(f.leaf_offsets)
    e_max = int(per_leaf.max()) if L else 0
    entry_leaf = np.repeat(np.arange(L, dtype=np.int64), per_leaf)
    term_entry = np.repeat(np.arange(E, dtype=np.int64), np.diff(f.entry_offsets))
    term_leaf = entry_leaf[term_entry]
    term_pos = term_entry - f.leaf_offsets[term_leaf]
    out = {}
    for part, keep, shift, pad in (("in", f.term_cols < m, 0, 0), ("reg", f.term_cols >= m, m, K)):
        ptr = _ptr(np.bincount(term_leaf[keep], minlength=L))
        padded = pad_rows(ptr, f.term_cols[keep] - shift, f.term_vals[keep], L, pad,
                          width_cap=MAX_CELLS)
        if padded is None:
            return None
        out[f"fw_l_{part}_col"], out[f"fw_l_{part}_val"] = padded
        out[f"fw_l_{part}_pos"] = pad_rows(ptr, term_pos[keep], term_pos[keep], L, e_max,
                                           width_cap=MAX_CELLS)[0]
    width = e_max + out["fw_l_in_col"].shape[1] + out["fw_l_reg_col"].shape[1]
    mean = (E + len(f.term_cols)) / max(L, 1)
    if (width > PAD_SLACK * mean + 16 or (L + 1) * width > MAX_CELLS
            or T * o_max > PAD_SLACK * len(owned) + MIN_CELLS or T * o_max > MAX_CELLS):
        return None
    order = owned[np.argsort(f.output_tree[owned], kind="stable")]
    tree_outputs = pad_rows(_ptr(per_tree), order, np.zeros(len(order)), T, n_out,
                            width_cap=max(o_max, 1))[0][:T]
    slot_of_output = np.full(n_out, o_max, np.int64)
    starts = np.repeat(_ptr(per_tree)[:-1], per_tree)
    slot_of_output[order] = np.arange(len(order)) - starts
    leaf_entries = pad_rows(f.leaf_offsets, np.arange(E, dtype=np.int64), np.zeros(E), L, E,
                            width_cap=max(e_max, 1))[0]
    return {**out, "fw_tree_outputs": tree_outputs, "fw_leaf_entries": leaf_entries,
            "fw_entry_slot": np.append(slot_of_output[f.entry_output], o_max).astype(np.int64),
            "fw_entry_const": np.append(f.entry_const, 0.0)}


def _ptr(counts) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


# ---------------------------------------------------------------------- one chunk of inputs

class FixedInputs:
    """Feature membership and register values of one chunk of inputs (padded [B, w] active
    lists), built and read with fixed-shape kernels only."""

    def __init__(self, module, active: torch.Tensor):
        B = active.shape[0]
        m, K = module.n_inputs, module.n_registers
        self.m1, self.k1 = m + 1, K + 1
        rows = torch.arange(B, device=active.device)[:, None]
        feat = torch.where(active >= 0, active, m)                      # m: padding
        feat = torch.cat([feat, feat.new_full((B, 1), m)], dim=1)      # never empty
        self.bitmap = self.keys = None
        if B * self.m1 <= DENSE_CELLS:
            self.bitmap = torch.zeros(B, self.m1, dtype=torch.bool, device=active.device)
            self.bitmap.scatter_(1, feat, True)
            self.bitmap = self.bitmap.reshape(-1)
        else:
            self.keys = torch.sort((rows * self.m1 + feat).reshape(-1))[0]
        self.reg_dense = self.reg_keys = self.reg_vals = None
        self.reg_bias = module.fw_reg_bias
        if K:
            self._registers(module, rows, feat)

    def _registers(self, module, rows, feat) -> None:
        """bias + the active features' columns, dense [B * (K + 1)] or as sorted keys."""
        B = feat.shape[0]
        reg = module.fw_fr_reg[feat].reshape(B, -1)                 # [B, w * R], K: padding
        val = module.fw_fr_val[feat].reshape(B, -1)
        reg = torch.cat([reg, reg.new_full((B, 1), self.k1 - 1)], dim=1)  # never empty
        val = torch.cat([val, val.new_zeros(B, 1)], dim=1)
        if B * self.k1 <= DENSE_CELLS:
            dense = module.fw_reg_bias.expand(B, -1).clone()
            dense.scatter_add_(1, reg, val)
            self.reg_dense = dense.reshape(-1)
            return
        keys, order = torch.sort((rows * self.k1 + reg).reshape(-1))
        vals = val.reshape(-1)[order]
        # a register read by several active features: its run of equal keys is summed, and
        # `searchsorted` (left) always lands on the run's first key
        first = torch.ones_like(keys, dtype=torch.bool)
        first[1:] = keys[1:] != keys[:-1]
        run = torch.cumsum(first.long(), 0) - 1
        summed = torch.zeros_like(vals).index_add_(0, run, vals)
        self.reg_keys = keys
        self.reg_vals = summed[run] + module.fw_reg_bias[keys % self.k1]

    def member(self, sample: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """bool [P, T]: is feature cols[p, t] active in input sample[p]?"""
        want = sample[:, None] * self.m1 + cols
        if self.bitmap is not None:
            return torch.take(self.bitmap, want)
        pos = torch.searchsorted(self.keys, want).clamp(max=len(self.keys) - 1)
        return self.keys[pos] == want

    def registers(self, sample: torch.Tensor, regs: torch.Tensor) -> torch.Tensor:
        """[P, T]: value of register regs[p, t] on input sample[p] (K: padding, 0)."""
        want = sample[:, None] * self.k1 + regs
        if self.reg_dense is not None:
            return torch.take(self.reg_dense, want)
        pos = torch.searchsorted(self.reg_keys, want).clamp(max=len(self.reg_keys) - 1)
        return torch.where(self.reg_keys[pos] == want, self.reg_vals[pos], self.reg_bias[regs])


# ---------------------------------------------------------------------- the walk

def walk_to_leaves(module, inputs: FixedInputs, sample: torch.Tensor,
                   tree: torch.Tensor) -> torch.Tensor:
    """Leaf ids of (sample, tree) pairs: exactly `module.depth` fixed-shape levels (every
    root-to-leaf path of a validated forest has at most that many gates)."""
    n_reg, n_in = module.gate_terms
    code = module.tree_root[tree]
    for _ in range(module.depth):
        gate = code.clamp(min=0)
        idx = module.fw_gate_idx.index_select(0, gate)    # row gathers: index_select is
        w = module.fw_gate_w.index_select(0, gate)        # about 2x faster than [] on CPU
        value = w[:, 0]
        if n_reg:
            regs = inputs.registers(sample, idx[:, 2:2 + n_reg])
            value = value + (w[:, 1:1 + n_reg] * regs).sum(dim=1)
        if n_in:
            hit = inputs.member(sample, idx[:, 2 + n_reg:])
            value = value + (hit.to(w.dtype) * w[:, 1 + n_reg:]).sum(dim=1)  # w * 0: +-0.0
        child = idx.gather(1, (value > 0).long()[:, None])[:, 0]
        code = torch.where(code >= 0, child, code)
    return -1 - code


def touched(module, active: torch.Tensor) -> torch.Tensor:
    """bool [B, T + 1]: which trees read an active feature of each input (forests of at most
    DENSE_TREES trees, whose pairs are all walked)."""
    feat = torch.where(active >= 0, active, module.n_inputs)
    return module.fw_tree_feats[feat].any(dim=1)


def leaf_outputs(module, inputs: FixedInputs, sample: torch.Tensor, tree: torch.Tensor,
                 leaf: torch.Tensor):
    """(sample, output, value), each [P * O_max], of every output of each pair's tree: 0, or
    the reached leaf's entry for it. Padding cells have output n_out (a dump column).

    An entry's value is its constant, plus its register terms, plus its input terms (the
    general walk's order), accumulated into its position among the leaf's entries."""
    entries = module.fw_leaf_entries.index_select(0, leaf)             # [P, E_max]
    P, e_max = entries.shape
    const = module.fw_entry_const[entries]
    e_val = torch.cat([const, const.new_zeros(P, 1)], dim=1)           # + a dump position
    if module.fw_l_reg_col.shape[1]:
        regs = inputs.registers(sample, module.fw_l_reg_col.index_select(0, leaf))
        e_val.scatter_add_(1, module.fw_l_reg_pos.index_select(0, leaf),
                           module.fw_l_reg_val.index_select(0, leaf) * regs)
    if module.fw_l_in_col.shape[1]:
        hit = inputs.member(sample, module.fw_l_in_col.index_select(0, leaf))
        e_val.scatter_add_(1, module.fw_l_in_pos.index_select(0, leaf),
                           hit.to(e_val.dtype) * module.fw_l_in_val.index_select(0, leaf))
    outputs = module.fw_tree_outputs[tree]                              # [P, O_max]
    vals = e_val.new_zeros(P, outputs.shape[1] + 1)
    vals.scatter_(1, module.fw_entry_slot[entries], e_val[:, :e_max])
    return (sample[:, None].expand_as(outputs).reshape(-1), outputs.reshape(-1),
            vals[:, :-1].reshape(-1))
