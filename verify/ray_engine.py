"""Verification on many machines through Ray: shards of an exhaustive check and chunks of the
per-output SMT queries run as Ray tasks, and their reports are merged as `--merge` does.

    engine = RayEngine(address=None, workers=2)      # None: start a local Ray on this machine
    report = engine.verify("c.sup", net, "exhaustive", model_file="m.safetensors")
    engine.close()

Each task gets the circuit file's bytes and the saved network's bytes (nothing but bytes and
JSON-ready values cross the wire, so a worker on another machine needs only sup installed,
not the driver's files), rebuilds circuit, network and module, runs `verify_exhaustive` on
its shard `i/n` (or `verify_smt` / `verify_smt_tree` on its outputs) and returns the report.
Where the cluster has GPUs, each task asks for one and runs its module on CUDA.

A task that raises never counts as checked: its shard (or outputs) is missing from the merge,
so the verdict is undecided (or False when another shard found a counterexample) and the
report's `worker_errors` and `note` say which task failed and why.

Ray is optional (`pip install -e '.[ray]'`); without it `RayEngine` raises `RayUnavailable`.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from backends import SupModule
from backends.serialize import load, model_path, save
from dsl import Limits, formats

from .exhaustive import verify_exhaustive
from .report import Report, merge
from .run import module_for
from .smt import verify_smt
from .smt_tree import verify_smt_tree

METHODS = ("exhaustive", "smt")      # the methods a Ray engine splits into tasks
SMT_CHUNKS_PER_WORKER = 4             # SMT queries vary in time: more chunks balance the load


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached or lacks what was asked."""


def ray_available() -> bool:
    """True when the `ray` package can be imported."""
    try:
        import ray  # noqa: F401  (optional dependency)
    except ImportError:
        return False
    return True


# ================================================================ the task (runs on a worker)

def run_task(job: dict) -> dict:
    """One Ray task: rebuild circuit, network and module from `job`'s bytes and check the part
    `job` names (exhaustive: `shard` [i, n]; smt: `outputs` [lo, hi)); the report as JSON."""
    with tempfile.TemporaryDirectory(prefix="sup-ray-") as tmp:
        circuit_path = Path(tmp) / job["circuit_name"]
        circuit_path.write_bytes(job["circuit_bytes"])
        circuit = formats.load(circuit_path, Limits(**job["limits"]))
        net_path = Path(tmp) / "model.safetensors"
        net_path.write_bytes(job["model_bytes"])
        net = load(net_path)
    module = module_for(net, job["dtype"], job["device"])
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
    """Runs exhaustive shards and SMT chunks as Ray tasks on the cluster at `address` (None:
    a local Ray started here with `workers` CPUs, or the Ray this process already started)."""

    def __init__(self, address: str | None = None, workers: int | None = None,
                 device: str = "auto"):
        try:
            import ray  # optional dependency (the ray extra)
        except ImportError:
            raise RayUnavailable("--engine ray needs the ray package: pip install -e '.[ray]' "
                                 "(or pip install 'ray[default]')") from None
        self.ray, self.address, self.device = ray, address, device
        self.started = False
        if not ray.is_initialized():
            self._start(address, workers)
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        if device == "cuda" and not self.gpus:
            raise RayUnavailable("--device cuda: the Ray cluster has no GPU")
        self.use_gpu = self.gpus > 0 and device != "cpu"
        capacity = self.gpus if self.use_gpu else int(resources.get("CPU", 1))
        self.workers = max(1, min(workers or capacity, capacity) if not self.use_gpu
                           else (workers or capacity))

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

    def close(self) -> None:
        """Shut down the Ray this engine started (a Ray it found running is left alone)."""
        if self.started:
            self.ray.shutdown()
            self.started = False

    def verify(self, circuit_file, net, method: str, *, model_file=None, dtype=None,
               limits: Limits | None = None, batch: int = 1 << 16, path: str = "auto",
               timeout_ms: int = 10_000, max_counterexamples: int = 20) -> Report:
        """Check `net` (compiled from the circuit in `circuit_file`) by 'exhaustive' (one shard
        per worker) or 'smt' (output chunks) on the cluster and merge the task reports.
        `model_file`: the saved network (else `net` is saved to a temporary file first);
        `dtype`: the module's float type name (None: the target's default)."""
        if method not in METHODS:
            raise ValueError(f"the Ray engine runs {', '.join(METHODS)}, not {method}")
        limits = limits or Limits()
        common = {"circuit_name": Path(circuit_file).name,
                  "circuit_bytes": Path(circuit_file).read_bytes(),
                  "model_bytes": self._model_bytes(net, model_file),
                  "limits": {"max_elements": limits.max_elements,
                             "max_inputs": limits.max_inputs},
                  "dtype": dtype, "device": "cuda" if self.use_gpu else "cpu", "method": method,
                  "batch": batch, "path": path, "timeout_ms": timeout_ms,
                  "max_counterexamples": max_counterexamples}
        start = time.perf_counter()
        if method == "exhaustive":
            n = self.workers
            jobs = [({**common, "shard": [i, n]}, f"shard {i} of {n}") for i in range(1, n + 1)]
            reports, errors = self._run(jobs)
            return self._tagged(merge_exhaustive(reports, errors, n, time.perf_counter() - start,
                                                 None), n)
        total = len(net.output_names())
        chunks = _chunks(total, self.workers * SMT_CHUNKS_PER_WORKER)
        jobs = [({**common, "outputs": list(c)}, f"outputs {c[0]}..{c[1] - 1}") for c in chunks]
        reports, errors = self._run(jobs)
        return self._tagged(merge_smt(reports, errors, total, time.perf_counter() - start,
                                      max_counterexamples), len(jobs))

    def _model_bytes(self, net, model_file) -> bytes:
        if model_file is not None:
            return model_path(model_file).read_bytes()
        with tempfile.TemporaryDirectory(prefix="sup-ray-") as tmp:
            return save(net, Path(tmp) / "model").read_bytes()

    def _run(self, jobs: list) -> tuple:
        """(reports of the tasks that ran, errors of those that raised), each error naming its
        task and, for SMT chunks, its `outputs`."""
        ray = self.ray
        resources = {"num_gpus": 1} if self.use_gpu else {"num_cpus": 1}
        task = ray.remote(**resources, max_retries=0)(run_task)
        futures = [task.remote(job) for job, _ in jobs]
        reports, errors = [], []
        for future, (job, name) in zip(futures, jobs):
            try:
                reports.append(ray.get(future))
            except Exception as exc:         # noqa: BLE001  (any task failure is reported)
                cause = getattr(exc, "cause", None) or exc
                message = str(cause).strip().splitlines()
                error = {"task": name, "error": f"{type(cause).__name__}: "
                                                 f"{message[-1] if message else ''}"}
                if "outputs" in job:
                    error["outputs"] = job["outputs"]
                if "shard" in job:
                    error["shard"] = job["shard"]
                errors.append(error)
        return reports, errors

    def _tagged(self, report: Report, tasks: int) -> Report:
        return report.with_fields(engine={"name": "ray", "address": self.address or "local",
                                          "workers": self.workers, "tasks": tasks,
                                          "gpu_tasks": self.use_gpu})


def _chunks(total: int, parts: int) -> list:
    """[lo, hi) ranges splitting range(total) into at most `parts` nearly equal pieces."""
    parts = max(1, min(parts, total))
    bounds = [total * j // parts for j in range(parts + 1)]
    return [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]
