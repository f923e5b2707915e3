"""A compiled layered network as a real torch `nn.Module`, on CPU or CUDA, with hook points.

    model = SupModule(net)
    print(model)                                   # one SupLayer per layer: shapes and roles
    y = model(x)                                   # x: [B, m] features; differentiable
    y, cache = model.run_with_cache(x)             # every site (backends/hooks.py)
    model.forward_active([[3, 17]])                # fast inference on active-feature lists

Structure: `hook_in` (the first layer's input h_0: column `input_map[f]` holds feature f, a
column fed by several features holds their sum), `layers.{i}` (a `SupLayer` per layer,
read-out last, each with `hook_pre` = W h + b and `hook_post` = after the ReLU, equal to
`hook_pre` for a linear layer), `hook_out` (the read-out values; output i is 1 when above
`threshold`).

Each layer keeps its weights as they were compiled, COO entries (`rows`, `cols` buffers; `vals`,
`bias` parameters, `requires_grad=False` until asked for): every entry is one edge of the
construction with a known meaning, and verifiers read exactly these (`layers()`). How a layer
computes is derived from them and cached until they change (in place, or by `.to()`): a dense
matrix or a sparse CSR product chosen by measured speed (`backends/kernels.py`), and for
`forward_active` a gather of the weight columns of the active features.

`forward` is differentiable (inputs and, after `requires_grad_()`, weights) and runs the hooks;
`forward_active` and `forward_delta` are the inference paths (no gradients, no hooks).
Large batches are cut into chunks so that one chunk's widest activation stays below `max_cells`
numbers (hooks then run once per chunk; `run_with_cache` joins the chunks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from compiler.network import ROLE_NAMES, Layer, Network

from .delta import DeltaForward, DeltaResult
from .ground_truth import GroundTruth, ground_truth
from .hooks import HookedRootModule, HookPoint
from .kernels import LinearKernel, integer_row_bounds

DENSE_LIMIT = 1 << 22  # a float (non-integer) layer with at most this many cells runs dense
DELTA_WIDTH = 1 << 14  # layers wider than this make forward_active event-driven
SEQUENTIAL_LIMIT = 50_000_000  # to_sequential: most dense weights it builds


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class ModuleLayer:
    """One layer exactly as a module computes it: y = W h + b (then ReLU when `relu`), with W in
    COO form (`rows`, `cols`, `vals`) and `bias`, as tensors on the module's device in its dtype."""
    n_in: int
    n_out: int
    relu: bool
    rows: torch.Tensor
    cols: torch.Tensor
    vals: torch.Tensor
    bias: torch.Tensor

    def numpy(self) -> Layer:
        """The same layer as a float64 numpy `compiler.network.Layer` (the values the module
        holds in its dtype, converted exactly)."""
        get = lambda t: t.detach().cpu()  # noqa: E731
        return Layer(self.n_in, self.n_out, get(self.rows).numpy(), get(self.cols).numpy(),
                     get(self.vals).double().numpy(), get(self.bias).double().numpy(), self.relu)


def _state_key(*tensors) -> tuple:
    """Changes whenever one of the tensors is modified in place or replaced (moved, cast)."""
    return tuple((t._version, t.data_ptr(), t.dtype, t.device) for t in tensors)


def describe_layer(layer: Layer, readout: bool) -> str:
    """What a layer's neurons are, in words (`"hidden: 40 gate, 8 carry"`, `"read-out"`)."""
    if readout:
        return "read-out"
    if not layer.relu:
        return "linear code"
    if layer.role is None:
        return "hidden"
    roles, counts = np.unique(layer.role, return_counts=True)
    return "hidden: " + ", ".join(f"{c} {ROLE_NAMES.get(int(r), 'neuron')}"
                                  for r, c in zip(roles, counts))


class SupLayer(nn.Module):
    """One layer y = W h + b, then ReLU when `relu`, with hook points `hook_pre` and
    `hook_post`. Weights: COO `rows`, `cols` (buffers) and `vals`, `bias` (parameters).

    Args:
        layer: the compiled layer (float64 numpy).
        dtype: the float type to hold the weights in.
        readout: whether this is the network's read-out (for `print` only).
    """

    def __init__(self, layer: Layer, dtype: torch.dtype, readout: bool = False):
        super().__init__()
        self.n_in, self.n_out, self.relu = layer.n_in, layer.n_out, layer.relu
        self.what = describe_layer(layer, readout)
        self.register_buffer("rows", torch.as_tensor(layer.rows, dtype=torch.long))
        self.register_buffer("cols", torch.as_tensor(layer.cols, dtype=torch.long))
        self.vals = nn.Parameter(torch.as_tensor(layer.vals, dtype=dtype), requires_grad=False)
        self.bias = nn.Parameter(torch.as_tensor(layer.bias, dtype=dtype), requires_grad=False)
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()
        self._derived: dict = {}

    def extra_repr(self) -> str:
        return (f"in={self.n_in}, out={self.n_out}, {'relu' if self.relu else 'linear'}, "
                f"nnz={len(self.vals)}, {self.what}")

    def _cached(self, name: str, build):
        """A value derived from the weights, rebuilt when they change."""
        key = _state_key(self.rows, self.cols, self.vals, self.bias)
        hit = self._derived.get(name)
        if hit is None or hit[0] != key:
            hit = (key, build())
            self._derived[name] = hit
        return hit[1]

    def kernel(self) -> LinearKernel:
        """The inference kernel of this layer: dense or CSR, measured on first use when every
        layout gives the same bits (integer weights, `exact_sums`), else by a fixed rule (dense up
        to DENSE_LIMIT cells), so that a float network's outputs never depend on a timing."""
        def build():
            kind = None if self.exact_sums() else (
                "dense" if self.n_out * self.n_in <= DENSE_LIMIT else "csr")
            return LinearKernel(self.rows, self.cols, self.vals.detach(), self.bias.detach(),
                                self.n_out, self.n_in, kind=kind)
        return self._cached("kernel", build)

    def exact_sums(self) -> bool:
        """Whether W h + b is exact in the dtype, in any summation order, for every 0/1 (or
        small integer) input: integer weights and bias whose row sums of |w| plus |b| stay
        below the dtype's integer range (2^24 for float32)."""
        bounds = integer_row_bounds(self.rows, self.vals, self.bias, self.n_out)
        if bounds is None:
            return False
        row_l1, abs_bias = bounds
        limit = 2.0 / torch.finfo(self.vals.dtype).eps  # 2^24 for float32, 2^11 for float16
        return bool((row_l1 + abs_bias < limit).all())

    def weight(self) -> torch.Tensor:
        """W as a dense [n_out, n_in] tensor (differentiable in `vals`; duplicates add)."""
        w = torch.zeros(self.n_out, self.n_in, dtype=self.vals.dtype, device=self.vals.device)
        return w.index_put((self.rows, self.cols), self.vals, accumulate=True)

    def columns(self):
        """W by column (CSC): (pointers [n_in + 1], rows, values), for gathers of input columns."""
        def build():
            order = torch.argsort(self.cols * self.n_out + self.rows)
            cols, rows, vals = self.cols[order], self.rows[order], self.vals.detach()[order]
            ptr = torch.zeros(self.n_in + 1, dtype=torch.long, device=cols.device)
            ptr[1:] = torch.cumsum(torch.bincount(cols, minlength=self.n_in), 0)
            return ptr, rows, vals
        return self._cached("columns", build)

    def affine(self, h: torch.Tensor) -> torch.Tensor:
        """W h + b for a batch h [B, n_in]. Through the measured kernel, or through a
        differentiable product when a weight requires its gradient."""
        if torch.is_grad_enabled() and (self.vals.requires_grad or self.bias.requires_grad):
            if self.n_out * self.n_in <= LinearKernel.SMALL:
                return torch.addmm(self.bias, h, self.weight().t())
            w = torch.sparse_coo_tensor(torch.stack([self.rows, self.cols]), self.vals,
                                        (self.n_out, self.n_in), check_invariants=False)
            return torch.sparse.mm(w, h.t()).t() + self.bias
        return self.kernel()(h)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """The layer's output for h [B, n_in], through `hook_pre` and `hook_post`."""
        pre = self.hook_pre(self.affine(h))
        return self.hook_post(torch.relu(pre) if self.relu else pre)

    def view(self) -> ModuleLayer:
        """The layer as verifiers read it (`ModuleLayer`)."""
        return ModuleLayer(self.n_in, self.n_out, self.relu, self.rows, self.cols,
                           self.vals.detach(), self.bias.detach())


class LayerList(nn.ModuleList):
    """The layers, input first, read-out last. `layers[i]` is a `SupLayer`; calling
    `layers()` gives every layer as a `ModuleLayer`, the one way verifiers read weights."""

    def forward(self) -> list[ModuleLayer]:
        """Every layer as this module computes it (its device, its dtype)."""
        return [layer.view() for layer in self]


class SupModule(HookedRootModule):
    """A layered network (any target whose network is a `compiler.network.Network`) as a torch
    module (module docstring).

    Args:
        net: the layered network; its weights become the layers' parameters.
        dtype: the float type to compute in (float32 by default).
        device: where to put the weights (default: CUDA when available, else the CPU).
        max_cells: batches are cut so one chunk's widest activation has at most this many
            numbers.
    """

    def __init__(self, net: Network, dtype: torch.dtype = torch.float32,
                 device: Optional[torch.device | str] = None, max_cells: int = 1 << 24):
        super().__init__()
        self.net = net
        self.threshold = net.threshold
        self.max_cells = max_cells
        self.n_inputs = net.n_inputs
        self.register_buffer("input_map", torch.as_tensor(net.input_map, dtype=torch.long))
        self.hook_in = HookPoint()
        last = len(net.layers) - 1
        self.layers = LayerList(SupLayer(layer, dtype, readout=i == last)
                                for i, layer in enumerate(net.layers))
        self.hook_out = HookPoint()
        self._compiled: dict = {}
        self.to(device if device is not None else default_device())
        self.setup()

    # ------------------------------------------------------------ housekeeping
    def extra_repr(self) -> str:
        return (f"circuit={self.net.circuit_name or '?'!r}, target={self.net.target!r}, "
                f"inputs={self.n_inputs}, outputs={self.shapes[-1][0]}, "
                f"threshold={self.threshold}")

    @property
    def device(self) -> torch.device:
        """Where the weights are."""
        return self.input_map.device

    @property
    def dtype(self) -> torch.dtype:
        """The float type the module computes in."""
        return self.layers[0].bias.dtype

    @property
    def shapes(self) -> list[tuple[int, int, bool]]:
        """(n_out, n_in, relu) of every layer, input first."""
        return [(layer.n_out, layer.n_in, layer.relu) for layer in self.layers]

    def _weights_key(self) -> tuple:
        return _state_key(self.input_map, *(t for layer in self.layers
                                            for t in (layer.rows, layer.cols, layer.vals,
                                                      layer.bias)))

    def _chunk(self) -> int:
        widest = max(max(n_out, n_in) for n_out, n_in, _ in self.shapes)
        return max(1, self.max_cells // max(widest, 1))

    # ------------------------------------------------------------ differentiable forward
    def place_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """h_0 [B, n_in] for features x [B, m]: column input_map[f] holds feature f (a column
        several features feed holds their sum)."""
        n_in = self.layers[0].n_in
        if self._identity_map():
            return x
        h = torch.zeros(x.shape[0], n_in, dtype=x.dtype, device=x.device)
        return h.index_add(1, self.input_map, x)

    def _identity_map(self) -> bool:
        key = _state_key(self.input_map)
        hit = self._compiled.get("identity")
        if hit is None or hit[0] != key:
            m, n_in = len(self.input_map), self.layers[0].n_in
            same = m == n_in and bool(torch.equal(
                self.input_map, torch.arange(m, device=self.input_map.device)))
            hit = self._compiled["identity"] = (key, same)
        return hit[1]

    def forward(self, x) -> torch.Tensor:
        """Read-out values [B, n_outputs] for features x [B, m] (0/1, or any reals: the
        network is a piecewise-linear function), through every hook point."""
        x = torch.as_tensor(x, device=self.device)
        if x.dtype != self.dtype:
            x = x.to(self.dtype)
        return self._in_chunks(x, self._forward_chunk)

    def _batch_chunk(self) -> int:
        """Rows per chunk of `forward` / `forward_active`: the widest hidden activation of a
        chunk stays within `max_cells` (the input and the read-out are whole-batch anyway)."""
        hidden = [n_out for n_out, _, _ in self.shapes[:-1]] or [1]
        return max(1, self.max_cells // max(max(hidden), 1))

    def _in_chunks(self, batch: torch.Tensor, run) -> torch.Tensor:
        """run(batch) chunk by chunk, written into one output (no second copy of it)."""
        chunk = self._batch_chunk()
        if batch.shape[0] <= chunk:
            return run(batch)
        out = None
        for start in range(0, batch.shape[0], chunk):
            part = run(batch[start:start + chunk])
            if out is None:
                out = part.new_empty((batch.shape[0], part.shape[1]))
            out[start:start + part.shape[0]] = part
        return out

    def _forward_chunk(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hook_in(self.place_inputs(x))
        for layer in self.layers:
            h = layer(h)
        return self.hook_out(h)

    def pre_activation(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Layer i's pre-activation W h + b for a batch h [B, n_in], as `forward` computes it."""
        return self.layers[i].affine(h)

    # ------------------------------------------------------------ inference paths
    def _as_active(self, active) -> torch.Tensor:
        if not torch.is_tensor(active) and not isinstance(active, np.ndarray):
            rows = list(active)
            if rows and all(isinstance(r, (int, np.integer)) for r in rows):
                rows = [rows]  # one input given as a flat list of features
            active = _pad(rows)
        active = torch.as_tensor(active, dtype=torch.long, device=self.device)
        return active[None, :] if active.dim() == 1 else active

    @torch.no_grad()
    def forward_delta(self, active, lower=None, upper=None, queries=None) -> DeltaResult:
        """Read-out of padded active-feature lists [B, K] as the all-zero input's read-out plus
        the entries that differ: cost proportional to the weights the input touches.

        With `lower`/`upper` (tensors over outputs), only read-out entries above upper or at
        most lower are returned; `queries` (rows, outputs) asks for exact values there."""
        return self.delta_engine().run(self._as_active(active), lower, upper, queries)

    def delta_engine(self) -> DeltaForward:
        """The event-driven forward of this module (built on first use, rebuilt when the
        weights change or move)."""
        key = self._weights_key()
        hit = self._compiled.get("delta")
        if hit is None or hit[0] != key:
            hit = self._compiled["delta"] = (key, DeltaForward(self))
        return hit[1]

    @property
    def prefers_delta(self) -> bool:
        """Wide layers: the event-driven forward beats dense activations."""
        return max(n_out for n_out, _, _ in self.shapes) > DELTA_WIDTH

    @torch.no_grad()
    def forward_active(self, active) -> torch.Tensor:
        """Read-out values [B, n_outputs] for padded active-feature lists [B, K] (-1 = none);
        no hooks, no gradients (use `forward` for those)."""
        active = self._as_active(active)
        if self.prefers_delta:
            chunk = self._chunk()
            parts = [self.forward_delta(active[s:s + chunk]).dense()
                     for s in range(0, active.shape[0], chunk)]
            if not parts:
                return torch.zeros(0, self.shapes[-1][0], dtype=self.dtype, device=self.device)
            return parts[0] if len(parts) == 1 else torch.cat(parts)
        return self._in_chunks(active, lambda part: self._rest(self._first_layer_active(part), 1))

    def _rest(self, h: torch.Tensor, start: int, stop: Optional[int] = None) -> torch.Tensor:
        for layer in list(self.layers)[start:stop]:
            out = layer.kernel()(h)
            h = torch.relu(out) if layer.relu else out
        return h

    @torch.no_grad()
    def readout_input(self, active) -> torch.Tensor:
        """The activations the read-out reads [B, width] for padded active-feature lists
        [B, K]: the last hidden layer's output (h_0 for a network with no hidden layer)."""
        active = self._as_active(active)
        if len(self.layers) == 1:
            h = torch.zeros(active.shape[0], self.layers[0].n_in, dtype=self.dtype,
                            device=self.device)
            rows, slot = torch.nonzero(active >= 0, as_tuple=True)
            ones = torch.ones(len(rows), dtype=self.dtype, device=self.device)
            return h.index_put_((rows, self.input_map[active[rows, slot]]), ones, accumulate=True)
        return self._rest(self._first_layer_active(active), 1, len(self.layers) - 1)

    def _first_layer_active(self, active: torch.Tensor) -> torch.Tensor:
        """Layer 0's output for active-feature lists: the sum of the active features' weight
        columns (gathered whole from W^T when the layer is dense, else from its CSC form)."""
        first = self.layers[0]
        b_idx, slot = torch.nonzero(active >= 0, as_tuple=True)
        cols = self.input_map[active[b_idx, slot]]
        out = first.bias.detach().expand(active.shape[0], first.n_out).clone()
        kernel = first.kernel()
        if len(first.vals) * 4 > first.n_out * first.n_in and kernel.dense_fits:
            # a dense first layer (an input code, compiler/superposed/codes.py): whole columns
            out.index_add_(0, b_idx, kernel.dense_t()[cols])
            return torch.relu(out) if first.relu else out
        ptr, rows, vals = first.columns()
        starts, counts = ptr[cols], ptr[cols + 1] - ptr[cols]
        total = int(counts.sum())
        if total:
            which = torch.repeat_interleave(torch.arange(len(cols), device=self.device), counts)
            offsets = torch.cumsum(counts, 0) - counts
            entry = starts[which] + (torch.arange(total, device=self.device) - offsets[which])
            out.index_put_((b_idx[which], rows[entry]), vals[entry], accumulate=True)
        return torch.relu(out) if first.relu else out

    def decide(self, values: torch.Tensor) -> torch.Tensor:
        """Output bits: read-out values above the threshold."""
        return values > self.threshold

    def ground_truth(self, circuit=None) -> GroundTruth:
        """What every site carries and every neuron computes (`backends/ground_truth.py`),
        for the network this module was built from; `circuit` adds gate formulas to the
        neurons' meanings."""
        return ground_truth(self.net, circuit)

    # ------------------------------------------------------------ export
    def to_sequential(self, max_weights: int = SEQUENTIAL_LIMIT) -> nn.Sequential:
        """The same function as plain `nn.Linear` / `nn.ReLU` layers (dense weights, the input
        map folded into the first `Linear`), for tools that want nothing special.

        Raises:
            ValueError: the dense weights would exceed `max_weights` numbers.
        """
        dense = sum(n_out * n_in for n_out, n_in, _ in self.shapes)
        if dense > max_weights:
            raise ValueError(f"the dense form has {dense:,} weights, more than the "
                             f"{max_weights:,} to_sequential builds")
        parts = []
        with torch.no_grad():
            place = torch.zeros(self.layers[0].n_in, self.n_inputs, dtype=self.dtype,
                                device=self.device)
            place.index_put_((self.input_map, torch.arange(self.n_inputs, device=self.device)),
                             torch.ones(self.n_inputs, dtype=self.dtype, device=self.device),
                             accumulate=True)
            for i, layer in enumerate(self.layers):
                w = layer.weight()
                if i == 0:
                    w = w @ place
                linear = nn.Linear(w.shape[1], w.shape[0], dtype=self.dtype, device=self.device)
                linear.weight.copy_(w)
                linear.bias.copy_(layer.bias)
                parts.append(linear)
                if layer.relu:
                    parts.append(nn.ReLU())
        return nn.Sequential(*parts)


def _pad(rows) -> np.ndarray:
    """Padded int64 [B, K] (-1 = none) from a list of lists of active features."""
    rows = [list(r) for r in rows]
    out = np.full((len(rows), max(1, max((len(r) for r in rows), default=0))), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out
