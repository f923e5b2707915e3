"""Scaling of the superposed target (issue: computation in superposition).

    python bench/superposed_scaling.py [--max-exp 14] [--exhaustive-limit 9000000]

For m' = 2^10 ... 2^max random pairwise ANDs over m'/4 features at sparsity k = 2 (and k = 3
up to 2^12), compile with --target superposed (search for the smallest exact width), prove it
with the structural verifier, and check it exhaustively on the whole domain where the domain
has at most --exhaustive-limit inputs. Prints a markdown table and writes docs/superposed_scaling.png.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import torch  # noqa: E402

import dsl  # noqa: E402
from backends import SupModule  # noqa: E402
from compiler import account, compile_circuit  # noqa: E402
from dsl.domain import SparseDomain  # noqa: E402
from verify import verify_exhaustive  # noqa: E402
from verify.structural import verify_structural  # noqa: E402


def run(m_out: int, k: int, exhaustive_limit: int, channels) -> dict:
    features = m_out // 4
    text = (f"const P = pairs({features}, {m_out}, seed=1); input x[{features}]; sparsity {k};"
            " output y[u, v] = x[u] & x[v] for (u, v) in P;")
    circuit = dsl.loads(text, f"pairs_{m_out}_k{k}.sup")
    start = time.perf_counter()
    net = compile_circuit(circuit, "superposed", channels=channels)
    compile_s = time.perf_counter() - start
    info = account(net)
    module = SupModule(net, device="cpu")
    structural = verify_structural(circuit, net, module)
    size = SparseDomain(circuit.n_inputs, k).size
    exhaustive = None
    if size <= exhaustive_limit:
        exhaustive = verify_exhaustive(circuit, module, progress=False)
    n = info["neurons"]
    log = math.log2(m_out)
    return {"m_out": m_out, "k": k, "features": features, "neurons": n,
            "t": net.meta["channel_size"], "ratio_lower": n / math.sqrt(m_out * log),
            "ratio_naive": n / m_out, "params": info["params_nonzero"],
            "params_ratio": info["params_nonzero"] / (m_out * log), "compile_s": compile_s,
            "structural": structural["verified"], "structural_s": structural["seconds"],
            "domain": size, "exhaustive": None if exhaustive is None else exhaustive["verified"],
            "exhaustive_s": None if exhaustive is None else exhaustive["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-exp", type=int, default=14)
    parser.add_argument("--max-exp-k3", type=int, default=12)
    parser.add_argument("--exhaustive-limit", type=int, default=9_000_000)
    parser.add_argument("--channels", default="6,8,12,16")
    args = parser.parse_args()
    torch.set_num_threads(2)
    channels = tuple(int(c) for c in args.channels.split(","))
    rows = []
    print("| m' | k | features | neurons | t | neurons / sqrt(m' log2 m') | neurons / m' | "
          "nonzero params | params / (m' log2 m') | compile s | structural proof (s) | "
          "domain | exhaustive (s) |")
    print("|" + "---|" * 13)
    for k, top in ((2, args.max_exp), (3, args.max_exp_k3)):
        for e in range(10, top + 1):
            r = run(2 ** e, k, args.exhaustive_limit, channels)
            rows.append(r)
            ex = "-" if r["exhaustive"] is None else f"{r['exhaustive']} ({r['exhaustive_s']:.1f})"
            print(f"| 2^{e} | {k} | {r['features']:,} | {r['neurons']:,} | {r['t']} | "
                  f"{r['ratio_lower']:.2f} | {r['ratio_naive']:.3f} | {r['params']:,} | "
                  f"{r['params_ratio']:.2f} | {r['compile_s']:.1f} | {r['structural']} "
                  f"({r['structural_s']:.1f}) | {r['domain']:,} | {ex} |", flush=True)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for k in (2, 3):
        pts = [r for r in rows if r["k"] == k]
        ax.plot([r["m_out"] for r in pts], [r["neurons"] for r in pts], "o-", label=f"superposed, k={k}")
    xs = sorted({r["m_out"] for r in rows})
    ax.plot(xs, [math.sqrt(x * math.log2(x)) for x in xs], "--", label="sqrt(m' log2 m')")
    ax.plot(xs, xs, ":", label="naive m'")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("output features m'")
    ax.set_ylabel("neurons")
    ax.legend()
    ax.set_title("Smallest exact width found (pairwise AND)")
    fig.tight_layout()
    out = Path(__file__).resolve().parents[1] / "docs" / "superposed_scaling.png"
    fig.savefig(out, dpi=120)
    print(f"plot: {out}")


if __name__ == "__main__":
    main()
