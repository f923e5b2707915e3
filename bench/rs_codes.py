"""Pairwise AND with inputs and outputs in superposition: combinatorial (Reed-Solomon) codes.

    python bench/rs_codes.py                                   # the default rows below
    python bench/rs_codes.py --only 2:10,2:12 --all-pairs none # single rows
    python bench/rs_codes.py --only none --all-pairs 363:2,363:3
    python bench/rs_codes.py --only 2:14 --all-pairs none --exhaustive-domain 1e8 --threads 1

Rows K:EXP are random pairwise ANDs over m = m'/4 features (m' = 2^EXP outputs, the
`pairs(m, m', seed=1)` family of bench/superposed_scaling.py) at sparsity K; `--all-pairs
M:K` adds the all-pairs AND of M features (m' = M(M-1)/2). Each row compiles with
`--input-code rs --output-code rs`, proves the network with the structural certificate from
its stored weights (verify/code_certificate.py) and, where the domain times the outputs is at
most --exhaustive-limit or the domain has at most --exhaustive-domain inputs, checks every input
of the domain with the exhaustive verifier (its coded path, verify/coded_check.py). Rows
are merged into bench/results/rs_codes.json; the plot docs/rs_codes.png is drawn from all
stored rows. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_device import add_device_argument, chosen_device  # noqa: E402

DEVICE = "cpu"      # where torch modules run: --device, set in main()
warnings.filterwarnings("ignore")

import torch  # noqa: E402

import dsl  # noqa: E402
from backends import SupModule  # noqa: E402
from compiler import account, compile_circuit  # noqa: E402
from dsl.domain import verification_domain  # noqa: E402
from verify import verify  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "rs_codes.json"
DEFAULT_ROWS = "2:10,2:11,2:12,2:13,2:14,2:15,2:16,2:17,2:18,2:19,2:20,3:10,3:12,3:14,3:16"
DEFAULT_ALL_PAIRS = "64:2,128:2,363:2,363:3"


def pairs_text(m_out: int, k: int) -> str:
    features = m_out // 4
    return (f"const P = pairs({features}, {m_out}, seed=1); input x[{features}]; sparsity {k};"
            " output y[u, v] = x[u] & x[v] for (u, v) in P;")


def all_pairs_text(m: int, k: int) -> str:
    return (f"input x[{m}]; sparsity {k}; output y[i, j] = x[i] & x[j] for i in 0..{m}, "
            f"j in i+1..{m};")


def run(text: str, family: str, exhaustive_limit: float, exhaustive_domain: float = 0) -> dict:
    circuit = dsl.loads(text, f"{family}.sup")
    m_out, k, m = circuit.n_outputs, circuit.sparsity, circuit.n_inputs
    start = time.perf_counter()
    net = compile_circuit(circuit, "superposed", input_code="rs", output_code="rs")
    compile_s = time.perf_counter() - start
    info = account(net).to_json()
    rs = net.meta["codes"]["rs"]
    module = SupModule(net, device=DEVICE)
    cert = verify(circuit, net, module, "structural")
    domain = verification_domain(circuit).size
    exhaustive = None
    if domain * m_out <= exhaustive_limit or domain <= exhaustive_domain:
        exhaustive = verify(circuit, net, module, "exhaustive", progress=False)
    log = math.log2(m_out)
    codes = info["codes"]
    return {
        "family": family, "m_out": m_out, "m": m, "k": k, "q": rs["q"], "lam": rs["lam"],
        "c": rs["c"], "n": info["neurons"], "d_in": codes["input"]["dim"],
        "d_out": codes["output"]["dim"], "params": info["params_nonzero"],
        "code_params": codes["fixed_params"], "lower_neurons": math.sqrt(m_out * log),
        "lower_params": m_out * log, "compile_s": compile_s,
        "certificate": cert["verified"], "certificate_s": cert["seconds"],
        "agreement_check": cert["certificate"].get("agreement_check"),
        "domain": domain,
        "exhaustive": None if exhaustive is None else exhaustive["verified"],
        "exhaustive_s": None if exhaustive is None else exhaustive["seconds"],
        "exhaustive_margin": None if exhaustive is None else exhaustive["min_margin"],
        "exhaustive_path": None if exhaustive is None else exhaustive["path"],
        "load1": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d"),
    }


def jobs(args):
    out = []
    if args.only != "none":
        for item in args.only.split(","):
            k, e = (int(v) for v in item.split(":"))
            out.append((pairs_text(2 ** e, k), "pairs"))
    if args.all_pairs != "none":
        for item in args.all_pairs.split(","):
            m, k = (int(v) for v in item.split(":"))
            out.append((all_pairs_text(m, k), "allpairs"))
    return out


def store(row: dict) -> list:
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    key = (row["family"], row["m_out"], row["k"])
    rows = [r for r in rows if (r["family"], r["m_out"], r["k"]) != key] + [row]
    rows.sort(key=lambda r: (r["family"], r["k"], r["m_out"]))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


HEADER = ("| family | m' | m | K | q | λ | c | n | D_in | D_out | sqrt(m' log2 m') | "
          "params (computation) | params (fixed codes) | m' log2 m' | compile s | "
          "certificate (s) | domain | exhaustive (s) |")


def table_row(r: dict) -> str:
    ex = "-" if r["exhaustive"] is None else f"{r['exhaustive']} ({r['exhaustive_s']:.1f})"
    e = int(round(math.log2(r["m_out"])))
    m_out = f"2^{e}" if 2 ** e == r["m_out"] else f"{r['m_out']:,}"
    return (f"| {r['family']} | {m_out} | {r['m']:,} | {r['k']} | {r['q']} | {r['lam']} | "
            f"{r['c']} | {r['n']:,} | {r['d_in']:,} | {r['d_out']:,} | {r['lower_neurons']:,.0f} | "
            f"{r['params']:,} | {r['code_params']:,} | {r['lower_params']:,.0f} | "
            f"{r['compile_s']:.2f} | {r['certificate']} ({r['certificate_s']:.1f}) | "
            f"{r['domain']:,} | {ex} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=DEFAULT_ROWS, help="rows K:EXP,... or 'none'")
    parser.add_argument("--all-pairs", default=DEFAULT_ALL_PAIRS, help="rows M:K,... or 'none'")
    parser.add_argument("--exhaustive-limit", type=float, default=5e9,
                        help="run the exhaustive verifier where domain x outputs <= this")
    parser.add_argument("--exhaustive-domain", type=float, default=0,
                        help="also run it where the domain has at most this many inputs")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--table", action="store_true", help="print the stored rows only")
    add_device_argument(parser)
    args = parser.parse_args()
    global DEVICE
    DEVICE = chosen_device(args)
    torch.set_num_threads(args.threads)
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    print(HEADER)
    print("|" + "---|" * 18)
    if args.table:
        for r in rows:
            print(table_row(r))
    else:
        for text, family in jobs(args):
            row = run(text, family, args.exhaustive_limit, args.exhaustive_domain)
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
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    for k, style in ((2, "o-"), (3, "s-")):
        pts = sorted((r for r in rows if r["family"] == "pairs" and r["k"] == k),
                     key=lambda r: r["m_out"])
        if not pts:
            continue
        xs = [r["m_out"] for r in pts]
        ax.plot(xs, [r["n"] for r in pts], style, label=f"neurons n, K={k}")
        ax.plot(xs, [r["d_in"] for r in pts], style, alpha=0.5, label=f"input code D_in, K={k}")
        bx.plot(xs, [r["params"] for r in pts], style, label=f"computation params, K={k}")
        bx.plot(xs, [r["code_params"] for r in pts], style, alpha=0.5,
                label=f"fixed code params, K={k}")
    xs = sorted({r["m_out"] for r in rows if r["family"] == "pairs"})
    if xs:
        ax.plot(xs, [math.sqrt(x * math.log2(x)) for x in xs], "--", label="sqrt(m' log2 m')")
        bx.plot(xs, [x * math.log2(x) for x in xs], "--", label="m' log2 m'")
    for a in (ax, bx):
        a.set_xscale("log", base=2)
        a.set_yscale("log", base=2)
        a.set_xlabel("output features m' (random pairs over m'/4 features)")
        a.legend(fontsize=7)
    ax.set_title("rs codes: neurons and input width")
    bx.set_title("rs codes: parameters")
    fig.tight_layout()
    out = Path(__file__).resolve().parents[1] / "docs" / "rs_codes.png"
    fig.savefig(out, dpi=120)
    print(f"plot: {out}")


if __name__ == "__main__":
    main()
