"""Speed of the q = 1 exactness check: numpy (bitcheck.py) vs torch (bitcheck_torch.py).

    python bench/bitcheck_speed.py [--exps 14,16] [--device cpu] [--threads 1] [--repeat 3]

For the pairs family of bench/superposed_scaling.py at m' = 2^e (k = 2), one random channel
assignment at the width the search finds (bench/results/superposed_scaling.json: 282 / 328 /
496 neurons at 2^14 / 2^16 / 2^20; other sizes a guess, 0.6 sqrt(m' log2 m'), t = 8): the
full check of every output (listen bitset included) by both versions, and the check alone
given the listen bitset (on the device for torch). Asserts they agree and prints the best of
--repeat interleaved runs as a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_device import add_device_argument, chosen_device  # noqa: E402

import dsl  # noqa: E402
from compiler.superposed import superposable  # noqa: E402
from compiler.superposed.bitcheck import failing_outputs_bits, listen_bits  # noqa: E402
from compiler.superposed.bitcheck_torch import bits_on, failing_outputs_bits_torch  # noqa: E402
from compiler.superposed.channels import assign_random, listen_sets  # noqa: E402

WIDTHS = {14: (282, 8), 16: (328, 12), 20: (496, 8)}   # (n, t) the search finds (results json)


def instance(e: int):
    """(spec, assignment, listen sets) of the pairs family at m' = 2^e, k = 2."""
    m_out = 2 ** e
    text = (f"const P = pairs({m_out // 4}, {m_out}, seed=1); input x[{m_out // 4}]; "
            "sparsity 2; output y[u, v] = x[u] & x[v] for (u, v) in P;")
    _, spec = superposable(dsl.loads(text, "pairs.sup"))
    n, t = WIDTHS.get(e, (int(0.6 * np.sqrt(m_out * e)), 8))     # elsewhere a guess
    a = assign_random(spec, n, t, np.random.default_rng(0))
    return spec, a, listen_sets(spec, a)


def best_times(fns, repeat: int):
    """(best seconds of `repeat` calls, last result) of each function, called in turn (so
    that a busy machine slows all of them alike)."""
    best, out = [float("inf")] * len(fns), [None] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            out[i] = fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            best[i] = min(best[i], time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exps", default="14,16")
    add_device_argument(parser)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    args.device = chosen_device(args)
    torch.set_num_threads(args.threads)
    print(f"| m' | n | t | failing | numpy s | torch ({args.device}) s | numpy, bitset given s | "
          f"torch ({args.device}), bitset given s |")
    print("|---|---|---|---|---|---|---|---|")
    for e in (int(v) for v in args.exps.split(",")):
        spec, a, listen = instance(e)
        outputs = np.arange(spec.n_outputs)
        bits = listen_bits(a.n, spec.m, listen)
        on = bits_on(bits, args.device)
        (t_np, t_th, c_np, c_th), (ref, got, ref2, got2) = best_times([
            lambda: failing_outputs_bits(spec, a, listen, outputs),
            lambda: failing_outputs_bits_torch(spec, a, listen, outputs, device=args.device),
            lambda: failing_outputs_bits(spec, a, listen, outputs, bits),
            lambda: failing_outputs_bits_torch(spec, a, listen, outputs, on, device=args.device)],
            args.repeat)
        assert all(np.array_equal(ref, x) for x in (got, ref2, got2)), "the versions disagree"
        print(f"| 2^{e} | {a.n} | {len(a.c_neurons) // spec.n_outputs} | {len(ref):,} | "
              f"{t_np:.4f} | {t_th:.4f} | {c_np:.4f} | {c_th:.4f} |", flush=True)


if __name__ == "__main__":
    main()
