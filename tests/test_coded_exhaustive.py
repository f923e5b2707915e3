"""The exhaustive verifier's coded path (verify/coded_check.py) against the dense path and an
independent brute force: every input of the domain through the network's own numpy forward
(`Network.forward`, float64, every layer) compared with the circuit's reference, on small
networks with combinatorial codes (pairs, all pairs, K = 2 and 3), correct and with planted
bugs (a flipped code entry, a wrong decoder bias, a wrong threshold, too few blocks). The
reports must be the same as the dense path's: verdict, counts, counterexamples, margin, dtype.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import dsl
from backends import SupModule
from compiler import compile_circuit
from compiler.superposed.rs_codes import RSParams
from compiler.superposed.rs_compile import build_rs_network, pair_operands
from dsl.domain import verification_domain
from dsl.semantics import DONT_CARE, evaluate_active
from verify import verify_exhaustive
from verify.coded_check import CodedCheck, coded_problem, prefers_coded, run_coded

from test_rs_codes import all_pairs_text, pairs_text

torch.set_num_threads(1)

SAME = ("verified", "inputs_checked", "outputs_checked", "failing_inputs", "counterexamples",
        "min_margin", "min_margin_is_lower_bound", "dtype", "domain_size", "complete")


def coded(text: str):
    circuit = dsl.loads(text)
    return circuit, compile_circuit(circuit, "superposed", input_code="rs", output_code="rs")


def brute_force(circuit, net, threshold=None):
    """(failing input ranks, min margin) from the float64 numpy forward of every layer."""
    domain = verification_domain(circuit)
    active = domain.unrank(np.arange(domain.size))
    x = np.zeros((len(active), circuit.n_inputs))
    rows = np.repeat(np.arange(len(active)), active.shape[1])
    cols = active.ravel()
    x[rows[cols >= 0], cols[cols >= 0]] = 1.0
    y = net.forward(x)
    spec = evaluate_active(circuit, active).dense()
    t = net.threshold if threshold is None else threshold
    cared = spec != DONT_CARE
    wrong = cared & ((y > t) != (spec == 1))
    margin = np.where(spec == 1, y - t, t - y)[cared]
    return np.flatnonzero(wrong.any(axis=1)), float(margin.min())


def check_agrees(circuit, net, levels=(None,), same=SAME):
    """Coded path == dense path == brute force; returns the coded report."""
    module = SupModule(net, device="cpu")
    dense = verify_exhaustive(circuit, module, path="dense", progress=False)
    got = verify_exhaustive(circuit, module, path="coded", progress=False)
    assert got["path"] == "coded" and dense["path"] == "dense"
    for field in same:
        assert got[field] == dense[field], field
    failing, margin = brute_force(circuit, net, threshold=float(torch.tensor(
        net.threshold, dtype=module.dtype)))
    assert got["failing_inputs"] == len(failing)
    assert got["min_margin"] == pytest.approx(margin, abs=1e-6)
    assert got["verified"] is (len(failing) == 0)
    domain = verification_domain(circuit)
    for level in levels:
        if level is None:
            continue
        check = run_coded(CodedCheck(circuit, module, 20, level=level), domain, 0, domain.size,
                          progress=False)
        assert check.level == level
        assert (check.inputs, check.outputs, check.failing) == (
            dense["inputs_checked"], dense["outputs_checked"], dense["failing_inputs"])
        assert check.counterexamples == dense["counterexamples"]
        assert check.margin[0] == pytest.approx(margin, abs=1e-6) or not check.margin[1]
    return got


@pytest.mark.parametrize("text", [pairs_text(256, 2), pairs_text(64, 3), all_pairs_text(12, 2),
                                  all_pairs_text(10, 3)])
def test_correct_networks_agree_at_every_level(text):
    circuit, net = coded(text)
    report = check_agrees(circuit, net, levels=(1, 2, 3))
    assert report["verified"] is True and report["min_margin"] == 0.5


def test_auto_takes_the_coded_path_where_it_is_cheaper_and_it_is_refused_where_it_does_not_apply():
    circuit, net = coded(pairs_text(1024, 3))      # K = 3, 2^10 outputs: dense is cheaper
    module = SupModule(net, device="cpu")
    assert prefers_coded(module) and not coded_problem(module)
    assert verify_exhaustive(circuit, module, progress=False, shard=(5, 20000))["path"] == "dense"
    circuit, net = coded(pairs_text(4096, 2))
    module = SupModule(net, device="cpu")
    report = verify_exhaustive(circuit, module, progress=False, shard=(7, 4096))
    assert report["path"] == "coded" and report["failing_inputs"] == 0
    plain = compile_circuit(circuit, "superposed")          # no codes: no linear layer
    assert not prefers_coded(SupModule(plain, device="cpu"))
    relu_readout = copy.deepcopy(net)
    relu_readout.layers[-1].relu = True
    with pytest.raises(ValueError, match="coded path does not apply"):
        verify_exhaustive(circuit, SupModule(relu_readout, device="cpu"), path="coded",
                          progress=False)


def planted():
    """Networks with one planted bug each (name -> (circuit, network))."""
    circuit, net = coded(pairs_text(128, 2))
    q = net.meta["codes"]["rs"]["q"]
    out = {}
    flip = copy.deepcopy(net)       # input code: feature 5's symbol at block 0 moved
    k = np.flatnonzero((flip.layers[0].cols == 5) & (flip.layers[0].rows < q))[0]
    flip.layers[0].rows[k] = (flip.layers[0].rows[k] + 1) % q
    out["flipped input code entry"] = flip
    flip_out = copy.deepcopy(net)   # decoder: output 3 reads a wrong coordinate of block 0
    dec = flip_out.layers[-1]
    k = np.flatnonzero(dec.rows == 3)[0]
    dec.cols[k] = (dec.cols[k] + 1) % dec.n_in
    out["flipped output code entry"] = flip_out
    base = net.layers[-1].bias
    for j, bias in ((3, 0.0), (9, base[9] + 3.0), (11, base[11] - 1.0), (5, 1.0)):
        bad = copy.deepcopy(net)        # bias 0: on when any coordinate is; 1: always on
        bad.layers[-1].bias[j] = bias
        out[f"decoder bias {j} {bias}"] = bad
    for t in (1.5, -0.5, 0.75):
        bad = copy.deepcopy(net)
        bad.threshold = t
        out[f"threshold {t}"] = bad
    a, b = pair_operands(circuit)
    small = build_rs_network(RSParams(circuit.n_inputs, 2, 4, 2, 4, (1, 1, 1)), a, b,
                             check=False)
    small.output_families, small.input_families = net.output_families, net.input_families
    small.sparsity, small.threshold = net.sparsity, net.threshold
    out["too few blocks"] = small
    return circuit, out


def test_planted_bugs_found_with_the_dense_paths_counterexamples():
    circuit, nets = planted()
    for name, net in nets.items():
        levels = (1, 2, 3) if "bias 3 " in name or "bias 5 " in name else (None,)
        report = check_agrees(circuit, net, levels=levels)
        if name == "threshold 0.75":        # still right, only the margin moves: 0.25
            assert report["verified"] is True and report["min_margin"] == 0.25, name
        else:
            assert report["verified"] is False and report["counterexamples"], name


def test_float64_module_and_a_shard():
    circuit, net = coded(pairs_text(128, 2))
    module = SupModule(net, dtype=torch.float64, device="cpu")
    for shard in ((1, 1), (2, 3)):
        dense = verify_exhaustive(circuit, module, path="dense", progress=False, shard=shard)
        got = verify_exhaustive(circuit, module, path="coded", progress=False, shard=shard)
        for field in SAME + ("shard",):
            assert got[field] == dense[field], field
    assert got["dtype"] == "float64"


def test_non_integer_decoder_rounds_like_the_module():
    """A decoder with weights 1/3 (inexact in float32): values rounded once to float32; the
    verdict and the failing inputs match the brute force and the dense path."""
    circuit, net = coded(pairs_text(64, 2))
    bad = copy.deepcopy(net)
    bad.layers[-1].vals = bad.layers[-1].vals / 3.0
    bad.layers[-1].bias = bad.layers[-1].bias / 3.0
    bad.threshold = 0.5 / 3.0
    report = check_agrees(circuit, bad, same=[f for f in SAME if f != "min_margin"])
    assert report["verified"] is True and report["min_margin"] == pytest.approx(0.5 / 3, 1e-6)


def test_inputs_changing_many_coordinates_are_split_then_evaluated_whole(monkeypatch):
    """With no subsets allowed per batch, batches are halved down to single inputs whose
    every output is evaluated: the same report as the dense path."""
    import verify.coded_check as coded_check
    monkeypatch.setattr(coded_check, "SUBSET_CAP", 0)
    circuit, nets = planted()
    for name, net in nets.items():
        if name.startswith("decoder bias 9") or name.startswith("flipped input"):
            assert check_agrees(circuit, net, levels=(2, 3))["verified"] is False
