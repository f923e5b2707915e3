"""Options of the superposed target."""

from __future__ import annotations

from dataclasses import dataclass, field

CONSTRUCTIONS = ("output-channels", "design", "input-channels")
DEFAULT_CHANNELS = (4, 6, 8, 12, 16)


@dataclass
class SuperposedOptions:
    """Options of the superposed target (the search, approximate mode, codes)."""
    construction: str = "output-channels"
    width: int | None = None          # fixed n (skip the search)
    channel: int | None = None        # fixed t
    channels: tuple = DEFAULT_CHANNELS
    seed: int = 0
    repair_rounds: int = 40
    max_error: float | None = None    # accept a measured error rate <= this (error_budget.py)
    multilevel: bool = True           # superpose gates over exact intermediate features (multilevel.py)
    input_code: int | None = None     # inputs arrive as a DIM-wide sign code (codes.py)
    output_code: int | None = None    # outputs leave as a DIM-wide sign code read by a fixed decoder
    code_seed: int = 0
    log: list = field(default_factory=list)
