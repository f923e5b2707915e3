"""The superposed target with combinatorial codes (`--input-code rs|auto`, `--output-code rs|auto`).

Every output must be a threshold gate over distinct input features: AND, OR, atleast or a
copy, written as an OR of terms (its k-subsets; compiler/superposed/rs_terms.py). The network is

    v = E x                  input code, 0/1, c blocks of q       (fixed: codes.input)
    h = relu(H v - rho)      per term arity r the universal count of active r-sets
                             (pairs: n = (K-1) c q(q+1)/2 neurons)
    T = W2 h                 active r-sets per (block, symbol set)  (computation: writes the output code)
    y = R T - (c - 1)        decoder: output j reads its terms' coordinates (fixed: codes.output)

and output j is 1 when y_j > 1/2. Without an input code the hidden layer reads the features
directly (weights H E); without an output code the read-out is R W2. The parameters (q, lambda,
c) come from `rs_codes.choose_params`; exactness is proved in docs/proofs/rs-codes.md and
re-checked from the stored weights by verify/code_certificate.py (`--method structural`).
"""

from __future__ import annotations

import time

import numpy as np
from scipy import sparse

from dsl import csr

from ..network import CHANNEL, Layer, Network, input_families, output_families
from .codes import CodeError
from .rs_codes import RSParams, choose_params, code_matrix, field_of, symbols
from .rs_depth import compile_two_levels, two_levels
from .rs_mixed import compile_mixed
from .rs_terms import Layout, Terms, circuit_terms
from .select import superposable


def is_code_kind(value) -> bool:
    """A code kind ('rs', 'auto') rather than a sign-code width."""
    return isinstance(value, str)


def objective_of(input_code, output_code) -> str:
    """What the parameter choice minimises: 'auto' asks for the narrowest code(s), 'rs' for
    the fewest neurons."""
    auto_in, auto_out = input_code == "auto", output_code == "auto"
    if auto_in and auto_out:
        return "codes"
    return "input" if auto_in else "output" if auto_out else "neurons"


def pair_operands(circuit):
    """(first, second) int64 [m']: the operands of every output, which must each be the AND of
    two distinct input features; CodeError naming the first others."""
    positions, spec = superposable(circuit)
    lens = csr.lengths(spec.f_offsets)
    ok_local = (lens == 2) & (spec.k == 2)
    ok = np.zeros(circuit.n_outputs, dtype=bool)
    ok[positions[ok_local]] = True
    if not ok.all():
        bad = np.flatnonzero(~ok)
        raise CodeError(
            f"rs codes compile outputs that are the AND of two input features; "
            f"{len(bad):,} of {circuit.n_outputs:,} outputs are not ("
            + ", ".join(circuit.output_names(bad[:5].tolist())) + (", ..." if len(bad) > 5 else "")
            + "); use --input-code DIM / --output-code DIM (sign codes) or no codes")
    ops = spec.f_features.reshape(-1, 2)
    return ops[:, 0].copy(), ops[:, 1].copy()


def circuit_sparsity(circuit) -> int:
    """K = min(sparsity, m); CodeError without a sparsity promise or for K < 2."""
    K = circuit.sparsity
    if K is None:
        raise CodeError("rs codes need a sparsity promise (`sparsity K;` in the circuit)")
    K = min(int(K), circuit.n_inputs)
    if K < 2:
        raise CodeError(f"sparsity {K}: no pair of features is ever active, every AND is 0 "
                        "(compile without codes)")
    return K


def circuit_terms_and_sparsity(circuit):
    """(Terms, K) of a circuit whose outputs rs codes can compile; CodeError otherwise (no
    sparsity promise, an output that is not a threshold gate over input features, no output that
    can ever be true)."""
    K = circuit.sparsity
    if K is None:
        raise CodeError("rs codes need a sparsity promise (`sparsity K;` in the circuit)")
    K = min(int(K), circuit.n_inputs)
    terms = circuit_terms(circuit, K)
    if not terms.arities:
        raise CodeError(f"sparsity {K}: no output can ever be true on the domain "
                        "(compile without codes)")
    return terms, K


def compile_rs(circuit, options) -> Network:
    """The coded network of a circuit of threshold gates over input features (module
    docstring)."""
    start = time.perf_counter()
    if any(v is not None and not is_code_kind(v) for v in (options.input_code, options.output_code)):
        raise CodeError("rs codes cannot be combined with a sign-code width")
    try:
        terms, K = circuit_terms_and_sparsity(circuit)
    except CodeError as one_level:
        return _two_levels_or(circuit, options, one_level, start)
    objective = objective_of(options.input_code, options.output_code)
    params = choose_params(circuit.n_inputs, K, objective, terms.arities,
                           int(terms.weight.max(initial=0)))
    refuse_too_large(params)
    net = build_coded_network(params, terms, with_input=options.input_code is not None,
                              with_output=options.output_code is not None)
    net.output_families = output_families(circuit)
    net.input_families = input_families(circuit)
    net.sparsity = circuit.sparsity
    net.circuit_name = circuit.name
    seconds = round(time.perf_counter() - start, 3)
    net.meta.update({
        "construction": "rs-codes", "superposed_outputs": int(circuit.n_outputs),
        "dense_outputs": 0, "channel_neurons": int(params.n), "channel_size": int(params.c),
        "search": [{"objective": objective, **params.as_dict()}], "search_seconds": seconds,
        "exact_by": "combinatorial codes (compiler/superposed/rs_codes.py, rs_terms.py, "
                    "docs/proofs/rs-codes.md): term counts per block, agreement <= lambda",
        "levels": [{"level": 1, "outputs": int(circuit.n_outputs), "over": "coded input features"
                    if options.input_code is not None else "input features",
                    "feature_sparsity": circuit.sparsity, "channel_neurons": int(params.n),
                    "term_arities": list(params.arities)}],
    })
    net.meta["codes"]["search_seconds"] = seconds
    return net


def _two_levels_or(circuit, options, one_level: CodeError, start: float) -> Network:
    """The two-level coded network (rs_depth) when the circuit has that shape, else the
    one-level error."""
    try:
        levels = two_levels(circuit)
    except CodeError:
        return _mixed_or(circuit, options, one_level, start)
    del levels
    net = compile_two_levels(circuit, with_input=options.input_code is not None,
                             with_output=options.output_code is not None)
    net.output_families = output_families(circuit)
    net.input_families = input_families(circuit)
    net.sparsity = circuit.sparsity
    net.circuit_name = circuit.name
    p = net.meta["codes"]["rs"]
    net.meta.update({
        "construction": "rs-codes, two levels", "superposed_outputs": int(circuit.n_outputs),
        "dense_outputs": 0, "channel_neurons": int(sum(layer.n_out for layer in net.layers
                                                       if layer.relu)),
        "channel_size": int(p["c"]), "search": [p],
        "search_seconds": round(time.perf_counter() - start, 3),
        "exact_by": "combinatorial codes over two levels (compiler/superposed/rs_depth.py); "
                    "checked by exhaustive verification",
        "levels": [{"level": 1, "over": "coded input features", "neurons": net.meta["codes"]
                    ["level1"]["neurons"], "code_dim": net.meta["codes"]["level1"]["dim"]},
                   {"level": 2, "over": "the level-1 code", "outputs": int(circuit.n_outputs),
                    "neurons": net.meta["codes"]["level2"]["neurons"],
                    "code_dim": net.meta["codes"]["level2"]["dim"]}],
    })
    return net


def _mixed_or(circuit, options, one_level: CodeError, start: float) -> Network:
    """Codes for the codable outputs and the dense fallback for the rest in one network
    (rs_mixed), else the one-level error."""
    K = circuit.sparsity
    if K is None:
        raise one_level
    K = min(int(K), circuit.n_inputs)
    try:
        net, params, dense = compile_mixed(
            circuit, K, lambda p, terms: build_coded_network(p, terms, False, False))
    except CodeError:
        raise one_level from None
    net.output_families = output_families(circuit)
    net.input_families = input_families(circuit)
    net.sparsity = circuit.sparsity
    net.circuit_name = circuit.name
    coded = int(circuit.n_outputs - len(dense))
    net.meta.update({
        "construction": "rs-codes with the dense fallback", "superposed_outputs": coded,
        "dense_outputs": int(len(dense)), "channel_neurons": int(params.n),
        "channel_size": int(params.c), "search": [params.as_dict()],
        "search_seconds": round(time.perf_counter() - start, 3),
        "exact_by": "combinatorial codes for the coded outputs, the exact dense lowering for the "
                    "rest; checked by `sup verify`",
        "fallback_reason": str(one_level),
    })
    return net


MAX_NEURONS = 20_000_000      # hidden neurons (and code coordinates) a coded network may have


def refuse_too_large(params: RSParams) -> None:
    """CodeError when the cheapest code still needs more than MAX_NEURONS neurons or
    coordinates (terms of high arity over a large field)."""
    if max(params.n, params.d_out) > MAX_NEURONS:
        raise CodeError(f"rs codes would need {params.n:,} neurons and a {params.d_out:,}-wide "
                        f"output code (GF({params.q}), c = {params.c}, term arities "
                        f"{list(params.arities)}); above the limit of {MAX_NEURONS:,}: compile "
                        "without codes")


def build_rs_network(params: RSParams, first, second, with_input: bool = True,
                     with_output: bool = True, sym: np.ndarray | None = None,
                     check: bool = True) -> Network:
    """The network of `params` for outputs AND(first[j], second[j]) (see build_coded_network)."""
    first, second = np.asarray(first, np.int64), np.asarray(second, np.int64)
    terms = Terms(len(first), params.K)
    terms.add(2, np.arange(len(first), dtype=np.int64), np.stack([first, second], axis=1))
    return build_coded_network(params, terms, with_input, with_output, sym, check)


def build_coded_network(params: RSParams, terms: Terms, with_input: bool = True,
                        with_output: bool = True, sym: np.ndarray | None = None,
                        check: bool = True) -> Network:
    """The network of `params` for outputs that are ORs of `terms`.

    Args:
        params: the code (q, lambda, c, sparsity K, m features, term arities, score weight).
        terms: per arity, the terms (feature tuples) and the output each belongs to.
        with_input / with_output: keep the input / output code as its own linear layer; without
            it the hidden layer reads the features (H E) / the read-out reads the neurons (R W2).
        sym: the symbol table [m, c] (default: the Reed-Solomon evaluations of `params`); tests
            plant other tables here.
        check: refuse (CodeError) parameters that do not make every output exact. With
            check=False the network is built anyway and its meta says it is not proved.
    """
    problems = params.problems()
    field = field_of(params)
    problems += field.problems()
    if tuple(terms.arities) != tuple(params.arities) and terms.arities:
        problems.append(f"terms of arities {list(terms.arities)}, code for {list(params.arities)}")
    if len(terms.weight) and int(terms.weight.max()) * params.lam > params.score_bound:
        problems.append("an output has more terms than the score weight allows")
    if sym is None:
        sym = symbols(params, field)
    if check and problems:
        raise CodeError("rs code parameters are not exact: " + "; ".join(problems))
    m, q, c, K = params.m, params.q, params.c, params.K
    layout = Layout(c, q, K, params.arities)
    n, d_in, d_out, n_out = layout.n, params.d_in, layout.d_out, terms.n_outputs
    e_rows, e_cols = code_matrix(sym, q)
    enc = sparse.csr_matrix((np.ones(len(e_rows)), (e_rows, e_cols)), shape=(d_in, m))
    h_rows, h_cols, h_vals, h_bias, rho = layout.hidden()
    hid = sparse.csr_matrix((h_vals, (h_rows, h_cols)), shape=(n, d_in))
    w_rows, w_cols, w_vals = layout.code()
    w2 = sparse.csr_matrix((w_vals, (w_rows, w_cols)), shape=(d_out, n))
    r_rows, r_cols = layout.decoder(sym, terms)
    r_bias = np.full(n_out, -(c - 1.0))
    dec = sparse.csr_matrix((np.ones(len(r_rows)), (r_rows, r_cols)), shape=(n_out, d_out))
    layers, codes = [], {"kind": "rs", "rs": params.as_dict()}
    if with_input:
        layers.append(_layer(enc, np.zeros(d_in), relu=False))
        codes["input"] = _code_info(params, d_in, m, 0, "input", len(e_rows))
        hidden = _layer(hid, h_bias, relu=True)
    else:
        hidden = _layer(hid @ enc, h_bias, relu=True)
    hidden.role = np.full(n, CHANNEL, np.int8)
    hidden.signal = np.arange(n, dtype=np.int64)
    hidden.part = rho.astype(np.int64)
    layers.append(hidden)
    if with_output:
        layers.append(_layer(w2, np.zeros(d_out), relu=False))
        layers.append(_layer(dec, r_bias, relu=False))
        codes["output"] = _code_info(params, d_out, n_out, len(layers) - 1, "output", len(r_rows))
    else:
        layers.append(_layer(dec @ w2, r_bias, relu=False))
    codes["neuron_layers"] = [next(i for i, layer in enumerate(layers) if layer is hidden)]
    proved = not problems
    codes["certificate"] = {
        "proved": proved, "kind": "rs", "margin": 0.5 if proved else None,
        "blocks": c, "agreement_max": params.lam, "sparsity": K,
        "term_arities": list(params.arities),
        "score_active_min": c, "score_inactive_max": params.score_bound,
        "blocks_needed": params.blocks_needed,
        "by": ("construction: distinct polynomials of degree <= lambda agree in <= lambda blocks "
               "and c >= weight lambda + 1 (docs/proofs/rs-codes.md); re-checked from "
               "the stored weights by `sup verify --method structural`") if proved else None,
        "reason": "; ".join(problems) or None,
    }
    net = Network("superposed", m, layers, np.arange(m, dtype=np.int64))
    net.meta["codes"] = codes
    return net


def _layer(matrix, bias, relu: bool) -> Layer:
    coo = sparse.coo_matrix(matrix)
    keep = coo.data != 0
    return Layer(coo.shape[1], coo.shape[0], coo.row[keep].astype(np.int64),
                 coo.col[keep].astype(np.int64), coo.data[keep].astype(np.float64),
                 np.asarray(bias, dtype=np.float64), relu)


def _code_info(params: RSParams, dim: int, count: int, layer: int, stream: str,
               nnz: int) -> dict:
    # columns of c ones; two input codewords share <= lambda ones, two output codewords
    # (pairs) <= 2 lambda: the coherence bounds of the normalised columns
    overlap = params.lam if stream == "input" else 2 * params.lam
    return {"dim": int(dim), "features": int(count), "layer": int(layer), "stream": stream,
            "kind": f"rs (Kautz-Singleton over GF({params.q}), lambda={params.lam}, "
                    f"c={params.c}), 0/1 weights",
            "q": params.q, "blocks": params.c, "lambda": params.lam, "params": int(nnz),
            "coherence": min(1.0, overlap / params.c), "coherence_is_bound": True}
