"""ISCAS `.bench` reader (combinational).

    # comment
    INPUT(N1)
    OUTPUT(N22)
    N10 = NAND(N1, N3)

Gate types (case-insensitive): AND, NAND, OR, NOR, XOR, XNOR with one or more inputs, NOT and
BUF / BUFF with exactly one. Definitions may come in any order (they are sorted
topologically); DFF (flip-flops) and other types are errors. Signal names are any run of
characters other than blanks, `(`, `)`, `,`, `=` and `#`; inputs and outputs are named by the
rule of dsl/formats/names.py (`N1` stays `N1`).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..elaborate import Limits
from ..errors import SupError
from .names import sanitize
from .netlist import AND, BUF, INPUT, OR, XOR, Netlist

# type -> (netlist kind, inverted, exactly one input)
GATES = {"AND": (AND, False, False), "NAND": (AND, True, False), "OR": (OR, False, False),
         "NOR": (OR, True, False), "XOR": (XOR, False, False), "XNOR": (XOR, True, False),
         "NOT": (BUF, True, True), "BUF": (BUF, False, True), "BUFF": (BUF, False, True)}
_NAME = r"[^\s(),=#]+"
_DECL = re.compile(rf"\s*(INPUT|OUTPUT)\s*\(\s*({_NAME})\s*\)\s*\Z", re.IGNORECASE)
_GATE = re.compile(rf"\s*({_NAME})\s*=\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*\Z")
_ARG = re.compile(rf"\s*({_NAME})\s*\Z")


def read_bench(path, limits: Limits | None = None, text: str | None = None):
    """Read an ISCAS .bench file into a Circuit named after the file.

    Args:
        path: the file (its stem names the circuit).
        limits: size limits (default `Limits()`).
        text: the file's text, when already read.
    Returns:
        The elaborated `Circuit`.
    Raises:
        SupError: unreadable file, bad syntax, unknown gate type, undefined or cyclic signals.
    """
    path = Path(path)
    file = str(path)
    if text is None:
        text = read_text(path, file)
    net = Netlist(file, text, limits, noun="signal")
    outputs = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.split("#", 1)[0].rstrip("\r")
        if not line.strip():
            continue
        column = len(line) - len(line.lstrip()) + 1
        decl = _DECL.match(line)
        if decl:
            name_col = decl.start(2) + 1
            if decl.group(1).upper() == "INPUT":
                net.define(decl.group(2), INPUT, (number, name_col))
            else:
                outputs.append((decl.group(2), (number, name_col)))
                net.net(decl.group(2), (number, name_col))
            continue
        gate = _GATE.match(line)
        if gate is None:
            raise net.error(_syntax_hint(line), number, column)
        name, kind_text, args_text = gate.group(1), gate.group(2), gate.group(3)
        kind_col = gate.start(2) + 1
        upper = kind_text.upper()
        if upper == "DFF":
            raise net.error("flip-flops (DFF) are not supported: only combinational .bench "
                            "files can be read", number, kind_col)
        if upper not in GATES:
            raise net.error(f"unknown gate type '{kind_text}' (the types are "
                            f"{', '.join(GATES)})", number, kind_col)
        kind, inverted, single = GATES[upper]
        args, offset = [], gate.start(3)
        for piece in args_text.split(","):
            match = _ARG.match(piece)
            if match is None:
                what = "an empty argument" if not piece.strip() else f"'{piece.strip()}'"
                col = offset + len(piece) - len(piece.lstrip()) + 1
                if not args_text.strip():
                    raise net.error(f"{upper} needs at least one input", number, offset + 1)
                raise net.error(f"bad gate input: {what} is not a signal name", number, col)
            args.append((match.group(1), (number, offset + match.start(1) + 1)))
            offset += len(piece) + 1
        if single and len(args) != 1:
            raise net.error(f"{upper} takes exactly one input, not {len(args)}", number, kind_col)
        fanin = tuple(net.net(a, pos) for a, pos in args)
        net.define(name, kind, (number, gate.start(1) + 1), fanin, None, inverted)
    for name, pos in outputs:
        net.add_output(name, pos)
    return net.build(sanitize(path.stem))


def read_text(path: Path, file: str) -> str:
    """The UTF-8 text of `path`; SupError (at the first bad byte) when unreadable or not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SupError(f"cannot read the file: {exc.strerror}", 0, 0, file) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = data.decode("latin-1")
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SupError("the file is not UTF-8 text", line, column, file, text) from None


def _syntax_hint(line: str) -> str:
    stripped = line.strip()
    if "=" not in stripped:
        return ("expected 'INPUT(name)', 'OUTPUT(name)' or 'name = TYPE(inputs)', not "
                f"'{stripped[:40]}'")
    return f"bad gate definition: expected 'name = TYPE(input, ...)', not '{stripped[:40]}'"
