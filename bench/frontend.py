"""Front-end benchmark (issue: front end): `sup check` and reference evaluation at scale.

    python bench/frontend.py [--pairs 1000000] [--features 4096] [--inputs 100000] [--active 3]

1. Writes `const P = pairs(F, N, seed=1); input x[F]; output y[u, v] = x[u] & x[v] for (u, v) in P;`
   to a temporary file and runs `sup check --json` on it in a child process: wall time and the
   child's peak resident memory (targets: < 10 s, < 2 GiB).
2. Loads the circuit in this process and evaluates it on random sparse inputs (each with
   `--active` distinct active features) with the event-driven evaluator (target: < 10 s for
   100,000 inputs), and cross-checks 200 of them against the dense evaluator.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_device import add_device_argument, chosen_device  # noqa: E402

DEVICE = "cpu"      # where torch modules run: --device, set in main()

import dsl  # noqa: E402
from dsl.semantics import active_to_dense, evaluate, evaluate_active  # noqa: E402


def run_check(path: Path) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sup.cli", "check", str(path), "--json"],
                          capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": seconds, "peak_mib": peak_kib / 1024, "summary": json.loads(proc.stdout)}


def random_active(rng, n_inputs: int, m: int, k: int) -> np.ndarray:
    keys = rng.random((n_inputs, m), dtype=np.float32) if m * n_inputs <= 5e8 else None
    if keys is not None:
        return np.sort(np.argpartition(keys, k, axis=1)[:, :k], axis=1).astype(np.int64)
    rows = [np.sort(rng.choice(m, k, replace=False)) for _ in range(n_inputs)]
    return np.array(rows, dtype=np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=4096)
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--active", type=int, default=3)
    add_device_argument(parser)
    args = parser.parse_args()
    global DEVICE
    DEVICE = chosen_device(args)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.sup"
        path.write_text(f"const P = pairs({args.features}, {args.pairs}, seed=1);\n"
                        f"input x[{args.features}];\n"
                        "output y[u, v] = x[u] & x[v] for (u, v) in P;\n")
        check = run_check(path)
        start = time.perf_counter()
        circuit = dsl.load(path)
        load_s = time.perf_counter() - start

    rng = np.random.default_rng(0)
    active = random_active(rng, args.inputs, args.features, args.active)
    start = time.perf_counter()
    result = evaluate_active(circuit, active, chunk=20_000)
    eval_s = time.perf_counter() - start

    sample = active[:200]
    dense = evaluate(circuit, active_to_dense(sample, circuit.n_inputs))
    agree = bool((dense == result.dense(0, 200)).all())

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"circuit: {args.pairs:,} pairwise ANDs over {args.features:,} features")
    print("| step | figure |")
    print("|---|---|")
    print(f"| `sup check` wall time (child process) | {check['seconds']:.2f} s |")
    print(f"| `sup check` peak resident memory | {check['peak_mib']:.0f} MiB |")
    print(f"| load (parse + elaborate) in process | {load_s:.2f} s |")
    print(f"| evaluate {args.inputs:,} inputs, {args.active} active each | {eval_s:.2f} s "
          f"({args.inputs / eval_s:,.0f} inputs/s) |")
    print(f"| outputs that are 1, summed over inputs | {int((result.values == 1).sum()):,} |")
    print(f"| sparse == dense on 200 inputs | {agree} |")
    if not agree:
        raise SystemExit("sparse and dense evaluation disagree")


if __name__ == "__main__":
    main()
