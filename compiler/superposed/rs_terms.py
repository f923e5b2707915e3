"""Threshold gates over coded features: terms, symbol sets of any size, and the count layers.

Generalises the pairwise universal AND of `rs_codes` (docs/proofs/rs-codes.md, "Beyond pairs"):

- Every coded output is a threshold gate [sum of its features >= k] over distinct input
  features: AND (k = |S|), OR (k = 1), atleast(k, S), and copies (|S| = k = 1). It is true on an
  input exactly when one of its *terms*, the k-subsets of S, is wholly active, so it is written
  as an OR of terms of arity r = k (terms with r > K are never active and are dropped).
- For every arity r in use and every block s, symbol set Q (1 <= |Q| <= r) and rho, a hidden
  neuron relu(v[s, Q] - rho); sum_rho a_rho relu(v[s, Q] - rho) = C(v[s, Q], r) on counts
  v <= K, with a_rho = C(rho - 1, r - 2) for rho = r - 1 .. K - 1 (r >= 2) and relu(v) itself for
  r = 1. A +-1 layer (Moebius inversion over the subsets of Q) gives z_r[s, Q], the exact number
  of active r-subsets of features whose symbols at block s form the set Q: the output code.
- Output j reads, in every block, the coordinates (r, s, symbol set of T at s) of its terms T
  (each distinct coordinate once, weight 1) with bias -(c - 1). An active term puts >= 1 on each
  of its c coordinates; when no term is active each term T contributes at most
  L * bound_weight(r, K) (L: the most blocks two distinct features agree in), so
  c > L * sum over terms of bound_weight makes the output exact on every input with <= K active.

Everything here is integer index arithmetic over numpy arrays (no per-output Python loop).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from dsl import csr

from .codes import CodeError
from .select import superposable

MAX_TERMS_PER_OUTPUT = 64        # C(|S|, k) terms of one output
MAX_ARITY = 7                    # symbol-set keys (q + 1)^r stay below 2^63 for q <= 256


def thresholds(r: int, K: int) -> np.ndarray:
    """The rho of arity r's neurons: 0 for r = 1, r - 1 .. K - 1 for r >= 2."""
    return np.array([0]) if r == 1 else np.arange(r - 1, K)


def rho_weights(r: int, K: int) -> np.ndarray:
    """a_rho with sum_rho a_rho relu(v - rho) = C(v, r) for v = 0 .. K."""
    rho = thresholds(r, K)
    if r == 1:
        return np.ones(1)
    return np.array([math.comb(int(x) - 1, r - 2) for x in rho], dtype=np.float64)


def bound_weight(r: int, K: int) -> int:
    """Per unit of agreement, the most an inactive term of arity r scores on inputs with at most
    K active features: 2 floor(K^2/4) for pairs (rs_codes.score_bound), r C(K, r) otherwise
    (docs/proofs/rs-codes.md)."""
    if r == 2:
        return 2 * ((K * K) // 4)
    return r * math.comb(K, r)


def set_total(q: int, r: int) -> int:
    """Symbol sets of size 1 .. r within a block of q symbols."""
    return sum(math.comb(q, j) for j in range(1, min(r, q) + 1))


def neurons_per_block(q: int, r: int, K: int) -> int:
    """Hidden neurons of arity r in one block."""
    return set_total(q, r) * len(thresholds(r, K))


# ------------------------------------------------------------------ symbol sets

class SymbolSets:
    """Every symbol set of size 1 .. r over q symbols, ordered by size then lexicographically
    (for r = 2 the order of rs_codes.set_index), with vectorised ranking."""

    def __init__(self, q: int, r: int):
        if not 1 <= r <= MAX_ARITY:
            raise CodeError(f"arity {r}: coded gates take 1 .. {MAX_ARITY} features per term")
        self.q, self.r = int(q), int(r)
        rows = [c for size in range(1, min(r, q) + 1)
                for c in itertools.combinations(range(q), size)]
        self.members = np.full((len(rows), r), -1, dtype=np.int64)
        for i, row in enumerate(rows):
            self.members[i, :len(row)] = row
        self.sizes = (self.members >= 0).sum(axis=1)
        keys = self._keys(np.where(self.members >= 0, self.members, q))
        self._order = np.argsort(keys, kind="stable")
        self._sorted = keys[self._order]

    def __len__(self) -> int:
        return len(self.members)

    def _keys(self, padded: np.ndarray) -> np.ndarray:
        key = np.zeros(len(padded), dtype=np.int64)
        for i in range(padded.shape[1]):
            key = key * (self.q + 1) + padded[:, i]
        return key

    def rank(self, symbols: np.ndarray) -> np.ndarray:
        """int64 [N]: the index of the set of symbols in each row of `symbols` [N, w] (w <= r;
        repeats allowed, -1 entries ignored)."""
        symbols = np.asarray(symbols, dtype=np.int64)
        w = symbols.shape[1]
        padded = np.full((len(symbols), self.r), self.q, dtype=np.int64)
        s = np.sort(np.where(symbols >= 0, symbols, self.q), axis=1)
        dup = np.zeros_like(s, dtype=bool)
        dup[:, 1:] = s[:, 1:] == s[:, :-1]
        s = np.sort(np.where(dup, self.q, s), axis=1)
        if w > self.r and (s[:, self.r:] < self.q).any():
            raise CodeError("a symbol set larger than the arity")
        padded[:, :min(w, self.r)] = s[:, :self.r]
        pos = np.searchsorted(self._sorted, self._keys(padded))
        pos = np.minimum(pos, len(self._sorted) - 1)
        if not np.array_equal(self._sorted[pos], self._keys(padded)):
            raise CodeError("a symbol outside the block's alphabet")
        return self._order[pos]


# ------------------------------------------------------------------ layers of one arity

def count_neurons(c: int, q: int, K: int, r: int, sets: SymbolSets) -> tuple:
    """(rows, cols, bias, rho) of arity r's hidden neurons [c * |sets| * thresholds, c q]:
    neuron ((s * |sets| + j) * T + t) has weight 1 on s q + a for a in set j and bias -rho_t."""
    rho = thresholds(r, K)
    T, S = len(rho), len(sets)
    idx = np.arange(c * S * T, dtype=np.int64)
    s, j, t = idx // (S * T), (idx // T) % S, idx % T
    members = sets.members[j]                                # [n, r]
    keep = members >= 0
    rows = np.repeat(idx, keep.sum(axis=1))
    cols = (s[:, None] * q + members)[keep]
    return rows, cols, -rho[t].astype(np.float64), rho[t]


def count_code(c: int, K: int, r: int, sets: SymbolSets) -> tuple:
    """(rows, cols, vals) of arity r's code layer [c |sets|, c |sets| T]: z[s, Q] = sum over
    nonempty Q' within Q of (-1)^(|Q| - |Q'|) sum_t a_t h[s, Q', t] (Moebius inversion of
    C(v[s, Q'], r))."""
    a = rho_weights(r, K)
    T, S = len(a), len(sets)
    rows, cols, vals = [], [], []
    for size in range(1, int(sets.sizes.max(initial=0)) + 1):
        js = np.flatnonzero(sets.sizes == size)
        members = sets.members[js][:, :size]
        for mask in range(1, 1 << size):
            bits = [b for b in range(size) if mask >> b & 1]
            sub = sets.rank(members[:, bits])
            sign = -1.0 if (size - len(bits)) % 2 else 1.0
            for t in range(T):
                for s in range(c):
                    rows.append(s * S + js)
                    cols.append((s * S + sub) * T + t)
                    vals.append(np.full(len(js), sign * a[t]))
    cat = (lambda x: np.concatenate(x) if x else np.zeros(0))
    return cat(rows).astype(np.int64), cat(cols).astype(np.int64), cat(vals)


# ------------------------------------------------------------------ terms of a circuit

class Terms:
    """The coded outputs as ORs of terms: for each arity r, `outputs[r]` int64 [T_r] (which
    output) and `features[r]` int64 [T_r, r]; `weight[j]` = sum over j's terms of
    bound_weight(r, K)."""

    def __init__(self, n_outputs: int, K: int):
        self.n_outputs, self.K = int(n_outputs), int(K)
        self.outputs, self.features = {}, {}
        self.weight = np.zeros(n_outputs, dtype=np.int64)

    @property
    def arities(self) -> tuple:
        """The term arities in use, ascending."""
        return tuple(sorted(r for r, o in self.outputs.items() if len(o)))

    def add(self, r: int, outputs: np.ndarray, features: np.ndarray) -> None:
        """Append terms of arity r."""
        if len(outputs) == 0:
            return
        self.outputs[r] = np.concatenate([self.outputs.get(r, np.zeros(0, np.int64)), outputs])
        prev = self.features.get(r, np.zeros((0, r), np.int64))
        self.features[r] = np.concatenate([prev, features.reshape(-1, r)])
        np.add.at(self.weight, outputs, bound_weight(r, self.K))

    def pairs(self):
        """(first, second) when every output is exactly one AND of two features, else None."""
        if self.arities != (2,) or len(self.outputs[2]) != self.n_outputs \
                or not np.array_equal(self.outputs[2], np.arange(self.n_outputs)):
            return None
        return self.features[2][:, 0].copy(), self.features[2][:, 1].copy()


def uncodable(circuit, K: int) -> dict:
    """{reason: bool mask over outputs} of the outputs rs codes cannot compile: not a threshold
    gate over distinct input features, a threshold below 1, too many terms, too wide terms."""
    positions, spec = superposable(circuit)
    n = circuit.n_outputs
    shape = np.ones(n, dtype=bool)
    shape[positions] = False
    lens = csr.lengths(spec.f_offsets)
    k = np.asarray(spec.k, dtype=np.int64)
    live = (k >= 1) & (k <= np.minimum(lens, K))
    n_terms = np.zeros(len(k), dtype=np.int64)
    n_terms[live] = [math.comb(int(a), int(b)) for a, b in zip(lens[live], k[live])]
    return {
        "are not AND / OR / atleast gates (or copies) of distinct input features": shape,
        "have a threshold below 1 (constant true)": _at(positions, k < 1, n),
        f"have more than {MAX_TERMS_PER_OUTPUT} terms (k-subsets of their features)":
            _at(positions, n_terms > MAX_TERMS_PER_OUTPUT, n),
        f"need terms of more than {MAX_ARITY} features": _at(positions, live & (k > MAX_ARITY), n),
    }


def circuit_terms(circuit, K: int, skip=None) -> Terms:
    """The terms of every output of `circuit` (module docstring); CodeError naming the outputs
    that are not threshold gates over distinct input features, have a threshold below 1, or
    more than MAX_TERMS_PER_OUTPUT terms. Outputs in the bool mask `skip` get no terms (another
    block of the network computes them)."""
    skip = np.zeros(circuit.n_outputs, dtype=bool) if skip is None else np.asarray(skip, bool)
    for why, bad in uncodable(circuit, K).items():
        _refuse(circuit, bad & ~skip, why)
    positions, spec = superposable(circuit)
    keep = ~skip[positions]
    lens = csr.lengths(spec.f_offsets)
    k = np.asarray(spec.k, dtype=np.int64)
    live = keep & (k >= 1) & (k <= np.minimum(lens, K))     # else never true on the domain
    terms = Terms(circuit.n_outputs, K)
    groups = np.unique(np.stack([lens[live], k[live]], axis=1), axis=0) if live.any() \
        else np.zeros((0, 2), np.int64)
    for n, r in groups.tolist():
        sel = np.flatnonzero(live & (lens == n) & (k == r))
        feats = spec.f_features[spec.f_offsets[sel][:, None] + np.arange(n)[None, :]]  # [G, n]
        combos = np.array(list(itertools.combinations(range(n), r)), dtype=np.int64)  # [C, r]
        terms.add(r, np.repeat(positions[sel], len(combos)),
                  feats[:, combos].reshape(-1, r))
    return terms


def _at(positions, mask, n) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[positions[mask]] = True
    return out


def _refuse(circuit, bad: np.ndarray, why: str) -> None:
    if not bad.any():
        return
    idx = np.flatnonzero(bad)
    names = ", ".join(circuit.output_names(idx[:5].tolist())) + (", ..." if len(idx) > 5 else "")
    raise CodeError(f"rs codes compile threshold gates over input features; {len(idx):,} of "
                    f"{circuit.n_outputs:,} outputs {why} ({names}); use --input-code DIM / "
                    "--output-code DIM (sign codes) or no codes")


# ------------------------------------------------------------------ the whole coded network

class Layout:
    """Where each arity's neurons and code coordinates sit: arity r owns hidden neurons
    [h_off[r], h_off[r] + c * |sets_r| * T_r) and code coordinates [z_off[r], z_off[r] +
    c * |sets_r|)."""

    def __init__(self, c: int, q: int, K: int, arities):
        self.c, self.q, self.K = int(c), int(q), int(K)
        self.arities = tuple(sorted(set(int(r) for r in arities)))
        self.sets = {r: SymbolSets(q, r) for r in self.arities}
        self.h_off, self.z_off, h, z = {}, {}, 0, 0
        for r in self.arities:
            self.h_off[r], self.z_off[r] = h, z
            h += c * len(self.sets[r]) * len(thresholds(r, K))
            z += c * len(self.sets[r])
        self.n, self.d_out = h, z

    def hidden(self) -> tuple:
        """(rows, cols, vals, bias, rho) of the hidden layer [n, c q]."""
        parts = [count_neurons(self.c, self.q, self.K, r, self.sets[r]) for r in self.arities]
        rows = np.concatenate([p[0] + self.h_off[r] for p, r in zip(parts, self.arities)])
        cols = np.concatenate([p[1] for p in parts])
        bias = np.concatenate([p[2] for p in parts])
        rho = np.concatenate([p[3] for p in parts])
        return rows, cols, np.ones(len(rows)), bias, rho

    def code(self) -> tuple:
        """(rows, cols, vals) of the code layer [d_out, n]."""
        parts = [count_code(self.c, self.K, r, self.sets[r]) for r in self.arities]
        rows = np.concatenate([p[0] + self.z_off[r] for p, r in zip(parts, self.arities)])
        cols = np.concatenate([p[1] + self.h_off[r] for p, r in zip(parts, self.arities)])
        return rows, cols, np.concatenate([p[2] for p in parts])

    def coordinates(self, r: int, sym: np.ndarray, features: np.ndarray) -> np.ndarray:
        """int64 [T, c]: the code coordinate of each arity-r term (features [T, r]) per block."""
        c = self.c
        per_block = [self.sets[r].rank(sym[features, s]) for s in range(c)]
        idx = np.stack(per_block, axis=1) if per_block else np.zeros((len(features), 0), np.int64)
        return self.z_off[r] + np.arange(c, dtype=np.int64)[None, :] * len(self.sets[r]) + idx

    def decoder(self, sym: np.ndarray, terms: Terms) -> tuple:
        """(rows, cols) of the 0/1 decoder [m', d_out]: every distinct coordinate of an output's
        terms once."""
        rows, cols = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for r in terms.arities:
            coords = self.coordinates(r, sym, terms.features[r])
            rows.append(np.repeat(terms.outputs[r], self.c))
            cols.append(coords.ravel())
        key = np.unique(np.concatenate(rows) * np.int64(self.d_out) + np.concatenate(cols))
        return key // self.d_out, key % self.d_out
