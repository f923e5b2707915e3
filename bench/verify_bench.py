"""Verifier benchmark (issue: verification).

    python bench/verify_bench.py [--exhaustive examples/pairs_1k.sup] [--skip-smt]

1. Exhaustive verification of the dense network for 10,000 pairwise ANDs over 1,000 features
   at sparsity 2 (500,501 inputs) on CPU: inputs per second; multiply-adds per second, counted
   two ways: *executed* (weights the event-driven forward actually touched) and *equivalent*
   (what a plain sparse-input forward needs per input: the active columns' weights plus every
   weight of the later layers, compiler/accounting.py), each beside the machine's torch.mm
   rate measured in the same run (goal: at least 20%).
2. SMT: seconds per proved output at three sizes (pairwise ANDs over 64, 256 and 1,000
   features at sparsity 2: the first outputs of each).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_device import add_device_argument, chosen_device  # noqa: E402

DEVICE = "cpu"      # where torch modules run: --device, set in main()
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import dsl  # noqa: E402
from backends import SupModule  # noqa: E402
from compiler import compile_circuit  # noqa: E402
from compiler.accounting import expected_active  # noqa: E402
from machine import torch_mm_rate  # noqa: E402
from verify import verify_exhaustive, verify_smt  # noqa: E402


def exhaustive(path: str) -> None:
    circuit = dsl.load(path)
    net = compile_circuit(circuit, "dense")
    module = SupModule(net, device=DEVICE)
    report = verify_exhaustive(circuit, module, progress=False)
    macs = module.delta_engine().macs
    mm = torch_mm_rate()
    secs = report["seconds"]
    first = net.layers[0].column_nnz().astype(float)
    per_input = first.mean() * expected_active(circuit.n_inputs, circuit.sparsity) + sum(
        layer.nnz for layer in net.layers[1:])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"exhaustive: {path}: {circuit.n_outputs:,} outputs, {circuit.n_inputs:,} features, "
          f"K={circuit.sparsity}")
    print("| figure | value |")
    print("|---|---|")
    print(f"| verified | {report['verified']} ({report['inputs_checked']:,} inputs, "
          f"{report['outputs_checked']:,} output checks, min margin {report['min_margin']}) |")
    print(f"| time | {secs:.2f} s = {report['inputs_checked'] / secs:,.0f} inputs/s |")
    print(f"| torch.mm rate, same run | {mm / 1e9:.1f} G multiply-adds/s |")
    print(f"| executed multiply-adds/s (event-driven) | {macs / secs / 1e9:.3f} G = "
          f"{macs / secs / mm:.1%} of torch.mm |")
    print(f"| equivalent multiply-adds/s (plain sparse-input forward: {per_input:,.0f} per input) | "
          f"{per_input * report['inputs_checked'] / secs / 1e9:.2f} G = "
          f"{per_input * report['inputs_checked'] / secs / mm:.1%} of torch.mm |")


def smt_sizes() -> None:
    print("\n| SMT size | outputs proved | seconds | seconds per proved output |")
    print("|---|---|---|---|")
    for features, pairs, outputs in ((64, 256, 256), (256, 2048, 256), (1000, 10000, 256)):
        text = (f"const P = pairs({features}, {pairs}, seed=1); input x[{features}]; sparsity 2;"
                " output y[u, v] = x[u] & x[v] for (u, v) in P;")
        circuit = dsl.loads(text, "smt_bench.sup")
        net = compile_circuit(circuit, "dense")
        report = verify_smt(circuit, net, SupModule(net, device=DEVICE),
                            outputs=list(range(outputs)), progress=False)
        print(f"| {pairs:,} pairs over {features:,} features (first {outputs}) | "
              f"{report['outputs_checked']} | {report['seconds']:.2f} | "
              f"{report['seconds'] / max(report['outputs_checked'], 1):.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exhaustive", default="examples/pairs_1k.sup")
    parser.add_argument("--skip-smt", action="store_true")
    add_device_argument(parser)
    args = parser.parse_args()
    global DEVICE
    DEVICE = chosen_device(args)
    exhaustive(args.exhaustive)
    if not args.skip_smt:
        smt_sizes()


if __name__ == "__main__":
    main()
