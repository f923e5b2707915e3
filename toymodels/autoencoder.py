"""Chowdhury & Weiner's tied-weight power autoencoders, with the improvement I computed exactly.

Model ("Effects of sparsity and superposition on loss in simple autoencoders"): inputs
x in R^n with x_i = s_i u_i, s_i ~ Bernoulli(p), u_i i.i.d. symmetric with moments
mu_k = E u^k; reconstruction x_hat = (W^T W x)^{.m} (coordinatewise odd power m, no bias),
W in R^{d x n}; loss E|x - x_hat|^2 = p n mu_2 - I with the improvement over the zero output

    I = 2 E<x, x_hat> - E|x_hat|^2.

Exact I from the moments (no sampling). Write A = W^T W and, for output j, x_hat_j = (a_j x_j
+ S_j)^m with a_j = A_jj and S_j = sum_{i != j} A_ji x_i, a sum of independent symmetric
variables, independent of x_j. The cumulants of x_i are those of the moments nu_k = p mu_k
(k >= 1, nu_0 = 1): kappa_k = nu_k - sum_{l=1}^{k-1} C(k-1, l-1) kappa_l nu_{k-l}; cumulants of
independent sums add, so kappa_k(S_j) = kappa_k * sum_{i != j} A_ji^k, and the moments of S_j
follow from E S^k = sum_{l=1}^{k} C(k-1, l-1) kappa_l(S) E S^{k-l}. Then, expanding the power
(odd moments vanish),

    E[x_j x_hat_j]  = sum_{l odd <= m}  C(m, l)  a_j^l nu_{l+1} E[S_j^{m-l}],
    E[x_hat_j^2]    = sum_{l even <= 2m} C(2m, l) a_j^l nu_l     E[S_j^{2m-l}],

which is exact in exact arithmetic (float64 here; `exact_improvement(..., exact=True)` does
it in rationals for rational weights). Cost O(n^2 m) for all outputs together, and the same
expression is differentiable, so W is trained by gradient ascent on the exact I.

Constructions compared (the paper's bounds: the best I is Omega(min{p d^m, d p^(1/m)}) and
O(p d^m) for n > d^m, tight for p <= d^(-m); the O(d p^(1/m)) side is from a later
unreviewed note, see the background notes):
- monosemantic: A = c P_d (a scaled projection on d features); optimum c^m = mu_{m+1}/mu_{2m},
  I = d p mu_{m+1}^2 / mu_{2m};
- random near-orthogonal codes: k <= n unit columns (Gaussian, normalised), the rest 0;
- sup's sign codes: the input code of the superposed target (compiler/superposed/codes.py
  `sign_code`, +-1/sqrt(d) entries from SplitMix64), k columns;
- for a code W0 the scale is optimised in closed form: I(c W0^T W0) = 2 c^m C0 - c^{2m} D0 is
  largest at c^m = C0 / D0 with I = C0^2 / D0; k runs over d, 2d, 4d, ..., n and the best is kept;
- trained: W by gradient ascent (Adam) on the exact I from a random start.
For m = 1, I = p mu_2 (2 tr A - |A|_F^2) = p mu_2 sum_lambda (2 lambda - lambda^2) <= p mu_2 min(d, n),
attained by a projection of rank min(d, n).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch

from compiler.superposed.codes import sign_code
from verify.progress import progress_bar

from .common import ToyInputError

LAWS = ("rademacher", "gaussian", "uniform")


# ------------------------------------------------------------------ moments

def law_moment(law: str, k: int) -> Fraction:
    """mu_k = E u^k of the symmetric law: rademacher (+-1), gaussian (N(0,1)), uniform ([-1,1])."""
    if k % 2:
        return Fraction(0)
    if law == "rademacher":
        return Fraction(1)
    if law == "gaussian":
        return Fraction(math.prod(range(k - 1, 0, -2)))     # (k-1)!!
    if law == "uniform":
        return Fraction(1, k + 1)
    raise ToyInputError(f"unknown law {law!r}: use one of {', '.join(LAWS)}")


def input_moments(law: str, p, order: int) -> list:
    """nu_k = E x_i^k for k = 0..order (nu_0 = 1, nu_k = p mu_k); Fractions when p is one,
    floats otherwise."""
    cast = (lambda v: v) if isinstance(p, Fraction) else float
    return [cast(Fraction(1)) if k == 0 else cast(p * law_moment(law, k))
            for k in range(order + 1)]


def input_cumulants(nu: list) -> list:
    """kappa_0..kappa_K of x_i from its moments nu_0..nu_K (kappa_0 = 0)."""
    kappa = [0 * nu[0]] * len(nu)
    for k in range(1, len(nu)):
        kappa[k] = nu[k] - sum(math.comb(k - 1, l - 1) * kappa[l] * nu[k - l]
                               for l in range(1, k))
    return kappa


def monosemantic_optimum(law: str, p, d: int, m: int):
    """I of the best scaled projection on d features: d p mu_{m+1}^2 / mu_{2m}."""
    return d * p * law_moment(law, m + 1) ** 2 / law_moment(law, 2 * m)


def bound_shape(p, d: int, m: int) -> float:
    """min{p d^m, d p^(1/m)}: the order of the best I for n > d^m (constants unknown)."""
    return min(p * d ** m, d * p ** (1.0 / m))


# ------------------------------------------------------------------ exact I

def _terms(a_matrix, p, law: str, m: int, power, diagonal, row_sum):
    """(sum_j E[x_j x_hat_j], sum_j E[x_hat_j^2]) for x_hat = (A x)^m, written once for numpy,
    torch and object (Fraction) arrays through the three callables."""
    order = 2 * m
    nu = input_moments(law, p, order)
    kappa = input_cumulants(nu)
    diag = diagonal(a_matrix)
    off = a_matrix - _diag_matrix_like(a_matrix, diag)
    # moments of S_j for every row j: s_mom[k] is a vector over rows
    sums = {k: row_sum(power(off, k)) for k in range(2, order + 1, 2)}
    zero = diag * 0
    s_mom = [zero + 1]
    for k in range(1, order + 1):
        total = zero
        for l in range(2, k + 1, 2):
            if kappa[l] != 0:
                total = total + math.comb(k - 1, l - 1) * kappa[l] * sums[l] * s_mom[k - l]
        s_mom.append(total)
    cross = zero
    for l in range(1, m + 1, 2):
        cross = cross + math.comb(m, l) * nu[l + 1] * power(diag, l) * s_mom[m - l]
    square = zero
    for l in range(0, order + 1, 2):
        square = square + math.comb(order, l) * nu[l] * power(diag, l) * s_mom[order - l]
    return cross.sum(), square.sum()


def _diag_matrix_like(a_matrix, diag):
    if torch.is_tensor(a_matrix):
        return torch.diag(diag)
    out = np.zeros_like(a_matrix)
    np.fill_diagonal(out, diag)
    return out


def improvement_parts(a_matrix, p, law: str, m: int, exact: bool = False):
    """(C, D) = (E<x, x_hat>, E|x_hat|^2) for x_hat = (A x)^m, A [n, n] (numpy, torch, or
    with exact=True rationals: A's entries and p converted to Fraction)."""
    if torch.is_tensor(a_matrix):
        return _terms(a_matrix, p, law, m, lambda t, k: t ** k, torch.diagonal,
                      lambda t: t.sum(dim=1))
    if exact:
        a = np.array([[Fraction(v) for v in row] for row in np.asarray(a_matrix).tolist()],
                     dtype=object)
        return _terms(a, Fraction(p), law, m, lambda t, k: t ** k,
                      lambda t: np.array(np.diagonal(t)), lambda t: t.sum(axis=1))
    nu_float = float(p)
    c, d = _terms(np.asarray(a_matrix, dtype=np.float64), nu_float, law, m,
                  lambda t, k: t ** k, lambda t: np.diagonal(t).copy(), lambda t: t.sum(axis=1))
    return float(c), float(d)


def exact_improvement(w, p, law: str, m: int, exact: bool = False):
    """I = 2 E<x, x_hat> - E|x_hat|^2 of the autoencoder with weights W [d, n], exactly."""
    w = np.asarray(w) if not torch.is_tensor(w) else w
    a_matrix = w.T @ w
    c, dd = improvement_parts(a_matrix, p, law, m, exact=exact)
    return 2 * c - dd


def best_scale(w, p, law: str, m: int) -> tuple[float, float]:
    """(I, c): the largest I over A = c W^T W, c > 0, in closed form (c^m = C0/D0, I = C0^2/D0)."""
    a0 = np.asarray(w, dtype=np.float64).T @ np.asarray(w, dtype=np.float64)
    c0, d0 = improvement_parts(a0, p, law, m)
    if c0 <= 0 or d0 <= 0:
        return 0.0, 0.0
    return c0 * c0 / d0, (c0 / d0) ** (1.0 / m)


# ------------------------------------------------------------------ constructions

def pad_columns(w: np.ndarray, n: int) -> np.ndarray:
    """W [d, k] padded with zero columns to [d, n] (features k..n-1 unused)."""
    out = np.zeros((w.shape[0], n))
    out[:, :w.shape[1]] = w
    return out


def monosemantic_weights(d: int, n: int, p, law: str, m: int) -> np.ndarray:
    """W [d, n] of the optimal scaled projection on the first min(d, n) features."""
    c = (float(law_moment(law, m + 1)) / float(law_moment(law, 2 * m))) ** (1.0 / m)
    w = np.zeros((d, n))
    k = min(d, n)
    w[np.arange(k), np.arange(k)] = math.sqrt(c)
    return w


def random_code(d: int, k: int, seed: int = 0) -> np.ndarray:
    """W [d, k]: k random unit columns (Gaussian, normalised): a near-orthogonal code."""
    w = np.random.default_rng(seed).standard_normal((d, k))
    return w / np.linalg.norm(w, axis=0, keepdims=True)


def sup_sign_code(d: int, k: int, seed: int = 0) -> np.ndarray:
    """W [d, k]: sup's input sign code (compiler/superposed/codes.py `sign_code`, stream 0)."""
    return sign_code(d, k, seed, 0)


def code_sizes(d: int, n: int) -> list[int]:
    """The numbers of coded features tried: d, 2d, 4d, ... up to n (n included)."""
    sizes, k = [], d
    while k < n:
        sizes.append(k)
        k *= 2
    sizes.append(n)
    return sorted(set(min(s, n) for s in sizes))


def best_code(make, d: int, n: int, p, law: str, m: int, seed: int = 0) -> dict:
    """The best scaled code from make(d, k, seed) over k in code_sizes(d, n)."""
    best = {"I": 0.0, "features": 0, "scale": 0.0}
    for k in code_sizes(d, n):
        value, scale = best_scale(pad_columns(make(d, k, seed), n), p, law, m)
        if value > best["I"]:
            best = {"I": value, "features": k, "scale": scale}
    return best


def train_weights(d: int, n: int, p, law: str, m: int, steps: int = 1500, lr: float = 0.02,
                  seed: int = 0, device="cpu", init=None, progress: bool = False) -> np.ndarray:
    """W [d, n] by gradient ascent (Adam, float64) on the exact I, from a random start
    (Gaussian columns of norm 1/2) or from `init`."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    if init is None:
        start = torch.randn(d, n, generator=gen, dtype=torch.float64)
        start = 0.5 * start / start.norm(dim=0, keepdim=True)
    else:
        start = torch.as_tensor(np.asarray(init), dtype=torch.float64)
    w = torch.nn.Parameter(start.to(device))
    opt = torch.optim.Adam([w], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    p_float = float(p)
    scale = 1.0 / max(p_float * d, 1e-300)          # I is O(p d): keep the objective O(1)
    with progress_bar(steps, "step", enabled=progress) as bar:
        for step in range(steps):
            c, dd = improvement_parts(w.T @ w, p_float, law, m)
            loss = -(2 * c - dd) * scale
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 50 == 49 or step == steps - 1:
                bar.update(step + 1 - bar.n)
    return w.detach().cpu().numpy()


# ------------------------------------------------------------------ simulation (a check)

def sample_inputs(samples: int, n: int, p: float, law: str, rng: np.random.Generator):
    """x [samples, n]: Bernoulli(p) supports times i.i.d. values of the law."""
    support = rng.random((samples, n)) < p
    if law == "rademacher":
        values = rng.choice([-1.0, 1.0], size=(samples, n))
    elif law == "gaussian":
        values = rng.standard_normal((samples, n))
    elif law == "uniform":
        values = rng.uniform(-1.0, 1.0, size=(samples, n))
    else:
        raise ToyInputError(f"unknown law {law!r}: use one of {', '.join(LAWS)}")
    return support * values


def simulate_improvement(w, p: float, law: str, m: int, samples: int = 200_000,
                         seed: int = 0, batch: int = 50_000) -> tuple[float, float]:
    """Monte Carlo estimate of I and its standard error (an independent check of the exact I)."""
    w = np.asarray(w, dtype=np.float64)
    a_matrix = w.T @ w
    rng = np.random.default_rng(seed)
    values = []
    done = 0
    while done < samples:
        size = min(batch, samples - done)
        x = sample_inputs(size, w.shape[1], p, law, rng)
        xhat = (x @ a_matrix.T) ** m
        values.append(2 * np.sum(x * xhat, axis=1) - np.sum(xhat * xhat, axis=1))
        done += size
    values = np.concatenate(values)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


# ------------------------------------------------------------------ the experiment

def grid_cell(d: int, n: int, p: float, law: str, m: int, steps: int = 1500, seed: int = 0,
              device="cpu", train: bool = True) -> dict:
    """Every construction's exact I at one (p, d), with the bound shape and the ratio."""
    mono_closed = float(monosemantic_optimum(law, Fraction(p), d, m)) if d <= n else None
    mono = exact_improvement(monosemantic_weights(d, n, p, law, m), p, law, m)
    cell = {"d": d, "n": n, "p": p, "m": m, "law": law,
            "bound_shape": bound_shape(p, d, m),
            "monosemantic": mono, "monosemantic_closed_form": mono_closed,
            "random_code": best_code(random_code, d, n, p, law, m, seed),
            "sign_code": best_code(sup_sign_code, d, n, p, law, m, seed)}
    if train:
        w = train_weights(d, n, p, law, m, steps=steps, seed=seed, device=device)
        from_random = exact_improvement(w, p, law, m)
        # the same ascent started from the best code (gradient ascent never lowers I much)
        code = max(("random_code", random_code), ("sign_code", sup_sign_code),
                   key=lambda kv: cell[kv[0]]["I"])
        info = cell[code[0]]
        start = (math.sqrt(info["scale"]) * pad_columns(code[1](d, info["features"], seed), n)
                 if info["features"] else None)
        refined = (exact_improvement(train_weights(d, n, p, law, m, steps=steps, seed=seed,
                                                   device=device, init=start, lr=0.005),
                                     p, law, m) if start is not None else 0.0)
        cell["trained"] = {"I": max(from_random, refined), "from_random": from_random,
                           "from_best_code": refined, "steps": steps}
    candidates = {"monosemantic": mono, "random_code": cell["random_code"]["I"],
                  "sign_code": cell["sign_code"]["I"]}
    if train:
        candidates["trained"] = cell["trained"]["I"]
    best = max(candidates, key=candidates.get)
    cell["best"] = best
    cell["best_I"] = candidates[best]
    cell["ratio"] = candidates[best] / cell["bound_shape"]
    if m == 1:
        cell["linear_optimum"] = p * float(law_moment(law, 2)) * min(d, n)
    return cell


def default_n(d: int, m: int) -> int:
    """Features for a grid row: 2 d^m (the bounds need n > d^m), at least 2d."""
    return max(2 * d ** m, 2 * d)
