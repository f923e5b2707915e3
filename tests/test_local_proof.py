"""The local-enumeration fast path (verify/local_proof.py) against brute force.

* every neuron's truth table, read at its support signals' values, equals the numpy float64
  forward of the network on every input (4x4 multiplier, random circuits);
* what the fast path proves agrees with brute force and exhaustive checking, and the report
  names the path ("local enumeration", no solver);
* planted bugs (a flipped weight, a wrong bias, a wrong read-out threshold, random integer
  changes) are never proved by it; the z3 path refutes them with counterexamples brute force
  confirms;
* an equivalence that holds only under the sparsity promise (or = xor when at most one input
  is active) is not proved by enumeration, but verified by the z3 path (and refuted, never
  verified, without the promise);
* float rounding: a read-out at the threshold, non-dyadic weights and a positive rounding
  bound all leave the output to the z3 path.
"""

from __future__ import annotations

import copy
from fractions import Fraction

import numpy as np
import pytest

import dsl
from backends import SupModule
from compiler import compile_circuit
from dsl.semantics import signal_values
from verify import verify, verify_exhaustive
from verify.local_proof import LocalProver, prove_locally
from verify.smt import module_layers, rounding_setup
from verify.smt_boolean import tight_rounding_bounds

try:
    from tests.test_verify import (brute_force, check_smt_refutes, perturbed, plant_bug,
                                   random_example)
except ImportError:  # pragma: no cover
    from test_verify import (brute_force, check_smt_refutes, perturbed, plant_bug,
                             random_example)

from test_sweep import all_inputs, mult_network

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEEDS = list(range(24))


def cpu(net, dtype=None) -> SupModule:
    return SupModule(net, device="cpu") if dtype is None else \
        SupModule(net, device="cpu", dtype=dtype)


def _fast(circuit, module):
    return prove_locally(circuit, module, None, tight_rounding_bounds)


CIRCUIT4, NET4 = mult_network(4)


# ================================================================ the tables are exact

def _forward_hidden(module, x):
    """Every hidden layer's numpy float64 forward on inputs x (a list of [B, n] arrays)."""
    h = x.astype(float)[:, np.asarray(module.input_map.cpu())]
    out = []
    for layer in module_layers(module)[:-1]:
        z = np.zeros((len(x), layer.n_out))
        np.add.at(z.T, layer.rows, (h[:, layer.cols] * layer.vals).T)
        h = np.maximum(z + layer.bias, 0) if layer.relu else z + layer.bias
        out.append(h)
    return out


def _check_tables(circuit, net):
    """Each layer's tables, read at the support signals of every input of the domain, equal
    the forward (the prover is run layer by layer: `values` after each is that layer's)."""
    module = cpu(net)
    layers, input_map, _, _ = rounding_setup(circuit, module)
    x = all_inputs(circuit.n_inputs)
    if circuit.sparsity is not None:
        x = x[x.sum(axis=1) <= circuit.sparsity]
    signals = signal_values(circuit, x.astype(np.uint8)).astype(np.int64)
    forward = _forward_hidden(module, x)
    checked = 0
    for depth in range(1, len(layers)):
        prover = LocalProver(circuit, layers[:depth] + layers[-1:], input_map)
        if prover.hidden() is None:
            return checked
        for r, (support, table) in enumerate(prover.values):
            idx = np.zeros(len(x), dtype=np.int64)
            for j, s in enumerate(support):
                idx |= signals[:, s] << j
            assert np.array_equal(table[idx], forward[depth - 1][:, r]), (depth, r)
            checked += 1
    return checked


def test_tables_equal_the_forward_on_a_multiplier():
    assert _check_tables(CIRCUIT4, NET4) == sum(layer.n_out for layer in NET4.layers[:-1])


@pytest.mark.parametrize("seed", [0, 3, 6, 11, 13])
def test_tables_equal_the_forward_on_random_circuits(seed):
    circuit, net = random_example(seed)
    if circuit.has_dont_care:
        pytest.skip("don't-care circuits are not enumerated")
    assert _check_tables(circuit, net) > 0


# ================================================================ agreement

def test_multipliers_proved_without_a_solver():
    for n in (4, 6):
        circuit, net = mult_network(n)
        report = verify(circuit, net, cpu(net), method="smt", progress=False)
        assert report["verified"] is True and report["outputs_checked"] == 2 * n
        assert report["encoding"]["name"] == "local enumeration"
        assert report["encoding"]["matched"] > 0
        assert "local enumeration" in report["note"]
        assert not brute_force(circuit, net)


def test_random_circuits_agree_with_brute_force():
    """Whatever the fast path proves is right on every input; it proves most of them; the
    full smt verdict agrees with brute force on all."""
    proved = 0
    for seed in SEEDS:
        circuit, net = random_example(seed)
        fails = brute_force(circuit, net)
        fast = _fast(circuit, cpu(net))
        if fast is not None:
            proved += 1
            assert fast["verified"] is True and not fails, seed
            assert verify_exhaustive(circuit, cpu(net), progress=False)["failing_inputs"] == 0
        report = verify(circuit, net, cpu(net), method="smt", progress=False)
        assert report["verified"] is (not fails), seed
    assert proved >= len(SEEDS) // 2


# ================================================================ planted bugs

def _first_failing_change(what: str):
    li = len(NET4.layers) // 2
    layer = NET4.layers[li]
    for i in range(len(layer.vals) if what == "w" else layer.n_out):
        bad = perturbed(NET4, li, what, i, -2 * layer.vals[i] if what == "w" else 1.0)
        fails = brute_force(CIRCUIT4, bad)
        if fails:
            return bad, fails
    raise AssertionError("no change fails")


@pytest.mark.parametrize("what", ["w", "b", "threshold"])
def test_planted_bugs_never_proved(what):
    if what == "threshold":
        bad = copy.deepcopy(NET4)
        bad.threshold = 1.5                     # every output that should be 1 reads 0
        fails = brute_force(CIRCUIT4, bad)
        assert fails
    else:
        bad, fails = _first_failing_change(what)
    assert _fast(CIRCUIT4, cpu(bad)) is None
    report = verify(CIRCUIT4, bad, cpu(bad), method="smt", progress=False)
    check_smt_refutes(CIRCUIT4, report, fails)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 5, 6])
def test_random_planted_bugs_never_proved(seed):
    circuit, net = random_example(seed)
    bad, fails = plant_bug(circuit, net, seed, proper=False)
    assert fails and _fast(circuit, cpu(bad)) is None
    assert _fast(CIRCUIT4, cpu(plant_bug(CIRCUIT4, NET4, seed)[0])) is None


def test_every_change_proved_is_harmless():
    """300 random integer changes of one weight or bias anywhere in the 4x4 multiplier:
    whenever the fast path still proves the network, brute force finds no failing input;
    it proves none of the changes that break it."""
    rng = np.random.default_rng(0)
    broken = 0
    for _ in range(300):
        li = int(rng.integers(len(NET4.layers)))
        layer = NET4.layers[li]
        what = "w" if rng.random() < 0.6 else "b"
        i = int(rng.integers(len(layer.vals) if what == "w" else layer.n_out))
        bad = perturbed(NET4, li, what, i, float(rng.choice([-2.0, -1.0, 1.0, 2.0])))
        fails = brute_force(CIRCUIT4, bad)
        broken += bool(fails)
        if _fast(CIRCUIT4, cpu(bad)) is not None:
            assert not fails, (li, what, i)
    assert broken > 100


# ================================================================ the domain

TAIL = "output y = xor(w, x[2]); output z = w & x[3];"
DOMAIN_SPEC = "input x[4]; {s} wire w = xor(x[0], x[1]); " + TAIL
DOMAIN_NET = "input x[4]; {s} wire w = or(x[0], x[1]); " + TAIL


@pytest.mark.parametrize("sparsity,holds", [(1, True), (2, False), (None, False)])
def test_domain_only_equivalence_left_to_z3(sparsity, holds):
    """or = xor only when at most one input is active: enumeration over all assignments never
    proves it; the z3 path verifies it under `sparsity 1` and refutes it otherwise."""
    s = "" if sparsity is None else f"sparsity {sparsity};"
    circuit = dsl.loads(DOMAIN_SPEC.format(s=s), name="d")
    net = compile_circuit(dsl.loads(DOMAIN_NET.format(s=s), name="d"), target="dense")
    assert _fast(circuit, cpu(net)) is None
    report = verify(circuit, net, cpu(net), method="smt", progress=False)
    assert report["encoding"]["name"] != "local enumeration"
    assert report["verified"] is holds
    assert (not brute_force(circuit, net)) is holds
    if not holds:
        check_smt_refutes(circuit, report, brute_force(circuit, net))


# ================================================================ float rounding

def test_readout_at_the_threshold_falls_back():
    """Read-out bias + 0.5 puts p3 exactly at the threshold where it should be 0: the fast
    path does not take it; the z3 path flags it (undecided)."""
    bad = perturbed(NET4, len(NET4.layers) - 1, "b", 3, 0.5)
    assert not brute_force(CIRCUIT4, bad)
    assert _fast(CIRCUIT4, cpu(bad)) is None
    report = verify(CIRCUIT4, bad, cpu(bad), method="smt", progress=False)
    assert report["verified"] is None and report["flagged_rounding"] == ["p3"]


def test_non_integer_weights_fall_back():
    """Read-out scaled by 1/3 (not exact in float): no fast path; the z3 path still proves
    it with its rounding margins."""
    bad = copy.deepcopy(NET4)
    last = bad.layers[-1]
    last.vals = last.vals / 3.0
    last.bias = (last.bias - 0.5) / 3.0 + 0.5 / 3.0
    bad.threshold = 0.5 / 3.0
    assert not brute_force(CIRCUIT4, bad)
    assert _fast(CIRCUIT4, cpu(bad)) is None
    report = verify(CIRCUIT4, bad, cpu(bad), method="smt", progress=False)
    assert report["encoding"]["name"] != "local enumeration"
    assert report["verified"] is not False


def test_positive_rounding_bound_is_carried():
    """An output proved with margin 0.5 (integer read-out, threshold 0.5) is not proved when
    the rounding bound is 0.5 or more: the margin check is the z3 path's."""
    layers, input_map, _, threshold = rounding_setup(CIRCUIT4, cpu(NET4))
    prover = LocalProver(CIRCUIT4, layers, input_map)
    assert prover.hidden() is not None
    t, driver = Fraction(threshold), int(CIRCUIT4.output_drivers[0])
    assert prover.output_proved(0, driver, t, Fraction(0))
    assert prover.output_proved(0, driver, t, Fraction(1, 4))
    assert not prover.output_proved(0, driver, t, Fraction(1, 2))
