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
    v: object

    def full(self, length: int) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.v, dtype=np.int64), (length,))

    @property
    def is_scalar(self) -> bool:
        return np.ndim(self.v) == 0


@dataclass
class Rows:
    v: np.ndarray


@dataclass
class Array:
    v: np.ndarray


@dataclass
class Sigs:
    v: np.ndarray


@dataclass
class Cond:
    v: object

    def full(self, length: int) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.v, dtype=bool), (length,))


def kind_name(value) -> str:
    return {Ints: "an integer", Rows: "a tuple", Array: "a constant array", Sigs: "a signal",
            Cond: "a condition"}[type(value)]


@dataclass
class Context:
    """L combinations of loop variables: name -> int64 [L]."""
    length: int
    vars: dict = field(default_factory=dict)

    @staticmethod
    def single() -> "Context":
        return Context(1, {})

    def select(self, rows: np.ndarray) -> "Context":
        return Context(len(rows), {k: v[rows] for k, v in self.vars.items()})
