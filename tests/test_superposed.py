"""The superposed target: the exact channel criterion, compilation, and verification.

The reference for every claim is brute force: the network's numpy forward on every input of
the domain against the circuit's reference semantics.
"""

import copy

import numpy as np
import pytest
import torch

import dsl
from backends import SupModule
from compiler import compile_circuit
from compiler.superposed.channels import (ChannelSpec, assign_design, assign_random, failing_outputs,
                               listen_sets)
from compiler.superposed import superposable
from dsl.domain import SparseDomain
from dsl.semantics import active_to_dense, evaluate
from verify import verify_exhaustive
from verify.structural import verify_structural

torch.set_num_threads(1)


def brute_failing_outputs(circuit, net):
    domain = SparseDomain(circuit.n_inputs, circuit.sparsity)
    x = active_to_dense(domain.unrank(np.arange(domain.size)), circuit.n_inputs)
    spec = evaluate(circuit, x)
    y = net.forward(x.astype(float)) > net.threshold
    wrong = (spec != 2) & (y != (spec == 1))
    return set(np.flatnonzero(wrong.any(axis=0)).tolist()), int(wrong.any(axis=1).sum())


def circuit_text(features, pairs, k, extra=""):
    return (f"const P = pairs({features}, {pairs}, seed=5); input x[{features}]; sparsity {k};"
            f" output y[u, v] = x[u] & x[v] for (u, v) in P; {extra}")


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("how", [assign_random, assign_design])
def test_criterion_matches_brute_force(k, how):
    """Unrepaired random assignments (so some outputs fail): the combinatorial check names
    exactly the outputs that brute force finds wrong."""
    circuit = dsl.loads(circuit_text(24, 120, k), "crit.sup")
    positions, spec = superposable(circuit)
    assert len(positions) == circuit.n_outputs
    seen_failures = 0
    for seed in range(3):
        rng = np.random.default_rng(seed)
        a = how(spec, 30, 4, rng)
        predicted = set(failing_outputs(spec, a).tolist())
        net = compile_circuit(circuit, "superposed", width=30, channel=4, seed=seed)
        # rebuild the unrepaired assignment into a network through the same merge code
        from compiler.superposed import merge_network
        raw = merge_network(circuit, spec, positions, a, None, np.zeros(0, np.int64))
        actual, _ = brute_failing_outputs(circuit, raw)
        assert predicted == actual
        seen_failures += len(actual)
        del net
    assert seen_failures > 0  # the width is small enough that the comparison is not vacuous


@pytest.mark.parametrize("text", [
    circuit_text(64, 400, 2),
    circuit_text(40, 200, 3),
    circuit_text(48, 150, 2, "output o[i] = or(x[i], x[i+1], x[i+2]) for i in 0..30;"
                 " output c[i] = x[i] for i in 0..10; output n = !x[0] & x[1];"),
    "input x[30]; sparsity 3; output t[i] = atleast(2, x[i], x[i+1], x[i+2], x[i+5]) for i in 0..25;",
])
def test_compiled_networks_are_exact_on_the_whole_domain(text):
    circuit = dsl.loads(text, "sp.sup")
    net = compile_circuit(circuit, "superposed")
    failing, _ = brute_failing_outputs(circuit, net)
    assert failing == set()
    report = verify_exhaustive(circuit, SupModule(net, device="cpu"), progress=False)
    assert report["verified"] is True and report["min_margin"] == 0.5
    assert net.meta["superposed_outputs"] + net.meta["dense_outputs"] == circuit.n_outputs


def test_superposition_compresses_pairwise_and():
    circuit = dsl.loads(circuit_text(256, 2000, 2), "big.sup")
    net = compile_circuit(circuit, "superposed", channel=8)
    assert net.meta["superposed_outputs"] == 2000
    assert net.layers[0].n_out < 2000 / 2          # far fewer neurons than outputs
    module = SupModule(net, device="cpu")
    assert verify_structural(circuit, net, module)["verified"] is True
    assert verify_exhaustive(circuit, module, progress=False)["verified"] is True


def test_planted_failure_is_caught_by_both_verifiers():
    circuit = dsl.loads(circuit_text(64, 300, 2), "plant.sup")
    net = compile_circuit(circuit, "superposed")
    bad = copy.deepcopy(net)
    hidden = bad.layers[0]
    extra = np.setdiff1d(np.arange(64), hidden.cols[hidden.rows == 0])
    hidden.rows = np.concatenate([hidden.rows, np.zeros(len(extra), np.int64)])
    hidden.cols = np.concatenate([hidden.cols, extra])
    hidden.vals = np.concatenate([hidden.vals, np.ones(len(extra))])
    expected_outputs, expected_inputs = brute_failing_outputs(circuit, bad)
    assert expected_outputs
    module = SupModule(bad, device="cpu")
    exhaustive = verify_exhaustive(circuit, module, progress=False, max_counterexamples=10**6)
    structural = verify_structural(circuit, bad, module, max_counterexamples=10**6)
    assert exhaustive["verified"] is False and structural["verified"] is False
    assert exhaustive["failing_inputs"] == expected_inputs
    names = set(circuit.output_names(sorted(expected_outputs)))
    assert {w for c in structural["counterexamples"] for w in c["wrong"]} == names
    assert {w for c in exhaustive["counterexamples"] for w in c["wrong"]} == names


def test_structural_is_undecided_outside_its_shape():
    circuit = dsl.load("examples/c17.sup")
    net = compile_circuit(circuit, "dense")
    report = verify_structural(circuit, net, SupModule(net, device="cpu"))
    assert report["verified"] is None and report["not_applicable"]


def test_listen_sets_contain_every_channel_operand():
    circuit = dsl.loads(circuit_text(32, 100, 2), "ls.sup")
    _, spec = superposable(circuit)
    a = assign_random(spec, 40, 5, np.random.default_rng(1))
    l_off, l_feat = listen_sets(spec, a)
    chans = a.c_neurons.reshape(-1, 5)
    for j in range(spec.n_outputs):
        feats = spec.f_features[spec.f_offsets[j]:spec.f_offsets[j + 1]]
        for i in chans[j]:
            assert set(feats) <= set(l_feat[l_off[i]:l_off[i + 1]].tolist())
