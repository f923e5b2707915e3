"""Approximate superposition (--max-error) and multi-level superposition.

References: brute force (the network's numpy forward on every input of the domain against the
reference semantics) and the exhaustive verifier on the torch module.
"""

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import dsl
from backends import SupModule
from compiler import account, compile_circuit
from compiler.superposed.channels import assign_random
from compiler.superposed.error_budget import measure_error
from compiler.superposed.multilevel import and_maximum, candidates, sparsity_bound
from compiler.superposed import merge_network, superposable
from dsl.domain import SparseDomain
from dsl.semantics import active_to_dense, signal_values
from verify import verify_exhaustive

from tests.test_superposed import brute_failing_outputs

torch.set_num_threads(1)


# (failing output positions, failing input count) by brute force over the whole domain
brute = brute_failing_outputs


def pairs_text(features, pairs, k, seed=5):
    return (f"const P = pairs({features}, {pairs}, seed={seed}); input x[{features}]; "
            f"sparsity {k}; output y[u, v] = x[u] & x[v] for (u, v) in P;")


TWO_LEVEL = """const N = {n}; const Q = pairs(N - 1, {q}, seed=2); input x[N]; sparsity 3;
wire g[i] = x[i] & x[i + 1] for i in 0..N-1;
output z[i, j] = g[i] & g[j] for (i, j) in Q;"""


# ------------------------------------------------------------------ measured error

@pytest.mark.parametrize("k,width", [(2, 20), (3, 40)])
def test_exact_error_count_matches_brute_force(k, width):
    """Unrepaired assignments (many failing outputs): the combinatorial count of failing
    inputs equals brute force on the network built from the same assignment."""
    circuit = dsl.loads(pairs_text(24, 120, k), "err.sup")
    positions, spec = superposable(circuit)
    for seed in range(2):
        a = assign_random(spec, width, 4, np.random.default_rng(seed))
        measured = measure_error(spec, a)
        net = merge_network(circuit, spec, positions, a, None, np.zeros(0, np.int64))
        outputs, inputs = brute(circuit, net)
        assert measured.how == "exact" and inputs > 0
        assert measured.failing_inputs == inputs
        assert measured.failing_outputs == len(outputs)
        assert measured.rate == inputs / SparseDomain(24, k).size


def test_sampled_error_bound_covers_the_true_rate():
    circuit = dsl.loads(pairs_text(24, 120, 2), "samp.sup")
    positions, spec = superposable(circuit)
    a = assign_random(spec, 30, 4, np.random.default_rng(3))
    exact = measure_error(spec, a)
    sampled = measure_error(spec, a, exact_cells=0, samples=20_000, seed=1)
    assert sampled.how == "sampled" and sampled.samples == 20_000
    assert sampled.rate <= sampled.upper
    assert exact.rate <= sampled.upper                    # the 95% bound holds here
    assert abs(sampled.rate - exact.rate) < 0.05


def test_max_error_network_is_smaller_measured_and_caught():
    circuit = dsl.loads(pairs_text(48, 400, 2), "budget.sup")
    exact = compile_circuit(circuit, "superposed")
    rate = 0.02
    approx = compile_circuit(circuit, "superposed", max_error=rate)
    measured = approx.meta["measured_error"]
    assert approx.meta["max_error"] == rate
    assert measured["how"] == "exact" and measured["rate"] <= rate
    assert account(approx)["neurons"] < account(exact)["neurons"]
    assert measured["failing_outputs"] > 0 and "not exact" in approx.meta["exact_by"]
    report = verify_exhaustive(circuit, SupModule(approx, device="cpu"), progress=False,
                               max_counterexamples=10**6)
    assert report["verified"] is False
    assert report["failing_inputs"] == measured["failing_inputs"]
    wrong = {w for c in report["counterexamples"] for w in c["wrong"]}
    assert len(wrong) == measured["failing_outputs"]
    assert brute(circuit, approx)[1] == measured["failing_inputs"]


def test_max_error_zero_is_exact():
    circuit = dsl.loads(pairs_text(32, 150, 2), "zero.sup")
    net = compile_circuit(circuit, "superposed", max_error=0.0)
    assert net.meta["measured_error"]["failing_inputs"] == 0
    assert brute(circuit, net) == (set(), 0)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "sup", *args], capture_output=True, text=True)


def test_cli_max_error(tmp_path):
    path = tmp_path / "c.sup"
    path.write_text(pairs_text(48, 400, 2))
    bad = run_cli("compile", str(path), "--target", "superposed", "--max-error", "1.5")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--max-error" in bad.stderr
    ok = run_cli("compile", str(path), "--target", "superposed", "--max-error", "0.02", "--json")
    assert ok.returncode == 0, ok.stderr
    info = json.loads(ok.stdout)["superposed"]
    assert info["max_error"] == 0.02 and info["measured_error"]["rate"] <= 0.02
    ver = run_cli("verify", str(path), "--target", "superposed", "--max-error", "0.02",
                  "--method", "exhaustive", "--json")
    report = json.loads(ver.stdout)
    assert ver.returncode == 1 and report["verified"] is False
    assert report["failing_inputs"] == info["measured_error"]["failing_inputs"]


# ------------------------------------------------------------------ multi-level

def test_two_level_ands_are_superposed_and_exact():
    circuit = dsl.loads(TWO_LEVEL.format(n=48, q=300), "two.sup")
    net = compile_circuit(circuit, "superposed")
    level = net.meta["levels"][1]
    assert level["used"] and level["outputs"] == 300 and level["feature_sparsity"] == 2
    dense = account(compile_circuit(circuit, "dense"))["neurons"]
    assert account(net)["neurons"] == level["neurons_with"] < dense == level["neurons_dense_fallback"]
    assert net.meta["superposed_outputs"] == 300 and net.meta["dense_outputs"] == 0
    assert brute(circuit, net) == (set(), 0)
    report = verify_exhaustive(circuit, SupModule(net, device="cpu"), progress=False)
    assert report["verified"] is True and report["min_margin"] == 0.5


def test_mixed_levels_and_fallback_share_one_network():
    """First-level channels, second-level channels and dense outputs (negations, xor) together,
    with the blocks at different depths (carries)."""
    text = """input x[64]; sparsity 2; wire g[i] = x[i] & x[i + 1] for i in 0..63;
    const Q = pairs(61, 300, seed=4);
    output o[i, j] = or(g[i], g[j], g[i + 2]) for (i, j) in Q;
    const P = pairs(64, 400, seed=9);
    output y[u, v] = x[u] & x[v] for (u, v) in P;
    output n = !g[3] & x[7];
    output p = x[1] ^ x[2] ^ x[30];"""
    circuit = dsl.loads(text, "mixed.sup")
    net = compile_circuit(circuit, "superposed")
    levels = net.meta["levels"]
    assert levels[0]["outputs"] == 400 and levels[0]["channel_neurons"] > 0
    assert levels[1]["used"] and levels[1]["outputs"] == 300 and levels[1]["feature_sparsity"] == 1
    assert net.meta["dense_outputs"] == 2 and len(net.hidden) == 2
    assert brute(circuit, net) == (set(), 0)
    assert verify_exhaustive(circuit, SupModule(net, device="cpu"), progress=False)["verified"]


def test_planted_failure_in_second_level_is_caught():
    circuit = dsl.loads(TWO_LEVEL.format(n=48, q=300), "plant2.sup")
    net = compile_circuit(circuit, "superposed")
    bad = copy.deepcopy(net)
    layer = bad.layers[-2]                      # the second-level channel layer
    layer.bias = layer.bias + 1.0               # every channel neuron fires one step early
    outputs, inputs = brute(circuit, bad)
    assert outputs
    report = verify_exhaustive(circuit, SupModule(bad, device="cpu"), progress=False)
    assert report["verified"] is False and report["failing_inputs"] == inputs


def test_no_saving_keeps_the_dense_fallback():
    """Level-2 outputs too dense to superpose stay dense, and the network stays exact."""
    text = ("input x[12]; sparsity 3; wire g[i] = x[i] & x[i + 1] for i in 0..11;"
            " output z[i, j] = g[i] | g[j] for i in 0..11, j in i+1..11;")
    circuit = dsl.loads(text, "nosave.sup")
    net = compile_circuit(circuit, "superposed")
    assert not net.meta["levels"][1]["used"]
    assert brute(circuit, net) == (set(), 0)


def random_and_sets(rng, m, count, arities):
    return [np.sort(rng.choice(m, size=int(rng.choice(arities)), replace=False))
            for _ in range(count)]


def test_and_maximum_is_exact_when_it_says_so():
    exact = [and_maximum_against_enumeration(seed) for seed in range(12)]
    assert any(exact)                        # the exact case is exercised


def and_maximum_against_enumeration(seed):
    rng = np.random.default_rng(seed)
    m, K = 14, int(rng.integers(2, 5))
    sets = random_and_sets(rng, m, int(rng.integers(3, 25)), (1, 2, 3))
    domain = SparseDomain(m, K)
    x = active_to_dense(domain.unrank(np.arange(domain.size)), m)
    members = np.zeros((len(sets), m), dtype=bool)
    for g, s in enumerate(sets):
        members[g, s] = True
    true = (x[:, None, :] >= members[None, :, :]).all(axis=2)     # F_g inside S
    value, exact = and_maximum(sets, K)
    truth = int(true.sum(axis=1).max())
    assert value >= truth and (value == truth or not exact)
    return exact


@pytest.mark.parametrize("op", ["&", "|"])
def test_sparsity_bound_is_safe_on_large_domains(op, monkeypatch):
    """The bound used when the domain is too large to enumerate is never below the true maximum
    (computed here by enumeration)."""
    import compiler.superposed.multilevel as ml
    text = (f"input x[30]; sparsity 3; wire g[i] = x[i] {op} x[(i * 7 + 3) % 30] for i in 0..29;"
            " wire h[i] = x[i] & x[i + 1] & x[i + 2] for i in 0..27;"
            " output z[i] = g[i] & h[i] for i in 0..27;")
    circuit = dsl.loads(text, "bound.sup")
    _, features, spec = candidates(circuit, np.arange(circuit.n_outputs))
    exact = spec.sparsity
    assert spec.bound_how.startswith("exact")
    monkeypatch.setattr(ml, "EXACT_BOUND_LIMIT", 0)
    bound, how = sparsity_bound(circuit, features)
    assert bound >= exact
    domain = SparseDomain(30, 3)
    x = active_to_dense(domain.unrank(np.arange(domain.size)), 30)
    assert exact == int((signal_values(circuit, x)[:, features] != 0).sum(axis=1).max())
