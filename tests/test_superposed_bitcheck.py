"""The bitset exactness check (compiler/superposed/bitcheck.py) and the monotone re-check of
the repair (channels.recheck_redrawn), each against an independent reference: brute force on
the whole domain, a set-based reading of the criterion, and the dense count product."""

import numpy as np
import pytest

import dsl
from compiler.superposed import merge_network, superposable
from compiler.superposed.bitcheck import failing_outputs_bits, listen_bits
from compiler.superposed.channels import (assign_random, failing_outputs, listen_sets,
                                          recheck_redrawn, sorted_unique)
from tests.test_superposed import brute_failing_outputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PAIRS = ("const P = pairs(40, 260, seed=3); input x[40]; sparsity 2;"
         " output y[u, v] = x[u] & x[v] for (u, v) in P;")
WIDE = ("const P = pairs(150, 500, seed=2); input x[150]; sparsity 2;"
        " output y[u, v] = x[u] & x[v] for (u, v) in P;")             # 3 words per bitset row
TRIPLES = ("input x[14]; sparsity 3; output y[i, j, k] = x[i] & x[j] & x[k] "
           "for i in 0..14, j in i+1..14, k in j+1..14;")
MIXED = ("input x[24]; sparsity 2; output o[i] = x[i] | x[(i + 1) % 24] for i in 0..24;"
         " output a[i] = x[i] & x[(i + 5) % 24] for i in 0..24;"
         " output t[i] = atleast(2, x[i], x[(i + 2) % 24], x[(i + 7) % 24]) for i in 0..24;")


def spec_of(text):
    """(circuit, positions, ChannelSpec) of a circuit text."""
    circuit = dsl.loads(text, "bits.sup")
    positions, spec = superposable(circuit)
    return circuit, positions, spec


def shared_outside(spec, a, j):
    """Features outside F_j listened to by every neuron of C_j (Python sets)."""
    l_off, l_feat = listen_sets(spec, a)
    chan = a.c_neurons[a.c_offsets[j]:a.c_offsets[j + 1]].tolist()
    common = set.intersection(*(set(l_feat[l_off[i]:l_off[i + 1]].tolist()) for i in chan))
    return common - set(spec.f_features[spec.f_offsets[j]:spec.f_offsets[j + 1]].tolist())


def set_reference(spec, a):
    """Outputs with q_j = 1 failing the criterion, read with Python sets: some feature outside
    F_j is listened to by every neuron of C_j."""
    l_off, l_feat = listen_sets(spec, a)
    sets = [set(l_feat[l_off[i]:l_off[i + 1]].tolist()) for i in range(a.n)]
    bad = []
    for j in range(spec.n_outputs):
        if spec.free[j] != 1:
            continue
        chan = a.c_neurons[a.c_offsets[j]:a.c_offsets[j + 1]].tolist()
        common = set.intersection(*(sets[i] for i in chan)) if chan else set(range(spec.m))
        if common - set(spec.f_features[spec.f_offsets[j]:spec.f_offsets[j + 1]].tolist()):
            bad.append(j)
    return np.array(bad, dtype=np.int64)


def test_listen_bits_hold_exactly_the_listen_sets():
    _, _, spec = spec_of(PAIRS)
    a = assign_random(spec, 30, 4, np.random.default_rng(1))
    l_off, l_feat = listen_sets(spec, a)
    bits = listen_bits(a.n, spec.m, (l_off, l_feat))
    assert bits.shape == (30, 1)
    dense = np.unpackbits(bits.view(np.uint8), axis=1, bitorder="little")[:, :spec.m]
    expected = np.zeros((30, spec.m), dtype=np.uint8)
    expected[np.repeat(np.arange(30), np.diff(l_off)), l_feat] = 1
    np.testing.assert_array_equal(dense, expected)
    # unsorted, duplicated entries give the same bitset
    order = np.random.default_rng(2).permutation(len(l_feat))
    rows = np.repeat(np.arange(30), np.diff(l_off))[order]
    rows, feats = np.r_[rows, rows[:5]], np.r_[l_feat[order], l_feat[order][:5]]
    off = np.r_[0, np.cumsum(np.bincount(rows, minlength=30))]
    np.testing.assert_array_equal(listen_bits(30, spec.m, (off, feats[np.argsort(rows, kind="stable")])),
                                  bits)


@pytest.mark.parametrize("text", [PAIRS, WIDE, TRIPLES])
def test_bitset_check_matches_brute_force(text):
    """Unrepaired random assignments (some outputs fail): the bitset path names exactly the
    outputs brute force over the whole domain finds wrong."""
    circuit, positions, spec = spec_of(text)
    assert (spec.free == 1).all()
    seen = 0
    for seed, (n, t) in enumerate([(24, 3), (40, 4), (60, 5), (200, 2), (120, 3)]):
        a = assign_random(spec, n, t, np.random.default_rng(seed))
        net = merge_network(circuit, spec, positions, a, None, np.zeros(0, np.int64))
        actual, _ = brute_failing_outputs(circuit, net)
        bits = failing_outputs_bits(spec, a, listen_sets(spec, a), np.arange(spec.n_outputs))
        assert set(bits.tolist()) == actual
        seen += len(actual)
    assert seen > 0                     # not vacuous


@pytest.mark.parametrize("text", [PAIRS, WIDE, TRIPLES, MIXED])
def test_auto_matches_dense_and_sets(text):
    """Many random widths and channel sizes: "auto" (bitset for q = 1, dense for the rest) ==
    "dense" == the set reading (on q = 1 outputs); also in tiny memory blocks."""
    _, _, spec = spec_of(text)
    rng = np.random.default_rng(7)
    for _ in range(12):
        t = int(rng.integers(2, 6))
        n = int(rng.integers(2 * t + 2, 70))
        a = assign_random(spec, n, t, rng)
        auto = failing_outputs(spec, a)
        np.testing.assert_array_equal(auto, failing_outputs(spec, a, method="dense"))
        single = np.flatnonzero(spec.free == 1)
        np.testing.assert_array_equal(np.intersect1d(auto, single), set_reference(spec, a))
        small = failing_outputs_bits(spec, a, listen_sets(spec, a),
                                     single, max_bytes=1)
        np.testing.assert_array_equal(small, np.intersect1d(auto, single))


def test_partial_check_reports_only_real_failures_in_its_words():
    _, _, spec = spec_of(WIDE)
    a = assign_random(spec, 60, 3, np.random.default_rng(4))
    listen = listen_sets(spec, a)
    every = np.arange(spec.n_outputs)
    full = failing_outputs_bits(spec, a, listen, every)
    assert len(full)
    part = failing_outputs_bits(spec, a, listen, every, features=np.array([70, 140]))
    assert set(part.tolist()) < set(full.tolist())
    assert len(part) > 0
    # exactly the outputs whose shared non-operand features include one of words 1 and 2
    ref = [j for j in full.tolist() if any(64 <= f < 192 for f in shared_outside(spec, a, j))]
    np.testing.assert_array_equal(part, ref)
    whole = failing_outputs_bits(spec, a, listen, every, features=np.arange(spec.m))
    np.testing.assert_array_equal(whole, full)


@pytest.mark.parametrize("text", [PAIRS, WIDE, TRIPLES])
def test_recheck_after_redraw_equals_a_full_check(text):
    """The repair's monotone re-check (only the redrawn outputs in full, their neighbours on the
    redrawn operands' words) finds exactly what a full check finds."""
    _, _, spec = spec_of(text)
    rng = np.random.default_rng(11)
    compared = 0
    for n, t in [(40, 3), (60, 4), (90, 4), (120, 5)]:
        a = assign_random(spec, n, t, rng)
        c = a.c_neurons.reshape(spec.n_outputs, t)
        for _ in range(4):
            failing = failing_outputs(spec, a)
            if len(failing) == 0:
                break
            keys = rng.random((len(failing), n))
            c[failing] = np.argsort(keys, axis=1)[:, :t]
            a.c_neurons = c.ravel()
            listen = listen_sets(spec, a)
            np.testing.assert_array_equal(recheck_redrawn(spec, a, listen, failing),
                                          failing_outputs(spec, a, listen))
            compared += 1
    assert compared >= 4


def test_sorted_unique_is_np_unique():
    rng = np.random.default_rng(0)
    for size in (0, 1, 5, 1000):
        x = rng.integers(0, 50, size)
        np.testing.assert_array_equal(sorted_unique(x), np.unique(x))


def test_unknown_method_is_refused():
    _, _, spec = spec_of(PAIRS)
    a = assign_random(spec, 30, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown method"):
        failing_outputs(spec, a, method="sparse")
