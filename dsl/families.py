"""Named families of signals (inputs, wires, outputs) and fast lookup of members by index.

`x[i, j]` in an expression is resolved for every row of a context at once: `Family.locate`
maps an int64 [L, d] array of index tuples to member positions with one sorted search.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .nodes import member_name


@dataclass
class Family:
    """kind: 'input', 'wire' or 'output'; index int64 [n, d]; drivers int64 [n] signal ids.

    Inputs declared as a box (`x[16]`, `g[3, 4]`) keep `shape` and are located arithmetically;
    other families keep a sorted key of their index tuples.
    """
    kind: str
    name: str
    index: np.ndarray
    drivers: np.ndarray
    shape: Optional[tuple] = None
    line: int = 0
    _keys: Optional[tuple] = field(default=None, repr=False)

    @property
    def dims(self) -> int:
        """Number of indices per member (0 for a scalar)."""
        return self.index.shape[1]

    @property
    def count(self) -> int:
        """Number of members."""
        return len(self.drivers)

    def locate(self, idx: np.ndarray) -> np.ndarray:
        """Member position of each index tuple in idx (int64 [L, d]); -1 where undefined."""
        if self.dims == 0:
            return np.zeros(len(idx), dtype=np.int64)
        if self.shape is not None:
            shape = np.asarray(self.shape, dtype=np.int64)
            inside = ((idx >= 0) & (idx < shape)).all(axis=1)
            flat = np.zeros(len(idx), dtype=np.int64)
            for d in range(len(shape)):
                flat = flat * shape[d] + np.where(inside, idx[:, d], 0)
            return np.where(inside, flat, -1)
        values, keys, order = self._key_table()
        codes, inside = [], np.ones(len(idx), dtype=bool)
        for d, uniq in enumerate(values):
            code = np.minimum(np.searchsorted(uniq, idx[:, d]), len(uniq) - 1)
            inside &= uniq[code] == idx[:, d]
            codes.append(code)
        query = self._encode(codes, values)
        pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        found = inside & (keys[pos] == query)
        return np.where(found, order[pos], -1)

    def _key_table(self):
        """Per-dimension sorted index values, and the sorted mixed-radix keys of the members."""
        if self._keys is None:
            values, codes = [], []
            for d in range(self.dims):
                uniq, code = np.unique(self.index[:, d], return_inverse=True)
                values.append(uniq)
                codes.append(code.reshape(-1))
            if np.prod([float(len(v)) for v in values]) > 2.0 ** 62:
                raise OverflowError("index space too large")
            keys = self._encode(codes, values)
            order = np.argsort(keys, kind="stable")
            self._keys = (values, keys[order], order)
        return self._keys

    @staticmethod
    def _encode(codes, values) -> np.ndarray:
        key = np.zeros(len(codes[0]) if codes else 1, dtype=np.int64)
        for code, uniq in zip(codes, values):
            key = key * len(uniq) + code
        return key

    def duplicate(self) -> Optional[int]:
        """Position of a member whose index tuple repeats an earlier one, or None."""
        if self.count < 2:
            return None
        _, keys, order = self._key_table()
        same = np.flatnonzero(keys[1:] == keys[:-1])
        if len(same) == 0:
            return None
        return int(max(order[same[0]], order[same[0] + 1]))

    def member(self, position: int) -> str:
        """The display name (`x[2,3]`) of the member at `position`."""
        return member_name(self.name, self.index[position])
