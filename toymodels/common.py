"""What the toy models share: the input error, device choice, seeded generators, timing."""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

import torch


class ToyInputError(ValueError):
    """A bad option value for a toy model (the command line turns it into exit status 2)."""


def resolve_device(name: str = "auto") -> torch.device:
    """torch.device for 'cpu', 'cuda' or 'auto' (CUDA when available); ToyInputError when
    'cuda' is asked for and there is none."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ToyInputError("--device cuda: no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise ToyInputError(f"--device must be cpu, cuda or auto, not {name!r}")
    return torch.device(name)


def generator(seed: int, device: torch.device) -> torch.Generator:
    """A torch generator on `device` seeded with `seed` (every random draw goes through one)."""
    return torch.Generator(device=device).manual_seed(int(seed))


@contextmanager
def timed(record: dict, key: str):
    """Store the wall-clock seconds of the block in record[key]."""
    start = time.perf_counter()
    try:
        yield
    finally:
        record[key] = round(time.perf_counter() - start, 3)


def check_probability(p: float, name: str = "--p") -> float:
    """p as a float in (0, 1]; ToyInputError otherwise."""
    p = float(p)
    if not 0.0 < p <= 1.0:
        raise ToyInputError(f"{name} must be in (0, 1], got {p}")
    return p


def check_positive(value: int, name: str) -> int:
    """value as a positive int; ToyInputError otherwise."""
    if int(value) != value or value <= 0:
        raise ToyInputError(f"{name} must be a positive integer, got {value}")
    return int(value)


def seed_arg(text: str) -> int:
    """An argparse type for --seed: an integer from 0 to 2**63 - 1 (torch's seed range)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: '{text}'") from None
    if not 0 <= value < 1 << 63:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**63 - 1, got {text}")
    return value
