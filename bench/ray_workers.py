"""`sup verify --engine ray`: one exhaustive check on 1 worker against 2 (or more) workers.

    sup compile examples/pairs_16k.sup --target superposed --channel 8 -o /tmp/p16k
    python bench/ray_workers.py --model /tmp/p16k [--circuit examples/pairs_16k.sup]
                                [--workers 1,2] [--repeats 3] [--device cpu|cuda]

Each run is a fresh process (as a `sup verify --engine ray` command is): it starts a local
Ray with W CPUs and W workers (`RayEngine(workers=W)`, which also warms the workers up:
imports, parser), then times `engine.verify(..., "exhaustive")` from submitting the shards to
the merged report ("check s"); "start s" is Ray's start-up plus the workers' warm-up, reported
apart. Runs alternate between the worker counts; each row notes the 1-minute load average
before it. Every report must be the plain in-process run's (verdict, counts, margin,
counterexamples). Rows go to bench/results/ray_workers.json; prints a markdown table and the
ratio of the median check times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_device import add_device_argument, chosen_device  # noqa: E402

SAME = ("verified", "inputs_checked", "outputs_checked", "failing_inputs", "min_margin",
        "counterexamples", "domain_size")
RESULTS = ROOT / "bench" / "results" / "ray_workers.json"


def one_run(circuit: str, model: str, workers: int, device: str) -> dict:
    """One check in this process on a fresh local Ray of `workers` workers."""
    from backends import load
    from verify.ray_engine import RayEngine
    net = load(model)
    begin = time.perf_counter()
    engine = RayEngine(workers=workers, device=device)
    started = time.perf_counter() - begin
    try:
        begin = time.perf_counter()
        report = engine.verify(circuit, net, "exhaustive", model_file=model)
        check = time.perf_counter() - begin
    finally:
        engine.close()
    return {"workers": workers, "start_s": round(started, 2), "check_s": round(check, 2),
            "parts_wall_s": report["engine"]["part_seconds"],
            "parts_cpu_s": report["engine"]["part_cpu_seconds"],
            **{key: report[key] for key in SAME}}


def plain_run(circuit: str, model: str, device: str) -> dict:
    """The reference: the whole check in this process, one torch thread."""
    import torch
    import dsl
    from backends import load
    from verify import verify_exhaustive
    from verify.run import module_for
    torch.set_num_threads(1)
    begin = time.perf_counter()
    report = verify_exhaustive(dsl.load(circuit), module_for(load(model), device=device),
                               progress=False)
    return {"seconds": round(time.perf_counter() - begin, 2),
            **{key: report[key] for key in SAME}}


def main() -> None:
    """Alternate fresh-process runs over the worker counts; print the table and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--circuit", default=str(ROOT / "examples" / "pairs_16k.sup"))
    parser.add_argument("--model", required=True, help="the compiled network (sup compile -o)")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)   # a child process's run
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    add_device_argument(parser)
    args = parser.parse_args()
    device = chosen_device(args)
    if args.one or args.plain:
        row = (one_run(args.circuit, args.model, args.one, device) if args.one
               else plain_run(args.circuit, args.model, device))
        print(json.dumps(row))
        return
    counts = [int(w) for w in args.workers.split(",")]
    child = [sys.executable, __file__, "--circuit", args.circuit, "--model", args.model,
             "--device", device]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    plain = _child(child + ["--plain"], env)
    rows = []
    for _ in range(args.repeats):
        for workers in counts:
            load = os.getloadavg()[0]
            row = _child(child + ["--one", str(workers)], env)
            row["load_1min"] = round(load, 2)
            row["same_as_plain"] = all(row[key] == plain[key] for key in SAME)
            rows.append(row)
            print(f"workers {workers}: start {row['start_s']} s, check {row['check_s']} s, "
                  f"load {row['load_1min']}, same report {row['same_as_plain']}", flush=True)
    _table(rows, plain, counts)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"circuit": args.circuit, "device": device, "plain": plain,
                                   "rows": rows}, indent=1) + "\n")


def _child(command: list, env: dict) -> dict:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(rows: list, plain: dict, counts: list) -> None:
    print(f"\nplain in-process check: {plain['seconds']} s, verified {plain['verified']}, "
          f"{plain['inputs_checked']:,} inputs\n")
    print("| workers | start s (Ray + warm-up) | check s | each part's wall s | each part's CPU "
          "s | load | verified | same report |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        walls = " + ".join(f"{x:.2f}" for x in r["parts_wall_s"])
        cpus = " + ".join(f"{x:.2f}" for x in r["parts_cpu_s"])
        print(f"| {r['workers']} | {r['start_s']} | {r['check_s']} | {walls} | {cpus} | "
              f"{r['load_1min']} | {r['verified']} | {r['same_as_plain']} |")
    medians = {w: statistics.median(r["check_s"] for r in rows if r["workers"] == w)
               for w in counts}
    base = medians[counts[0]]
    for w in counts[1:]:
        print(f"\nmedian check: {w} workers {medians[w]} s / {counts[0]} worker(s) {base} s "
              f"= {medians[w] / base:.2f}x")


if __name__ == "__main__":
    main()
