"""Standard circuit formats: readers into the circuit graph, and a writer to .sup text.

    from dsl import formats
    circuit = formats.load("c432.bench")             # .aag, .aig, .bench, .blif (or .sup)
    text = formats.to_sup(circuit)                   # readable .sup that parses back to it

Readers (`aiger.py`, `bench.py`, `blif.py`) fill a `netlist.Netlist`, which checks it (undefined
nets, cycles, sizes against `dsl.Limits`) and builds the same `Circuit` the elaborator builds:
inputs as INPUT families, gates through `GateBuilder.make` level by level (folded and shared),
outputs as OUTPUT families. Input and output names follow dsl/formats/names.py. Every problem
with a file is a `dsl.SupError` located at FILE:LINE:COL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..elaborate import Limits, elaborate
from ..parser import parse_file
from .aiger import read_aiger
from .bench import read_bench
from .blif import read_blif
from .to_sup import to_sup

READERS = {".aag": read_aiger, ".aig": read_aiger, ".bench": read_bench, ".blif": read_blif}
EXTENSIONS = tuple(READERS)


def is_format(path) -> bool:
    """True when `path` has the extension of a standard format this package reads."""
    return Path(str(path)).suffix.lower() in READERS


def load(path, limits: Optional[Limits] = None):
    """Read a circuit file chosen by its extension: a standard format, or a .sup file."""
    suffix = Path(str(path)).suffix.lower()
    if suffix in READERS:
        return READERS[suffix](path, limits)
    return elaborate(parse_file(path), limits)     # what dsl.load does


__all__ = ["EXTENSIONS", "READERS", "is_format", "load", "read_aiger", "read_bench", "read_blif",
           "to_sup"]
