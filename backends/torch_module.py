"""A compiled network as a torch `nn.Module`, on CPU or CUDA.

Weights are buffers (COO rows / cols / values and biases per layer), so `.to(device)` moves
them and `state_dict()` saves them. Two forwards:

* `forward(x)`: x is a [B, m] 0/1 matrix; each layer is a dense matmul when its dense matrix is
  small, else a sparse CSR matmul.
* `forward_active(active)`: active is a padded [B, K] LongTensor of active features (-1 =
  none). The first layer adds the weight columns of the active features (a gather-and-sum of
  k columns, never an m-wide input), then the other layers run as in `forward`.

Large batches are cut into chunks so that one chunk's widest activation stays below
`max_cells` numbers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from compiler.network import Layer, Network

from .delta import DeltaForward, DeltaResult

DENSE_LIMIT = 1 << 22  # weights: a layer with at most this many dense entries is stored dense
DELTA_WIDTH = 1 << 14  # layers wider than this make forward_active event-driven


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


class SupModule(nn.Module):
    """A layered network (any target whose network is a `compiler.network.Network`) as a torch
    module: `forward` on 0/1 feature rows, `forward_active` on lists of active features,
    `forward_delta` event-driven, `layers()` for verifiers, `decide` for output bits.

    Args:
        net: the layered network; its weights become buffers.
        dtype: the float type to compute in (float32 by default).
        device: where to put the buffers (default: CUDA when available, else the CPU).
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
        self.shapes = []
        for i, layer in enumerate(net.layers):
            self.register_buffer(f"rows{i}", torch.as_tensor(layer.rows, dtype=torch.long))
            self.register_buffer(f"cols{i}", torch.as_tensor(layer.cols, dtype=torch.long))
            self.register_buffer(f"vals{i}", torch.as_tensor(layer.vals, dtype=dtype))
            self.register_buffer(f"bias{i}", torch.as_tensor(layer.bias, dtype=dtype))
            self.shapes.append((layer.n_out, layer.n_in, layer.relu))
        self._compiled = {}
        self.to(device if device is not None else default_device())

    # ------------------------------------------------------------ housekeeping
    def _apply(self, fn, *args, **kwargs):
        self._compiled = {}  # derived matrices follow the buffers' device and dtype
        return super()._apply(fn, *args, **kwargs)

    @property
    def device(self) -> torch.device:
        """Where the weights are."""
        return self.input_map.device

    @property
    def dtype(self) -> torch.dtype:
        """The float type the module computes in."""
        return self.bias0.dtype

    def layers(self) -> list[ModuleLayer]:
        """Every layer as this module computes it (on its device, in its dtype), input first,
        read-out last: the one way verifiers read a module's weights."""
        return [ModuleLayer(n_in, n_out, relu, *(getattr(self, f"{name}{i}")
                                                 for name in ("rows", "cols", "vals", "bias")))
                for i, (n_out, n_in, relu) in enumerate(self.shapes)]

    def _weight(self, i: int):
        """Layer i's weights as a dense [out, in] tensor or a sparse CSR tensor (cached)."""
        if i not in self._compiled:
            n_out, n_in, _ = self.shapes[i]
            rows, cols, vals = (getattr(self, f"{n}{i}") for n in ("rows", "cols", "vals"))
            if n_out * n_in <= DENSE_LIMIT:
                w = torch.zeros(n_out, n_in, dtype=vals.dtype, device=vals.device)
                w.index_put_((rows, cols), vals, accumulate=True)
            else:
                w = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (n_out, n_in),
                                        check_invariants=False)
                with warnings.catch_warnings():  # torch calls sparse CSR "beta"
                    warnings.simplefilter("ignore", UserWarning)
                    w = w.coalesce().to_sparse_csr()
            self._compiled[i] = w
        return self._compiled[i]

    def _columns(self):
        """Layer 0's weights by column (CSC): pointers, rows, values (cached)."""
        if "csc" not in self._compiled:
            n_out, n_in, _ = self.shapes[0]
            order = torch.argsort(self.cols0 * n_out + self.rows0)
            cols, rows, vals = self.cols0[order], self.rows0[order], self.vals0[order]
            counts = torch.bincount(cols, minlength=n_in)
            ptr = torch.zeros(n_in + 1, dtype=torch.long, device=cols.device)
            ptr[1:] = torch.cumsum(counts, 0)
            self._compiled["csc"] = (ptr, rows, vals)
        return self._compiled["csc"]

    # ------------------------------------------------------------ forward
    def pre_activation(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Layer i's pre-activation W h + b for a batch h [B, n_in], as `forward` computes it."""
        w = self._weight(i)
        if w.layout == torch.strided:
            return torch.addmm(getattr(self, f"bias{i}"), h, w.t())
        return torch.sparse.mm(w, h.t()).t() + getattr(self, f"bias{i}")

    def _layer(self, i: int, h: torch.Tensor) -> torch.Tensor:
        out = self.pre_activation(i, h)
        return torch.relu(out) if self.shapes[i][2] else out

    def _rest(self, h: torch.Tensor, start: int) -> torch.Tensor:
        for i in range(start, len(self.shapes)):
            h = self._layer(i, h)
        return h

    def _chunk(self) -> int:
        widest = max(max(n_out, n_in) for n_out, n_in, _ in self.shapes)
        return max(1, self.max_cells // max(widest, 1))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Read-out values [B, n_outputs] for 0/1 features x [B, m]."""
        x = torch.as_tensor(x, device=self.device).to(self.dtype)
        outs = []
        for start in range(0, x.shape[0], self._chunk()):
            part = x[start:start + self._chunk()]
            h = torch.zeros(part.shape[0], self.shapes[0][1], dtype=self.dtype, device=self.device)
            h[:, self.input_map] = part
            outs.append(self._rest(h, 0))
        return torch.cat(outs) if outs else torch.zeros(0, self.shapes[-1][0], dtype=self.dtype,
                                                        device=self.device)

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
        """The event-driven forward of this module (built on first use, cached until the module moves)."""
        if "delta" not in self._compiled:
            self._compiled["delta"] = DeltaForward(self)
        return self._compiled["delta"]

    @property
    def prefers_delta(self) -> bool:
        """Wide layers: the event-driven forward beats dense activations."""
        return max(n_out for n_out, _, _ in self.shapes) > DELTA_WIDTH

    @torch.no_grad()
    def forward_active(self, active) -> torch.Tensor:
        """Read-out values [B, n_outputs] for padded active-feature lists [B, K] (-1 = none)."""
        active = self._as_active(active)
        if self.prefers_delta:
            return torch.cat([self.forward_delta(active[s:s + self._chunk()]).dense()
                              for s in range(0, active.shape[0], self._chunk())])
        outs = []
        for start in range(0, active.shape[0], self._chunk()):
            outs.append(self._rest(self._first_layer_active(active[start:start + self._chunk()]), 1))
        return torch.cat(outs) if outs else torch.zeros(0, self.shapes[-1][0], dtype=self.dtype,
                                                        device=self.device)

    def readout_input(self, active: torch.Tensor) -> torch.Tensor:
        """The activations the read-out reads [B, width] for padded active-feature lists
        [B, K]: the last hidden layer's output (the 0/1 input columns for a network with no
        hidden layer)."""
        active = self._as_active(active)
        if len(self.shapes) == 1:
            h = torch.zeros(active.shape[0], self.shapes[0][1], dtype=self.dtype,
                            device=self.device)
            rows, slot = torch.nonzero(active >= 0, as_tuple=True)
            h[rows, self.input_map[active[rows, slot]]] = 1
            return h
        h = self._first_layer_active(active)
        for i in range(1, len(self.shapes) - 1):
            h = self._layer(i, h)
        return h

    def _first_layer_active(self, active: torch.Tensor) -> torch.Tensor:
        n_out, n_in, relu = self.shapes[0]
        b_idx, slot = torch.nonzero(active >= 0, as_tuple=True)
        cols = self.input_map[active[b_idx, slot]]
        if len(self.vals0) * 4 > n_out * n_in and n_out * n_in <= DENSE_LIMIT:
            # a dense first layer (an input code, compiler/superposed/codes.py): gather whole columns
            if "dense_t" not in self._compiled:
                self._compiled["dense_t"] = self._weight(0).t().contiguous()
            out = self.bias0.expand(active.shape[0], n_out).clone()
            out.index_add_(0, b_idx, self._compiled["dense_t"][cols])
            return torch.relu(out) if relu else out
        ptr, rows, vals = self._columns()
        starts, counts = ptr[cols], ptr[cols + 1] - ptr[cols]
        total = int(counts.sum())
        out = self.bias0.expand(active.shape[0], n_out).clone()
        if total:
            which = torch.repeat_interleave(torch.arange(len(cols), device=self.device), counts)
            offsets = torch.cumsum(counts, 0) - counts
            entry = starts[which] + (torch.arange(total, device=self.device) - offsets[which])
            out.index_put_((b_idx[which], rows[entry]), vals[entry], accumulate=True)
        return torch.relu(out) if relu else out

    def decide(self, values: torch.Tensor) -> torch.Tensor:
        """Output bits: read-out values above the threshold."""
        return values > self.threshold


def _pad(rows) -> np.ndarray:
    """Padded int64 [B, K] (-1 = none) from a list of lists of active features."""
    rows = [list(r) for r in rows]
    out = np.full((len(rows), max(1, max((len(r) for r in rows), default=0))), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out
