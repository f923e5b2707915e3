"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a test module on one torch thread. Small CPU batches: on a busy machine, torch's
    thread pool makes each tiny op (e.g. repeat_interleave in the delta forward) wait for a
    scheduler slice, ~1000x slower. Use with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_local_proof(monkeypatch):
    """Switch off the local-enumeration fast path (verify/local_proof.py), so tests of the
    z3 encoding and the sweep exercise them. Use with
    `pytestmark = pytest.mark.usefixtures("no_local_proof")`."""
    import verify.local_proof
    monkeypatch.setattr(verify.local_proof, "ENABLED", False)
