"""`sup verify`: check a network (saved, or compiled in memory) against the circuit."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from backends import ModelFileError, load
from backends.serialize import model_path
from dsl.domain import parse_shard, verification_domain
from verify import MethodUnavailable, check_method, merge, module_for, verify
from verify.report import fingerprint

from .compile_cmds import compile_from_args
from .output import EXIT_MISMATCH, EXIT_OK, EXIT_UNDECIDED, UsageError, emit

AUTO_EXHAUSTIVE_LIMIT = 200_000_000


def _network(args, circuit):
    """The saved --model (checked against the circuit) or the circuit compiled in memory."""
    if args.model:
        if getattr(args, "input_code", None) is not None or getattr(args, "output_code", None) is not None:
            raise UsageError("--input-code / --output-code compile in memory with --target "
                             "superposed; a saved --model already holds its codes")
        try:
            net = load(args.model)
        except ModelFileError as exc:
            raise UsageError(str(exc)) from None
        if net.n_inputs != circuit.n_inputs or net.output_names() != circuit.output_names():
            raise UsageError(f"the model {args.model} was not compiled from this circuit "
                             "(inputs or output names differ)")
        return net
    return compile_from_args(args, circuit, args.target or "dense")


def _module(args, net):
    """The module to check, on --device in --dtype (default: the target's)."""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return module_for(net, args.dtype, None if args.device == "auto" else args.device)


def _method(args, circuit, net) -> str:
    """The method asked for, or for auto: exhaustive on domains up to the limit, else sample."""
    if args.method != "auto":
        try:
            check_method(net, args.method)
        except MethodUnavailable as exc:
            raise UsageError(str(exc)) from None
        return args.method
    size = verification_domain(circuit).size     # a don't-care table's rows count, not 2^w
    return "exhaustive" if size <= AUTO_EXHAUSTIVE_LIMIT else "sample"


def cmd_verify(args, circuit) -> int:
    """Verify (or merge shard reports) and print the verdict; exit 0 / 1 / 3 by the verdict."""
    if args.merge:
        return _finish(args, _merge(args, merge))
    net = _network(args, circuit)
    method = _method(args, circuit, net)
    module = _module(args, net)
    try:
        shard = parse_shard(args.shard) if args.shard and method == "exhaustive" else (1, 1)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        report = verify(circuit, net, module, method, shard=shard, batch=args.batch,
                        path=args.path, timeout_ms=int(args.timeout * 1000),
                        samples=args.samples, seed=args.seed or 0,
                        max_counterexamples=args.max_counterexamples, progress=not args.json)
    except ValueError as exc:
        if not (method == "exhaustive" and args.path in ("blocks", "delta")):
            raise
        raise UsageError(str(exc)) from None
    report["circuit_sha"] = fingerprint(args.file)
    if args.model:
        report["model_sha"] = fingerprint(model_path(args.model))
    else:
        report["model_sha"] = f"target:{net.target}"
    report["target"] = net.target
    return _finish(args, report)


def _merge(args, merge):
    reports = []
    for path in args.merge:
        try:
            reports.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read report {path}: {exc}") from None
    try:
        return merge(reports)
    except (ValueError, KeyError) as exc:
        raise UsageError(f"cannot merge: {exc}") from None


def _finish(args, report: dict) -> int:
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    emit(args, report, _text(report))
    return {True: EXIT_OK, False: EXIT_MISMATCH, None: EXIT_UNDECIDED}[report["verified"]]


def _text(r: dict) -> str:
    verdict = {True: "VERIFIED", False: "COUNTEREXAMPLE FOUND", None: "UNDECIDED"}[r["verified"]]
    lines = [f"{verdict} ({r['method']})"]
    if r.get("inputs_checked") is not None:
        lines.append(f"inputs checked        {r['inputs_checked']:,} of {r.get('domain_size', '?'):,}"
                     if isinstance(r.get("domain_size"), int) else
                     f"inputs checked        {r['inputs_checked']:,}")
    lines.append(f"outputs checked       {r['outputs_checked']:,}")
    if r.get("domain") == "table rows":
        lines.append("domain                the table's rows (its default is don't care)")
    if r.get("min_margin") is not None:
        bound = " (a lower bound)" if r.get("min_margin_is_lower_bound") else ""
        lines.append(f"min margin            {r['min_margin']:.6g}{bound}")
    if r.get("block_stats"):
        b = r["block_stats"]
        lines.append(f"path                  blocks: {b['blocks']:,} blocks, {b['evaluations']:,} "
                     f"(input, output) values evaluated exactly, the rest bounded per block")
    for key, label in (("failing_inputs", "failing inputs"), ("outputs_undecided", "undecided outputs"),
                       ("outputs_flagged", "flagged (thin margin)"),
                       ("error_rate_upper_bound", "error rate <= (95%)"),
                       ("inputs_per_second", "inputs per second")):
        if r.get(key) is not None:
            value = (f"{r[key]:,}" if isinstance(r[key], int) else
                     f"{r[key]:,.0f}" if abs(r[key]) >= 100 else f"{r[key]:.4g}")
            lines.append(f"{label:<22}{value}")
    lines.append(f"seconds               {r['seconds']:.2f}")
    for c in r["counterexamples"][:10]:
        lines.append(f"  input {{{', '.join(c['active'])}}}: wrong {', '.join(c['wrong'][:8])}")
    if r.get("note"):
        lines.append(f"note: {r['note']}")
    return "\n".join(lines)
