"""BLIF reader (combinational, one model).

    .model top
    .inputs a b c          # may repeat; a line ending in '\\' continues on the next one
    .outputs y
    .names a b t           # t = a & !b ...
    10 1
    .names t c y           # an OFF-set cover: y = !(t & c)
    11 0
    .names one             # constant 1 (a cover with no inputs and the row '1')
    1
    .names zero            # constant 0 (no rows)
    .end

A `.names` cover's rows use `0`, `1` and `-` (don't care) per input and one output bit; the rows
of a cover are all ON-set (output 1: the net is their OR) or all OFF-set (output 0: the net is
the negated OR). Nets may be used before the cover that defines them (sorted topologically).
`.latch`, `.subckt`, `.gate`, `.mlatch`, `.exdc` and a second `.model` are errors (only flat
combinational models); timing directives (`.area`, `.delay`, `.input_arrival`, ...) are
ignored. The `.model` name is not used: the circuit is named after the file.
"""

from __future__ import annotations

from pathlib import Path

from ..elaborate import Limits
from .bench import read_text
from .names import sanitize
from .netlist import COVER, INPUT, Netlist

IGNORED = {".area", ".delay", ".wire_load_slope", ".wire", ".input_arrival", ".output_required",
           ".default_input_arrival", ".default_output_required", ".input_drive",
           ".default_input_drive", ".output_load", ".default_output_load", ".max_input_load",
           ".default_max_input_load", ".clock", ".search"}
UNSUPPORTED = {
    ".latch": "latches (.latch) are not supported: only combinational BLIF files can be read",
    ".mlatch": "latches (.mlatch) are not supported: only combinational BLIF files can be read",
    ".subckt": ".subckt is not supported: only flat BLIF files (one model, no subcircuits) "
               "can be read",
    ".gate": ".gate (a library-mapped netlist) is not supported: only .names covers can be read",
    ".exdc": ".exdc (external don't cares) is not supported",
    ".start_kiss": "state machines (.start_kiss) are not supported",
}


def _logical_lines(text: str):
    """Yield (tokens, positions, line) of each logical line: comments removed, lines ending in
    '\\' joined with the next; positions are (line, column) of each token."""
    tokens, positions, first = [], [], None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.split("#", 1)[0].rstrip("\r")
        cont = line.rstrip().endswith("\\")
        if cont:
            line = line.rstrip()[:-1]
        column = 0
        for piece in line.split():
            column = line.index(piece, column)
            tokens.append(piece)
            positions.append((number, column + 1))
            column += len(piece)
        if first is None and tokens:
            first = number
        if not cont and tokens:
            yield tokens, positions, first
            tokens, positions, first = [], [], None
    if tokens:
        yield tokens, positions, first


def read_blif(path, limits: Limits | None = None, text: str | None = None):
    """Read a flat combinational BLIF model into a Circuit named after the file.

    Args:
        path: the file (its stem names the circuit).
        limits: size limits (default `Limits()`).
        text: the file's text, when already read.
    Returns:
        The elaborated `Circuit`.
    Raises:
        SupError: unreadable file, bad syntax, unsupported directives, undefined or cyclic nets.
    """
    path = Path(path)
    file = str(path)
    if text is None:
        text = read_text(path, file)
    net = Netlist(file, text, limits, noun="signal")
    outputs = []
    cover = None          # the .names being read: [name, fanin, pos, rows, out value, row pos]
    models, ended = 0, False

    def finish_cover():
        if cover is None:
            return
        name, fanin, pos, rows, value = cover
        net.define(name, COVER, pos, tuple(fanin), None, value == "0", rows)

    for tokens, positions, line in _logical_lines(text):
        head = tokens[0]
        if ended:
            if head == ".model":
                raise net.error("a second .model: hierarchical BLIF (several models) is not "
                                "supported", *positions[0])
            raise net.error(f"'{head}' after .end", *positions[0])
        if not head.startswith("."):
            if cover is None:
                raise net.error(f"a cover row '{' '.join(tokens)}' outside a .names", *positions[0])
            _cover_row(net, cover, tokens, positions)
            continue
        finish_cover()
        cover = None
        if head == ".model":
            models += 1
            if models > 1:
                raise net.error("a second .model: hierarchical BLIF (several models) is not "
                                "supported", *positions[0])
        elif head == ".inputs":
            for name, pos in zip(tokens[1:], positions[1:]):
                net.define(name, INPUT, pos)
        elif head == ".outputs":
            for name, pos in zip(tokens[1:], positions[1:]):
                outputs.append((name, pos))
                net.net(name, pos)
        elif head == ".names":
            if len(tokens) < 2:
                raise net.error(".names needs at least the name of the net it defines",
                                *positions[0])
            fanin = [net.net(name, pos) for name, pos in zip(tokens[1:-1], positions[1:-1])]
            cover = [tokens[-1], fanin, positions[-1], [], None]
        elif head == ".end":
            ended = True
        elif head in UNSUPPORTED:
            raise net.error(UNSUPPORTED[head], *positions[0])
        elif head not in IGNORED:
            raise net.error(f"unknown directive '{head}' (this reader takes .model, .inputs, "
                            f".outputs, .names and .end)", *positions[0])
    finish_cover()
    for name, pos in outputs:
        net.add_output(name, pos)
    return net.build(sanitize(path.stem))


def _cover_row(net: Netlist, cover, tokens, positions) -> None:
    name, fanin, _, rows, value = cover
    width = len(fanin)
    if width == 0:
        if len(tokens) != 1:
            raise net.error(f"a row of the constant cover '{name}' is a single bit (1 or 0), "
                            f"this row has {len(tokens)} fields", *positions[0])
        cube, out, out_pos = "", tokens[0], positions[0]
    else:
        if len(tokens) != 2:
            raise net.error(f"a row of the cover of '{name}' has {width} input bit"
                            f"{'s' if width > 1 else ''} and one output bit, this row has "
                            f"{len(tokens)} field{'s' if len(tokens) != 1 else ''}",
                            *positions[2 if len(tokens) > 2 else 0])
        cube, out, out_pos = tokens[0], tokens[1], positions[1]
        if len(cube) != width:
            raise net.error(f"the cover of '{name}' has {width} input{'s' if width > 1 else ''}, "
                            f"this row gives {len(cube)} bit{'s' if len(cube) != 1 else ''}",
                            *positions[0])
        bad = next((k for k, ch in enumerate(cube) if ch not in "01-"), None)
        if bad is not None:
            raise net.error(f"a cover row uses only 0, 1 and -, not '{cube[bad]}'",
                            positions[0][0], positions[0][1] + bad)
    if out not in ("0", "1"):
        raise net.error(f"the output bit of a cover row is 0 or 1, not '{out}'", *out_pos)
    if value is None:
        cover[4] = out
    elif out != value:
        raise net.error(f"the cover of '{name}' mixes ON-set rows (output 1) and OFF-set rows "
                        f"(output 0)", *out_pos)
    rows.append(cube)
