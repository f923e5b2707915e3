"""Standard circuit formats end to end: import, compile with --target dense, verify.

    python bench/formats_bench.py [--circuits ../shared/circuits] [--timeout 60] [--samples 100000]

For the AIGER examples, ISCAS-85 c17/c432/c499/c880 (.bench) and EPFL ctrl/int2float/dec/cavlc
(.aig and .blif): read the file (dsl/formats), compile it with the dense target, and verify the
torch module against the circuit's reference semantics:

* exhaustively when the domain (every assignment of the inputs) has at most 2^24 inputs;
* otherwise by SMT (z3, per output, `--timeout` seconds per output query); when SMT leaves an
  output undecided (time-out or unknown), the verdict stays undecided and the circuit is also
  sampled (`--samples` inputs, uniform plus aimed), which is reported as such (sampling never
  proves). Outputs SMT proves over exact reals whose margin it cannot show to exceed the
  interval bound on float32 rounding are "flagged" (verify/smt.py) and leave the verdict
  undecided: such circuits are sampled on the float32 module and proved again by SMT with the
  same network evaluated in float64 (`sup verify --dtype float64`), whose rounding bound is
  far smaller; the verdict column then says which module was proved.

Prints one markdown table: circuit, inputs, outputs, gates, neurons, nonzero params, verify
method, verified, seconds (the verification's wall time; compile time in its own column).
"""

from __future__ import annotations

import argparse
import multiprocessing
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

import torch  # noqa: E402

from backends import SupModule  # noqa: E402
from compiler import account, compile_circuit  # noqa: E402
from dsl import formats  # noqa: E402
from verify import verify_exhaustive, verify_sample, verify_smt  # noqa: E402

EXHAUSTIVE_LIMIT = 1 << 24
FILES = (["aiger/and.aag", "aiger/buffer.aag", "aiger/empty.aag", "aiger/false.aag",
          "aiger/halfadder.aag", "aiger/inverter.aag", "aiger/or.aag", "aiger/true.aag"]
         + [f"iscas85/{n}.bench" for n in ("c17", "c432", "c499", "c880")]
         + [f"epfl/{n}.{ext}" for n in ("ctrl", "int2float", "dec", "cavlc")
            for ext in ("aig", "blif")])


def verdict(value) -> str:
    return {True: "yes", False: "NO", None: "undecided"}[value]


def smt(path: Path, dtype: str, timeout_s: float, jobs: int) -> dict:
    """verify_smt of the file's dense network in `dtype`, outputs split over `jobs` processes."""
    circuit = formats.load(path)
    outputs = list(range(circuit.n_outputs))
    if jobs <= 1 or len(outputs) < 2:
        return _smt_part((str(path), dtype, timeout_s, outputs, DEVICE))
    parts = [(str(path), dtype, timeout_s, outputs[j::jobs], DEVICE) for j in range(jobs)]
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        reports = pool.map(_smt_part, parts)
    refuted = sum(r["outputs_refuted"] for r in reports)
    undecided = sum(r["outputs_undecided"] for r in reports)
    flagged = sum(r["outputs_flagged"] for r in reports)
    return {"verified": False if refuted else (True if not undecided and not flagged else None),
            "outputs_checked": sum(r["outputs_checked"] for r in reports),
            "outputs_total": len(outputs), "outputs_refuted": refuted,
            "outputs_undecided": undecided, "outputs_flagged": flagged,
            "seconds": max(r["seconds"] for r in reports)}


def _smt_part(job) -> dict:
    path, dtype, timeout_s, outputs, device = job
    torch.set_num_threads(1)
    circuit = formats.load(path)
    net = compile_circuit(circuit, target="dense")
    module = SupModule(net, dtype=getattr(torch, dtype), device=device)
    return verify_smt(circuit, net, module, timeout_ms=int(timeout_s * 1000), outputs=outputs,
                      progress=False)


def run(path: Path, timeout_s: float, samples: int, smt_dtype: str = "float32",
        jobs: int = 1) -> dict:
    circuit = formats.load(path)
    start = time.perf_counter()
    net = compile_circuit(circuit, target="dense")
    compile_s = time.perf_counter() - start
    info = account(net)
    module = SupModule(net, device=DEVICE)
    row = {"circuit": f"{path.parent.name}/{path.name}", "inputs": circuit.n_inputs,
           "outputs": circuit.n_outputs, "gates": circuit.n_gates, "neurons": info["neurons"],
           "params": info["params_nonzero"], "compile_s": compile_s}
    if (1 << circuit.n_inputs) <= EXHAUSTIVE_LIMIT:
        report = verify_exhaustive(circuit, module, progress=False)
        row.update(method=f"exhaustive ({report['inputs_checked']:,} inputs)",
                   verified=verdict(report["verified"]), seconds=report["seconds"])
        return row
    report = smt(path, smt_dtype, timeout_s, jobs)
    method = f"smt, {smt_dtype}: " + smt_summary(report)
    seconds = report["seconds"]
    result = verdict(report["verified"])
    if report["verified"] is None:
        sample = verify_sample(circuit, module, samples=samples, progress=False)
        seconds += sample["seconds"]
        method += (f"; sample, float32: {sample['inputs_checked']:,} inputs, "
                   f"{sample['failing_inputs']} failing, error rate <= "
                   f"{sample['error_rate_upper_bound']:.1e} at 95%")
        if sample["verified"] is False:
            result = "NO"
    if report["verified"] is None and report["outputs_flagged"] and result != "NO" \
            and smt_dtype == "float32":
        # proved over exact reals, but the float32 rounding bound is wider than the margin:
        # the same network evaluated in float64 has a far smaller bound
        report64 = smt(path, "float64", timeout_s, jobs)
        seconds += report64["seconds"]
        method += "; smt, float64: " + smt_summary(report64)
        if report64["verified"] is not None:
            result = verdict(report64["verified"]) + " (float64)"
    elif smt_dtype != "float32" and report["verified"] is not None:
        result += f" ({smt_dtype})"
    row.update(method=method, verified=result, seconds=seconds)
    return row


def smt_summary(report: dict) -> str:
    return (f"{report['outputs_checked']}/{report['outputs_total']} outputs proved"
            + (f", {report['outputs_flagged']} of them flagged (margin not above the rounding "
               "bound)" if report["outputs_flagged"] else "")
            + (f", {report['outputs_undecided']} undecided" if report["outputs_undecided"] else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parents[2] / "shared" / "circuits"
    parser.add_argument("--circuits", default=str(default), help=f"(default {default})")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="SMT: seconds per output query (default 60)")
    parser.add_argument("--samples", type=int, default=100_000,
                        help="sampling after an undecided SMT run (default 100,000)")
    parser.add_argument("--only", nargs="*", help="only these files (relative to --circuits)")
    parser.add_argument("--smt-dtype", default="float32", choices=("float32", "float64"),
                        help="the module SMT proves first (default float32; float64 skips the "
                        "float32 pass)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="SMT: processes proving outputs in parallel (default 1); the "
                        "seconds column is then wall time")
    add_device_argument(parser)
    args = parser.parse_args()
    global DEVICE
    DEVICE = chosen_device(args)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    root = Path(args.circuits)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"SMT timeout {args.timeout:g} s per output\n")
    print("| circuit | inputs | outputs | gates | neurons | nonzero params | compile s | "
          "verify method | verified | verify s |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|---:|")
    for rel in args.only or FILES:
        r = run(root / rel, args.timeout, args.samples, args.smt_dtype, args.jobs)
        print(f"| {r['circuit']} | {r['inputs']} | {r['outputs']} | {r['gates']:,} | "
              f"{r['neurons']:,} | {r['params']:,} | {r['compile_s']:.2f} | {r['method']} | "
              f"{r['verified']} | {r['seconds']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
