"""Structural verification: an exact combinatorial proof for one-hidden-layer channel networks.

For networks of the superposed target's shape, exactness on the whole domain is a property of
the weights that can be decided without enumerating inputs (compiler/channels.py explains
the criterion). This verifier reads everything from the network's stored weights, not from the
compiler's bookkeeping:

* hidden neuron i: weights exactly 1 on a set L_i of input columns, integer bias -theta_i <= 0;
* output j: read-out weights exactly 1 on a set C_j of neurons, bias exactly -(|C_j| - 1);
* its specification (from the circuit): atleast(k_j, F_j) over distinct input features (AND,
  OR, atleast, or a copy), with F_j inside every L_i of C_j and theta_i = k_j - 1.

Then output j is correct on every input with at most K active features iff the q_j = K - k_j + 1
largest counts n_f = #{i in C_j : f in L_i} over f not in F_j sum to at most |C_j| - 1. Outputs
that do not have this shape are reported as not applicable (the verdict is then undecided: use
exhaustive or smt for them). For every failing output the worst input is built and replayed on
the torch module before it is reported.
"""

from __future__ import annotations

import time

import numpy as np

from compiler.channels import Assignment, ChannelSpec, failing_outputs
from compiler.superposed import superposable
from dsl import csr
from dsl.semantics import DONT_CARE, evaluate_active


def verify_structural(circuit, net, module, max_counterexamples: int = 20) -> dict:
    start = time.perf_counter()
    reasons = _shape_problems(net)
    report = {"method": "structural", "inputs_checked": None, "counterexamples": [],
              "min_margin": None}
    if reasons:
        return _finish(report, None, 0, circuit.n_outputs, [], reasons, start)
    positions, spec = superposable(circuit)
    hidden, readout = net.layers
    theta = -hidden.bias
    l_order = np.lexsort((hidden.cols, hidden.rows))
    l_rows, l_cols = hidden.rows[l_order], net_feature(net, hidden.cols[l_order])
    l_off = csr.offsets_from_lengths(np.bincount(l_rows, minlength=hidden.n_out))
    r_order = np.lexsort((readout.cols, readout.rows))
    r_rows, r_cols = readout.rows[r_order], readout.cols[r_order]
    r_off = csr.offsets_from_lengths(np.bincount(r_rows, minlength=readout.n_out))
    ok = np.zeros(circuit.n_outputs, dtype=bool)
    ok[positions] = True
    t = csr.lengths(r_off)
    ok &= np.isclose(readout.bias, -(t - 1.0)) & (t > 0)
    # every channel neuron listens to all operands, with the right threshold
    sub_off, sub_neu = csr.gather_rows(r_off, r_cols, positions)
    slot_out = csr.row_of_each(sub_off)
    k = spec.k[slot_out]
    good_theta = theta[sub_neu] == k - 1
    f_len = csr.lengths(spec.f_offsets)[slot_out]
    _, feats = csr.gather_rows(spec.f_offsets, spec.f_features, slot_out)
    neuron_of = np.repeat(sub_neu, f_len)
    listens = set_membership(l_off, l_cols, neuron_of, feats)
    covers = csr.row_sum(csr.offsets_from_lengths(f_len), (~listens).astype(np.int64)) == 0
    good_slot = good_theta & covers
    good_out = csr.row_sum(sub_off, (~good_slot).astype(np.int64)) == 0
    ok[positions[~good_out]] = False
    applicable = np.flatnonzero(ok)
    local = np.searchsorted(positions, applicable)
    a = Assignment(hidden.n_out, *csr.gather_rows(r_off, r_cols, applicable),
                   np.zeros(hidden.n_out, np.int64))
    sub_spec = ChannelSpec(spec.m, spec.sparsity, *csr.gather_rows(spec.f_offsets, spec.f_features, local),
                           spec.k[local])
    failing = failing_outputs(sub_spec, a, (l_off, l_cols))
    not_applicable = np.setdiff1d(np.arange(circuit.n_outputs), applicable)
    counterexamples, unconfirmed = [], []
    for j in failing[:max_counterexamples]:
        cx = _worst_input(circuit, module, sub_spec, a, (l_off, l_cols), int(j), int(applicable[j]))
        (counterexamples if cx.get("confirmed") else unconfirmed).append(cx)
    if len(failing):
        verified = False if counterexamples else None
    else:
        verified = True if len(not_applicable) == 0 else None
    report["counterexamples"] = [{k: v for k, v in c.items() if k != "confirmed"}
                                 for c in counterexamples]
    if unconfirmed:
        reasons.append(f"{len(unconfirmed)} failing outputs did not replay on the module")
    if len(not_applicable):
        reasons.append(f"{len(not_applicable)} outputs do not have the channel shape: "
                       + ", ".join(circuit.output_names(not_applicable[:10].tolist())))
    return _finish(report, verified, len(applicable) - len(failing), circuit.n_outputs,
                   failing, reasons, start)


def net_feature(net, cols):
    """Map first-layer columns back to features (input_map must be a bijection onto columns)."""
    inverse = np.full(net.input_width, -1, dtype=np.int64)
    inverse[net.input_map] = np.arange(net.n_inputs)
    return inverse[cols]


def set_membership(off, values, rows, query) -> np.ndarray:
    """bool per i: query[i] in the sorted CSR row rows[i]."""
    lo, hi = off[rows], off[rows + 1]
    found = np.zeros(len(query), dtype=bool)
    pos = lo.copy()
    # binary search inside each row, vectorized
    left, right = lo.copy(), hi.copy()
    while True:
        active = left < right
        if not active.any():
            break
        mid = (left + right) // 2
        go_right = active & (values[np.minimum(mid, len(values) - 1)] < query)
        left = np.where(go_right, mid + 1, left)
        right = np.where(active & ~go_right, mid, right)
    pos = left
    inside = pos < hi
    found[inside] = values[pos[inside]] == query[inside]
    return found


def _shape_problems(net) -> list:
    problems = []
    if len(net.layers) != 2:
        return [f"the network has {len(net.layers) - 1} hidden layers, not 1"]
    hidden, readout = net.layers
    if len(np.unique(net.input_map)) != net.n_inputs:
        problems.append("inputs do not map to distinct columns (input code?)")
    if not np.all(hidden.vals == 1.0) or not np.all(readout.vals == 1.0):
        problems.append("weights other than exactly 1")
    if not np.all(hidden.bias == np.round(hidden.bias)) or np.any(hidden.bias > 0):
        problems.append("hidden biases are not non-positive integers")
    if not hidden.relu or readout.relu:
        problems.append("layer activations differ from ReLU then affine")
    return problems


def _worst_input(circuit, module, spec, a, listen, j, output):
    """The input maximizing output j's read-out without its specification holding, replayed."""
    l_off, l_feat = listen
    chan = a.c_neurons[a.c_offsets[j]:a.c_offsets[j + 1]]
    feats = spec.f_features[spec.f_offsets[j]:spec.f_offsets[j + 1]]
    counts = np.bincount(np.concatenate([l_feat[l_off[i]:l_off[i + 1]] for i in chan]),
                         minlength=spec.m)
    counts[feats] = -1
    q = int(spec.free[j])
    others = np.argsort(-counts, kind="stable")[:q]
    active = sorted(set(feats[: int(spec.k[j]) - 1].tolist()) | set(others.tolist()))
    value = float(module.forward_active([active])[0, output])
    expected = evaluate_active(circuit, [active]).dense()[0, output]
    name = circuit.output_names([output])[0]
    confirmed = expected != DONT_CARE and (value > module.threshold) != (expected == 1)
    return {"active": circuit.input_names(active), "wrong": [name], "values": {name: value},
            "confirmed": bool(confirmed)}


def _finish(report, verified, proved, total, failing, reasons, start) -> dict:
    report.update({
        "verified": verified, "outputs_checked": int(proved), "outputs_total": int(total),
        "outputs_failing": int(len(failing)), "not_applicable": reasons,
        "note": "exact combinatorial proof from the stored weights of a one-hidden-layer "
                "channel network (integer weights: exact in float too, margin 0.5)",
        "seconds": round(time.perf_counter() - start, 3),
    })
    if verified:
        report["min_margin"] = 0.5
    return report
