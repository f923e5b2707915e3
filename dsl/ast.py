"""Syntax tree of a .sup file: small immutable records, each with its source position.

`dsl/parser.py` builds these from the lark parse; `dsl/elaborate.py` turns them into the circuit
graph. Every node has `line` and `column` (1-based) of its first character so that every error
can point at the construct that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

MAX_NESTING = 256  # deepest expression accepted; deeper text is an error, not a crash
INT_LIMIT = 2 ** 62  # integers (literals and computed values) must stay below this magnitude


@dataclass(frozen=True)
class Node:
    """Base of every syntax-tree record: the 1-based `line` and `column` of its first character."""
    line: int
    column: int

    @property
    def depth(self) -> int:
        """Nesting depth of this node: 1 (the parser tracks real expression nesting itself)."""
        return 1


# ---------------------------------------------------------------- expressions

@dataclass(frozen=True)
class IntLit(Node):
    """An integer literal."""
    value: int


@dataclass(frozen=True)
class Name(Node):
    """A bare name: a signal, a constant or a loop variable."""
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
    """A comparison `left op right` of integer expressions (op '==', '!=', '<', '<=', '>', '>=')."""
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
    """A tuple `(a, b, ...)` in a constant definition."""
    items: tuple


@dataclass(frozen=True)
class ArrayLit(Node):
    """An array `[a, b, ...]` in a constant definition."""
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
    """The `for ... in ... if ...` tail of a statement or call: its generators and optional condition."""
    generators: tuple
    condition: Optional[Expr]


# ---------------------------------------------------------------- statements

@dataclass(frozen=True)
class CircuitStmt(Node):
    """`circuit NAME;`"""
    name: str


@dataclass(frozen=True)
class InputDecl(Node):
    """One declared input: `a` (dims ()) or `x[n, m]` (dims: the size expressions)."""
    name: str
    dims: tuple  # () for a scalar input, else the size expressions


@dataclass(frozen=True)
class InputStmt(Node):
    """`input a, x[4];`: one or more input declarations."""
    decls: tuple


@dataclass(frozen=True)
class SparsityStmt(Node):
    """`sparsity K;`: at most K input features are active."""
    value: Expr


@dataclass(frozen=True)
class ConstStmt(Node):
    """`const NAME = value;`: a compile-time integer, tuple or array."""
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
    """One inline table row `inputs -> outputs` (inputs None for the default row)."""
    inputs: Optional[str]  # None for the default row
    outputs: str


@dataclass(frozen=True)
class TableStmt(Node):
    """A lookup table: its name, input references, output family and rows (inline or from a file)."""
    name: str
    refs: tuple
    out_name: str
    out_size: Expr
    rows: tuple            # TableRow..., empty when the rows come from a file
    rows_file: Optional[str]


Statement = Union[CircuitStmt, InputStmt, SparsityStmt, ConstStmt, SignalStmt, TableStmt]


@dataclass
class Program:
    """A parsed .sup file: its statements in order, the file name and the source text."""
    statements: list = field(default_factory=list)
    file: Optional[str] = None
    source: str = ""
