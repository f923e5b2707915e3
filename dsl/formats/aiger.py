"""AIGER readers: ASCII (`aag`) and binary (`aig`), combinational only.

Format: http://fmv.jku.at/aiger (FORMAT.txt of the AIGER distribution). Header
`aag|aig M I L O A`; then I input literals (ASCII only; binary inputs are implicitly 2, 4, ...),
L latches (rejected: only combinational circuits), O output literals, A AND gates (ASCII:
`lhs rhs0 rhs1`; binary: two LEB128-style deltas per gate, lhs = 2 (I + L + i + 1),
rhs0 = lhs - delta0, rhs1 = rhs0 - delta1), an optional symbol table (`i3 name`, `o0 name`)
and comments after a line `c`. AIGER 1.9 header extensions (B C J F) are accepted when zero.

Names: input k is its symbol, or `i[k]` without one; output k is its symbol or `o[k]`; then
the rule of dsl/formats/names.py (so an unnamed file has input family `i` and output family
`o`). Positions in errors are line and column; inside the binary AND section the column
counts bytes from the start of the line. Sizes in the header are checked against
`dsl.Limits` (and against the file's length) before anything is allocated.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..elaborate import Limits
from ..errors import SupError
from .netlist import AND, CONST0, INPUT, Netlist
from .names import sanitize

_UINT = re.compile(r"0|[1-9][0-9]*\Z")
EXTENSIONS = ("bad-state properties (B)", "invariant constraints (C)", "justice properties (J)",
              "fairness constraints (F)")


class _Lines:
    """Text lines of a (possibly binary) file with their 1-based numbers and byte offsets."""

    def __init__(self, data: bytes, file: str, source: str | None):
        self.data, self.file, self.source = data, file, source
        self.pos = 0          # byte offset of the next line
        self.line = 0         # number of the last line read

    def error(self, message: str, line: int, column: int, show: bool = True) -> SupError:
        return SupError(message, line, column, self.file, self.source if show else None)

    def next(self, what: str):
        """(text, line number) of the next line; a clear error at the end of the file."""
        if self.pos >= len(self.data):
            raise self.error(f"unexpected end of file: expected {what}", *self.end_position())
        end = self.data.find(b"\n", self.pos)
        end = len(self.data) if end < 0 else end
        text = self.data[self.pos:end].decode("latin-1")
        self.pos = end + 1
        self.line += 1
        return text.rstrip("\r"), self.line

    def end_position(self) -> tuple[int, int]:
        """(line, column) just after the last character of the last line."""
        if not self.data:
            return 1, 1
        end = len(self.data) - 1 if self.data.endswith(b"\n") else len(self.data)
        return self.position(end)

    def position(self, offset: int) -> tuple[int, int]:
        """(line, column) of a byte offset."""
        line = self.data.count(b"\n", 0, offset) + 1
        return line, offset - (self.data.rfind(b"\n", 0, offset) + 1) + 1


def _fields(text: str, line: int, lines: _Lines, count, what: str,
            first_column: int = 1) -> list[tuple[int, int]]:
    """The unsigned integers of a line as (value, column): `count` of them, or between
    count[0] and count[1] when count is a pair."""
    parts, column = [], first_column
    for token in text.split(" "):
        if token:
            parts.append((token, column))
        column += len(token) + 1
    if isinstance(count, tuple):
        count = min(max(len(parts), count[0]), count[1])
    if len(parts) != count:
        col = parts[count][1] if len(parts) > count else len(text) + first_column
        raise lines.error(f"{what} needs {count} number{'s' if count > 1 else ''}, this line has "
                          f"{len(parts)}", line, col)
    out = []
    for token, col in parts:
        if not _UINT.match(token):
            raise lines.error(f"expected an unsigned integer in {what}, not '{token}'", line, col)
        out.append((int(token), col))
    return out


def read_aiger(path, limits: Limits | None = None, data: bytes | None = None):
    """Read an .aag or .aig file into a Circuit (SupError on any problem)."""
    path = Path(path)
    file = str(path)
    if data is None:
        data = _read_bytes(path, file)
    limits = limits or Limits()
    lines = _Lines(data, file, data.decode("latin-1"))
    header, line = lines.next("the header 'aag M I L O A' or 'aig M I L O A'")
    kind = header.split(" ", 1)[0]
    if kind not in ("aag", "aig"):
        raise lines.error(f"bad header: an AIGER file starts with 'aag' (ASCII) or 'aig' "
                          f"(binary), not '{header[:20]}'", line, 1)
    values = _fields(header[4:], line, lines, (5, 9), "the header 'M I L O A'", first_column=5)
    for (value, col), what in zip(values[5:], EXTENSIONS):     # AIGER 1.9: B C J F
        if value:
            raise lines.error(f"{what} are not supported (only combinational circuits)",
                              line, col)
    (m, _), (i, i_col), (l, l_col), (o, o_col), (a, a_col) = values[:5]
    if l:
        raise lines.error(f"latches are not supported: this file has {l} (L = {l}); only "
                          f"combinational AIGER files can be read", line, l_col)
    for count, col, what, limit in ((i, i_col, "inputs", limits.max_inputs),
                                    (o, o_col, "outputs", limits.max_elements),
                                    (a, a_col, "AND gates", limits.max_elements)):
        if count > limit:
            raise lines.error(f"the header declares {count} {what}, more than the limit of "
                              f"{limit} (raise it with --max-elements)", line, col)
    if m < i + l + a:
        raise lines.error(f"wrong counts in the header: M = {m} is less than I + L + A = "
                          f"{i + l + a}", line, 5)
    if kind == "aig" and m != i + l + a:
        raise lines.error(f"wrong counts in the header: a binary file needs M = I + L + A, but "
                          f"M = {m} and I + L + A = {i + l + a}", line, 5)
    net = Netlist(file, lines.source, limits, noun="literal")
    # the minimum bytes each section needs: refuse a header the file cannot hold
    rest = len(data) - lines.pos
    need = (0 if kind == "aig" else 2 * i) + 2 * o + 2 * a - 1   # every line or number
    if need > rest:                                                # takes 2 bytes or more
        lines.pos = len(data)
        raise lines.error(f"truncated file: the header declares {_plural(i, 'input')}, "
                          f"{_plural(o, 'output')} and {_plural(a, 'AND gate')}, which need "
                          f"at least {need} more bytes, but the file has {rest}", line, a_col)
    net.define("0", CONST0, (0, 0))
    if kind == "aag":
        for k in range(i):
            text, ln = lines.next(f"input {k} of {i}")
            (lit, col), = _fields(text, ln, lines, 1, "an input line")
            _check_literal(lines, lit, m, ln, col)
            if lit < 2 or lit % 2:
                raise lines.error(f"an input must be a positive even literal, not {lit}", ln, col)
            net.define(str(lit), INPUT, (ln, col))
    else:
        for k in range(i):
            net.define(str(2 * (k + 1)), INPUT, (line, i_col))
    outputs = []
    for k in range(o):
        text, ln = lines.next(f"output {k} of {o}")
        (lit, col), = _fields(text, ln, lines, 1, "an output line")
        _check_literal(lines, lit, m, ln, col)
        outputs.append((net.net(str(lit & ~1), (ln, col)), bool(lit & 1), (ln, col)))
    if kind == "aag":
        for k in range(a):
            text, ln = lines.next(f"AND gate {k} of {a}")
            (lhs, c0), (r0, c1), (r1, c2) = _fields(text, ln, lines, 3, "an AND gate line")
            for lit, col in ((lhs, c0), (r0, c1), (r1, c2)):
                _check_literal(lines, lit, m, ln, col)
            if lhs < 2 or lhs % 2:
                raise lines.error(f"the left-hand side of an AND gate must be a positive even "
                                  f"literal, not {lhs}", ln, c0)
            _and(net, lhs, (r0, r1), (ln, c0), ((ln, c1), (ln, c2)))
    else:
        _binary_ands(net, lines, i, l, a)
    names_in, names_out = _symbols(lines, i, o)
    for k, input_net in enumerate(net.inputs):
        # the net keeps its literal as key in `ids` (messages about ANDs name literals);
        # its name becomes the input's symbol
        net.names[input_net] = names_in.get(k, f"i[{k}]")
    for k, (out, negated, pos) in enumerate(outputs):
        net.add_output(out, pos, negated=negated, out_name=names_out.get(k, f"o[{k}]"))
    name = sanitize(path.stem)

    def undefined(lit_name):
        return (f"literal {lit_name} is undefined: variable {int(lit_name) // 2} is not an input "
                f"or the left-hand side of an AND gate")
    return net.build(name, undefined)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _read_bytes(path: Path, file: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SupError(f"cannot read the file: {exc.strerror}", 0, 0, file) from None


def _check_literal(lines, lit: int, m: int, line: int, col: int) -> None:
    if lit > 2 * m + 1:
        raise lines.error(f"literal {lit} is out of range: the header's M = {m} allows literals "
                          f"up to {2 * m + 1}", line, col)


def _and(net: Netlist, lhs: int, rhs, pos, rhs_pos) -> None:
    fanin = tuple(net.net(str(r & ~1), p) for r, p in zip(rhs, rhs_pos))
    net.define(str(lhs), AND, pos, fanin, (bool(rhs[0] & 1), bool(rhs[1] & 1)))


def _binary_ands(net: Netlist, lines: _Lines, i: int, l: int, a: int) -> None:
    """Decode the 2A variable-length deltas of the binary AND section, vectorized."""
    start = lines.pos
    data = np.frombuffer(lines.data, dtype=np.uint8, offset=start) if start < len(lines.data) \
        else np.zeros(0, np.uint8)
    if a == 0:
        return
    ends = np.flatnonzero(data < 0x80)
    if len(ends) < 2 * a:
        got = len(ends)
        lines.pos = len(lines.data)
        line, col = lines.position(len(lines.data))
        raise lines.error(f"truncated file: the binary AND section needs {2 * a} numbers "
                          f"(2 per AND gate), the file ends after {got}", line, col, show=False)
    ends = ends[:2 * a]
    stop = int(ends[-1]) + 1
    body = data[:stop]
    group = np.zeros(stop, dtype=np.int64)
    group[1:] = np.cumsum(body[:-1] < 0x80)
    firsts = np.concatenate([[0], ends[:-1] + 1])
    shift = np.arange(stop, dtype=np.int64) - firsts[group]
    if shift.max(initial=0) > 4:
        bad = int(firsts[group[np.argmax(shift > 4)]])
        raise lines.error("bad binary AND section: a number takes more than 5 bytes",
                          *lines.position(start + bad), show=False)
    values = np.zeros(2 * a, dtype=np.int64)
    np.add.at(values, group, (body & 0x7F).astype(np.int64) << (7 * shift))
    delta0, delta1 = values[0::2], values[1::2]
    lhs = 2 * (i + l + 1 + np.arange(a, dtype=np.int64))
    rhs0 = lhs - delta0
    rhs1 = rhs0 - delta1
    bad = np.flatnonzero((delta0 == 0) | (rhs1 < 0))
    if len(bad):
        k = int(bad[0])
        at = start + int(firsts[2 * k] if delta0[k] == 0 else firsts[2 * k + 1])
        what = ("its first delta is 0 (the right-hand side must be below the left-hand side)"
                if delta0[k] == 0 else f"its right-hand side {int(rhs0[k])} - {int(delta1[k])} "
                "is negative")
        raise lines.error(f"bad binary AND gate {k} (literal {int(lhs[k])}): {what}",
                          *lines.position(at), show=False)
    # binary ANDs are ordered (rhs < lhs), so no literal is undefined and there is no cycle:
    # one position (the section's start) serves every gate
    pos = lines.position(start)
    for g, r0, r1 in zip(lhs.tolist(), rhs0.tolist(), rhs1.tolist()):
        net.define(str(g), AND, pos, (net.net(str(r0 & ~1), pos), net.net(str(r1 & ~1), pos)),
                   (bool(r0 & 1), bool(r1 & 1)))
    lines.pos = start + stop          # the symbol table starts right after the last byte
    lines.line = lines.data.count(b"\n", 0, lines.pos)


def _symbols(lines: _Lines, i: int, o: int) -> tuple[dict, dict]:
    """The symbol table (inputs and outputs; latch symbols cannot occur), up to a `c` line."""
    names_in, names_out = {}, {}
    while lines.pos < len(lines.data):
        text, ln = lines.next("a symbol")
        if text == "c":
            break
        if not text:
            continue
        kind = text[0]
        match = re.match(r"([ilo])(0|[1-9][0-9]*) (.+)\Z", text)
        if kind not in "ilo" or match is None:
            raise lines.error("bad symbol table entry: expected 'i<k> NAME', 'o<k> NAME' or a "
                              "comment section starting with a line 'c'", ln, 1)
        pos, name = int(match.group(2)), match.group(3)
        table, count = (names_in, i) if kind == "i" else (names_out, o) if kind == "o" else ({}, 0)
        if pos >= count:
            what = {"i": "inputs", "o": "outputs", "l": "latches"}[kind]
            raise lines.error(f"symbol {kind}{pos} is out of range: the file has {count} {what}",
                              ln, 2)
        if pos in table:
            raise lines.error(f"symbol {kind}{pos} is given twice", ln, 1)
        table[pos] = name
    return names_in, names_out
