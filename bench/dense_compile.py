"""Exact-compilation benchmark (issue: dense target and torch backend).

    python bench/dense_compile.py [--file examples/pairs_1m.sup] [--inputs 100000]

1. Compiles the 1,000,000-pair AND family with --target dense (target: < 20 s).
2. Evaluates random sparse inputs (K active features each, K = the file's sparsity) with the
   torch module's event-driven forward on CPU, and measures in the same run the machine's
   torch.mm rate. Reported:
   * inputs/s of the module;
   * the same inputs/s for a dense network of the same layer shapes run with torch.mm at the
     measured rate (its multiply-adds per input: sum of n_in x n_out over the layers): the
     speed-up ratio module / dense;
   * the module's useful multiply-adds per second (per input: the weights in the active
     features' columns plus every weight of the later layers, as compiler/accounting.py counts
     them) over torch.mm's multiply-adds per second: the efficiency ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_device import add_device_argument, chosen_device, timed  # noqa: E402

DEVICE = "cpu"      # where torch modules run: --device, set in main()
warnings.filterwarnings("ignore")

import torch  # noqa: E402

import dsl  # noqa: E402
from backends import SupModule  # noqa: E402
from compiler import account, compile_circuit  # noqa: E402
from dsl.semantics import evaluate_active  # noqa: E402
from machine import torch_mm_rate  # noqa: E402


def random_active(rng, count, m, k):
    return np.sort(np.argpartition(rng.random((count, m), dtype=np.float32), k, axis=1)[:, :k], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", default="examples/pairs_1m.sup")
    parser.add_argument("--inputs", type=int, default=100_000)
    add_device_argument(parser)
    args = parser.parse_args()
    global DEVICE
    DEVICE = chosen_device(args)

    start = time.perf_counter()
    circuit = dsl.load(args.file)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    net = compile_circuit(circuit, "dense")
    compile_s = time.perf_counter() - start
    info = account(net)
    module = SupModule(net, device=DEVICE)
    k = circuit.sparsity or 2
    rng = np.random.default_rng(0)
    active = random_active(rng, args.inputs, circuit.n_inputs, k)
    module.forward_delta(active[:100])
    result, eval_s = timed(DEVICE, module.forward_delta, active)
    ref = evaluate_active(circuit, active[:2000])
    sel = result.rows < 2000
    agree = (np.array_equal(ref.rows, result.rows[sel].cpu().numpy())
             and np.array_equal(ref.outputs, result.outputs[sel].cpu().numpy()))
    mm = torch_mm_rate(device=DEVICE)
    inputs_per_s = args.inputs / eval_s
    dense_macs = sum(layer.n_in * layer.n_out for layer in net.layers)
    dense_inputs_per_s = mm / dense_macs
    first = net.layers[0].column_nnz()
    useful = float(first[active].sum()) / args.inputs + sum(l.nnz for l in net.layers[1:])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"circuit: {args.file}: {circuit.n_outputs:,} outputs, {circuit.n_inputs:,} inputs, K={k}")
    print("| figure | value |")
    print("|---|---|")
    print(f"| load (parse + elaborate) | {load_s:.2f} s |")
    print(f"| compile --target dense | {compile_s:.2f} s |")
    print(f"| neurons / layers / nonzero params | {info['neurons']:,} / {info['layers']} / "
          f"{info['params_nonzero']:,} |")
    print(f"| module forward, {args.inputs:,} inputs, {k} active each | {eval_s:.2f} s = "
          f"{inputs_per_s:,.0f} inputs/s |")
    print(f"| torch.mm rate (2048^3, float32, same run) | {mm / 1e9:.1f} G multiply-adds/s |")
    print(f"| dense network of the same shapes at that rate | {dense_inputs_per_s:.4f} inputs/s "
          f"({dense_macs:.3g} multiply-adds per input) |")
    print(f"| speed-up ratio module / dense torch.mm network | {inputs_per_s / dense_inputs_per_s:,.0f} |")
    print(f"| useful multiply-adds per input (accounting) | {useful:,.0f} |")
    print(f"| efficiency ratio (useful MAC/s) / (torch.mm MAC/s) | {useful * inputs_per_s / mm:.3f} |")
    print(f"| multiply-adds actually executed (event-driven) per input | "
          f"{module.delta_engine().macs / (args.inputs + 100):,.0f} |")
    print(f"| module == reference on 2,000 inputs | {agree} |")


if __name__ == "__main__":
    main()
