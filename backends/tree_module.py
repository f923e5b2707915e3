"""A conditional network (compiler/conditional/network.py) as a torch `nn.Module`, on CPU or CUDA.

`ConditionalModule` holds every array of the forest as a buffer and walks all (input, tree)
pairs together, one gate level per iteration, visiting only the trees an input touches.
Forwards: `forward` (0/1 features), `forward_active` (padded lists of active features),
`forward_delta` (baseline plus changed entries, for the exhaustive verifier).

Two walks, picked at construction (`walk="auto"`):

* fixed (backends/tree_walk.py): when every gate has at most `tree_walk.MAX_TERMS` input and
  register terms (tables, synthesised forests), the gates, leaves and tree outputs are padded
  into dense tables and every touched pair descends exactly `depth` levels with fixed-shape
  kernels: no host round trip per level (on CUDA one kernel sequence per level);
* general: ragged terms, live pairs compacted after every level (any forest).

`walk="fixed"` / `"general"` forces one (fixed raises ValueError outside the caps). With
`walk="auto"` on CPU a forest whose leaves are not padded keeps the general walk (measured
faster there); `walk_now` says which walk runs on the module's current device.
Why skipping untouched trees, and the fixed walk, are exact: docs/proofs/conditional.md
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .delta import DeltaResult, expand_slices, single_thread
from .hooks import HookedRootModule, HookPoint
from .tree_walk import FixedInputs, fixed_tables, leaf_outputs, touched, walk_to_leaves

MAX_PAIRS = 1 << 20      # (input, tree) pairs, or output entries, walked per chunk
DENSE_BITMAP = 1 << 24   # inputs x features of a chunk below which active sets are a bitmap
DELTA_OUTPUTS = 1 << 12  # more outputs: the verifier compares changes, not dense read-outs


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class ConditionalModule(HookedRootModule):
    """Torch evaluation of a `ConditionalNetwork`; see docs/proofs/conditional.md.

    Hook points: `hook_in` (the 0/1 features) and `hook_out` (the read-out values), so that
    `run_with_cache` / `run_with_hooks` work as on a `SupModule`. The tree walk reads table keys
    and compares them exactly: it has no gradient.

    Args:
        net: the conditional network; every array of its forest becomes a buffer.
        dtype: the float type to compute in (float64 by default, exact for table keys).
        device: where to put the buffers (default: CUDA when available, else the CPU).
        max_pairs: batches are cut so one chunk walks at most this many (input, tree) pairs.
        walk: "auto" (fixed-shape walk when the forest fits its caps, else general), "fixed"
            or "general"; the tables built are `walk_path`, the walk taken on the current
            device `walk_now`.
    """

    target = "conditional"

    def __init__(self, net, dtype: torch.dtype = torch.float64,
                 device: Optional[torch.device | str] = None, max_pairs: int = MAX_PAIRS,
                 walk: str = "auto"):
        super().__init__()
        f = net.forest
        self.net = net
        self.threshold = net.threshold
        self.n_inputs, self.n_outputs = f.n_inputs, f.n_outputs
        self.n_trees, self.n_registers = f.n_trees, f.n_registers
        self.depth = f.depth()
        self.max_pairs = max(1, int(max_pairs))
        for name, arr in f.arrays().items():
            kind = np.asarray(arr).dtype.kind
            self.register_buffer(name, torch.as_tensor(
                np.ascontiguousarray(arr), dtype=torch.long if kind in "iub" else dtype))
        self._derived(f, dtype)
        self.walk_path, self.fixed_leaves = self._fixed(f, dtype, walk)
        self.forced = walk != "auto"
        self._cache = {}
        self.hook_in = HookPoint()
        self.hook_out = HookPoint()
        self.to(device if device is not None else _default_device())
        self.setup()

    # ------------------------------------------------------------ construction
    def _derived(self, f, dtype) -> None:
        """Index maps: feature -> registers, feature -> trees, tree -> outputs, and each
        affine row's input terms as sorted keys row * m + feature."""
        m = f.n_inputs
        buf = lambda name, a, dt=torch.long: self.register_buffer(  # noqa: E731
            name, torch.as_tensor(np.ascontiguousarray(a), dtype=dt))
        reg_rows = _row_of_each(f.reg_offsets)
        order = np.argsort(f.reg_cols, kind="stable")
        buf("fr_feature", f.reg_cols[order])
        buf("fr_register", reg_rows[order])
        buf("fr_value", f.reg_vals[order], dtype)
        # trees that read each feature (registers, gate terms, leaf-entry terms)
        entry_leaf = _row_of_each(f.leaf_offsets)
        term_entry = _row_of_each(f.entry_offsets)
        gate_rows = _row_of_each(f.gate_offsets)
        g_in, t_in = f.gate_cols < m, f.term_cols < m
        feats = np.concatenate([f.reg_cols, f.gate_cols[g_in], f.term_cols[t_in]])
        trees = np.concatenate([f.reg_tree[reg_rows], f.gate_tree[gate_rows[g_in]],
                                f.leaf_tree[entry_leaf[term_entry[t_in]]]])
        pairs = np.unique(feats.astype(np.int64) * max(f.n_trees, 1) + trees.astype(np.int64))
        buf("ft_feature", pairs // max(f.n_trees, 1))
        buf("ft_tree", pairs % max(f.n_trees, 1))
        owned = np.flatnonzero(f.output_tree >= 0)
        order = owned[np.argsort(f.output_tree[owned], kind="stable")]
        buf("to_ptr", _offsets(np.bincount(f.output_tree[owned], minlength=f.n_trees)))
        buf("to_output", order)
        for prefix, offsets, cols, vals in (("g", f.gate_offsets, f.gate_cols, f.gate_vals),
                                            ("e", f.entry_offsets, f.term_cols, f.term_vals)):
            rows = _row_of_each(offsets)
            inp = cols < m
            # a row's terms on one feature merged: both lookup directions then agree
            keys, inverse = np.unique(rows[inp].astype(np.int64) * max(m, 1) + cols[inp],
                                      return_inverse=True)
            buf(f"{prefix}_in_key", keys)
            buf(f"{prefix}_in_val", np.bincount(inverse.reshape(-1), weights=vals[inp],
                                                minlength=len(keys)), dtype)
            counts = np.bincount(keys // max(m, 1), minlength=len(offsets) - 1)
            buf(f"{prefix}_in_count", counts)
            buf(f"{prefix}_in_ptr", _offsets(counts))
            reg_off = _offsets(np.bincount(rows[~inp], minlength=len(offsets) - 1))
            buf(f"{prefix}_reg_ptr", reg_off)
            buf(f"{prefix}_reg_col", cols[~inp] - m)
            buf(f"{prefix}_reg_val", vals[~inp], dtype)

    def _fixed(self, f, dtype, walk: str) -> tuple:
        """('fixed' or 'general', whether leaves are padded too); the padded tables as
        buffers when the fixed walk is taken."""
        if walk not in ("auto", "fixed", "general"):
            raise ValueError(f"walk must be 'auto', 'fixed' or 'general', not {walk!r}")
        tables = None if walk == "general" else fixed_tables(f)
        if tables is None:
            if walk == "fixed":
                raise ValueError("walk='fixed': a gate has too many terms for the padded tables")
            return "general", False
        self.gate_terms = tuple(int(v) for v in tables.pop("fw_gate_shape"))  # (registers, inputs)
        for name, arr in tables.items():
            self.register_buffer(name, torch.as_tensor(
                arr, dtype=torch.long if arr.dtype.kind in "iub" else dtype))
        return "fixed", "fw_leaf_entries" in tables

    def _apply(self, fn, *args, **kwargs):
        self._cache = {}  # the baseline follows the buffers' device and dtype
        return super()._apply(fn, *args, **kwargs)

    @property
    def walk_now(self) -> str:
        """The walk taken on the current device: 'fixed' or 'general'. With walk="auto" a CPU
        module whose leaves are not padded takes the general walk (measured faster there: it
        would build both input contexts); CUDA takes the fixed walk whenever it is built."""
        if self.walk_path == "fixed" and (self.forced or self.fixed_leaves
                                          or self.device.type != "cpu"):
            return "fixed"
        return "general"

    @property
    def all_pairs(self) -> bool:
        """Few trees (fixed walk): every (input, tree) pair is walked, no selection of the
        touched ones."""
        return self.n_trees > 0 and hasattr(self, "fw_tree_feats") and self.walk_now == "fixed"

    @property
    def device(self) -> torch.device:
        """Where the buffers are."""
        return self.tree_root.device

    @property
    def dtype(self) -> torch.dtype:
        """The float type the module computes in."""
        return self.gate_bias.dtype

    @property
    def prefers_delta(self) -> bool:
        """Many outputs: comparing the changed entries beats comparing dense read-outs."""
        return self.n_outputs > DELTA_OUTPUTS

    def output_names(self) -> list[str]:
        """Names of the outputs, in order (`y[3]`, ...)."""
        return self.net.output_names()

    def decide(self, values: torch.Tensor) -> torch.Tensor:
        """Output bits: read-out `values` above the threshold."""
        return values > self.threshold

    # ------------------------------------------------------------ inputs
    def _as_active(self, active) -> torch.Tensor:
        if not torch.is_tensor(active) and not isinstance(active, np.ndarray):
            rows = list(active)
            if rows and all(isinstance(r, (int, np.integer)) for r in rows):
                rows = [rows]
            width = max(1, max((len(r) for r in rows), default=0))
            active = np.full((len(rows), width), -1, np.int64)
            for i, r in enumerate(rows):
                active[i, :len(r)] = list(r)
        active = torch.as_tensor(active, dtype=torch.long, device=self.device)
        active = active[None, :] if active.dim() == 1 else active
        if active.numel() and bool(((active >= self.n_inputs) | (active < -1)).any()):  # 1 sync
            raise ValueError(f"active features must be in [0, {self.n_inputs}) or -1 (padding)")
        return active

    # ------------------------------------------------------------ forwards
    @torch.no_grad()
    def forward(self, x) -> torch.Tensor:
        """Read-out values [B, n_out] for 0/1 features x [B, m], through `hook_in` and
        `hook_out`."""
        x = self.hook_in(torch.as_tensor(x, device=self.device)) != 0
        rows, cols = torch.nonzero(x, as_tuple=True)
        counts = x.sum(dim=1)
        width = max(1, int(counts.max()) if len(counts) else 0)
        active = torch.full((x.shape[0], width), -1, dtype=torch.long, device=self.device)
        starts = torch.cumsum(counts, 0) - counts
        active[rows, torch.arange(len(rows), device=self.device) - starts[rows]] = cols
        return self.hook_out(self.forward_active(active))

    @torch.no_grad()
    def forward_active(self, active) -> torch.Tensor:
        """Read-out values [B, n_out] for padded active-feature lists [B, w] (-1 = none)."""
        active = self._as_active(active)
        B, n_out = active.shape[0], self.n_outputs
        flat = self.baseline().new_empty(B * n_out + 1)          # + one dump cell at the end
        y = flat[:-1].view(B, n_out)
        y.copy_(self.baseline().expand(B, -1))
        with single_thread(self.device):
            for lo, hi in self._chunks(active):
                s, out, val = self._changes(active[lo:hi])
                # padding cells of the fixed walk (output n_out) go to the dump cell
                flat[torch.where(out < n_out, (s + lo) * n_out + out, B * n_out)] = val
        return y

    @torch.no_grad()
    def forward_delta(self, active, lower=None, upper=None, queries=None) -> DeltaResult:
        """The baseline read-out plus, sorted by (row, output), the entries of touched trees.

        Without bounds an entry is returned where it differs from the baseline; with
        `lower`/`upper` (tensors over outputs) where value > upper or value <= lower.
        `queries` = (rows, outputs) asks for the exact value at those pairs."""
        active = self._as_active(active)
        n_out, base = max(self.n_outputs, 1), self.baseline()
        parts = []
        with single_thread(self.device):
            for lo, hi in self._chunks(active):
                s, out, val = self._changes(active[lo:hi])
                real = out < self.n_outputs                    # padding cells of the fixed walk
                if self.all_pairs:                             # only the trees touched
                    hit = touched(self, active[lo:hi])
                    real &= hit[s, self.output_tree[out.clamp(max=self.n_outputs - 1)]]
                parts.append(((s[real] + lo) * n_out + out[real], val[real]))
        keys = torch.cat([p[0] for p in parts]) if parts else self._empty(torch.long)
        vals = torch.cat([p[1] for p in parts]) if parts else self._empty(self.dtype)
        keys, order = torch.sort(keys)
        vals = vals[order]
        outs = keys % n_out
        if lower is None:
            keep = vals != base[outs]
        else:
            keep = (vals > upper[outs]) | (vals <= lower[outs])
        result = DeltaResult(active.shape[0], base, keys[keep] // n_out, outs[keep], vals[keep])
        if queries is not None:
            q_rows, q_outs = (torch.as_tensor(q, dtype=torch.long, device=self.device)
                              for q in queries)
            result.query_values = _lookup(keys, vals, q_rows * n_out + q_outs, base[q_outs])
        return result

    def baseline(self) -> torch.Tensor:
        """Read-out [n_out] of the all-zero input (every tree walked once; cached)."""
        if "base" not in self._cache:
            y = torch.zeros(self.n_outputs + 1, dtype=self.dtype, device=self.device)
            zero = torch.full((1, 1), -1, dtype=torch.long, device=self.device)
            with single_thread(self.device), torch.no_grad():
                for lo in range(0, self.n_trees, self.max_pairs):
                    tree = torch.arange(lo, min(lo + self.max_pairs, self.n_trees),
                                        device=self.device)
                    _, out, val = self._walk(zero, torch.zeros_like(tree), tree)
                    y[out] = val
            self._cache["base"] = y[:self.n_outputs]
        return self._cache["base"]

    # ------------------------------------------------------------ the walk
    def _chunks(self, active: torch.Tensor):
        """(lo, hi) sample ranges, each touching about `max_pairs` trees or output entries."""
        B = active.shape[0]
        if self.all_pairs:            # every pair walked: a fixed cost per input, no sync
            step = max(1, self.max_pairs // max(self.n_trees * (1 + self.fw_tree_outputs.shape[1])
                                                if self.fixed_leaves else
                                                self.n_trees + len(self.to_output), 1))
            return [(lo, min(lo + step, B)) for lo in range(0, B, step)]
        cost = self._cache.get("feature_cost")
        if cost is None:
            per_tree = 1 + (self.to_ptr[1:] - self.to_ptr[:-1])
            cost = torch.zeros(self.n_inputs + 1, dtype=torch.long, device=self.device)
            cost.index_add_(0, self.ft_feature, per_tree[self.ft_tree])
            self._cache["feature_cost"] = cost
        per_sample = 1 + cost[torch.where(active >= 0, active, self.n_inputs)].sum(dim=1)
        ends = torch.cumsum(per_sample, 0)
        chunk = ((ends - per_sample) // self.max_pairs).cpu().numpy()
        bounds = np.flatnonzero(np.diff(chunk)) + 1
        edges = [0, *bounds.tolist(), B]
        return [(lo, hi) for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]

    def _changes(self, active: torch.Tensor):
        """(sample, output, value) for every output of every tree the samples touch (the fixed
        walk adds padding cells with output n_out, and with `all_pairs` untouched trees)."""
        if self.all_pairs:
            B, T = active.shape[0], self.n_trees
            pairs = torch.arange(B * T, device=self.device)
            return self._walk(active, pairs // T, pairs % T)
        b_idx, slot = torch.nonzero(active >= 0, as_tuple=True)
        feats = active[b_idx, slot]
        lo = torch.searchsorted(self.ft_feature, feats)
        hi = torch.searchsorted(self.ft_feature, feats, right=True)
        which, entry = _expand_ranges(lo, hi)
        T = max(self.n_trees, 1)
        pairs = torch.unique(b_idx[which] * T + self.ft_tree[entry])
        return self._walk(active, pairs // T, pairs % T)

    def _walk(self, active: torch.Tensor, sample: torch.Tensor, tree: torch.Tensor):
        """Walk (sample, tree) pairs to their leaves; (sample, output, value) of the trees'
        outputs (0 unless the leaf writes them)."""
        if self.walk_now == "fixed":
            inputs = FixedInputs(self, active)
            leaf = walk_to_leaves(self, inputs, sample, tree)
            if self.fixed_leaves:
                return leaf_outputs(self, inputs, sample, tree, leaf)
            return self._leaf_outputs(_Inputs(self, active), sample, tree, leaf)
        ctx = _Inputs(self, active)
        code = self.tree_root[tree].clone()
        live = torch.nonzero(code >= 0, as_tuple=True)[0]
        for _ in range(self.depth + 1):
            if live.numel() == 0:
                break
            g = code[live]
            value = ctx.affine("g", self.gate_bias, g, sample[live])
            code[live] = self.gate_child[g, (value > 0).long()]
            live = live[code[live] >= 0]
        if live.numel():
            raise RuntimeError("the walk did not reach a leaf (the forest is not a tree)")
        return self._leaf_outputs(ctx, sample, tree, -1 - code)

    def _leaf_outputs(self, ctx: "_Inputs", sample, tree, leaf):
        """(sample, output, value) of every output of each pair's tree: 0, or the entry of
        the leaf reached (ragged expansion)."""
        which, pos = expand_slices(self.to_ptr, tree)
        out_s, out_o = sample[which], self.to_output[pos]
        y_keys = out_s * max(self.n_outputs, 1) + out_o
        which, entry = expand_slices(self.leaf_offsets, leaf)
        e_sample = sample[which]
        e_val = ctx.affine("e", self.entry_const, entry, e_sample)
        e_keys = e_sample * max(self.n_outputs, 1) + self.entry_output[entry]
        vals = torch.zeros(len(y_keys), dtype=self.dtype, device=self.device)
        order = torch.argsort(y_keys)
        pos = order[torch.searchsorted(y_keys[order], e_keys)]
        vals[pos] = e_val
        return out_s, out_o, vals

    def _empty(self, dtype) -> torch.Tensor:
        return torch.zeros(0, dtype=dtype, device=self.device)


class _Inputs:
    """One chunk of inputs: active features as sorted keys sample * m + feature, and the
    registers every sample changes (sorted keys sample * K + register, with their values)."""

    def __init__(self, module: ConditionalModule, active: torch.Tensor):
        self.module = module
        self.active = active
        self.m = max(module.n_inputs, 1)
        b_idx, slot = torch.nonzero(active >= 0, as_tuple=True)
        self.feats = active[b_idx, slot]
        self.keys, _ = torch.sort(b_idx * self.m + self.feats)
        self.bitmap = None        # few features: a dense 0/1 map makes lookups plain gathers
        if active.shape[0] * self.m <= DENSE_BITMAP:
            self.bitmap = torch.zeros(active.shape[0] * self.m, dtype=torch.bool,
                                      device=active.device)
            self.bitmap[self.keys] = True
        self.count = (active >= 0).sum(dim=1)
        # registers: bias + sum of the active features' columns
        lo = torch.searchsorted(module.fr_feature, self.feats)
        hi = torch.searchsorted(module.fr_feature, self.feats, right=True)
        which, entry = _expand_ranges(lo, hi)
        K = max(module.n_registers, 1)
        r_keys = b_idx[which] * K + module.fr_register[entry]
        self.r_keys, inverse = torch.unique(r_keys, return_inverse=True)
        self.r_vals = torch.zeros(len(self.r_keys), dtype=module.dtype, device=active.device)
        self.r_vals.index_add_(0, inverse, module.fr_value[entry])
        self.r_vals += module.reg_bias[self.r_keys % K]

    def registers(self, sample: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
        K = max(self.module.n_registers, 1)
        return _lookup(self.r_keys, self.r_vals, sample * K + reg, self.module.reg_bias[reg])

    def affine(self, prefix: str, bias: torch.Tensor, rows: torch.Tensor,
               sample: torch.Tensor) -> torch.Tensor:
        """bias[rows] + w_row . v(sample) for the gates ('g') or leaf entries ('e') `rows`."""
        mod = self.module
        value = bias[rows].clone()
        which, pos = expand_slices(getattr(mod, f"{prefix}_reg_ptr"), rows)
        if len(pos):
            reg_vals = self.registers(sample[which], getattr(mod, f"{prefix}_reg_col")[pos])
            value.index_add_(0, which, reg_vals * getattr(mod, f"{prefix}_reg_val")[pos])
        n_terms = getattr(mod, f"{prefix}_in_count")[rows]
        has = n_terms > 0
        if bool(has.any()):
            by_terms = has & (n_terms <= self.count[sample])
            self._terms_side(prefix, value, rows, sample, by_terms)
            self._active_side(prefix, value, rows, sample, has & ~by_terms)
        return value

    def _terms_side(self, prefix, value, rows, sample, sel) -> None:
        """Each selected row's input terms looked up among its sample's active features."""
        idx = torch.nonzero(sel, as_tuple=True)[0]
        if not len(idx):
            return
        mod, m = self.module, self.m
        keys, vals = getattr(mod, f"{prefix}_in_key"), getattr(mod, f"{prefix}_in_val")
        lo = getattr(mod, f"{prefix}_in_ptr")[rows[idx]]
        which, entry = _expand_ranges(lo, lo + getattr(mod, f"{prefix}_in_count")[rows[idx]])
        want = sample[idx][which] * m + keys[entry] % m
        hit = self.bitmap[want] if self.bitmap is not None else _member(self.keys, want)
        value.index_add_(0, idx[which[hit]], vals[entry[hit]])

    def _active_side(self, prefix, value, rows, sample, sel) -> None:
        """Each selected sample's active features looked up among its row's input terms."""
        idx = torch.nonzero(sel, as_tuple=True)[0]
        if not len(idx):
            return
        mod, m = self.module, self.m
        keys, vals = getattr(mod, f"{prefix}_in_key"), getattr(mod, f"{prefix}_in_val")
        feats = self.active[sample[idx]]                           # [n, w]
        slot_ok = feats >= 0
        want = rows[idx][:, None] * m + feats.clamp(min=0)
        pos = torch.searchsorted(keys, want.reshape(-1)).clamp(max=max(len(keys) - 1, 0))
        hit = (keys[pos] == want.reshape(-1)) & slot_ok.reshape(-1)
        owner = torch.arange(len(idx), device=keys.device).repeat_interleave(feats.shape[1])
        value.index_add_(0, idx[owner[hit]], vals[pos[hit]])


# ---------------------------------------------------------------------- helpers

def _row_of_each(offsets: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))


def _offsets(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _expand_ranges(lo: torch.Tensor, hi: torch.Tensor):
    """(which range, position) for every position of the ranges [lo[i], hi[i])."""
    counts = hi - lo
    total = int(counts.sum()) if len(counts) else 0
    which = torch.repeat_interleave(torch.arange(len(lo), device=lo.device), counts)
    offsets = torch.cumsum(counts, 0) - counts
    entry = lo[which] + (torch.arange(total, device=lo.device) - offsets[which])
    return which, entry


def _member(sorted_keys: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    if len(sorted_keys) == 0:
        return torch.zeros(len(query), dtype=torch.bool, device=query.device)
    pos = torch.searchsorted(sorted_keys, query).clamp(max=len(sorted_keys) - 1)
    return sorted_keys[pos] == query


def _lookup(sorted_keys, values, query, default) -> torch.Tensor:
    """values at `query` keys found in sorted_keys, else `default`."""
    out = default.clone()
    if len(sorted_keys) and len(query):
        pos = torch.searchsorted(sorted_keys, query).clamp(max=len(sorted_keys) - 1)
        hit = sorted_keys[pos] == query
        out[hit] = values[pos[hit]]
    return out
