"""Scaling of the superposed target (issue: computation in superposition).

    python bench/superposed_scaling.py [--max-exp 14] [--exhaustive-limit 9000000]
    python bench/superposed_scaling.py --only 2:15,2:16 --channels 8      # single rows
    python bench/superposed_scaling.py --all-pairs 32,64,128 --only none  # all-pairs AND
    python bench/superposed_scaling.py --only 2:20 --channels 8 --progress  # each search step

For m' = 2^10 ... 2^max random pairwise ANDs over m'/4 features at sparsity k = 2 (and k = 3
up to 2^12), compile with --target superposed (search for the smallest exact width), prove it
with the structural verifier, and check it exhaustively on the whole domain where the domain
has at most --exhaustive-limit inputs. `--all-pairs M,...` adds the all-pairs AND of M features
(y[i,j] = x[i] & x[j] for every i < j, m' = M(M-1)/2) at k = 2. Every row is also stored in
bench/results/superposed_scaling.json (merged by row key), and the plot
docs/superposed_scaling.png is drawn from all stored rows. Prints a markdown table.
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
warnings.filterwarnings("ignore")

import torch  # noqa: E402

import dsl  # noqa: E402
from backends import SupModule  # noqa: E402
from compiler import account, compile_circuit  # noqa: E402
from dsl.domain import SparseDomain  # noqa: E402
from verify import verify_exhaustive  # noqa: E402
from verify.structural import verify_structural  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_device import add_device_argument, chosen_device  # noqa: E402

DEVICE = "cpu"      # where torch modules run: --device, set in main()

RESULTS = Path(__file__).resolve().parent / "results" / "superposed_scaling.json"


def pairs_text(m_out: int, k: int) -> str:
    features = m_out // 4
    return (f"const P = pairs({features}, {m_out}, seed=1); input x[{features}]; sparsity {k};"
            " output y[u, v] = x[u] & x[v] for (u, v) in P;")


def all_pairs_text(m: int) -> str:
    return (f"input x[{m}]; sparsity 2; output y[i, j] = x[i] & x[j] for i in 0..{m}, "
            f"j in i+1..{m};")


def run(text: str, name: str, exhaustive_limit: int, channels, progress=False) -> dict:
    circuit = dsl.loads(text, f"{name}.sup")
    m_out, k, features = circuit.n_outputs, circuit.sparsity, circuit.n_inputs
    start = time.perf_counter()
    cpu = time.process_time()

    def tell(entry):
        print(f"  {time.perf_counter() - start:8.1f} s wall {time.process_time() - cpu:8.1f} s cpu:"
              f" n = {entry['n']}, t = {entry['t']}, failing {entry['failing']:,}",
              file=sys.stderr, flush=True)
    net = compile_circuit(circuit, "superposed", channels=channels,
                          progress=tell if progress else None)
    compile_s = time.perf_counter() - start
    compile_cpu_s = time.process_time() - cpu
    info = account(net)
    module = SupModule(net, device=DEVICE)
    structural = verify_structural(circuit, net, module)
    size = SparseDomain(circuit.n_inputs, k).size
    exhaustive = None
    if size <= exhaustive_limit:
        exhaustive = verify_exhaustive(circuit, module, progress=False)
    n = info["neurons"]
    log = math.log2(m_out)
    return {"family": name.split("_")[0], "m_out": m_out, "k": k, "features": features, "neurons": n,
            "t": net.meta["channel_size"], "ratio_lower": n / math.sqrt(m_out * log),
            "ratio_naive": n / m_out, "params": info["params_nonzero"],
            "compile_cpu_s": compile_cpu_s,
            "params_ratio": info["params_nonzero"] / (m_out * log), "compile_s": compile_s,
            "structural": structural["verified"], "structural_s": structural["seconds"],
            "domain": size, "exhaustive": None if exhaustive is None else exhaustive["verified"],
            "exhaustive_s": None if exhaustive is None else exhaustive["seconds"],
            "channels": list(channels), "date": time.strftime("%Y-%m-%d")}


def jobs(args):
    """(text, name) of every row asked for."""
    if args.only == "none":
        picked = []
    elif args.only:
        picked = [tuple(int(v) for v in item.split(":")) for item in args.only.split(",")]
    else:
        picked = [(2, e) for e in range(10, args.max_exp + 1)]
        picked += [(3, e) for e in range(10, args.max_exp_k3 + 1)]
    out = [(pairs_text(2 ** e, k), f"pairs_{2 ** e}_k{k}") for k, e in picked]
    if args.all_pairs:
        out += [(all_pairs_text(int(m)), f"allpairs_{m}_k2") for m in args.all_pairs.split(",")]
    return out


def store(row: dict) -> list:
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    key = (row["family"], row["m_out"], row["k"])
    rows = [r for r in rows if (r["family"], r["m_out"], r["k"]) != key] + [row]
    rows.sort(key=lambda r: (r["family"], r["k"], r["m_out"]))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def table_row(r: dict) -> str:
    ex = "-" if r["exhaustive"] is None else f"{r['exhaustive']} ({r['exhaustive_s']:.1f})"
    e = int(round(math.log2(r["m_out"])))
    m_out = f"2^{e}" if 2 ** e == r["m_out"] else f"{r['m_out']:,}"
    return (f"| {r['family']} | {m_out} | {r['k']} | {r['features']:,} | {r['neurons']:,} | "
            f"{r['t']} | {r['ratio_lower']:.2f} | {r['ratio_naive']:.3f} | {r['params']:,} | "
            f"{r['params_ratio']:.2f} | {r['compile_s']:.1f} | {r['structural']} "
            f"({r['structural_s']:.1f}) | {r['domain']:,} | {ex} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-exp", type=int, default=14)
    parser.add_argument("--max-exp-k3", type=int, default=12)
    parser.add_argument("--only", help="rows K:EXP,... (e.g. 2:15,3:13), or 'none'")
    parser.add_argument("--all-pairs", help="all-pairs AND of M features, M,... (k = 2)")
    parser.add_argument("--exhaustive-limit", type=int, default=9_000_000)
    parser.add_argument("--channels", default="6,8,12,16")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--progress", action="store_true",
                        help="print each width the search tries (time, n, t, failing) on stderr")
    add_device_argument(parser)
    args = parser.parse_args()
    global DEVICE
    DEVICE = chosen_device(args)
    torch.set_num_threads(args.threads)
    channels = tuple(int(c) for c in args.channels.split(","))
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    print("| family | m' | k | features | neurons | t | neurons / sqrt(m' log2 m') | neurons / m' | "
          "nonzero params | params / (m' log2 m') | compile s | structural proof (s) | "
          "domain | exhaustive (s) |")
    print("|" + "---|" * 14)
    for text, name in jobs(args):
        row = run(text, name, args.exhaustive_limit, channels, args.progress)
        rows = store(row)
        print(table_row(row), flush=True)
    plot(rows)


def plot(rows) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(16, 4))
    for fam, k, style in (("pairs", 2, "o-"), ("pairs", 3, "s-"), ("allpairs", 2, "^-")):
        pts = sorted((r for r in rows if r["family"] == fam and r["k"] == k), key=lambda r: r["m_out"])
        if not pts:
            continue
        label = f"{'random pairs' if fam == 'pairs' else 'all pairs'}, k={k}"
        ax.plot([r["m_out"] for r in pts], [r["neurons"] for r in pts], style, label=label)
        bx.plot([r["m_out"] for r in pts], [r["ratio_lower"] for r in pts], style, label=label)
        cx.plot([r["m_out"] for r in pts], [r["compile_s"] for r in pts], style,
                label=f"{label} ({max(r['date'][:10] for r in pts)})")
    xs = sorted({r["m_out"] for r in rows})
    ax.plot(xs, [math.sqrt(x * math.log2(x)) for x in xs], "--", label="sqrt(m' log2 m')")
    ax.plot(xs, xs, ":", label="naive m'")
    for a in (ax, bx, cx):
        a.set_xscale("log", base=2)
        a.set_xlabel("output features m'")
        a.legend(fontsize=7 if a is cx else 8)
    ax.set_yscale("log", base=2)
    ax.set_ylabel("neurons")
    ax.set_title("Smallest exact width found (pairwise AND)")
    bx.set_ylabel("neurons / sqrt(m' log2 m')")
    bx.set_title("Ratio to the lower-bound shape")
    cx.set_yscale("log")
    cx.set_ylabel("compile seconds (2-core machine, shared)")
    cx.set_title("Compile time (width search + repair)")
    fig.tight_layout()
    out = Path(__file__).resolve().parents[1] / "docs" / "superposed_scaling.png"
    fig.savefig(out, dpi=120)
    print(f"plot: {out}")


if __name__ == "__main__":
    main()
