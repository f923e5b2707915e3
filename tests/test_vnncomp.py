"""`sup export vnncomp` (verify/vnncomp.py): the ONNX graph agrees with the torch module under
onnxruntime, the written VNN-LIB parses back and means "some domain input is wrong" (checked
against the reference semantics input by input), correct networks give unsat and planted bugs
sat, decided through the exported files. Needs onnx and onnxruntime (skipped without)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import dsl  # noqa: E402
from compiler import compile_circuit  # noqa: E402
from dsl.domain import to_dense, verification_domain  # noqa: E402
from dsl.semantics import evaluate_active  # noqa: E402
from verify import module_for  # noqa: E402
from verify.vnncomp import (VnncompError, check_instance, export_benchmark, holds,  # noqa: E402
                            parse_vnnlib, plant_bug, property_text, run_onnx)

from cli_helpers import run  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
C17 = str(EXAMPLES / "c17.sup")
PAIRS = str(EXAMPLES / "pairs_small.sup")

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


def _wrong_inputs(circuit, net) -> np.ndarray:
    """Reference check: which domain inputs make some output of `net` wrong (numpy forward)."""
    domain = verification_domain(circuit)
    active = domain.unrank(np.arange(domain.size))
    y = net.forward(to_dense(active, circuit.n_inputs))
    ref = evaluate_active(circuit, active).dense()
    return ((y > net.threshold) != (ref == 1)).any(axis=1)


@pytest.fixture(scope="module")
def c17_bench(tmp_path_factory):
    circuit = dsl.load(C17)
    net = compile_circuit(circuit, "dense")
    out = tmp_path_factory.mktemp("vnn")
    return circuit, net, out, export_benchmark(circuit, net, out, plant=2, seed=1)


def test_cli_writes_the_layout(capsys, tmp_path):
    code, out, err = run(capsys, "export", "vnncomp", PAIRS, "--target", "superposed",
                         "-o", tmp_path, "--plant", "1", "--timeout", "60")
    assert code == 0, err
    assert "expected unsat" in out and "witness replayed with onnxruntime" in out
    rows = list(csv.reader(open(tmp_path / "instances.csv")))
    assert rows == [["onnx/pairs_small.onnx", "vnnlib/pairs_small.vnnlib", "60"],
                    ["onnx/pairs_small_plant1.onnx", "vnnlib/pairs_small_plant1.vnnlib", "60"]]
    for onnx_rel, vnn_rel, _ in rows:
        assert (tmp_path / onnx_rel).is_file() and (tmp_path / vnn_rel).is_file()
    expected = list(csv.DictReader(open(tmp_path / "expected.csv")))
    assert [e["expected"] for e in expected] == ["unsat", "sat"]
    code, out, _ = run(capsys, "export", "vnncomp", PAIRS, "-o", tmp_path / "j", "--json")
    assert code == 0 and json.loads(out)["instances"][0]["expected"] == "unsat"


def test_onnx_equals_torch_module_and_reference(c17_bench):
    """Y = [network, reference, booleanness, count]: each part against its own computation,
    on boolean inputs and on random points of the box."""
    circuit, net, out, _ = c17_bench
    module = module_for(net, "float32", device="cpu")
    rng = np.random.default_rng(0)
    domain = verification_domain(circuit)
    points = list(to_dense(domain.unrank(np.arange(domain.size)), 5).astype(np.float32))
    points += list(rng.random((20, 5)).astype(np.float32))
    n = net.n_outputs
    for x in points:
        y = run_onnx(out / "onnx/c17.onnx", x)
        with torch.no_grad():
            torch_y = module(torch.tensor(x[None], dtype=torch.float32)).numpy()[0]
        np.testing.assert_allclose(y[:n], torch_y, atol=1e-5)
        np.testing.assert_allclose(y[n:2 * n], net.forward(x[None])[0], atol=1e-5)
        boolness = np.sum(x) - np.sum(np.maximum(2 * x - 1, 0))
        np.testing.assert_allclose(y[2 * n], boolness, atol=1e-5)
        np.testing.assert_allclose(y[2 * n + 1], np.sum(x), atol=1e-5)


def test_superposed_onnx_equals_torch(tmp_path):
    circuit = dsl.load(PAIRS)
    net = compile_circuit(circuit, "superposed")
    export_benchmark(circuit, net, tmp_path)
    module = module_for(net, "float32", device="cpu")
    x = np.random.default_rng(1).random((8, circuit.n_inputs)).astype(np.float32)
    for row in x:
        with torch.no_grad():
            want = module(torch.tensor(row[None])).numpy()[0]
        np.testing.assert_allclose(run_onnx(tmp_path / "onnx/pairs_small.onnx", row)[:net.n_outputs],
                                   want, atol=1e-4)


def test_vnnlib_parses_back_to_the_property(c17_bench):
    """The parsed property holds on a boolean input exactly when some output is wrong
    (reference semantics), for the correct network and for each planted variant."""
    circuit, net, out, instances = c17_bench
    box, dnf = parse_vnnlib((out / "vnnlib/c17.vnnlib").read_text())
    assert box == {i: [0.0, 1.0] for i in range(5)} and len(dnf) == 2 * net.n_outputs
    assert all(len(conj) == 4 for conj in dnf)
    domain = verification_domain(circuit)
    xs = to_dense(domain.unrank(np.arange(domain.size)), 5).astype(np.float64)
    for inst in instances:
        box, dnf = parse_vnnlib((out / inst.vnnlib).read_text())
        found = 0
        for x in xs:
            y = run_onnx(out / inst.onnx, x).astype(np.float64)
            wrong = _network_part_wrong(circuit, y, x)
            assert holds(box, dnf, x, y) == wrong
            found += wrong
        assert (found > 0) == (inst.expected == "sat")


def _network_part_wrong(circuit, y, x) -> bool:
    """Whether the network part of y is wrong at boolean x (reference semantics)."""
    n = circuit.n_outputs
    active = np.flatnonzero(x).astype(np.int64).reshape(1, -1)
    ref = evaluate_active(circuit, active).dense()[0]
    return bool(((y[:n] > 0.5) != (ref == 1)).any())


def test_expected_answers_through_the_files(c17_bench):
    """sup's check through the exported ONNX and VNN-LIB (every domain input, onnxruntime)
    confirms each expected answer; the planted witnesses replay."""
    circuit, net, out, instances = c17_bench
    assert [i.expected for i in instances] == ["unsat", "sat", "sat"]
    for inst in instances:
        assert check_instance(out / inst.onnx, out / inst.vnnlib, circuit) == inst.expected
        assert inst.replayed is (True if inst.expected == "sat" else None)


def test_planted_bug_is_wrong_exactly_where_the_property_says(c17_bench):
    circuit, net, _, _ = c17_bench
    bad, witness, j = plant_bug(net, circuit, np.random.default_rng(5))
    wrong = _wrong_inputs(circuit, bad)
    assert wrong.any() and not _wrong_inputs(circuit, net).any()
    domain = verification_domain(circuit)
    rank = int(domain.rank(np.array([witness + [-1] * (5 - len(witness))]))[0])
    assert wrong[rank]


def test_off_domain_points_do_not_satisfy(tmp_path):
    """Fractional inputs, or more active features than the sparsity, violate the auxiliary
    constraints: a network wrong only off the domain stays unsat."""
    text = property_text(3, 1, 1, 0.5)
    box, dnf = parse_vnnlib(text)
    y_wrong = np.array([1.0, 0.0, 0.0, 1.0])           # network 1, reference 0, boolean, 1 active
    assert holds(box, dnf, np.array([1.0, 0, 0]), y_wrong)
    assert not holds(box, dnf, np.array([1.0, 0, 0]), np.array([1.0, 0.0, 0.2, 1.0]))
    assert not holds(box, dnf, np.array([1.0, 1, 0]), np.array([1.0, 0.0, 0.0, 2.0]))
    assert not holds(box, dnf, np.array([1.5, 0, 0]), y_wrong)


def test_parser_rejects_what_it_does_not_understand():
    with pytest.raises(VnncompError):
        parse_vnnlib("(assert (< X_0 1.0))")
    with pytest.raises(VnncompError):
        parse_vnnlib("(assert (<= X_0 1.0)")


def test_conditional_network_is_refused(capsys, tmp_path):
    code, _, err = run(capsys, "export", "vnncomp", C17, "--target", "conditional", "-o", tmp_path)
    assert code == 2 and "layered networks" in err
