"""Structural verification: an exact combinatorial proof for one-hidden-layer channel networks.

For networks of the superposed target's shape, exactness on the whole domain is a property of
the weights that can be decided without enumerating inputs (compiler/channels.py explains
the criterion). This verifier reads everything from the network's stored weights, not from the
compiler's bookkeeping: the layers, input map and threshold as the torch module holds them
(its dtype), never `net`'s copies:

* hidden neuron i: weights exactly 1 on a set L_i of input columns, integer bias -theta_i <= 0;
* output j: read-out weights exactly 1 on a set C_j of neurons, bias exactly -(|C_j| - 1);
* its specification (from the circuit): atleast(k_j, F_j) over distinct input features (AND,
  OR, atleast, or a copy), with F_j inside every L_i of C_j and theta_i = k_j - 1.

Then output j's read-out y_j is an integer, and it is 1 (y_j >= 1) exactly when the
specification holds, on every input with at most K active features, iff the q_j = K - k_j + 1
largest counts n_f = #{i in C_j : f in L_i} over f not in F_j sum to at most |C_j| - 1. The
decision is y_j > t with the threshold t the module compares against (verify/compare.py
`decision_threshold`): for integer y_j that is y_j >= 1 exactly when 0 <= t < 1, so the proof
applies only to such thresholds (any other makes the method not applicable). Outputs
that do not have this shape are reported as not applicable (the verdict is then undecided: use
exhaustive or smt for them). For every failing output the worst input is built and replayed on
the torch module before it is reported.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from backends import SupModule
from compiler.superposed.channels import Assignment, ChannelSpec, failing_outputs
from compiler.superposed import superposable
from dsl import csr
from dsl.semantics import DONT_CARE, evaluate_active

from .compare import decision_threshold
from .smt import module_layers
from .report import returns_report


@returns_report
def verify_structural(circuit, net, module, max_counterexamples: int = 20) -> dict:
    """Prove `module` exact on the circuit's domain from its weights (module docstring).

    Everything that decides the module's outputs is read from the module itself: its layers
    (`module_layers`), input map and decision threshold; `net` is not consulted (the module
    computes the outputs; a stale or edited copy of the bookkeeping must not be proved)."""
    start = time.perf_counter()
    report = {"method": "structural", "inputs_checked": None, "counterexamples": [],
              "min_margin": None}
    threshold = decision_threshold(module) if hasattr(module, "threshold") else None
    reasons = _module_problems(circuit, module, threshold)
    if reasons:
        return _finish(report, None, 0, circuit.n_outputs, [], reasons, start, threshold)
    layers = module_layers(module)
    hidden, readout = (_Layer(layer) for layer in layers)
    input_map = module.input_map.detach().cpu().numpy().astype(np.int64)
    reasons = _shape_problems(hidden, readout, input_map, circuit, module)
    if reasons:
        return _finish(report, None, 0, circuit.n_outputs, [], reasons, start, threshold)
    positions, spec = superposable(circuit)
    theta = -hidden.bias
    l_feat = net_feature(input_map, hidden.n_in, hidden.cols)
    keep = l_feat >= 0          # a column no feature feeds is always 0: it adds nothing
    # sorted by (neuron, feature): set_membership binary-searches each neuron's features
    l_order = np.lexsort((l_feat[keep], hidden.rows[keep]))
    l_rows, l_cols = hidden.rows[keep][l_order], l_feat[keep][l_order]
    l_off = csr.offsets_from_lengths(np.bincount(l_rows, minlength=hidden.n_out))
    r_order = np.lexsort((readout.cols, readout.rows))
    r_rows, r_cols = readout.rows[r_order], readout.cols[r_order]
    r_off = csr.offsets_from_lengths(np.bincount(r_rows, minlength=readout.n_out))
    ok = np.zeros(circuit.n_outputs, dtype=bool)
    ok[positions] = True
    t = csr.lengths(r_off)
    ok &= (readout.bias == -(t - 1.0)) & (t > 0)        # exactly, not approximately
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
        cx = _worst_input(circuit, module, sub_spec, a, (l_off, l_cols), int(j), int(applicable[j]),
                          threshold)
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
                   failing, reasons, start, threshold)


class _Layer:
    """One of `module_layers`'s layers (a numpy Layer, or a dict of its fields) as int64 rows /
    cols and float64 vals / bias."""

    def __init__(self, layer):
        get = layer.get if isinstance(layer, dict) else (lambda name: getattr(layer, name))
        self.n_in, self.n_out, self.relu = int(get("n_in")), int(get("n_out")), bool(get("relu"))
        self.rows = np.asarray(get("rows"), dtype=np.int64)
        self.cols = np.asarray(get("cols"), dtype=np.int64)
        self.vals = np.asarray(get("vals"), dtype=np.float64)
        self.bias = np.asarray(get("bias"), dtype=np.float64)


def net_feature(input_map, width, cols):
    """Map first-layer columns back to features (-1: a column no feature feeds; input_map must
    be injective)."""
    inverse = np.full(width, -1, dtype=np.int64)
    inverse[input_map] = np.arange(len(input_map))
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


def _module_problems(circuit, module, threshold) -> list:
    """Why the proof cannot apply to this module at all (empty: it may)."""
    if not isinstance(module, SupModule):
        return ["not a layered network (the structural proof is for channel networks)"]
    n_layers = len(module.layers())
    if n_layers != 2:
        return [f"the network has {n_layers - 1} hidden layers, not 1"]
    # The read-out of the channel shape is an integer y. The module decides y > t, which for
    # every integer y equals y >= 1 (the criterion's decision) iff 0 <= t < 1: t < 0 turns
    # y = 0 into a 1, t >= 1 turns y = 1 into a 0. t is the threshold as the module compares
    # it (rounded to its dtype), not the stored float64.
    if threshold is None or not 0.0 <= threshold < 1.0:
        stored = getattr(module, "threshold", None)
        rounded = (f" (stored {stored!r}, as the module's {module.dtype} compares it)"
                   if threshold is not None and stored != threshold else "")
        return [f"the threshold is {threshold!r}{rounded}: the proof decides integer read-outs "
                "as y >= 1, which is y > threshold only for 0 <= threshold < 1"]
    return []


def _shape_problems(hidden, readout, input_map, circuit, module) -> list:
    problems = []
    if len(input_map) != circuit.n_inputs or readout.n_out != circuit.n_outputs:
        return ["the network's inputs or outputs do not match the circuit's"]
    if len(np.unique(input_map)) != len(input_map):
        problems.append("inputs do not map to distinct columns (input code?)")
    if not np.all(hidden.vals == 1.0) or not np.all(readout.vals == 1.0):
        problems.append("weights other than exactly 1")
    for name, layer in (("hidden", hidden), ("read-out", readout)):
        keys = layer.rows * max(layer.n_in, 1) + layer.cols
        if len(np.unique(keys)) != len(keys):      # the module sums repeated entries: weight 2
            problems.append(f"repeated (row, column) entries in the {name} layer")
    if not np.all(hidden.bias == np.round(hidden.bias)) or np.any(hidden.bias > 0):
        problems.append("hidden biases are not non-positive integers")
    if not np.all(readout.bias == np.round(readout.bias)):
        problems.append("read-out biases are not integers")
    if not hidden.relu or readout.relu:
        problems.append("layer activations differ from ReLU then affine")
    if not problems:
        # exactness in the module's dtype: every partial sum the module forms is an integer of
        # magnitude at most that bound (weights 1, so a neuron's sum is at most its fan-in)
        fan_in = np.bincount(hidden.rows, minlength=hidden.n_out).astype(np.float64)
        h_max = np.maximum(fan_in + hidden.bias, 0.0)
        pre = np.maximum(fan_in, -hidden.bias).max(initial=0.0)
        out = (np.bincount(readout.rows, weights=h_max[readout.cols], minlength=readout.n_out)
               + np.abs(readout.bias)).max(initial=0.0)
        bits = 1 - int(round(np.log2(float(torch.finfo(module.dtype).eps))))
        if max(pre, out) >= 2.0 ** bits:
            problems.append(f"sums may exceed 2^{bits}, where {module.dtype} stops being exact")
    return problems


def _worst_input(circuit, module, spec, a, listen, j, output, threshold):
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
    confirmed = expected != DONT_CARE and (value > threshold) != (expected == 1)
    return {"active": circuit.input_names(active), "wrong": [name], "values": {name: value},
            "confirmed": bool(confirmed)}


def _finish(report, verified, proved, total, failing, reasons, start, threshold) -> dict:
    report.update({
        "verified": verified, "outputs_checked": int(proved), "outputs_total": int(total),
        "outputs_failing": int(len(failing)), "not_applicable": reasons,
        "note": "exact combinatorial proof from the stored weights of a one-hidden-layer "
                "channel network (integer weights: exact in float too; outputs decided as "
                f"y > {threshold!r})",
        "seconds": round(time.perf_counter() - start, 3), "threshold": threshold,
    })
    if verified:
        # Integer read-outs, proved y >= 1 where the specification is 1 and y <= 0 where it is
        # 0: margins y - t >= 1 - t and t - y >= t. 1 - t is attained (the operands alone give
        # y = 1 exactly); t only where some 0 output reaches y = 0, so below 1/2 the value
        # min(t, 1 - t) is a lower bound.
        report["min_margin"] = min(threshold, 1.0 - threshold)
        report["min_margin_is_lower_bound"] = threshold < 0.5
    return report
