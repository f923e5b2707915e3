"""Exhaustive check as dense tensor arithmetic on the device, exact in low precision.

For layered networks whose weights and biases are all integers, on a sparse domain, where every
output is a threshold gate over distinct input features (`compiler.superposed.superposable`:
and, or, atleast, copies), this path evaluates every input of the domain with plain tensor
operations in large blocks: the first layer as a gather-and-sum of the active features' weight
rows, every later layer as one matrix product (tensor cores on a GPU), and the specification as
per-output operand counts (a scatter of the active features' outputs) compared with the
thresholds. Nothing leaves the device but the counts, the margin and the failing rows.

Exactness argument (`exactness`): inputs are 0/1 with at most K active, weights and biases are
integers, so every value and every partial sum of every layer, in any summation order, is an
integer bounded by the interval bound B (per neuron |b| + sum |w| * upper(input), the first
layer with the K largest weights). A floating-point format with p significand bits represents
every integer up to 2^p, so when B <= 2^p each addition is exact and the computed values are the
exact values: float16 (p = 11) when B <= 2,048 (tensor cores on CUDA), float32 (p = 24, TF32
off) when B <= 2^24, float64 otherwise up to 2^53, refused beyond. The report gives B, the
dtype and the argument. The module itself may compute in another dtype: its own rounding is
covered by `verify.exhaustive.rounding_slack` exactly as on the other paths.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from backends import SupModule
from compiler.superposed import superposable
from dsl import csr
from dsl.domain import SparseDomain

from .compare import decision_threshold

SIGNIFICAND = {torch.float16: 11, torch.float32: 24, torch.float64: 53}
CELLS = {"cuda": 1 << 28, "cpu": 1 << 22}     # read-out values per block, by device type
MAX_DENSE_WEIGHTS = 1 << 31                    # dense layer entries this path stores at most


@contextmanager
def _no_tf32():
    """TF32 off for the block (it rounds float32 operands to 10 significand bits): the
    exactness argument for float32 needs true float32 products."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


@dataclass(frozen=True)
class Exactness:
    """Why the block arithmetic is exact: the bound on every partial sum and the dtype."""
    bound: int
    dtype: torch.dtype
    significand_bits: int

    def as_dict(self) -> dict:
        """The argument as a JSON-ready dict (report field `exactness`)."""
        name = str(self.dtype).replace("torch.", "")
        return {"max_partial_sum": self.bound, "compute_dtype": name,
                "exact_integers_up_to": 1 << self.significand_bits,
                "argument": f"inputs 0/1, integer weights and biases: every partial sum of "
                            f"every layer is an integer of magnitude at most {self.bound:,}, "
                            f"and {name} represents every integer up to "
                            f"2^{self.significand_bits}, so each sum is exact in any order"}


def tensor_applies(module, circuit, domain) -> str:
    """'' when the tensor path applies to (module, circuit, domain), else why not."""
    if not isinstance(domain, SparseDomain):
        return "the domain is a table's rows"
    if not isinstance(module, SupModule):
        return "not a layered network"
    input_map = module.input_map.detach().cpu().numpy()
    if len(np.unique(input_map)) != len(input_map):
        return "inputs do not map to distinct columns"
    for layer in module.layers():
        for t in (layer.vals, layer.bias):
            if not bool(torch.all(t == torch.round(t))):
                return "weights are not all integers"
        if layer.n_out * layer.n_in > MAX_DENSE_WEIGHTS:
            return f"a layer of {layer.n_out:,} x {layer.n_in:,} is too large to store dense"
    positions, _ = superposable(circuit)
    if len(positions) != circuit.n_outputs:
        return "some outputs are not threshold gates over distinct input features"
    return ""


def partial_sum_bound(module, sparsity: int) -> int:
    """B: a bound on |every partial sum| of every layer over inputs with <= sparsity active."""
    layers = [layer.numpy() for layer in module.layers()]
    input_map = module.input_map.detach().cpu().numpy()
    first = layers[0]
    w = np.zeros((first.n_out, first.n_in))
    np.add.at(w, (first.rows, first.cols), np.abs(first.vals))
    w = w[:, input_map]                               # |weight| of feature f into neuron j
    k = min(sparsity, w.shape[1])
    top = -np.sort(-w, axis=1)[:, :k].sum(axis=1) if k else np.zeros(first.n_out)
    magnitude = np.abs(first.bias) + top
    bound = float(magnitude.max(initial=0.0))
    upper = magnitude
    for layer in layers[1:]:                          # |h| <= magnitude, ReLU or not
        magnitude = np.abs(layer.bias) + np.bincount(
            layer.rows, weights=np.abs(layer.vals) * upper[layer.cols], minlength=layer.n_out)
        bound = max(bound, float(magnitude.max(initial=0.0)))
        upper = magnitude
    bound = max(bound, max(float(np.abs(layer.vals).max(initial=0.0)) for layer in layers))
    return int(math.ceil(bound))


def choose_dtype(bound: int, device_type: str) -> Exactness:
    """The cheapest dtype in which integers up to `bound` are exact: float16 on CUDA when the
    bound allows (tensor cores), float32, float64; ValueError beyond 2^53."""
    order = ([torch.float16] if device_type == "cuda" else []) + [torch.float32, torch.float64]
    for dtype in order:
        if bound <= 1 << SIGNIFICAND[dtype]:
            return Exactness(bound, dtype, SIGNIFICAND[dtype])
    raise ValueError(f"partial sums up to {bound:,} are not exact in float64")


def device_unrank(domain: SparseDomain, start: int, stop: int,
                  device: torch.device) -> torch.Tensor:
    """`domain.unrank(range(start, stop))` computed on `device`: padded int64 [B, K].

    The same greedy colex unranking as dsl.domain (weight by the offsets, then the largest
    element first by a search in C(c, i)), as tensor searches, so a GPU enumerates its blocks
    without the host unranking them and copying them over (tests: equal to `unrank`)."""
    binom_np, offsets_np = domain.rank_tables()
    binom = torch.as_tensor(binom_np, device=device)
    offsets = torch.as_tensor(offsets_np, device=device)
    ranks = torch.arange(start, stop, dtype=torch.int64, device=device)
    width = domain.max_weight
    out = torch.full((len(ranks), width), -1, dtype=torch.int64, device=device)
    if len(ranks) == 0 or width == 0:
        return out
    weight = torch.searchsorted(offsets, ranks, right=True) - 1
    rest = ranks - offsets[weight]
    # every row runs the steps of the largest weight; rows of smaller weight ignore theirs
    for i in range(width, 0, -1):
        mine = weight >= i
        if i == 1:
            c = rest
        else:
            c = torch.searchsorted(binom[i], rest, right=True) - 1
        # slot i - 1 of a weight-j row holds its i-th smallest element (j >= i)
        out[:, i - 1] = torch.where(mine, c, out[:, i - 1])
        rest = torch.where(mine, rest - binom[i].gather(0, c.clamp(0, domain.m - 1))
                           if i > 1 else rest, rest)
    return out


class TensorCheck:
    """Accumulates one pass of the tensor path (the counters `verify.exhaustive` reports)."""

    def __init__(self, circuit, module, max_counterexamples: int, dtype: torch.dtype | None = None):
        self.circuit, self.module = circuit, module
        self.device = module.device
        self.threshold = decision_threshold(module)
        self.max_counterexamples = max_counterexamples
        bound = partial_sum_bound(module, circuit.sparsity if circuit.sparsity is not None
                                  else circuit.n_inputs)
        self.exactness = choose_dtype(bound, self.device.type)
        if dtype is not None:                       # tests: the CUDA dtype on the CPU
            if bound > 1 << SIGNIFICAND[dtype]:
                raise ValueError(f"partial sums up to {bound:,} are not exact in {dtype}")
            self.exactness = Exactness(bound, dtype, SIGNIFICAND[dtype])
        self._load_weights()
        self._load_spec()
        self.inputs = self.outputs = self.failing = 0
        self.min_margin = math.inf
        self.counterexamples: list[dict] = []

    # ------------------------------------------------------------------ set-up

    def _load_weights(self) -> None:
        dt, dev = self.exactness.dtype, self.device
        layers = self.module.layers()
        first = layers[0]
        w0 = torch.zeros(first.n_out, first.n_in, dtype=torch.float64, device=dev)
        w0.index_put_((first.rows, first.cols), first.vals.double(), accumulate=True)
        rows = w0.t()[self.module.input_map]                          # [m, n]: feature rows
        pad = torch.zeros(1, first.n_out, dtype=torch.float64, device=dev)
        self.first_rows = torch.cat([rows, pad]).to(dt)                # row m: padding (-1)
        self.first_bias = first.bias.to(dt)
        self.first_relu = first.relu
        self.rest = []
        for layer in layers[1:]:
            w = torch.zeros(layer.n_out, layer.n_in, dtype=torch.float64, device=dev)
            w.index_put_((layer.rows, layer.cols), layer.vals.double(), accumulate=True)
            self.rest.append((w.t().contiguous().to(dt), layer.bias.to(dt), layer.relu))
        self.n_out = layers[-1].n_out

    def _load_spec(self) -> None:
        _, spec = superposable(self.circuit)
        m = self.circuit.n_inputs
        lengths = csr.lengths(spec.f_offsets)
        outputs = np.repeat(np.arange(spec.n_outputs), lengths)
        order = np.argsort(spec.f_features, kind="stable")            # CSR by feature
        by_feature = np.bincount(spec.f_features, minlength=m)
        dev = self.device
        self.feat_offsets = torch.as_tensor(csr.offsets_from_lengths(by_feature), device=dev)
        self.feat_outputs = torch.as_tensor(outputs[order], device=dev)
        self.k = torch.as_tensor(spec.k, device=dev)
        self.m = m

    # ------------------------------------------------------------------ one block

    def values(self, active: torch.Tensor) -> torch.Tensor:
        """Read-out values [B, n_out] (compute dtype) of padded active lists [B, K]."""
        index = torch.where(active < 0, torch.full_like(active, self.m), active)
        h = self.first_rows[index].sum(dim=1) + self.first_bias
        if self.first_relu:
            h = torch.relu(h)
        for w_t, bias, relu in self.rest:
            h = torch.addmm(bias, h, w_t)
            if relu:
                h = torch.relu(h)
        return h

    def spec(self, active: torch.Tensor) -> torch.Tensor:
        """Bool [B, n_out]: the reference outputs (operand count >= k) of each input."""
        batch, width = active.shape
        counts = torch.zeros(batch, self.n_out, dtype=torch.int32, device=self.device)
        valid = active >= 0
        row = torch.arange(batch, device=self.device).unsqueeze(1).expand(batch, width)[valid]
        feat = active[valid]
        starts, ends = self.feat_offsets[feat], self.feat_offsets[feat + 1]
        degree = ends - starts
        rows = torch.repeat_interleave(row, degree)
        first = torch.repeat_interleave(starts - torch.cumsum(degree, 0) + degree, degree)
        slots = first + torch.arange(int(degree.sum()), device=self.device)
        outs = self.feat_outputs[slots]
        counts.index_put_((rows, outs), torch.ones_like(outs, dtype=torch.int32),
                          accumulate=True)
        return counts >= self.k

    def block_size(self) -> int:
        """Inputs per block: about CELLS[device] read-out values."""
        return max(1, CELLS.get(self.device.type, CELLS["cpu"]) // max(self.n_out, 1))

    def check(self, active) -> None:
        """Evaluate and compare every input of `active` (padded [B, K]: a numpy array, or a
        tensor already on the device, e.g. from `device_unrank`)."""
        active = torch.as_tensor(active, device=self.device)
        if active.shape[1] == 0:
            active = torch.full((len(active), 1), -1, dtype=torch.int64, device=self.device)
        with _no_tf32():
            y = self.values(active)
        # exact integers in the compute dtype; compared as the module compares (its dtype's
        # t). When t is exact in the compute dtype (a half-integer of small size) the
        # comparison runs there, else in float64; the margin min(y - t over outputs that
        # should be on, t - y over the others) is taken as min / max of y, exact in any dtype,
        # and subtracted in Python's float64, without a float64 copy of the block.
        t = float(self.threshold)
        if float(torch.tensor(t, dtype=y.dtype)) != t:
            y = y.to(torch.float64)
        want = self.spec(active)
        wrong = (y > t) != want
        inf = torch.tensor(math.inf, dtype=y.dtype, device=y.device)
        low_on = float(torch.where(want, y, inf).min()) if y.numel() else math.inf
        high_off = float(torch.where(want, -inf, y).max()) if y.numel() else -math.inf
        bad = torch.nonzero(wrong.any(dim=1)).flatten()
        self.min_margin = min(self.min_margin, low_on - t, t - high_off)
        self.inputs += len(active)
        self.outputs += len(active) * self.n_out
        self.failing += int(bad.numel())
        room = self.max_counterexamples - len(self.counterexamples)
        for row in bad[:max(room, 0)].tolist():
            outs = torch.nonzero(wrong[row]).flatten()[:50]
            names = self.circuit.output_names(outs.tolist())
            features = [int(f) for f in active[row].tolist() if f >= 0]
            self.counterexamples.append({
                "active": self.circuit.input_names(features), "wrong": names,
                "values": dict(zip(names, y[row, outs].double().tolist()))})
