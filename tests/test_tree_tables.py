"""Tables as conditional trees (compiler/tree_tables.py) and the Forest representation.

Reference: a plain lookup of every input of the table's bits in the row list (numpy
searchsorted over the keys), independent of the tree construction.
"""

import itertools

import numpy as np
import pytest

import dsl
from compiler import account, compile_circuit
from compiler.conditional.tree import Forest
from compiler.conditional.tables import TableSpec, bit_diagram, compile_table, key_search
from dsl.domain import SparseDomain
from dsl.semantics import DONT_CARE, evaluate

METHODS = (key_search, bit_diagram)


def random_spec(rng, w, rows, c, cared, extra_inputs=2):
    keys = np.unique(rng.integers(0, 1 << w, rows).astype(np.uint64))
    values = rng.random((len(keys), c)) < 0.5
    default = (rng.random(c) < 0.5) if cared else None
    m = w + extra_inputs
    bits = rng.permutation(m)[:w]
    # output 0 belongs to nobody; outputs 1..c read table bits 0..c-1
    spec = TableSpec(m, c + 1, bits, keys, values, default, np.arange(c) + 1, np.arange(c))
    return spec


def all_inputs(spec):
    xs = np.array(list(itertools.product([0, 1], repeat=spec.width)), dtype=np.int64)
    key = (xs << np.arange(spec.width)).sum(axis=1)
    active = np.where(xs.astype(bool), spec.bits[None, :], -1)
    return key, active


def expected(spec, key):
    """[N, c] of 0/1, or -1 where the input is off the table with a don't-care default."""
    keys = spec.keys.astype(np.int64)
    pos = np.minimum(np.searchsorted(keys, key), max(len(keys) - 1, 0))
    hit = (keys[pos] == key) if len(keys) else np.zeros(len(key), bool)
    c = spec.values.shape[1]
    out = np.full((len(key), c), -1)
    if len(keys):
        out[hit] = spec.values[pos[hit]]
    if spec.default is not None:
        out[~hit] = spec.default
    return out


@pytest.mark.parametrize("method", METHODS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("cared", [False, True])
@pytest.mark.parametrize("w,rows", [(1, 1), (3, 5), (6, 40), (8, 200), (9, 512)])
def test_table_tree_matches_lookup(method, cared, w, rows):
    rng = np.random.default_rng(w * 1000 + rows + cared)
    spec = random_spec(rng, w, min(rows, 1 << w), 3, cared)
    forest = method(spec)
    forest.validate()
    key, active = all_inputs(spec)
    y, ops = forest.walk(active, with_ops=True)
    want = expected(spec, key)
    got = y[:, 1:4]
    care = want >= 0
    assert np.all((got > 0.5)[care] == want[care].astype(bool))
    assert set(np.unique(y)) <= {0.0, 1.0}           # leaves are exact 0/1 constants
    assert np.all(y[:, 0] == 0)                      # an output of no tree reads 0
    assert ops.max() <= forest.max_ops(None)          # the bound holds on every input


def test_planted_bug_is_visible():
    rng = np.random.default_rng(5)
    spec = random_spec(rng, 6, 30, 3, cared=True)
    forest = key_search(spec)
    key, active = all_inputs(spec)
    forest.gate_bias[0] += 1.0                       # move the root threshold by one key
    got = forest.walk(active)[:, 1:4] > 0.5
    want = expected(spec, key)
    assert np.any(got != want.astype(bool))


@pytest.mark.parametrize("n", [1 << 10, 1 << 12])
def test_ops_goal_on_random_32_bit_tables(n):
    """Koyuncu's O(log n): at most 2 ceil(log2 n) + 32 + 8 ops on every input."""
    rng = np.random.default_rng(n)
    keys = np.unique(rng.integers(0, 1 << 32, n, dtype=np.uint64))
    values = rng.random((len(keys), 8)) < 0.5
    for default in (None, np.zeros(8, bool)):
        spec = TableSpec(32, 8, np.arange(32), keys, values, default, np.arange(8), np.arange(8))
        forest, _ = compile_table(spec)
        goal = 2 * int(np.ceil(np.log2(n))) + 32 + 8
        assert forest.max_ops(None) <= goal
        sample = keys[:500]
        active = np.where(((sample[:, None] >> np.arange(32, dtype=np.uint64)) & np.uint64(1))
                          .astype(bool), np.arange(32), -1)
        assert np.all((forest.walk(active) > 0.5) == values[:500])


def test_key_search_is_balanced():
    rng = np.random.default_rng(2)
    spec = random_spec(rng, 16, 1000, 4, cared=False, extra_inputs=0)
    forest = key_search(spec)
    # merged pieces never exceed the rows, so the depth is at most ceil(log2 rows)
    assert forest.depth() <= int(np.ceil(np.log2(len(spec.keys))))


def test_bit_diagram_shares_identical_nodes():
    # a table whose output is bit 0 of the key: the reduced diagram tests one bit
    keys = np.arange(64, dtype=np.uint64)
    values = (keys & np.uint64(1)).astype(bool)[:, None]
    spec = TableSpec(6, 1, np.arange(6), keys, values, None, np.array([0]), np.array([0]))
    forest = bit_diagram(spec)
    assert forest.n_gates == 1 and forest.gate_cols[0] == 0


def test_concat_keeps_trees_apart():
    rng = np.random.default_rng(3)
    a = random_spec(rng, 4, 9, 2, cared=True, extra_inputs=0)
    b = random_spec(rng, 4, 9, 2, cared=False, extra_inputs=0)
    # place b's outputs after a's: outputs 1, 2 (a) and 3, 4 (b)
    a.n_outputs = b.n_outputs = 5
    b.out_pos = np.array([3, 4])
    fa, fb = key_search(a), bit_diagram(b)
    both = Forest.concat(4, 5, [fa, fb])
    both.validate()
    key, active = all_inputs(a)
    y = both.walk(active)
    assert np.array_equal(y[:, 1:3], fa.walk(active)[:, 1:3])
    assert np.array_equal(y[:, 3:5], fb.walk(active)[:, 3:5])


@pytest.mark.parametrize("corrupt", ["child", "register", "cycle", "length"])
def test_validate_rejects_malformed_forests(corrupt):
    rng = np.random.default_rng(4)
    forest = key_search(random_spec(rng, 5, 12, 2, cared=True))
    if corrupt == "child":
        forest.gate_child[0, 0] = forest.n_gates + 5
    elif corrupt == "register":
        forest.gate_cols[0] = forest.n_inputs + 3
    elif corrupt == "cycle":
        forest.gate_child[1, 0] = 0
    else:
        forest.gate_bias = forest.gate_bias[:-1]
    with pytest.raises(ValueError):
        forest.validate()


def table_circuit(rng, w, rows, c, default):
    keys = rng.choice(1 << w, rows, replace=False)
    lines = [f"input x[{w}];",
             "table t(" + ", ".join(f"x[{i}]" for i in reversed(range(w))) + f") -> y[{c}] {{"]
    lines += [f"  {k:0{w}b} -> {''.join(rng.choice(list('01*'), c))};" for k in keys]
    lines += [f"  default -> {default};", "}"]
    return dsl.loads("\n".join(lines), "table.sup")


@pytest.mark.parametrize("method", ["key", "bits", "auto"])
@pytest.mark.parametrize("w,rows,default", [(6, 20, "*"), (6, 20, "010"), (7, 60, "1*0"),
                                            (4, 0, "11*")])
def test_conditional_target_on_table_circuits(method, w, rows, default):
    rng = np.random.default_rng(w + rows)
    circuit = table_circuit(rng, w, rows, 3, default)
    net = compile_circuit(circuit, "conditional", table_method=method)
    domain = SparseDomain(circuit.n_inputs, circuit.sparsity)
    for _, active in domain.batches(1 << 12):
        spec = evaluate(circuit, domain.dense(active))
        y = net.forward_active(active)
        assert not np.any((spec != DONT_CARE) & ((y > 0.5) != (spec == 1)))
    info = account(net)
    assert info["target"] == "conditional"
    assert info["neurons"] == net.forest.n_gates
    assert info["ops_per_input_mean"] <= info["ops_per_input_max"]
    assert info["conditional"]["tables"][0]["method"] in ("key", "bits")
