"""Helpers shared by the CLI test files: `run` (the one-thread fixture is in conftest.py)."""

from __future__ import annotations

from sup.cli import main


def run(capsys, *argv):
    """(exit status, stdout, stderr) of `sup ARGV`, run in-process (argparse's own errors,
    raised as SystemExit, become the status)."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err
