"""Options of the superposed target."""

from __future__ import annotations

from dataclasses import dataclass, field

CONSTRUCTIONS = ("output-channels", "design", "input-channels")
CODE_KINDS = ("rs", "auto")        # input_code / output_code given as a kind, not a width
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
    # inputs arrive in superposition: an int DIM is a DIM-wide random sign code (codes.py);
    # "rs" / "auto" a combinatorial Reed-Solomon code (rs_codes.py; auto: the narrowest)
    input_code: int | str | None = None
    output_code: int | str | None = None  # outputs leave in superposition, read by a fixed decoder
    code_seed: int = 0
    # bytes the exactness check of one assignment may take (None: a quarter of the memory)
    max_memory: int | None = None
    # where the bitset check of q = 1 outputs runs (bitcheck_torch.py): None = CUDA when torch
    # sees a GPU, else numpy on the CPU; "cpu", "cuda" or "cuda:N" to choose
    check_device: str | None = None
    # True: a width that cannot be honoured is an error (TargetUnavailable naming the smallest
    # exact width) instead of compiling those outputs densely, as the command line asks
    strict: bool = False
    log: list = field(default_factory=list)
