"""Differential tests of dsl.semantics (and through it the whole front end) against
tests/oracle.py, an independent plain-Python interpreter of the language.

For random programs (tests/random_circuits.py) and hand-written ones covering every construct,
on EVERY input of the circuit's domain:

(a) `evaluate` (dense) agrees with the oracle: where the oracle (ternary, on the program as
    written) knows a value, dense has exactly that value; where dense knows a value the oracle
    leaves open (the compiler may fold `t ^ t` to 0 for a don't-care t), that value must be
    the only one possible over all fillings of the tables' don't cares (`Oracle.possible`).
    Without don't cares this is plain equality.
(b) `evaluate_active(...).dense()` equals dense exactly, also with tiny chunks.
"""

from __future__ import annotations

import copy
import itertools
import random
import re

import numpy as np
import pytest

from dsl import elaborate, parse
from dsl.domain import SparseDomain
from dsl.nodes import Circuit
from dsl.semantics import (DONT_CARE, active_to_dense, evaluate, evaluate_active,
                           gate_from_counts, ite_value)
from tests.oracle import Oracle
from tests.random_circuits import FUNCS, random_circuit

N_RANDOM = 200


# ====================================================================== the comparison

def build(text, files=None, tmp_path=None):
    """(circuit, oracle) of a program; rows files are written next to it in tmp_path."""
    path = None
    if files:
        assert tmp_path is not None
        for name, content in files.items():
            (tmp_path / name).write_text(content)
        path = str(tmp_path / "circuit.sup")
    program = parse(text, path)
    return elaborate(program), Oracle(program)


def domain_inputs(circuit):
    dom = SparseDomain(circuit.n_inputs, circuit.sparsity)
    return dom.unrank(np.arange(dom.size, dtype=np.int64))


def oracle_mismatches(circuit, oracle, active, dense, limit=5):
    """Descriptions of disagreements between dense outputs and the oracle (empty: agree)."""
    names = oracle.input_names
    out_names = oracle.output_names
    problems = []
    for row in range(len(active)):
        on = {names[i] for i in active[row] if i >= 0}
        expected = oracle.run(on)
        got = dense[row]
        possible = None
        for pos, (e, g) in enumerate(zip(expected, got.tolist())):
            if e is not None:
                ok = g == e
            elif g == DONT_CARE:
                ok = True
            else:   # the circuit decided a bit the ternary oracle leaves open: must be forced
                if possible is None:
                    possible = oracle.possible(on)
                ok = possible[pos] == {g}
            if not ok:
                problems.append(f"input {sorted(on)}: {out_names[pos]} = {g}, oracle {e}"
                                + ("" if possible is None else f" (possible {possible[pos]})"))
                if len(problems) >= limit:
                    return problems
    return problems


def check(circuit, oracle, chunks=(8192, 1, 3)):
    assert circuit.input_names() == oracle.input_names
    assert circuit.output_names() == oracle.output_names
    assert circuit.sparsity == oracle.sparsity
    active = domain_inputs(circuit)
    dense = evaluate(circuit, active_to_dense(active, circuit.n_inputs))
    assert dense.shape == (len(active), circuit.n_outputs)
    assert dense.dtype == np.uint8 and dense.max(initial=0) <= DONT_CARE
    problems = oracle_mismatches(circuit, oracle, active, dense)
    assert not problems, "\n".join(problems)
    small = evaluate(circuit, active_to_dense(active, circuit.n_inputs),
                     max_cells=3 * circuit.n_signals)       # dense in chunks of 3 inputs
    assert np.array_equal(small, dense)
    for chunk in chunks:
        result = evaluate_active(circuit, active, chunk=chunk)
        check_sparse_invariants(result, dense)
        sparse = result.dense()
        bad = np.argwhere(sparse != dense)
        assert len(bad) == 0, (f"evaluate_active(chunk={chunk}) differs from evaluate at "
                               f"input {active[bad[0][0]].tolist()}, output "
                               f"{circuit.output_names([int(bad[0][1])])}: "
                               f"{sparse[tuple(bad[0])]} vs {dense[tuple(bad[0])]}")
    return dense


def check_sparse_invariants(result, dense):
    """The documented form of a SparseEval: base = outputs of the all-zero input (row 0 of the
    domain), changes sorted by (row, output) without repeats, each differing from base."""
    assert result.n_rows == len(dense)
    if len(dense):
        assert np.array_equal(result.base, dense[0])
    key = result.rows * max(len(result.base), 1) + result.outputs
    assert (np.diff(key) > 0).all(), "changes not sorted by (row, output) or repeated"
    assert (result.values != result.base[result.outputs]).all(), "a change equal to base"
    for row in range(min(len(dense), 50)):
        assert result.ones(row).tolist() == np.flatnonzero(dense[row] == 1).tolist()
    lo, hi = len(dense) // 3, (2 * len(dense)) // 3 + 1
    assert np.array_equal(result.dense(lo, hi), dense[lo:hi])


# ====================================================================== random circuits

@pytest.mark.parametrize("seed", range(N_RANDOM))
def test_random_circuit(seed, tmp_path):
    text, files = random_circuit(seed)
    circuit, oracle = build(text, files, tmp_path)
    check(circuit, oracle, chunks=(8192, 1 + seed % 7))


def test_random_circuits_cover_the_language():
    texts = [random_circuit(seed)[0] for seed in range(N_RANDOM)]
    joined = "\n".join(texts)
    for func in FUNCS:
        assert f"{func}(" in joined, func
    for token in ["!", "~", "&", "^", "|", "!!", " for ", " if ", "..", "sparsity", "pairs(",
                  "perm(", "const L", "const T", "table ", "from \"", "default ->", "*", "/",
                  "%", "wire ", "output ", "circuit "]:
        assert token in joined, token
    assert any(re.search(r"\(\w, \w\) in", t) for t in texts)           # tuple unpacking
    assert any(re.search(r"for \w in [^;]*, \w in", t) for t in texts)  # nested generators


def test_random_circuits_are_reproducible():
    assert random_circuit(17) == random_circuit(17)
    assert random_circuit(17) != random_circuit(18)


# ====================================================================== hand-written circuits

FIXED = {
    "operators": """
        input a, b, c;
        output n1 = !a; output n2 = ~b; output n3 = !!c; output n4 = ~!~a;
        output and2 = a & b; output or2 = a | b; output xor2 = a ^ b;
        output and3 = a & b & c; output xor3 = a ^ b ^ c; output or3 = a | (b | c);
        output prec1 = a | b & c; output prec2 = a ^ b & c; output prec3 = a | b ^ c;
        output prec4 = !a & b; output prec5 = (a | b) & c; output prec6 = a & b ^ b & c | a;
        output k0 = a & 0; output k1 = a & 1; output k2 = a | 1; output k3 = a ^ 1;
        output k4 = 0; output k5 = 1; output k6 = !0; output k7 = a ^ a; output k8 = a & !a;
        output k9 = a | !a; output k10 = (a & b) | (b & a); output k11 = a & a & b;
        output k12 = (2 - 1) & a; output k13 = a ^ b ^ a;
    """,
    "functions": """
        input a, b, c, d;
        output f1 = and(a, b, c); output f2 = or(a, b, c); output f3 = xor(a, b, c, d);
        output f4 = maj(a, b, c); output f5 = maj(a, b, c, d); output f6 = maj(a, b);
        output f7 = atleast(2, a, b, c, d); output f8 = atmost(1, a, b, c);
        output f9 = exactly(2, a, b, c, d); output f10 = ite(a, b, c);
        output f11 = and(a); output f12 = or(b); output f13 = xor(c); output f14 = maj(d);
        output f15 = atleast(0, a, b); output f16 = atleast(3, a, b); output f17 = atmost(0, a, 1);
        output f18 = exactly(0, a, b); output f19 = atleast(2, a, a, b); output f20 = maj(a, a, b);
        output f21 = ite(a, 1, b); output f22 = ite(a, b, 0); output f23 = ite(a, a, b);
        output f24 = ite(a, b, a); output f25 = ite(a, 0, b); output f26 = ite(a, b, 1);
        output f27 = ite(1, a, b); output f28 = ite(0, a, b); output f29 = ite(a, b, b);
        output f30 = xor(a, 1, b, 1, 1); output f31 = atleast(2, a, 1, b, 0);
        output f32 = exactly(1, a, b, 1); output f33 = atmost(2, a, b, c, 1, 1);
        output f34 = and(a, b, 0); output f35 = or(a, 1); output f36 = xor(a, a, b);
    """,
    "families": """
        input x[6];
        const N = 6;
        const L = [4, 0, 2];
        const T = [(0, 5), (3, 1), (2, 2)];
        const Q = perm(N, seed=7);
        const P = pairs(N, 5, seed=11);
        output y[i] = x[i] ^ x[(i + 1) % N] for i in 0..N;
        output z[i] = x[Q[i]] for i in 0..N;
        output w[i, j] = x[i] & x[j] for i in 0..N, j in i + 1..N if j - i <= 2;
        output p[u, v] = x[u] | x[v] for (u, v) in P;
        output t[a, b] = x[a] & !x[b] for (a, b) in T;
        output l[v] = !x[v] for v in L;
        output s[i * 2 + 1] = x[N - 1 - i] for i in 1..4 if i % 2 == 1 or i == 2;
        output d[i] = x[i / 2] ^ x[T[i % 3][1]] for i in 0..N if not (i == 3);
        output e[i] = x[i] for i in 3..2;
        output neg[i] = x[-i + 5] for i in 0..N if i - 7 / 2 * 2 + -7 % 4 >= -3;
    """,
    "generators_in_calls": """
        input x[7];
        const N = 7;
        const L = [1, 3, 5];
        const P = pairs(N, 6, seed=2);
        output o1 = or(x[i] for i in 0..N);
        output o2 = and(x[i] | x[i + 1] for i in 0..N - 1);
        output o3 = xor(x[0], x[1], x[i] for i in 2..N);
        output o4 = maj(x[i] for i in L);
        output o5 = atleast(2, x[i] & x[i + 1] for i in 0..6);
        output o6 = atmost(1, x[u] & x[v] for (u, v) in P);
        output o7 = exactly(2, x[0], x[i] for i in 1..4);
        output o8[i] = or(x[j] for j in i + 1..N) for i in 0..N;
        output o9[i] = atleast(i % 3, x[j] & !x[i] for j in 0..N if j != i) for i in 0..4;
        output o10 = or(x[i] for i in 0..0);
        output o11 = and(x[i] for i in 0..0);
        output o12 = maj(x[i] for i in 5..2);
        output o13[i] = and(or(x[k] for k in j..N) for j in i..N) for i in 0..3;
        output o14 = xor(x[i] ^ x[j] for i in 0..4, j in i..4 if (i + j) % 2 == 0);
    """,
    "wires_and_sharing": """
        circuit shared;
        input a, b, x[4];
        sparsity 3;
        wire t = a & b;
        wire u[i] = x[i] ^ t for i in 0..4;
        output y1 = u[0] | u[3];
        output y2 = b & a;
        output y3[i] = !u[i] & t for i in 0..4;
        wire v[i, j] = u[i] & u[j] for i in 0..4, j in 0..4 if i < j;
        output y4 = or(v[i, j] for i in 0..4, j in i + 1..4);
        output y5 = !!t;
    """,
    "tables_inline": """
        input a, b, x[4];
        table lut(x[0..3]) -> y[3] {
          000 -> 101;
          011 -> 0*1;
          110 -> *;
          default -> *;
        }
        table two(a, b) -> q[2] {
          10 -> 01;
          01 -> 10;
        }
        wire w = a ^ x[3];
        table three(w, x[1], y[0]) -> r[1] {
          000 -> 1; 100 -> 0; 010 -> 1; 111 -> 1;
          default -> 0;
        }
        output z1 = y[1] ^ y[1];
        output z2 = y[0] & !y[0];
        output z3 = y[2] | q[0];
        output z4 = r[0] & a;
        output z5 = ite(y[1], 1, 1);
        output z6 = atleast(1, y[1], a);
        output z7 = y[1] & 0;
        table one_bit_slice(x[2..3], a) -> s[1] { 01 -> 1; }
    """,
    "two_dim_inputs": """
        input g[2, 3], c;
        output row[i] = or(g[i, j] for j in 0..3) for i in 0..2;
        output col[j] = and(g[i, j] for i in 0..2) ^ c for j in 0..3;
        output diag = g[0, 0] & g[1, 1];
    """,
    "thresholds_and_k": """
        input x[4];
        output al[i] = atleast(i, x[0], x[1], x[2]) for i in 0..5;
        output am[i] = atmost(i, x[0], x[1], x[2]) for i in 0..5;
        output ex[i] = exactly(i, x[0], x[1], x[2]) for i in 0..5;
        output mixed = atleast(1, x[0], x[3]) ^ atmost(1, x[0], x[3]) ^ exactly(1, x[3], x[0]);
        output rep[i] = atleast(i, x[1], x[1], x[1], x[2]) for i in 0..5;
        output kk[i] = exactly(i % 2 + 1, x[j] for j in 0..i + 1) for i in 0..4;
    """,
    "conditions": """
        input x[6];
        const N = 6;
        const E = [];
        const Z = pairs(N, 0, seed=4);
        const P = pairs(N, 15);
        output odd[i] = x[i] for i in 0..N if i % 2;
        output c2[i, j] = x[i] & x[j] for i in 0..N, j in 0..N if i < j and not (j - i) % 3 or i == 5 and j == 0;
        output none[v] = x[v] for v in E;
        output nz[u, v] = x[u] for (u, v) in Z;
        output all15 = atleast(3, x[u] ^ x[v] for (u, v) in P);
        output cnt = exactly(0, x[v] for v in E);
        output back[i] = x[i] for i in N - 1..-1 if i > 0;
        output guard[i] = x[i] for i in 0..N if i != 0 and 12 % i == 0 or i == 0;
    """,
    "table_edge_cases": """
        input a, b, x[3];
        sparsity 3;
        table dup(a, a, b) -> d[2] { 110 -> 11; 100 -> 01; 011 -> 1*; default -> 0*; }
        table norows(x[0..3]) -> n[2] { }
        table only_default(b) -> o[1] { default -> 1; }
        wire k = a & 0;
        table fromconst(k, x[1]) -> f[2] { 01 -> 10; 00 -> *1; }
        table chained(d[0..2], n[1], f[0]) -> c[3] {
          0000 -> 1*0; 1000 -> 010; 0100 -> *; 1100 -> 111; 0001 -> 001;
          default -> 1*1;
        }
        output u = c[0] & c[1] | !c[2] ^ d[1];
        output v = maj(c[0], c[1], c[2], f[1], d[1]);
    """,
    "misc": """
        circuit misc;
        input a, B, x[5];
        sparsity 4;
        const ONE = 1;
        const K = 2;
        const R = [(0, 1, 2), (3, 4, 0), (2, 2, 2)];
        const S = 3;
        const P = pairs(5, 4, seed=S + 1);
        const Z = perm(0, seed=1);
        const W = perm(5);
        const PP = pairs(2, 1);
        output o1 = ONE & a;
        output o2 = 2 - 1;
        output o3 = atleast(K, x[0], x[1], x[2]);
        output o4[p, q, r] = x[p] & x[q] ^ x[r] for (p, q, r) in R;
        output o5[i] = x[R[i][0] + R[i][2] - R[i][1] + 1] for i in 0..2;
        output o6[v] = x[v] for v in Z;
        output o7[i] = x[W[W[i]]] for i in 0..5 if W[i] > -1;
        output o8[u, v] = B ^ x[u + v] for (u, v) in PP;
        wire b = !a;
        output o9 = b & B;
        output o10[i] = atmost(i % 3, x[j] for j in 0..5 if j >= i) for i in 0..5;
        output o11 = exactly(K - K, a, B);
        input late;
        output o12 = late ^ a;
    """,
    "constants_arith": """
        input x[10];
        sparsity 2;
        const A = 3;
        const B = A * 2 + 1;      # 7
        const C = (B - 10) / 2;   # floor: -2
        const D = (B - 10) % 4;   # floor mod: 1
        const E = -C;             # 2
        const L = [A, B, E, D];
        const T = [(1, 9), (B, 0)];
        output y0 = x[A] & x[B];
        output y1 = x[E] | x[D];
        output y2 = x[L[1]] ^ x[T[1][1]] ^ x[T[0][1]];
        output y3[i] = x[L[i]] for i in 0..4;
        output y4 = x[+A - -1];
    """,
}


@pytest.mark.parametrize("name", sorted(FIXED))
def test_fixed_circuit(name):
    circuit, oracle = build(FIXED[name])
    check(circuit, oracle)


def test_table_from_file(tmp_path):
    rows = "# a rows file\n00 1*   # a comment\n\n11\t01\ndefault *0\n10 *\n"
    text = """
        input a, x[2];
        table lut(x[0], a) -> y[2] from "lut.rows";
        table lut2(x[0..2]) -> z[1] from "sub/lut2.rows";
        output o = y[0] ^ y[1] ^ z[0];
    """
    (tmp_path / "sub").mkdir()
    circuit, oracle = build(text, {"lut.rows": rows, "sub/lut2.rows": "01 1\n"}, tmp_path)
    check(circuit, oracle)
    # rows bits: leftmost bit is the first listed input / output 0
    on = lambda *names: oracle.run(set(names))
    assert on() == [1, None, 0, None]                  # 00 -> 1*, z: no row, default 0
    assert on("x[0]", "a") == [0, 1, 0, 1]             # 11 -> 01
    assert on("x[0]") == [None, None, 0, None]         # 10 -> *
    assert on("a") == [None, 0, 0, None]               # default *0
    assert on("x[1]") == [1, None, 1, None]            # z: 01 -> 1


# ====================================================================== oracle spot checks
# The oracle is itself checked against Python definitions on a few inputs.

def test_integer_arithmetic_against_python():
    exprs = ["10 - 3 - 2", "2 * 3 % 4", "7 / 2 * 2", "-7 / 2", "-7 % 3", "7 % -3", "-(2 - 5) * 3",
             "1 + 2 * 3 - 4 / 2", "(1 + 2) * (3 - 4) / 2", "- - 4", "+3 - +2", "17 / 5 % 2"]
    python = ["10 - 3 - 2", "2 * 3 % 4", "7 // 2 * 2", "-7 // 2", "-7 % 3", "7 % -3",
              "-(2 - 5) * 3", "1 + 2 * 3 - 4 // 2", "(1 + 2) * (3 - 4) // 2", "- - 4", "+3 - +2",
              "17 // 5 % 2"]
    text = "".join(f"const C{n} = {e};\n" for n, e in enumerate(exprs))
    oracle = Oracle(text + "input x[40];\n" + "".join(
        f"output y{n} = x[C{n} + 20];\n" for n in range(len(exprs))))
    for n, e in enumerate(python):
        assert oracle.consts[f"C{n}"] == eval(e), exprs[n]
    # the compiler agrees: y_n is x[C_n + 20]
    circuit = elaborate(parse(text + "input x[40];\n" + "".join(
        f"output y{n} = x[C{n} + 20];\n" for n in range(len(exprs)))))
    assert circuit.output_drivers.tolist() == [eval(e) + 20 for e in python]


def test_oracle_against_python():
    oracle = Oracle(FIXED["operators"] + FIXED["functions"].replace("input a, b, c, d;",
                                                                       "input d;"))
    for bits in itertools.product((0, 1), repeat=4):
        a, b, c, d = bits
        v = dict(zip(oracle.output_names, oracle.run(dict(zip("abcd", bits)))))
        assert v["prec1"] == a | (b & c) and v["prec2"] == a ^ (b & c)
        assert v["prec3"] == a | (b ^ c) and v["prec4"] == (1 - a) & b
        assert v["prec6"] == ((a & b) ^ (b & c)) | a
        assert v["f4"] == int(a + b + c >= 2) and v["f5"] == int(a + b + c + d >= 3)
        assert v["f6"] == a & b and v["f9"] == int(a + b + c + d == 2)
        assert v["f10"] == (b if a else c) and v["f19"] == int(2 * a + b >= 2)
        assert v["f3"] == (a + b + c + d) % 2 and v["f8"] == int(a + b + c <= 1)
    assert Oracle("const P = pairs(5, 3, seed=1); input x[5];\n"
                  "output y[u, v] = x[u] for (u, v) in P;").output_names[0].startswith("y[")
    circuit_names = Oracle("input a; output y[i, j] = a for i in 2..4, j in 0..i if j != 1;")
    assert circuit_names.output_names == ["y[2,0]", "y[3,0]", "y[3,2]"]


# ====================================================================== gate functions

def _completions(op, ones, unknown, n, k):
    """The exact ternary value: 1 / 0 if every filling of the unknown operands gives it."""
    def holds(count):
        if op in ("and", "or", "xor"):
            return {"and": count == n, "or": count >= 1, "xor": count % 2 == 1}[op]
        return {"atleast": count >= k, "atmost": count <= k, "exactly": count == k}[op]
    values = {holds(c) for c in range(ones, ones + unknown + 1)}
    return int(values.pop()) if len(values) == 1 else DONT_CARE


def test_gate_from_counts_truth_tables():
    cases = [(op, ones, unknown, n, k)
             for n in range(0, 6) for ones in range(n + 1) for unknown in range(n + 1 - ones)
             for op in ("and", "or", "xor", "atleast", "atmost", "exactly")
             for k in (range(-1, n + 2) if op in ("atleast", "atmost", "exactly") else [None])]
    for op in ("and", "or", "xor", "atleast", "atmost", "exactly"):
        sel = [c for c in cases if c[0] == op]
        ones = np.array([c[1] for c in sel])
        unknown = np.array([c[2] for c in sel])
        n = np.array([c[3] for c in sel])
        k = None if sel[0][4] is None else np.array([c[4] for c in sel])
        got = gate_from_counts(op, ones, unknown, n, k)
        expected = [_completions(*c) for c in sel]
        assert got.tolist() == expected, op
        for c, g in zip(sel, got.tolist()):   # scalars too
            one = gate_from_counts(op, np.array([c[1]]), np.array([c[2]]), np.array([c[3]]),
                                   None if c[4] is None else np.array([c[4]]))
            assert one.tolist() == [g]


def test_ite_value_truth_table():
    vals = (0, 1, DONT_CARE)
    triples = list(itertools.product(vals, repeat=3))
    c, t, e = (np.array(x, dtype=np.uint8) for x in zip(*triples))
    got = ite_value(c, t, e).tolist()
    for (ci, ti, ei), g in zip(triples, got):
        fill = lambda v: (0, 1) if v == DONT_CARE else (v,)
        outs = {tt if cc else ee for cc in fill(ci) for tt in fill(ti) for ee in fill(ei)}
        assert g == (outs.pop() if len(outs) == 1 else DONT_CARE), (ci, ti, ei)


# ====================================================================== sharing and folding

def _drivers(circuit):
    return dict(zip(circuit.output_names(), circuit.output_drivers.tolist()))


def test_sharing():
    circuit = elaborate(parse("input x, y; output a1 = x & y; output a2 = y & x;"))
    assert circuit.n_gates == 1
    d = _drivers(circuit)
    assert d["a1"] == d["a2"]
    circuit = elaborate(parse(
        "input x[3]; output a[i] = x[i] ^ x[(i + 1) % 3] for i in 0..3;\n"
        "output b[i] = x[(i + 1) % 3] ^ x[i] for i in 0..3;\n"
        "output c = !x[0]; output e = ~x[0];\n"
        "output f = maj(x[0], x[1], x[2]); output g = atleast(2, x[2], x[0], x[1]);"))
    d = _drivers(circuit)
    assert [d[f"a[{i}]"] for i in range(3)] == [d[f"b[{i}]"] for i in range(3)]
    assert d["c"] == d["e"] and d["f"] == d["g"]
    assert circuit.n_gates == 3 + 1 + 1


def test_folding():
    circuit = elaborate(parse(
        "input x, y;\n"
        "output f1 = x & 1; output f2 = x & 0; output f3 = !!x; output f4 = x ^ x;\n"
        "output f5 = x | 1; output f6 = x | 0; output f7 = x & x; output f8 = x & !x;\n"
        "output f9 = x | !x; output f10 = ite(1, x, y); output f11 = ite(x, y, y);\n"
        "output f12 = and(x); output f13 = x ^ 0; output f14 = atleast(0, x, y);\n"
        "output f15 = atmost(0, x, y, 1); output f16 = ~~~~y; output f17 = 1;"))
    m = circuit.n_inputs
    x, y = circuit.input_lookup()["x"], circuit.input_lookup()["y"]
    const = circuit.graph.nodes["const"]
    assert const["first"] == m and const["count"] == 2
    zero, one = m, m + 1
    d = _drivers(circuit)
    assert (d["f1"], d["f2"], d["f3"], d["f4"]) == (x, zero, x, zero)
    assert (d["f5"], d["f6"], d["f7"], d["f8"], d["f9"]) == (one, x, x, zero, one)
    assert (d["f10"], d["f11"], d["f12"], d["f13"]) == (x, y, x, x)
    assert (d["f14"], d["f15"], d["f16"], d["f17"]) == (one, zero, y, one)
    # no gate reads a constant
    for key in circuit.gate_nodes():
        assert not np.isin(circuit.graph.nodes[key]["operands"], [zero, one]).any()


def test_no_gate_reads_a_constant_in_random_circuits(tmp_path):
    for seed in range(0, N_RANDOM, 4):
        text, files = random_circuit(seed)
        circuit, _ = build(text, files, tmp_path)
        m = circuit.n_inputs
        for key in circuit.gate_nodes():
            data = circuit.graph.nodes[key]
            assert not np.isin(data["operands"], [m, m + 1]).any(), (seed, key)
            ops = data["operands"]
            assert (ops < data["first"]).all()    # ids are a topological order


def test_sharing_large_family():
    """Thousands of gates in one call (the hash index merges its runs), all shared again."""
    text = ("input x[100];\nsparsity 3;\nconst P = pairs(100, 4950, seed=1);\n"
            "output a[u, v] = x[u] & x[v] for (u, v) in P;\n"
            "output b[u, v] = x[v] & x[u] for (u, v) in P;\n"
            "output c[u, v] = x[u] ^ x[v] for (u, v) in P if (u + v) % 7 == 0;\n"
            "output d[u, v] = x[v] ^ x[u] for (u, v) in P if (u + v) % 7 == 0;\n")
    circuit, oracle = build(text)
    n_c = sum(1 for u in range(100) for v in range(u + 1, 100) if (u + v) % 7 == 0)
    assert circuit.n_gates == 4950 + n_c
    drivers = circuit.output_drivers
    assert np.array_equal(drivers[:4950], drivers[4950:9900])
    assert np.array_equal(drivers[9900:9900 + n_c], drivers[9900 + n_c:])
    assert len(np.unique(drivers)) == 4950 + n_c
    rng = random.Random(3)
    rows = [sorted(rng.sample(range(100), r % 4)) for r in range(12)]
    active = np.full((len(rows), 3), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        active[i, :len(r)] = r
    dense = evaluate(circuit, active_to_dense(active, 100))
    assert not oracle_mismatches(circuit, oracle, active, dense)
    assert np.array_equal(evaluate_active(circuit, active, chunk=5).dense(), dense)


def test_empty_batches_and_bad_inputs():
    circuit = elaborate(parse("input a, x[3]; output y = a & x[1]; output z[i] = !x[i] for i in 0..3;"))
    assert evaluate(circuit, np.zeros((0, 4), bool)).shape == (0, 4)
    empty = evaluate_active(circuit, [])
    assert empty.dense().shape == (0, 4)
    assert evaluate_active(circuit, [[]]).dense().tolist() == [[0, 1, 1, 1]]
    assert evaluate_active(circuit, [[0, 2]]).dense().tolist() == [[1, 1, 0, 1]]
    with pytest.raises(ValueError):
        evaluate(circuit, np.zeros((2, 3), bool))
    with pytest.raises(ValueError):
        evaluate_active(circuit, [[4]])
    with pytest.raises(ValueError):
        evaluate_active(circuit, [[-2]])


def _gate_keys(circuit):
    keys = []
    for key in circuit.gate_nodes():
        data = circuit.graph.nodes[key]
        for j in range(data["count"]):
            ops = data["operands"][data["offsets"][j]:data["offsets"][j + 1]]
            keys.append((data["op"], None if data["k"] is None else int(data["k"][j]),
                         tuple(ops.tolist())))
    return keys


@pytest.mark.parametrize("modulus", [1, 3])
def test_sharing_survives_hash_collisions(modulus, monkeypatch, tmp_path):
    """Force 64-bit hash collisions: gates must still be shared exactly (never two equal
    gates, never two different gates merged), and the semantics unchanged."""
    from dsl import gates
    real = gates.GateBuilder._hash_rows
    monkeypatch.setattr(gates.GateBuilder, "_hash_rows",
                        lambda self, *args: real(self, *args) % np.uint64(modulus))
    for seed in range(0, 60, 3):
        text, files = random_circuit(seed)
        circuit, oracle = build(text, files, tmp_path)
        keys = _gate_keys(circuit)
        assert len(keys) == len(set(keys)), seed
        check(circuit, oracle, chunks=(8192,))
    circuit, oracle = build(FIXED["functions"])
    keys = _gate_keys(circuit)
    assert len(keys) == len(set(keys))
    check(circuit, oracle, chunks=(8192,))


def test_no_duplicate_gates_in_random_circuits(tmp_path):
    for seed in range(0, N_RANDOM, 5):
        text, files = random_circuit(seed)
        circuit, _ = build(text, files, tmp_path)
        keys = _gate_keys(circuit)
        assert len(keys) == len(set(keys)), seed


# ====================================================================== planted bug

def _mutated(circuit, key, op):
    graph = copy.deepcopy(circuit.graph)
    graph.nodes[key]["op"] = op
    return Circuit(circuit.name, graph, circuit.n_inputs, circuit.sparsity, circuit.n_signals,
                   list(circuit.signal_nodes), list(circuit.output_nodes),
                   list(circuit.wire_nodes), list(circuit.input_nodes), file=circuit.file)


def test_planted_bug_is_caught():
    circuit, oracle = build(FIXED["wires_and_sharing"])
    check(circuit, oracle)
    caught = 0
    for key in circuit.gate_nodes():
        op = circuit.graph.nodes[key]["op"]
        if op not in ("and", "or", "xor"):
            continue
        wrong = {"and": "or", "or": "xor", "xor": "and"}[op]
        bad = _mutated(circuit, key, wrong)
        active = domain_inputs(bad)
        dense = evaluate(bad, active_to_dense(active, bad.n_inputs))
        assert oracle_mismatches(bad, oracle, active, dense), key
        with pytest.raises(AssertionError):
            check(bad, oracle)
        caught += 1
    assert caught >= 3
    # the original is untouched
    check(circuit, oracle)


# ====================================================================== sparse vs dense, pairs

def test_evaluate_active_pairs_family():
    circuit = elaborate(parse("input x[64];\nconst P = pairs(64, 500, seed=3);\n"
                              "output y[u, v] = x[u] & x[v] for (u, v) in P;"))
    assert circuit.n_outputs == 500
    rng = random.Random(5)
    pairs_list = [tuple(int(s) for s in re.findall(r"\d+", n)) for n in circuit.output_names()]
    rows = []
    for r in range(2000):
        size = r % 5
        if size >= 2 and r % 3 == 0:   # make sure many inputs hit a pair
            u, v = pairs_list[rng.randrange(len(pairs_list))]
            rest = rng.sample([f for f in range(64) if f not in (u, v)], size - 2)
            rows.append(sorted([u, v, *rest]))
        else:
            rows.append(sorted(rng.sample(range(64), size)))
    active = np.full((len(rows), 4), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        active[i, :len(r)] = r
    dense = evaluate(circuit, active_to_dense(active, 64))
    assert dense.sum() > 500
    for chunk in (8192, 7, 1):
        assert np.array_equal(evaluate_active(circuit, active, chunk=chunk).dense(), dense)
    assert np.array_equal(evaluate_active(circuit, rows).dense(), dense)
    # and against the definition of the family
    pair_index = {p: j for j, p in enumerate(pairs_list)}
    expected = np.zeros_like(dense)
    for i, r in enumerate(rows):
        for a, b in itertools.combinations(r, 2):
            if (a, b) in pair_index:
                expected[i, pair_index[(a, b)]] = 1
    assert np.array_equal(dense, expected)
