"""Boolean-neuron SMT proofs (verify/smt_boolean.py) against brute force.

* `neuron_is_boolean` agrees with enumerating every 0/1 input of random small neurons, both
  through subset sums and through the pseudo-Boolean query (cap 0 forces the query);
* correct dense networks (examples, random circuits) are proved, and the verdict agrees with
  exhaustive checking; the encoding is reported;
* planted bugs (one weight or bias changed) are refuted with counterexamples that brute force
  confirms, including through `verify(..., method="smt")`.
"""

from __future__ import annotations

import itertools
import random
from fractions import Fraction

import numpy as np
import pytest

from verify import verify, verify_exhaustive, verify_smt_boolean
from verify.smt_boolean import classify_neurons, neuron_is_boolean

try:
    from tests.test_verify import (PLANTED, _planted_source, brute_force, check_smt_refutes, cpu,
                                   example, plant_bug, random_example)
except ImportError:  # pragma: no cover
    from test_verify import (PLANTED, _planted_source, brute_force, check_smt_refutes, cpu,
                             example, plant_bug, random_example)

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_local_proof")


def _brute_boolean(ws, b) -> bool:
    for xs in itertools.product((0, 1), repeat=len(ws)):
        pre = sum(w * x for w, x in zip(ws, xs)) + b
        if pre > 0 and pre != 1:
            return False
    return True


@pytest.mark.parametrize("seed", range(60))
def test_neuron_is_boolean_matches_enumeration(seed):
    rng = random.Random(seed)
    n = rng.randint(0, 6)
    ws = [Fraction(rng.choice([-2, -1, 1, 1, 2, 3]), rng.choice([1, 1, 2, 4])) for _ in range(n)]
    b = Fraction(rng.randint(-4, 2), rng.choice([1, 2]))
    want = _brute_boolean(ws, b)
    assert neuron_is_boolean(ws, b) == want
    assert neuron_is_boolean(ws, b, cap=0) == want          # the pseudo-Boolean query


def test_gate_neurons_are_boolean_and_sums_are_not():
    assert neuron_is_boolean([Fraction(1)] * 5, Fraction(-4))        # AND of 5
    assert neuron_is_boolean([Fraction(1), Fraction(-1)], Fraction(0))   # a & ~b
    assert not neuron_is_boolean([Fraction(1), Fraction(1)], Fraction(0))  # a + b reaches 2
    assert not neuron_is_boolean([Fraction(1, 2)], Fraction(0))           # 1/2


def test_classify_neurons_on_a_dense_network_matches_its_values():
    """Every neuron called boolean takes only 0/1 over the whole domain (numpy forward)."""
    from dsl.domain import to_dense, verification_domain
    circuit, net = example("xor_majority")
    layers = [l.numpy() for l in cpu(net).layers()]
    masks = classify_neurons(layers, np.ones(layers[0].n_in, bool))
    assert sum(int(m.sum()) for m in masks) > 0
    dom = verification_domain(circuit)
    x = to_dense(dom.unrank(np.arange(dom.size, dtype=np.int64)), circuit.n_inputs)
    h = np.zeros((x.shape[0], layers[0].n_in))
    np.add.at(h.T, np.asarray(cpu(net).input_map.cpu()), x.T.astype(float))
    for layer, mask in zip(layers[:-1], masks):
        z = np.zeros((h.shape[0], layer.n_out))
        np.add.at(z.T, layer.rows, (h[:, layer.cols] * layer.vals).T)
        z += layer.bias
        h = np.maximum(z, 0) if layer.relu else z
        assert np.isin(h[:, mask], (0.0, 1.0)).all()


@pytest.mark.parametrize("name", ["c17", "multilevel", "xor_majority", "lookup_table",
                                  "pairs_small"])
def test_examples_proved_and_agree_with_exhaustive(name):
    circuit, net = example(name)
    module = cpu(net)
    report = verify_smt_boolean(circuit, net, module, progress=False)
    assert report["verified"] is True, (report["undecided"], report["counterexamples"])
    assert report["outputs_checked"] == circuit.n_outputs
    assert report["encoding"]["boolean"] > 0
    assert verify_exhaustive(circuit, module, progress=False)["verified"] is True


@pytest.mark.parametrize("seed", [1, 3, 5, 11, 21, 33])
def test_random_circuits_agree_with_brute_force(seed):
    circuit, net = random_example(seed)
    report = verify_smt_boolean(circuit, net, cpu(net), progress=False)
    assert report["verified"] is (not brute_force(circuit, net))


@pytest.mark.parametrize("kind,which,seed", PLANTED)
def test_planted_bug_refuted(kind, which, seed):
    circuit, net = _planted_source(kind, which)
    bad, fails = plant_bug(circuit, net, seed)
    check_smt_refutes(circuit, verify_smt_boolean(circuit, bad, cpu(bad), progress=False), fails)


def test_xor_parts_share_atoms_and_are_levelled():
    """An 8-input XOR's neurons relu(s - p) have several values: levelled, not real."""
    import dsl
    from verify.smt_boolean import encode
    circuit = dsl.loads("input x[8]; output y = xor(x[i] for i in 0..8);", name="x8")
    from compiler import compile_circuit
    net = compile_circuit(circuit, target="dense")
    enc = encode(circuit, cpu(net))[1]
    assert enc.kinds["real"] == 0 and enc.kinds["levelled"] > 0
    assert verify_smt_boolean(circuit, net, cpu(net), progress=False)["verified"] is True


def test_verify_smt_uses_the_boolean_encoding():
    circuit, net = example("c17")
    report = verify(circuit, net, cpu(net), method="smt", progress=False)
    assert report["verified"] is True
    assert report["encoding"]["name"] == "pseudo-Boolean"
    assert report["encoding"]["miter"] == "one query"
    bad, fails = plant_bug(circuit, net, 0)
    check_smt_refutes(circuit, verify(circuit, bad, cpu(bad), method="smt", progress=False), fails)


def test_margin_zero_is_flagged_not_verified():
    """Read-out exactly at the threshold (bias + 0.5): a non-integer row is not exact in float,
    so the proof over exact arithmetic is flagged and the verdict undecided."""
    try:
        from tests.test_verify import perturbed
    except ImportError:  # pragma: no cover
        from test_verify import perturbed
    circuit, net = example("multilevel")
    up = perturbed(net, len(net.layers) - 1, "b", 9, 0.5)
    assert not brute_force(circuit, up)
    report = verify_smt_boolean(circuit, up, cpu(up), outputs=[9], progress=False)
    assert report["verified"] is None and report["outputs_refuted"] == 0
    assert report["flagged_rounding"] == [circuit.output_names([9])[0]]


def test_integer_networks_compute_exactly_in_float():
    """Integer weights on integer-valued neurons: every partial sum is exact, bound 0."""
    circuit, net = example("c17")
    report = verify_smt_boolean(circuit, net, cpu(net), progress=False)
    assert report["verified"] is True and report["max_rounding_bound"] == 0.0


def test_multiplier_generator_multiplies_and_mult16_is_its_output():
    """bench/make_multiplier.py: a 3x3 multiplier evaluates to a * b on all 64 inputs, is
    proved by the boolean encoding, and examples/mult16.sup is its 16x16 text."""
    import sys
    from pathlib import Path
    import dsl
    from compiler import compile_circuit
    from dsl.semantics import evaluate
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "bench"))
    from make_multiplier import multiplier
    assert (root / "examples" / "mult16.sup").read_text() == multiplier(16)
    circuit = dsl.loads(multiplier(3), name="m3")
    x = np.array([[(v >> k) & 1 for k in range(6)] for v in range(64)], bool)
    y = evaluate(circuit, x)
    assert all(sum(int(y[v, k]) << k for k in range(6)) == (v & 7) * (v >> 3) for v in range(64))
    net = compile_circuit(circuit, target="dense")
    assert verify_smt_boolean(circuit, net, cpu(net), progress=False)["verified"] is True
