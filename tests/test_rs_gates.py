"""Combinatorial codes beyond pairwise AND (compiler/superposed/rs_terms.py): n-ary AND, OR,
atleast and copies over coded inputs, the exact count layers, the generalised score bound, and
the certificate (verify/code_certificate.py) against brute force, the exhaustive verifier and
planted bugs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import dsl
from backends.torch_module import SupModule
from compiler import compile_circuit
from compiler.superposed.codes import CodeError
from compiler.superposed.rs_codes import RSParams, choose_params, symbols
from compiler.superposed.rs_compile import build_coded_network, circuit_terms_and_sparsity
from compiler.superposed.rs_terms import Layout, SymbolSets, Terms, bound_weight, rho_weights
from dsl.semantics import evaluate_active
from verify import verify
from verify.code_certificate import verify_rs_certificate
from verify.exhaustive import verify_exhaustive

from test_rs_codes import whole_domain

torch.set_num_threads(1)


def mixed_text(m: int, K: int, outputs: int = 40, seed: int = 0) -> str:
    """AND of 3, OR of 2, atleast(2 of 3), copies and pairwise ANDs of random features."""
    rng = np.random.default_rng(seed)
    lines = [f"input x[{m}]; sparsity {K};"]
    for i in range(outputs):
        f = rng.choice(m, 4, replace=False)
        lines.append([f"output a{i} = x[{f[0]}] & x[{f[1]}] & x[{f[2]}];",
                      f"output o{i} = x[{f[0]}] | x[{f[1]}];",
                      f"output t{i} = atleast(2, x[{f[0]}], x[{f[1]}], x[{f[2]}]);",
                      f"output c{i} = x[{f[0]}];",
                      f"output p{i} = x[{f[0]}] & x[{f[1]}];"][i % 5])
    return "\n".join(lines)


PERMUTATION = ("input x[64]; sparsity 3; "
               "output y[i] = x[(i * 37 + 5) % 64] for i in 0..64;")
FOUR_AND = ("input x[16]; sparsity 4; "
            "output y[i] = x[i] & x[(i + 3) % 16] & x[(i + 7) % 16] & x[(i + 11) % 16] "
            "for i in 0..16;")


# ------------------------------------------------------------------ the pieces

@pytest.mark.parametrize("r,K", [(1, 3), (2, 2), (2, 4), (3, 3), (3, 5), (4, 6)])
def test_threshold_weights_give_binomials(r, K):
    a = rho_weights(r, K)
    rho = np.array([0]) if r == 1 else np.arange(r - 1, K)
    for v in range(K + 1):
        assert float(a @ np.maximum(v - rho, 0)) == math.comb(v, r)


@pytest.mark.parametrize("q,r", [(3, 1), (4, 2), (5, 3), (3, 3)])
def test_symbol_sets_rank_every_set_once(q, r):
    sets = SymbolSets(q, r)
    assert len(sets) == sum(math.comb(q, j) for j in range(1, r + 1))
    got = sets.rank(sets.members)
    assert sorted(got.tolist()) == list(range(len(sets)))
    # repeated symbols are one set: (a, a, b) is {a, b}
    if r >= 3 and q >= 2:
        assert sets.rank(np.array([[1, 0, 1]]))[0] == sets.rank(np.array([[0, 1, -1]]))[0]


@pytest.mark.parametrize("arities,K", [((1, 2, 3), 3), ((2, 3), 4), ((1,), 2), ((3, 4), 4)])
def test_code_layer_counts_active_subsets_exactly(arities, K):
    """z_r[s, Q] = number of active r-subsets whose symbols at s form Q, on random inputs."""
    q, c, m = 4, 3, 12
    sym = np.random.default_rng(1).integers(0, q, size=(m, c))
    layout = Layout(c, q, K, arities)
    hr, hc, hv, hb, _ = layout.hidden()
    H = np.zeros((layout.n, c * q))
    np.add.at(H, (hr, hc), hv)
    wr, wc, wv = layout.code()
    W = np.zeros((layout.d_out, layout.n))
    np.add.at(W, (wr, wc), wv)
    rng = np.random.default_rng(2)
    for _ in range(60):
        active = rng.choice(m, rng.integers(0, K + 1), replace=False)
        v = np.zeros(c * q)
        for f in active:
            v[np.arange(c) * q + sym[f]] += 1
        z = W @ np.maximum(H @ v + hb, 0)
        want = np.zeros(layout.d_out)
        for r in arities:
            for T in itertools.combinations(sorted(active), r):
                for s in range(c):
                    j = layout.sets[r].rank(sym[list(T), s][None, :])[0]
                    want[layout.z_off[r] + s * len(layout.sets[r]) + j] += 1
        assert np.array_equal(z, want)


def _worst_inactive(sym, terms_of_output, K):
    """The largest score over inputs with <= K active features on which no term is active."""
    m, c = sym.shape
    arities = sorted({len(t) for t in terms_of_output})
    best = 0
    for size in range(K + 1):
        for active in itertools.combinations(range(m), size):
            A = set(active)
            if any(set(t) <= A for t in terms_of_output):
                continue
            score = 0
            for s in range(c):
                coords = {(len(t), frozenset(sym[list(t), s].tolist())) for t in terms_of_output}
                for r, Q in coords:
                    score += sum(1 for T in itertools.combinations(active, r)
                                 if frozenset(sym[list(T), s].tolist()) == Q)
            best = max(best, score)
    return best, arities


@pytest.mark.parametrize("K", [2, 3, 4])
def test_score_bound_holds_by_brute_force(K):
    """Over a small RS code (agreement lambda), the worst inactive score of AND3, OR2, atleast
    and copies never exceeds lambda * sum of bound_weight over the terms."""
    p = RSParams(12, K, 5, 1, 5)
    sym = symbols(p)
    rng = np.random.default_rng(K)
    for _ in range(6):
        f = rng.choice(12, 3, replace=False).tolist()
        for terms in ([tuple(f)], [(f[0],), (f[1],)], list(itertools.combinations(f, 2)),
                      [(f[0],)], [tuple(f[:2])]):
            if any(len(t) > K for t in terms):
                continue
            worst, _ = _worst_inactive(sym, terms, K)
            assert worst <= p.lam * sum(bound_weight(len(t), K) for t in terms)


# ------------------------------------------------------------------ whole networks

CASES = [mixed_text(30, 2), mixed_text(16, 3, outputs=20), mixed_text(12, 4, outputs=15),
         PERMUTATION, FOUR_AND]


@pytest.mark.parametrize("src", CASES)
@pytest.mark.parametrize("codes", [("rs", "rs"), (None, "rs"), ("rs", None)])
def test_coded_gates_exact_certified_and_exhaustive(src, codes):
    circuit = dsl.loads(src)
    net = compile_circuit(circuit, "superposed", input_code=codes[0], output_code=codes[1])
    active, x = whole_domain(circuit)
    spec = evaluate_active(circuit, active).dense()
    y = net.forward(x)                                   # float64 numpy reference path
    assert np.array_equal(y > 0.5, spec == 1)
    module = SupModule(net, device="cpu")
    cert = verify(circuit, net, module, "structural")
    assert cert["verified"] is True and cert["min_margin"] == 0.5
    assert verify_rs_certificate(circuit, net, module, subset_budget=0)["verified"] is True
    assert verify_exhaustive(circuit, module, progress=False)["verified"] is True


def test_compression_on_a_permutation_and_four_way_and():
    """Copies need no threshold beyond relu(v): n = c q; 4-ary ANDs compile and stay exact."""
    circuit = dsl.loads(PERMUTATION)
    net = compile_circuit(circuit, "superposed", input_code="rs", output_code="rs")
    p = net.meta["codes"]["rs"]
    assert p["arities"] == [1] and p["n"] == p["c"] * p["q"] and p["d_in"] < 64
    four = compile_circuit(dsl.loads(FOUR_AND), "superposed", input_code="rs", output_code="rs")
    assert four.meta["codes"]["rs"]["arities"] == [4]


def test_terms_of_each_gate_kind():
    circuit = dsl.loads("input x[6]; sparsity 3; output a = x[0] & x[1] & x[2]; "
                        "output o = x[3] | x[4]; output t = atleast(2, x[0], x[3], x[5]); "
                        "output c = x[5]; output z = x[0] & x[1] & x[2] & x[3];")
    terms, K = circuit_terms_and_sparsity(circuit)
    assert K == 3 and terms.arities == (1, 2, 3)
    got = {}
    for r in terms.arities:
        for j, f in zip(terms.outputs[r].tolist(), terms.features[r].tolist()):
            got.setdefault(j, set()).add(tuple(sorted(f)))
    assert got == {0: {(0, 1, 2)}, 1: {(3,), (4,)}, 2: {(0, 3), (0, 5), (3, 5)}, 3: {(5,)}}
    assert 4 not in got                    # 4 features never all active at sparsity 3
    assert terms.weight.tolist() == [bound_weight(3, 3), 2 * bound_weight(1, 3),
                                      3 * bound_weight(2, 3), bound_weight(1, 3), 0]


def test_uncodable_outputs_are_named():
    for src, word in (("input x[4]; sparsity 2; output a = x[0] ^ x[1];", "threshold gates"),
                      ("input x[12]; sparsity 3; output a = atleast(3, x[0], x[1], x[2], x[3], "
                       "x[4], x[5], x[6], x[7], x[8], x[9], x[10]);", "terms")):
        with pytest.raises(CodeError, match=word):
            compile_circuit(dsl.loads(src), "superposed", input_code="rs", output_code="rs")


# ------------------------------------------------------------------ planted bugs

def _and_or_text(m: int, K: int, outputs: int, seed: int) -> str:
    """Like mixed_text without atleast (fewer terms per output: lambda >= 1 is cheapest)."""
    return "\n".join(line for line in mixed_text(m, K, outputs, seed).split("\n")
                     if "atleast" not in line)


def _planted(kind):
    circuit = dsl.loads(_and_or_text(24, 3, outputs=40, seed=3))
    terms, K = circuit_terms_and_sparsity(circuit)
    p = choose_params(circuit.n_inputs, K, "neurons", terms.arities,
                      int(terms.weight.max()))
    if kind == "small c":
        p = RSParams(p.m, p.K, p.q, p.lam, 2, p.modulus, p.arities, p.weight)
        return circuit, build_coded_network(p, terms, check=False)
    net = build_coded_network(p, terms)
    rng = np.random.default_rng(7)
    if kind == "code entry":               # move one feature's symbol in one block
        enc = net.layers[0]
        k = int(rng.integers(len(enc.rows)))
        q = p.q
        enc.rows[k] = (enc.rows[k] // q) * q + (enc.rows[k] % q + 1) % q
    elif kind == "decoder bias":
        net.layers[-1].bias[:] = 0         # every output fires on one matching coordinate
    elif kind == "count weight":           # a -1 of a coordinate the decoder reads flipped
        w2, read = net.layers[2], set(net.layers[3].cols.tolist())
        k = int(next(i for i in np.flatnonzero(w2.vals < 0) if int(w2.rows[i]) in read))
        w2.vals[k] = -w2.vals[k]
    elif kind == "neuron bias":            # a pair neuron relu(v - 1) becomes relu(v)
        hidden = net.layers[1]
        k = int(np.flatnonzero(hidden.bias == -1)[0])
        hidden.bias[k] = 0
    return circuit, net


@pytest.mark.parametrize("kind", ["code entry", "decoder bias", "count weight", "neuron bias",
                                  "small c"])
def test_planted_bugs_never_certified_and_found_exhaustively(kind):
    circuit, net = _planted(kind)
    module = SupModule(net, device="cpu")
    exhaustive = verify_exhaustive(circuit, module, progress=False)
    cert = verify_rs_certificate(circuit, net, module)
    assert cert["verified"] is not True
    if kind in ("code entry", "decoder bias", "neuron bias"):   # these break some output
        assert exhaustive["verified"] is False
    elif exhaustive["verified"] is True:   # wrong counts the domain never exposes
        return
    active, x = whole_domain(circuit)
    spec = evaluate_active(circuit, active).dense()
    y = module(torch.as_tensor(x, dtype=module.dtype)).numpy()
    wrong = (y > 0.5) != (spec == 1)
    assert wrong.any()
    for cx in cert["counterexamples"]:     # every reported counterexample is real
        row = np.array([sorted(circuit.input_names(None).index(n) for n in cx["active"])])
        spec_row = evaluate_active(circuit, row).dense()[0]
        names = circuit.output_names(None)
        j = names.index(cx["wrong"][0])
        assert (cx["values"][cx["wrong"][0]] > 0.5) != (spec_row[j] == 1)


# ------------------------------------------------------------------ the dense fallback

MIXED_WITH_FALLBACK = """input x[20]; sparsity 3;
output a[i] = x[i] & x[(i + 5) % 20] for i in 0..20;
output o[i] = x[i] | x[(i + 7) % 20] | x[(i + 1) % 20] for i in 0..10;
output z[i] = x[i] ^ x[(i + 3) % 20] for i in 0..6;
output n = x[0] & !x[1];
wire w = x[2] & x[3];
output d = w | x[4];
output t = atleast(3, x[5], x[6], x[7], x[8]);
"""


def test_dense_fallback_in_one_network_is_exact():
    circuit = dsl.loads(MIXED_WITH_FALLBACK)
    net = compile_circuit(circuit, "superposed", input_code="rs", output_code="rs")
    codes = net.meta["codes"]
    assert codes["kind"] == "rs-mixed" and codes["dense_outputs"] == 8   # z[0..5], n, d
    assert net.meta["superposed_outputs"] == circuit.n_outputs - 8
    active, x = whole_domain(circuit)
    spec = evaluate_active(circuit, active).dense()
    assert np.array_equal(net.forward(x) > 0.5, spec == 1)
    module = SupModule(net, device="cpu")
    assert verify_exhaustive(circuit, module, progress=False)["verified"] is True
    assert verify(circuit, net, module, "smt")["verified"] is True
    structural = verify(circuit, net, module, "structural")
    assert structural["verified"] is not True                  # no certificate for the mix
    # a planted bug in the coded block and one in the dense block are both found
    for layer, row in ((0, 0), (len(net.layers) - 1, circuit.n_outputs - 2)):
        bad = compile_circuit(circuit, "superposed", input_code="rs", output_code="rs")
        target = bad.layers[layer]
        if layer == 0:
            target.bias[:] += 1.0
        else:
            target.bias[row] += 3.0
        report = verify_exhaustive(circuit, SupModule(bad, device="cpu"), progress=False)
        assert report["verified"] is False and report["counterexamples"]
