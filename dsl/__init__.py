"""Front end of sup: the .sup language, its circuit graph and its reference semantics.

    from dsl import load
    circuit = load("examples/pairs_small.sup")       # parse + elaborate, SupError on bad input
    circuit.n_inputs, circuit.n_outputs, circuit.graph  # see dsl/nodes.py for the graph

Modules: parser (text -> syntax tree), elaborate (tree -> graph), nodes (the graph's
attributes and the Circuit object), semantics (reference evaluation), domain (the sparse
input domain), export (DOT / GraphML).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .elaborate import Limits, elaborate
from .errors import SupError
from .nodes import Circuit
from .parser import parse, parse_file


def load(path, limits: Optional[Limits] = None) -> Circuit:
    """Parse and elaborate a .sup file."""
    return elaborate(parse_file(path), limits)


def loads(source: str, file: Optional[str] = None, limits: Optional[Limits] = None,
          name: Optional[str] = None) -> Circuit:
    """Parse and elaborate .sup source text (`file` names it in error messages)."""
    return elaborate(parse(source, file), limits, name=name)


__all__ = ["Circuit", "Limits", "SupError", "load", "loads", "parse", "parse_file", "elaborate"]
