"""Combinatorial (Reed-Solomon / Kautz-Singleton) codes (compiler/superposed/rs_codes.py,
rs_compile.py) and their certificate (verify/code_certificate.py), each against an
independent brute-force reference: field axioms and agreement counts by enumeration, pair counts
by listing the active pairs, the score bound over every input of small codes, compiled networks
against dsl.semantics on the whole domain, the certificate against the exhaustive verifier, and
planted bugs (moved / dropped code entry, wrong hidden and read-out biases, too few blocks)
caught with counterexamples that really fail.
"""

from __future__ import annotations

import copy
import itertools
import json
import math

import numpy as np
import pytest
import torch

import dsl
from backends import SupModule, load, save
from compiler import account, compile_circuit
from compiler.superposed.codes import CodeError
from compiler.superposed.rs_codes import (GaloisField, RSParams, choose_params, code_matrix,
                                          max_agreement_subsets, pair_count_layer, prime_power,
                                          score_bound, set_count, set_index, symbols,
                                          universal_and)
from compiler.superposed.rs_compile import build_rs_network, pair_operands
from dsl.domain import verification_domain
from dsl.semantics import evaluate_active
from sup.cli import main
from verify import verify, verify_exhaustive
from verify.code_certificate import verify_rs_certificate

torch.set_num_threads(1)


def pairs_text(m_out: int, k: int, seed: int = 1) -> str:
    f = m_out // 4
    return (f"const P = pairs({f}, {m_out}, seed={seed}); input x[{f}]; sparsity {k}; "
            "output y[u, v] = x[u] & x[v] for (u, v) in P;")


def all_pairs_text(m: int, k: int) -> str:
    return (f"input x[{m}]; sparsity {k}; "
            f"output y[i, j] = x[i] & x[j] for i in 0..{m}, j in i+1..{m};")


def brute_agreement(sym: np.ndarray) -> int:
    agree = (sym[:, None, :] == sym[None, :, :]).sum(-1)
    np.fill_diagonal(agree, 0)
    return int(agree.max(initial=0))


def whole_domain(circuit):
    dom = verification_domain(circuit)
    active = dom.unrank(np.arange(dom.size))
    x = np.zeros((len(active), circuit.n_inputs))
    rows = np.repeat(np.arange(len(active)), active.shape[1])
    cols = active.ravel()
    keep = cols >= 0
    x[rows[keep], cols[keep]] = 1.0
    return active, x


# ------------------------------------------------------------------ the field and the code

@pytest.mark.parametrize("q", [2, 3, 4, 5, 7, 8, 9, 16, 25, 27, 32])
def test_fields_pass_the_axioms_by_enumeration(q):
    field = GaloisField(q)
    assert field.problems() == []
    add, mul = field.tables()
    # independent: every nonzero element has a multiplicative inverse, x^q = x (Fermat)
    assert np.all((mul[1:, 1:] == 1).any(axis=1))
    x = np.arange(q)
    power = x.copy()
    for _ in range(q - 1):
        power = mul[power, x]
    assert np.array_equal(power, x)


def test_reducible_modulus_is_not_a_field():
    assert GaloisField(4, (1, 0, 1)).problems()           # t^2 + 1 = (t + 1)^2 over GF(2)
    assert prime_power(12) is None and prime_power(49) == (7, 2)


@pytest.mark.parametrize("q,lam,c", [(5, 1, 5), (5, 2, 6), (4, 2, 5), (8, 1, 9), (7, 2, 4),
                                     (3, 3, 4)])
def test_distinct_features_agree_in_at_most_lambda_blocks(q, lam, c):
    m = min(q ** (lam + 1), 400)
    sym = symbols(RSParams(m, 2, q, lam, c, GaloisField(q).modulus))
    assert sym.shape == (m, c) and sym.min() >= 0 and sym.max() < q
    assert brute_agreement(sym) <= lam
    assert len(np.unique(sym, axis=0)) == m
    assert max_agreement_subsets(sym, lam)


def test_subset_agreement_check_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(30):
        sym = rng.integers(0, 3, size=(int(rng.integers(2, 30)), int(rng.integers(1, 7))))
        exact = brute_agreement(sym)
        for L in range(sym.shape[1] + 1):
            assert max_agreement_subsets(sym, L) == (exact <= L)


def test_set_index_enumerates_every_set_once():
    q = 6
    idx = [int(set_index(q, a, b)) for a in range(q) for b in range(a, q)]
    assert sorted(idx) == list(range(set_count(q)))
    assert int(set_index(q, 4, 2)) == int(set_index(q, 2, 4))


# ------------------------------------------------------------------ pair counting

@pytest.mark.parametrize("K", [2, 3, 4])
def test_hidden_and_output_code_count_active_pairs(K):
    q, lam, c = 5, 1, 4
    m = 25
    sym = symbols(RSParams(m, K, q, lam, c, None))
    rows, cols = code_matrix(sym, q)
    E = np.zeros((c * q, m))
    E[rows, cols] = 1
    hr, hc, hv, hb, _ = universal_and(c, q, K)
    H = np.zeros((len(hb), c * q))
    H[hr, hc] = hv
    wr, wc, wv = pair_count_layer(c, q, K)
    W2 = np.zeros((c * set_count(q), len(hb)))
    np.add.at(W2, (wr, wc), wv)
    rng = np.random.default_rng(K)
    for _ in range(200):
        S = rng.choice(m, size=int(rng.integers(0, K + 1)), replace=False)
        x = np.zeros(m)
        x[S] = 1
        T = W2 @ np.maximum(H @ (E @ x) + hb, 0)
        want = np.zeros_like(T)
        for f, g in itertools.combinations(S.tolist(), 2):
            for s in range(c):
                want[s * set_count(q) + set_index(q, sym[f, s], sym[g, s])] += 1
        assert np.array_equal(T, want)


def _worst_inactive_score(q, lam, K):
    """max over inputs with |S| <= K and outputs (a, b) not both active of the score."""
    m = q ** (lam + 1)
    sym = symbols(RSParams(m, K, q, lam, q + 1, GaloisField(q).modulus))
    c = sym.shape[1]
    pairs = np.array(list(itertools.combinations(range(m), 2)))
    key = lambda f, g: np.minimum(sym[f], sym[g]) * q + np.maximum(sym[f], sym[g])  # noqa: E731
    out_key = key(pairs[:, 0], pairs[:, 1])                                # [P, c]
    best = 0
    for S in itertools.combinations(range(m), K):
        inside = np.isin(pairs, S).all(axis=1)
        act = pairs[inside]
        score = np.zeros(len(pairs), dtype=np.int64)
        for k in key(act[:, 0], act[:, 1]):
            score += (out_key == k).sum(axis=1)
        best = max(best, int(score[~inside].max()))
        assert score[inside].min() >= c
    return best


@pytest.mark.parametrize("q,lam,K", [(3, 1, 2), (3, 1, 3), (3, 1, 4), (2, 2, 3)])
def test_score_bound_holds_on_every_input(q, lam, K):
    assert _worst_inactive_score(q, lam, K) <= score_bound(K, lam)


def test_issue_bound_fails_at_k5():
    """The issue's 2(K-1) lambda is not a bound for K = 5; 2 lambda floor(K^2/4) is."""
    worst = _worst_inactive_score(4, 1, 5)
    assert 2 * (5 - 1) * 1 < worst <= score_bound(5, 1)


# ------------------------------------------------------------------ parameters

@pytest.mark.parametrize("m,K,n,d_in", [(4096, 2, 252, 56), (16384, 2, 324, 72),
                                        (16384, 3, 2366, 169), (363, 2, 180, 40),
                                        (363, 3, 648, 72)])
def test_parameters_reach_the_issue_targets(m, K, n, d_in):
    p = choose_params(m, K)
    assert (p.n, p.d_in) == (n, d_in) and p.problems() == []


def test_parameter_choice_is_optimal_in_its_family():
    for m, K in [(50, 2), (300, 3), (5000, 2), (1000, 4)]:
        best = choose_params(m, K)
        narrow = choose_params(m, K, "input")
        for lam in range(0, 8):
            c = score_bound(K, lam) + 1
            for q in range(max(2, c - 1), 400):
                if prime_power(q) and q ** (lam + 1) >= m and (prime_power(q)[1] == 1 or q <= 256):
                    cand = RSParams(m, K, q, lam, c)
                    assert (best.n, best.d_in) <= (cand.n, cand.d_in)
                    assert (narrow.d_in, narrow.n) <= (cand.d_in, cand.n)
                    break


# ------------------------------------------------------------------ compiled networks

@pytest.mark.parametrize("src", [pairs_text(128, 2), pairs_text(96, 3), all_pairs_text(12, 2),
                                 all_pairs_text(9, 4)])
@pytest.mark.parametrize("codes", [("rs", "rs"), ("rs", None), (None, "rs"), ("auto", "auto")])
def test_networks_exact_on_whole_domain_and_certified(src, codes):
    circuit = dsl.loads(src)
    net = compile_circuit(circuit, "superposed", input_code=codes[0], output_code=codes[1])
    active, x = whole_domain(circuit)
    spec = evaluate_active(circuit, active).dense()
    y = net.forward(x)                                   # float64 numpy, independent of torch
    assert np.array_equal(y > 0.5, spec == 1)
    assert np.all(y == np.round(y))                      # integers: margin exactly 1/2
    module = SupModule(net, device="cpu")
    cert = verify(circuit, net, module, "structural")
    assert cert["verified"] is True and cert["outputs_checked"] == circuit.n_outputs
    assert cert["min_margin"] == 0.5
    algebraic = verify_rs_certificate(circuit, net, module, subset_budget=0)
    assert algebraic["verified"] is True
    assert algebraic["certificate"]["agreement_check"] == "Reed-Solomon recognised"
    exhaustive = verify_exhaustive(circuit, module, progress=False)
    assert exhaustive["verified"] is True and exhaustive["min_margin"] == 0.5


def test_layers_accounting_and_json_keys():
    circuit = dsl.loads(pairs_text(256, 2))
    net = compile_circuit(circuit, "superposed", input_code="rs", output_code="rs")
    p = choose_params(64, 2)
    enc, hidden, w2, dec = net.layers
    assert (enc.n_out, hidden.n_out, w2.n_out, dec.n_out) == (p.d_in, p.n, p.d_out, 256)
    assert not enc.relu and hidden.relu and not w2.relu and not dec.relu
    for layer in net.layers:
        assert np.all(layer.vals == np.round(layer.vals)) and np.all(layer.bias == np.round(layer.bias))
    info = account(net).to_json()
    assert info["neurons"] == p.n
    assert info["params_nonzero"] == hidden.nnz + np.count_nonzero(hidden.bias) + w2.nnz
    assert info["codes"]["input"]["dim"] == p.d_in and info["codes"]["output"]["dim"] == p.d_out
    assert info["codes"]["input"]["params"] == 64 * p.c and info["codes"]["output"]["params"] == 256 * p.c
    assert info["codes"]["fixed_params"] == 64 * p.c + 256 * p.c
    assert info["codes"]["certificate"]["proved"] is True
    lower = math.sqrt(256 * 8)
    assert info["codes"]["input"]["dim_over_lower_neurons"] == pytest.approx(p.d_in / lower, rel=1e-3)


def test_uncodable_or_no_sparsity_is_refused():
    for src in ("input x[8]; sparsity 2; output b = x[2] ^ x[3];",
                "input x[8]; sparsity 2; output a = !x[1];",
                "input x[8]; sparsity 2; wire w = x[0] & x[1]; output a = w & x[2];",
                "input x[8]; sparsity 2; output a = atleast(2, x[0], x[1], x[2], x[3], x[4], "
                "x[5], x[6], x[7]) | x[0];",
                "input x[8]; output a = x[0] & x[1];",
                "input x[8]; sparsity 1; output a = x[0] & x[1];"):
        with pytest.raises(CodeError):
            compile_circuit(dsl.loads(src), "superposed", input_code="rs", output_code="rs")


def test_save_load_keeps_the_certificate(tmp_path):
    circuit = dsl.loads(pairs_text(128, 3))
    net = compile_circuit(circuit, "superposed", input_code="rs", output_code="rs")
    back = load(save(net, tmp_path / "rs"))
    cert = verify(circuit, back, SupModule(back, device="cpu"), "structural")
    assert cert["verified"] is True and cert["certificate"]["q"] == net.meta["codes"]["rs"]["q"]


# ------------------------------------------------------------------ planted bugs

def _reference_wrong(circuit, module, cx):
    """The counterexample replayed independently: numpy forward against the reference."""
    names = circuit.input_names(list(range(circuit.n_inputs)))
    active = [names.index(a) for a in cx["active"]]
    row = np.array([active + [-1] * (circuit.sparsity - len(active))])
    spec = evaluate_active(circuit, row).dense()[0]
    x = np.zeros((1, circuit.n_inputs))
    x[0, active] = 1
    y = module.net.forward(x)[0]
    return bool(np.any((y > 0.5) != (spec == 1)))


def _planted():
    circuit = dsl.loads(pairs_text(128, 2))
    net = compile_circuit(circuit, "superposed", input_code="rs", output_code="rs")
    q = net.meta["codes"]["rs"]["q"]
    nets = {}
    moved = copy.deepcopy(net)
    k = np.flatnonzero((moved.layers[0].cols == 5) & (moved.layers[0].rows < q))[0]
    moved.layers[0].rows[k] = (moved.layers[0].rows[k] + 1) % q
    nets["moved code entry"] = moved
    for idx, bias in ((0, 0.0), (0, -2.0), (7, -2.0)):
        bad = copy.deepcopy(net)
        bad.layers[1].bias[idx] = bias
        nets[f"hidden bias {idx} {bias}"] = bad
    bad = copy.deepcopy(net)
    bad.layers[3].bias[3] -= 1
    nets["read-out bias"] = bad
    a, b = pair_operands(circuit)
    small = build_rs_network(RSParams(circuit.n_inputs, 2, 4, 2, 4, (1, 1, 1)), a, b, check=False)
    small.output_families, small.input_families = net.output_families, net.input_families
    small.sparsity = net.sparsity
    assert small.meta["codes"]["certificate"]["proved"] is False
    nets["too few blocks"] = small
    return circuit, nets


def test_planted_bugs_are_caught_with_real_counterexamples():
    circuit, nets = _planted()
    for name, net in nets.items():
        module = SupModule(net, device="cpu")
        cert = verify(circuit, net, module, "structural")
        exhaustive = verify_exhaustive(circuit, module, progress=False)
        assert exhaustive["verified"] is False, name
        assert cert["verified"] is False and cert["counterexamples"], name
        assert cert["outputs_failing"] > 0 and cert["not_applicable"], name
        for cx in cert["counterexamples"]:
            assert _reference_wrong(circuit, module, cx), name


def test_unrecognised_code_is_not_applicable():
    circuit = dsl.loads(pairs_text(128, 2))
    net = compile_circuit(circuit, "superposed", input_code="rs", output_code="rs")
    dropped = copy.deepcopy(net)
    enc = dropped.layers[0]
    keep = enc.cols != 5
    keep[np.flatnonzero(~keep)[1:]] = True                  # drop one entry of feature 5
    enc.rows, enc.cols, enc.vals = enc.rows[keep], enc.cols[keep], enc.vals[keep]
    cert = verify(circuit, dropped, SupModule(dropped, device="cpu"), "structural")
    assert cert["verified"] is None and "one weight-1 entry" in cert["not_applicable"][0]
    assert verify_exhaustive(circuit, SupModule(dropped, device="cpu"),
                             progress=False)["verified"] is False
    # a valid block code that is not the recorded Reed-Solomon code, with the direct agreement
    # check disabled: the algebraic path refuses
    moved = copy.deepcopy(net)
    moved.layers[0].rows[np.flatnonzero(moved.layers[0].cols == 5)[0]] += 1
    cert = verify_rs_certificate(circuit, moved, SupModule(moved, device="cpu"), subset_budget=0)
    assert cert["verified"] is not True
    fractional = copy.deepcopy(net)
    fractional.layers[2].vals[0] = 0.5
    cert = verify(circuit, fractional, SupModule(fractional, device="cpu"), "structural")
    assert cert["verified"] is None and "integers" in cert["not_applicable"][0]


# ------------------------------------------------------------------ options and command line

def test_cli_code_kinds(tmp_path, capsys):
    src = tmp_path / "p.sup"
    src.write_text(pairs_text(256, 2))
    model = tmp_path / "m"
    assert main(["compile", str(src), "--target", "superposed", "--input-code", "rs",
                 "--output-code", "rs", "-o", str(model), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    p = choose_params(64, 2)
    assert info["neurons"] == p.n and info["codes"]["input"]["dim"] == p.d_in
    assert info["codes"]["output"]["dim"] == p.d_out and info["codes"]["certificate"]["proved"]
    assert main(["verify", str(src), "--model", str(model), "--method", "structural",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True
    assert main(["compile", str(src), "--target", "superposed", "--input-code", "--json"]) == 0
    bare = json.loads(capsys.readouterr().out)           # the bare flag means rs
    assert bare["codes"]["input"]["dim"] == p.d_in and "output" not in bare["codes"]
    assert main(["compile", str(src), "--target", "superposed", "--input-code", "auto",
                 "--output-code", "auto", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["codes"]["certificate"]["proved"]
    for bad in (["--target", "superposed", "--input-code", "reed"],
                ["--target", "superposed", "--input-code", "rs", "--output-code", "64"],
                ["--target", "dense", "--input-code", "rs"],
                ["--target", "superposed", "--input-code", "rs", "--max-error", "0.1"]):
        try:
            code = main(["compile", str(src), *bad])
        except SystemExit as exc:                 # argparse's own errors
            code = exc.code
        assert code == 2
        err = capsys.readouterr().err
        assert "error" in err and "Traceback" not in err
    other = tmp_path / "or.sup"
    other.write_text("input x[8]; sparsity 2; output a = x[0] ^ x[1];")
    assert main(["compile", str(other), "--target", "superposed", "--input-code", "rs"]) == 2
    assert "threshold gates over input features" in capsys.readouterr().err
