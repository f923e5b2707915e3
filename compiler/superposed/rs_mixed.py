"""The dense fallback beside combinatorial codes, in one network.

When some outputs are threshold gates over input features (rs_terms can code them) and others
are not (XOR, negations, gates over intermediate signals, too many terms), the codable outputs
get the count layers of rs_terms and the others the exact dense lowering, side by side in one
layered network (`multilevel.side_by_side`: the shallower block is padded with carry neurons
relu(h) = h). Both blocks read the input features directly, so this network's inputs and outputs
are not coded: the input code is folded into the count neurons (H E) and the output code into
the read-out (R W2). Its exactness is checked by `sup verify` (exhaustive or SMT; the structural
certificate covers networks whose every output is coded).
"""

from __future__ import annotations

import numpy as np

from ..dense.lowering import lower_signals
from ..network import Network
from .codes import CodeError
from .multilevel import side_by_side
from .rs_codes import choose_params
from .rs_terms import circuit_terms, uncodable


def dense_positions(circuit, K: int) -> np.ndarray:
    """The outputs rs codes cannot compile (int64 positions)."""
    bad = np.zeros(circuit.n_outputs, dtype=bool)
    for mask in uncodable(circuit, K).values():
        bad |= mask
    return np.flatnonzero(bad)


def compile_mixed(circuit, K: int, build) -> Network:
    """Coded outputs and the dense fallback in one network; `build(params, terms)` makes the
    coded block without code layers. CodeError when no output or every output is codable."""
    dense = dense_positions(circuit, K)
    if len(dense) == 0 or len(dense) == circuit.n_outputs:
        raise CodeError("no mix of codable and uncodable outputs")
    skip = np.zeros(circuit.n_outputs, dtype=bool)
    skip[dense] = True
    terms = circuit_terms(circuit, K, skip=skip)
    if not terms.arities:
        raise CodeError("no codable output can ever be true on the domain")
    params = choose_params(circuit.n_inputs, K, "neurons", terms.arities,
                           int(terms.weight.max(initial=0)))
    coded = build(params, terms)
    coded.readout.bias[dense] = 0.0              # those rows come from the dense block
    hidden, readout = lower_signals(circuit, circuit.output_drivers[dense])
    net = side_by_side(coded, hidden, readout, dense)
    codes = dict(coded.meta["codes"])
    codes.pop("input", None)
    codes.pop("output", None)
    codes["kind"] = "rs-mixed"
    codes["dense_outputs"] = int(len(dense))
    codes["certificate"] = {
        "proved": False, "kind": "rs-mixed", "margin": None,
        "reason": f"{len(dense):,} outputs are computed by the dense fallback beside the codes; "
                  "check the network with `sup verify` (exhaustive or smt)"}
    net.meta = dict(coded.meta)
    net.meta["codes"] = codes
    return net, params, dense
