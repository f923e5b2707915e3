"""Tests of the unconditional -> conditional synthesis (compiler/synthesis.py).

* Random networks (integer or float weights, 1-3 hidden layers, sparse masks, permuted and
  partial input maps): the synthesised forest's numpy walk equals `Network.forward` on every
  input of S (full cube, sparse domain, or a random subset), to 1e-9 relative.
* Every example (except the pairs_16k / pairs_1m / mult16 benchmarks; pairs_1k on a sample) and random
  circuits (tests/random_circuits.py): the forest decides every output like
  `dsl.semantics.evaluate` on the whole domain wherever it is not don't care, and its read-out
  equals the dense network's; subsets of outputs leave the others without a tree.
* Operations: the walk's ops never exceed `Forest.max_ops`, and the mean over the domain is at
  most the dense network's (compiler.accounting.ops_per_input) on the examples.
* A planted bug (one leaf constant flipped) is caught by the same comparison; domains over the
  limit raise SynthesisTooLarge naming the output.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import dsl
from compiler.accounting import ops_per_input
from compiler.dense import compile_dense
from compiler.network import Layer, Network
from compiler.conditional.synthesis import SynthesisTooLarge, synthesize_circuit, synthesize_network
from compiler.conditional.tree import NEURON
from dsl.domain import SparseDomain
from dsl.semantics import evaluate
from tests.random_circuits import load_random_circuit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = {"pairs_16k.sup", "pairs_1m.sup", "mult16.sup"}   # benchmarks: bench/, not tests
EXAMPLES = sorted(f for f in os.listdir(os.path.join(ROOT, "examples"))
                  if f.endswith(".sup") and f not in SKIP)
SAMPLE = 4_000_000             # larger (inputs x outputs) are checked on a sample of inputs


# ====================================================================== helpers

def domain_active(m, k, limit=None, seed=0):
    dom = SparseDomain(m, k)
    if limit is None or dom.size <= limit:
        ranks = np.arange(dom.size, dtype=np.int64)
    else:
        ranks = np.random.default_rng(seed).choice(dom.size, limit, replace=False)
    return dom, dom.unrank(ranks)


def close(a, b):
    return np.abs(a - b) <= 1e-9 * (1 + np.abs(b))


def random_network(rng, m, depth, integer, width=None, extra_cols=0):
    """A random Network: `depth` hidden ReLU layers + read-out, sparse random weights."""
    widths = [m + extra_cols] + [int(rng.integers(2, 7)) for _ in range(depth)] + \
        [width or int(rng.integers(1, 5))]
    layers = []
    for i in range(1, len(widths)):
        n_in, n_out = widths[i - 1], widths[i]
        mask = rng.random((n_out, n_in)) < 0.6
        if integer:
            w = rng.integers(-2, 3, (n_out, n_in)).astype(float)
            b = rng.integers(-2, 3, n_out).astype(float)
        else:
            w, b = rng.normal(size=(n_out, n_in)), rng.normal(size=n_out)
        rows, cols = np.nonzero(mask & (w != 0))
        layers.append(Layer(n_in, n_out, rows.astype(np.int64), cols.astype(np.int64),
                            w[rows, cols], b, relu=i < len(widths) - 1))
    input_map = rng.permutation(m + extra_cols)[:m].astype(np.int64)
    return Network("dense", m, layers, input_map)


def load(name):
    return dsl.load(os.path.join(ROOT, "examples", name))


def circuit_mismatches(circuit, forest, positions, active):
    """(wrong decisions at cared outputs, read-out values differing from the dense network's)
    of the forest's outputs at `positions` on the inputs `active`."""
    x = SparseDomain(circuit.n_inputs, circuit.sparsity).dense(active)
    ref = evaluate(circuit, x)[:, positions]
    y = forest.walk(active)[:, positions]
    wrong = int((((y > 0.5) != (ref == 1)) & (ref != 2)).sum())
    dense = compile_dense(circuit).forward(x)[:, positions]
    return wrong, int((~close(y, dense)).sum())


# ====================================================================== random networks

@pytest.mark.parametrize("seed", range(40))
def test_random_network_exact(seed):
    rng = np.random.default_rng(seed)
    m, depth = int(rng.integers(2, 8)), int(rng.integers(1, 4))
    net = random_network(rng, m, depth, integer=seed % 2 == 0, extra_cols=seed % 3)
    k = None if seed % 4 < 2 else 2
    _, active = domain_active(m, k)
    if seed % 5 == 4:                                    # a random subset S
        active = active[rng.random(len(active)) < 0.5]
    forest = synthesize_network(net, active)
    forest.validate()
    x = SparseDomain(m, k).dense(active)
    assert np.all(close(forest.walk(active), net.forward(x)))
    assert np.all(forest.gate_kind == NEURON)


def test_random_networks_really_branch():
    """The random networks exercise gates, several layers, affine and constant leaves."""
    gates = deep = affine = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        m, depth = int(rng.integers(2, 8)), int(rng.integers(1, 4))
        net = random_network(rng, m, depth, integer=seed % 2 == 0, extra_cols=seed % 3)
        forest = synthesize_network(net, domain_active(m, None)[1])
        gates += forest.n_gates
        deep += forest.depth() >= 3
        affine += int((np.diff(forest.entry_offsets) > 0).sum())
    assert gates > 100 and deep >= 5 and affine > 50


def test_network_output_subset_and_ids():
    rng = np.random.default_rng(7)
    net = random_network(rng, 5, 2, integer=True, width=6)
    _, active = domain_active(5, None)
    forest = synthesize_network(net, active, outputs=[4, 1], output_ids=[0, 2], n_outputs=3)
    forest.validate()
    y, ref = forest.walk(active), net.forward(SparseDomain(5).dense(active))
    assert np.all(close(y[:, 0], ref[:, 4])) and np.all(close(y[:, 2], ref[:, 1]))
    assert forest.output_tree[1] == -1 and np.all(y[:, 1] == 0)


def test_one_hidden_layer_bulk_path():
    """Many one-neuron groups (the bulk path) on a sparse domain and on a random subset."""
    rng = np.random.default_rng(3)
    m, n = 12, 200
    w = rng.integers(-2, 3, (n, m)).astype(float) * (rng.random((n, m)) < 0.3)
    rows, cols = np.nonzero(w)
    vals = w[rows, cols]
    rows, cols = np.append(rows, rows[:5]), np.append(cols, cols[:5])   # repeated entries add up
    vals = np.concatenate([vals[:5] / 2, vals[5:], vals[:5] / 2])
    hidden = Layer(m, n, rows, cols, vals, rng.integers(-2, 3, n).astype(float))
    out_w = rng.choice([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0], n)
    readout = Layer(n, n, np.arange(n), np.arange(n), out_w, rng.integers(-1, 2, n).astype(float),
                    relu=False)
    net = Network("dense", m, [hidden, readout], np.arange(m))
    for k, keep in ((2, 1.0), (3, 0.3)):
        _, active = domain_active(m, k)
        active = active[rng.random(len(active)) < keep]
        forest = synthesize_network(net, active)
        forest.validate()
        assert forest.n_trees == n
        assert np.all(close(forest.walk(active), net.forward(SparseDomain(m).dense(active))))


def test_network_without_hidden_layers():
    readout = Layer(3, 2, np.array([0, 0, 1]), np.array([0, 2, 1]), np.array([1.0, -2.0, 3.0]),
                    np.array([0.5, 0.0]), relu=False)
    net = Network("dense", 3, [readout], np.array([0, 1, 2]))
    active = np.array([[-1], [0], [2]])                  # feature 1 never active: y1 constant
    forest = synthesize_network(net, active)
    y = forest.walk(active)
    assert np.all(close(y, net.forward(SparseDomain(3).dense(active))))
    assert forest.n_gates == 0 and forest.max_ops(None) == 3   # 2 adds + 1 (y1: constant)


# ====================================================================== circuits

@pytest.mark.parametrize("name", EXAMPLES)
def test_example_exact(name):
    circuit = load(name)
    positions = np.arange(circuit.n_outputs)
    forest = synthesize_circuit(circuit, positions)
    forest.validate()
    _, active = domain_active(circuit.n_inputs, circuit.sparsity, SAMPLE // circuit.n_outputs)
    assert circuit_mismatches(circuit, forest, positions, active) == (0, 0)


@pytest.mark.parametrize("seed", range(60))
def test_random_circuit_exact(seed, tmp_path):
    circuit = load_random_circuit(20_000 + seed, tmp_path)
    rng = np.random.default_rng(seed)
    positions = np.arange(circuit.n_outputs)
    if seed % 3 == 2:                                    # a part of the outputs only
        positions = np.sort(rng.permutation(circuit.n_outputs)[:max(1, circuit.n_outputs // 2)])
    forest = synthesize_circuit(circuit, positions)
    forest.validate()
    _, active = domain_active(circuit.n_inputs, circuit.sparsity)
    assert circuit_mismatches(circuit, forest, positions, active) == (0, 0)
    others = np.setdiff1d(np.arange(circuit.n_outputs), positions)
    assert np.all(forest.output_tree[others] == -1)


def test_no_positions():
    circuit = load("c17.sup")
    forest = synthesize_circuit(circuit, np.zeros(0, np.int64))
    assert forest.n_trees == 0 and np.all(forest.output_tree == -1)


def test_independent_outputs_get_separate_trees():
    circuit = load("pairs_small.sup")
    forest = synthesize_circuit(circuit, np.arange(circuit.n_outputs))
    assert forest.n_trees == circuit.n_outputs and forest.n_gates == circuit.n_outputs
    # every gate is the AND neuron it came from: its first-layer row, unchanged
    net = compile_dense(circuit, outputs=np.arange(circuit.n_outputs))
    w = net.layers[0].dense()
    for g in range(0, forest.n_gates, 17):
        lo, hi = forest.gate_offsets[g], forest.gate_offsets[g + 1]
        row = np.zeros(circuit.n_inputs)
        row[forest.gate_cols[lo:hi]] = forest.gate_vals[lo:hi]
        src = forest.gate_source[g]
        assert np.array_equal(row, w[src]) and forest.gate_bias[g] == net.layers[0].bias[src]


def test_domain_limit():
    circuit = load("xor_majority.sup")                  # 8 features, full cube: 256 inputs
    with pytest.raises(SynthesisTooLarge) as info:
        synthesize_circuit(circuit, np.arange(circuit.n_outputs), max_inputs=100)
    assert info.value.size == 256 and info.value.limit == 100
    assert info.value.output in circuit.output_names()
    assert "256" in str(info.value)
    synthesize_circuit(circuit, np.arange(circuit.n_outputs), max_inputs=256)


def test_over_limit_group_splits_per_output(tmp_path):
    """Two outputs sharing a neuron form one group (one tree over 6 features, 64 inputs);
    under a limit of 32 inputs each output gets its own tree over its 4 cone features."""
    path = tmp_path / "shared.sup"
    path.write_text("input x[6];\nwire g = x[0] & x[1];\n"
                    "output a = g & x[2] & x[3];\noutput b = g | x[4] | x[5];\n")
    circuit = dsl.load(str(path))
    positions = np.arange(2)
    _, active = domain_active(6, None)
    joint = synthesize_circuit(circuit, positions)
    split = synthesize_circuit(circuit, positions, max_inputs=32)
    assert joint.n_trees == 1 and split.n_trees == 2
    for forest in (joint, split):
        forest.validate()
        assert circuit_mismatches(circuit, forest, positions, active) == (0, 0)
    with pytest.raises(SynthesisTooLarge) as info:
        synthesize_circuit(circuit, positions, max_inputs=15)
    assert info.value.size == 16


def test_domain_limit_bulk_path():
    circuit = load("pairs_small.sup")                   # one-neuron groups over 2 features
    with pytest.raises(SynthesisTooLarge) as info:
        synthesize_circuit(circuit, np.arange(3), max_inputs=3)
    assert info.value.size == 4 and info.value.output == circuit.output_names([0])[0]


# ====================================================================== operations

@pytest.mark.parametrize("name", EXAMPLES)
def test_ops_bounded_and_below_dense(name):
    circuit = load(name)
    forest = synthesize_circuit(circuit, np.arange(circuit.n_outputs))
    _, active = domain_active(circuit.n_inputs, circuit.sparsity, SAMPLE // circuit.n_outputs)
    _, ops = forest.walk(active, with_ops=True)
    assert ops.max() <= forest.max_ops(circuit.sparsity)
    _, dense_mean = ops_per_input(compile_dense(circuit))
    assert ops.mean() <= dense_mean


def test_constant_leaves_cost_nothing():
    """A pairwise AND's tree costs the gate only: both leaves are constants."""
    circuit = load("pairs_small.sup")
    forest = synthesize_circuit(circuit, np.arange(1))
    assert forest.n_gates == 1 and len(forest.term_cols) == 0
    assert forest.max_ops(circuit.sparsity) == 3         # 2 terms + bias: 2 adds, 1 compare


# ====================================================================== planted bug

def test_planted_bug_is_caught():
    circuit = load("multilevel.sup")
    positions = np.arange(circuit.n_outputs)
    forest = synthesize_circuit(circuit, positions)
    _, active = domain_active(circuit.n_inputs, circuit.sparsity)
    assert circuit_mismatches(circuit, forest, positions, active) == (0, 0)
    constant = np.flatnonzero(np.diff(forest.entry_offsets) == 0)
    e = constant[len(constant) // 2]
    forest.entry_const[e] = 1.0 - forest.entry_const[e]
    wrong, inexact = circuit_mismatches(circuit, forest, positions, active)
    assert wrong > 0 and inexact > 0
