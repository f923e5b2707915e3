"""backends/kernels.py: both layouts compute W h + b exactly as a dense reference does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backends.kernels import LinearKernel


def random_layer(seed, n_out=37, n_in=53, density=0.1, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    nnz = int(n_out * n_in * density)
    rows = torch.as_tensor(rng.integers(0, n_out, nnz))
    cols = torch.as_tensor(rng.integers(0, n_in, nnz))      # duplicates add
    vals = torch.as_tensor(rng.integers(-3, 4, nnz), dtype=dtype)
    bias = torch.as_tensor(rng.integers(-2, 3, n_out), dtype=dtype)
    dense = np.zeros((n_out, n_in))
    np.add.at(dense, (rows.numpy(), cols.numpy()), vals.numpy())
    return (rows, cols, vals, bias, n_out, n_in), torch.as_tensor(dense, dtype=dtype)


@pytest.mark.parametrize("kind", ["dense", "csr", None])
@pytest.mark.parametrize("seed", range(4))
def test_every_layout_matches_the_dense_reference(kind, seed):
    args, dense = random_layer(seed)
    kernel = LinearKernel(*args, kind=kind, small=0)
    h = torch.as_tensor(np.random.default_rng(seed + 10).integers(0, 3, (600, args[5])),
                        dtype=dense.dtype)
    want = h @ dense.t() + args[3]
    assert torch.equal(kernel(h), want)                  # integers: exact in any order
    assert kernel.kind in ("dense", "csr")
    if kind is None:
        assert set(kernel.timings) == {"dense", "csr"}   # measured, the faster one kept
        assert kernel.kind == min(kernel.timings, key=kernel.timings.get)


def test_small_layers_run_dense_without_measuring():
    args, dense = random_layer(2)
    kernel = LinearKernel(*args)
    h = torch.ones(3, args[5], dtype=dense.dtype)
    assert torch.equal(kernel(h), h @ dense.t() + args[3])
    assert kernel.kind == "dense" and kernel.timings == {}
    assert kernel(h[:0]).shape == (0, args[4])


def test_dense_copy_refused_above_the_memory_limit():
    args, dense = random_layer(0)
    kernel = LinearKernel(*args, kind="dense", max_dense_bytes=16)
    assert kernel.kind == "csr"
    kernel = LinearKernel(*args, max_dense_bytes=16)
    h = torch.ones(4, args[5], dtype=dense.dtype)
    assert torch.equal(kernel(h), h @ dense.t() + args[3]) and kernel.kind == "csr"


def test_environment_forces_a_layout(monkeypatch):
    args, _ = random_layer(1)
    monkeypatch.setenv("SUP_KERNEL", "csr")
    assert LinearKernel(*args).kind == "csr"
    monkeypatch.setenv("SUP_KERNEL", "banana")
    with pytest.raises(ValueError, match="kernel must be one of"):
        LinearKernel(*args)
