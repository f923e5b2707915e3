"""`sup compile`: compile a circuit, print the accounting, optionally save the network."""

from __future__ import annotations

import time

from .output import UsageError, emit


def target_options(args) -> dict:
    """Options of the chosen target from the command line."""
    codes = _code_options(args)
    if getattr(args, "target", None) == "conditional":
        if args.max_domain <= 0:
            raise UsageError(f"--max-domain must be positive, got {args.max_domain}")
        return {"table_method": args.table_method, "max_domain": args.max_domain}
    if getattr(args, "target", None) != "superposed":
        return {}
    rate = getattr(args, "max_error", None)
    if rate is not None and not 0.0 <= rate <= 1.0:
        raise UsageError(f"--max-error must be a rate between 0 and 1, got {rate}")
    if codes and rate is not None:
        raise UsageError("--max-error cannot be combined with --input-code / --output-code "
                         "(coded networks are certified exact)")
    return {"construction": args.construction, "width": args.width, "channel": args.channel,
            "seed": args.seed, "max_error": rate, **codes}


def _code_options(args) -> dict:
    """--input-code / --output-code / --code-seed (superposed target only, compiler/codes.py)."""
    dims = {"input_code": getattr(args, "input_code", None),
            "output_code": getattr(args, "output_code", None)}
    asked = {k: v for k, v in dims.items() if v is not None}
    if not asked:
        return {}
    if getattr(args, "target", None) != "superposed":
        where = f"--target {args.target}" if getattr(args, "target", None) else "a saved --model"
        raise UsageError(f"--input-code / --output-code apply to --target superposed, not {where}")
    for key, dim in asked.items():
        if dim <= 0:
            raise UsageError(f"--{key.replace('_', '-')} must be a positive width, got {dim}")
    return {**asked, "code_seed": getattr(args, "code_seed", 0)}


def cmd_compile(args, circuit) -> int:
    from compiler import TargetUnavailable, account, compile_circuit, format_accounting

    if args.onnx and args.target == "conditional":
        raise UsageError("--onnx exports layered networks (dense, superposed); a conditional "
                         "network is saved with -o only")
    start = time.perf_counter()
    from compiler.codes import CodeError
    try:
        net = compile_circuit(circuit, target=args.target, **target_options(args))
    except (TargetUnavailable, CodeError) as exc:
        raise UsageError(str(exc)) from None
    seconds = time.perf_counter() - start
    info = account(net)
    info["compile_seconds"] = round(seconds, 3)
    text = format_accounting(info) + f"\ncompiled in {seconds:.2f} s"
    if net.target == "superposed":
        meta = net.meta
        info["superposed"] = {k: meta[k] for k in ("construction", "superposed_outputs",
                                                    "dense_outputs", "channel_neurons",
                                                    "channel_size")}
        info["superposed"]["levels"] = meta.get("levels", [])
        if "measured_error" in meta:
            info["superposed"].update(max_error=meta["max_error"],
                                      measured_error=meta["measured_error"])
            e = meta["measured_error"]
            text += (f"\nmax error {meta['max_error']:g}: measured error rate {e['rate']:.3g} "
                     f"({e['how']}" + (f", <= {e['upper']:.3g} at 95%" if e["how"] == "sampled"
                                       else f", {e['failing_inputs']:,} of {e['domain_size']:,} inputs")
                     + f"); {e['failing_outputs']:,} outputs not exact")
        text += (f"\nsuperposed {meta['superposed_outputs']:,} outputs on "
                 f"{meta['channel_neurons']:,} channel neurons (channels of "
                 f"{meta['channel_size']}, {meta['construction']}); "
                 f"{meta['dense_outputs']:,} outputs compiled densely")
    if args.output:
        from pathlib import Path

        from backends import save
        try:
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            path = save(net, args.output, extra={"accounting": info})
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
        info["model"] = str(path)
        text += f"\nsaved {path} (metadata also in {path.with_suffix('.json')})"
    if args.onnx:
        from backends.onnx_export import OnnxUnavailable, export_onnx
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
