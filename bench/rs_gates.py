"""Combinatorial codes beyond pairwise AND, and two coded levels (issue 16).

    python bench/rs_gates.py              # every row below (a few minutes on 2 CPU cores)
    python bench/rs_gates.py --quick      # the small rows only
    python bench/rs_gates.py --table      # reprint the stored rows

Families, all compiled with `--input-code rs --output-code rs`:
  perm     a permutation of m features (copies, y[i] = x[pi(i)]), m' = m
  and3     random ANDs of three features (m = m'/4 features)
  or2      random ORs of two features (m = m'/4)
  mixed    a fifth each of and3, or2, atleast(2 of 3), copies and pairwise ANDs (m = m'/4)
  two      ANDs of two random wires, each wire the AND of two features (m features,
           2m wires, m' outputs): every stream coded, two levels of neurons
Each row: neurons n (per level for `two`), code widths, the structural certificate from the
stored weights where it applies (one coded level), and the exhaustive verifier on the whole
domain where domain x m' <= --exhaustive-limit. Rows are stored in bench/results/rs_gates.json.
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

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import dsl  # noqa: E402
from backends import SupModule  # noqa: E402
from compiler import compile_circuit  # noqa: E402
from dsl.domain import verification_domain  # noqa: E402
from verify import verify  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "rs_gates.json"
QUICK = ["perm:10:2", "perm:10:3", "and3:10:3", "or2:10:2", "mixed:10:3", "two:64:3:256"]
FULL = QUICK + ["perm:14:2", "perm:16:3", "and3:14:3", "and3:16:3", "or2:14:2", "mixed:14:3",
                "two:256:3:4096", "two:1024:3:16384"]


def text_of(spec: str) -> str:
    """The circuit text of one row spec FAMILY:EXP:K (or two:M:K:OUTPUTS)."""
    parts = spec.split(":")
    family, rng = parts[0], np.random.default_rng(1)
    if family == "two":
        m, K, n_out = int(parts[1]), int(parts[2]), int(parts[3])
        return two_levels_text(m, K, 2 * m, n_out, rng)
    m_out, K = 2 ** int(parts[1]), int(parts[2])
    if family == "perm":
        perm = rng.permutation(m_out)
        return (f"const P = [{', '.join(map(str, perm))}]; input x[{m_out}]; sparsity {K}; "
                f"output y[i] = x[P[i]] for i in 0..{m_out};")
    m = m_out // 4
    lines = [f"input x[{m}]; sparsity {K};"]
    for j in range(m_out):
        f = rng.choice(m, 3, replace=False)
        kind = {"and3": 0, "or2": 1}.get(family, j % 5)
        lines.append([f"output y{j} = x[{f[0]}] & x[{f[1]}] & x[{f[2]}];",
                      f"output y{j} = x[{f[0]}] | x[{f[1]}];",
                      f"output y{j} = atleast(2, x[{f[0]}], x[{f[1]}], x[{f[2]}]);",
                      f"output y{j} = x[{f[0]}];",
                      f"output y{j} = x[{f[0]}] & x[{f[1]}];"][kind])
    return "\n".join(lines)


def two_levels_text(m, K, n_wires, n_out, rng) -> str:
    """ANDs of two distinct random wires, each the AND of two distinct features."""
    pairs = set()
    while len(pairs) < n_wires:
        pairs.add(tuple(sorted(rng.choice(m, 2, replace=False).tolist())))
    lines = [f"input x[{m}]; sparsity {K};"]
    lines += [f"wire w{i} = x[{a}] & x[{b}];" for i, (a, b) in enumerate(sorted(pairs))]
    for j in range(n_out):
        u, v = rng.choice(n_wires, 2, replace=False)
        lines.append(f"output y{j} = w{u} & w{v};")
    return "\n".join(lines)


def run(spec: str, exhaustive_limit: float, device: str) -> dict:
    """Compile, certify and (where feasible) exhaustively check one row."""
    circuit = dsl.loads(text_of(spec), f"{spec.replace(':', '_')}.sup")
    start = time.perf_counter()
    net = compile_circuit(circuit, "superposed", input_code="rs", output_code="rs")
    compile_s = time.perf_counter() - start
    module = SupModule(net, device=device)
    codes, rs = net.meta["codes"], net.meta["codes"]["rs"]
    hidden = [layer.n_out for layer in net.layers if layer.relu]
    cert = None
    if codes.get("kind") == "rs":
        cert = verify(circuit, net, module, "structural")
    domain = verification_domain(circuit).size
    exhaustive = None
    if domain * circuit.n_outputs <= exhaustive_limit:
        exhaustive = verify(circuit, net, module, "exhaustive", progress=False)
    m_out = circuit.n_outputs
    return {
        "row": spec, "family": spec.split(":")[0], "m_out": m_out, "m": circuit.n_inputs,
        "K": int(circuit.sparsity), "q": rs["q"], "lam": rs["lam"], "c": rs["c"],
        "arities": rs.get("arities"), "neurons": hidden, "n": int(sum(hidden)),
        "d_in": codes["input"]["dim"], "d_out": codes["output"]["dim"],
        "level1_dim": codes.get("level1", {}).get("dim"),
        "sqrt_bound": round(math.sqrt(m_out * math.log2(max(m_out, 2))), 1),
        "compile_s": round(compile_s, 2),
        "certificate": None if cert is None else cert["verified"],
        "certificate_s": None if cert is None else cert["seconds"],
        "domain": int(domain),
        "exhaustive": None if exhaustive is None else exhaustive["verified"],
        "exhaustive_s": None if exhaustive is None else exhaustive["seconds"],
    }


def table(rows: list) -> str:
    """Markdown table of stored rows."""
    head = ("| row | m' | m | K | arities | q | lambda | c | n (per level) | D_in | level-1 code "
            "| D_out | sqrt(m' log2 m') | compile s | certificate (s) | domain | exhaustive (s) |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cert = "-" if r["certificate"] is None else f"{r['certificate']} ({r['certificate_s']:.1f})"
        exh = "-" if r["exhaustive"] is None else f"{r['exhaustive']} ({r['exhaustive_s']:.1f})"
        out.append(f"| {r['row']} | {r['m_out']:,} | {r['m']:,} | {r['K']} | {r['arities']} | "
                   f"{r['q']} | {r['lam']} | {r['c']} | {r['n']:,} "
                   f"({' + '.join(f'{x:,}' for x in r['neurons'])}) | {r['d_in']:,} | "
                   f"{'-' if r['level1_dim'] is None else format(r['level1_dim'], ',')} | "
                   f"{r['d_out']:,} | {r['sqrt_bound']:,} | {r['compile_s']} | {cert} | "
                   f"{r['domain']:,} | {exh} |")
    return "\n".join(out)


def main() -> None:
    """Run the rows, merge them into the results file, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small rows only")
    parser.add_argument("--only", help="rows, comma-separated (e.g. perm:12:2,two:64:3:256)")
    parser.add_argument("--table", action="store_true", help="reprint the stored rows")
    parser.add_argument("--exhaustive-limit", type=float, default=6e8,
                        help="check exhaustively where domain x outputs is at most this")
    add_device_argument(parser)
    args = parser.parse_args()
    device = chosen_device(args.device)
    torch.set_num_threads(1)
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if not args.table:
        specs = args.only.split(",") if args.only else (QUICK if args.quick else FULL)
        for spec in specs:
            row = run(spec, args.exhaustive_limit, device)
            stored[spec] = row
            print(json.dumps(row), file=sys.stderr, flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(stored, indent=1) + "\n")
    order = [s for s in FULL if s in stored] + [s for s in stored if s not in FULL]
    print(table([stored[s] for s in order]))


if __name__ == "__main__":
    main()
