"""Inputs and outputs in superposition: random near-orthogonal codes around a channel layer.

With `--input-code D` / `--output-code D'` the network reads v = E x and writes y_code = O r
(random sign codes, stored as explicit linear layers around the channel layer).
`compile_coded` builds the network, `search_coded` finds the smallest channel layer whose
certificate passes, `certify` proves every output exact from the stored weights, and
`CodeTooNarrow` (with `needed_widths`) says which code widths would pass.

Proof: docs/proofs/codes.md
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from dsl import csr
from dsl.constants import splitmix64

from scipy import sparse

from ..target import TargetUnavailable
from ..network import CHANNEL, Layer, Network, input_families, output_families
from .channels import Assignment, ChannelSpec, listen_sets
from .search import attempt
from .select import superposable

ETA = 0.02            # a silent neuron's pre-activation is at most -ETA (exact zeros)
UNIT_ROUNDOFF = 2.0 ** -24   # float32, the module's default number type
MAX_DIM = 1 << 16


class CodeError(TargetUnavailable, ValueError):
    """Codes requested for a circuit or network they cannot serve."""


class CodeTooNarrow(CodeError):
    """No exact network at these code widths; `needed` holds widths that pass."""

    def __init__(self, message: str, needed: dict):
        super().__init__(message)
        self.needed = needed


# ------------------------------------------------------------------ the codes

def sign_code(dim: int, count: int, seed: int, stream: int) -> np.ndarray:
    """float64 [dim, count]: column f is a +-1/sqrt(dim) vector drawn from SplitMix64.

    `stream` separates the input code (0) from the output code (1) of the same seed."""
    if dim <= 0:
        raise CodeError(f"a code needs a positive width, got {dim}")
    sub_seed = int(splitmix64(int(seed), stream, 1)[0])
    bits = splitmix64(sub_seed, 0, dim * count) >> np.uint64(63)
    signs = 1.0 - 2.0 * bits.astype(np.float64)
    return signs.reshape(count, dim).T / math.sqrt(dim)


def coherence(code: np.ndarray, block: int = 2048) -> float:
    """max |<e_f, e_g>| over f != g, exactly (sign codes: integer Gram entries / dim)."""
    dim, count = code.shape
    signs = np.sign(code).astype(np.float32)       # exact integer products in float32
    best = 0.0
    for start in range(0, count, block):
        gram = signs[:, start:start + block].T @ signs
        idx = np.arange(gram.shape[0])
        gram[idx, start + idx] = 0.0
        best = max(best, float(np.abs(gram).max(initial=0.0)))
    return best / dim


# ------------------------------------------------------------------ certificate

@dataclass
class Certificate:
    """The exactness proof of a coded channel layer (all arrays per neuron or per output)."""
    ok: bool
    delta: np.ndarray        # bias shift per neuron
    scale: np.ndarray        # read-out scale s_j per output
    offset: np.ndarray       # decoder / read-out bias per output
    nu_plus: np.ndarray      # input cross-talk bound per neuron (silent side)
    nu_minus: np.ndarray     # input cross-talk bound per channel slot (active side)
    gap: np.ndarray          # LO_j - HI_j before scaling (<= 0: input code too narrow)
    crosstalk: np.ndarray    # X_j, output cross-talk in decoded units
    slack: float             # float rounding bound on a decoded output
    reason: str = ""

    @property
    def margin(self) -> float:
        """Proved minimum margin of a decoded output (distance to the 0.5 threshold)."""
        if len(self.crosstalk) == 0:
            return 0.5
        return float(0.5 - self.crosstalk.max() - self.slack)

    def as_dict(self) -> dict:
        """The certificate's summary for the meta: proved, margin, cross-talk, gap, rounding slack."""
        return {"proved": bool(self.ok), "margin": round(self.margin, 6),
                "input_crosstalk_max": float(max(self.nu_plus.max(initial=0.0),
                                                 self.nu_minus.max(initial=0.0))),
                "gap_min": float(self.gap.min(initial=1.0)),
                "output_crosstalk_max": float(self.crosstalk.max(initial=0.0)),
                "rounding_slack": float(self.slack), "eta": ETA,
                "reason": self.reason or None}


def listen_matrix(spec: ChannelSpec, a: Assignment):
    """scipy CSR [n, m] 0/1: A[i, f] = 1 when neuron i listens to feature f."""
    l_off, l_feat = listen_sets(spec, a)
    return sparse.csr_matrix((np.ones(len(l_feat)), (csr.row_of_each(l_off), l_feat)),
                             shape=(a.n, spec.m))


def readout_matrix(a: Assignment, n_outputs: int, scale: np.ndarray):
    """scipy CSR [m', n]: R[j, i] = s_j for i in C_j."""
    rows = csr.row_of_each(a.c_offsets)
    return sparse.csr_matrix((scale[rows], (rows, a.c_neurons)), shape=(n_outputs, a.n))


def _top_sum(values: np.ndarray, k: int) -> np.ndarray:
    """Per row: the sum of the k largest entries, counting only positive ones."""
    k = min(k, values.shape[1])
    if k <= 0:
        return np.zeros(len(values))
    part = -np.partition(-values, k - 1, axis=1)[:, :k]
    return np.clip(part, 0.0, None).sum(axis=1)


def _top_prefix(values: np.ndarray, k: int) -> np.ndarray:
    """[rows, k + 1]: column r is the sum of the r largest positive entries of each row."""
    k = min(k, values.shape[1])
    out = np.zeros((len(values), k + 1))
    if k > 0:
        top = -np.partition(-values, k - 1, axis=1)[:, :k]         # the k largest
        top = -np.sort(-top, axis=1)                                # descending
        out[:, 1:] = np.cumsum(np.clip(top, 0.0, None), axis=1)
    return out


def input_crosstalk(listen, code, K: int, block_cells: int = 1 << 24):
    """(W1 = A E^T, nu_plus, neg_prefix): the hidden weights on v; per neuron the bound on
    sum_{g in S} N[i, g] over |S| <= K, N = A E^T E - A; and the sums of the r = 0..K most
    negative entries of each row (the active side, `slot_minus`)."""
    dim = code.shape[0]
    signs = np.sign(code).astype(np.float32)
    w1_int = np.asarray(listen @ signs.T.astype(np.float64)).astype(np.float32)   # integers
    w1 = w1_int.astype(np.float64) / math.sqrt(dim)
    n, m = listen.shape
    plus = np.zeros(n)
    neg = np.zeros((n, min(K, m) + 1))
    step = max(1, block_cells // max(m, 1))
    for start in range(0, n, step):
        stop = min(n, start + step)
        # integer products (exact in float32 below 2^24), then / dim
        noise = (w1_int[start:stop] @ signs).astype(np.float64) / dim - listen[start:stop].toarray()
        plus[start:stop] = _top_sum(noise, K)
        neg[start:stop] = _top_prefix(-noise, K)
    return w1, plus, neg


def slot_minus(spec, a, w1, code, neg, K: int) -> np.ndarray:
    """Per channel slot (output j, neuron i): a bound on the negative cross-talk when output j
    is 1. Then at least k_j operands of j are active, so at most K - k_j other features are:
    sum_{f in F_j} max(-N[i, f], 0) + the K - k_j most negative entries of row i."""
    slot_out = csr.row_of_each(a.c_offsets)
    f_len = csr.lengths(spec.f_offsets)[slot_out]
    _, feats = csr.gather_rows(spec.f_offsets, spec.f_features, slot_out)
    neuron = np.repeat(a.c_neurons, f_len)
    own = np.einsum("ij,ji->i", w1[neuron], code[:, feats]) - 1.0    # N[i, f], f in L_i
    own_neg = np.bincount(np.repeat(np.arange(len(slot_out)), f_len),
                          weights=np.clip(-own, 0.0, None), minlength=len(slot_out))
    others = np.clip(K - spec.k[slot_out], 0, neg.shape[1] - 1)
    return own_neg + neg[a.c_neurons, others]


def output_crosstalk(readout, listen, out_code, K: int, block_cells: int = 1 << 24):
    """(O R, X): code-layer weights and per-output bounds on the decoded cross-talk
    sum_i Gamma[j, i] h_i, Gamma = O^T O R - R, using h_i <= |S & L_i|."""
    code_w = np.asarray((readout.T @ out_code.T).T)      # [D', n] = O R
    n_out = readout.shape[0]
    dim = out_code.shape[0]
    signs = np.sign(out_code).astype(np.float32)
    x = np.zeros(n_out)
    listen_t = listen.T.tocsr()                           # [m, n]
    readout_t = readout.T.tocsr()                         # [n, m']
    step = max(1, block_cells // max(readout.shape[1], listen.shape[1], n_out, 1))
    for start in range(0, n_out, step):
        stop = min(n_out, start + step)
        gram = (signs[:, start:stop].T @ signs).astype(np.float64) / dim    # exact O^T O rows
        gamma = np.asarray((readout_t @ gram.T).T) - readout[start:stop].toarray()
        f = np.asarray((listen_t @ np.abs(gamma).T).T)    # [block, m]
        x[start:stop] = _top_sum(f, K)
    return code_w, x


def certify(spec: ChannelSpec, a: Assignment, in_code, out_code) -> tuple[Certificate, dict]:
    """Certificate of the coded channel layer, and the weights that realise it."""
    K = spec.m if spec.sparsity is None else min(spec.sparsity, spec.m)
    listen = listen_matrix(spec, a)
    n_out = spec.n_outputs
    if in_code is not None:
        w1, nu_p, neg = input_crosstalk(listen, in_code, K)
        nu_m = slot_minus(spec, a, w1, in_code, neg, K)
    else:
        w1, nu_p, nu_m = None, np.zeros(a.n), np.zeros(len(a.c_neurons))
    delta = nu_p + ETA
    out_of_slot = csr.row_of_each(a.c_offsets)
    lo = np.bincount(out_of_slot, weights=np.maximum(1.0 - delta[a.c_neurons] - nu_m, 0),
                     minlength=n_out)
    t = a.channel_sizes().astype(np.float64)
    hi = np.where(t > 1, t - 1.0 - ETA, 0.0)
    gap = lo - hi
    weights = {"w1": w1, "listen": listen, "delta": delta}
    if np.any(gap <= 0):
        bad = int((gap <= 0).sum())
        cert = Certificate(False, delta, np.zeros(n_out), np.zeros(n_out), nu_p, nu_m, gap,
                           np.full(n_out, np.inf), 0.0,
                           f"input cross-talk closes the gap of {bad} outputs")
        return cert, weights
    scale = 1.0 / gap
    offset = 0.5 - scale * (lo + hi) / 2.0
    readout = readout_matrix(a, n_out, scale)
    if out_code is not None:
        code_w, x = output_crosstalk(readout, listen, out_code, K)
    else:
        code_w, x = None, np.zeros(n_out)
    weights.update(readout=readout, code_w=code_w)
    slack, hidden_err = rounding_slack(spec, a, in_code, out_code, w1, listen, delta, readout,
                                       code_w, offset, K)
    ok = bool(np.all(0.5 - x - slack > 0)) and hidden_err < ETA / 2
    reason = "" if ok else ("output cross-talk reaches the threshold" if np.any(0.5 - x - slack <= 0)
                            else "float rounding exceeds the silent-neuron gap")
    return Certificate(ok, delta, scale, offset, nu_p, nu_m, gap, x, slack, reason), weights


def _gamma(terms: float) -> float:
    terms = max(float(terms), 1.0)
    return terms * UNIT_ROUNDOFF / (1.0 - terms * UNIT_ROUNDOFF)


def rounding_slack(spec, a, in_code, out_code, w1, listen, delta, readout, code_w, offset,
                   K) -> tuple[float, float]:
    """A bound on |float32 forward - exact forward| of a decoded output, using sparsity: at
    most K inputs are 1, silent neurons are exactly 0 (their pre-activation is <= -ETA and the
    hidden rounding error is checked to stay below ETA / 2), at most P neurons fire, each
    h_i <= K. Weights are rounded to float32 on load: that error is counted as one more term.
    Returns (bound on a decoded output, bound on a hidden pre-activation)."""
    theta = a.neuron_k - 1.0
    if in_code is not None:
        e_max = float(np.abs(in_code).max())
        v_mag = K * e_max
        v_err = _gamma(K + 1) * v_mag
        row_abs = np.abs(w1).sum(axis=1)
        mag_h = row_abs * v_mag + theta + delta
        err_h = row_abs * v_err + _gamma(in_code.shape[0] + 2) * mag_h
    else:
        mag_h = K + theta + delta
        err_h = _gamma(K + 2) * mag_h * np.ones(a.n)
    hidden_err = float(err_h.max(initial=0.0))
    per_feature = np.diff(listen.tocsc().indptr)        # neurons listening to each feature
    fire = int(min(a.n, K * per_feature.max(initial=0)))  # firing neurons on one input, at most
    if out_code is None:
        r_max = float(np.abs(readout.data).max(initial=0.0))
        mag = fire * K * r_max + np.abs(offset).max(initial=0.0)
        return float(fire * r_max * hidden_err + _gamma(fire + 2) * mag), hidden_err
    c_max = float(np.abs(code_w).max(initial=0.0))
    code_mag = fire * K * c_max
    code_err = fire * c_max * hidden_err + _gamma(fire + 2) * code_mag
    o_abs = np.abs(out_code).sum(axis=0).max()
    mag = o_abs * code_mag + np.abs(offset).max(initial=0.0)
    return float(o_abs * code_err + _gamma(out_code.shape[0] + 2) * mag), hidden_err


# ------------------------------------------------------------------ assignments and search

def one_per_output(spec: ChannelSpec) -> Assignment:
    """Channels of one neuron: neuron j listens to F_j only (exact for any sparsity)."""
    n = spec.n_outputs
    return Assignment(n, csr.uniform(n, 1), np.arange(n, dtype=np.int64), spec.k.astype(np.int64))


def search_coded(spec, in_code, out_code, options, log: list):
    """(assignment, certificate, weights) of the fewest neurons whose certificate passes, or
    (None, certificate of one neuron per output, None)."""
    base = one_per_output(spec)
    cert, weights = certify(spec, base, in_code, out_code)
    log.append({"n": base.n, "t": 1, "certified": cert.ok, "margin": cert.margin})
    if not cert.ok:
        return None, cert, None
    best = (base, cert, weights)
    K = spec.m if spec.sparsity is None else min(spec.sparsity, spec.m)
    t = options.channel or int(min(K - int(spec.k.min()) + 2, 16))   # design: overlaps <= 1
    hi = min(options.width or spec.n_outputs - 1, spec.n_outputs - 1)
    lo = max(t + 1, 2)
    if spec.n_outputs < 8 or hi < lo:
        return best

    def try_width(n):
        a, left = attempt(spec, n, t, options.construction, options.seed, options.repair_rounds)
        if left:
            log.append({"n": n, "t": t, "failing": int(left)})
            return None
        c, w = certify(spec, a, in_code, out_code)
        log.append({"n": n, "t": t, "certified": c.ok, "margin": c.margin})
        return (a, c, w) if c.ok else None

    found = try_width(hi)              # least sharing first: if this fails, more sharing fails too
    if found is None or options.width:
        return found or best
    best = found
    while lo < hi:
        mid = (lo + hi) // 2
        got = try_width(mid)
        if got is not None:
            hi, best = mid, got
        else:
            lo = mid + 1
    return best


def needed_widths(spec, in_dim, out_dim, seed: int) -> dict:
    """Code widths at which one neuron per output is certified exact with this seed: double
    the input code while its cross-talk uses more than half of the unit gap, else the output
    code; then bisect each width down (at most by half, 4 steps, the other held)."""
    base = one_per_output(spec)

    def passes(di, do):
        ic = sign_code(di, spec.m, seed, 0) if di else None
        oc = sign_code(do, spec.n_outputs, seed, 1) if do else None
        return certify(spec, base, ic, oc)[0]

    di, do = in_dim, out_dim
    while True:
        cert = passes(di, do)
        if cert.ok:
            break
        input_heavy = di and (bool(np.any(cert.gap <= 0.5)) or not do)
        if input_heavy and di < MAX_DIM:
            di *= 2
        elif do and do < MAX_DIM:
            do *= 2
        else:
            return {}
    for which in ("in", "out"):
        hi = di if which == "in" else do
        if not hi or hi == (in_dim if which == "in" else out_dim):
            continue
        lo = max(hi // 2, 1)
        for _ in range(4):            # within 1/16 of the doubled width: each probe costs m^2 D
            if lo >= hi:
                break
            mid = (lo + hi) // 2
            if passes(mid, do).ok if which == "in" else passes(di, mid).ok:
                hi = mid
            else:
                lo = mid + 1
        di, do = (hi, do) if which == "in" else (di, hi)
    return {k: v for k, v in (("input_code", di), ("output_code", do)) if v}


# ------------------------------------------------------------------ the network

def compile_coded(circuit, options) -> Network:
    """The superposed target with an input and/or output code (see docs/proofs/codes.md)."""
    start = time.perf_counter()
    in_dim, out_dim, seed = options.input_code, options.output_code, options.code_seed
    for name, dim in (("--input-code", in_dim), ("--output-code", out_dim)):
        if dim is not None and not 0 < dim <= MAX_DIM:
            raise CodeError(f"{name} must be a width between 1 and {MAX_DIM:,}, got {dim}")
    positions, spec = superposable(circuit)
    if len(positions) != circuit.n_outputs:
        raise CodeError(f"--input-code / --output-code need every output to be an AND, OR, "
                        f"atleast or copy of input features; {circuit.n_outputs - len(positions):,} "
                        f"of {circuit.n_outputs:,} outputs are not (negations, xor, deeper logic)")
    in_code = sign_code(in_dim, spec.m, seed, 0) if in_dim else None
    out_code = sign_code(out_dim, spec.n_outputs, seed, 1) if out_dim else None
    log = []
    a, cert, weights = search_coded(spec, in_code, out_code, options, log)
    if a is None:
        needed = needed_widths(spec, in_dim, out_dim, seed)
        want = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in needed.items())
        raise CodeTooNarrow(
            f"no exact network at {_widths(in_dim, out_dim)} with code seed {seed}: "
            f"{cert.reason}" + (f" (proved margin {cert.margin:.3g})" if math.isfinite(cert.margin)
                                else "") + "; even one neuron per output "
            "needs wider codes" + (f": {want} passes" if want else ""), needed)
    net = build_network(circuit, spec, a, cert, weights, in_code, out_code, seed)
    net.output_families = output_families(circuit)
    net.input_families = input_families(circuit)
    net.meta.update({
        "construction": options.construction if a.n < spec.n_outputs else "one neuron per output",
        "superposed_outputs": int(circuit.n_outputs), "dense_outputs": 0,
        "channel_neurons": int(a.n), "channel_size": int(a.channel_sizes().max()),
        "search": log[-200:], "search_seconds": round(time.perf_counter() - start, 3),
        "exact_by": "code certificate (compiler/codes.py): channel criterion plus bounded "
                    "cross-talk of the input and output codes",
        "levels": [{"level": 1, "outputs": int(circuit.n_outputs), "over": "coded input features",
                    "feature_sparsity": circuit.sparsity, "channel_neurons": int(a.n)}],
    })
    net.meta["codes"]["search_seconds"] = net.meta["search_seconds"]
    return net


def _widths(in_dim, out_dim) -> str:
    parts = [f"--input-code {in_dim}" if in_dim else "", f"--output-code {out_dim}" if out_dim else ""]
    return " ".join(p for p in parts if p)


def _code_info(code, seed, stream, layer) -> dict:
    dim, count = code.shape
    return {"dim": int(dim), "features": int(count), "kind": "sign +-1/sqrt(dim), SplitMix64",
            "seed": int(seed), "stream": stream, "layer": layer, "params": int(dim * count),
            "coherence": coherence(code)}


def build_network(circuit, spec, a, cert, weights, in_code, out_code, seed: int) -> Network:
    """The coded network: encoder, channel layer, output code and decoder layers (module docstring).

    Args:
        circuit: the circuit compiled.
        spec, a: the channel specification and assignment.
        cert: the passing certificate (its `delta` sets the neuron biases).
        weights: the certificate's weights ("listen", "w1", "readout", ...).
        in_code, out_code: the input / output codes, or None.
        seed: the code seed, recorded in `meta["codes"]`.
    Returns:
        The layered `Network`.
    """
    m, n, n_out = spec.m, a.n, spec.n_outputs
    layers, codes = [], {}
    theta = a.neuron_k - 1.0
    bias_h = -(theta + cert.delta)
    role = (np.full(n, CHANNEL, np.int8), np.arange(n, dtype=np.int64), np.zeros(n, np.int64))
    if in_code is not None:
        layers.append(Layer.from_dense(in_code, np.zeros(in_code.shape[0]), relu=False))
        codes["input"] = _code_info(in_code, seed, "input", 0)
        hidden = Layer.from_dense(weights["w1"], bias_h, relu=True)
    else:
        lst = weights["listen"].tocoo()
        hidden = Layer(m, n, lst.row.astype(np.int64), lst.col.astype(np.int64),
                       lst.data.astype(np.float64), bias_h, True)
    hidden.role, hidden.signal, hidden.part = role
    layers.append(hidden)
    readout = weights["readout"].tocoo()
    if out_code is not None:
        layers.append(Layer.from_dense(weights["code_w"], np.zeros(out_code.shape[0]), relu=False))
        layers.append(Layer.from_dense(out_code.T, cert.offset, relu=False))
        codes["output"] = _code_info(out_code, seed, "output", len(layers) - 1)
    else:
        layers.append(Layer(n, n_out, readout.row.astype(np.int64), readout.col.astype(np.int64),
                            readout.data.astype(np.float64), cert.offset.copy(), relu=False))
    codes.update({"neuron_layers": [layers.index(hidden)], "certificate": cert.as_dict()})
    net = Network("superposed", m, layers, np.arange(m, dtype=np.int64),
                  sparsity=circuit.sparsity, circuit_name=circuit.name)
    net.meta["codes"] = codes
    return net
