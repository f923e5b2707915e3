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

import math
import time

import numpy as np
import torch
from scipy import sparse

from compiler.superposed.codes import CodeError
from compiler.superposed.rs_codes import (RSParams, field_of, max_agreement_subsets,
                                          neuron_index, pair_weight, subset_checks, symbols,
                                          universal_and, code_matrix)
from compiler.superposed.rs_compile import circuit_sparsity, pair_operands
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
        self.first, self.second = pair_operands(circuit)     # CodeError: not pairwise ANDs
        self.K = circuit_sparsity(circuit)
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
            h_rows, h_cols, h_vals, _, _ = universal_and(c, q, self.K)
            hidden = sparse.csr_matrix((h_vals, (h_rows, h_cols)), shape=(self.params.n, c * q))
            if abs(hidden @ enc - first).max() != 0:
                raise NotApplicable("the hidden layer is not the universal AND of a block code")
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
        self.counts_ok, self.count_witness = self._pair_counts()
        self._agreement(subset_budget)
        t, beta = self.threshold, self.beta
        self.active_ok = c + beta > t
        self.inactive_ok = self.bound + beta <= t
        self.proved = self.counts_ok & self.active_ok & self.inactive_ok
        margins = np.minimum(c + beta - t, t - (self.bound + beta))
        self.margin = float(margins.min(initial=math.inf)) if len(margins) else None
        self.margin_is_bound = bool(np.any((t - (self.bound + beta)) < (c + beta - t)))
        self.summary = {
            "kind": "rs", "layout": self.layout, "q": q, "blocks": c, "sparsity": self.K,
            "agreement_max": self.L, "agreement_check": self.how,
            "score_active_min": c, "score_inactive_max": self.bound,
            "pair_counts_exact": int(self.counts_ok.sum()), "outputs": int(len(beta)),
            "proved": bool(self.proved.all()),
        }

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
        """sym [m, c] from the neurons (block s, {a}, rho = 1) of a hidden layer that reads the
        features directly: their supports must partition the features in every block."""
        q, c, m, K = self.q, self.c, self.m, self.K
        if hidden.shape[0] != self.params.n:
            raise NotApplicable("the hidden layer does not have (K-1) c q(q+1)/2 neurons")
        s, a = np.meshgrid(np.arange(c), np.arange(q), indexing="ij")
        rows = neuron_index(c, q, K, s.ravel(), a.ravel(), 1)
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

    # ---------------------------------------------------------------- pair counts

    def _pair_counts(self):
        """ok[j]: for every block s, the read-out's part through block s's neurons counts the
        active pairs with symbols {sym[a_j, s], sym[b_j, s]} on every count vector with at most
        K active features. Also, per output, its first wrong block and the bit mask of the
        count vectors (self.configs) where it is wrong (or -1)."""
        q, c, K = self.q, self.c, self.K
        n_out = self.M.shape[0]
        hidden = self.hidden.tocsr()
        hidden.sort_indices()
        nnz_row = np.diff(hidden.indptr)
        h_rows = np.repeat(np.arange(hidden.shape[0]), nnz_row)
        blocks = hidden.indices // q
        lo = np.full(hidden.shape[0], -1, np.int64)
        hi = np.full(hidden.shape[0], -1, np.int64)
        if len(h_rows):
            lo_b = np.full(hidden.shape[0], np.iinfo(np.int64).max)
            np.minimum.at(lo_b, h_rows, blocks)
            np.maximum.at(hi, h_rows, blocks)
            lo = np.where(nnz_row > 0, lo_b, -1)
        neuron_block = np.where(lo == hi, lo, -2)             # -1 empty, -2 spans blocks
        keys = h_rows * np.int64(c * q) + hidden.indices      # sorted (CSR, sorted indices)
        xs, ys = np.array([(x, y) for x in range(K + 1) for y in range(K + 1 - x)]).T
        ok = np.ones(n_out, dtype=bool)
        witness = np.full((n_out, 2), -1, dtype=np.int64)     # (block, mask of wrong configs)
        M = self.M
        M.sort_indices()
        row_nnz = np.diff(M.indptr)
        step_rows = max(1, ENTRY_CHUNK // max(1, int(row_nnz.max(initial=1))))
        for start in range(0, n_out, step_rows):
            stop = min(n_out, start + step_rows)
            lo_e, hi_e = M.indptr[start], M.indptr[stop]
            j = np.repeat(np.arange(start, stop), row_nnz[start:stop])
            i = M.indices[lo_e:hi_e]
            val = M.data[lo_e:hi_e]
            s = neuron_block[i]
            bad = s < 0                                        # constant or multi-block neuron
            s = np.where(bad, 0, s)
            a_sym = self.sym[self.first[j], s]
            b_sym = self.sym[self.second[j], s]
            same = a_sym == b_sym
            w_a = _lookup(keys, hidden.data, i * (c * q) + s * q + a_sym)
            w_b = np.where(same, 0.0, _lookup(keys, hidden.data, i * (c * q) + s * q + b_sym))
            covered = (w_a != 0).astype(np.int64) + (w_b != 0) == nnz_row[i]
            bad |= ~covered
            ok[np.unique(j[bad])] = False
            pre = w_a[:, None] * xs[None, :] + w_b[:, None] * ys[None, :] + self.h_bias[i][:, None]
            contrib = val[:, None] * np.maximum(pre, 0.0)
            group = (j - start) * c + s
            n_groups = (stop - start) * c
            g = np.stack([np.bincount(group, weights=contrib[:, k], minlength=n_groups)
                          for k in range(len(xs))], axis=1)     # [groups, configs]
            jj = np.repeat(np.arange(start, stop), c)
            ss = np.tile(np.arange(c), stop - start)
            same_g = self.sym[self.first[jj], ss] == self.sym[self.second[jj], ss]
            target = np.where(same_g[:, None], xs * (xs - 1) / 2.0, (xs * ys)[None, :] * 1.0)
            compare = ~same_g[:, None] | (ys == 0)[None, :]    # one symbol: y is not a count
            wrong = (g != target) & compare
            bad_g = np.flatnonzero(wrong.any(axis=1))
            if len(bad_g):
                ok[jj[bad_g]] = False
                mask = wrong[bad_g].astype(np.int64) @ (np.int64(1) << np.arange(len(xs)))
                first_bad = np.unique(jj[bad_g], return_index=True)[1]   # first block per output
                witness[jj[bad_g][first_bad]] = np.stack([ss[bad_g], mask], axis=1)[first_bad]
        self.configs = np.stack([xs, ys], axis=1)
        return ok, witness

    # ---------------------------------------------------------------- agreement

    def _agreement(self, budget) -> None:
        """L (set on self), an upper bound on the blocks two distinct features agree in, proved
        directly (block subsets) or by recognising the Reed-Solomon code; the bound on an
        inactive output's score is then 2 L floor(K^2/4)."""
        c, m, K = self.c, self.m, self.K
        weight = 2 * pair_weight(K)
        t, beta = self.threshold, self.beta
        need = np.floor((t - beta) / weight).astype(np.int64) if len(beta) else np.array([c])
        want = int(np.clip(need.min(initial=c), 0, c))
        self.how = "block subsets"
        if subset_checks(c, want) * m <= budget:
            # L = c is always true (a block is agreed on or not); search the smallest L >= want
            L = next((x for x in range(want, c) if subset_checks(c, x) * m <= budget
                      and max_agreement_subsets(self.sym, x)), c)
        else:
            L = self._recognise()
        self.L = int(min(L, c))
        self.bound = weight * self.L

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
        for name, mask in (("pair counts not exact", ~self.counts_ok),
                           ("an active pair does not cross the threshold", ~self.active_ok),
                           (f"inactive score bound {self.bound} (agreement <= {self.L}) reaches "
                            "the threshold", ~self.inactive_ok)):
            count = int(mask[failing].sum())
            if count:
                parts.append(f"{name} ({count:,})")
        return "; ".join(parts)

    def counterexample(self, j: int):
        """An input on which output j is wrong, replayed on the module, or None."""
        a, b = int(self.first[j]), int(self.second[j])
        candidates = []
        if not self.active_ok[j]:
            candidates.append([a, b])
        if not self.counts_ok[j] and self.count_witness[j, 0] >= 0:
            s, mask = (int(v) for v in self.count_witness[j])
            for k, (x, y) in enumerate(self.configs.tolist()):
                if not mask >> k & 1:
                    continue
                for with_operands in (True, False):
                    got = self._realise(s, self.sym[a, s], self.sym[b, s], x, y, a, b,
                                        with_operands)
                    if got is not None:
                        candidates.append(got)
        if not self.inactive_ok[j]:
            candidates += self._inactive_candidates(a, b)
        for active in candidates:
            cx = self._replay(active, j)
            if cx is not None:
                return cx
        return None

    def _realise(self, s, alpha, beta, x, y, a, b, with_operands):
        """x features with symbol alpha and y with symbol beta at block s (at most K)."""
        col = self.sym[:, s]
        pool_a = np.flatnonzero(col == alpha)
        pool_b = np.flatnonzero(col == beta) if beta != alpha else np.zeros(0, np.int64)
        if with_operands:
            pool_a = np.concatenate([[a], pool_a[pool_a != a]])
            if beta != alpha:
                pool_b = np.concatenate([[b], pool_b[pool_b != b]])
            elif b in pool_a:
                pool_a = np.concatenate([[a, b], pool_a[(pool_a != a) & (pool_a != b)]])
        else:
            pool_a, pool_b = pool_a[(pool_a != a) & (pool_a != b)], pool_b[(pool_b != a) & (pool_b != b)]
        y = y if beta != alpha else 0
        if len(pool_a) < x or len(pool_b) < y or x + y > self.K:
            return None
        return sorted(set(pool_a[:x].tolist()) | set(pool_b[:y].tolist()))

    def _inactive_candidates(self, a, b, limit: int = 1 << 22):
        """Pairs {f, g} != {a, b} whose pair matches output (a, b) in the most blocks (all pairs
        when there are at most `limit`)."""
        m = self.m
        if m * (m - 1) // 2 > limit:
            return []
        f, g = np.triu_indices(m, 1)
        sa, sb = self.sym[a], self.sym[b]
        lo, hi = np.minimum(sa, sb), np.maximum(sa, sb)
        score = np.zeros(len(f), dtype=np.int64)
        for s in range(self.c):
            pf, pg = self.sym[f, s], self.sym[g, s]
            score += (np.minimum(pf, pg) == lo[s]) & (np.maximum(pf, pg) == hi[s])
        score[(f == min(a, b)) & (g == max(a, b))] = -1
        best = np.argsort(-score, kind="stable")[:4]
        return [[int(f[k]), int(g[k])] for k in best if score[k] >= 0]

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


def _lookup(keys, values, want):
    """values at `want` in the sorted `keys`, 0 where absent."""
    if len(keys) == 0:
        return np.zeros(len(want))
    pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
    return np.where(keys[pos] == want, values[pos], 0.0)
