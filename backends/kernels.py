"""How one linear layer W h + b runs: dense, sparse CSR or exact float16, chosen by measurement.

A compiled layer is stored as COO entries. For a batch of activations h [B, n_in] the product
can run as a dense GEMM (W^T stored dense: every multiply-add, at the hardware's peak rate) or
as a sparse CSR product (only the nonzeros, at a lower rate per entry). Which wins depends on
the density, the shapes, the batch and the device, so `LinearKernel` times both on a sample
batch the first time it runs on a device and keeps the faster (`SUP_KERNEL=dense|csr` forces
one). A dense copy is never made when it would exceed `max_dense_bytes`.

The third layout, `half`, is the dense product in float16 (tensor cores on a GPU), used only
where it is exact. With integer weights and bias, and a batch whose values are integers of
magnitude at most H, every partial sum of every output, in any summation order, is an integer
of magnitude at most |b_r| + H sum_j |w_rj|; float16 represents every integer up to 2^11, so
when that bound is <= 2^11 for every row the float16 result is the exact result (`half_limit`
is the largest such H, computed once from the weights). Each call checks its batch (integer
values, max |h| <= half_limit) and otherwise runs the dense layout in the batch's dtype, so the
result never depends on the layout. The half layout is measured only on CUDA (float16 GEMM on a
CPU is slow); `SUP_KERNEL=half` forces it anywhere, for tests.

Both layouts add the same products, in different orders: for networks whose sums are exact in
the dtype (integer networks, which the compiler produces) the results are identical; otherwise
they differ by rounding only, which the verifiers bound (`verify.exhaustive.rounding_slack`).
"""

from __future__ import annotations

import os
import time
import warnings

import torch

KINDS = ("dense", "csr", "half")
HALF_EXACT = 2048               # float16 (11 significand bits) holds every integer up to 2^11
MAX_DENSE_BYTES = 1 << 30       # never store a dense copy larger than this
PROBE_ROWS = 512                # rows of the timing batch


class LinearKernel:
    """y = h W^T + b for one layer, in the layout measured fastest (see the module docstring).

    Args:
        rows, cols, vals: the COO entries (tensors on one device; duplicates add).
        bias: [n_out].
        n_out, n_in: the shape of W.
        kind: 'dense', 'csr' or None (measure on first use; env SUP_KERNEL overrides).
        max_dense_bytes: the largest dense copy allowed.
        small: layers of at most this many cells run dense without measuring (default SMALL:
            timing them would cost more than it saves).
    """

    SMALL = 1 << 16     # a layer with at most this many dense cells runs dense, unmeasured

    def __init__(self, rows, cols, vals, bias, n_out: int, n_in: int, kind: str | None = None,
                 max_dense_bytes: int = MAX_DENSE_BYTES, small: int | None = None):
        self.rows, self.cols, self.vals, self.bias = rows, cols, vals, bias
        self.n_out, self.n_in = n_out, n_in
        forced = os.environ.get("SUP_KERNEL") or kind
        if forced is not None and forced not in KINDS:
            raise ValueError(f"kernel must be one of {', '.join(KINDS)}, not {forced!r}")
        self.dense_fits = n_out * n_in * vals.element_size() <= max_dense_bytes
        self.kind = forced if forced != "dense" or self.dense_fits else "csr"
        if self.kind is None and self.dense_fits and n_out * n_in <= (
                self.SMALL if small is None else small):
            self.kind = "dense"
        self._dense = None
        self._dense_t = None
        self._csr = None
        self._half = None
        self.half_limit = half_input_limit(rows, vals, bias, n_out)
        self.timings: dict[str, float] = {}

    def dense(self) -> torch.Tensor:
        """W as a dense row-major [n_out, n_in] tensor (built once; duplicates add)."""
        if self._dense is None:
            w = torch.zeros(self.n_out, self.n_in, dtype=self.vals.dtype, device=self.vals.device)
            w.index_put_((self.rows, self.cols), self.vals, accumulate=True)
            self._dense = w
        return self._dense

    def dense_t(self) -> torch.Tensor:
        """W^T as a dense contiguous [n_in, n_out] tensor (built once), for gathers of whole
        input columns."""
        if self._dense_t is None:
            self._dense_t = self.dense().t().contiguous()
        return self._dense_t

    def csr(self) -> torch.Tensor:
        """W as a sparse CSR [n_out, n_in] tensor (built once)."""
        if self._csr is None:
            w = torch.sparse_coo_tensor(torch.stack([self.rows, self.cols]), self.vals,
                                        (self.n_out, self.n_in), check_invariants=False)
            with warnings.catch_warnings():          # torch calls sparse CSR "beta"
                warnings.simplefilter("ignore", UserWarning)
                self._csr = w.coalesce().to_sparse_csr()
        return self._csr

    def half(self):
        """(W in float16 [n_out, n_in], bias in float16), built once; exact only for the
        batches `half_applies` accepts."""
        if self._half is None:
            self._half = (self.dense().half(), self.bias.half())
        return self._half

    def half_applies(self, h: torch.Tensor) -> bool:
        """Whether float16 computes W h + b exactly for this batch: integer values of
        magnitude at most `half_limit` (one reduction, one host round trip)."""
        if self.half_limit < 1 or not self.dense_fits:
            return False
        ok = torch.logical_and((h == h.round()).all(), h.abs().max() <= self.half_limit)
        return bool(ok)

    def candidates(self, device: torch.device) -> list[str]:
        """The layouts worth timing on `device`."""
        kinds = ["dense", "csr"]
        if device.type == "cuda" and self.half_limit >= 1:
            kinds.append("half")
        return kinds

    def run(self, h: torch.Tensor, kind: str) -> torch.Tensor:
        """W h + b for h [B, n_in] in layout `kind` (`half` runs dense where not exact)."""
        if h.shape[0] == 0:
            return self.bias.expand(0, self.n_out).clone()
        if kind == "half":
            if self.half_applies(h):
                w16, b16 = self.half()
                return torch.addmm(b16, h.half(), w16.t()).to(h.dtype)
            kind = "dense" if self.dense_fits else "csr"
        if kind == "dense":
            # h W^T with W row-major (a transposed view): the layout the float paths have always
            # used; tests/test_soundness.py checks a counterexample found in a large batch
            # replays alone with it
            return torch.addmm(self.bias, h, self.dense().t())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse.mm(self.csr(), h.t()).t() + self.bias

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        """W h + b for h [B, n_in], measuring the layouts on the first call."""
        if self.kind is None:
            self.kind = self.measure(h)
        return self.run(h, self.kind)

    def measure(self, h: torch.Tensor) -> str:
        """Time each allowed layout on (a slice of) h; the faster kind (timings kept)."""
        if not self.dense_fits:
            return "csr"
        probe = h[:PROBE_ROWS]
        if probe.shape[0] < 2:
            probe = torch.zeros(PROBE_ROWS, self.n_in, dtype=h.dtype, device=h.device)
        for kind in self.candidates(h.device):
            self.timings[kind] = _best_seconds(lambda: self.run(probe, kind), h.device)
        return min(self.timings, key=self.timings.get)


def integer_row_bounds(rows, vals, bias, n_out: int):
    """(sum_j |w_rj| per row, |b_r|) as float64 tensors when every weight and bias is an
    integer, else None: what bounds every partial sum of W h + b for integer inputs, shared by
    the exact-float16 limit here and `SupLayer.exact_sums`."""
    vals, bias = vals.detach(), bias.detach()
    if not (torch.equal(vals, vals.round()) and torch.equal(bias, bias.round())):
        return None
    row_l1 = torch.zeros(n_out, dtype=torch.float64, device=vals.device)
    row_l1.index_add_(0, rows, vals.abs().double())
    return row_l1, bias.abs().double()


def half_input_limit(rows, vals, bias, n_out: int) -> int:
    """The largest H such that, for integer inputs of magnitude <= H, every partial sum of
    W h + b is an integer of magnitude <= 2^11 (exact in float16); 0 when none (float weights,
    or a bias or row too large)."""
    bounds = integer_row_bounds(rows, vals, bias, n_out) if len(bias) else None
    if bounds is None:
        return 0
    row_l1, abs_bias = bounds
    room = HALF_EXACT - abs_bias
    if bool((room < 0).any()):
        return 0
    used = row_l1 > 0
    if not bool(used.any()):
        return HALF_EXACT
    return int(torch.floor(room[used] / row_l1[used]).min().clamp(max=HALF_EXACT))


def _best_seconds(fn, device: torch.device, repeats: int = 3) -> float:
    """Best wall time of fn() over `repeats` runs after one warm-up."""
    with torch.no_grad():
        fn()
        best = float("inf")
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return best
