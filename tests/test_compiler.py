"""Tests of the `dense` compiler (compiler/) against the reference semantics (dsl/semantics.py).

The central check (`compare`): compile a circuit, run the numpy forward `net.forward` on EVERY
input of the circuit's domain, and require that

* the decoded outputs (> 0.5) equal `dsl.semantics.evaluate` wherever the reference is not
  don't care, and
* every read-out value at a cared output is exactly 0.0 or 1.0 (the dense target is exact).

It runs on every example with a domain of at most 40,000 inputs, on 100 random circuits
(tests/random_circuits.py), and on each gate kind in isolation, both written in .sup (through the
elaborator, which may fold or normalise) and as hand-built raw gate families (so that every
lowering formula of compiler/dense.py runs, also the ones the elaborator never produces, e.g.
atleast(0, ...), repeated operands). Hidden activations are checked too: carry neurons equal the
signal they carry, table-row neurons fire exactly on their row. Accounting is checked against
hand-computed numbers (formulas of compiler/accounting.py) and against brute force over the
domain; a planted-bug test shows the comparison catches a single wrong weight.
"""

from __future__ import annotations

import copy
import glob
import itertools
import math
import os

import networkx as nx
import numpy as np
import pytest

import dsl
from compiler import TargetUnavailable, account, compile_circuit
from compiler.accounting import bounds, expected_active
from compiler.network import CARRY, GATE_NEURON, TABLE_ROW
from dsl.domain import SparseDomain
from dsl.nodes import CONST, GATE, INPUT, OUTPUT, Circuit
from dsl.semantics import DONT_CARE, evaluate, signal_values
from tests.random_circuits import load_random_circuit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_DOMAIN = 40_000
N_RANDOM = 100


# ====================================================================== the comparison

def domain_dense(circuit) -> np.ndarray:
    """bool [size, m]: every input of the circuit's domain."""
    dom = SparseDomain(circuit.n_inputs, circuit.sparsity)
    return dom.dense(dom.unrank(np.arange(dom.size, dtype=np.int64)))


def mismatches(circuit, net, x=None):
    """(wrong decoded bits, inexact cared values) of net against the reference on x (default:
    the whole domain)."""
    x = domain_dense(circuit) if x is None else x
    ref = evaluate(circuit, x)
    y = net.forward(x)
    assert y.shape == ref.shape == (len(x), circuit.n_outputs)
    care = ref != DONT_CARE
    wrong = int(((y > 0.5) != (ref == 1))[care].sum())
    inexact = int((~np.isin(y[care], [0.0, 1.0])).sum())
    return wrong, inexact


def compare(circuit, net=None, x=None):
    net = compile_circuit(circuit, "dense") if net is None else net
    assert net.target == "dense"
    assert net.n_inputs == circuit.n_inputs and net.n_outputs == circuit.n_outputs
    assert net.output_names() == circuit.output_names()
    wrong, inexact = mismatches(circuit, net, x)
    assert wrong == 0, f"{wrong} wrong decoded outputs"
    assert inexact == 0, f"{inexact} cared outputs are not exactly 0.0 or 1.0"
    return net


def hidden_activations(net, x) -> list:
    """[h_1, ..., h_D] of the hidden layers for inputs x."""
    h = np.zeros((len(x), net.input_width))
    h[:, net.input_map] = x
    out = []
    for layer in net.hidden:
        h = layer.apply(h)
        out.append(h)
    return out


def check_hidden(circuit, net, x) -> None:
    """Every hidden neuron is an exact integer; a CARRY neuron equals the value of the signal it
    carries; a TABLE_ROW neuron is 1 exactly on its row (where the reference knows the value)."""
    values = signal_values(circuit, x)
    for depth, (layer, h) in enumerate(zip(net.hidden, hidden_activations(net, x)), start=1):
        assert layer.role is not None and len(layer.role) == layer.n_out
        assert np.array_equal(h, np.round(h)), f"layer {depth}: non-integer activation"
        for j in np.flatnonzero(layer.role == CARRY):
            ref = values[:, layer.signal[j]]
            known = ref != DONT_CARE
            assert np.array_equal(h[known, j], ref[known]), f"layer {depth}: carry {j}"
        for j in np.flatnonzero(layer.role == TABLE_ROW):
            key = next(k for k in circuit.table_nodes()
                       if circuit.graph.nodes[k]["first"] == layer.signal[j])
            data = circuit.graph.nodes[key]
            bits = values[:, data["inputs"]]
            known = (bits != DONT_CARE).all(axis=1)
            row_key = int(data["keys"][layer.part[j]])
            want = np.array([all(((row_key >> i) & 1) == b for i, b in enumerate(r)) for r in bits])
            assert np.array_equal(h[known, j], want[known].astype(float)), f"row neuron {j}"


# ====================================================================== examples

def _examples():
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "examples", "*.sup"))):
        c = dsl.load(path)
        if SparseDomain(c.n_inputs, c.sparsity).size <= MAX_DOMAIN:
            out.append(os.path.basename(path))
    return out


EXAMPLES = _examples()


def test_enough_examples_are_small():
    assert {"c17.sup", "pairs_small.sup", "multilevel.sup", "lookup_table.sup",
            "table_file.sup", "xor_majority.sup", "sparse_features.sup",
            "permutation.sup", "all_pairs.sup"} <= set(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_exact_on_whole_domain(name):
    circuit = dsl.load(os.path.join(ROOT, "examples", name))
    net = compare(circuit)
    x = domain_dense(circuit)
    check_hidden(circuit, net, x[:4096])


# ====================================================================== random circuits


@pytest.mark.parametrize("seed", range(N_RANDOM))
def test_random_circuit_exact(seed, tmp_path):
    circuit = load_random_circuit(10_000 + seed, tmp_path)
    net = compare(circuit)
    check_hidden(circuit, net, domain_dense(circuit))


def test_random_circuits_exercise_the_compiler(tmp_path):
    """The random programs really reach the interesting parts: several layers, carries, tables
    with don't cares, every gate op."""
    ops, roles, deep, dont_care = set(), set(), 0, 0
    for seed in range(N_RANDOM):
        (tmp_path / str(seed)).mkdir()
        circuit = load_random_circuit(10_000 + seed, tmp_path / str(seed))
        net = compile_circuit(circuit, "dense")
        ops |= {circuit.graph.nodes[k]["op"] for k in circuit.gate_nodes()}
        for layer in net.hidden:
            roles |= set(np.unique(layer.role).tolist())
        deep += len(net.hidden) >= 3
        dont_care += circuit.has_dont_care
    assert ops >= {"not", "and", "or", "xor", "atleast", "ite"}
    assert roles == {GATE_NEURON, CARRY, TABLE_ROW}
    assert deep >= 10 and dont_care >= 3


# ====================================================================== gates, through the language

CUBE5 = np.array(list(itertools.product([0, 1], repeat=5)), dtype=bool)


def compile_source(source):
    circuit = dsl.loads(source)
    return circuit, compare(circuit)


def gate_keys(circuit, op):
    return [k for k in circuit.gate_nodes() if circuit.graph.nodes[k]["op"] == op]


@pytest.mark.parametrize("op", ["and", "or", "xor"])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_nary_gate_from_source(op, n):
    args = ", ".join(f"x[{i}]" for i in range(n))
    circuit, net = compile_source(f"input x[5]; output y = {op}({args});")
    want = {"and": CUBE5[:, :n].all(1), "or": CUBE5[:, :n].any(1),
            "xor": CUBE5[:, :n].sum(1) % 2 == 1}[op]
    assert np.array_equal(net.forward(CUBE5)[:, 0], want.astype(float))
    if n >= 2:
        # a real n-ary gate, computed by neurons (not folded into the read-out weights)
        (key,) = gate_keys(circuit, op)
        assert circuit.graph.nodes[key]["offsets"].tolist() == [0, n]
        assert len(net.hidden) == 1
        layer = net.hidden[0]
        assert (layer.role == GATE_NEURON).all()
        assert set(layer.signal.tolist()) == {circuit.graph.nodes[key]["first"]}
        assert layer.n_out == (n if op == "xor" else 1)
    else:
        assert len(net.hidden) == 0  # one operand: the input itself


@pytest.mark.parametrize("op", ["atleast", "atmost", "exactly"])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_threshold_gates_from_source_all_k(op, n):
    """Every k in 0..n+1, operands plain, partly negated, and with a repeat (multiset)."""
    shapes = {
        "plain": [f"x[{i}]" for i in range(n)],
        "negated": [("!" if i % 2 else "") + f"x[{i}]" for i in range(n)],
        "repeat": ["x[0]"] + [f"x[{i}]" for i in range(n - 1)],
    }
    lines, want = ["input x[5];"], []
    for shape, args in shapes.items():
        for k in range(n + 2):
            lines.append(f"output y_{shape}_{k} = {op}({k}, {', '.join(args)});")
            vals = np.stack([~CUBE5[:, int(a[3])] if a.startswith("!") else CUBE5[:, int(a[2])]
                             for a in args], axis=1)
            count = vals.sum(axis=1)
            want.append({"atleast": count >= k, "atmost": count <= k,
                         "exactly": count == k}[op])
    circuit, net = compile_source("\n".join(lines))
    assert np.array_equal(net.forward(CUBE5), np.stack(want, axis=1).astype(float))


def test_maj_and_ite_from_source():
    circuit, net = compile_source("""
        input x[5];
        output m3 = maj(x[0], x[1], x[2]);
        output m4 = maj(x[0], x[1], x[2], x[3]);
        output m5 = maj(x[0], x[1], x[2], x[3], x[4]);
        output i1 = ite(x[0], x[1], x[2]);
        output i2 = ite(x[3], !x[1], x[4] & x[2]);
        output i3 = ite(x[0] ^ x[4], x[0], !x[2]);
    """)
    c = CUBE5.astype(int)
    s = c.sum(1)
    want = np.stack([
        c[:, :3].sum(1) >= 2, c[:, :4].sum(1) >= 3, s >= 3,
        np.where(c[:, 0] == 1, c[:, 1], c[:, 2]),
        np.where(c[:, 3] == 1, 1 - c[:, 1], c[:, 4] & c[:, 2]),
        np.where(c[:, 0] ^ c[:, 4], c[:, 0], 1 - c[:, 2]),
    ], axis=1).astype(float)
    assert np.array_equal(net.forward(CUBE5), want)
    assert gate_keys(circuit, "ite") and gate_keys(circuit, "atleast")


@pytest.mark.parametrize("default", ["0", "1", "*", None])
def test_table_defaults(default):
    drow = "" if default is None else f"default -> {default * 3 if default != '*' else '*'};"
    src = f"""
        input a, b, c, d;
        table t(a, b, c) -> o[3] {{
          000 -> 1*0;
          011 -> 101;
          110 -> 0*1;
          111 -> 111;
          {drow}
        }}
        output p = o[0]; output q = o[1]; output r = o[2];
        output s = o[0] & d;
        output u = o[2] | o[0];
    """
    circuit, net = compile_source(src)
    cube = np.array(list(itertools.product([0, 1], repeat=4)), dtype=bool)
    rows = {(0, 0, 0): "1*0", (0, 1, 1): "101", (1, 1, 0): "0*1", (1, 1, 1): "111"}
    dflt = {"0": "000", "1": "111", "*": "***", None: "000"}[default]
    col = {name: j for j, name in enumerate(circuit.output_names())}
    assert set(col) == {"o[0]", "o[1]", "o[2]", "p", "q", "r", "s", "u"}
    y = net.forward(cube)
    for x, out in zip(cube.astype(int), y):
        bits = rows.get(tuple(x[:3]), dflt)
        for j, bit in enumerate(bits):
            if bit != "*":
                assert out[col[f"o[{j}]"]] == float(bit), (x, j)
                assert out[col["pqr"[j]]] == float(bit), (x, j)
        known = [None if b == "*" else int(b) for b in bits]
        if known[0] is not None:
            assert out[col["s"]] == float(known[0] & x[3])
        if known[0] == 1 or known[2] == 1:
            assert out[col["u"]] == 1.0
        elif known[0] == 0 and known[2] == 0:
            assert out[col["u"]] == 0.0
    roles = np.concatenate([layer.role for layer in net.hidden])
    n_rows = int((roles == TABLE_ROW).sum())
    assert 1 <= n_rows <= 4
    if default in ("0", None):
        # only rows with a cared 1 differ from the all-zero default
        assert n_rows == 4
    check_hidden(circuit, net, cube)


def test_constants_and_inputs_as_outputs():
    circuit, net = compile_source("""
        input x[3];
        output a = x[1]; output b = !x[2]; output c = 1; output d = 0;
        output e = x[0] & x[1]; output f = !!x[0]; output g = x[2] ^ 1; output h = x[0] & 0;
    """)
    cube = np.array(list(itertools.product([0, 1], repeat=3)), dtype=bool)
    c = cube.astype(float)
    want = np.stack([c[:, 1], 1 - c[:, 2], np.ones(8), np.zeros(8), c[:, 0] * c[:, 1],
                     c[:, 0], 1 - c[:, 2], np.zeros(8)], axis=1)
    assert np.array_equal(net.forward(cube), want)
    # the AND is the only gate neuron; x[0], x[1], x[2] reach the read-out through carries;
    # negations and constants cost nothing (folded into read-out weights and biases)
    assert account(net)["neurons_by_role"] == {"gate": 1, "carry": 3}


def test_circuit_without_hidden_layers():
    circuit, net = compile_source("input x[4]; sparsity 2; output y[i] = x[3 - i] for i in 0..4;"
                                  " output n = !x[0]; output one = 1;")
    assert len(net.layers) == 1 and not net.readout.relu
    x = domain_dense(circuit)
    want = np.concatenate([x[:, ::-1], ~x[:, :1], np.ones((len(x), 1), bool)], axis=1)
    assert np.array_equal(net.forward(x), want.astype(float))


def test_wires_skipping_layers_get_carry_neurons():
    circuit, net = compile_source("""
        input a, b, c, d;
        wire t = a & b;          # layer 1
        wire u = t & c;          # layer 2: c is carried through layer 1
        output y = u & d;        # layer 3: d is carried through layers 1 and 2
        output z = t;            # t read by the read-out: carried through layers 2 and 3
        output w = !d;           # an input read by the read-out: carried through 1, 2, 3
    """)
    assert len(net.hidden) == 3
    ids = circuit.input_lookup()
    t = int(circuit.graph.nodes["wire:t"]["drivers"][0])
    carried = [sorted(layer.signal[layer.role == CARRY].tolist()) for layer in net.hidden]
    assert carried == [sorted([ids["c"], ids["d"]]), sorted([ids["d"], t]), sorted([t, ids["d"]])]
    gates = [int((layer.role == GATE_NEURON).sum()) for layer in net.hidden]
    assert gates == [1, 1, 1]
    cube = np.array(list(itertools.product([0, 1], repeat=4)), dtype=bool)
    check_hidden(circuit, net, cube)


# ====================================================================== gates, as raw families

def raw_circuit(m, gates, name="raw"):
    """A circuit graph built by hand (no elaborator): input x[m], then one GATE node per entry of
    `gates` = [(op, operand ids, k)] (operands may be earlier gates: ids m + 2 + j), each an output
    y[j]."""
    g = nx.DiGraph()
    g.add_node("input:x", kind=INPUT, label="x", line=0, column=0, first=0, count=m, name="x",
               shape=(m,))
    g.add_node("const", kind=CONST, label="const", line=0, column=0, first=m, count=2)
    signal_nodes, firsts = ["input:x", "const"], [0, m]
    ids = []
    for j, (op, operands, k) in enumerate(gates):
        first = m + 2 + j
        ops = np.asarray(operands if op == "ite" else sorted(operands), dtype=np.int64)
        key = f"g{j}:{op}"
        g.add_node(key, kind=GATE, label=op, line=0, column=0, first=first, count=1, op=op,
                   offsets=np.array([0, len(ops)], np.int64), operands=ops,
                   k=None if k is None else np.array([k], np.int64))
        for s in ops:
            src = signal_nodes[int(np.searchsorted(firsts, s, side="right")) - 1]
            refs = g.edges[src, key]["refs"] + 1 if g.has_edge(src, key) else 1
            g.add_edge(src, key, refs=refs)
        signal_nodes.append(key)
        firsts.append(first)
        ids.append(first)
    g.add_node("output:y", kind=OUTPUT, label="y", line=0, column=0, name="y",
               index=np.arange(len(gates), dtype=np.int64)[:, None],
               drivers=np.array(ids, np.int64), shape=None)
    for key in signal_nodes[2:]:
        g.add_edge(key, "output:y", refs=1)
    return Circuit(name, g, m, None, m + 2 + len(gates), signal_nodes, ["output:y"], [],
                   ["input:x"])


def python_gate(op, vals, k):
    """The gate's value by definition (dsl/nodes.py), in plain Python."""
    if op == "ite":
        return vals[1] if vals[0] else vals[2]
    s = sum(vals)
    if op in ("and", "or", "xor"):
        return {"and": s == len(vals), "or": s > 0, "xor": s % 2 == 1}[op]
    return {"atleast": s >= k, "atmost": s <= k, "exactly": s == k}[op]


def expected_neurons(op, n, k):
    """Neurons per gate, from the table in compiler/dense.py's docstring."""
    return {"and": 1, "or": 1, "xor": n, "atleast": 2, "ite": 2,
            "atmost": 1 if k in (0, n - 1) else 2,
            "exactly": 1 if k == 0 else 3}[op]


RAW_CASES = ([(op, n, None) for op in ("and", "or", "xor") for n in range(2, 6)]
             + [(op, n, k) for op in ("atleast", "atmost", "exactly") for n in range(1, 6)
                for k in range(n + 2)])


@pytest.mark.parametrize("op,n,k", RAW_CASES)
def test_raw_gate_lowering(op, n, k):
    operands = list(range(n))
    circuit = raw_circuit(5, [(op, operands, k)])
    net = compare(circuit, x=CUBE5)
    want = np.array([python_gate(op, [int(r[i]) for i in operands], k) for r in CUBE5])
    assert np.array_equal(net.forward(CUBE5)[:, 0], want.astype(float))
    assert [layer.n_out for layer in net.hidden] == [expected_neurons(op, n, k)]
    assert (net.hidden[0].role == GATE_NEURON).all()


@pytest.mark.parametrize("op,operands,k", [
    ("atleast", [0, 0, 1], 2), ("atmost", [1, 1, 2, 2], 2), ("exactly", [0, 0, 0, 3], 3),
    ("exactly", [4, 4], 1), ("xor", [0, 0, 1], None), ("and", [2, 2, 3], None),
    ("or", [1, 1], None), ("ite", [0, 1, 2], None), ("ite", [2, 0, 1], None),
    ("ite", [0, 0, 1], None), ("ite", [0, 1, 0], None), ("ite", [3, 4, 4], None),
])
def test_raw_gate_repeated_operands(op, operands, k):
    circuit = raw_circuit(5, [(op, operands, k)])
    net = compare(circuit, x=CUBE5)
    want = np.array([python_gate(op, [int(r[i]) for i in operands], k) for r in CUBE5])
    assert np.array_equal(net.forward(CUBE5)[:, 0], want.astype(float))


def test_raw_gates_reading_gates():
    """A 3-level raw circuit (gates reading gates and inputs of every level)."""
    m = 5
    g0, g1, g2, g3 = m + 2, m + 3, m + 4, m + 5
    gates = [("xor", [0, 1, 2], None), ("atmost", [g0, 3, 4], 1), ("ite", [g1, g0, 4], None),
             ("exactly", [g0, g1, g2, 0], 2), ("atleast", [g3, g2, 1], 0)]
    circuit = raw_circuit(m, gates)
    net = compare(circuit, x=CUBE5)
    check_hidden(circuit, net, CUBE5)
    assert (net.hidden[0].role == CARRY).any()


@pytest.mark.parametrize("seed", range(40))
def test_raw_random_gate_networks(seed):
    """Random raw graphs: every op (NOT included), operands among all earlier signals, repeats
    allowed, every k in 0..n+1: the lowering of any valid graph, not only elaborated ones."""
    rng = np.random.default_rng(seed)
    m = 5
    gates = []
    for j in range(int(rng.integers(4, 12))):
        pool = m + j                               # inputs 0..m-1, gates m+2 .. m+2+j-1
        pick = lambda n: [int(s) if s < m else int(s) + 2  # noqa: E731
                          for s in rng.integers(0, pool, n)]
        op = str(rng.choice(["not", "and", "or", "xor", "atleast", "atmost", "exactly", "ite"]))
        if op == "not":
            gates.append((op, pick(1), None))
        elif op == "ite":
            gates.append((op, pick(3), None))
        else:
            n = int(rng.integers(2 if op in ("and", "or", "xor") else 1, 6))
            k = int(rng.integers(0, n + 2)) if op in ("atleast", "atmost", "exactly") else None
            gates.append((op, pick(n), k))
    circuit = raw_circuit(m, gates)
    net = compare(circuit, x=CUBE5)
    check_hidden(circuit, net, CUBE5)
    # and the values by definition, gate by gate in plain Python
    for r, out in zip(CUBE5.astype(int), net.forward(CUBE5)):
        value = list(r) + [0, 1]
        for op, operands, k in gates:
            vals = [value[s] for s in operands]
            value.append(1 - vals[0] if op == "not" else int(python_gate(op, vals, k)))
        assert out.tolist() == value[m + 2:]


# ====================================================================== accounting

def test_accounting_one_and():
    net = compile_circuit(dsl.loads("input x[4]; output y = x[0] & x[1];"), "dense")
    info = account(net)
    # hidden: relu(x0 + x1 - 1) (2 weights, bias -1); read-out: y = h (1 weight, bias 0)
    assert info["neurons"] == 1 and info["neurons_per_layer"] == [1]
    assert info["layers"] == 2
    assert info["params_nonzero"] == 2 + 1 + 1
    assert info["params_dense"] == (1 * 4 + 1) + (1 * 1 + 1)
    # fixed part: read-out weights 1 + bias adds 2 + ReLU comparisons 1 + thresholds 1 = 5;
    # first layer: columns x0 and x1 hold one weight each (no sparsity: all 4 may be active)
    assert info["ops_per_input_max"] == 5 + 2
    assert info["ops_per_input_mean"] == pytest.approx(5 + 2 * 0.5)
    assert info["max_weight"] == 1.0
    assert info["inputs"] == 4 and info["outputs"] == 1


def test_accounting_one_and_sparse():
    net = compile_circuit(dsl.loads("input x[4]; sparsity 1; output y = x[0] & x[1];"), "dense")
    info = account(net)
    # at most one active feature: max adds one column; mean: E[#active] = 4/5, so each of
    # the 2 weights is touched with probability (4/5)/4
    assert info["ops_per_input_max"] == 5 + 1
    assert info["ops_per_input_mean"] == pytest.approx(5 + 2 * (4 / 5) / 4, abs=1e-3)


def test_accounting_two_layers():
    net = compile_circuit(dsl.loads("input a, b, c; output y = (a & b) | c;"), "dense")
    info = account(net)
    # layer 1: AND relu(a + b - 1) and a carry relu(c); layer 2: NOR relu(1 - h_and - h_c);
    # read-out y = 1 - h_nor
    assert info["neurons_per_layer"] == [2, 1] and info["neurons"] == 3
    assert info["layers"] == 3
    assert info["params_nonzero"] == (3 + 1) + (2 + 1) + (1 + 1)
    assert info["params_dense"] == (2 * 3 + 2) + (1 * 2 + 1) + (1 * 1 + 1)
    fixed = (2 + 1) + (2 + 1 + 1) + 3 + 1   # later weights, bias adds, ReLUs, threshold
    assert info["ops_per_input_max"] == fixed + 3
    assert info["ops_per_input_mean"] == pytest.approx(fixed + 3 * 0.5)
    assert info["neurons_by_role"] == {"gate": 2, "carry": 1}


def test_accounting_c17_by_hand():
    net = compile_circuit(dsl.load(os.path.join(ROOT, "examples", "c17.sup")), "dense")
    info = account(net)
    # levels of the six NANDs: N10, N11 -> 1; N16, N19 -> 2; N22, N23 -> 3; carries N2, N7
    # (layer 1) and N10 (layer 2)
    assert info["neurons_per_layer"] == [4, 3, 2]
    assert info["neurons_by_role"] == {"gate": 6, "carry": 3}
    assert info["params_nonzero"] == 8 + 5 + 6 + 4
    assert info["params_dense"] == (4 * 5 + 4) + (3 * 4 + 3) + (2 * 3 + 2) + (2 * 2 + 2)
    assert info["ops_per_input_max"] == 33 + 6
    assert info["ops_per_input_mean"] == pytest.approx(33 + 6 * 0.5)


@pytest.mark.parametrize("name", ["c17.sup", "pairs_small.sup", "sparse_features.sup",
                                  "lookup_table.sup", "multilevel.sup"])
def test_accounting_against_brute_force(name):
    """params from dense matrices; ops max / mean by enumerating the domain."""
    circuit = dsl.load(os.path.join(ROOT, "examples", name))
    net = compile_circuit(circuit, "dense")
    info = account(net)
    assert info["neurons"] == sum(layer.n_out for layer in net.hidden)
    nonzero = sum(int(np.count_nonzero(layer.dense())) + int(np.count_nonzero(layer.bias))
                  for layer in net.layers)
    assert info["params_nonzero"] == nonzero
    dense = sum(layer.dense().size + layer.bias.size for layer in net.layers)
    assert info["params_dense"] == dense
    x = domain_dense(circuit)
    w1 = net.layers[0].dense()[:, net.input_map]                    # [n_out, m]
    first = x.astype(float) @ (w1 != 0).sum(axis=0)                 # weights touched
    fixed = (sum(int(np.count_nonzero(layer.dense())) for layer in net.layers[1:])
             + sum(layer.n_out for layer in net.layers) + info["neurons"] + net.n_outputs)
    assert info["ops_per_input_max"] == fixed + int(first.max())
    assert info["ops_per_input_mean"] == pytest.approx(fixed + first.mean(), abs=1e-3)
    assert info["max_weight"] == max(np.abs(np.concatenate([layer.vals, layer.bias])).max()
                                     for layer in net.layers)


def test_expected_active():
    assert expected_active(4, None) == 2.0
    assert expected_active(4, 1) == pytest.approx(4 / 5)
    assert expected_active(64, 2) == pytest.approx((64 + 2 * 2016) / 2081)
    assert expected_active(3, 7) == 1.5


def test_bounds_at_1024():
    b = bounds(1024, neurons=2048, params=5000)
    log = math.log2(1024)
    assert b["m_prime"] == 1024
    assert b["lower_neurons"] == pytest.approx(math.sqrt(1024 * log), abs=1e-3)   # 101.193
    assert b["lower_params"] == pytest.approx(1024 * log)                         # 10240
    assert b["upper_neurons"] == pytest.approx(math.sqrt(1024) * log)             # 320
    assert b["upper_params"] == pytest.approx(1024 * log ** 2)                    # 102400
    assert b["naive_neurons"] == 1024.0
    assert b["neurons_over_lower"] == pytest.approx(2048 / math.sqrt(10240))
    assert b["params_over_lower"] == pytest.approx(5000 / 10240)
    assert b["neurons_over_upper"] == pytest.approx(2048 / 320)
    assert b["params_over_upper"] == pytest.approx(5000 / 102400)
    assert b["neurons_over_naive"] == pytest.approx(2.0)
    assert bounds(1, 3, 4)["neurons_over_lower"] is None   # log2(1) = 0: no ratio


def test_bounds_of_a_compiled_1024_output_network():
    circuit = dsl.loads("const P = pairs(64, 1024, seed=3); input x[64]; sparsity 2;"
                        " output y[u, v] = x[u] & x[v] for (u, v) in P;")
    net = compare(circuit)
    info = account(net)
    assert info["neurons"] == 1024
    assert info["params_nonzero"] == 3 * 1024 + 1024     # 2 weights + bias each, read-out
    b = info["bounds"]
    assert b["m_prime"] == 1024
    assert b["lower_neurons"] == pytest.approx(101.193, abs=1e-3)
    assert b["upper_params"] == pytest.approx(102400.0)
    assert b["neurons_over_naive"] == pytest.approx(1.0)
    assert b["params_over_lower"] == pytest.approx(4096 / 10240)


def test_unavailable_targets():
    circuit = dsl.loads("input a, b; output y = a & b;")
    with pytest.raises(TargetUnavailable):
        compile_circuit(circuit, "nonsense")
    # the conditional target refuses a cone domain over its synthesis limit, clearly
    with pytest.raises(TargetUnavailable, match="max-domain"):
        compile_circuit(circuit, "conditional", max_domain=2)


# ====================================================================== planted bugs

def test_planted_bug_is_detected():
    circuit = dsl.load(os.path.join(ROOT, "examples", "pairs_small.sup"))
    net = compare(circuit)
    bad = copy.deepcopy(net)
    bad.layers[0].vals[0] = -bad.layers[0].vals[0]         # one AND neuron reads -x instead of x
    wrong, _ = mismatches(circuit, bad)
    assert wrong >= 1


@pytest.mark.parametrize("layer", [0, 1, 2, 3])
def test_planted_bug_in_every_layer_of_c17(layer):
    circuit = dsl.load(os.path.join(ROOT, "examples", "c17.sup"))
    net = compare(circuit)
    for j in range(len(net.layers[layer].vals)):         # every single sign flip is caught
        bad = copy.deepcopy(net)
        bad.layers[layer].vals[j] = -bad.layers[layer].vals[j]
        wrong, inexact = mismatches(circuit, bad)
        assert wrong > 0, (layer, j)
    bad = copy.deepcopy(net)
    bad.layers[layer].bias[0] += 0.25                     # not a wrong bit, but no longer exact
    wrong, inexact = mismatches(circuit, bad)
    assert wrong + inexact > 0


def test_planted_bug_in_a_table():
    circuit = dsl.load(os.path.join(ROOT, "examples", "lookup_table.sup"))
    net = compare(circuit)
    bad = copy.deepcopy(net)
    readout = bad.readout
    readout.bias[:] = 1.0 - readout.bias                  # every default flipped
    wrong, _ = mismatches(circuit, bad)
    assert wrong > 0
