"""Syntax tree of a .sup file: small immutable records, each with its source position.

`dsl/parser.py` builds these from the lark parse; `dsl/elaborate.py` turns them into the circuit
graph. Every node has `line` and `column` (1-based) of its first character so that every error
can point at the construct that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

MAX_NESTING = 256  # deepest expression accepted; deeper text is an error, not a crash


@dataclass(frozen=True)
class Node:
    line: int
    column: int

    @property
    def depth(self) -> int:
        return 1


# ---------------------------------------------------------------- expressions

@dataclass(frozen=True)
class IntLit(Node):
    value: int


@dataclass(frozen=True)
class Name(Node):
    name: str


@dataclass(frozen=True)
class Index(Node):
    """`base[i, j]`: a signal of a family, or an element of a constant array."""
    base: "Expr"
    indices: tuple


@dataclass(frozen=True)
class Unary(Node):
    """`!e` / `~e` (op '!'), `-e` / `+e` (op '-' / '+'), `not c` (op 'not')."""
    op: str
    operand: "Expr"


@dataclass(frozen=True)
class Chain(Node):
    """A flat chain of one associative boolean operator: `a & b & c`, `a or b`.

    op is one of '&', '|', '^', 'and', 'or'.
    """
    op: str
    operands: tuple


@dataclass(frozen=True)
class Arith(Node):
    """Integer arithmetic, left-associative: operands[0] ops[0] operands[1] ops[1] ..."""
    operands: tuple
    ops: tuple


@dataclass(frozen=True)
class Compare(Node):
    op: str
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class Call(Node):
    """`f(a, b, c for i in ...)`: positional args, an optional generator on the last one, kwargs."""
    func: str
    args: tuple
    generator: Optional["ForClause"]
    kwargs: tuple  # ((name, Expr, Node-for-position), ...)


@dataclass(frozen=True)
class TupleLit(Node):
    items: tuple


@dataclass(frozen=True)
class ArrayLit(Node):
    items: tuple


Expr = Union[IntLit, Name, Index, Unary, Chain, Arith, Compare, Call, TupleLit, ArrayLit]


# ---------------------------------------------------------------- generators

@dataclass(frozen=True)
class Generator(Node):
    """`for i in A..B` (stop set) or `for v in L` / `for (u, v) in P` (stop None)."""
    names: tuple
    start: Expr
    stop: Optional[Expr]


@dataclass(frozen=True)
class ForClause(Node):
    generators: tuple
    condition: Optional[Expr]


# ---------------------------------------------------------------- statements

@dataclass(frozen=True)
class CircuitStmt(Node):
    name: str


@dataclass(frozen=True)
class InputDecl(Node):
    name: str
    dims: tuple  # () for a scalar input, else the size expressions


@dataclass(frozen=True)
class InputStmt(Node):
    decls: tuple


@dataclass(frozen=True)
class SparsityStmt(Node):
    value: Expr


@dataclass(frozen=True)
class ConstStmt(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class SignalStmt(Node):
    """`wire t = e;`, `output y[i, j] = e for ...;` (kind 'wire' or 'output')."""
    kind: str
    name: str
    indices: Optional[tuple]  # None for a scalar
    value: Expr
    clause: Optional[ForClause]


@dataclass(frozen=True)
class TableRef(Node):
    """A table input: `a` (start None), `x[i]` (stop None) or the slice `x[a..b]`."""
    name: str
    start: Optional[Expr]
    stop: Optional[Expr]


@dataclass(frozen=True)
class TableRow(Node):
    inputs: Optional[str]  # None for the default row
    outputs: str


@dataclass(frozen=True)
class TableStmt(Node):
    name: str
    refs: tuple
    out_name: str
    out_size: Expr
    rows: tuple            # TableRow..., empty when the rows come from a file
    rows_file: Optional[str]


Statement = Union[CircuitStmt, InputStmt, SparsityStmt, ConstStmt, SignalStmt, TableStmt]


@dataclass
class Program:
    statements: list = field(default_factory=list)
    file: Optional[str] = None
    source: str = ""
