"""The block path of the exhaustive verifier (verify/block_check.py) against brute force.

The reference runs the module on EVERY input of the domain (forward_active, dense read-out)
and compares with the dense specification (dsl.semantics.evaluate_active): failing inputs,
the minimum margin, inputs and cared outputs counted. Networks: superposed compilations
(exact), the same with planted bugs of every kind the bounds reason about (missing and
negative weights, neurons a single feature can fire, changed read-out weights and biases),
and mixed circuits whose gates fall back to dense neurons.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dsl
from backends.torch_module import SupModule
from compiler import compile_circuit
from dsl.domain import SparseDomain
from dsl.semantics import DONT_CARE, evaluate_active
from verify import merge
from verify import block_check
from verify.block_check import domain_blocks, integer_network
from verify.exhaustive import verify_exhaustive


def brute_force(circuit, module):
    """(failing input sets, min margin, inputs, cared outputs) from every input of the domain."""
    domain = SparseDomain(circuit.n_inputs, circuit.sparsity)
    active = domain.unrank(np.arange(domain.size))
    y = module.forward_active(torch.as_tensor(active)).double().numpy()
    spec = evaluate_active(circuit, active).dense()
    cared = spec != DONT_CARE
    t = module.threshold
    margin = np.where(spec == 1, y - t, t - y)[cared]
    wrong = cared & ((y > t) != (spec == 1))
    failing = {tuple(sorted(int(f) for f in row if f >= 0)) for row in active[wrong.any(axis=1)]}
    return failing, float(margin.min()), len(active), int(cared.sum()), wrong, active


def pairs_circuit(m, n_out, k, seed=1, extra=""):
    text = (f"const P = pairs({m}, {n_out}, seed={seed}); input x[{m}]; sparsity {k};"
            f" output y[u, v] = x[u] & x[v] for (u, v) in P;{extra}")
    return dsl.loads(text, "pairs.sup")


def compiled(circuit, **options):
    net = compile_circuit(circuit, "superposed", **options)
    return SupModule(net, device="cpu")


def assert_matches_brute_force(circuit, module):
    report = verify_exhaustive(circuit, module, progress=False, path="blocks")
    failing, margin, n_inputs, n_cared, wrong, active = brute_force(circuit, module)
    assert report["path"] == "blocks"
    assert report["inputs_checked"] == n_inputs
    assert report["outputs_checked"] == n_cared
    assert report["failing_inputs"] == len(failing)
    assert report["verified"] is (len(failing) == 0)
    if margin <= 0.5:
        assert report["min_margin"] == pytest.approx(margin, abs=1e-9)
        assert not report["min_margin_is_lower_bound"]
    else:
        assert report["min_margin"] == 0.5 and report["min_margin_is_lower_bound"]
    names = circuit.input_names(list(range(circuit.n_inputs)))
    index = {n: i for i, n in enumerate(names)}
    for cx in report["counterexamples"]:
        key = tuple(sorted(index[n] for n in cx["active"]))
        assert key in failing
        row = next(i for i, a in enumerate(active) if tuple(int(f) for f in a if f >= 0) == key)
        expected = set(circuit.output_names(np.flatnonzero(wrong[row]).tolist()))
        assert set(cx["wrong"]) == expected or len(cx["wrong"]) == 50
    return report


@pytest.mark.parametrize("m,n_out,k", [(24, 60, 2), (24, 80, 3), (16, 40, 4), (40, 300, 3)])
def test_exact_superposed_networks(m, n_out, k, mode):
    circuit = pairs_circuit(m, n_out, k)
    report = assert_matches_brute_force(circuit, compiled(circuit))
    assert report["verified"] is True


@pytest.fixture(params=["default", "no-linear-table", "no-linear-blocks", "bound-rows-on-demand"])
def mode(request, monkeypatch):
    """Run with every table the block check can do without: each case then takes the
    fallback (linear rows computed per pair, per-input evaluation of a block, or
    feature-bound rows computed on demand)."""
    if request.param == "no-linear-table":
        monkeypatch.setattr(block_check, "MAX_LINEAR_ENTRIES", -1)
    elif request.param == "no-linear-blocks":
        monkeypatch.setattr(block_check, "_linear_table", lambda *args: None)
    elif request.param == "bound-rows-on-demand":
        monkeypatch.setattr(block_check.FeatureBound, "max_dense", 0)
    return request.param


@pytest.mark.parametrize("seed", range(12))
def test_planted_bugs_match_brute_force(seed, mode):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 4))
    circuit = pairs_circuit(24, 70, k, seed=seed + 1)
    module = compiled(circuit, width=int(rng.integers(14, 30)), channel=int(rng.integers(3, 6)))
    kind = seed % 6
    with torch.no_grad():
        if kind == 0:      # a read-out bias raised: false positives
            module.layers[1].bias[rng.choice(len(module.layers[1].bias), 3, replace=False)] += 1
        elif kind == 1:    # missing listens: false negatives
            module.layers[0].vals[rng.choice(len(module.layers[0].vals), 5, replace=False)] = 0
        elif kind == 2:    # negative first-layer weights
            module.layers[0].vals[rng.choice(len(module.layers[0].vals), 8, replace=False)] = -1
        elif kind == 3:    # neurons one feature can fire (not dormant)
            module.layers[0].bias[rng.choice(len(module.layers[0].bias), 4, replace=False)] = 0
            module.layers[0].bias[rng.choice(len(module.layers[0].bias), 2, replace=False)] = 1
        elif kind == 4:    # read-out weights changed, some negative
            idx = rng.choice(len(module.layers[1].vals), 10, replace=False)
            module.layers[1].vals[idx] = torch.as_tensor(rng.choice([-2.0, -1.0, 2.0], 10),
                                                dtype=module.layers[1].vals.dtype)
        else:              # a mixture
            module.layers[0].vals[rng.choice(len(module.layers[0].vals), 3, replace=False)] = 2
            module.layers[1].bias[rng.choice(len(module.layers[1].bias), 2, replace=False)] -= 1
            module.layers[0].bias[rng.choice(len(module.layers[0].bias), 2, replace=False)] = -3
    report = assert_matches_brute_force(circuit, module)
    if kind in (0, 1):
        assert report["verified"] is False


def test_mixed_circuit_with_dense_fallback():
    extra = (" output z = x[0] & ~x[1]; output w = x[2] ^ x[3]; output a3 = atleast(2, x[4], x[5],"
             " x[6]); output n = ~x[7];")
    circuit = pairs_circuit(20, 50, 3, extra=extra)
    module = compiled(circuit)
    assert integer_network(module, circuit, SparseDomain(20, 3))[0] is not None
    assert assert_matches_brute_force(circuit, module)["verified"] is True
    with torch.no_grad():
        module.layers[1].bias[-4:] += 1           # the fallback outputs go wrong
    assert assert_matches_brute_force(circuit, module)["verified"] is False


def test_shards_cover_the_domain_and_merge():
    circuit = pairs_circuit(24, 70, 3)
    module = compiled(circuit)
    with torch.no_grad():
        module.layers[1].bias[[3, 30, 60]] += 1
    whole = verify_exhaustive(circuit, module, progress=False, path="blocks")
    parts = [verify_exhaustive(circuit, module, shard=(i, 5), progress=False, path="blocks")
             for i in range(1, 6)]
    assert sum(p["inputs_checked"] for p in parts) == whole["inputs_checked"]
    assert sum(p["failing_inputs"] for p in parts) == whole["failing_inputs"] > 0
    assert merge(parts)["verified"] is False


def test_blocks_enumerate_each_rank_once():
    domain = SparseDomain(9, 3)
    for start, stop in [(0, domain.size), (3, 50), (47, 48), (10, 129), (100, domain.size)]:
        seen = []
        for q, lo, hi in domain_blocks(domain, start, stop, max_blocks=4):
            for row, a, b in zip(q, lo, hi):
                seen += [tuple([c] + row.tolist()) for c in range(a, b)]
        ranks = domain.rank([list(s) + [-1] * (3 - len(s)) for s in seen])
        assert sorted(ranks.tolist()) == list(range(max(start, 1), stop))


def test_not_applicable_networks_are_refused_or_fall_back():
    circuit = dsl.loads("input x[6]; sparsity 2; output y = (x[0] & x[1]) | (x[2] & x[3]);",
                        "deep.sup")
    module = SupModule(compile_circuit(circuit, "dense"), device="cpu")
    net, why = integer_network(module, circuit, SparseDomain(6, 2))
    assert net is None and "hidden layer" in why          # two hidden layers
    with pytest.raises(ValueError, match="block path"):
        verify_exhaustive(circuit, module, progress=False, path="blocks")
    assert verify_exhaustive(circuit, module, progress=False)["path"] in ("delta", "dense")
    circuit = pairs_circuit(20, 40, 2)
    module = compiled(circuit)
    with torch.no_grad():
        module.layers[0].vals[0] = 0.5
    assert integer_network(module, circuit, SparseDomain(20, 2))[0] is None
    report = verify_exhaustive(circuit, module, progress=False)
    assert report["path"] in ("delta", "dense")


def test_cli_path_option(tmp_path):
    import json
    import subprocess
    import sys
    src = tmp_path / "p.sup"
    src.write_text("const P = pairs(20, 40, seed=2); input x[20]; sparsity 3;"
                   " output y[u, v] = x[u] & x[v] for (u, v) in P;")
    def run(*extra):
        proc = subprocess.run([sys.executable, "-m", "sup.cli", "verify", str(src), "--target",
                               "superposed", "--method", "exhaustive", "--json", *extra],
                              capture_output=True, text=True)
        return proc.returncode, proc.stdout, proc.stderr
    rc, out, _ = run("--path", "blocks")
    report = json.loads(out)
    assert rc == 0 and report["path"] == "blocks" and report["block_stats"]["blocks"] > 0
    assert report["inputs_checked"] == SparseDomain(20, 3).size
    rc, out, _ = run("--path", "delta")
    assert rc == 0 and json.loads(out)["path"] == "delta"
    deep = tmp_path / "deep.sup"
    deep.write_text("input x[4]; output y = (x[0] & x[1]) | (x[2] & x[3]);")
    proc = subprocess.run([sys.executable, "-m", "sup.cli", "verify", str(deep), "--method",
                           "exhaustive", "--path", "blocks"], capture_output=True, text=True)
    assert proc.returncode == 2 and "block path does not apply" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_output_wrong_on_every_input(mode):
    """Inputs that move no neuron of a wrong output are counted one by one, not once."""
    circuit = pairs_circuit(30, 60, 3)
    module = compiled(circuit)
    with torch.no_grad():
        module.layers[1].bias[7] += 20
    report = assert_matches_brute_force(circuit, module)
    # correct only where both operands are active: {u, v} and {u, v, c} for 28 other c
    assert report["failing_inputs"] == SparseDomain(30, 3).size - 1 - 28
