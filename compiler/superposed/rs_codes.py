"""Combinatorial superimposed codes and the universal AND that counts active pairs exactly.

Input code (Kautz-Singleton, from a Reed-Solomon code): feature f is the polynomial p_f of
degree <= lambda over GF(q) whose coefficient vector is f written in base q (so m <= q^(lambda+1)),
evaluated at c points (distinct field elements, plus the point at infinity, where p_f takes
its x^lambda coefficient, when c = q + 1). The code has c blocks of q coordinates: v[s, a] counts
the active features with p_f(s) = a. Two distinct features agree in at most lambda blocks.

Hidden layer (universal AND, the same for every pair list): for every block s, every symbol
set Q of size 1 or 2 and rho = 1 .. K - 1, a neuron relu(v[s, Q] - rho), v[s, Q] = sum over a in
Q of v[s, a]. On inputs with at most K active features, sum_rho relu(v[s, Q] - rho) = C(v[s, Q], 2).

Output code: T[s, {a}] = C(v[s, a], 2) and T[s, {a, b}] = C(v_a + v_b, 2) - C(v_a, 2) - C(v_b, 2)
= v_a v_b: the number of active pairs whose two symbols at block s are Q (a linear layer of
+-1 weights). Decoder: output AND(a, b) reads its c coordinates (s, {p_a(s), p_b(s)}) with
weight 1 and bias -(c - 1); it is 1 when the read-out exceeds 1/2. An active pair scores >= c;
an inactive one <= 2 lambda floor(K^2 / 4), so c >= 2 lambda floor(K^2 / 4) + 1 makes every
output exact on every input with at most K active features.

Everything is an integer: weights 0 / +-1, biases -rho and -(c - 1).

Proof: docs/proofs/rs-codes.md
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np

from .rs_terms import bound_weight, neurons_per_block, set_total

MAX_POWER_Q = 256      # prime powers p^e (e >= 2) up to this order use multiplication tables
INFINITY = -1          # the point at infinity among the evaluation points


# ------------------------------------------------------------------ integers

def is_prime(n: int) -> bool:
    """Trial division (the orders used here are small)."""
    if n < 2:
        return False
    for d in range(2, math.isqrt(n) + 1):
        if n % d == 0:
            return False
    return True


def prime_power(q: int):
    """(p, e) with q = p^e, p prime, e >= 1; None when q is not a prime power."""
    if q < 2:
        return None
    for p in range(2, math.isqrt(q) + 1):
        if q % p == 0:
            if not is_prime(p):
                return None
            e, rest = 0, q
            while rest % p == 0:
                rest //= p
                e += 1
            return (p, e) if rest == 1 else None
    return (q, 1)


def field_order_at_least(lo: int) -> int:
    """The smallest q >= lo for which GF(q) is available: a prime, or a prime power up to
    MAX_POWER_Q."""
    q = max(2, int(lo))
    while True:
        pe = prime_power(q)
        if pe is not None and (pe[1] == 1 or q <= MAX_POWER_Q):
            return q
        q += 1


def integer_root_ceil(m: int, k: int) -> int:
    """The smallest q >= 1 with q^k >= m."""
    if m <= 1:
        return 1
    q = max(1, int(round(m ** (1.0 / k))))
    while q ** k < m:
        q += 1
    while q > 1 and (q - 1) ** k >= m:
        q -= 1
    return q


# ------------------------------------------------------------------ GF(q)

class GaloisField:
    """GF(q), q = p^e. Elements are the integers 0 .. q - 1; for e >= 2 element x is the
    polynomial sum_i d_i t^i over GF(p) with d the base-p digits of x, reduced modulo the monic
    `modulus` (coefficients low to high, length e + 1). `add` and `mul` work on int64 arrays."""

    def __init__(self, q: int, modulus=None):
        pe = prime_power(q)
        if pe is None:
            raise ValueError(f"GF({q}) does not exist: {q} is not a prime power")
        self.q, (self.p, self.e) = int(q), pe
        if self.e == 1:
            self.modulus = None
            self._add = self._mul = None
            return
        if q > MAX_POWER_Q:
            raise ValueError(f"GF({q}): prime powers above {MAX_POWER_Q} are not supported")
        if modulus is None:
            modulus = find_modulus(self.p, self.e)
        self.modulus = tuple(int(x) for x in modulus)
        if len(self.modulus) != self.e + 1 or self.modulus[-1] != 1:
            raise ValueError(f"modulus {self.modulus} is not monic of degree {self.e}")
        self._add, self._mul = _tables(self.p, self.e, self.modulus)

    def add(self, a, b):
        """a + b (elementwise)."""
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        return (a + b) % self.p if self.e == 1 else self._add[a, b]

    def mul(self, a, b):
        """a * b (elementwise)."""
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        return (a * b) % self.p if self.e == 1 else self._mul[a, b]

    def tables(self):
        """(addition, multiplication) tables [q, q] (built on demand for primes)."""
        x = np.arange(self.q, dtype=np.int64)
        return self.add(x[:, None], x[None, :]), self.mul(x[:, None], x[None, :])

    def problems(self, max_cube: int = 1 << 25) -> list:
        """Why these tables are not a field ([] when they are). A prime order with modular
        arithmetic is a field; otherwise the tables are checked exhaustively: commutative,
        associative, distributive, 0 and 1 neutral, additive inverses, no zero divisors (a
        finite commutative ring without zero divisors is a field). Orders with q^3 above
        `max_cube` are refused."""
        if self.e == 1:
            return [] if is_prime(self.q) else [f"{self.q} is not prime"]
        q = self.q
        if q ** 3 > max_cube:
            return [f"GF({q}) too large to check its tables"]
        add, mul = self.tables()
        x = np.arange(q)
        out = []
        if not (np.array_equal(add, add.T) and np.array_equal(mul, mul.T)):
            out.append("not commutative")
        if not (np.array_equal(add[0], x) and np.array_equal(mul[1], x)
                and np.all(mul[0] == 0)):
            out.append("0 or 1 is not neutral")
        if not np.all((add == 0).any(axis=1)):
            out.append("an element has no additive inverse")
        if np.any(mul[1:, 1:] == 0):
            out.append("zero divisors")
        b, c = x[:, None], x[None, :]
        laws = {"addition not associative": True, "multiplication not associative": True,
                "not distributive": True}
        for a in range(q):                       # q^2 cells at a time
            laws["addition not associative"] &= np.array_equal(add[add[a, b], c], add[a, add[b, c]])
            laws["multiplication not associative"] &= np.array_equal(mul[mul[a, b], c],
                                                                     mul[a, mul[b, c]])
            laws["not distributive"] &= np.array_equal(mul[a, add[b, c]],
                                                       add[mul[a, b], mul[a, c]])
        return out + [name for name, holds in laws.items() if not holds]


def _digits(x: np.ndarray, base: int, count: int) -> np.ndarray:
    """int64 [len(x), count]: base-`base` digits of x, least significant first."""
    out = np.zeros((len(x), count), dtype=np.int64)
    rest = np.asarray(x, dtype=np.int64).copy()
    for i in range(count):
        out[:, i] = rest % base
        rest //= base
    return out


def _tables(p: int, e: int, modulus) -> tuple:
    """Addition and multiplication tables of GF(p)[t] / (modulus), q = p^e."""
    q = p ** e
    x = np.arange(q, dtype=np.int64)
    d = _digits(x, p, e)                                   # [q, e]
    weights = p ** np.arange(e, dtype=np.int64)
    add = ((d[:, None, :] + d[None, :, :]) % p) @ weights
    prod = np.zeros((q, q, 2 * e - 1), dtype=np.int64)
    for i in range(e):
        for j in range(e):
            prod[:, :, i + j] += d[:, None, i] * d[None, :, j]
    prod %= p
    mod = np.asarray(modulus, dtype=np.int64)
    for k in range(2 * e - 2, e - 1, -1):                  # t^k = -sum_i mod_i t^(k - e + i)
        top = prod[:, :, k].copy()
        for i in range(e):
            prod[:, :, k - e + i] = (prod[:, :, k - e + i] - top * mod[i]) % p
        prod[:, :, k] = 0
    mul = prod[:, :, :e] @ weights
    return add, mul


def find_modulus(p: int, e: int) -> tuple:
    """The first monic polynomial of degree e over GF(p) (lower coefficients in increasing
    base-p order) whose quotient ring has no zero divisors, i.e. an irreducible one."""
    for code in range(p ** e):
        low = _digits(np.array([code]), p, e)[0]
        if low[0] == 0:
            continue                                       # divisible by t
        modulus = tuple(int(x) for x in low) + (1,)
        _, mul = _tables(p, e, modulus)
        if not np.any(mul[1:, 1:] == 0):
            return modulus
    raise ValueError(f"no irreducible polynomial of degree {e} over GF({p})")


# ------------------------------------------------------------------ parameters

def pair_weight(K: int) -> int:
    """floor(K^2 / 4): the most pairs per unit of agreement (docs/proofs/rs-codes.md)."""
    return (K * K) // 4


def score_bound(K: int, lam: int) -> int:
    """The largest score of an output whose pair is not active, on inputs with at most K
    active features, when distinct features agree in at most `lam` blocks: 2 lam floor(K^2/4)."""
    return 2 * lam * pair_weight(K)


def min_blocks(K: int, lam: int) -> int:
    """The fewest blocks c that make every output exact: score_bound + 1."""
    return score_bound(K, lam) + 1


def set_count(q: int) -> int:
    """Symbol sets Q of size 1 or 2 per block: q (q + 1) / 2."""
    return q * (q + 1) // 2


@dataclass(frozen=True)
class RSParams:
    """One combinatorial code: m features, sparsity K, GF(q), degree lam, c blocks; the term
    arities the hidden layer counts (pairs by default) and the inactive-score weight per unit of
    agreement (`rs_terms.bound_weight` summed over an output's terms, the largest over outputs;
    None: one pair per output, 2 floor(K^2/4))."""
    m: int
    K: int
    q: int
    lam: int
    c: int
    modulus: tuple | None = None
    arities: tuple = (2,)
    weight: int | None = None

    @property
    def score_weight(self) -> int:
        """The inactive-score bound per unit of agreement."""
        return bound_weight(2, self.K) if self.weight is None else int(self.weight)

    @property
    def score_bound(self) -> int:
        """The largest score of an output none of whose terms is active: weight * lambda."""
        return self.score_weight * self.lam

    @property
    def blocks_needed(self) -> int:
        """The fewest blocks that make every output exact: score_bound + 1."""
        return self.score_bound + 1

    @property
    def sets(self) -> int:
        """Symbol sets of size 1 or 2 per block."""
        return set_count(self.q)

    @property
    def n(self) -> int:
        """Hidden neurons: c times, per arity r, the symbol sets of size <= r times the
        thresholds ((K - 1) c q (q + 1) / 2 for pairs)."""
        return self.c * sum(neurons_per_block(self.q, r, self.K) for r in self.arities)

    @property
    def d_in(self) -> int:
        """Input code width c q."""
        return self.c * self.q

    @property
    def d_out(self) -> int:
        """Output code width: c times the symbol sets per arity (c q (q + 1) / 2 for pairs)."""
        return self.c * sum(set_total(self.q, r) for r in self.arities)

    @property
    def points(self) -> list:
        """The evaluation points: 0 .. min(c, q) - 1, then INFINITY when c = q + 1."""
        return list(range(min(self.c, self.q))) + ([INFINITY] if self.c == self.q + 1 else [])

    def problems(self) -> list:
        """Why these parameters do not give an exact network ([] when they do)."""
        out = []
        if prime_power(self.q) is None:
            out.append(f"q = {self.q} is not a prime power")
        if self.K < 1:
            out.append(f"sparsity {self.K}: no feature is ever active (compile densely)")
        if self.lam < 0 or self.q ** (self.lam + 1) < self.m:
            out.append(f"q^(lambda+1) = {self.q}^{self.lam + 1} < m = {self.m} features")
        if not 1 <= self.c <= self.q + 1:
            out.append(f"c = {self.c} blocks: GF({self.q}) has {self.q + 1} points with infinity")
        if self.c < self.blocks_needed:
            out.append(f"c = {self.c} < {self.score_weight} lambda + 1 = {self.blocks_needed}")
        return out

    def as_dict(self) -> dict:
        """JSON-ready fields (the network's meta records them)."""
        out = asdict(self)
        out["modulus"] = list(self.modulus) if self.modulus is not None else None
        out["arities"] = list(self.arities)
        out.update(points=self.points, n=self.n, d_in=self.d_in, d_out=self.d_out,
                   score_bound=self.score_bound)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "RSParams":
        """The parameters recorded by `as_dict` (KeyError / TypeError / ValueError if malformed)."""
        modulus = d.get("modulus")
        weight = d.get("weight")
        return cls(int(d["m"]), int(d["K"]), int(d["q"]), int(d["lam"]), int(d["c"]),
                   tuple(int(x) for x in modulus) if modulus is not None else None,
                   tuple(int(r) for r in d.get("arities", (2,))),
                   int(weight) if weight is not None else None)


OBJECTIVES = ("neurons", "input", "output", "codes")


def candidates(m: int, K: int, arities=(2,), weight: int | None = None) -> list:
    """For every degree lam, the smallest field GF(q) that holds m features with c =
    weight lam + 1 blocks (c <= q + 1, the point at infinity included)."""
    arities = tuple(arities)
    weight = bound_weight(2, K) if weight is None else int(weight)
    out = []
    lam = 0
    while True:
        c = weight * lam + 1
        q = field_order_at_least(max(2, c - 1, integer_root_ceil(m, lam + 1)))
        out.append(RSParams(m, K, q, lam, c, None, arities, weight))
        # beyond this, q can only grow with c: stop once the q forced by c dominates
        if (q == field_order_at_least(max(2, c - 1)) and lam >= 1) or weight == 0:
            break
        lam += 1
    return out


def choose_params(m: int, K: int, objective: str = "neurons", arities=(2,),
                  weight: int | None = None) -> RSParams:
    """The parameters minimising `objective`: 'neurons' (n, then D_in), 'input' (D_in, then n),
    'output' (D_out, then D_in), 'codes' (D_in + D_out, then n). ValueError for K < 1 (pairs:
    K < 2)."""
    least = 2 if tuple(arities) == (2,) else 1
    if K is None or K < least:
        raise ValueError(f"combinatorial codes need a sparsity K >= {least}, got {K}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    key = {"neurons": lambda p: (p.n, p.d_in), "input": lambda p: (p.d_in, p.n),
           "output": lambda p: (p.d_out, p.d_in), "codes": lambda p: (p.d_in + p.d_out, p.n)}
    best = min(candidates(max(m, 1), K, arities, weight), key=key[objective])
    field = GaloisField(best.q)
    return RSParams(best.m, best.K, best.q, best.lam, best.c, field.modulus, best.arities,
                    best.weight)


# ------------------------------------------------------------------ the code

def field_of(params: RSParams) -> GaloisField:
    """GF(q) with the recorded modulus."""
    return GaloisField(params.q, params.modulus)


def coefficients(m: int, q: int, lam: int) -> np.ndarray:
    """int64 [m, lam + 1]: feature f's polynomial coefficients (f in base q, constant first)."""
    return _digits(np.arange(m, dtype=np.int64), q, lam + 1)


def symbols(params: RSParams, field: GaloisField | None = None) -> np.ndarray:
    """int64 [m, c]: p_f evaluated at each point (Horner; at infinity: the x^lam coefficient)."""
    field = field or field_of(params)
    coef = coefficients(params.m, params.q, params.lam)
    pts = np.array([x for x in params.points if x != INFINITY], dtype=np.int64)
    val = np.repeat(coef[:, params.lam:params.lam + 1], len(pts), axis=1)
    for i in range(params.lam - 1, -1, -1):
        val = field.add(field.mul(val, pts[None, :]), coef[:, i:i + 1])
    if params.c == params.q + 1:
        val = np.concatenate([val, coef[:, params.lam:params.lam + 1]], axis=1)
    return val


def set_index(q: int, a, b) -> np.ndarray:
    """Index of the symbol set {a, b} within a block: {a} -> a; {a, b} (a < b) -> q + the rank
    of (a, b) among pairs in lexicographic order. Arguments in either order, elementwise."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pair = q + lo * (q - 1) - lo * (lo - 1) // 2 + hi - lo - 1
    return np.where(lo == hi, lo, pair)


def set_members(q: int) -> tuple:
    """(lo, hi) int64 [q (q + 1) / 2]: the symbols of each set index (lo == hi for singletons)."""
    singles = np.arange(q, dtype=np.int64)
    pairs = np.array(list(itertools.combinations(range(q), 2)), dtype=np.int64).reshape(-1, 2)
    lo = np.concatenate([singles, pairs[:, 0]])
    hi = np.concatenate([singles, pairs[:, 1]])
    return lo, hi


def code_matrix(sym: np.ndarray, q: int) -> tuple:
    """COO (rows, cols) of the 0/1 input code E [c q, m]: E[s q + p_f(s), f] = 1."""
    m, c = sym.shape
    rows = (np.arange(c, dtype=np.int64)[None, :] * q + sym).ravel()
    cols = np.repeat(np.arange(m, dtype=np.int64), c)
    return rows, cols


def neuron_index(c: int, q: int, K: int, s, set_idx, rho) -> np.ndarray:
    """Index of hidden neuron (block s, set, rho = 1 .. K - 1)."""
    return ((np.asarray(s) * set_count(q) + np.asarray(set_idx)) * (K - 1)
            + np.asarray(rho) - 1)


def universal_and(c: int, q: int, K: int) -> tuple:
    """(rows, cols, vals, bias, (block, set, rho)) of the hidden layer [n, c q]: neuron
    (s, Q, rho) has weight 1 on each coordinate s q + a, a in Q, and bias -rho."""
    lo, hi = set_members(q)
    sets = len(lo)
    s, j, r = np.meshgrid(np.arange(c), np.arange(sets), np.arange(1, K), indexing="ij")
    s, j, r = s.ravel(), j.ravel(), r.ravel()               # already in neuron_index order
    n = len(s)
    single = lo[j] == hi[j]
    rows = np.concatenate([np.arange(n), np.flatnonzero(~single)])
    cols = np.concatenate([s * q + lo[j], (s * q + hi[j])[~single]])
    return (rows.astype(np.int64), cols.astype(np.int64), np.ones(len(rows)),
            -r.astype(np.float64), (s, j, r))


def pair_count_layer(c: int, q: int, K: int) -> tuple:
    """(rows, cols, vals) of the output code layer W2 [c q (q+1)/2, n]: T[s, Q] = sum_rho
    h[s, Q, rho], minus sum_rho (h[s, {a}, rho] + h[s, {b}, rho]) when Q = {a, b}."""
    lo, hi = set_members(q)
    sets = len(lo)
    s, j, r = np.meshgrid(np.arange(c), np.arange(sets), np.arange(1, K), indexing="ij")
    s, j, r = s.ravel(), j.ravel(), r.ravel()
    row = s * sets + j
    pair = lo[j] != hi[j]
    rows = np.concatenate([row, row[pair], row[pair]])
    cols = np.concatenate([neuron_index(c, q, K, s, j, r),
                           neuron_index(c, q, K, s[pair], lo[j][pair], r[pair]),
                           neuron_index(c, q, K, s[pair], hi[j][pair], r[pair])])
    vals = np.concatenate([np.ones(len(row)), -np.ones(2 * int(pair.sum()))])
    return rows.astype(np.int64), cols.astype(np.int64), vals


def decoder(sym: np.ndarray, q: int, first: np.ndarray, second: np.ndarray) -> tuple:
    """(rows, cols, vals, bias) of the decoder [m', c q (q+1)/2]: output j = AND(first[j],
    second[j]) reads (s, {p_a(s), p_b(s)}) for every block s with weight 1, bias -(c - 1)."""
    c = sym.shape[1]
    sets = set_count(q)
    idx = set_index(q, sym[first], sym[second])             # [m', c]
    cols = (np.arange(c, dtype=np.int64)[None, :] * sets + idx).ravel()
    rows = np.repeat(np.arange(len(first), dtype=np.int64), c)
    return rows, cols, np.ones(len(rows)), np.full(len(first), -(c - 1.0))


def max_agreement_subsets(sym: np.ndarray, L: int) -> bool:
    """True when no two rows of `sym` agree in more than L columns: for every set of L + 1
    columns, the rows' symbol tuples there are distinct (exact, C(c, L + 1) sorts of m keys)."""
    m, c = sym.shape
    if L >= c:
        return True
    if L < 0:
        return m <= 1
    base = int(sym.max(initial=0)) + 1
    for cols in itertools.combinations(range(c), L + 1):
        key = np.zeros(m, dtype=np.int64) if base ** (L + 1) < 2 ** 62 else None
        if key is None:
            keys = np.ascontiguousarray(sym[:, cols])
            if len(np.unique(keys, axis=0)) < m:
                return False
            continue
        for col in cols:
            key = key * base + sym[:, col]
        key.sort()
        if np.any(key[1:] == key[:-1]):
            return False
    return True


def subset_checks(c: int, L: int) -> int:
    """How many column sets `max_agreement_subsets` sorts: C(c, L + 1)."""
    return math.comb(c, L + 1) if 0 <= L < c else 0
