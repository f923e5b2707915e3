"""Lookup-table rows: parse inline rows and rows files into key / value / care arrays.

A row `0110 -> 1*0` sets, for the input whose bits (first listed input first) read 0110, the
outputs 1, don't care, 0. Keys pack input bit i (the i-th listed input) at bit position i of a
uint64, so tables are at most 64 inputs wide. See sup-language.md, section Tables.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SupError

MAX_WIDTH = 64


@dataclass
class TableRows:
    """A table's parsed rows: sorted keys, output values and care bits per row, and the default row's."""
    keys: np.ndarray            # uint64 [R], sorted
    values: np.ndarray          # bool [R, N]
    care: np.ndarray            # bool [R, N]
    default_values: np.ndarray  # bool [N]
    default_care: np.ndarray    # bool [N]


def parse_output_bits(text: str, n_out: int, where) -> tuple[np.ndarray, np.ndarray]:
    """(values, care) of one row's output bits; `*` alone means all don't care."""
    if text == "*":
        return np.zeros(n_out, bool), np.zeros(n_out, bool)
    if len(text) != n_out:
        raise where(f"the row has {len(text)} output bits, the table has {n_out} outputs")
    chars = np.frombuffer(text.encode(), dtype=np.uint8)
    return chars == ord("1"), chars != ord("*")


def input_key(text: str, width: int, where) -> int:
    """The key of one row's input bits (the i-th listed input at bit i); `where` makes row errors."""
    if len(text) != width:
        raise where(f"the row has {len(text)} input bits, the table has {width} inputs")
    if "*" in text:
        raise where("input bits must be 0 or 1 ('*' is only allowed in outputs)")
    return int(text[::-1], 2) if text else 0


def build(rows, width: int, n_out: int, max_rows: int) -> TableRows:
    """Rows given as (inputs or None for default, outputs, line, column, error_factory)."""
    keys, values, care, lines = [], [], [], []
    default = None
    for inputs, outputs, line, column, where in rows:
        if inputs is None:
            if default is not None:
                raise where(f"a second default row (the first is at line {default[2]})")
            default = (*parse_output_bits(outputs, n_out, where), line)
            continue
        if len(keys) >= max_rows:
            raise where(f"more than {max_rows} rows (raise the limit with --max-elements)")
        keys.append(input_key(inputs, width, where))
        v, c = parse_output_bits(outputs, n_out, where)
        values.append(v)
        care.append(c)
        lines.append((line, column, where))
    key_arr = np.array(keys, dtype=np.uint64)
    order = np.argsort(key_arr, kind="stable")
    key_arr = key_arr[order]
    repeat = np.flatnonzero(key_arr[1:] == key_arr[:-1])
    if len(repeat):
        first, second = sorted((order[repeat[0]], order[repeat[0] + 1]))
        raise lines[second][2](f"two rows with the same input (the other is at line {lines[first][0]})")
    n = len(keys)
    val_arr = np.array(values, dtype=bool).reshape(n, n_out)[order]
    care_arr = np.array(care, dtype=bool).reshape(n, n_out)[order]
    if default is None:
        dv, dc = np.zeros(n_out, bool), np.ones(n_out, bool)
    else:
        dv, dc = default[0], default[1]
    return TableRows(key_arr, val_arr, care_arr, dv, dc)


def read_rows_file(path: Path, width: int, n_out: int, max_rows: int,
                   max_bytes: int) -> TableRows:
    """Rows from a file: `INPUTBITS OUTPUTBITS` per line, `default OUTPUTBITS`, # comments.

    A problem with the file as a whole (missing, not a regular file, too big, not UTF-8) is a
    SupError without file or position: the caller locates it at the file's name in the .sup
    text. A problem with a line is located in the rows file.
    """
    text = _read_text(path, max_bytes)

    def at(line: int, column: int):
        return lambda message: SupError(message, line, column, file=str(path), source=text)

    rows = []
    for number, raw in enumerate(text.splitlines(), start=1):
        body = raw.split("#", 1)[0]
        fields = body.split()
        if not fields:
            continue
        column = len(body) - len(body.lstrip()) + 1
        if len(fields) != 2:
            starts = [m.start() + 1 for m in re.finditer(r"\S+", body)]
            extra = starts[2] if len(fields) > 2 else column
            raise at(number, extra)(f"expected a row `INPUTBITS OUTPUTBITS` or `default OUTPUTBITS`, "
                                    f"found {len(fields)} field{'s' if len(fields) > 1 else ''}")
        first, second = fields
        second_col = body.index(second, column - 1 + len(first)) + 1
        if first != "default" and not set(first) <= set("01*"):
            raise at(number, column)(f"'{first}' is not a row of input bits")
        if not set(second) <= set("01*"):
            raise at(number, second_col)(f"'{second}' is not a row of output bits")
        inputs = None if first == "default" else first
        rows.append((inputs, second, number, column, at(number, column)))
    return build(rows, width, n_out, max_rows)


def _read_text(path: Path, max_bytes: int) -> str:
    """The UTF-8 text of a regular file of at most max_bytes bytes (never reads more)."""
    not_regular = SupError(f"cannot read rows file '{path}': it is not a regular file")
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):   # before open: a FIFO would block it
            raise not_regular
        with open(path, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise not_regular
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise SupError(f"cannot read rows file '{path}': {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise SupError(f"rows file '{path}' is more than {max_bytes} bytes, the limit for this "
                       "table (raise it with --max-elements)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SupError(f"cannot read rows file '{path}': not UTF-8 text (byte {exc.start + 1})") \
            from None
