"""`sup verify --engine ray` (verify/ray_engine.py): exhaustive shards and SMT chunks as Ray
tasks on a 2-worker local Ray, merged into the report a plain run gives; a planted bug is found
through Ray, and a task that raises leaves the verdict undecided, never verified.

The merge functions are tested without Ray; the rest skips cleanly when ray is not installed.
One module-scoped Ray (2 CPUs) serves every test: Ray's start-up is the slow part."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dsl
from backends import load, save
from compiler import compile_circuit
from compiler.network import Network
from sup.cli import main
from verify import verify_exhaustive, verify_smt
from verify.ray_engine import RayEngine, RayUnavailable, merge_exhaustive, merge_smt
from verify.run import module_for

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py

PAIRS = """
circuit pairs40;
const P = pairs(40, 150, seed=3);
input x[40];
sparsity 2;
output y[u, v] = x[u] & x[v] for (u, v) in P;
"""

PAIRS_TINY = """
circuit pairs10;
const P = pairs(10, 12, seed=2);
input x[10];
sparsity 2;
output y[u, v] = x[u] & x[v] for (u, v) in P;
"""

SAME = ("verified", "inputs_checked", "outputs_checked", "failing_inputs", "min_margin",
        "counterexamples", "domain_size")


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with 2 CPUs for the module's tests (shut down at the end)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


def _write(tmp: Path, text: str, name: str, target: str, bug=None):
    """(circuit file, model file, circuit, network): `text` saved and compiled; `bug`
    edits the stored arrays (a planted bug) before saving."""
    src = tmp / f"{name}.sup"
    src.write_text(text)
    circuit = dsl.load(src)
    net = compile_circuit(circuit, target)
    if bug is not None:
        tensors, fields = net.to_arrays()
        bug(tensors)
        net = type(net).from_arrays(tensors, {"target": net.target, **fields})
    model = save(net, tmp / name)
    return src, model, circuit, load(model)


def _readout_bias_down(output: int):
    """Planted bug: output `output`'s read-out bias lowered by 1 (it never reaches 1)."""
    def edit(tensors):
        last = max(int(k.split(".")[1]) for k in tensors if k.startswith("layers."))
        bias = tensors[f"layers.{last}.bias"].copy()
        bias[output] -= 1.0
        tensors[f"layers.{last}.bias"] = bias
    return edit


def _plain(circuit, net):
    return verify_exhaustive(circuit, module_for(net), progress=False)


# ====================================================================== without Ray

def test_merge_exhaustive_missing_shard_is_undecided():
    """A shard whose task raised is missing: never verified, the error named."""
    shard = {"verified": None, "method": "exhaustive", "inputs_checked": 10,
             "outputs_checked": 100, "counterexamples": [], "failing_inputs": 0,
             "min_margin": 0.5, "seconds": 1.0, "shard": {"i": 1, "n": 2}}
    error = {"task": "shard 2 of 2", "error": "MemoryError: boom", "shard": [2, 2]}
    merged = merge_exhaustive([shard], [error], 2, 1.5, 20)
    assert merged["verified"] is None and merged["complete"] is False
    assert merged["worker_errors"] == [error] and "MemoryError: boom" in merged["note"]
    whole = merge_exhaustive([shard, {**shard, "shard": {"i": 2, "n": 2}}], [], 2, 1.5, 20)
    assert whole["verified"] is True and whole["inputs_checked"] == 20
    failed = merge_exhaustive([{**shard, "verified": False, "failing_inputs": 1}], [error], 2,
                              1.0, 20)
    assert failed["verified"] is False        # a counterexample stands whatever else failed


def test_merge_smt_failed_chunk_is_undecided():
    chunk = {"verified": True, "method": "smt", "inputs_checked": None, "outputs_checked": 3,
             "outputs_total": 3, "outputs_refuted": 0, "counterexamples": [], "undecided": [],
             "outputs_undecided": 0, "flagged_rounding": [], "outputs_flagged": 0,
             "seconds": 1.0, "seconds_per_output": 0.3, "max_rounding_bound": 0.0}
    error = {"task": "outputs 3..5", "error": "RuntimeError: z3 died", "outputs": [3, 6]}
    merged = merge_smt([chunk], [error], 6, 1.0, 20)
    assert merged["verified"] is None and merged["outputs_undecided"] == 3
    assert "z3 died" in merged["undecided"][0]["reason"]
    assert merge_smt([chunk, chunk], [], 6, 1.0, 20)["verified"] is True


def test_without_ray_a_clear_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    with pytest.raises(RayUnavailable, match=r"pip install -e '\.\[ray\]'"):
        RayEngine()


# ====================================================================== through Ray

def test_exhaustive_merge_same_as_plain(ray_cluster, tmp_path):
    src, model, circuit, net = _write(tmp_path, PAIRS, "p40", "superposed")
    report = RayEngine(workers=2).verify(src, net, "exhaustive", model_file=model)
    plain = _plain(circuit, net)
    assert report["verified"] is True and report["engine"]["tasks"] == 2
    assert report["shard"]["merged"] == [1, 2] and report["complete"] is True
    assert {k: report[k] for k in SAME} == {k: plain[k] for k in SAME}
    # the delta path, shard by shard, too (not only the block path)
    delta = RayEngine(workers=2).verify(src, net, "exhaustive", model_file=model, path="delta")
    assert delta["verified"] is True and delta["inputs_checked"] == plain["inputs_checked"]


def test_planted_bug_found_through_ray(ray_cluster, tmp_path):
    """Bugs in the first and the last output: both shards must report theirs."""
    def bug(tensors):
        _readout_bias_down(0)(tensors)
        _readout_bias_down(-1)(tensors)
    src, model, circuit, net = _write(tmp_path, PAIRS, "bug", "dense", bug)
    report = RayEngine(workers=2).verify(src, net, "exhaustive", model_file=model)
    plain = _plain(circuit, net)
    assert plain["verified"] is False and plain["failing_inputs"] == 2
    assert {k: report[k] for k in SAME} == {k: plain[k] for k in SAME}
    wrong = {name for c in report["counterexamples"] for name in c["wrong"]}
    assert wrong == set(circuit.output_names([0, len(circuit.output_names()) - 1]))


def test_worker_exception_is_not_verified(ray_cluster, tmp_path):
    """Every task fails to read a corrupted model: undecided, the error named."""
    src, model, circuit, net = _write(tmp_path, PAIRS, "p40", "superposed")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a model")
    report = RayEngine(workers=2).verify(src, net, "exhaustive", model_file=broken)
    assert report["verified"] is None and report["inputs_checked"] == 0
    assert len(report["worker_errors"]) == 2
    assert "ModelFileError" in report["note"] and "not a readable sup model" in report["note"]


def test_smt_chunks_same_as_plain_and_refute(ray_cluster, tmp_path):
    src, model, circuit, net = _write(tmp_path, PAIRS_TINY, "tiny", "dense")
    report = RayEngine(workers=2).verify(src, net, "smt", model_file=model)
    plain = verify_smt(circuit, net, module_for(net), progress=False)
    assert report["verified"] is True is plain["verified"]
    assert report["outputs_checked"] == plain["outputs_checked"] == 12
    assert report["engine"]["tasks"] == 8
    src, model, circuit, net = _write(tmp_path, PAIRS_TINY, "tinybug", "dense",
                                      _readout_bias_down(5))
    bad = RayEngine(workers=2).verify(src, net, "smt", model_file=model)
    assert bad["verified"] is False and bad["outputs_refuted"] == 1
    assert bad["counterexamples"][0]["wrong"] == circuit.output_names([5])


def test_cli_engine_ray(ray_cluster, tmp_path, capsys):
    src, model, circuit, net = _write(tmp_path, PAIRS, "p40", "superposed")
    code = main(["verify", str(src), "--model", str(model), "--method", "exhaustive",
                 "--engine", "ray", "--workers", "2", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["verified"] is True and data["engine"]["workers"] == 2
    assert data["inputs_checked"] == _plain(circuit, net)["inputs_checked"]
    code = main(["verify", str(src), "--model", str(model), "--method", "exhaustive",
                 "--engine", "ray", "--shard", "1/2"])
    assert code == 2 and "drop --shard" in capsys.readouterr().err
    code = main(["verify", str(src), "--model", str(model), "--address", "auto"])
    assert code == 2 and "only with --engine ray" in capsys.readouterr().err
