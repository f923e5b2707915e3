"""`sup verify`: check a network (saved, or compiled in memory) against the circuit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from backends.serialize import model_path
from dsl.domain import parse_shard
from dsl.semantics import evaluate_active
from verify import MethodUnavailable, check_method, merge, module_for, verify
from verify.auto import check_budget, choose, smt_hint
from verify.report import Report, fingerprint

from .compile_cmds import network_from_args
from . import ray_cmds
from .output import EXIT_MISMATCH, EXIT_OK, EXIT_UNDECIDED, UsageError, emit


def _module(args, net):
    """The module to check, on --device in --dtype (default: the target's)."""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return module_for(net, args.dtype, None if args.device == "auto" else args.device)


def _method(args, circuit, net) -> tuple:
    """(method, why not): the method asked for (with the reason it does not apply to this
    network, else None), or for auto: exhaustive on domains up to the limit, else sample."""
    if args.method != "auto":
        try:
            check_method(net, args.method)
        except MethodUnavailable as exc:
            return args.method, str(exc)
        return args.method, None
    return "auto", None          # chosen by estimated cost once the module exists (_choose)


def _choose(args, circuit, net, module, method: str, shard, structural: bool = True):
    """(method to run, the auto Choice or None); TooExpensive becomes a UsageError (exit 2)."""
    options = dict(shard=shard, path=args.path, batch=args.batch)
    try:
        if method == "auto":
            choice = choose(circuit, net, module, args.max_seconds, args.timeout,
                            structural=structural, **options)
            return choice.method, choice
        check_budget(circuit, net, module, method, args.max_seconds, timeout_s=args.timeout,
                     **options)
    except ValueError as exc:      # TooExpensive, or a --path the probe finds not applicable
        raise UsageError(str(exc)) from None
    return method, None


def _not_applicable(method: str, why: str, module) -> Report:
    """The undecided report of a method that does not apply to the network (exit 3, as when a
    method finds the network outside its shape)."""
    return Report({"verified": None, "method": method, "inputs_checked": 0, "outputs_checked": 0,
                   "counterexamples": [], "min_margin": None, "seconds": 0.0,
                   "not_applicable": [why], "dtype": _dtype_name(module),
                   "note": "the method does not apply to this network: nothing was checked"})


def _dtype_name(module) -> str:
    return str(module.dtype).replace("torch.", "")


def _with_expected(report: Report, circuit, module) -> Report:
    """The report with the reference value of every wrong output of each counterexample
    (`expected`, when the verifier did not give it) and the dtype of the module checked."""
    extra = {} if report.get("dtype") else {"dtype": _dtype_name(module)}
    cases = report.get("counterexamples") or []
    missing = [c for c in cases if "expected" not in c]
    if missing:
        lookup, outputs = circuit.input_lookup(), {n: i for i, n in
                                                    enumerate(circuit.output_names())}
        active = [[lookup[name] for name in c["active"]] for c in missing]
        width = max((len(a) for a in active), default=0)
        padded = np.array([a + [-1] * (width - len(a)) for a in active], dtype=np.int64)
        reference = evaluate_active(circuit, padded.reshape(len(active), width)).dense()
        filled = {id(c): {name: int(reference[r, outputs[name]]) for name in c["wrong"]}
                  for r, c in enumerate(missing)}
        extra["counterexamples"] = [c if "expected" in c else {**c, "expected": filled[id(c)]}
                                    for c in cases]
    return report.with_fields(**extra) if extra else report


def cmd_verify(args, circuit) -> int:
    """Verify (or merge shard reports) and print the verdict; exit 0 / 1 / 3 by the verdict."""
    if args.merge:
        return _finish(args, _merge(args, merge))
    net = network_from_args(args, circuit)
    method, unavailable = _method(args, circuit, net)
    module = _module(args, net)
    if unavailable:
        return _finish(args, _not_applicable(method, unavailable, module))
    try:
        shard = parse_shard(args.shard) if args.shard and method in ("exhaustive", "auto") \
            else (1, 1)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    method, choice = _choose(args, circuit, net, module, method, shard)
    shard = shard if method == "exhaustive" else (1, 1)
    report = _run(args, circuit, net, module, method, shard)
    if choice is not None and method == "structural" and report["verified"] is None:
        method, choice = _choose(args, circuit, net, module, "auto", shard, structural=False)
        choice.why = f"structural left outputs undecided; {choice.why}"
        shard = shard if method == "exhaustive" else (1, 1)
        report = _run(args, circuit, net, module, method, shard)
    model_sha = fingerprint(model_path(args.model)) if args.model else f"target:{net.target}"
    report = _with_expected(report, circuit, module)
    if choice is not None:
        report = report.with_fields(auto=choice.as_dict())
    if method == "smt" and smt_hint(net):
        report = report.with_fields(hint=smt_hint(net))
    return _finish(args, report.with_fields(circuit_sha=fingerprint(args.file),
                                            model_sha=model_sha, target=net.target))


def _run(args, circuit, net, module, method: str, shard) -> Report:
    """The report of `method` on the module (a path that does not apply: UsageError)."""
    try:
        return ray_cmds.runner(args, verify)(circuit, net, module, method, shard=shard,
                                             batch=args.batch,
                        path=args.path, timeout_ms=int(args.timeout * 1000),
                        samples=args.samples, seed=args.seed or 0,
                        max_counterexamples=args.max_counterexamples, progress=not args.json)
    except ValueError as exc:
        if not (method == "exhaustive" and args.path in ("blocks", "coded", "delta")):
            raise
        raise UsageError(str(exc)) from None


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


def _finish(args, report: Report) -> int:
    """Write --report, print the verdict, return its exit status."""
    data = report.to_json()
    if args.report:
        Path(args.report).write_text(json.dumps(data, indent=2) + "\n")
    emit(args, data, _text(data))
    return {True: EXIT_OK, False: EXIT_MISMATCH, None: EXIT_UNDECIDED}[report["verified"]]


def _text(r: dict) -> str:
    verdict = {True: "VERIFIED", False: "COUNTEREXAMPLE FOUND", None: "UNDECIDED"}[r["verified"]]
    lines = [f"{verdict} ({r['method']})" + (f" for the {r['dtype']} module"
                                             if r.get("dtype") else "")]
    if r.get("auto"):
        lines.append(f"method                auto chose {r['auto']['chosen']}: {r['auto']['why']}")
    lines += [f"why: {why}" for why in _undecided_reasons(r)] if r["verified"] is None else []
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
        lines.append(f"  input {{{', '.join(c['active'])}}}: wrong " + ", ".join(
            _wrong_value(c, name) for name in c["wrong"][:8])
            + (f", ... ({len(c['wrong']):,} wrong)" if len(c["wrong"]) > 8 else ""))
    if len(r["counterexamples"]) > 10:
        lines.append(f"  ... {len(r['counterexamples']) - 10:,} more counterexamples (--json "
                     "lists them)")
    if r.get("note"):
        lines.append(f"note: {r['note']}")
    if r.get("hint"):
        lines.append(f"hint: {r['hint']}")
    return "\n".join(lines)


def _wrong_value(case: dict, name: str) -> str:
    """`y[3] = 0.2 (expected 1)`: a wrong output's network value beside the reference."""
    value = (case.get("values") or {}).get(name)
    expected = (case.get("expected") or {}).get(name)
    shown = name if value is None else f"{name} = {value:.4g}"
    return shown if expected is None else f"{shown} (expected {expected})"


def _undecided_reasons(r: dict) -> list:
    """Why a report is undecided, in words (each reason a line)."""
    reasons = list(r.get("not_applicable") or [])
    shard = r.get("shard") or {}
    if shard.get("n", 1) > 1 and "i" in shard:
        reasons.append(f"this is shard {shard['i']} of {shard['n']}: a shard alone is never "
                       "verified (combine the shard reports with --merge)")
    elif r.get("complete") is False:
        reasons.append("the check did not cover the whole domain (a shard, or shards missing)")
    for item in (r.get("undecided") or [])[:5]:
        reasons.append(f"output {item['output']}: {item['reason']}")
    more = (r.get("outputs_undecided") or 0) - len((r.get("undecided") or [])[:5])
    if more > 0:
        reasons.append(f"{more:,} more outputs undecided (--json lists up to 50)")
    if r.get("outputs_flagged"):
        reasons.append(f"{r['outputs_flagged']:,} proved outputs have a margin within the float "
                       "rounding bound (flagged)")
    if r.get("thin_margin"):
        reasons.append("the smallest margin is within what float rounding can move")
    if r["method"] == "sample":
        reasons.append("sampling bounds the error rate but never proves correctness")
    if not reasons:
        reasons.append(r.get("note") or "the method could not decide every output")
    return reasons
