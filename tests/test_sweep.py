"""SAT sweeping (verify/sweep.py) against brute force.

* the atom simulation reproduces the network's numpy forward; sampled inputs stay in the domain;
* array multipliers (bench/make_multiplier.py, 4x4 to 8x8) and random circuits are proved with
  the sweep forced before the first query, and the verdict agrees with brute force; every
  merged equality holds on every input;
* planted bugs (a flipped weight, a wrong bias, random one-parameter changes) are refuted with
  counterexamples brute force confirms, never verified; a bug on one input in 2^21, which random
  simulation never sees, is refuted too; a read-out exactly at the threshold stays flagged;
* an equivalence that holds only on the sparse domain (xor = or when at most one input is
  active) is merged only under the sparsity promise, and the verdicts agree with exhaustive
  checking with and without it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import dsl
import verify.sweep as sweep_mod
from compiler import compile_circuit
from dsl.semantics import evaluate, signal_values
from verify import verify, verify_exhaustive, verify_smt_boolean
from verify.smt import module_layers
from verify.smt_boolean import encode
from verify.sweep import AtomGraph, neighbours, sample_domain, sweep

try:
    from tests.test_verify import (brute_force, brute_force_margin, check_smt_refutes, cpu,
                                   perturbed, plant_bug, random_example)
except ImportError:  # pragma: no cover
    from test_verify import (brute_force, brute_force_margin, check_smt_refutes, cpu,
                             perturbed, plant_bug, random_example)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from make_multiplier import multiplier  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_local_proof")


@pytest.fixture
def sweep_first(monkeypatch):
    """Sweep before the first query (FIRST_TRY_MS 0), so small circuits exercise the sweep."""
    monkeypatch.setattr(sweep_mod, "FIRST_TRY_MS", 0)


def mult_network(n: int):
    """(circuit, dense network) of the n x n array multiplier."""
    circuit = dsl.loads(multiplier(n), name=f"mult{n}")
    return circuit, compile_circuit(circuit, target="dense")


def all_inputs(m: int) -> np.ndarray:
    """bool [2^m, m]: every assignment of m inputs."""
    v = np.arange(1 << m)
    return ((v[:, None] >> np.arange(m)) & 1).astype(bool)


# ================================================================ simulation

def test_atom_simulation_reproduces_the_forward():
    """The last hidden layer's neurons, read from the simulated atoms through their Forms,
    equal the numpy forward of the module's layers on every input of a 4x4 multiplier."""
    circuit, net = mult_network(4)
    module = cpu(net)
    enc = encode(circuit, module)[1]
    x = all_inputs(circuit.n_inputs)
    atoms = AtomGraph(enc).simulate(x)
    h = x.astype(float)[:, np.asarray(module.input_map.cpu())]
    for layer in module_layers(module)[:-1]:
        z = np.zeros((len(x), layer.n_out))
        np.add.at(z.T, layer.rows, (h[:, layer.cols] * layer.vals).T)
        h = np.maximum(z + layer.bias, 0) if layer.relu else z + layer.bias
    for r, form in enc.values.items():
        value = float(form.const) + sum(float(c) * atoms[a] for a, c in form.terms.items())
        assert np.array_equal(value, h[:, r]), r


def test_samples_and_neighbours_stay_in_the_domain():
    rng = np.random.default_rng(0)
    x = sample_domain(40, 3, 500, rng)
    counts = x.sum(axis=1)
    assert counts.max() == 3 and set(counts.tolist()) == {0, 1, 2, 3}
    near = neighbours(x[counts == 3][0], 3, 31, rng)
    assert (near.sum(axis=1) <= 3).all() and len(near) > 1
    assert sample_domain(10, None, 400, rng).sum(axis=1).max() > 3


# ================================================================ proofs

@pytest.mark.parametrize("n", [4, 6, 8])
def test_multipliers_proved_by_sweeping(sweep_first, n):
    circuit, net = mult_network(n)
    report = verify_smt_boolean(circuit, net, cpu(net), progress=False)
    assert report["verified"] is True, (report["undecided"], report["counterexamples"])
    assert report["outputs_checked"] == 2 * n
    stats = report["encoding"]["sweep"]
    assert stats["complete"] and stats["merged"] > 0 and stats["unknown"] == 0
    if n <= 6:                         # independent references: every input
        assert not brute_force(circuit, net)
        assert verify_exhaustive(circuit, cpu(net), progress=False)["failing_inputs"] == 0


def test_sweep_merges_are_true_equalities():
    """Every atom the sweep merged equals its signal (or atom) on all 2^12 inputs of a 6x6
    multiplier (atoms simulated, signals evaluated)."""
    circuit, net = mult_network(6)
    solver, enc, spec, features, _, _ = encode(circuit, cpu(net))
    merges = []
    stats, _ = sweep(solver, enc, spec, features, circuit, merges=merges)
    assert stats["merged"] == len(merges) > 0
    x = all_inputs(circuit.n_inputs)
    atoms = AtomGraph(enc).simulate(x)
    signals = signal_values(circuit, x.astype(np.uint8)).T.astype(bool)
    n = circuit.n_signals
    for atom, node, opposite in merges:
        other = signals[node] if node < n else atoms[node - n]
        assert np.array_equal(atoms[atom], other ^ opposite), (atom, node)


@pytest.mark.parametrize("seed", [0, 6, 11, 13, 15, 19, 21, 30, 35, 36])
def test_random_circuits_swept_agree_with_brute_force(sweep_first, seed):
    """Random circuits (sparsity promises, several gate kinds), swept before the first query:
    the verdict agrees with brute force, and a planted bug is refuted."""
    circuit, net = random_example(seed)
    report = verify_smt_boolean(circuit, net, cpu(net), progress=False)
    assert report["verified"] is (not brute_force(circuit, net))
    assert report["encoding"]["sweep"]["complete"]
    bad, fails = plant_bug(circuit, net, seed)
    check_smt_refutes(circuit, verify_smt_boolean(circuit, bad, cpu(bad), progress=False), fails)


# ================================================================ planted bugs

def _middle_change(net, what: str):
    """The first change in the middle layer (a weight negated, or a bias raised by one) that
    makes some input of the 4x4 multiplier wrong: (bad net, brute-force failures)."""
    li = len(net.layers) // 2
    layer = net.layers[li]
    count = len(layer.vals) if what == "w" else layer.n_out
    for i in range(count):
        delta = -2 * layer.vals[i] if what == "w" else 1.0
        bad = perturbed(net, li, what, i, delta)
        fails = brute_force(CIRCUIT4, bad)
        if fails:
            return bad, fails
    raise AssertionError("no change fails")


CIRCUIT4, NET4 = mult_network(4)


@pytest.mark.parametrize("what", ["w", "b"])
def test_flipped_weight_and_wrong_bias_refuted(sweep_first, what):
    bad, fails = _middle_change(NET4, what)
    report = verify_smt_boolean(CIRCUIT4, bad, cpu(bad), progress=False)
    check_smt_refutes(CIRCUIT4, report, fails)


@pytest.mark.parametrize("seed", range(4))
def test_random_planted_bugs_refuted(sweep_first, seed):
    bad, fails = plant_bug(CIRCUIT4, NET4, seed)
    report = verify(CIRCUIT4, bad, cpu(bad), method="smt", progress=False)
    check_smt_refutes(CIRCUIT4, report, fails)


def test_bug_simulation_never_sees_is_refuted(sweep_first):
    """The network computes and(x[0..19]) where the spec has and(x[0..20]): wrong on one input
    in 2^21, so every sampled class holds both; the proof still finds it and it replays."""
    spec = dsl.loads("input x[21]; output y = xor(and(x[i] for i in 0..21), x[20]);", name="r")
    wrong = dsl.loads("input x[21]; output y = xor(and(x[i] for i in 0..20), x[20]);", name="r")
    net = compile_circuit(wrong, target="dense")
    report = verify_smt_boolean(spec, net, cpu(net), progress=False)
    assert report["verified"] is False and report["counterexamples"]
    lookup = spec.input_lookup()
    x = np.zeros((1, 21), bool)
    x[0, [lookup[name] for name in report["counterexamples"][0]["active"]]] = True
    assert (net.forward(x)[0, 0] > net.threshold) != bool(evaluate(spec, x)[0, 0])


def test_readout_at_the_threshold_stays_flagged(sweep_first):
    """Read-out bias + 0.5 puts output p3 exactly at the threshold where it should be 0: right
    in exact arithmetic (0.5 > 0.5 is false), but the row is not exact in float, so the swept
    proof is flagged and the verdict undecided, not verified."""
    bad = perturbed(NET4, len(NET4.layers) - 1, "b", 3, 0.5)
    assert not brute_force(CIRCUIT4, bad) and brute_force_margin(CIRCUIT4, bad) == 0.0
    report = verify_smt_boolean(CIRCUIT4, bad, cpu(bad), outputs=[3], progress=False)
    assert report["verified"] is None and report["outputs_refuted"] == 0
    assert report["flagged_rounding"] == ["p3"]


# ================================================================ the domain

TAIL = "output y = xor(w, x[2]); output z = w & x[3];"
DOMAIN_SPEC = "input x[4]; {s} wire w = xor(x[0], x[1]); " + TAIL
DOMAIN_NET = "input x[4]; {s} wire w = or(x[0], x[1]); " + TAIL


@pytest.mark.parametrize("sparsity,holds", [(1, True), (2, False), (None, False)])
def test_domain_only_equivalence(sparsity, holds):
    """or(x0, x1) equals xor(x0, x1) only when at most one input is active: the sweep may
    merge the network's OR with the circuit's XOR only under `sparsity 1`, and the verdict
    agrees with exhaustive checking in every case."""
    s = "" if sparsity is None else f"sparsity {sparsity};"
    circuit = dsl.loads(DOMAIN_SPEC.format(s=s), name="d")
    net = compile_circuit(dsl.loads(DOMAIN_NET.format(s=s), name="d"), target="dense")
    solver, enc, spec, features, _, _ = encode(circuit, cpu(net))
    merges = []
    sweep(solver, enc, spec, features, circuit, merges=merges)
    xor_id = next(i for i in range(circuit.n_signals) if i > circuit.n_inputs + 1 and
                  np.array_equal(signal_values(circuit, all_inputs(4).astype(np.uint8))[:, i],
                                 all_inputs(4)[:, 0] ^ all_inputs(4)[:, 1]))
    assert any(node == xor_id for _, node, _ in merges) is holds
    report = verify_smt_boolean(circuit, net, cpu(net), progress=False)
    exhaustive = verify_exhaustive(circuit, cpu(net), progress=False)
    assert report["verified"] is holds
    assert (exhaustive["failing_inputs"] == 0) is holds and (not brute_force(circuit, net)) is holds
    if not holds:
        check_smt_refutes(circuit, report, brute_force(circuit, net))
