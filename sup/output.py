"""How commands report: one JSON object with --json, readable text otherwise; exit codes."""

from __future__ import annotations

import json
import sys

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT, EXIT_UNDECIDED = 0, 1, 2, 3


class UsageError(Exception):
    """Bad command-line input that is not located in a file (exit status 2)."""


# With --json, an error is also the JSON object {"error", "file", "line", "column"} on standard
# output (the CLI contract: every --json run prints exactly one JSON object), so scripts never
# parse standard error. A switch only so a caller embedding the CLI can turn it off.
JSON_ERRORS = True


def report_error(want_json: bool, text: str, message: str, file: str | None = None,
                 line: int | None = None, column: int | None = None) -> int:
    """Report bad input: `text` (the `error:` lines for people) on standard error and, when
    --json was given (and JSON_ERRORS is on, the default), the error object `{"error", "file", "line",
    "column"}` (unknown parts null) as the one JSON object on standard output. Returns
    EXIT_BAD_INPUT."""
    print(text, file=sys.stderr)
    if want_json and JSON_ERRORS:
        json.dump({"error": message, "file": file, "line": line or None,
                   "column": column or None}, sys.stdout)
        sys.stdout.write("\n")
    return EXIT_BAD_INPUT


def emit(args, data: dict, text: str) -> None:
    """Print data as JSON when --json was given, else the human text."""
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, default=_json_default)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def table(rows: list[tuple[str, object]]) -> str:
    """Two aligned text columns: each (name, value) row on one line."""
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{k:<{width}}  {number(v)}" for k, v in rows)


def number(value) -> str:
    """An integer with thousands separators (1,234,567); anything else as str()."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
