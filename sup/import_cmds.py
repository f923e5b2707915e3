"""`sup import`: read a standard circuit format (.aag, .aig, .bench, .blif) and write .sup.

The circuit is read by `load_circuit` in sup/cli.py (by extension, like every subcommand);
this module writes it back as .sup text (dsl/formats/to_sup.py) to -o FILE or standard output.
"""

from __future__ import annotations

from pathlib import Path

from dsl.formats import EXTENSIONS, to_sup

from .output import UsageError, emit


def register(sub, common) -> None:
    """Add the `import` subcommand to the subparsers `sub` (`common`: the shared options)."""
    imp = sub.add_parser("import", help="read .aag/.aig/.bench/.blif and write the circuit as .sup",
                         description="Read a circuit in a standard format, chosen by the file "
                         "extension (ASCII or binary AIGER .aag/.aig, ISCAS .bench, BLIF .blif), "
                         "and write the same circuit as readable .sup text: to -o FILE.sup, or "
                         "to standard output. check, eval, graph, compile and verify also read "
                         "these formats directly.")
    common(imp)
    imp.add_argument("-o", "--output", metavar="FILE.sup", help="write the .sup text here")
    imp.set_defaults(run=cmd_import)


def cmd_import(args, circuit) -> int:
    """`sup import`: write the circuit as .sup text to -o FILE or standard output; returns 0."""
    suffix = Path(args.file).suffix.lower()
    header = (f"imported from {Path(args.file).name} by `sup import`: {circuit.n_inputs} inputs, "
              f"{circuit.n_outputs} outputs, {circuit.n_gates} gates")
    if suffix not in EXTENSIONS:
        header = f"written by `sup import` from {Path(args.file).name}"
    text = to_sup(circuit, header)
    info = {"name": circuit.name, "inputs": circuit.n_inputs, "outputs": circuit.n_outputs,
            "gates": circuit.n_gates, "format": suffix.lstrip(".")}
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
        info["output"] = args.output
        emit(args, info, f"wrote {args.output}: {circuit.name}, {circuit.n_inputs:,} inputs, "
                         f"{circuit.n_outputs:,} outputs, {circuit.n_gates:,} gates")
    else:
        info["sup"] = text
        emit(args, info, text)
    return 0
