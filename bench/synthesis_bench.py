"""Synthesis benchmark (issue 6: conditional target, compiler/conditional/synthesis.py).

    python bench/synthesis_bench.py [examples/pairs_1m.sup ...] [--inputs 2000]

For each file: seconds to synthesise the conditional forest of every output from its dense
compilation (`synthesize_circuit`, dense compilation included), trees / gates / leaves, and the
operations per input: the forest's worst-case bound (`Forest.max_ops`) and its mean over
random domain inputs (`Forest.walk(with_ops=True)`; at most 2e7 / outputs of them), beside the dense network's
(compiler.accounting.ops_per_input). Decisions on those inputs are checked against the
reference semantics.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_device import add_device_argument, chosen_device  # noqa: E402

DEVICE = "cpu"      # where torch modules run: --device, set in main()

import dsl  # noqa: E402
from compiler.accounting import ops_per_input  # noqa: E402
from compiler.dense import compile_dense  # noqa: E402
from compiler.conditional.synthesis import synthesize_circuit  # noqa: E402
from dsl.domain import SparseDomain  # noqa: E402
from dsl.semantics import evaluate_active  # noqa: E402


def run(path: str, n_inputs: int) -> None:
    circuit = dsl.load(path)
    start = time.perf_counter()
    forest = synthesize_circuit(circuit, np.arange(circuit.n_outputs))
    seconds = time.perf_counter() - start
    dom = SparseDomain(circuit.n_inputs, circuit.sparsity)
    rng = np.random.default_rng(0)
    n_inputs = max(1, min(n_inputs, 20_000_000 // max(circuit.n_outputs, 1)))   # walk memory
    ranks = np.arange(dom.size) if dom.size <= n_inputs else rng.choice(dom.size, n_inputs, replace=False)
    active = dom.unrank(np.asarray(ranks, np.int64))
    y, ops = forest.walk(active, with_ops=True)
    ref = evaluate_active(circuit, active).dense()
    wrong = int((((y > 0.5) != (ref == 1)) & (ref != 2)).sum())
    dense_max, dense_mean = ops_per_input(compile_dense(circuit))
    print(f"{Path(path).name}: outputs {circuit.n_outputs:,}  synthesis {seconds:.2f} s  "
          f"trees {forest.n_trees:,} gates {forest.n_gates:,} leaves {forest.n_leaves:,}")
    print(f"  ops/input: forest max bound {forest.max_ops(circuit.sparsity):,}, mean "
          f"{ops.mean():,.1f} on {len(active):,} inputs; dense max {dense_max:,} mean "
          f"{dense_mean:,.1f};  wrong decisions {wrong}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", default=["examples/pairs_1m.sup"])
    parser.add_argument("--inputs", type=int, default=2000)
    add_device_argument(parser)
    args = parser.parse_args()
    global DEVICE
    DEVICE = chosen_device(args)
    for path in args.files:
        run(path, args.inputs)


if __name__ == "__main__":
    main()
