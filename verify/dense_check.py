"""Batch comparison with a dense read-out, for networks whose hidden neurons have a wide fan-out.

When a changed hidden neuron feeds thousands of outputs (superposed channels), following every
change costs more than one dense matmul of the last hidden layer with the read-out matrix. This
path computes, per batch, the last hidden layer with the module (first layer by gathering the
active features' weight columns), the read-out as a dense matmul, and the comparison with the
specification (baseline plus the reference's changes) in torch. `cost_per_input` estimates both
paths so `ExhaustiveCheck` can pick the cheaper one. Modules that compute read-out values from
active features directly (ConditionalModule) use `ActiveReadout`; both share `compare_values`.
"""

from __future__ import annotations

import torch

from backends import SupModule
from dsl.semantics import DONT_CARE

# rough machine constants (seconds): one multiply-add in a dense matmul, one element of a
# vectorized comparison, one followed change in the event-driven path
# (calibrated on the 2-core CI machine: a 516 x 10,000 read-out ran at ~1,650 inputs/s dense;
# the event-driven path follows ~10-20 M changes/s)
MATMUL_MAC, ELEMENTWISE, DELTA_ENTRY = 1.1e-10, 3e-9, 8e-8


def dense_cost(module) -> float:
    """Estimated seconds per input of the dense read-out path."""
    last = module.layers()[-1]
    n_out, n_in = last.n_out, last.n_in
    return n_out * n_in * MATMUL_MAC + n_out * 8 * ELEMENTWISE


def delta_cost(module, sample_active) -> float:
    """Estimated seconds per input of the event-driven path, measured on `sample_active`."""
    engine = module.delta_engine()
    before = engine.macs
    module.forward_delta(sample_active)
    return (engine.macs - before) / max(len(sample_active), 1) * DELTA_ENTRY


class DenseReadout:
    """The last hidden layer by the module, the read-out as one dense matmul."""
    def __init__(self, module):
        self.module = module
        last = module.layers()[-1]
        w = torch.zeros(last.n_out, last.n_in, dtype=module.dtype, device=module.device)
        w.index_put_((last.rows, last.cols), last.vals, accumulate=True)
        self.w_t = w.t().contiguous()
        self.bias = last.bias

    def step(self, n_out: int) -> int:
        """Inputs per batch for `n_out` outputs (about 2^23 read-out values per batch)."""
        return max(1, (1 << 23) // max(n_out, 1))

    def values(self, active: torch.Tensor) -> torch.Tensor:
        """Read-out values [B, n_out] of padded active-feature lists `active` [B, w]."""
        return torch.addmm(self.bias, self.module.readout_input(active), self.w_t)

    def compare(self, active, spec_base, ref, threshold):
        """(wrong mask [B, n_out] as numpy positions, min margin, cared count, y at wrong)."""
        y = self.values(torch.as_tensor(active, device=self.module.device))
        return compare_values(y, spec_base, ref, threshold)


class ActiveReadout(DenseReadout):
    """The dense read-out of a module that computes it directly from active features
    (a ConditionalModule, backends/tree_module.py): `values` is `module.forward_active`."""

    def __init__(self, module):
        self.module = module

    def values(self, active: torch.Tensor) -> torch.Tensor:
        """Read-out values [B, n_out]: the module's own `forward_active`."""
        return self.module.forward_active(active)


def readout_for(module) -> DenseReadout:
    """The dense-values read-out suited to `module`: DenseReadout computes the last layer
    itself, as an affine map after at least one hidden layer, so a module whose read-out is
    its only layer, or has a ReLU (a stored relu flag), is read with its own forward_active
    (ActiveReadout) instead: nothing the module applies is skipped."""
    if not isinstance(module, SupModule):
        return ActiveReadout(module)
    layers = module.layers()
    if len(layers) < 2 or layers[-1].relu:
        return ActiveReadout(module)
    return DenseReadout(module)


def compare_values(y: torch.Tensor, spec_base, ref, threshold):
    """Compare read-out values y [B, n_out] with the specification (baseline `spec_base` plus
    the reference's changes `ref`): (wrong rows, wrong outputs, y there, min margin over cared
    entries, number of cared entries)."""
    y = y.double()
    spec = torch.as_tensor(spec_base, device=y.device).expand(y.shape[0], -1).clone()
    if len(ref.rows):
        spec[torch.as_tensor(ref.rows), torch.as_tensor(ref.outputs)] = torch.as_tensor(
            ref.values, device=y.device)
    cared = spec != DONT_CARE
    ones = spec == 1
    wrong = cared & ((y > threshold) != ones)
    margin = torch.where(ones, y - threshold, threshold - y)
    margin = torch.where(cared, margin, torch.full_like(margin, float("inf")))
    rows, outs = torch.nonzero(wrong, as_tuple=True)
    return (rows.cpu().numpy(), outs.cpu().numpy(), y[rows, outs].cpu().numpy(),
            float(margin.min()) if margin.numel() else float("inf"), int(cared.sum()))
