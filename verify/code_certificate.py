"""Structural certificate of networks with combinatorial codes (`--input-code rs` /
`--output-code rs`), recomputed from the stored weights in exact integer arithmetic.

The proof (docs/proofs/rs-codes.md) needs, for every output j = AND(a_j, b_j) of the circuit:

1. the input code is a block code: c blocks of q coordinates, every feature exactly one
   weight-1 entry per block (its symbol sym[f, s]); no bias;
2. two distinct features agree in at most L blocks;
3. the read-out is y_j = sum_s g_{j,s} + beta_j where g_{j,s}, the part of y_j that flows
   through the hidden neurons of block s, equals the number of active pairs whose symbols at
   block s are {sym[a_j, s], sym[b_j, s]} on every input with at most K active features;
4. c + beta_j > t and 2 L floor(K^2/4) + beta_j <= t (t: the module's decision threshold).

Everything is read from the module (`module.layers()`, input map, threshold): the weights and
biases must be integers; the composed read-out M = R W2 (or the stored read-out) is computed
exactly; (3) is checked by evaluating, for every (output, block), the neurons' integer
pre-activations on every count vector (x, y), x + y <= K, of the two symbols the neurons may read
(every neuron must read only those two coordinates of its block); (2) by checking that for every
set of L + 1 blocks the features' symbol tuples are distinct, or, when that is too many sets,
by recognising the Reed-Solomon code of the recorded parameters (its field checked
exhaustively; distinct polynomials of degree <= lambda agree in <= lambda points). The
network's meta is used only to know (q, c) and which code to try to recognise; any mismatch
makes the certificate not applicable (verdict None). Definite failures are replayed on the
module before they are reported as counterexamples (verdict False).
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import torch
from scipy import sparse

from compiler.superposed.codes import CodeError
from compiler.superposed.rs_codes import (RSParams, field_of, max_agreement_subsets,
                                          subset_checks, symbols, code_matrix)
from compiler.superposed.rs_compile import circuit_terms_and_sparsity
from compiler.superposed.rs_terms import Layout, thresholds
from dsl.semantics import DONT_CARE, evaluate_active

from .compare import decision_threshold
from .report import returns_report
from .smt import module_layers

SUBSET_BUDGET = 400_000_000     # (block sets) x features sorted by the direct agreement check
ENTRY_CHUNK = 1 << 21           # read-out entries evaluated at once
LAYOUTS = {(False, True, False, False): "codes in and out", (False, True, False): "input code",
           (True, False, False): "output code"}


def is_rs_coded(net) -> bool:
    """Whether the compiler says `net` carries combinatorial codes (the certificate then tries
    to recognise them; it trusts nothing else from the meta)."""
    meta = getattr(net, "meta", None)
    return isinstance(meta, dict) and isinstance(meta.get("codes"), dict) \
        and meta["codes"].get("kind") == "rs"


class NotApplicable(Exception):
    """The weights do not have the shape the certificate proves."""


@returns_report
def verify_rs_certificate(circuit, net, module, max_counterexamples: int = 20,
                          subset_budget: int = SUBSET_BUDGET) -> dict:
    """Prove the module exact on the circuit's whole domain from its weights (module
    docstring). Returns a report like verify/structural.py's, with a `certificate` section."""
    start = time.perf_counter()
    report = {"method": "structural", "inputs_checked": None, "counterexamples": [],
              "min_margin": None}
    threshold = None
    try:
        threshold = decision_threshold(module)
        cert = _Certificate(circuit, net, module, threshold, subset_budget)
    except (NotApplicable, CodeError, ValueError, KeyError, TypeError) as exc:
        return _finish(report, None, 0, circuit.n_outputs, 0, [str(exc)], start, threshold, {})
    failing = np.flatnonzero(~cert.proved)
    counterexamples, unconfirmed = [], 0
    for j in failing:
        if len(counterexamples) >= max_counterexamples:
            break
        cx = cert.counterexample(int(j))
        if cx is not None:
            counterexamples.append(cx)
        else:
            unconfirmed += 1
    reasons = list(cert.reasons)
    if len(failing):
        verified = False if counterexamples else None
        reasons.append(f"{len(failing):,} outputs not proved: " + cert.why(failing))
    else:
        verified = True
    report["counterexamples"] = counterexamples
    if verified:
        report["min_margin"] = cert.margin
        report["min_margin_is_lower_bound"] = cert.margin_is_bound
    return _finish(report, verified, int(cert.proved.sum()), circuit.n_outputs, len(failing),
                   reasons, start, threshold, cert.summary)


def _finish(report, verified, proved, total, failing, reasons, start, threshold, summary):
    report.update({
        "verified": verified, "outputs_checked": int(proved), "outputs_total": int(total),
        "outputs_failing": int(failing), "not_applicable": reasons,
        "note": "exact integer certificate from the stored weights of a network with "
                "combinatorial codes (docs/proofs/rs-codes.md); outputs decided as "
                f"y > {threshold!r}",
        "seconds": round(time.perf_counter() - start, 3), "threshold": threshold,
        "certificate": summary,
    })
    return report


def _csr(layer, width_in=None) -> sparse.csr_matrix:
    """The layer's weights as an exact float64 CSR (repeated entries summed, as the module
    sums them)."""
    mat = sparse.csr_matrix((layer.vals, (layer.rows, layer.cols)),
                            shape=(layer.n_out, layer.n_in if width_in is None else width_in))
    mat.sum_duplicates()
    mat.eliminate_zeros()
    return mat


def _integers(*arrays) -> bool:
    return all(np.all(np.isfinite(a)) and np.all(a == np.round(a)) for a in arrays)


class _Certificate:
    """The checks, in order; `proved[j]` per output after construction."""

    def __init__(self, circuit, net, module, threshold, subset_budget):
        self.circuit, self.module, self.threshold = circuit, module, threshold
        self.reasons = []
        try:
            self.params = RSParams.from_dict(net.meta["codes"]["rs"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise NotApplicable("no combinatorial code parameters to recognise") from None
        # the terms come from the circuit, never from the network (CodeError: not coded gates)
        self.terms, self.K = circuit_terms_and_sparsity(circuit)
        q, c, m = self.params.q, self.params.c, circuit.n_inputs
        if q < 1 or c < 1:
            raise NotApplicable("code parameters out of range")
        self.q, self.c, self.m = q, c, m
        layers = module_layers(module)
        key = tuple(layer.relu for layer in layers)
        if key not in LAYOUTS:
            raise NotApplicable(f"layers with relu {list(key)} are not a coded universal AND")
        self.layout = LAYOUTS[key]
        for layer in layers:
            if not _integers(layer.vals, layer.bias):
                raise NotApplicable("weights or biases that are not integers")
        input_map = module.input_map.detach().cpu().numpy().astype(np.int64)
        if len(input_map) != m or len(np.unique(input_map)) != m:
            raise NotApplicable("inputs do not map to distinct columns")
        if layers[-1].n_out != circuit.n_outputs:
            raise NotApplicable("the read-out does not have one row per output")
        first = _csr(layers[0])[:, input_map]                 # columns = features
        if self.layout == "output code":
            self.sym = self._symbols_from_hidden(first)
            enc_rows, enc_cols = code_matrix(self.sym, q)
            enc = sparse.csr_matrix((np.ones(len(enc_rows)), (enc_rows, enc_cols)),
                                    shape=(c * q, m))
            grid = self._recorded_layout()
            h_rows, h_cols, h_vals, _, _ = grid.hidden()
            hidden = sparse.csr_matrix((h_vals, (h_rows, h_cols)), shape=(grid.n, c * q))
            composed = hidden @ enc
            if composed.shape != first.shape or abs(composed - first).max() != 0:
                raise NotApplicable("the hidden layer is not the universal count layer of a "
                                    "block code")
            self.hidden, self.h_bias = hidden.tocsr(), layers[0].bias
            rest = layers[1:]
        else:
            if layers[0].n_out != c * q or np.any(layers[0].bias != 0):
                raise NotApplicable(f"the input code is not {c} blocks of {q} without bias")
            self.sym = self._symbols_from_code(first)
            self.hidden, self.h_bias = _csr(layers[1]), layers[1].bias
            rest = layers[2:]
        if len(rest) == 2:
            w2, dec = _csr(rest[0]), _csr(rest[1])
            self.M = (dec @ w2).tocsr()
            self.beta = dec @ rest[0].bias + rest[1].bias
            mags = [w2, dec]
        else:
            self.M, self.beta = _csr(rest[0]), rest[0].bias
            mags = [self.M]
        self.M.eliminate_zeros()
        self._exact_in_dtype(first, mags, rest)
        self.counts_ok, self.count_witness = self._term_counts()
        weight = self.terms.weight
        self._agreement(subset_budget, weight)
        t, beta = self.threshold, self.beta
        self.bound = self.L * weight                            # per output
        live = weight > 0
        self.active_ok = ~live | (c + beta > t)                 # no term: never true
        self.inactive_ok = self.bound + beta <= t
        self.proved = self.counts_ok & self.active_ok & self.inactive_ok
        margins = np.minimum(np.where(live, c + beta - t, np.inf), t - (self.bound + beta))
        self.margin = float(margins.min(initial=math.inf)) if len(margins) else None
        self.margin_is_bound = bool(np.any((t - (self.bound + beta)) < (c + beta - t)))
        self.summary = {
            "kind": "rs", "layout": self.layout, "q": q, "blocks": c, "sparsity": self.K,
            "term_arities": list(self.terms.arities),
            "agreement_max": self.L, "agreement_check": self.how,
            "score_active_min": c, "score_inactive_max": int(self.bound.max(initial=0)),
            "counts_exact": int(self.counts_ok.sum()), "outputs": int(len(beta)),
            "proved": bool(self.proved.all()),
        }

    def _recorded_layout(self) -> Layout:
        """The count layout of the recorded arities (only used to recognise a hidden layer
        that reads the features directly; every count is re-checked below)."""
        arities = tuple(self.params.arities)
        if not arities or min(arities) < 1 or max(arities) > self.K:
            raise NotApplicable(f"recorded term arities {list(arities)} do not fit sparsity "
                                f"{self.K}")
        return Layout(self.c, self.q, self.K, arities)

    # ---------------------------------------------------------------- symbols

    def _symbols_from_code(self, enc) -> np.ndarray:
        """sym [m, c] from the input code: exactly one weight-1 entry per feature and block."""
        q, c, m = self.q, self.c, self.m
        coo = enc.tocoo()
        if len(coo.data) != m * c or np.any(coo.data != 1):
            raise NotApplicable("the input code is not one weight-1 entry per feature and block")
        block = coo.row // q
        per = np.bincount(coo.col * c + block, minlength=m * c)
        if np.any(per != 1):
            raise NotApplicable("the input code is not one weight-1 entry per feature and block")
        sym = np.zeros((m, c), dtype=np.int64)
        sym[coo.col, block] = coo.row % q
        return sym

    def _symbols_from_hidden(self, hidden) -> np.ndarray:
        """sym [m, c] from the single-symbol neurons (lowest arity, first threshold) of a
        hidden layer that reads the features directly: their supports must partition the
        features in every block."""
        q, c, m = self.q, self.c, self.m
        grid = self._recorded_layout()
        if hidden.shape[0] != grid.n:
            raise NotApplicable(f"the hidden layer does not have the {grid.n:,} neurons of "
                                "the recorded count layout")
        r0 = grid.arities[0]
        T, S = len(thresholds(r0, self.K)), len(grid.sets[r0])
        s, a = np.meshgrid(np.arange(c), np.arange(q), indexing="ij")
        rows = grid.h_off[r0] + (s.ravel() * S + a.ravel()) * T
        coo = hidden[rows].tocoo()
        if np.any(coo.data != 1):
            raise NotApplicable("single-symbol neurons with weights other than 1")
        block, symbol = coo.row // q, coo.row % q
        per = np.bincount(coo.col * c + block, minlength=m * c)
        if np.any(per != 1):
            raise NotApplicable("single-symbol neurons do not partition the features")
        sym = np.zeros((m, c), dtype=np.int64)
        sym[coo.col, block] = symbol
        return sym

    # ---------------------------------------------------------------- exactness in the dtype

    def _exact_in_dtype(self, first, mags, rest) -> None:
        """Every partial sum the module forms is an integer below 2^bits of its dtype."""
        K = self.K
        h_abs = abs(self.hidden)
        if self.layout == "output code":
            row_max = np.asarray(abs(first).max(axis=1).todense()).ravel()
            pre = K * row_max + np.abs(self.h_bias)
        else:
            pre = K * np.asarray(h_abs.sum(axis=1)).ravel() + np.abs(self.h_bias)
        bound = max(float(K), float(pre.max(initial=0.0)))
        z = pre
        for mat, layer in zip(mags, rest):
            z = abs(mat) @ z + np.abs(layer.bias)
            bound = max(bound, float(z.max(initial=0.0)))
        bits = 1 - int(round(math.log2(float(torch.finfo(self.module.dtype).eps))))
        if bound >= 2.0 ** bits:
            raise NotApplicable(f"sums may reach {bound:g} >= 2^{bits}, where "
                                f"{self.module.dtype} stops being exact")

    # ---------------------------------------------------------------- term counts

    def _term_counts(self):
        """ok[j]: for every block s, the read-out's part through block s's neurons equals the
        number of active r-subsets whose symbol set at s is one of output j's coordinates
        (the symbol sets of its terms there, each distinct (arity, set) once), on every count
        vector over the symbols U_j(s) of j's features with at most K active features; every
        such neuron must read only coordinates of U_j(s). Also, per output, its first wrong
        block and the index of a count vector where it is wrong (or -1)."""
        groups = _Groups(self.sym, self.terms, self.c)
        hidden = self.hidden.tocsr()
        hidden.sort_indices()
        nnz_row = np.diff(hidden.indptr)
        neuron_block = _neuron_blocks(hidden, self.q)
        keys = np.repeat(np.arange(hidden.shape[0]), nnz_row) * np.int64(self.c * self.q) \
            + hidden.indices
        n_out = self.M.shape[0]
        ok = np.ones(n_out, dtype=bool)
        witness = np.full((n_out, 2), -1, dtype=np.int64)       # (block, count vector index)
        M = self.M
        M.sort_indices()
        row_nnz = np.diff(M.indptr)
        step = max(1, ENTRY_CHUNK // max(1, int(row_nnz.max(initial=1)) * self.c))
        for start in range(0, n_out, step):
            stop = min(n_out, start + step)
            lo_e, hi_e = M.indptr[start], M.indptr[stop]
            j = np.repeat(np.arange(start, stop), row_nnz[start:stop])
            i = M.indices[lo_e:hi_e]
            val = M.data[lo_e:hi_e]
            s = neuron_block[i]
            bad = s < 0                                          # constant or multi-block neuron
            ok[j[bad]] = False
            j, i, val, s = j[~bad], i[~bad], val[~bad], s[~bad]
            chunk = groups.chunk(start, stop, self.K)
            for u, part in chunk.items():
                g_ids, U, configs, target = part                  # groups of u symbols
                pos = chunk_lookup(g_ids, (j - start) * self.c + s)
                sel = pos >= 0
                if not sel.any() and not len(g_ids):
                    continue
                jj, ii, vv, gg = j[sel], i[sel], val[sel], pos[sel]
                w = np.stack([_lookup(keys, hidden.data, ii * (self.c * self.q)
                                      + s[sel] * self.q + U[gg, p]) for p in range(u)], axis=1) \
                    if u else np.zeros((len(ii), 0))
                covered = (w != 0).sum(axis=1) == nnz_row[ii]
                ok[jj[~covered]] = False
                pre = w @ configs.T + self.h_bias[ii][:, None]
                contrib = vv[:, None] * np.maximum(pre, 0.0)
                got = np.stack([np.bincount(gg, weights=contrib[:, k], minlength=len(g_ids))
                                for k in range(len(configs))], axis=1)
                wrong = got != target
                bad_g = np.flatnonzero(wrong.any(axis=1))
                if len(bad_g):
                    out_j = g_ids[bad_g] // self.c + start
                    ok[out_j] = False
                    first_cfg = wrong[bad_g].argmax(axis=1)
                    keep = witness[out_j, 0] < 0
                    witness[out_j[keep]] = np.stack([g_ids[bad_g][keep] % self.c,
                                                     first_cfg[keep] * 0 + first_cfg[keep]],
                                                    axis=1)
                    self._witness_cfg = getattr(self, "_witness_cfg", {})
                    for o, g, k in zip(out_j[keep], bad_g[keep], first_cfg[keep]):
                        self._witness_cfg[int(o)] = (U[g, :u].copy(), configs[k].copy())
        return ok, witness

    # ---------------------------------------------------------------- agreement

    def _agreement(self, budget, weight) -> None:
        """L (set on self), an upper bound on the blocks two distinct features agree in, proved
        directly (block subsets) or by recognising the Reed-Solomon code; the bound on the score
        of an output none of whose terms is active is then L * weight[j]."""
        c, m = self.c, self.m
        t, beta = self.threshold, self.beta
        live = weight > 0
        need = np.floor((t - beta[live]) / weight[live]).astype(np.int64) if live.any() \
            else np.array([c])
        want = int(np.clip(need.min(initial=c), 0, c))
        self.how = "block subsets"
        if subset_checks(c, want) * m <= budget:
            # L = c is always true (a block is agreed on or not); search the smallest L >= want
            L = next((x for x in range(want, c) if subset_checks(c, x) * m <= budget
                      and max_agreement_subsets(self.sym, x)), c)
        else:
            L = self._recognise()
        self.L = int(min(L, c))

    def _recognise(self) -> int:
        """lambda, when the symbols are the Reed-Solomon code of the recorded parameters over a
        field whose tables pass the axioms; NotApplicable otherwise."""
        self.how = "Reed-Solomon recognised"
        p = self.params
        if p.m != self.m or p.q ** (p.lam + 1) < self.m or p.c > p.q + 1:
            raise NotApplicable("the recorded code parameters do not fit this circuit")
        field = field_of(p)
        problems = field.problems()
        if problems:
            raise NotApplicable(f"GF({p.q}) tables are not a field: {'; '.join(problems)}")
        if not np.array_equal(symbols(p, field), self.sym):
            raise NotApplicable("the input code is not the Reed-Solomon code of the recorded "
                                "parameters (and too large for the direct agreement check)")
        return p.lam

    # ---------------------------------------------------------------- failures

    def why(self, failing) -> str:
        """The kinds of failure among `failing` outputs."""
        parts = []
        for name, mask in (("term counts not exact", ~self.counts_ok),
                           ("an active term does not cross the threshold", ~self.active_ok),
                           (f"inactive score bound (agreement <= {self.L}) reaches "
                            "the threshold", ~self.inactive_ok)):
            count = int(mask[failing].sum())
            if count:
                parts.append(f"{name} ({count:,})")
        return "; ".join(parts)

    def counterexample(self, j: int):
        """An input on which output j is wrong, replayed on the module, or None."""
        terms = self.output_terms(j)
        candidates = [list(t) for t in terms if len(t) <= self.K]
        witness = getattr(self, "_witness_cfg", {}).get(j)
        if witness is not None:
            s = int(self.count_witness[j, 0])
            U, counts = witness
            members = sorted({f for t in terms for f in t})
            for with_operands in (True, False):
                got = self._realise(s, U, counts, members, with_operands)
                if got is not None:
                    candidates.append(got)
        if not self.inactive_ok[j]:
            candidates += self._inactive_candidates(j, terms)
        for active in candidates:
            cx = self._replay(active, j)
            if cx is not None:
                return cx
        return None

    def output_terms(self, j: int) -> list:
        """The feature tuples of output j's terms."""
        out = []
        for r in self.terms.arities:
            rows = np.flatnonzero(self.terms.outputs[r] == j)
            out += [tuple(int(f) for f in self.terms.features[r][k]) for k in rows]
        return out

    def _realise(self, s, U, counts, members, with_operands):
        """counts[p] features with symbol U[p] at block s (at most K in all), preferring (or
        avoiding) the output's own features."""
        col = self.sym[:, s]
        chosen = []
        for a, x in zip(U.tolist(), counts.tolist()):
            pool = np.flatnonzero(col == a)
            own = [f for f in members if col[f] == a]
            rest = [int(f) for f in pool if f not in own]
            order = (own + rest) if with_operands else rest
            if len(order) < x:
                return None
            chosen += order[:int(x)]
        return sorted(set(chosen)) if len(chosen) <= self.K else None

    def _inactive_candidates(self, j, terms, limit: int = 1 << 22, tries: int = 4):
        """Active sets that score high on output j while none of its terms is active: for
        pair-sized sets, the best-matching pairs of features (all pairs when there are at most
        `limit`)."""
        m = self.m
        if m * (m - 1) // 2 > limit or self.K < 2:
            return []
        f, g = np.triu_indices(m, 1)
        score = np.zeros(len(f), dtype=np.int64)
        for r in self.terms.arities:
            for k in np.flatnonzero(self.terms.outputs[r] == j):
                feats = self.terms.features[r][k]
                for s in range(self.c):
                    want = set(self.sym[feats, s].tolist())
                    score += np.isin(self.sym[f, s], list(want)) & np.isin(self.sym[g, s], list(want))
        term_sets = {frozenset(t) for t in terms}
        best = np.argsort(-score, kind="stable")[:64]
        out = []
        for k in best:
            pair = (int(f[k]), int(g[k]))
            if any(t <= frozenset(pair) for t in term_sets):
                continue
            out.append(list(pair))
            if len(out) >= tries:
                break
        return out

    def _replay(self, active, j):
        active = sorted(set(int(v) for v in active))
        if len(active) > self.K:
            return None
        row = np.array([active], dtype=np.int64)
        value = float(self.module.forward_active(torch.as_tensor(row))[0, j])
        expected = evaluate_active(self.circuit, row).dense()[0, j]
        if expected == DONT_CARE or (value > self.threshold) == (expected == 1):
            return None
        name = self.circuit.output_names([j])[0]
        return {"active": self.circuit.input_names(active), "wrong": [name],
                "values": {name: value}}


def _neuron_blocks(hidden, q) -> np.ndarray:
    """The block of every neuron's inputs: -1 for a neuron reading nothing, -2 for one reading
    several blocks."""
    nnz_row = np.diff(hidden.indptr)
    h_rows = np.repeat(np.arange(hidden.shape[0]), nnz_row)
    blocks = hidden.indices // q
    lo = np.full(hidden.shape[0], np.iinfo(np.int64).max)
    hi = np.full(hidden.shape[0], -1, np.int64)
    if len(h_rows):
        np.minimum.at(lo, h_rows, blocks)
        np.maximum.at(hi, h_rows, blocks)
    lo = np.where(nnz_row > 0, lo, -1)
    return np.where(lo == hi, lo, np.where(nnz_row > 0, -2, -1))


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """The distinct values of an int64 array, sorted (a sort, not numpy's hash-based unique)."""
    a = np.sort(a)
    return a[np.concatenate([[True], a[1:] != a[:-1]])] if len(a) else a


def chunk_lookup(sorted_ids: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Position of each `want` in the sorted `sorted_ids`, -1 where absent."""
    if len(sorted_ids) == 0:
        return np.full(len(want), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, want), len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == want, pos, -1)


class _Groups:
    """Per (output, block) group: the symbols U of the output's features at that block, and the
    coordinates it must count (arity, subset of U), from the circuit's terms and the symbol
    table read from the weights."""

    def __init__(self, sym, terms, c):
        self.sym, self.terms, self.c = sym, terms, c
        self.by_output = {r: np.argsort(terms.outputs[r], kind="stable") for r in terms.arities}
        self.bounds = {r: np.searchsorted(terms.outputs[r][self.by_output[r]],
                                          np.arange(terms.n_outputs + 1))
                       for r in terms.arities}
        self._tables = {}

    def chunk(self, start, stop, K) -> dict:
        """{u: (group ids (j - start) * c + s sorted, U [G, u], configs [C, u], target [G, C])}
        for outputs start .. stop - 1."""
        c, sym = self.c, self.sym
        rows_j, rows_r, rows_f = [], [], []
        for r in self.terms.arities:
            lo, hi = self.bounds[r][start], self.bounds[r][stop]
            idx = self.by_output[r][lo:hi]
            rows_j.append(self.terms.outputs[r][idx])
            rows_r.append(np.full(len(idx), r))
            f = np.full((len(idx), max(self.terms.arities)), -1, dtype=np.int64)
            f[:, :r] = self.terms.features[r][idx]
            rows_f.append(f)
        width = max(self.terms.arities) if self.terms.arities else 1
        tj = np.concatenate(rows_j) if rows_j else np.zeros(0, np.int64)
        tr = np.concatenate(rows_r) if rows_r else np.zeros(0, np.int64)
        tf = np.concatenate(rows_f) if rows_f else np.zeros((0, width), np.int64)
        n_groups = (stop - start) * c
        # per group: the distinct symbols of all its terms' features
        ts = np.where(tf[:, None, :] >= 0, sym[np.maximum(tf, 0)].transpose(0, 2, 1), -1)  # [T, c, w]
        gid = ((tj - start) * c)[:, None] + np.arange(c)[None, :]                       # [T, c]
        base = np.int64(int(sym.max(initial=0)) + 1)
        flat_sym = ts.reshape(-1)
        key = np.repeat(gid.ravel(), ts.shape[2]) * base + flat_sym
        key = _sorted_unique(key[flat_sym >= 0])                    # sorted by group, then symbol
        pairs = np.stack([key // base, key % base], axis=1)
        counts = np.bincount(pairs[:, 0], minlength=n_groups)
        offs = np.concatenate([[0], np.cumsum(counts)])
        rank = np.arange(len(pairs)) - offs[pairs[:, 0]]
        umax = int(counts.max(initial=0))
        U = np.full((n_groups, max(umax, 1)), -1, dtype=np.int64)
        U[pairs[:, 0], rank] = pairs[:, 1]
        # each term's coordinate per block: (arity, bit mask of its symbols within U)
        flat_g = gid.ravel()
        flat_s = ts.reshape(-1, ts.shape[2])                   # [T * c, w]
        hit = (U[flat_g][:, :, None] == flat_s[:, None, :]) & (flat_s[:, None, :] >= 0)
        mask = (hit.any(axis=2).astype(np.int64) << np.arange(U.shape[1])).sum(axis=1)
        span = np.int64(1) << U.shape[1]
        key = (flat_g * np.int64(width + 1) + np.repeat(tr, c)) * span + mask
        key = _sorted_unique(key)
        coords = np.stack([key // span // (width + 1), key // span % (width + 1), key % span],
                          axis=1)
        out = {}
        for u in np.flatnonzero(np.bincount(counts)).tolist():
            g_ids = np.flatnonzero(counts == u)
            configs, table = self._table(u, K)
            target = np.zeros((len(g_ids), len(configs)))
            if len(coords):
                sel = counts[coords[:, 0]] == u
                cg = np.searchsorted(g_ids, coords[sel, 0])
                np.add.at(target, cg, table[coords[sel, 1], coords[sel, 2]])
            out[u] = (g_ids, U[g_ids][:, :max(u, 1)], configs, target)
        return out

    def _table(self, u, K):
        """(configs [C, u], table [max arity + 1, 2^u, C]): every count vector over u symbols
        with sum <= K, and the number of r-subsets of such features whose symbols form exactly
        the set `mask` (inclusion-exclusion over the subsets of mask)."""
        if (u, K) in self._tables:
            return self._tables[(u, K)]
        configs = np.array([v for v in itertools.product(range(K + 1), repeat=u)
                            if sum(v) <= K], dtype=np.int64).reshape(-1, u) if u \
            else np.zeros((1, 0), dtype=np.int64)
        R = max(self.terms.arities, default=1)
        table = np.zeros((R + 1, 1 << u, len(configs)))
        sums = np.stack([configs[:, [b for b in range(u) if sub >> b & 1]].sum(axis=1)
                         for sub in range(1 << u)], axis=0)       # [2^u, C]
        for r in range(1, R + 1):
            choose = np.vectorize(lambda v: math.comb(int(v), r))(sums).astype(np.float64)
            for mask in range(1, 1 << u):
                sub = mask
                while sub:
                    sign = -1.0 if (bin(mask).count("1") - bin(sub).count("1")) % 2 else 1.0
                    table[r, mask] += sign * choose[sub]
                    sub = (sub - 1) & mask
        self._tables[(u, K)] = (configs, table)
        return configs, table


def _lookup(keys, values, want):
    """values at `want` in the sorted `keys`, 0 where absent."""
    if len(keys) == 0:
        return np.zeros(len(want))
    pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
    return np.where(keys[pos] == want, values[pos], 0.0)
