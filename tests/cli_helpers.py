"""Helpers shared by the CLI test files: one torch thread per test module, and `run`."""

from __future__ import annotations

import pytest
import torch

from sup.cli import main


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a test module on one torch thread (the CLI tests are many small forwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(capsys, *argv):
    """(exit status, stdout, stderr) of `sup ARGV`."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
