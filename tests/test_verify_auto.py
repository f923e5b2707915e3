"""`sup verify --method auto` (verify/auto.py): the method chosen by estimated cost, the
`--max-seconds` refusal (exit 2 before any work), and smt on a channel network pointing to
structural. Verdicts of the chosen method are checked against exhaustive evaluation."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

import dsl
from backends import save
from compiler import compile_circuit
from verify import module_for
from verify.auto import (TooExpensive, channel_outputs, check_budget, choose,
                         estimate_exhaustive, format_seconds, structural_applies)

from cli_helpers import run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
C17 = str(EXAMPLES / "c17.sup")
PAIRS = str(EXAMPLES / "pairs_small.sup")
# 200 features, at most 12 active: about 2.4e18 inputs, a chain of 199 ANDs (cheap for smt)
BIG = """circuit big;
input x[200];
sparsity 12;
output y[i] = x[i] & x[i+1] for i in 0..198;
"""
SMALL_PAIRS = """circuit sp;
const P = pairs(24, 40, seed=3);
input x[24];
sparsity 2;
output both[u, v] = x[u] & x[v] for (u, v) in P;
"""

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    path = tmp_path_factory.mktemp("auto") / "big.sup"
    path.write_text(BIG)
    return str(path)


def verify_json(capsys, *argv):
    """(exit status, JSON object) of `sup verify ... --json --device cpu`."""
    code, out, _ = run(capsys, "verify", *argv, "--json", "--device", "cpu")
    return code, json.loads(out)


def test_small_domain_is_exhaustive_and_says_why(capsys):
    code, report = verify_json(capsys, C17)
    assert code == 0 and report["method"] == "exhaustive" and report["verified"] is True
    assert report["auto"]["chosen"] == "exhaustive" and "estimated" in report["auto"]["why"]


def test_channel_network_is_structural(capsys):
    code, report = verify_json(capsys, PAIRS, "--target", "superposed")
    assert code == 0 and report["method"] == "structural"
    assert "channel network" in report["auto"]["why"]
    code, text, _ = run(capsys, "verify", PAIRS, "--target", "superposed", "--device", "cpu")
    assert code == 0 and "auto chose structural" in text


def test_huge_domain_auto_takes_smt_and_proves(capsys, big):
    code, report = verify_json(capsys, big)
    assert report["method"] == "smt" and code == 0 and report["verified"] is True
    est = report["auto"]["estimated_seconds"]
    assert est["exhaustive"] == "inf" or est["exhaustive"] > 1e6 > est["smt"]


def test_exhaustive_beyond_budget_is_refused_with_estimate(capsys, big):
    code, out, err = run(capsys, "verify", big, "--method", "exhaustive", "--device", "cpu")
    assert code == 2 and out == ""
    assert "refused before starting" in err and "years" in err
    assert "--method smt" in err and "--method sample" in err
    code, report = verify_json(capsys, big, "--method", "exhaustive")
    assert code == 2 and "--max-seconds 300" in report["error"]


def test_auto_refuses_when_every_method_is_too_slow(capsys, big):
    code, out, err = run(capsys, "verify", big, "--max-seconds", "0.01", "--device", "cpu")
    assert code == 2 and "refused before starting" in err and "--max-seconds 0.01" in err


def test_max_seconds_is_checked(capsys):
    code, _, err = run(capsys, "verify", C17, "--max-seconds", "-3")
    assert code == 2 and "--max-seconds" in err


def test_smt_on_channel_network_points_to_structural(capsys, tmp_path):
    path = tmp_path / "sp.sup"
    path.write_text(SMALL_PAIRS)
    code, report = verify_json(capsys, path, "--target", "superposed", "--method", "smt")
    assert report["method"] == "smt" and "--method structural" in report["hint"]
    code, report = verify_json(capsys, C17, "--method", "smt")
    assert "hint" not in report


def _superposed(text):
    circuit = dsl.loads(text)
    return circuit, compile_circuit(circuit, "superposed")


def test_mixed_network_is_not_structural():
    """An output that reads a non-channel neuron makes structural not applicable to all."""
    circuit, net = _superposed(SMALL_PAIRS)
    assert structural_applies(net) and channel_outputs(net) == (40, 40)
    bad = copy.deepcopy(net)
    bad.layers[0].role = bad.layers[0].role.copy()
    bad.layers[0].role[bad.layers[1].cols[0]] = 0      # GATE_NEURON
    assert not structural_applies(bad) and channel_outputs(bad)[0] < 40
    assert choose(circuit, bad, module_for(bad, device="cpu")).method == "exhaustive"


def test_auto_verdict_matches_exhaustive_on_planted_bug(capsys, tmp_path):
    """A planted bias error: structural cannot decide that output, so auto falls back to
    exhaustive, which finds the same wrong outputs as an asked-for exhaustive check."""
    circuit, net = _superposed(SMALL_PAIRS)
    bad = copy.deepcopy(net)
    bad.layers[1].bias = bad.layers[1].bias.copy()
    bad.layers[1].bias[3] += 1.0
    save(bad, tmp_path / "bad")
    (tmp_path / "sp.sup").write_text(SMALL_PAIRS)
    args = (tmp_path / "sp.sup", "--model", tmp_path / "bad", "--max-counterexamples", "1000")
    code, auto = verify_json(capsys, *args)
    code2, full = verify_json(capsys, *args, "--method", "exhaustive")
    assert code == code2 == 1 and auto["method"] == "exhaustive"
    assert auto["auto"]["why"].startswith("structural left outputs undecided")
    assert full["failing_inputs"] > 0
    wrong_full = {n for c in full["counterexamples"] for n in c["wrong"]}
    wrong_auto = {n for c in auto["counterexamples"] for n in c["wrong"]}
    assert wrong_auto == wrong_full


def test_estimate_tracks_real_time():
    """The measured estimate is within a wide factor of the real exhaustive time."""
    import time
    circuit = dsl.load(str(EXAMPLES / "pairs_1k.sup"))
    net = compile_circuit(circuit, "dense")
    module = module_for(net, device="cpu")
    estimate = estimate_exhaustive(circuit, module)
    from verify import verify_exhaustive
    began = time.perf_counter()
    verify_exhaustive(circuit, module, progress=False)
    real = time.perf_counter() - began
    assert real / 20 < estimate < real * 50


def test_check_budget_only_refuses_exhaustive(big):
    circuit = dsl.load(big)
    net = compile_circuit(circuit, "dense")
    module = module_for(net, device="cpu")
    with pytest.raises(TooExpensive, match="exhaustive"):
        check_budget(circuit, net, module, "exhaustive", 300.0)
    check_budget(circuit, net, module, "smt", 0.001)      # smt is bounded by its time-outs


def test_format_seconds():
    assert format_seconds(0.25) == "0.25 s" and format_seconds(90) == "1.5 min"
    assert "years" in format_seconds(1e12) and format_seconds(float("inf")).startswith("more")
    assert np.isfinite(3.0)
