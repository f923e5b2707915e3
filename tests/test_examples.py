"""The example circuits in examples/: each loads, and computes what its comment block says.

Every example is loaded with `dsl.load`. Every example whose sparse domain has at most
ENUM_LIMIT assignments is evaluated on its whole domain with the dense reference evaluator,
and the event-driven evaluator must agree with it. Then each example gets a few facts
computed independently in plain Python / numpy (integer addition for the adder, the NAND
formula for c17, the truth table for the decoders, ...).

pairs_1m.sup (a million outputs) is only loaded when SUP_SLOW_TESTS=1 is set.
"""

from __future__ import annotations

import functools
import itertools
import os
from pathlib import Path

import numpy as np
import pytest

import dsl
from dsl.constants import pairs, perm
from dsl.domain import SparseDomain
from dsl.semantics import DONT_CARE, active_to_dense, evaluate, evaluate_active

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ENUM_LIMIT = 20_000
SLOW = {"pairs_1m"}
RUN_SLOW = os.environ.get("SUP_SLOW_TESTS") == "1"

ALL_EXAMPLES = sorted(p.stem for p in EXAMPLES.glob("*.sup"))


@functools.lru_cache(maxsize=None)
def load(name: str):
    return dsl.load(EXAMPLES / f"{name}.sup")


def domain_of(circuit) -> SparseDomain:
    return SparseDomain(circuit.n_inputs, circuit.sparsity)


@functools.lru_cache(maxsize=None)
def enumerate_outputs(name: str, limit: int = ENUM_LIMIT):
    """(circuit, x bool [N, m], y uint8 [N, n_outputs]) over the whole sparse domain."""
    circuit = load(name)
    domain = domain_of(circuit)
    assert domain.size <= limit, f"{name}: domain of {domain.size} is too large to enumerate"
    active = domain.unrank(np.arange(domain.size, dtype=np.int64))
    x = active_to_dense(active, circuit.n_inputs)
    y = evaluate(circuit, x)
    return circuit, x, y


class View:
    """Named access to the columns of an enumerated example: v.x('a[3]'), v.y('sum')."""

    def __init__(self, name: str, limit: int = ENUM_LIMIT):
        self.circuit, self.inputs, self.outputs = enumerate_outputs(name, limit)
        self.in_col = self.circuit.input_lookup()
        self.out_col = {n: i for i, n in enumerate(self.circuit.output_names())}

    def x(self, name: str) -> np.ndarray:
        """int64 [N] values of one input feature."""
        return self.inputs[:, self.in_col[name]].astype(np.int64)

    def xs(self, names) -> np.ndarray:
        """int64 [N, len(names)] values of several input features."""
        return self.inputs[:, [self.in_col[n] for n in names]].astype(np.int64)

    def y(self, name: str) -> np.ndarray:
        """int64 [N] values (0, 1 or DONT_CARE) of one output."""
        return self.outputs[:, self.out_col[name]].astype(np.int64)

    def ys(self, names) -> np.ndarray:
        return self.outputs[:, [self.out_col[n] for n in names]].astype(np.int64)


def small_examples() -> list[str]:
    return [n for n in ALL_EXAMPLES
            if n not in SLOW and domain_of(load(n)).size <= ENUM_LIMIT]


# ====================================================================== every example

def test_there_are_enough_examples():
    assert len(ALL_EXAMPLES) >= 10
    for name in ["pairs_small", "pairs_1k", "pairs_16k", "pairs_1m", "all_pairs", "permutation",
                 "xor_majority", "multilevel", "lookup_table", "table_file", "c17",
                 "sparse_features"]:
        assert name in ALL_EXAMPLES


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_example_loads(name):
    if name in SLOW and not RUN_SLOW:
        pytest.skip("a million outputs: set SUP_SLOW_TESTS=1 to load it")
    circuit = load(name)
    assert circuit.n_inputs > 0
    assert circuit.n_outputs > 0
    assert len(set(circuit.output_names())) == circuit.n_outputs


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_example_starts_with_comment_block(name):
    lines = (EXAMPLES / f"{name}.sup").read_text().splitlines()
    head = list(itertools.takewhile(lambda line: line.startswith("#"), lines))
    assert len(head) >= 5, f"{name}.sup must open with a comment block explaining it"
    text = " ".join(head).lower()
    assert "domain" in text and "interesting" in text


@pytest.mark.parametrize("name", [n for n in ALL_EXAMPLES if n not in SLOW])
def test_whole_domain_dense_and_event_driven_agree(name):
    circuit = load(name)
    domain = domain_of(circuit)
    if domain.size > ENUM_LIMIT:
        pytest.skip(f"domain of {domain.size} assignments is above {ENUM_LIMIT}")
    _, x, y = enumerate_outputs(name)
    assert y.shape == (domain.size, circuit.n_outputs)
    assert set(np.unique(y)) <= {0, 1, DONT_CARE}
    if not circuit.has_dont_care:
        assert not (y == DONT_CARE).any()
    active = domain.unrank(np.arange(domain.size, dtype=np.int64))
    sparse = evaluate_active(circuit, active)
    np.testing.assert_array_equal(sparse.dense(), y)


def test_small_examples_are_enumerated():
    # the examples meant to be checked exhaustively really are small enough
    assert set(small_examples()) >= {"pairs_small", "all_pairs", "xor_majority", "multilevel",
                                     "lookup_table", "table_file", "c17", "sparse_features"}


# ====================================================================== pairs

@pytest.mark.parametrize("name, n, count, seed", [
    ("pairs_small", 64, 256, 1),
    ("pairs_1k", 1000, 10_000, 2024),
    ("pairs_16k", 4096, 16_384, 16),
])
def test_pairs_shape_and_names(name, n, count, seed):
    circuit = load(name)
    assert (circuit.n_inputs, circuit.n_outputs, circuit.sparsity) == (n, count, 2)
    assert circuit.n_gates == count and circuit.depth == 1
    expected = pairs(n, count, seed)
    assert circuit.output_names() == [f"y[{u},{v}]" for u, v in expected]


def test_pairs_small_whole_domain():
    v = View("pairs_small")
    p = pairs(64, 256, 1)
    expected = v.inputs[:, p[:, 0]] & v.inputs[:, p[:, 1]]
    np.testing.assert_array_equal(v.outputs, expected.astype(np.uint8))
    # exactly one output fires on each listed pair, none on a single feature or nothing
    weight = v.inputs.sum(axis=1)
    assert not v.outputs[weight < 2].any()
    assert v.outputs.sum() == 256


@pytest.mark.parametrize("name, n, count, seed", [
    ("pairs_1k", 1000, 10_000, 2024),
    ("pairs_16k", 4096, 16_384, 16),
])
def test_large_pairs_samples(name, n, count, seed):
    circuit = load(name)
    p = pairs(n, count, seed)
    rng = np.random.default_rng(0)
    picked = rng.choice(count, size=50, replace=False)
    result = evaluate_active(circuit, p[picked])
    for row, index in enumerate(picked):
        assert result.ones(row).tolist() == [index]
    chosen = {(int(u), int(v)) for u, v in p}
    absent = []
    while len(absent) < 50:
        u, w = sorted(rng.choice(n, size=2, replace=False).tolist())
        if (u, w) not in chosen:
            absent.append([u, w])
    singles = [[int(u)] for u in rng.choice(n, size=20, replace=False)]
    result = evaluate_active(circuit, absent + singles + [[]])
    for row in range(result.n_rows):
        assert len(result.ones(row)) == 0


@pytest.mark.skipif(not RUN_SLOW, reason="a million outputs: set SUP_SLOW_TESTS=1")
def test_pairs_1m_samples():
    circuit = load("pairs_1m")
    assert (circuit.n_inputs, circuit.n_outputs, circuit.sparsity) == (4096, 1_000_000, 2)
    p = pairs(4096, 1_000_000, 1_000_000)
    picked = np.random.default_rng(1).choice(len(p), size=20, replace=False)
    result = evaluate_active(circuit, p[picked])
    for row, index in enumerate(picked):
        assert result.ones(row).tolist() == [index]


# ====================================================================== all_pairs

def test_all_pairs():
    v = View("all_pairs")
    n = 32
    f = v.xs([f"f[{i}]" for i in range(n)])
    all_ij = [(i, j) for i in range(n) for j in range(i + 1, n)]
    assert len(all_ij) == 496
    for i, j in all_ij:
        np.testing.assert_array_equal(v.y(f"both[{i},{j}]"), f[:, i] & f[:, j])
    near = [(i, j) for i in range(n) for j in range(n)
            if i < j and j - i <= 3 and (i + j) % 2 == 0]
    names = [name for name in v.out_col if name.startswith("near[")]
    assert names == [f"near[{i},{j}]" for i, j in near]
    for i, j in near:
        np.testing.assert_array_equal(v.y(f"near[{i},{j}]"), f[:, i] & f[:, j])
    weight = f.sum(axis=1)
    np.testing.assert_array_equal(v.y("any_pair"), weight >= 2)
    np.testing.assert_array_equal(v.y("none"), weight == 0)
    np.testing.assert_array_equal(v.y("single"), weight == 1)


# ====================================================================== permutation

def test_permutation():
    circuit = load("permutation")
    q = perm(256, 7)
    assert sorted(q.tolist()) == list(range(256))
    assert circuit.n_gates == 0      # pure routing: outputs are inputs
    # the domain (32,897 assignments at sparsity 2) is above ENUM_LIMIT but cheap: check it all
    v = View("permutation", limit=40_000)
    for i in range(256):
        np.testing.assert_array_equal(v.y(f"z[{i}]"), v.x(f"x[{q[i]}]"))
    # one active feature k lights exactly the output i with perm[i] == k
    inverse = np.argsort(q)
    result = evaluate_active(circuit, [[k] for k in range(256)])
    for k in range(256):
        assert result.ones(k).tolist() == [inverse[k]]


# ====================================================================== xor_majority

def test_xor_majority():
    v = View("xor_majority")
    bits = v.xs([f"v[{i}]" for i in range(8)])
    assert len(bits) == 256
    ones = bits.sum(axis=1)
    np.testing.assert_array_equal(v.y("parity"), ones % 2)
    np.testing.assert_array_equal(v.y("parity3"), bits[:, 0] ^ bits[:, 1] ^ bits[:, 2])
    for i in range(6):
        np.testing.assert_array_equal(v.y(f"window[{i}]"), bits[:, i:i + 3].sum(axis=1) % 2)
    np.testing.assert_array_equal(v.y("majority"), ones >= 5)
    np.testing.assert_array_equal(v.y("vote3"), bits[:, :3].sum(axis=1) >= 2)
    np.testing.assert_array_equal(v.y("quorum"), ones >= 6)
    np.testing.assert_array_equal(v.y("few"), ones <= 1)
    np.testing.assert_array_equal(v.y("tie"), ones == 4)
    pair_yes = (bits[:, 0::2] & bits[:, 1::2]).sum(axis=1)
    np.testing.assert_array_equal(v.y("pair_quorum"), pair_yes >= 2)
    # sanity on counts: C(8,4) ties, 93 majorities (5..8 of 8)
    assert v.y("tie").sum() == 70 and v.y("majority").sum() == 93


# ====================================================================== multilevel

def test_ripple_adder():
    v = View("multilevel")
    assert v.circuit.name == "ripple_adder4"
    assert v.circuit.depth == 9            # the carry chain
    a = v.xs([f"a[{i}]" for i in range(4)]) @ (1 << np.arange(4))
    b = v.xs([f"b[{i}]" for i in range(4)]) @ (1 << np.arange(4))
    cin = v.x("cin")
    assert len(set(zip(a.tolist(), b.tolist(), cin.tolist()))) == 512
    total = v.ys(["s0", "s1", "s2", "s3", "cout"]) @ (1 << np.arange(5))
    np.testing.assert_array_equal(total, a + b + cin)
    np.testing.assert_array_equal(v.y("eq"), a == b)
    np.testing.assert_array_equal(v.y("gt"), a > b)
    for i in range(4):
        np.testing.assert_array_equal(v.y(f"differ[{i}]"), ((a ^ b) >> i) & 1)
    wires = {v.circuit.graph.nodes[k]["name"] for k in v.circuit.wire_nodes}
    assert wires == {"p", "g", "c1", "c2", "c3", "c4"}


# ====================================================================== tables

DECODER_ROWS = {   # (op2, op1, op0, imm) -> reg_write mem_read mem_write branch alu_src
    "0000": "10000", "0001": "10001", "0100": "11000", "0101": "11001", "0110": "0*100",
    "0111": "0*101", "1000": "00010", "1001": "00011", "1110": "0000*", "1111": "*****",
}


def test_lookup_table_rows_and_default():
    v = View("lookup_table")
    assert v.circuit.has_dont_care
    code = v.xs(["op[2]", "op[1]", "op[0]", "imm"])
    ctl = v.ys([f"ctl[{i}]" for i in range(5)])
    seen = set()
    for r in range(16):
        key = "".join(str(b) for b in code[r])
        seen.add(key)
        want = DECODER_ROWS.get(key, "00000")
        got = "".join("*" if c == DONT_CARE else str(c) for c in ctl[r])
        assert got == want, key
        opcode = key[:3]
        assert v.y("legal")[r] == (opcode in {"000", "010", "011", "100", "111"})
        touches = v.y("touches_mem")[r]
        if opcode == "011":
            assert touches == 1           # a store: mem_write decides, mem_read is '*'
        elif key == "1111":
            assert touches == DONT_CARE   # every bit of the reserved row is '*'
        else:
            assert touches == int(want[1] == "1" or want[2] == "1")
    assert len(seen) == 16


SEVEN_SEGMENT = ["1111110", "0110000", "1101101", "1111001", "0110011",
                 "1011011", "1011111", "1110000", "1111111", "1111011"]


def test_table_file_seven_segment():
    v = View("table_file")
    digit = v.xs([f"bcd[{i}]" for i in range(4)]) @ (1 << np.arange(4))
    seg = v.ys([f"seg[{i}]" for i in range(7)])
    for r, d in enumerate(digit.tolist()):
        if d < 10:
            assert "".join(map(str, seg[r])) == SEVEN_SEGMENT[d]
            assert v.y("top_bar")[r] == (d not in (1, 4))
            assert v.y("all_lit")[r] == (d == 8)
            assert v.y("bold")[r] == (d in (0, 6, 8, 9))
        else:   # not a BCD digit: `default *` leaves every segment unspecified
            assert (seg[r] == DONT_CARE).all()
    # the rows file is read relative to the .sup file, whatever the working directory
    cwd = os.getcwd()
    try:
        os.chdir("/")
        assert dsl.load(EXAMPLES / "table_file.sup").n_outputs == v.circuit.n_outputs
    finally:
        os.chdir(cwd)


# ====================================================================== c17

def nand(p, q):
    return 1 - (p & q)


def test_c17_matches_nand_netlist():
    v = View("c17")
    assert v.circuit.n_inputs == 5 and v.circuit.output_names() == ["N22", "N23"]
    n1, n2, n3, n6, n7 = (v.x(n) for n in ["N1", "N2", "N3", "N6", "N7"])
    assert len(n1) == 32
    n10, n11 = nand(n1, n3), nand(n3, n6)
    n16, n19 = nand(n2, n11), nand(n11, n7)
    np.testing.assert_array_equal(v.y("N22"), nand(n10, n16))
    np.testing.assert_array_equal(v.y("N23"), nand(n16, n19))


def test_c17_against_bench_file():
    bench = Path(__file__).resolve().parent.parent.parent / "shared/circuits/iscas85/c17.bench"
    if not bench.exists():
        pytest.skip("shared/circuits/iscas85/c17.bench not found")
    gates, inputs, outputs = {}, [], []
    for line in bench.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("INPUT("):
            inputs.append(line[6:-1])
        elif line.startswith("OUTPUT("):
            outputs.append(line[7:-1])
        elif "=" in line:
            out, rhs = (s.strip() for s in line.split("="))
            op, args = rhs.split("(")
            assert op.strip() == "NAND"
            gates[out] = [a.strip() for a in args.rstrip(")").split(",")]
    v = View("c17")

    def value(net, env):
        if net not in env:
            env[net] = 1 - int(all(value(a, env) for a in gates[net]))
        return env[net]

    for r in range(32):
        env = {n: int(v.x(n)[r]) for n in inputs}
        assert [value(o, env) for o in outputs] == [int(v.y(o)[r]) for o in outputs]


# ====================================================================== sparse_features

def test_sparse_features():
    v = View("sparse_features")
    assert v.circuit.sparsity == 3 and v.circuit.n_inputs == 36
    w = v.xs([f"w[{i}]" for i in range(32)])
    ctx = v.xs([f"ctx[{i}]" for i in range(4)])
    assert (w.sum(axis=1) + ctx.sum(axis=1)).max() == 3     # the domain is sparsity 3
    for i in range(16):
        np.testing.assert_array_equal(v.y(f"bigram[{i}]"), w[:, 2 * i] & w[:, 2 * i + 1])
    co = pairs(32, 24, 3)
    for a, b in co:
        np.testing.assert_array_equal(v.y(f"cooc[{a},{b}]"), w[:, a] & w[:, b])
    topic = np.stack([w[:, 8 * t:8 * t + 8].max(axis=1) for t in range(4)], axis=1)
    for t in range(4):
        np.testing.assert_array_equal(v.y(f"topic[{t}]"), topic[:, t])
        want = np.where(ctx[:, 1] == 1, w[:, 8 * t + 1], w[:, 8 * t])
        np.testing.assert_array_equal(v.y(f"positive[{t}]"), want)
    np.testing.assert_array_equal(v.y("register"), np.where(ctx[:, 2] == 1, w[:, 0], w[:, 1]))
    np.testing.assert_array_equal(v.y("neg_question"), ctx[:, 0] & ctx[:, 1])
    np.testing.assert_array_equal(v.y("multi_topic"), topic.sum(axis=1) >= 2)
    assert (v.y("bias") == 1).all() and (v.y("off") == 0).all()
