"""`sup export vnncomp`: a VNN-COMP benchmark (ONNX + VNN-LIB + instances.csv) from a circuit
and its network (verify/vnncomp.py explains the encoding)."""

from __future__ import annotations

from compiler import TARGETS
from verify.vnncomp import VnncompError, export_benchmark

from . import argtypes
from .compile_cmds import network_from_args
from .output import UsageError, emit


def register(sub, common) -> None:
    """Add `export` (with its one format, `vnncomp`) to the subparsers `sub`."""
    exp = sub.add_parser("export", help="export a network as a benchmark for other tools",
                         description="Export a circuit's network in another tool's format.")
    formats = exp.add_subparsers(dest="export_format", metavar="FORMAT")
    formats.required = True
    vnn = formats.add_parser(
        "vnncomp", help="a VNN-COMP benchmark: onnx/, vnnlib/, instances.csv",
        description="Write a VNN-COMP benchmark: onnx/ (float32, MatMul+Add+Relu, input X "
        "[1, m], output Y = network outputs, reference outputs, booleanness, active count), "
        "vnnlib/ (VNN-LIB 1.0: is some input of the sparse domain wrong?), instances.csv "
        "(onnx, vnnlib, timeout) and expected.csv (the expected answer of each instance: "
        "unsat for a correct network, sat for --plant variants, whose witness is replayed "
        "with onnxruntime).")
    common(vnn)
    src = vnn.add_mutually_exclusive_group()
    src.add_argument("--model", metavar="MODEL", help="a network saved by sup compile -o")
    src.add_argument("--target", choices=tuple(TARGETS),
                     help="compile in memory first (default: dense)")
    vnn.add_argument("-o", "--output", required=True, metavar="DIR", help="benchmark folder")
    vnn.add_argument("--plant", type=argtypes.nonnegative_int, default=0, metavar="N",
                     help="also write N variants with a planted bug (expected sat)")
    vnn.add_argument("--timeout", type=argtypes.positive_int, default=300, metavar="SECONDS",
                     help="per-instance timeout written to instances.csv (default 300)")
    vnn.add_argument("--seed", type=argtypes.nonnegative_int, default=0,
                     help="seed of the planted bugs (default 0)")
    vnn.set_defaults(run=cmd_vnncomp)


def cmd_vnncomp(args, circuit) -> int:
    """Write the benchmark and list its instances; exit 0 (2 when the export is not possible,
    1 when a planted witness does not replay)."""
    net = network_from_args(args, circuit)
    try:
        instances = export_benchmark(circuit, net, args.output, plant=args.plant,
                                     timeout=args.timeout, seed=args.seed)
    except VnncompError as exc:
        raise UsageError(str(exc)) from None
    data = {"output": str(args.output), "instances": [vars(i) for i in instances]}
    lines = [f"wrote {len(instances)} instances to {args.output} (instances.csv, expected.csv)"]
    for inst in instances:
        replay = {True: "witness replayed with onnxruntime", False: "WITNESS DID NOT REPLAY",
                  None: "witness not replayed (onnxruntime missing)"}[inst.replayed]
        lines.append(f"  {inst.onnx}  {inst.vnnlib}  expected {inst.expected}"
                     + (f"  witness {{{', '.join(inst.witness)}}}: {replay}"
                        if inst.expected == "sat" else ""))
    emit(args, data, "\n".join(lines))
    return 1 if any(i.replayed is False for i in instances) else 0
