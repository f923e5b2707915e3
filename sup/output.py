"""How commands report: one JSON object with --json, readable text otherwise; exit codes."""

from __future__ import annotations

import json
import sys

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT, EXIT_UNDECIDED = 0, 1, 2, 3


class UsageError(Exception):
    """Bad command-line input that is not located in a file (exit status 2)."""


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
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
