"""`sup verify` on the command line (contract: shared/sup-cli.md).

Exit status 0 verified / 1 counterexample / 3 undecided (2 bad input), one JSON object on
standard output with --json holding at least verified, method, inputs_checked,
outputs_checked, counterexamples [{active, wrong}], min_margin, seconds.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import z3

import dsl
from backends import save
from compiler import compile_circuit
from dsl.domain import SparseDomain, to_dense
from dsl.semantics import DONT_CARE, evaluate
from sup.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
C17 = str(EXAMPLES / "c17.sup")
MULTILEVEL = str(EXAMPLES / "multilevel.sup")
CONTRACT = ("verified", "method", "inputs_checked", "outputs_checked", "counterexamples",
            "min_margin", "seconds")


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


def run(capsys, *argv):
    """(exit status, parsed JSON) of `sup verify ... --json`."""
    capsys.readouterr()
    code = main(["verify", *argv, "--json", "--device", "cpu"])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    report = json.loads(lines[0])
    for key in CONTRACT:
        assert key in report, key
    assert isinstance(report["seconds"], (int, float)) and report["seconds"] >= 0
    for cx in report["counterexamples"]:
        assert isinstance(cx["active"], list) and isinstance(cx["wrong"], list) and cx["wrong"]
    return code, report


def failing_inputs(path, net):
    """Brute force: {frozenset(active names): set(wrong output names)}."""
    circuit = dsl.load(path)
    dom = SparseDomain(circuit.n_inputs, circuit.sparsity)
    active = dom.unrank(np.arange(dom.size, dtype=np.int64))
    x = to_dense(active, circuit.n_inputs)
    spec = evaluate(circuit, x)
    wrong = (spec != DONT_CARE) & ((net.forward(x) > 0.5) != (spec == 1))
    names_in, names_out = circuit.input_names(), circuit.output_names()
    return {frozenset(names_in[f] for f in active[r] if f >= 0):
            {names_out[o] for o in np.flatnonzero(wrong[r])}
            for r in np.flatnonzero(wrong.any(axis=1))}


@pytest.fixture(scope="module")
def bad_model(tmp_path_factory):
    """multilevel compiled, with the read-out weight of one output negated, saved."""
    circuit = dsl.load(MULTILEVEL)
    net = compile_circuit(circuit)
    bad = copy.deepcopy(net)
    readout = bad.layers[-1]
    entry = int(np.flatnonzero(readout.rows == 0)[0])
    readout.vals[entry] -= 2.0
    fails = failing_inputs(MULTILEVEL, bad)
    assert 0 < len(fails) < 512
    folder = tmp_path_factory.mktemp("models")
    path = save(bad, folder / "bad")
    good = save(net, folder / "good")
    return str(path), str(good), fails


@pytest.mark.parametrize("method", ["exhaustive", "smt"])
def test_correct_network_exit_0(capsys, method):
    code, report = run(capsys, C17, "--method", method)
    assert code == 0 and report["verified"] is True and report["method"] == method
    assert report["counterexamples"] == []
    assert report["outputs_checked"] >= 2
    if method == "exhaustive":
        assert report["inputs_checked"] == 32 and report["min_margin"] == 0.5


def test_sample_exit_3(capsys):
    code, report = run(capsys, C17, "--method", "sample", "--samples", "200")
    assert code == 3 and report["verified"] is None and report["method"] == "sample"
    assert report["inputs_checked"] == 200


def test_auto_is_exhaustive_on_small_domains(capsys):
    code, report = run(capsys, C17)
    assert code == 0 and report["method"] == "exhaustive"


def test_saved_correct_model_exit_0(capsys, bad_model):
    _, good, _ = bad_model
    code, report = run(capsys, MULTILEVEL, "--model", good, "--method", "exhaustive")
    assert code == 0 and report["verified"] is True and report["inputs_checked"] == 512


@pytest.mark.parametrize("method", ["exhaustive", "smt", "sample"])
def test_saved_buggy_model_exit_1(capsys, bad_model, method):
    path, _, fails = bad_model
    code, report = run(capsys, MULTILEVEL, "--model", path, "--method", method,
                        "--max-counterexamples", "100000", "--samples", "512")
    assert code == 1 and report["verified"] is False and report["counterexamples"]
    listed = {frozenset(cx["active"]): set(cx["wrong"]) for cx in report["counterexamples"]}
    for key, wrong in listed.items():
        assert key in fails and wrong <= fails[key]
    if method == "exhaustive":
        assert report["failing_inputs"] == len(fails)
        assert listed == fails


@pytest.mark.usefixtures("no_local_proof")   # z3 itself must answer unknown
def test_smt_undecided_exit_3(capsys, monkeypatch):
    monkeypatch.setattr(z3.Solver, "check", lambda self, *args: z3.unknown)
    import verify.smt_boolean
    monkeypatch.setattr(verify.smt_boolean, "prove_locally", lambda *args, **kwargs: None)
    code, report = run(capsys, C17, "--method", "smt")
    assert code == 3 and report["verified"] is None
    assert sorted(u["output"] for u in report["undecided"]) == ["N22", "N23"]


def test_model_of_another_circuit_is_bad_input(capsys, bad_model):
    path, _, _ = bad_model
    capsys.readouterr()
    assert main(["verify", C17, "--model", path, "--method", "exhaustive", "--json"]) == 2


def _shards(capsys, tmp_path, n, extra=()):
    paths = []
    for i in range(1, n + 1):
        path = tmp_path / f"shard{i}.json"
        code, report = run(capsys, MULTILEVEL, "--method", "exhaustive", "--shard", f"{i}/{n}",
                           "--report", str(path), *extra)
        assert report["verified"] is not True            # one shard alone never is
        assert code in (1, 3)
        assert json.loads(path.read_text())["inputs_checked"] == report["inputs_checked"]
        paths.append(str(path))
    return paths


def test_shard_report_merge_round_trip(capsys, tmp_path):
    paths = _shards(capsys, tmp_path, 3)
    code, merged = run(capsys, MULTILEVEL, "--merge", *paths)
    assert code == 0 and merged["verified"] is True
    assert merged["inputs_checked"] == 512
    _, whole = run(capsys, MULTILEVEL, "--method", "exhaustive")
    assert merged["outputs_checked"] == whole["outputs_checked"]
    assert merged["min_margin"] == whole["min_margin"]
    code, partial = run(capsys, MULTILEVEL, "--merge", *paths[:2])    # shard 3 missing
    assert code == 3 and partial["verified"] is None


def test_shard_merge_with_a_buggy_model(capsys, tmp_path, bad_model):
    path, _, fails = bad_model
    paths = _shards(capsys, tmp_path, 3, ("--model", path, "--max-counterexamples", "100000"))
    code, merged = run(capsys, MULTILEVEL, "--merge", *paths)
    assert code == 1 and merged["verified"] is False
    assert merged["failing_inputs"] == len(fails)
    listed = {frozenset(cx["active"]): set(cx["wrong"]) for cx in merged["counterexamples"]}
    assert listed == fails


def test_bad_shard_spec_is_bad_input(capsys):
    capsys.readouterr()
    assert main(["verify", C17, "--method", "exhaustive", "--shard", "4/3", "--json"]) == 2


def test_merging_a_sample_report_is_not_verified(capsys, tmp_path):
    path = tmp_path / "sample.json"
    code, report = run(capsys, C17, "--method", "sample", "--samples", "50", "--report", str(path))
    assert code == 3
    capsys.readouterr()
    code = main(["verify", C17, "--merge", str(path), "--json"])
    assert code in (2, 3)
