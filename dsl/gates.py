"""Build gate families with constant folding, simplification and sharing, all vectorized.

`GateBuilder.make(op, offsets, operands, k)` takes n gates of one operator (operands in CSR
form, see dsl/csr.py) and returns the n signal ids that compute them. On the way it:

* folds constants (x & 0 = 0, x & 1 = x, atleast(k, 1, ...) = atleast(k - 1, ...), ...),
* simplifies (x & x = x, x ^ x = 0, !!x = x, x & !x = 0, atleast(n of n) = and, ite with a
  constant branch = and/or, one-operand gates = the operand, its negation or a constant),
* shares: a gate with the same op, k and operands as an existing one returns the existing id
  (hash-consing on a 64-bit hash of the canonical row, with every hit checked for equality).

New gates are added to the graph as one GATE node per call and operator (see dsl/nodes.py).
"""

from __future__ import annotations

import numpy as np
import networkx as nx

from . import csr
from .nodes import (COLUMN, COUNT, FIRST, GATE, KIND, LABEL, LINE, OFFSETS, OP, OPERANDS, REFS,
                    THRESHOLD_OPS, K)

OP_CODES = {op: i + 1 for i, op in enumerate(("not", "and", "or", "xor", "atleast", "atmost",
                                              "exactly", "ite"))}
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a well-spread 64-bit hash of each uint64."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class _HashIndex:
    """Sorted hash -> id index: one big sorted run plus a small recent run, merged when large."""

    def __init__(self):
        self.keys = np.zeros(0, np.uint64)
        self.ids = np.zeros(0, np.int64)
        self.recent_keys = np.zeros(0, np.uint64)
        self.recent_ids = np.zeros(0, np.int64)

    @staticmethod
    def _find(keys, ids, query):
        pos = np.searchsorted(keys, query)
        pos = np.minimum(pos, max(len(keys) - 1, 0))
        found = np.full(len(query), -1, dtype=np.int64)
        if len(keys):
            hit = keys[pos] == query
            found[hit] = ids[pos[hit]]
        return found

    def lookup(self, query: np.ndarray) -> np.ndarray:
        found = self._find(self.keys, self.ids, query)
        missing = found < 0
        if missing.any() and len(self.recent_keys):
            found[missing] = self._find(self.recent_keys, self.recent_ids, query[missing])
        return found

    def all_ids(self, key) -> list:
        """Every id stored under one key (several only after a hash collision)."""
        out = []
        for keys, ids in ((self.keys, self.ids), (self.recent_keys, self.recent_ids)):
            lo = np.searchsorted(keys, key, side="left")
            hi = np.searchsorted(keys, key, side="right")
            out.extend(ids[lo:hi].tolist())
        return out

    def insert(self, keys: np.ndarray, ids: np.ndarray) -> None:
        rk = np.concatenate([self.recent_keys, keys])
        ri = np.concatenate([self.recent_ids, ids])
        order = np.argsort(rk, kind="stable")
        self.recent_keys, self.recent_ids = rk[order], ri[order]
        if len(self.recent_keys) > max(4096, len(self.keys) // 8):
            allk = np.concatenate([self.keys, self.recent_keys])
            alli = np.concatenate([self.ids, self.recent_ids])
            order = np.argsort(allk, kind="stable")
            self.keys, self.ids = allk[order], alli[order]
            self.recent_keys = np.zeros(0, np.uint64)
            self.recent_ids = np.zeros(0, np.int64)


class GateBuilder:
    """Creates gates in `graph`, allocating signal ids from `next_id`."""

    def __init__(self, graph: nx.DiGraph, const0: int, signal_nodes: list, node_firsts: list):
        self.graph = graph
        self.const0, self.const1 = const0, const0 + 1
        self.next_id = const0 + 2
        self.signal_nodes = signal_nodes      # shared with the elaborator: keys in id order
        self.node_firsts = node_firsts        # first id of each of those nodes
        self._negation = np.full(1024, -1, dtype=np.int64)  # id -> operand if id is a NOT gate
        self._index = _HashIndex()
        self._seq = 0
        self.pos = (0, 0)

    # ------------------------------------------------------------------ public

    def make(self, op: str, offsets, operands, k=None) -> np.ndarray:
        """Signal ids of n gates `op` over CSR operands (k: int array for threshold ops)."""
        offsets = np.asarray(offsets, dtype=np.int64)
        operands = np.asarray(operands, dtype=np.int64)
        n = len(offsets) - 1
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        if op == "not":
            return self._not(operands)
        if op in ("and", "or"):
            return self._and_or(op, offsets, operands)
        if op == "xor":
            return self._xor(offsets, operands)
        if op in THRESHOLD_OPS:
            return self._threshold(op, offsets, operands, np.broadcast_to(
                np.asarray(k, dtype=np.int64), (n,)).copy())
        if op == "ite":
            return self._ite(operands.reshape(n, 3))
        raise ValueError(f"unknown op {op}")

    def negate(self, ids: np.ndarray) -> np.ndarray:
        """Signal ids of NOT of each id in `ids` (constants folded)."""
        return self._not(np.asarray(ids, dtype=np.int64))

    def constant(self, values) -> np.ndarray:
        """The constant signal ids (0 or 1) of the truth values `values`."""
        return np.where(np.asarray(values, dtype=bool), self.const1, self.const0).astype(np.int64)

    # ------------------------------------------------------------------ ops

    def _not(self, x: np.ndarray) -> np.ndarray:
        result = np.full(len(x), -1, dtype=np.int64)
        result[x == self.const0] = self.const1
        result[x == self.const1] = self.const0
        inner = self._negation_of(x)
        fold = (result < 0) & (inner >= 0)
        result[fold] = inner[fold]
        todo = np.flatnonzero(result < 0)
        if len(todo):
            ids = self._intern("not", csr.uniform(len(todo), 1), x[todo], None)
            result[todo] = ids
        return result

    def _and_or(self, op: str, offsets, operands) -> np.ndarray:
        absorbing, neutral = (self.const0, self.const1) if op == "and" else (self.const1, self.const0)
        n = len(offsets) - 1
        result = np.full(n, -1, dtype=np.int64)
        result[csr.row_any(offsets, operands == absorbing)] = absorbing
        offsets, operands = csr.filter_values(offsets, operands, operands != neutral)
        operands = csr.sort_within_rows(offsets, operands)
        offsets, operands = csr.filter_values(offsets, operands, csr.first_of_run(offsets, operands))
        # x op !x: absorbing
        neg = self._negation_of(operands)
        if (neg >= 0).any():
            rows = csr.row_of_each(offsets)
            width = np.int64(self.next_id + 1)
            present = rows * width + operands
            wanted = rows[neg >= 0] * width + neg[neg >= 0]
            result[rows[neg >= 0][np.isin(wanted, present)]] = absorbing
        lens = csr.lengths(offsets)
        open_ = result < 0
        result[open_ & (lens == 0)] = neutral
        single = open_ & (lens == 1)
        result[single] = operands[offsets[:-1][single]]
        return self._finish(op, offsets, operands, None, result)

    def _xor(self, offsets, operands) -> np.ndarray:
        flip = csr.row_sum(offsets, (operands == self.const1).astype(np.int64)) % 2 == 1
        offsets, operands = csr.filter_values(
            offsets, operands, (operands != self.const0) & (operands != self.const1))
        operands = csr.sort_within_rows(offsets, operands)
        # keep one copy of each operand that occurs an odd number of times in its row
        first = csr.first_of_run(offsets, operands)
        run_id = np.cumsum(first) - 1
        run_len = np.bincount(run_id, minlength=run_id[-1] + 1 if len(run_id) else 0)
        keep = first & (run_len[run_id] % 2 == 1)
        offsets, operands = csr.filter_values(offsets, operands, keep)
        lens = csr.lengths(offsets)
        result = np.full(len(lens), -1, dtype=np.int64)
        result[lens == 0] = self.const0
        single = lens == 1
        result[single] = operands[offsets[:-1][single]]
        result = self._finish("xor", offsets, operands, None, result)
        if flip.any():
            result[flip] = self._not(result[flip])
        return result

    def _threshold(self, op: str, offsets, operands, k) -> np.ndarray:
        k = k - csr.row_sum(offsets, (operands == self.const1).astype(np.int64))
        offsets, operands = csr.filter_values(
            offsets, operands, (operands != self.const0) & (operands != self.const1))
        operands = csr.sort_within_rows(offsets, operands)
        n_ops = csr.lengths(offsets)
        result = np.full(len(k), -1, dtype=np.int64)
        always = _threshold_constant(op, k, n_ops)  # constant whatever the operands are
        result[always == 1] = self.const1
        result[always == 0] = self.const0
        # all operands needed: and; any one suffices: or (operands are a multiset, so a
        # repeated operand is still one distinct signal for and/or)
        open_ = result < 0
        as_and = open_ & (k == n_ops) & (op != "atmost")
        as_or = open_ & (k == 1) & (op == "atleast")
        for form, rows in (("and", as_and), ("or", as_or & ~as_and)):
            if rows.any():
                sub_off, sub_ops = csr.gather_rows(offsets, operands, np.flatnonzero(rows))
                result[rows] = self._and_or(form, sub_off, sub_ops)
        # one distinct operand s (count 0 or n): the gate is s, !s or constant (handled above)
        open_ = result < 0
        distinct = csr.row_sum(offsets, csr.first_of_run(offsets, operands).astype(np.int64))
        one = np.flatnonzero(open_ & (distinct == 1))
        if len(one):
            s = operands[offsets[one]]
            when_zero = _threshold_holds(op, 0, k[one])
            when_all = _threshold_holds(op, n_ops[one], k[one])
            result[one[~when_zero & when_all]] = s[~when_zero & when_all]
            neg = when_zero & ~when_all
            if neg.any():
                result[one[neg]] = self._not(s[neg])
            same = when_zero == when_all
            result[one[same]] = np.where(when_zero[same], self.const1, self.const0)
        return self._finish(op, offsets, operands, k, result)

    def _ite(self, cte: np.ndarray) -> np.ndarray:
        c, t, e = cte[:, 0], cte[:, 1], cte[:, 2]
        result = np.full(len(c), -1, dtype=np.int64)
        result[c == self.const1] = t[c == self.const1]
        result[c == self.const0] = e[c == self.const0]
        open_ = result < 0
        same = open_ & (t == e)
        result[same] = t[same]
        # a constant branch, or a branch equal to the condition, makes an and/or
        forms = [
            ("or", (t == self.const1) | (t == c), c, e, False),      # c | e
            ("and", (e == self.const0) | (e == c), c, t, False),     # c & t
            ("and", t == self.const0, c, e, True),                   # !c & e
            ("or", e == self.const1, c, t, True),                    # !c | t
        ]
        for form, where, left, right, negate_left in forms:
            rows = np.flatnonzero((result < 0) & where)
            if len(rows):
                lhs = self._not(left[rows]) if negate_left else left[rows]
                pair = np.stack([lhs, right[rows]], axis=1).ravel()
                result[rows] = self.make(form, csr.uniform(len(rows), 2), pair)
        todo = np.flatnonzero(result < 0)
        if len(todo):
            result[todo] = self._intern("ite", csr.uniform(len(todo), 3), cte[todo].ravel(), None)
        return result

    # ------------------------------------------------------------------ sharing

    def _finish(self, op, offsets, operands, k, result) -> np.ndarray:
        todo = np.flatnonzero(result < 0)
        if len(todo):
            sub_off, sub_ops = csr.gather_rows(offsets, operands, todo)
            result[todo] = self._intern(op, sub_off, sub_ops, None if k is None else k[todo])
        return result

    def _hash_rows(self, op, offsets, operands, k) -> np.ndarray:
        n = len(offsets) - 1
        position = np.arange(len(operands), dtype=np.int64) - np.repeat(offsets[:-1], csr.lengths(offsets))
        with np.errstate(over="ignore"):
            per_value = _mix(operands.astype(np.uint64) * np.uint64(0x100000001B3)
                             + position.astype(np.uint64))
            head = _mix(np.uint64(OP_CODES[op]) * np.uint64(1000003)
                        + (np.zeros(n, np.uint64) if k is None else k.astype(np.uint64)) * np.uint64(7919)
                        + csr.lengths(offsets).astype(np.uint64))
            return head + csr.row_sum(offsets, per_value)

    def _intern(self, op, offsets, operands, k) -> np.ndarray:
        """Ids of canonical gates (operands already canonical), reusing equal existing gates."""
        hashes = self._hash_rows(op, offsets, operands, k)
        found = self._index.lookup(hashes)
        hit = np.flatnonzero(found >= 0)
        if len(hit):
            ok = self._same_as_existing(op, offsets, operands, k, hit, found[hit])
            found[hit[~ok]] = -1
            for row in hit[~ok]:   # a 64-bit hash collision (rare): try every gate of that hash
                for cand in self._index.all_ids(hashes[row]):
                    if self._same_as_existing(op, offsets, operands, k, np.array([row]),
                                              np.array([cand], dtype=np.int64))[0]:
                        found[row] = cand
                        break
        new = np.flatnonzero(found < 0)
        if len(new):
            uniq_hash, first, inverse = np.unique(hashes[new], return_index=True, return_inverse=True)
            inverse = inverse.reshape(-1)
            rep = new[first][inverse]  # representative row of each new row's hash
            same = csr.rows_equal(offsets, operands, new, offsets, operands, rep)
            if k is not None:
                same &= k[new] == k[rep]
            # a hash collision (rare): rows unequal to their representative are grouped by
            # their exact content, so that equal rows still make one gate
            groups = {}
            for pos in np.flatnonzero(~same):
                row = new[pos]
                content = (tuple(operands[offsets[row]:offsets[row + 1]].tolist()),
                           None if k is None else int(k[row]))
                if content in groups:
                    rep[pos] = groups[content]
                    same[pos] = True
                else:
                    groups[content] = row
                    rep[pos] = row
            is_maker = ~same  # the first row of each distinct content makes the gate
            is_maker[first] = True
            makers = new[is_maker]
            ids = self._create(op, offsets, operands, k, makers)
            found[makers] = ids
            copies = ~is_maker
            found[new[copies]] = found[rep[copies]]
            self._index.insert(hashes[makers], ids)
        return found

    def _same_as_existing(self, op, offsets, operands, k, rows, ids) -> np.ndarray:
        ok = np.zeros(len(rows), dtype=bool)
        node_idx = np.searchsorted(np.asarray(self.node_firsts), ids, side="right") - 1
        for node in np.unique(node_idx):
            data = self.graph.nodes[self.signal_nodes[node]]
            sel = np.flatnonzero(node_idx == node)
            if data.get(OP) != op:
                continue
            local = ids[sel] - data[FIRST]
            same = csr.rows_equal(offsets, operands, rows[sel], data[OFFSETS], data[OPERANDS], local)
            if k is not None:
                same &= data[K][local] == k[rows[sel]]
            ok[sel] = same
        return ok

    def _create(self, op, offsets, operands, k, rows) -> np.ndarray:
        sub_off, sub_ops = csr.gather_rows(offsets, operands, rows)
        count = len(rows)
        first = self.next_id
        self.next_id += count
        self._seq += 1
        key = f"g{self._seq}:{op}"
        attrs = {KIND: GATE, LABEL: op, OP: op, FIRST: first, COUNT: count, OFFSETS: sub_off,
                 OPERANDS: sub_ops, K: None if k is None else k[rows].copy(),
                 LINE: self.pos[0], COLUMN: self.pos[1]}
        self.graph.add_node(key, **attrs)
        self._add_edges(key, sub_ops)
        self.signal_nodes.append(key)
        self.node_firsts.append(first)
        ids = np.arange(first, first + count, dtype=np.int64)
        if op == "not":
            self._record_negation(ids, sub_ops)
        return ids

    def _add_edges(self, key, operands) -> None:
        add_reference_edges(self.graph, self.signal_nodes, self.node_firsts, key, operands)

    # ------------------------------------------------------------------ negations

    def _negation_of(self, ids: np.ndarray) -> np.ndarray:
        out = np.full(len(ids), -1, dtype=np.int64)
        inside = ids < len(self._negation)
        out[inside] = self._negation[ids[inside]]
        return out

    def _record_negation(self, ids, operands) -> None:
        need = int(ids.max()) + 1
        if need > len(self._negation):
            grown = np.full(max(need, 2 * len(self._negation)), -1, dtype=np.int64)
            grown[:len(self._negation)] = self._negation
            self._negation = grown
        self._negation[ids] = operands


def add_reference_edges(graph, signal_nodes, node_firsts, key, ids) -> None:
    """Edges from the nodes holding signals `ids` to node `key`, with their `refs` counts."""
    if len(ids) == 0:
        return
    producer = np.searchsorted(np.asarray(node_firsts), ids, side="right") - 1
    nodes, counts = np.unique(producer, return_counts=True)
    for node, count in zip(nodes.tolist(), counts.tolist()):
        graph.add_edge(signal_nodes[node], key, **{REFS: int(count)})


def _threshold_holds(op: str, count, k):
    if op == "atleast":
        return count >= k
    if op == "atmost":
        return count <= k
    return count == k


def _threshold_constant(op: str, k, n):
    """1 / 0 where the gate is constant whatever its n operands are, -1 elsewhere."""
    if op == "atleast":
        one, zero = k <= 0, k > n
    elif op == "atmost":
        one, zero = k >= n, k < 0
    else:
        one, zero = (n == 0) & (k == 0), (k < 0) | (k > n)
    return np.where(one, 1, np.where(zero, 0, -1))
