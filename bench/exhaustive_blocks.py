"""Exhaustive verification of superposed networks: the block path against input-by-input.

    python bench/exhaustive_blocks.py [--rows 2:10,...,2:16,3:10,3:11,3:12] [--shards 1]

For each row K:EXP (random pairwise ANDs, m' = 2^EXP over m'/4 features at sparsity K, the
circuits of bench/superposed_scaling.py) the network is compiled at the width and channel size
stored in bench/results/superposed_scaling.json (the smallest exact width that benchmark
found), then checked exhaustively on its whole domain by the `sup` command as a user runs it:
`sup verify --model M --method exhaustive --shard i/S --report` in S parallel processes (one
torch thread each) and `sup verify --merge`. The per-input event-driven path (`--path delta`)
is timed on one slice of about 20,000 inputs of weight K in the middle of the domain; its
whole-domain CPU time is that rate times the domain size (an estimate: running it takes
hours). "Block path CPU s" is the verifier's own time summed over the processes (the wall time
adds process start-up and model loading).
Rows are stored in bench/results/exhaustive_blocks.json (with `--device cuda`:
exhaustive_blocks_cuda.json, where `sup verify` takes the tensor path, verify/tensor_check.py);
prints a markdown table. `--skip-delta` leaves out the per-input estimate (on a lent GPU, whose
minutes are few).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_device import add_device_argument, chosen_device  # noqa: E402

DEVICE = "cpu"      # where torch modules run: --device, set in main()

import torch  # noqa: E402

import dsl  # noqa: E402
from backends import SupModule  # noqa: E402
from backends.serialize import load  # noqa: E402
from dsl.domain import SparseDomain  # noqa: E402
from superposed_scaling import pairs_text  # noqa: E402
from verify import merge, verify_exhaustive  # noqa: E402

SCALING = ROOT / "bench" / "results" / "superposed_scaling.json"
RESULTS = {"cpu": ROOT / "bench" / "results" / "exhaustive_blocks.json",
           "cuda": ROOT / "bench" / "results" / "exhaustive_blocks_cuda.json"}
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def sup(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sup.cli", *args], capture_output=True,
                          text=True, env=ENV, cwd=ROOT)


def width_of(k: int, m_out: int) -> tuple[int, int]:
    for r in json.loads(SCALING.read_text()):
        if (r["family"], r["k"], r["m_out"]) == ("pairs", k, m_out):
            return r["neurons"], r["t"]
    raise SystemExit(f"no row for k={k}, m'={m_out} in {SCALING}: run superposed_scaling.py")


def delta_rate(circuit, model: str) -> float:
    """Inputs per second of the per-input path on ~20,000 inputs of weight K mid-domain."""
    torch.set_num_threads(1)
    module = SupModule(load(model), device=DEVICE)
    domain = SparseDomain(circuit.n_inputs, circuit.sparsity)
    n = max(1, domain.size // 20_000)
    shard = (max(1, (n * 3) // 4), n)       # the last weight dominates the domain
    report = verify_exhaustive(circuit, module, shard=shard, progress=False, path="delta")
    assert report["failing_inputs"] == 0
    return report["inputs_checked"] / report["seconds"]


def run_row(k: int, exp: int, shards: int, tmp: Path, skip_delta: bool = False) -> dict:
    m_out = 2 ** exp
    width, t = width_of(k, m_out)
    src = tmp / f"pairs_{m_out}_k{k}.sup"
    src.write_text(pairs_text(m_out, k))
    model = str(tmp / f"model_{m_out}_k{k}")
    done = sup("compile", str(src), "--target", "superposed", "--width", str(width),
               "--channel", str(t), "-o", model, "--json")
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    neurons = json.loads(done.stdout)["neurons"]
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "sup.cli", "verify", str(src), "--model",
                               model, "--method", "exhaustive", "--shard", f"{i}/{shards}",
                               "--device", DEVICE, "--report", str(tmp / f"r{i}.json"), "--json"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, cwd=ROOT)
             for i in range(1, shards + 1)]
    for p in procs:
        p.wait()
    wall = time.perf_counter() - start
    reports = [json.loads((tmp / f"r{i}.json").read_text()) for i in range(1, shards + 1)]
    merged = merge(reports)
    circuit = dsl.load(str(src))
    rate = float("nan") if skip_delta else delta_rate(circuit, model)
    size = SparseDomain(circuit.n_inputs, k).size
    return {"m_out": m_out, "k": k, "features": circuit.n_inputs, "neurons": neurons, "t": t,
            "domain": size, "verified": merged["verified"],
            "inputs_checked": sum(r["inputs_checked"] for r in reports),
            "min_margin": merged["min_margin"], "shards": shards, "wall_s": round(wall, 1),
            "cpu_s": round(sum(r["seconds"] for r in reports), 1),
            "evaluations": sum(r.get("block_stats", {}).get("evaluations", 0) for r in reports),
            "device": DEVICE,
            "paths": sorted({r["path"] for r in reports}),
            "delta_inputs_per_s": round(rate, 1), "delta_estimate_s": round(size / rate, 1),
            "date": time.strftime("%Y-%m-%d")}


def store(row: dict) -> list:
    results = RESULTS[DEVICE]
    rows = json.loads(results.read_text()) if results.exists() else []
    rows = [r for r in rows if (r["k"], r["m_out"]) != (row["k"], row["m_out"])] + [row]
    rows.sort(key=lambda r: (r["k"], r["m_out"]))
    results.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def table_row(r: dict) -> str:
    return (f"| 2^{r['m_out'].bit_length() - 1} | {r['k']} | {r['features']:,} | {r['neurons']:,} "
            f"| {r['domain']:,} | {r['verified']} | {r['min_margin']} | {r['wall_s']:,} "
            f"({r['shards']}) | {r['cpu_s']:,} | {r['evaluations']:,} "
            f"| {r['delta_inputs_per_s']:,.0f} | {r['delta_estimate_s']:,.0f} "
            f"| {r['delta_estimate_s'] / max(r['cpu_s'], 0.1):,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="2:10,2:11,2:12,2:13,2:14,2:15,2:16,3:10,3:11,3:12")
    parser.add_argument("--shards", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument("--skip-delta", action="store_true",
                        help="do not time the per-input path (its columns read nan)")
    add_device_argument(parser)
    args = parser.parse_args()
    global DEVICE
    DEVICE = chosen_device(args)
    print("| m' | k | features | neurons | domain | verified | min margin | block path wall s "
          "(processes) | block path CPU s | values evaluated exactly | per-input path inputs/s | "
          "per-input path CPU s (estimated) | CPU speed-up |")
    print("|" + "---|" * 13)
    with tempfile.TemporaryDirectory() as tmp:
        for item in args.rows.split(","):
            k, exp = (int(v) for v in item.split(":"))
            row = run_row(k, exp, args.shards, Path(tmp), args.skip_delta)
            store(row)
            print(table_row(row), flush=True)


if __name__ == "__main__":
    main()
