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
    """A local Ray for the module's tests (shut down at the end), with 4 logical CPUs: room
    for two engines of 2 workers at once, the shared `engine` and one a test starts."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def engine(ray_cluster):
    """One 2-worker engine for the module: its workers start (and import torch) once."""
    shared = RayEngine(workers=2)
    yield shared
    shared.close()


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

def test_exhaustive_merge_same_as_plain(engine, tmp_path):
    src, model, circuit, net = _write(tmp_path, PAIRS, "p40", "superposed")
    report = engine.verify(src, net, "exhaustive", model_file=model)
    plain = _plain(circuit, net)
    assert report["verified"] is True and report["engine"]["tasks"] == 2
    assert report["shard"]["merged"] == [1, 2] and report["complete"] is True
    assert {k: report[k] for k in SAME} == {k: plain[k] for k in SAME}
    # the delta path, shard by shard, too (not only the block path)
    delta = engine.verify(src, net, "exhaustive", model_file=model, path="delta")
    assert delta["verified"] is True and delta["inputs_checked"] == plain["inputs_checked"]


def test_planted_bug_found_through_ray(engine, tmp_path):
    """Bugs in the first and the last output: both shards must report theirs."""
    def bug(tensors):
        _readout_bias_down(0)(tensors)
        _readout_bias_down(-1)(tensors)
    src, model, circuit, net = _write(tmp_path, PAIRS, "bug", "dense", bug)
    report = engine.verify(src, net, "exhaustive", model_file=model)
    plain = _plain(circuit, net)
    assert plain["verified"] is False and plain["failing_inputs"] == 2
    assert {k: report[k] for k in SAME} == {k: plain[k] for k in SAME}
    wrong = {name for c in report["counterexamples"] for name in c["wrong"]}
    assert wrong == set(circuit.output_names([0, len(circuit.output_names()) - 1]))


def test_worker_exception_is_not_verified(engine, tmp_path):
    """Every task fails to read a corrupted model: undecided, the error named."""
    src, model, circuit, net = _write(tmp_path, PAIRS, "p40", "superposed")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a model")
    report = engine.verify(src, net, "exhaustive", model_file=broken)
    assert report["verified"] is None and report["inputs_checked"] == 0
    assert len(report["worker_errors"]) == 2
    assert "ModelFileError" in report["note"] and "not a readable sup model" in report["note"]


def test_smt_chunks_same_as_plain_and_refute(engine, tmp_path):
    src, model, circuit, net = _write(tmp_path, PAIRS_TINY, "tiny", "dense")
    report = engine.verify(src, net, "smt", model_file=model)
    plain = verify_smt(circuit, net, module_for(net), progress=False)
    assert report["verified"] is True is plain["verified"]
    assert report["outputs_checked"] == plain["outputs_checked"] == 12
    assert report["engine"]["tasks"] == 8
    src, model, circuit, net = _write(tmp_path, PAIRS_TINY, "tinybug", "dense",
                                      _readout_bias_down(5))
    bad = engine.verify(src, net, "smt", model_file=model)
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


# ====================================================================== workers keep their setup

def test_part_runner_builds_once_per_check(tmp_path):
    """Without Ray: a worker rebuilds circuit, network and module once per check (key), not
    once per part; its parts still add up to the plain run; a failed build is not kept."""
    from verify.ray_engine import PartRunner, check_job
    src, model, circuit, net = _write(tmp_path, PAIRS, "p40", "superposed")
    runner = PartRunner()
    job = check_job(src, model.read_bytes(), "exhaustive")
    parts = [runner.run(job, {"shard": [i, 3]}) for i in (1, 2, 3)]
    assert runner.builds == 1
    merged = merge_exhaustive(parts, [], 3, 1.0, None)
    assert {k: merged[k] for k in SAME} == {k: _plain(circuit, net)[k] for k in SAME}
    broken = check_job(src, b"not a model", "exhaustive")
    with pytest.raises(Exception, match="not a readable sup model"):
        runner.run(broken, {"shard": [1, 1]})
    assert runner.key is None and runner.builds == 1
    again = runner.run(check_job(src, model.read_bytes(), "exhaustive"), {"shard": [1, 1]})
    assert runner.builds == 2 and again["verified"] is True


def test_workers_reused_across_parts(engine, tmp_path):
    """8 SMT chunks on 2 workers: the same two processes, each building at most once."""
    src, model, circuit, net = _write(tmp_path, PAIRS_TINY, "tiny", "dense")
    ray = engine.ray
    before = ray.get([actor.ready.remote() for actor in engine.actors])
    report = engine.verify(src, net, "smt", model_file=model)
    after = ray.get([actor.ready.remote() for actor in engine.actors])
    assert report["verified"] is True and report["engine"]["tasks"] == 8
    assert len(report["engine"]["part_seconds"]) == len(report["engine"]["part_cpu_seconds"]) == 8
    assert [a["pid"] for a in after] == [b["pid"] for b in before]
    grew = [a["builds"] - b["builds"] for a, b in zip(after, before)]
    assert all(g in (0, 1) for g in grew) and sum(grew) >= 1


def test_dead_worker_leaves_its_part_undecided(ray_cluster, tmp_path):
    """A worker that dies: its shard is undecided and named, the other worker's shard still
    counts; its later parts go to the live worker; with none alive, every part is undecided."""
    src, model, circuit, net = _write(tmp_path, PAIRS, "p40", "superposed")
    own = RayEngine(workers=2)
    try:
        ray_cluster.kill(own.actors[0])
        report = own.verify(src, net, "exhaustive", model_file=model)
        shard2 = verify_exhaustive(circuit, module_for(net), shard=(2, 2), progress=False)
        assert report["verified"] is None and report["complete"] is False
        assert [e["task"] for e in report["worker_errors"]] == ["shard 1 of 2"]
        assert "RayActorError" in report["note"] or "ActorDied" in report["note"]
        assert report["inputs_checked"] == shard2["inputs_checked"] and len(own.actors) == 1
        tiny_src, tiny_model, _, tiny_net = _write(tmp_path, PAIRS_TINY, "tiny", "dense")
        smt = own.verify(tiny_src, tiny_net, "smt", model_file=tiny_model)
        assert smt["verified"] is True and smt["outputs_checked"] == 12   # one worker did all
        ray_cluster.kill(own.actors[0])
        none_left = own.verify(src, net, "exhaustive", model_file=model)
        assert none_left["verified"] is None and none_left["inputs_checked"] == 0
        errors = none_left["worker_errors"]
        assert [e["task"] for e in errors] == ["shard 1 of 2", "shard 2 of 2"]
        assert "no Ray worker left alive" in errors[1]["error"] and own.actors == []
    finally:
        own.close()
