"""Output a person can act on (issue 14): counterexamples show each wrong output's network
value and expected value; an undecided or not-applicable verdict says why in text mode; a
verdict names the dtype it holds for; structural verification of a conditional network is
undecided (exit 3) like that of a dense one; `sup run MODEL` prints the network's values next to
the reference; text output uses thousands separators.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest

import dsl
from backends import save
from compiler import compile_circuit
from cli_helpers import run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
C17 = str(EXAMPLES / "c17.sup")
MULTILEVEL = str(EXAMPLES / "multilevel.sup")
PAIRS = str(EXAMPLES / "pairs_small.sup")
PAIRS_1K = str(EXAMPLES / "pairs_1k.sup")


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """multilevel compiled densely, saved as is and with output s0's read-out weight broken."""
    circuit = dsl.load(MULTILEVEL)
    net = compile_circuit(circuit)
    bad = copy.deepcopy(net)
    readout = bad.layers[-1]
    readout.vals[int(np.flatnonzero(readout.rows == 0)[0])] -= 2.0
    folder = tmp_path_factory.mktemp("models")
    return str(save(net, folder / "good")), str(save(bad, folder / "bad"))


# ------------------------------------------------------------------ counterexamples

@pytest.mark.parametrize("method", ["exhaustive", "sample"])
def test_counterexamples_show_value_and_expected(capsys, models, method):
    _, bad = models
    code, out, _ = run(capsys, "verify", MULTILEVEL, "--model", bad, "--method", method,
                       "--samples", "512", "--device", "cpu")
    assert code == 1
    shown = re.findall(r"wrong s0 = (-?[\d.]+) \(expected ([01])\)", out)
    assert shown and all(float(v) < 0.5 and e == "1" for v, e in shown), out
    code, out, _ = run(capsys, "verify", MULTILEVEL, "--model", bad, "--method", method,
                       "--samples", "512", "--device", "cpu", "--json")
    report = json.loads(out)
    for case in report["counterexamples"]:
        assert set(case["expected"]) == set(case["wrong"])
        for name in case["wrong"]:
            assert (case["values"][name] > 0.5) != (case["expected"][name] == 1)


# ------------------------------------------------------------------ undecided: why

def test_structural_on_a_dense_network_says_why(capsys):
    code, out, _ = run(capsys, "verify", C17, "--method", "structural", "--device", "cpu")
    assert code == 3 and out.startswith("UNDECIDED (structural)")
    assert re.search(r"^why: .*hidden layers", out, re.M), out


def test_structural_on_a_conditional_network_is_undecided_like_dense(capsys):
    code, out, err = run(capsys, "verify", C17, "--target", "conditional", "--method",
                         "structural", "--device", "cpu")
    assert code == 3, err
    assert out.startswith("UNDECIDED (structural)") and re.search(r"^why: .*conditional", out,
                                                                   re.M)
    code, out, _ = run(capsys, "verify", C17, "--target", "conditional", "--method",
                       "structural", "--device", "cpu", "--json")
    report = json.loads(out)
    assert code == 3 and report["verified"] is None and report["not_applicable"]


@pytest.mark.parametrize("argv, words", [
    (("--method", "sample", "--samples", "100"), "never proves"),
    (("--method", "exhaustive", "--shard", "1/2"), "shard 1 of 2"),
])
def test_undecided_says_why_in_text(capsys, argv, words):
    code, out, _ = run(capsys, "verify", C17, *argv, "--device", "cpu")
    assert code == 3 and re.search(rf"^why: .*{words}", out, re.M), out


# ------------------------------------------------------------------ the dtype of a verdict

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_verdict_names_its_dtype(capsys, dtype):
    code, out, _ = run(capsys, "verify", C17, "--method", "exhaustive", "--dtype", dtype,
                       "--device", "cpu")
    assert code == 0 and out.splitlines()[0] == f"VERIFIED (exhaustive) for the {dtype} module"
    code, out, _ = run(capsys, "verify", C17, "--method", "smt", "--dtype", dtype,
                       "--device", "cpu", "--json")
    assert json.loads(out)["dtype"] == dtype


# ------------------------------------------------------------------ sup run

def test_run_prints_values_next_to_the_reference(capsys, tmp_path):
    model = tmp_path / "pairs"
    assert run(capsys, "compile", PAIRS, "--target", "superposed", "-o", model)[0] == 0
    circuit = dsl.load(PAIRS)
    pair = circuit.output_names()[0]                        # y[u,v]
    u, v = re.fullmatch(r"y\[(\d+),(\d+)\]", pair).groups()
    active = f"x[{u}],x[{v}]"
    code, out, _ = run(capsys, "run", f"{model}.safetensors", "--active", active, "--circuit",
                       PAIRS)
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith(pair + " "))
    assert row.split()[1:] == ["1", "1", "1"]               # value, bit, reference
    assert "network and reference agree" in out
    code, out, _ = run(capsys, "run", model, "--active", active, "--json", "--hidden")
    data = json.loads(out)
    assert data["outputs"][pair] == {"value": 1.0, "bit": 1} and not data["reference"]
    assert data["hidden"][0]["nonzero"] and data["target"] == "superposed"
    code, out, _ = run(capsys, "run", model, "--active", active, "--hidden")
    assert "reference: not shown" in out and re.search(r"^  h1\[\d+\] = 1  \(channel\)", out,
                                                       re.M)


def test_run_a_wrong_model_exits_1(capsys, models):
    _, bad = models
    code, out, _ = run(capsys, "run", bad, "--active", "a[0]", "--circuit", MULTILEVEL)
    assert code == 1 and re.search(r"^s0 .*DIFFERS$", out, re.M)


def test_run_a_conditional_model(capsys, tmp_path):
    model = tmp_path / "c17"
    assert run(capsys, "compile", C17, "--target", "conditional", "-o", model)[0] == 0
    code, out, _ = run(capsys, "run", model, "--active", "N1,N3", "--circuit", C17, "--json")
    data = json.loads(out)
    assert code == 0 and data["dtype"] == "float64" and data["differ"] == []
    assert data["outputs"]["N22"]["bit"] == data["outputs"]["N22"]["expected"]


@pytest.mark.parametrize("argv, words", [
    (("run", "no-such-model"), "not a readable"),
    (("run", "MODEL", "--active", "zz[1]"), "'zz[1]' is not an input"),
    (("run", "MODEL", "--circuit", PAIRS), "not compiled from"),
])
def test_run_bad_input(capsys, models, argv, words):
    good, _ = models
    argv = [good if a == "MODEL" else a for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2 and words in err and "Traceback" not in err


# ------------------------------------------------------------------ thousands separators

def test_thousands_separators_in_text(capsys):
    code, out, _ = run(capsys, "check", PAIRS_1K)
    assert code == 0
    assert re.search(r"^inputs\s+1,000$", out, re.M) and re.search(r"^outputs\s+10,000$", out,
                                                                   re.M)
    assert "gates        10,000 (and 10,000)" in out
    big = re.findall(r"(?<![\d.,])\d{4,}(?![\d.])", out)
    assert not big, big
