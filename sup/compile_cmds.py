"""`sup compile`: compile a circuit, print the accounting, optionally save the network."""

from __future__ import annotations

import time
from pathlib import Path

from backends import save
from backends.onnx_export import OnnxUnavailable, export_onnx
from compiler import (TARGETS, Network, OptionError, TargetUnavailable, account,
                      compile_circuit, format_accounting)

from .output import UsageError, emit

# command-line options that belong to a target (argparse dest = the target's option name);
# their argparse default is None, so "given" means "not None"
TARGET_OPTIONS = ("construction", "width", "channel", "seed", "max_error", "input_code",
                  "output_code", "code_seed", "table_method", "max_domain")
SHARED_OPTIONS = ("seed",)     # --seed also seeds `verify --method sample`


def flag(option: str) -> str:
    """The command-line spelling of a target option (`max_domain` -> `--max-domain`)."""
    return "--" + option.replace("_", "-")


def target_options(args, target_name: str | None = None) -> dict:
    """The chosen target's options from the command line, checked by the target; UsageError
    for an option given to a target that does not take it, or a value it cannot use."""
    name = target_name or getattr(args, "target", None) or "dense"
    target = TARGETS.get_target(name)
    takes = target.option_names()
    given = {k: getattr(args, k, None) for k in TARGET_OPTIONS}
    for key, value in given.items():
        if value is not None and key not in takes and key not in SHARED_OPTIONS:
            owners = [t.name for t in TARGETS.values() if key in t.option_names()]
            raise UsageError(f"{flag(key)} applies to --target {' / '.join(owners)}, "
                             f"not --target {name}")
    options = {k: v for k, v in given.items() if k in takes and v is not None}
    try:
        target.make_options(**options)
    except OptionError as exc:
        raise UsageError(f"{flag(exc.option)} {exc.problem}") from None
    return options


def compile_from_args(args, circuit, target_name: str):
    """The network of `circuit` compiled by the target the command line names."""
    try:
        return compile_circuit(circuit, target=target_name,
                               **target_options(args, target_name))
    except TargetUnavailable as exc:
        hint = f"; raise it with {flag(exc.option)}" if getattr(exc, "option", None) else ""
        raise UsageError(f"{exc}{hint}") from None


def cmd_compile(args, circuit) -> int:
    """Compile, print the accounting and the target's notes, save / export when asked."""
    target = TARGETS.get_target(args.target)
    if args.onnx and not issubclass(target.network_type, Network):
        raise UsageError(f"--onnx exports layered networks (dense, superposed); a "
                         f"{args.target} network is saved with -o only")
    start = time.perf_counter()
    net = compile_from_args(args, circuit, args.target)
    seconds = time.perf_counter() - start
    info = account(net).to_json()
    info["compile_seconds"] = round(seconds, 3)
    text = format_accounting(info) + f"\ncompiled in {seconds:.2f} s"
    notes = target.compile_notes(net)
    info.update(notes.to_json())
    if notes.text:
        text += "\n" + notes.text
    if args.output:
        try:
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            path = save(net, args.output, extra={"accounting": info})
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
        info["model"] = str(path)
        text += f"\nsaved {path} (metadata also in {path.with_suffix('.json')})"
    if args.onnx:
        try:
            export_onnx(net, args.onnx)
        except OnnxUnavailable as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"cannot write {args.onnx}: {exc.strerror}") from None
        info["onnx"] = args.onnx
        text += f"\nexported {args.onnx}"
    emit(args, info, text)
    return 0
