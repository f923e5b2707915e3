"""Inputs and outputs in superposition (compiler/codes.py): coded networks are exact on the whole
domain (exhaustive verifier on the torch module, and an independent float64 numpy forward from
the explicit code matrices), the proved margin is a lower bound on the measured one, planted
failures are caught with counterexamples, save/load keeps every output, the accounting keeps
the codes apart from the neurons, and the command line rejects bad code options with exit 2.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import dsl
from backends import SupModule, load, save
from compiler import account, compile_circuit
from compiler.superposed.codes import CodeTooNarrow, coherence, sign_code
from dsl.domain import SparseDomain
from dsl.semantics import evaluate_active
from sup.cli import main
from verify import verify_exhaustive, verify_sample, verify_smt

torch.set_num_threads(1)

PERM = "const N = 32; const Q = perm(N, seed=3); input x[N]; sparsity 2; " \
       "output z[i] = x[Q[i]] for i in 0..N;"
MIXED = "input x[16]; sparsity 2; output a = x[0] & x[1]; output b = x[2] | x[3] | x[4]; " \
        "output c = atleast(2, x[5], x[6], x[7]); output z[i] = x[i] for i in 8..16;"
TINY = "input x[6]; sparsity 2; output a = x[0] & x[1]; output b = x[2] | x[3]; output c = x[5];"


def coded(src, di, do, seed=0):
    circuit = dsl.loads(src)
    return circuit, compile_circuit(circuit, target="superposed", input_code=di,
                                    output_code=do, code_seed=seed)


def all_inputs(circuit):
    dom = SparseDomain(circuit.n_inputs, circuit.sparsity)
    return dom.unrank(np.arange(dom.size))


def numpy_forward(net, active):
    """Decoded outputs from the explicit matrices, float64, one input at a time: the reference
    the torch module is compared with (independent of backends/ and verify/)."""
    out = []
    for row in active:
        x = np.zeros(net.n_inputs)
        x[row[row >= 0]] = 1.0
        h = x
        for layer in net.layers:
            h = layer.dense() @ h + layer.bias
            h = np.maximum(h, 0) if layer.relu else h
        out.append(h)
    return np.array(out)


# ------------------------------------------------------------------ the codes

def test_sign_code_reproducible_unit_columns_and_coherence():
    a, b = sign_code(40, 50, 7, 0), sign_code(40, 50, 7, 0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, sign_code(40, 50, 7, 1))      # input and output streams differ
    assert np.allclose(np.linalg.norm(a, axis=0), 1.0)
    assert set(np.unique(np.abs(a) * math.sqrt(40)).tolist()) == {1.0}
    gram = a.T @ a
    np.fill_diagonal(gram, 0)
    assert coherence(a, block=7) == pytest.approx(np.abs(gram).max())
    # pinned values: the code is the same on every machine and numpy version (SplitMix64)
    assert (sign_code(8, 2, 0, 0) > 0).astype(int).T.tolist() == \
        [[0, 0, 1, 0, 0, 1, 0, 1], [1, 0, 1, 1, 1, 0, 0, 1]]
    assert (sign_code(8, 2, 0, 1) > 0).astype(int).T.tolist() == \
        [[1, 1, 0, 1, 1, 0, 1, 1], [0, 1, 0, 1, 1, 0, 1, 0]]


# ------------------------------------------------------------------ exactness

@pytest.mark.parametrize("src,di,do", [(PERM, 240, 420), (PERM, 80, None), (PERM, None, 160),
                                       (MIXED, 494, 128)])
def test_coded_network_exact_on_whole_domain(src, di, do):
    circuit, net = coded(src, di, do)
    cert = net.meta["codes"]["certificate"]
    assert cert["proved"] and cert["margin"] > 0
    module = SupModule(net, device="cpu")
    report = verify_exhaustive(circuit, module, progress=False)
    assert report["verified"] is True and report["inputs_checked"] == SparseDomain(
        circuit.n_inputs, circuit.sparsity).size
    assert report["min_margin"] >= cert["margin"] - 1e-6          # the proof is a lower bound
    active = all_inputs(circuit)
    spec = evaluate_active(circuit, active).dense()
    y = numpy_forward(net, active)
    assert np.array_equal(y > 0.5, spec == 1)
    assert np.abs(np.where(spec == 1, y - 0.5, 0.5 - y)).min() >= cert["margin"] - 1e-9
    torch_y = module.forward_active(torch.as_tensor(active)).double().numpy()
    assert np.abs(torch_y - y).max() < 1e-3


def test_layers_are_explicit_codes():
    circuit, net = coded(PERM, 240, 420)
    enc, hidden, code, dec = net.layers
    assert (enc.n_in, enc.n_out, enc.relu) == (32, 240, False)
    assert hidden.relu and hidden.n_in == 240
    assert (code.n_out, code.relu, dec.n_in, dec.n_out, dec.relu) == (420, False, 420, 32, False)
    e = sign_code(240, 32, 0, 0)
    assert np.allclose(enc.dense(), e)
    o = sign_code(420, 32, 0, 1)
    assert np.allclose(dec.dense(), o.T)
    # the hidden layer reads v through A E^T: each neuron listens to its output's operand
    q = np.argmax(np.abs(hidden.dense() @ e), axis=1)
    assert sorted(q.tolist()) == list(range(32))


def test_accounting_separates_codes():
    circuit, net = coded(PERM, 240, 420)
    info = account(net)
    assert info["neurons"] == 32 and info["neurons_per_layer"] == [32]
    assert info["codes"]["input"] == {**info["codes"]["input"], "dim": 240, "params": 240 * 32}
    assert info["codes"]["output"]["dim"] == 420 and info["codes"]["output"]["params"] == 420 * 32
    hidden, code = net.layers[1], net.layers[2]
    assert info["params_nonzero"] == hidden.nnz + int(np.count_nonzero(hidden.bias)) + code.nnz
    assert info["codes"]["certificate"]["proved"]


# ------------------------------------------------------------------ planted failures

def test_too_narrow_code_is_refused_with_needed_widths():
    circuit = dsl.loads(PERM)
    with pytest.raises(CodeTooNarrow) as err:
        compile_circuit(circuit, target="superposed", input_code=8, output_code=8)
    needed = err.value.needed
    assert needed["input_code"] > 8 and needed["output_code"] > 8
    assert "--input-code" in str(err.value)
    net = compile_circuit(circuit, target="superposed", input_code=needed["input_code"],
                          output_code=needed["output_code"])
    assert verify_exhaustive(circuit, SupModule(net, device="cpu"), progress=False)["verified"]


def test_flipped_code_sign_is_caught():
    circuit, net = coded(PERM, 240, 420)
    enc = net.layers[0]
    col = enc.cols == 5                                     # feature x[5] arrives negated
    enc.vals[col] = -enc.vals[col]
    report = verify_exhaustive(circuit, SupModule(net, device="cpu"), progress=False)
    assert report["verified"] is False and report["counterexamples"]
    assert any("x[5]" in cx["active"] for cx in report["counterexamples"])
    sample = verify_sample(circuit, SupModule(net, device="cpu"), samples=300, progress=False)
    assert sample["verified"] is not True


def test_narrower_decoder_breaks_exactness():
    """The same network read through a decoder whose code is too narrow: caught."""
    circuit, net = coded(PERM, 240, 420)
    narrow = sign_code(12, 32, 0, 1)
    code, dec = net.layers[2], net.layers[3]
    o_r = narrow @ sign_code(420, 32, 0, 1).T @ code.dense()   # re-code the same read-out
    from compiler.network import Layer
    net.layers[2] = Layer.from_dense(o_r, np.zeros(12), relu=False)
    net.layers[3] = Layer.from_dense(narrow.T, dec.bias, relu=False)
    report = verify_exhaustive(circuit, SupModule(net, device="cpu"), progress=False)
    assert report["verified"] is False and report["failing_inputs"] > 0


# ------------------------------------------------------------------ other verifiers, save/load

def test_smt_and_sample_on_a_coded_network():
    circuit, net = coded(TINY, 200, 64)
    module = SupModule(net, device="cpu")
    smt = verify_smt(circuit, net, module, timeout_ms=20000, progress=False)
    assert smt["verified"] is True
    sample = verify_sample(circuit, module, samples=500, progress=False)
    assert sample["counterexamples"] == []


def test_save_load_round_trip(tmp_path):
    circuit, net = coded(MIXED, 499, 128, seed=4)
    path = save(net, tmp_path / "coded")
    back = load(path)
    assert [(l.n_in, l.n_out, l.relu) for l in back.layers] == \
        [(l.n_in, l.n_out, l.relu) for l in net.layers]
    assert back.meta["codes"]["input"]["seed"] == 4
    active = torch.as_tensor(all_inputs(circuit))
    a = SupModule(net, device="cpu").forward_active(active)
    b = SupModule(back, device="cpu").forward_active(active)
    assert torch.equal(a, b)
    assert account(back)["neurons"] == account(net)["neurons"]


# ------------------------------------------------------------------ command line

def test_cli_code_options(tmp_path, capsys):
    src = tmp_path / "perm.sup"
    src.write_text(PERM)
    model = tmp_path / "m"
    assert main(["compile", str(src), "--target", "superposed", "--input-code", "240",
                 "--output-code", "420", "-o", str(model), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["neurons"] == 32 and info["codes"]["input"]["dim"] == 240
    assert main(["verify", str(src), "--model", str(model), "--method", "exhaustive",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True
    assert main(["verify", str(src), "--target", "superposed", "--input-code", "240",
                 "--output-code", "420", "--code-seed", "0", "--json"]) == 0
    capsys.readouterr()
    for bad in (["--target", "superposed", "--input-code", "0"],
                ["--target", "superposed", "--output-code", "-3"],
                ["--target", "dense", "--input-code", "64"],
                ["--target", "superposed", "--input-code", "8", "--output-code", "8"],
                ["--target", "superposed", "--input-code", "64", "--max-error", "0.1"]):
        assert main(["compile", str(src), *bad]) == 2
        err = capsys.readouterr().err
        assert "error:" in err and "Traceback" not in err
    assert main(["verify", str(src), "--model", str(model), "--input-code", "64"]) == 2
    assert "saved --model" in capsys.readouterr().err


def test_delta_path_agrees_on_coded_networks():
    """The event-driven path (forced) gives the same verdicts as the dense one."""
    circuit, net = coded(PERM, 240, 420)
    dense = verify_exhaustive(circuit, SupModule(net, device="cpu"), progress=False)
    delta = verify_exhaustive(circuit, SupModule(net, device="cpu"), progress=False, path="delta")
    assert dense["path"] == "dense" and delta["path"] == "delta"
    assert delta["verified"] is True and dense["verified"] is True
    assert delta["min_margin"] == pytest.approx(min(dense["min_margin"], 0.5), abs=1e-5)
    enc = net.layers[0]
    enc.vals[enc.cols == 9] *= -1.0
    bad = verify_exhaustive(circuit, SupModule(net, device="cpu"), progress=False, path="delta")
    assert bad["verified"] is False and any("x[9]" in cx["active"] for cx in bad["counterexamples"])
