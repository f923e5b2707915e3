"""Verification on many machines through Ray: shards of an exhaustive check and chunks of the
per-output SMT queries run on Ray workers, and their reports are merged as `--merge` does.

    engine = RayEngine(address=None, workers=2)      # None: start a local Ray on this machine
    report = engine.verify("c.sup", net, "exhaustive", model_file="m.safetensors")
    engine.close()

Each worker is a Ray actor (`PartRunner`, one CPU or one GPU) started with the engine: it pays
a fresh process's fixed costs once, when created (the verifier's imports, the .sup parser's
tables), not in every check. A check puts the circuit file's bytes and the saved network's
bytes in Ray's object store once (nothing but bytes and JSON-ready values cross the wire, so
a worker on another machine needs only sup installed, not the driver's files); the parts
(exhaustive: shard `i/n`, one per worker; smt: output chunks) go to the workers as they come
free, and a worker rebuilds circuit, network and module once per check, not once per part.
Where the cluster has GPUs, each worker holds one and runs its module on CUDA.

A part that raises never counts as checked: its shard (or outputs) is missing from the merge,
so the verdict is undecided (or False when another shard found a counterexample) and the
report's `worker_errors` and `note` say which part failed and why. A worker that dies takes
no more parts; parts left when none is alive fail the same way.

Ray is optional (`pip install -e '.[ray]'`); without it `RayEngine` raises `RayUnavailable`.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

from backends import SupModule
from backends.serialize import load, model_path, save
from dsl import Limits, formats, parse

from .exhaustive import verify_exhaustive
from .report import Report, merge
from .run import module_for
from .smt import verify_smt
from .smt_tree import verify_smt_tree

METHODS = ("exhaustive", "smt")      # the methods a Ray engine splits into tasks
SMT_CHUNKS_PER_WORKER = 4             # SMT queries vary in time: more chunks balance the load
START_TIMEOUT_S = 600                 # how long the workers may take to start (imports, a node)
WARM_UP_CIRCUIT = "circuit warm_up; input x[2]; output y = x[0] & x[1];"


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached or lacks what was asked."""


def ray_available() -> bool:
    """True when the `ray` package can be imported."""
    try:
        import ray  # noqa: F401  (optional dependency)
    except ImportError:
        return False
    return True


# ================================================================ on a worker

def build(job: dict) -> tuple:
    """(circuit, network, module) rebuilt from `job`'s bytes: the circuit file (read with the
    job's limits) and the saved network, the module of `job`'s dtype on `job`'s device."""
    with tempfile.TemporaryDirectory(prefix="sup-ray-") as tmp:
        circuit_path = Path(tmp) / job["circuit_name"]
        circuit_path.write_bytes(job["circuit_bytes"])
        circuit = formats.load(circuit_path, Limits(**job["limits"]))
        net_path = Path(tmp) / "model.safetensors"
        net_path.write_bytes(job["model_bytes"])
        net = load(net_path)
    return circuit, net, module_for(net, job["dtype"], job["device"])


def check_part(built: tuple, job: dict) -> dict:
    """Check the part `job` names (exhaustive: `shard` [i, n]; smt: `outputs` [lo, hi)) of
    `built` (circuit, network, module); the report as JSON, with the check's `cpu_seconds`."""
    circuit, net, module = built
    cpu = time.process_time()
    if job["method"] == "exhaustive":
        report = verify_exhaustive(circuit, module, shard=tuple(job["shard"]), batch=job["batch"],
                                   max_counterexamples=job["max_counterexamples"],
                                   progress=False, path=job["path"])
    else:
        prove = verify_smt if isinstance(module, SupModule) else verify_smt_tree
        report = prove(circuit, net, module, timeout_ms=job["timeout_ms"],
                       outputs=list(range(*job["outputs"])),
                       max_counterexamples=job["max_counterexamples"], progress=False)
    return {**report, "cpu_seconds": round(time.process_time() - cpu, 3)}


def warm_up() -> None:
    """What a fresh worker process pays once, done before any check: this module's imports
    (the verifier, torch) are done by loading it; the .sup parser's tables are built by
    parsing a one-line circuit."""
    parse(WARM_UP_CIRCUIT)


class PartRunner:
    """The body of one Ray actor (a worker): warmed up when created, then checks the parts it
    is given, keeping the circuit, network and module of the check it last saw (`common`'s
    `key`) so that a check's second and later parts on this worker skip rebuilding them."""

    def __init__(self):
        warm_up()
        self.key, self.built = None, None
        self.builds = 0

    def ready(self) -> dict:
        """Answers once the worker has started: its process id and how many builds it did."""
        return {"pid": os.getpid(), "builds": self.builds}

    def run(self, common: dict, part: dict) -> dict:
        """`part` ({shard} or {outputs}) of the check `common` describes, as `check_part`."""
        if self.key != common["key"]:
            self.key, self.built = None, None      # a failed build leaves nothing to reuse
            self.built = build(common)
            self.key = common["key"]
            self.builds += 1
        return check_part(self.built, {**common, **part})


# ================================================================ merging

def merge_exhaustive(reports: list, errors: list, n: int, wall: float, domain_size) -> Report:
    """One exhaustive report from the shard reports (1..n, some possibly missing: `errors`
    names the failed shards), as `verify.report.merge`; `seconds` is the wall time, the
    shards' own seconds add up to `worker_seconds` (their CPU time to `worker_cpu_seconds`)."""
    reports = sorted(reports, key=lambda r: r["shard"]["i"])   # counterexamples in domain order
    if reports:
        merged = dict(merge(reports))
    else:
        merged = {"verified": None, "method": "exhaustive", "inputs_checked": 0,
                  "outputs_checked": 0, "counterexamples": [], "failing_inputs": 0,
                  "min_margin": None, "domain_size": domain_size,
                  "shard": {"merged": [], "n": n, "complete": False}}
    complete = merged["shard"]["complete"] and len(reports) == n
    merged.update(complete=complete, seconds=round(wall, 3),
                  worker_seconds=round(sum(r["seconds"] for r in reports), 3),
                  worker_cpu_seconds=round(sum(r.get("cpu_seconds", 0) for r in reports), 3),
                  inputs_per_second=round(merged["inputs_checked"] / wall, 1) if wall > 0 else None)
    if all("block_stats" in r for r in reports) and reports:
        merged["block_stats"] = {key: sum(r["block_stats"][key] for r in reports)
                                 for key in reports[0]["block_stats"]}
    if merged["verified"] is True and not complete:
        merged["verified"] = None
    return Report(_with_errors(merged, errors, "its inputs were not checked"))


def merge_smt(reports: list, errors: list, total: int, wall: float, max_counterexamples: int
              ) -> Report:
    """One SMT report from the reports of output chunks; outputs of a failed chunk (`errors`
    with their `outputs` [lo, hi)) are undecided. False on any refuted output, True only when
    every chunk ran and every output is proved unflagged."""
    missing = [{"output": f"outputs {e['outputs'][0]}..{e['outputs'][1] - 1}",
                "reason": f"Ray task failed: {e['error']}"} for e in errors]
    n_missing = sum(e["outputs"][1] - e["outputs"][0] for e in errors)
    base = dict(reports[0]) if reports else {"method": "smt", "inputs_checked": None,
                                             "min_margin": None}
    sums = ("outputs_checked", "outputs_refuted", "outputs_undecided", "outputs_flagged",
            "gates_thin", "trees_encoded", "outputs_too_large")
    for key in sums:
        if key in base or key in ("outputs_checked", "outputs_refuted", "outputs_undecided",
                                  "outputs_flagged"):
            base[key] = sum(int(r.get(key) or 0) for r in reports)
    base["outputs_undecided"] += n_missing
    for key, limit in (("undecided", 50), ("flagged_rounding", 50), ("thin_gates", 50)):
        if key in base or key == "undecided":
            items = [x for r in reports for x in r.get(key) or []]
            base[key] = (items + (missing if key == "undecided" else []))[:limit]
    base["counterexamples"] = [c for r in reports for c in r["counterexamples"]][
        :max_counterexamples]
    if "trees_too_large" in base:
        base["trees_too_large"] = sorted({t for r in reports for t in r["trees_too_large"]})[:50]
    bounds = [r["max_rounding_bound"] for r in reports if r.get("max_rounding_bound") is not None]
    base["max_rounding_bound"] = max(bounds) if bounds else None
    done = sum(r.get("outputs_total", 0) for r in reports)
    per = [r["seconds_per_output"] * r.get("outputs_total", 0) for r in reports
           if r.get("seconds_per_output") is not None]
    base["seconds_per_output"] = round(sum(per) / done, 5) if done and per else None
    base["outputs_total"] = total
    refuted = base["outputs_refuted"] > 0
    proved_all = (not errors and all(r["verified"] is True for r in reports)
                  and done == total)
    base["verified"] = False if refuted else (True if proved_all else None)
    base.update(seconds=round(wall, 3),
                worker_seconds=round(sum(r["seconds"] for r in reports), 3),
                worker_cpu_seconds=round(sum(r.get("cpu_seconds", 0) for r in reports), 3))
    return Report(_with_errors(base, errors, "its outputs are undecided"))


def _with_errors(report: dict, errors: list, consequence: str) -> dict:
    """The report with `worker_errors` and a note naming each failed task, when any failed."""
    if not errors:
        return report
    first = errors[0]
    note = (f"{len(errors)} Ray task(s) failed; the first, {first['task']}, raised "
            f"{first['error']}: {consequence}, so the verdict cannot be 'verified'")
    return {**report, "worker_errors": errors[:50], "note": note}


# ================================================================ the driver

class RayEngine:
    """Runs exhaustive shards and SMT chunks on `workers` Ray actors on the cluster at `address`
    (None: a local Ray started here with `workers` CPUs, or the Ray this process already
    started). The workers start, and warm up, with the engine; `close()` ends them."""

    def __init__(self, address: str | None = None, workers: int | None = None,
                 device: str = "auto"):
        try:
            import ray  # optional dependency (the ray extra)
        except ImportError:
            raise RayUnavailable("--engine ray needs the ray package: pip install -e '.[ray]' "
                                 "(or pip install 'ray[default]')") from None
        self.ray, self.address, self.device = ray, address, device
        self.started = False
        self.actors = []
        if not ray.is_initialized():
            self._start(address, workers)
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        if device == "cuda" and not self.gpus:
            self.close()
            raise RayUnavailable("--device cuda: the Ray cluster has no GPU")
        self.use_gpu = self.gpus > 0 and device != "cpu"
        capacity = self.gpus if self.use_gpu else int(resources.get("CPU", 1))
        self.workers = max(1, min(workers or capacity, capacity))
        self.actors = self._start_workers()

    def _start(self, address, workers) -> None:
        options = dict(include_dashboard=False, log_to_driver=False,
                       configure_logging=False)
        try:
            if address is None:
                self.ray.init(num_cpus=workers or os.cpu_count() or 1, **options)
            else:
                self.ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise RayUnavailable(f"cannot start {where}: {exc}") from None
        self.started = True

    def _start_workers(self) -> list:
        """`self.workers` PartRunner actors (one CPU or one GPU each), started and warmed up."""
        resources = {"num_gpus": 1} if self.use_gpu else {"num_cpus": 1}
        runner = self.ray.remote(**resources, max_restarts=0, max_task_retries=0)(PartRunner)
        actors = [runner.remote() for _ in range(self.workers)]
        try:
            self.ray.get([actor.ready.remote() for actor in actors], timeout=START_TIMEOUT_S)
        except Exception as exc:            # noqa: BLE001  (timeout, a worker that died)
            self.actors = actors
            self.close()
            raise RayUnavailable(f"the {self.workers} Ray worker(s) did not start within "
                                 f"{START_TIMEOUT_S} s: {_message(exc)}") from None
        return actors

    def close(self) -> None:
        """End the workers, and shut down the Ray this engine started (a Ray it found running
        is left alone)."""
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        if self.started:
            self.ray.shutdown()
            self.started = False

    def verify(self, circuit_file, net, method: str, *, model_file=None, dtype=None,
               limits: Limits | None = None, batch: int = 1 << 16, path: str = "auto",
               timeout_ms: int = 10_000, max_counterexamples: int = 20) -> Report:
        """Check `net` (compiled from the circuit in `circuit_file`) by 'exhaustive' (one shard
        per worker) or 'smt' (output chunks) on the workers and merge their reports.
        `model_file`: the saved network (else `net` is saved to a temporary file first);
        `dtype`: the module's float type name (None: the target's default)."""
        if method not in METHODS:
            raise ValueError(f"the Ray engine runs {', '.join(METHODS)}, not {method}")
        common = check_job(circuit_file, self._model_bytes(net, model_file), method,
                           limits=limits, dtype=dtype, device="cuda" if self.use_gpu else "cpu",
                           batch=batch, path=path, timeout_ms=timeout_ms,
                           max_counterexamples=max_counterexamples)
        start = time.perf_counter()
        if method == "exhaustive":
            n = self.workers
            parts = [({"shard": [i, n]}, f"shard {i} of {n}") for i in range(1, n + 1)]
            reports, errors = self._run(common, parts)
            return self._tagged(merge_exhaustive(reports, errors, n, time.perf_counter() - start,
                                                 None), n, reports)
        total = len(net.output_names())
        chunks = _chunks(total, self.workers * SMT_CHUNKS_PER_WORKER)
        parts = [({"outputs": list(c)}, f"outputs {c[0]}..{c[1] - 1}") for c in chunks]
        reports, errors = self._run(common, parts)
        return self._tagged(merge_smt(reports, errors, total, time.perf_counter() - start,
                                      max_counterexamples), len(parts), reports)

    def _model_bytes(self, net, model_file) -> bytes:
        if model_file is not None:
            return model_path(model_file).read_bytes()
        with tempfile.TemporaryDirectory(prefix="sup-ray-") as tmp:
            return save(net, Path(tmp) / "model").read_bytes()

    def _run(self, common: dict, parts: list) -> tuple:
        """Run `parts` [(part, name)] on the workers, each worker taking the next part when it
        is free; (reports of the parts that ran, in the order of `parts`; errors of those that
        raised or found no worker alive, each naming its part and its `shard` or `outputs`)."""
        ray = self.ray
        shared = ray.put(common)                 # once in the object store, not once per part
        todo = list(enumerate(parts))[::-1]      # popped from the end: in order
        idle, running, results = list(self.actors), {}, {}
        while todo and (idle or running):
            while idle and todo:
                actor, (index, (part, _)) = idle.pop(0), todo.pop()
                running[actor.run.remote(shared, part)] = (actor, index)
            done, _ = ray.wait(list(running), num_returns=1)
            actor, index = running.pop(done[0])
            results[index] = self._outcome(done[0], actor, idle)
        for future, (actor, index) in running.items():
            results[index] = self._outcome(future, actor, idle)
        for index, _ in todo:                    # every worker died before these started
            results[index] = (None, "RayActorError: no Ray worker left alive")
        reports, errors = [], []
        for index, (part, name) in enumerate(parts):
            report, message = results[index]
            if message is None:
                reports.append(report)
            else:
                errors.append({"task": name, "error": message, **part})
        return reports, errors

    def _outcome(self, future, actor, idle: list) -> tuple:
        """(report, None) or (None, error message) of a finished part; its worker goes back to
        `idle` unless it died (then it leaves the engine)."""
        try:
            report = self.ray.get(future)
        except self.ray.exceptions.RayActorError as exc:
            self.actors = [a for a in self.actors if a is not actor]
            return None, _message(exc)
        except Exception as exc:                 # noqa: BLE001  (any part failure is reported)
            idle.append(actor)
            return None, _message(exc)
        idle.append(actor)
        return report, None

    def _tagged(self, report: Report, tasks: int, reports: list) -> Report:
        """The report with its `engine` field: how it ran, and each part's own wall and CPU
        seconds (in the order of the parts that ran)."""
        return report.with_fields(engine={
            "name": "ray", "address": self.address or "local", "workers": self.workers,
            "tasks": tasks, "gpu_tasks": self.use_gpu,
            "part_seconds": [r["seconds"] for r in reports],
            "part_cpu_seconds": [r.get("cpu_seconds") for r in reports]})


def check_job(circuit_file, model_bytes: bytes, method: str, *, limits: Limits | None = None,
              dtype=None, device: str = "cpu", batch: int = 1 << 16, path: str = "auto",
              timeout_ms: int = 10_000, max_counterexamples: int = 20) -> dict:
    """What every part of one check shares (`build` and `check_part` read it): the circuit
    file's bytes and the saved network's, the options, and a fresh `key` naming the check."""
    limits = limits or Limits()
    return {"key": uuid.uuid4().hex, "circuit_name": Path(circuit_file).name,
            "circuit_bytes": Path(circuit_file).read_bytes(), "model_bytes": model_bytes,
            "limits": {"max_elements": limits.max_elements, "max_inputs": limits.max_inputs},
            "dtype": dtype, "device": device, "method": method, "batch": batch, "path": path,
            "timeout_ms": timeout_ms, "max_counterexamples": max_counterexamples}


def _message(exc: BaseException) -> str:
    """'Type: last line' of the error a part (or a worker) raised."""
    cause = getattr(exc, "cause", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[-1] if lines else ''}"


def _chunks(total: int, parts: int) -> list:
    """[lo, hi) ranges splitting range(total) into at most `parts` nearly equal pieces."""
    parts = max(1, min(parts, total))
    bounds = [total * j // parts for j in range(parts + 1)]
    return [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]
