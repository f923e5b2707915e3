"""Value types of the command line's numeric options: each one checks its range, so a bad value
is an `error:` and exit status 2 before any work starts (argparse turns the ArgumentTypeError
raised here into that message)."""

from __future__ import annotations

import argparse
import math
import re

MAX_BATCH = 1 << 24                 # inputs per exhaustive batch (memory grows with it)
MAX_SAMPLES = 1_000_000_000         # sampled inputs (beyond that: exhaustive, or shards)
MAX_SECONDS = 1_000_000.0           # a per-query time limit (z3 takes milliseconds as uint32)
MAX_COUNTEREXAMPLES = 1_000_000
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: '{text}'") from None


def int_range(low: int, high: int | None = None):
    """An argparse type: an integer in [low, high] (high None: no upper limit)."""
    def parse(text: str) -> int:
        value = _int(text)
        if value < low or (high is not None and value > high):
            span = f"at least {low:,}" if high is None else f"between {low:,} and {high:,}"
            raise argparse.ArgumentTypeError(f"must be an integer {span}, got {text}")
        return value
    parse.__name__ = "integer"
    return parse


positive_int = int_range(1)
nonnegative_int = int_range(0)
batch_size = int_range(1, MAX_BATCH)
sample_count = int_range(1, MAX_SAMPLES)
counterexample_count = int_range(0, MAX_COUNTEREXAMPLES)


def seconds(text: str) -> float:
    """An argparse type: a finite positive number of seconds, at most MAX_SECONDS."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: '{text}'") from None
    if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0 and at most "
                                         f"{MAX_SECONDS:,.0f}, got {text}")
    return value


def memory_size(text: str) -> int:
    """An argparse type: a memory size in bytes, written as 123456, 512M, 4G or 1.5T
    (binary units: K = 1,024 bytes); at least 1M."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT]?)(?:i?[bB])?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a memory size: '{text}' (write e.g. 512M, 4G)")
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not (math.isfinite(value) and value >= 1 << 20):
        raise argparse.ArgumentTypeError(f"must be at least 1M, got {text}")
    return int(min(value, 1 << 62))
