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


# ---------------------------------------------------------------- the exact float16 layout

def test_half_layout_is_exact_within_its_limit():
    args, dense = random_layer(5, dtype=torch.float32)
    kernel = LinearKernel(*args, kind="half")
    assert kernel.half_limit >= 2
    h = torch.as_tensor(np.random.default_rng(1).integers(0, 3, (300, args[5])),
                        dtype=torch.float32)
    assert kernel.half_applies(h)
    got = kernel(h)
    assert got.dtype == torch.float32
    assert torch.equal(got, (h.double() @ dense.double().t() + args[3].double()).float())


def test_half_layout_falls_back_where_float16_would_round():
    """A batch beyond the limit, or with fractions, runs dense in its own dtype: the result is
    the float32 one, although a plain float16 product differs (the check is what keeps it
    exact)."""
    rows, cols = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1])
    vals, bias = torch.tensor([1000.0, 1001.0, 1.0]), torch.tensor([1.0, 0.0])
    kernel = LinearKernel(rows, cols, vals, bias, 2, 2, kind="half")
    assert kernel.half_limit == 1                     # 1 + 1 * 2001 <= 2048 < 1 + 2 * 2001
    ones = torch.ones(1, 2)
    assert kernel.half_applies(ones) and kernel(ones).tolist() == [[2002.0, 1.0]]
    for h in (torch.tensor([[2.0, 2.0]]), torch.tensor([[0.5, 1.0]])):
        assert not kernel.half_applies(h)
        assert torch.equal(kernel(h), h @ kernel.dense().t() + bias)
    assert kernel(torch.tensor([[2.0, 2.0]])).tolist() == [[4003.0, 2.0]]
    naive = torch.addmm(bias.half(), torch.tensor([[2.0, 2.0]]).half(), kernel.dense().half().t())
    assert naive.float().tolist() != [[4003.0, 2.0]]    # what an unchecked float16 product gives


def test_half_limit_is_zero_for_float_weights():
    args, _ = random_layer(3, dtype=torch.float32)
    rows, cols, vals, bias, n_out, n_in = args
    kernel = LinearKernel(rows, cols, vals + 0.25, bias, n_out, n_in, kind="half")
    assert kernel.half_limit == 0
    h = torch.ones(4, n_in)
    assert torch.equal(kernel(h), h @ kernel.dense().t() + bias)


def test_half_is_timed_only_on_cuda():
    args, _ = random_layer(0, dtype=torch.float32)
    kernel = LinearKernel(*args)
    assert kernel.candidates(torch.device("cpu")) == ["dense", "csr"]
    assert "half" in kernel.candidates(torch.device("cuda"))


@pytest.mark.parametrize("name", ["pairs_small.sup", "multilevel.sup"])
def test_module_forced_half_equals_the_default(name, monkeypatch):
    """A whole compiled network with every layer in float16 (where exact) gives the default
    module's values bit for bit on 0/1 inputs."""
    import os
    import dsl
    from backends import SupModule
    from compiler import compile_circuit
    from dsl.domain import SparseDomain
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    circuit = dsl.load(os.path.join(root, "examples", name))
    net = compile_circuit(circuit, "superposed" if name == "pairs_small.sup" else "dense")
    dom = SparseDomain(circuit.n_inputs, circuit.sparsity)
    x = torch.as_tensor(dom.dense(dom.unrank(np.arange(min(dom.size, 2000)))),
                        dtype=torch.float32)
    want = SupModule(net, dtype=torch.float32, device="cpu")(x)
    monkeypatch.setenv("SUP_KERNEL", "half")
    module = SupModule(net, dtype=torch.float32, device="cpu")
    got = module(x)
    assert torch.equal(got, want)
    assert all(layer.kernel().kind == "half" for layer in module.layers)
    assert any(layer.kernel().half_limit >= 1 for layer in module.layers)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_half_layout_matches_the_cpu():
    args, dense = random_layer(6, n_out=300, n_in=400, dtype=torch.float32)
    h = torch.as_tensor(np.random.default_rng(2).integers(0, 2, (1000, 400)),
                        dtype=torch.float32)
    want = LinearKernel(*args, kind="dense")(h)
    on_gpu = LinearKernel(*(a.cuda() if torch.is_tensor(a) else a for a in args), kind="half")
    assert torch.equal(on_gpu(h.cuda()).cpu(), want)
