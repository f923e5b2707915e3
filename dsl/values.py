"""Values that expressions take during elaboration, each vectorized over a context.

Elaboration evaluates an expression once for all L combinations of its loop variables (a
*context*), so every value is an array over those L rows:

* `Ints`  integers (index arithmetic); `v` is an int64 array [L] or a numpy scalar
* `Rows`  tuples from a constant array of tuples, int64 [L, w] (`T[n]` before `[1]`)
* `Array` a whole constant array (int64 [n] or [n, w]); never per row
* `Sigs`  signal ids, int64 [L] (see dsl/nodes.py for ids)
* `Cond`  compile-time truth values, bool [L] (comparisons, and/or/not)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Ints:
    """Integers: int64 [L] or a scalar (module docstring)."""
    v: object

    def full(self, length: int) -> np.ndarray:
        """The values as int64 [length] (a scalar broadcast)."""
        return np.broadcast_to(np.asarray(self.v, dtype=np.int64), (length,))

    @property
    def is_scalar(self) -> bool:
        """Whether the value is one scalar for every row."""
        return np.ndim(self.v) == 0


@dataclass
class Rows:
    """Tuples from a constant array of tuples: int64 [L, w]."""
    v: np.ndarray


@dataclass
class Array:
    """A whole constant array (int64 [n] or [n, w]), not per row."""
    v: np.ndarray


@dataclass
class Sigs:
    """Signal ids, int64 [L]."""
    v: np.ndarray


@dataclass
class Cond:
    """Compile-time truth values: bool [L] or a scalar."""
    v: object

    def full(self, length: int) -> np.ndarray:
        """The values as bool [length] (a scalar broadcast)."""
        return np.broadcast_to(np.asarray(self.v, dtype=bool), (length,))


def kind_name(value) -> str:
    """How error messages name the kind of `value` ('an integer', 'a signal', ...)."""
    return {Ints: "an integer", Rows: "a tuple", Array: "a constant array", Sigs: "a signal",
            Cond: "a condition"}[type(value)]


@dataclass
class Context:
    """L combinations of loop variables: name -> int64 [L]."""
    length: int
    vars: dict = field(default_factory=dict)

    @staticmethod
    def single() -> "Context":
        """The context of no loop variables: one row."""
        return Context(1, {})

    def select(self, rows: np.ndarray) -> "Context":
        """The context of the rows `rows` of this one."""
        return Context(len(rows), {k: v[rows] for k, v in self.vars.items()})
