"""bench/bench_device.py: every bench script's `--device cpu|cuda` (default cpu; cuda refused
with a clear message where no CUDA device is available)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from bench_device import add_device_argument, chosen_device, timed  # noqa: E402


def _parse(*argv):
    parser = argparse.ArgumentParser()
    add_device_argument(parser)
    return parser.parse_args(list(argv))


def test_default_cpu_and_timed():
    assert chosen_device(_parse()) == "cpu"
    value, seconds = timed("cpu", lambda: torch.ones(3).sum())
    assert float(value) == 3.0 and seconds >= 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is available")
def test_cuda_refused_clearly():
    with pytest.raises(SystemExit, match="no CUDA device is available"):
        chosen_device(_parse("--device", "cuda"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is available")
def test_every_script_takes_device():
    """Each bench script refuses --device cuda here before doing any work. Not listed: the
    scripts that run no torch module (abc_cec, sup_blif: ABC and BLIF files; make_multiplier:
    writes a .sup file; machine: a library) and module_speed (its own --device choice)."""
    scripts = ("bitcheck_speed", "code_permutation", "conditional_tables", "dense_compile", "exhaustive_blocks",
               "formats_bench", "frontend", "ray_workers", "rs_codes", "rs_gates",
               "smt_circuits", "superposed_scaling", "synthesis_bench", "verify_bench")
    for name in scripts:
        text = (BENCH / f"{name}.py").read_text()
        assert "add_device_argument(" in text and 'device="cpu"' not in text, name
    done = subprocess.run([sys.executable, str(BENCH / "conditional_tables.py"), "--device",
                           "cuda"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "no CUDA device is available" in done.stderr
