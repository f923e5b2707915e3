"""Permutation of m features with inputs and outputs in superposition (compiler/superposed/codes.py).

    python bench/code_permutation.py [--exps 8,9,10,11,12,13,14] [--ks 2] [--verify-cost 3e11]
    python bench/code_permutation.py --table-only        # the stored rows as a markdown table

For m = 2^e features and sparsity K, the circuit z[i] = x[Q[i]] (Q = perm(m, seed=7)) is
compiled with --input-code D --output-code D (the same D for both, code seed 0), where D is the
smallest width found (doubling from 16, then bisection) at which the compiler's certificate
proves one neuron per output exact; the compiler then also tries neuron sharing (a design layer
at its least noisy width) and keeps it only if certified. Each row records neurons, the codes'
width, parameters and coherence, the proved margin, and, where the domain is small enough
(inputs x multiply-adds per input <= --verify-cost), the exhaustive verifier's verdict and
minimum margin on the real float32 coded module, plus the same check of the *linear shortcut*
(no neurons: the map O P E^T from the input code to the output code, decoded by O^T) at the
same D, which is what the neurons are for. Rows go to bench/results/code_permutation.json
(merged by key); prints a markdown table.

Widths found for different D are different random draws, so the bisection finds *a* passing
width with this seed (the smallest in its bracket), not a certified global minimum.
"""

from __future__ import annotations

import argparse
import json
import math
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
from compiler.superposed.codes import (certify, coherence, one_per_output, search_coded,  # noqa: E402
                            sign_code)
from compiler.superposed import SuperposedOptions, superposable  # noqa: E402
from dsl.domain import SparseDomain  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "code_permutation.json"


def perm_text(m: int, k: int) -> str:
    return (f"const N = {m}; const Q = perm(N, seed=7); input x[N]; sparsity {k}; "
            "output z[i] = x[Q[i]] for i in 0..N;")


def passes(spec, dim: int, seed: int = 0) -> bool:
    ic, oc = sign_code(dim, spec.m, seed, 0), sign_code(dim, spec.n_outputs, seed, 1)
    return certify(spec, one_per_output(spec), ic, oc)[0].ok


def smallest_dim(spec, start: int = 16) -> tuple[int, int]:
    """(D, probes): doubling, then bisection in (D/2, D]."""
    dim, probes = start, 0
    while True:
        probes += 1
        if passes(spec, dim):
            break
        dim *= 2
    lo, hi = dim // 2 + 1, dim
    while lo < hi:
        mid = (lo + hi) // 2
        probes += 1
        if passes(spec, mid):
            hi = mid
        else:
            lo = mid + 1
    return hi, probes


def linear_shortcut(circuit, spec, ic, oc):
    """The neuron-free network: v -> O P E^T v -> O^T (threshold 0.5)."""
    from compiler.network import Layer
    from compiler.network import input_families, output_families
    from compiler.network import Network
    perm = np.zeros((spec.n_outputs, spec.m))
    perm[np.arange(spec.n_outputs), spec.f_features] = 1.0
    layers = [Layer.from_dense(ic, np.zeros(ic.shape[0]), False),
              Layer.from_dense(oc @ perm @ ic.T, np.zeros(oc.shape[0]), False),
              Layer.from_dense(oc.T, np.zeros(spec.n_outputs), False)]
    net = Network("superposed", spec.m, layers, np.arange(spec.m),
                  output_families=output_families(circuit), input_families=input_families(circuit),
                  sparsity=circuit.sparsity, circuit_name=circuit.name)
    net.meta["codes"] = {"input": {"layer": 0}, "output": {"layer": 2}}
    return net


def exhaustive(circuit, net) -> dict:
    from backends import SupModule
    from verify import verify_exhaustive
    r = verify_exhaustive(circuit, SupModule(net, device=DEVICE), progress=False)
    return {"verified": r["verified"], "min_margin": r["min_margin"], "seconds": r["seconds"],
            "failing_inputs": r["failing_inputs"], "inputs": r["inputs_checked"]}


def row(e: int, k: int, verify_cost: float) -> dict:
    m = 1 << e
    circuit = dsl.loads(perm_text(m, k), file=f"perm_{m}.sup")
    _, spec = superposable(circuit)
    start = time.perf_counter()
    dim, probes = smallest_dim(spec)
    search_s = time.perf_counter() - start
    ic, oc = sign_code(dim, m, 0, 0), sign_code(dim, m, 0, 1)
    start = time.perf_counter()
    log = []
    a, cert, weights = search_coded(spec, ic, oc, SuperposedOptions(), log)
    compile_s = time.perf_counter() - start
    shared = [r for r in log if r.get("t", 1) > 1]
    out = {"key": f"{m}:{k}", "m": m, "k": k, "dim": dim, "probes": probes,
           "neurons": int(a.n), "channel": int(a.channel_sizes().max()),
           "sharing_tried": shared[:1], "code_params": 2 * dim * m,
           "computation_params": int(dim * a.n * 2 + a.n),
           "coherence_in": coherence(ic), "coherence_out": coherence(oc),
           "proved_margin": cert.margin, "input_crosstalk": float(cert.nu_plus.max()),
           "output_crosstalk": float(cert.crosstalk.max()),
           "width_search_s": round(search_s, 2), "compile_s": round(compile_s, 2),
           "lower_neurons": math.sqrt(m * math.log2(m)), "domain": SparseDomain(m, k).size}
    macs = 2 * dim * m + 2 * dim * a.n
    if out["domain"] * macs <= verify_cost:
        from compiler.superposed.codes import build_network
        from compiler.network import input_families, output_families
        net = build_network(circuit, spec, a, cert, weights, ic, oc, 0)
        net.output_families, net.input_families = output_families(circuit), input_families(circuit)
        out["exhaustive"] = exhaustive(circuit, net)
        out["linear_shortcut"] = exhaustive(circuit, linear_shortcut(circuit, spec, ic, oc))
    return out


def table(rows) -> str:
    lines = ["| m = m' | K | code width D (in = out) | D / m | neurons | sqrt(m' log2 m') | "
             "code params (fixed) | proved margin | exhaustive (float32) | linear shortcut, "
             "no neurons | width search + compile (s) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|"]
    for r in sorted(rows, key=lambda r: (r["k"], r["m"])):
        ex, lin = r.get("exhaustive"), r.get("linear_shortcut")
        ex_s = (f"{'verified' if ex['verified'] else 'FAILED'}, {ex['inputs']:,} inputs, min margin "
                f"{ex['min_margin']:.3f}, {ex['seconds']:.1f} s") if ex else "not run (domain too large)"
        lin_s = "-" if not lin else (
            f"exact, min margin {lin['min_margin']:.3f}" if lin["verified"] else
            f"wrong on {lin['failing_inputs']:,} inputs, min margin {lin['min_margin']:.3f}")
        lines.append(f"| {r['m']:,} | {r['k']} | {r['dim']:,} | {r['dim'] / r['m']:.2f} | "
                     f"{r['neurons']:,} | {r['lower_neurons']:.0f} | {r['code_params']:,} | "
                     f"{r['proved_margin']:.3g} | {ex_s} | {lin_s} | "
                     f"{r['width_search_s'] + r['compile_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exps", default="8,9,10,11,12,13,14")
    parser.add_argument("--ks", default="2")
    parser.add_argument("--verify-cost", type=float, default=3e11,
                        help="run the exhaustive checks when inputs x MACs is at most this")
    parser.add_argument("--table-only", action="store_true", help="print the stored rows")
    add_device_argument(parser)
    args = parser.parse_args()
    global DEVICE
    DEVICE = chosen_device(args)
    torch.set_num_threads(1)
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if args.table_only:
        print(table(stored.values()))
        return
    for k in (int(x) for x in args.ks.split(",")):
        for e in (int(x) for x in args.exps.split(",")):
            r = row(e, k, args.verify_cost)
            stored[r["key"]] = r
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(stored, indent=1) + "\n")
            print(json.dumps({k2: v for k2, v in r.items() if k2 != "sharing_tried"}), flush=True)
    print(table(stored.values()))


if __name__ == "__main__":
    main()
