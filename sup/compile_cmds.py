"""`sup compile`: compile a circuit, print the accounting, optionally save the network."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tqdm import tqdm

from backends import ModelFileError, load, save
from backends.onnx_export import OnnxUnavailable, export_onnx
from compiler import (TARGETS, Network, OptionError, TargetUnavailable, account,
                      compile_circuit, format_accounting)

from .output import UsageError, emit

# command-line options that belong to a target (argparse dest = the target's option name);
# their argparse default is None, so "given" means "not None"
TARGET_OPTIONS = ("construction", "width", "channel", "seed", "max_error", "input_code",
                  "output_code", "code_seed", "table_method", "max_domain", "max_memory")
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
    """The network of `circuit` compiled by the target the command line names. A target with
    a `strict` option is asked to fail rather than quietly not honour an option (e.g. a
    --width); its search shows a progress bar on a terminal (not with --json)."""
    options = target_options(args, target_name)
    if "strict" in TARGETS.get_target(target_name).option_names():
        options["strict"] = True
    bar = SearchProgress(enabled=not getattr(args, "json", False))
    try:
        return compile_circuit(circuit, target=target_name, progress=bar, **options)
    except TargetUnavailable as exc:
        option = getattr(exc, "option", None)
        hint = ("" if not option else f"; give another {flag(option)} or none" if option == "width"
                else f"; raise it with {flag(option)}")
        raise UsageError(f"{exc}{hint}") from None
    finally:
        bar.close()


class SearchProgress:
    """Progress callback of a target's search: a tqdm bar on standard error, shown only when
    enabled and standard error is a terminal. Steps are dicts with n, t, failing and, from a
    search of several groups, group, step and total."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and sys.stderr.isatty()
        self.bar = None

    def __call__(self, step: dict) -> None:
        """Advance the bar by one attempt of the search."""
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = tqdm(total=step.get("total"), unit="attempt", desc="width search",
                            file=sys.stderr, dynamic_ncols=True, leave=False)
        if step.get("total") and self.bar.total != step["total"]:
            self.bar.total = step["total"]
        where = f"{step['group']}: " if step.get("group") else ""
        self.bar.set_postfix_str(f"{where}n={step.get('n', 0):,} t={step.get('t', 0)} "
                                 f"failing={step.get('failing', 0):,}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        """Remove the bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def network_from_args(args, circuit):
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
