"""The tensor path of the exhaustive verifier (verify/tensor_check.py) against brute force.

The reference runs the module's own forward_active on every input of the domain and compares
with dsl.semantics (tests/test_block_check.py `brute_force`). The path runs here on the CPU in
float32 and, forced, in float16: the dtype it picks on a GPU, so the CUDA arithmetic is covered
without one. Planted bugs of several kinds must give exactly the brute-force failing inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dsl
from backends.torch_module import SupModule
from compiler import compile_circuit
from dsl.domain import SparseDomain
from verify import merge
from verify.exhaustive import verify_exhaustive
from verify.tensor_check import (TensorCheck, choose_dtype, device_unrank, partial_sum_bound,
                                 tensor_applies)

from test_block_check import brute_force, pairs_circuit

pytestmark = pytest.mark.usefixtures("one_torch_thread")

THRESHOLDS = """
input x[14];
sparsity 3;
output a[i] = x[i] & x[(i + 3) % 14] & x[(i + 5) % 14] for i in 0..14;
output o[i] = x[i] | x[(i + 1) % 14] for i in 0..7;
output t[i] = atleast(2, x[i], x[(i + 2) % 14], x[(i + 6) % 14], x[(i + 9) % 14]) for i in 0..10;
output c[i] = x[i] for i in 0..4;
"""


def module_of(circuit, target="superposed"):
    return SupModule(compile_circuit(circuit, target), device="cpu")


def tensor_report(circuit, module, dtype=None, shard=(1, 1)):
    """The tensor path's report; dtype forces the compute dtype (float16: the GPU's)."""
    if dtype is None:
        return verify_exhaustive(circuit, module, path="tensor", progress=False, shard=shard)
    domain = SparseDomain(circuit.n_inputs, circuit.sparsity)
    check = TensorCheck(circuit, module, 20, dtype=dtype)
    start, stop = domain.shard(*shard)
    for _, active in domain.batches(97, start, stop):       # odd block size: ragged last block
        check.check(active)
    return {"inputs_checked": check.inputs, "failing_inputs": check.failing,
            "min_margin": check.min_margin, "counterexamples": check.counterexamples,
            "outputs_checked": check.outputs, "verified": check.failing == 0}


def assert_matches(circuit, module, dtype=None):
    report = tensor_report(circuit, module, dtype)
    failing, margin, n_inputs, n_cared, wrong, active = brute_force(circuit, module)
    assert report["inputs_checked"] == n_inputs
    assert report["outputs_checked"] == n_cared
    assert report["failing_inputs"] == len(failing)
    assert report["verified"] is (len(failing) == 0)
    assert report["min_margin"] == pytest.approx(margin, abs=1e-9)
    index = {n: i for i, n in enumerate(circuit.input_names(list(range(circuit.n_inputs))))}
    for cx in report["counterexamples"]:
        key = tuple(sorted(index[n] for n in cx["active"]))
        assert key in failing
        row = next(i for i, a in enumerate(active) if tuple(int(f) for f in a if f >= 0) == key)
        assert set(cx["wrong"]) == set(circuit.output_names(np.flatnonzero(wrong[row]).tolist()))
    return report


@pytest.mark.parametrize("dtype", [None, torch.float16], ids=["auto", "float16"])
@pytest.mark.parametrize("target", ["superposed", "dense"])
def test_exact_networks_match_brute_force(dtype, target):
    for circuit in (pairs_circuit(24, 80, 3), dsl.loads(THRESHOLDS, "thresholds.sup")):
        report = assert_matches(circuit, module_of(circuit, target), dtype)
        assert report["verified"] is True


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [None, torch.float16], ids=["auto", "float16"])
def test_planted_bugs_match_brute_force(seed, dtype):
    rng = np.random.default_rng(seed)
    circuit = dsl.loads(THRESHOLDS, "thresholds.sup") if seed % 2 else pairs_circuit(24, 80, 3)
    module = module_of(circuit, "dense" if seed == 5 else "superposed")
    with torch.no_grad():
        kind = seed % 3
        if kind == 0:                                    # read-out biases raised
            module.layers[1].bias[rng.choice(len(module.layers[1].bias), 3, replace=False)] += 1
        elif kind == 1:                                  # first-layer weights zeroed / negated
            module.layers[0].vals[rng.choice(len(module.layers[0].vals), 5, replace=False)] = 0
            module.layers[0].vals[rng.choice(len(module.layers[0].vals), 3, replace=False)] = -1
        else:                                            # read-out weights changed
            idx = rng.choice(len(module.layers[1].vals), 6, replace=False)
            module.layers[1].vals[idx] = torch.as_tensor(rng.choice([-2.0, 2.0], 6),
                                                dtype=module.layers[1].vals.dtype)
    report = assert_matches(circuit, module, dtype)
    assert report["failing_inputs"] > 0


def test_report_states_its_exactness_argument():
    circuit = pairs_circuit(24, 80, 2)
    module = module_of(circuit)
    report = verify_exhaustive(circuit, module, path="tensor", progress=False)
    assert report["path"] == "tensor" and report["verified"] is True
    exact = report["exactness"]
    assert exact["compute_dtype"] == "float32"          # the CPU; a GPU picks float16
    assert exact["max_partial_sum"] == partial_sum_bound(module, 2) <= 2048
    assert "exact in any order" in exact["argument"]


def test_partial_sum_bound_covers_every_value():
    """B bounds every hidden and read-out value the module computes on the domain."""
    for circuit in (pairs_circuit(24, 80, 3), dsl.loads(THRESHOLDS, "thresholds.sup")):
        for target in ("superposed", "dense"):
            module = module_of(circuit, target)
            bound = partial_sum_bound(module, circuit.sparsity)
            domain = SparseDomain(circuit.n_inputs, circuit.sparsity)
            x = torch.as_tensor(domain.dense(domain.unrank(np.arange(domain.size))),
                                dtype=module.dtype)
            h = torch.zeros(len(x), module.layers()[0].n_in, dtype=module.dtype)
            h[:, module.input_map] = x
            for layer in module.layers():
                w = torch.zeros(layer.n_out, layer.n_in, dtype=module.dtype)
                w.index_put_((layer.rows, layer.cols), layer.vals, accumulate=True)
                pre = h @ w.t() + layer.bias
                assert float(pre.abs().max()) <= bound
                h = torch.relu(pre) if layer.relu else pre


def test_dtype_choice():
    assert choose_dtype(2048, "cuda").dtype == torch.float16
    assert choose_dtype(2049, "cuda").dtype == torch.float32
    assert choose_dtype(2048, "cpu").dtype == torch.float32
    assert choose_dtype(1 << 24, "cpu").dtype == torch.float32
    assert choose_dtype((1 << 24) + 1, "cpu").dtype == torch.float64
    with pytest.raises(ValueError):
        choose_dtype((1 << 53) + 1, "cpu")


def test_float16_refused_when_sums_could_round():
    circuit = pairs_circuit(24, 80, 2)
    module = module_of(circuit)
    with torch.no_grad():
        module.layers[1].vals[0] = 4096.0
    with pytest.raises(ValueError, match="not exact in torch.float16"):
        TensorCheck(circuit, module, 20, dtype=torch.float16)


def test_shards_merge_to_the_whole_check():
    circuit = pairs_circuit(24, 80, 3)
    module = module_of(circuit)
    with torch.no_grad():
        module.layers[1].bias[[3, 30, 60]] += 1
    whole = verify_exhaustive(circuit, module, path="tensor", progress=False)
    parts = [verify_exhaustive(circuit, module, path="tensor", progress=False, shard=(i, 3))
             for i in (1, 2, 3)]
    merged = merge(parts)
    assert merged["inputs_checked"] == whole["inputs_checked"] == SparseDomain(24, 3).size
    assert merged["failing_inputs"] == whole["failing_inputs"] > 0
    assert merged["verified"] is False


def test_not_applicable_networks_are_refused():
    circuit = dsl.loads("input x[6]; sparsity 2; output y = x[0] ^ x[1]; output z = x[2] & x[3];",
                        "xor.sup")
    module = module_of(circuit, "dense")
    assert "threshold gates" in tensor_applies(module, circuit,
                                               SparseDomain(6, 2))
    with pytest.raises(ValueError, match="tensor path does not apply"):
        verify_exhaustive(circuit, module, path="tensor", progress=False)
    circuit = pairs_circuit(24, 80, 2)
    module = module_of(circuit)
    with torch.no_grad():
        module.layers[0].vals[0] = 0.5
    assert "integers" in tensor_applies(module, circuit, SparseDomain(24, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("seed", range(3))
def test_cuda_tensor_path_matches_the_cpu(seed):
    """On a GPU the path runs in its own dtype (float16 where exact): same report as on CPU,
    planted bugs included."""
    circuit = pairs_circuit(24, 80, 3)
    module = module_of(circuit)
    if seed:
        with torch.no_grad():
            module.layers[1].bias[seed * 5] += 1
    on_cpu = verify_exhaustive(circuit, module, path="tensor", progress=False)
    on_gpu = verify_exhaustive(circuit, module.to("cuda"), path="tensor", progress=False)
    for key in ("inputs_checked", "outputs_checked", "failing_inputs", "verified"):
        assert on_gpu[key] == on_cpu[key], key
    assert on_gpu["min_margin"] == pytest.approx(on_cpu["min_margin"], abs=1e-9)
    assert on_gpu["verified"] is (seed == 0)


@pytest.mark.parametrize("m, k", [(10, 3), (7, None), (30, 2), (1, 1), (5, 0), (40, 4), (0, 2)])
def test_device_unrank_equals_the_domain(m, k):
    """The on-device enumeration gives the domain's own unranking, rank for rank."""
    domain = SparseDomain(m, k)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for start, stop in [(0, domain.size), (domain.size // 3, domain.size // 2),
                            (domain.size, domain.size)]:
            got = device_unrank(domain, start, stop, torch.device(device)).cpu().numpy()
            assert np.array_equal(got, domain.unrank(np.arange(start, stop))), (device, start)
