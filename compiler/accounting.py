"""Exact resource accounting of a network, beside the bounds of the mission.

Counts (all exact, from the weights actually stored):

* neurons: hidden units, in total and per hidden layer; layers: hidden layers + the read-out
* params_nonzero: nonzero weights + nonzero biases; params_dense: what dense matrices of the
  same layer widths would store (weights + biases)
* ops per input, for the evaluation the torch backend performs on a list of active features:
  the first layer adds the weight columns of the active features only (one multiply-add per
  nonzero weight in those columns), every later layer does one multiply-add per nonzero
  weight; plus one add per bias, one comparison per ReLU and one per output threshold.
  `max` takes the K active features with the heaviest columns; `mean` averages over the
  uniform distribution on the domain (every feature is active with the same probability).
* max_weight: the largest |weight| or |bias|.

Bounds (m' = number of output features), as shapes evaluated at this size with constant 1:
lower Omega(sqrt(m' log2 m')) neurons and Omega(m' log2 m') parameters, upper
O(sqrt(m') log2 m') neurons and O(m' log2^2 m') parameters (pairwise AND), naive m' neurons.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .network import Network


def expected_active(m: int, k: Optional[int]) -> float:
    """Mean number of active features over the uniform distribution on the domain."""
    if k is None or k >= m:
        return m / 2
    counts = [math.comb(m, j) for j in range(k + 1)]
    return sum(j * c for j, c in enumerate(counts)) / sum(counts)


def ops_per_input(net: Network) -> tuple[int, float]:
    m, k = net.n_inputs, net.sparsity
    first = net.layers[0]
    col = first.column_nnz()[net.input_map].astype(np.float64)
    fixed = sum(layer.nnz for layer in net.layers[1:])          # multiply-adds after layer 1
    fixed += sum(layer.n_out for layer in net.layers)           # bias adds
    fixed += sum(layer.n_out for layer in net.hidden)           # ReLU comparisons
    fixed += net.n_outputs                                      # threshold comparisons
    heaviest = np.sort(col)[::-1][: (m if k is None else min(k, m))]
    max_ops = fixed + int(heaviest.sum())
    mean_ops = fixed + float(col.sum()) * (expected_active(m, k) / m if m else 0.0)
    return max_ops, mean_ops


def bounds(m_out: int, neurons: int, params: int) -> dict:
    log = math.log2(m_out) if m_out > 1 else 0.0
    shapes = {
        "lower_neurons": math.sqrt(m_out * log),
        "lower_params": m_out * log,
        "upper_neurons": math.sqrt(m_out) * log,
        "upper_params": m_out * log * log,
        "naive_neurons": float(m_out),
    }
    ratio = lambda a, b: (a / b) if b else None  # noqa: E731
    return {
        "m_prime": m_out,
        **{k: round(v, 3) for k, v in shapes.items()},
        "neurons_over_lower": ratio(neurons, shapes["lower_neurons"]),
        "params_over_lower": ratio(params, shapes["lower_params"]),
        "neurons_over_upper": ratio(neurons, shapes["upper_neurons"]),
        "params_over_upper": ratio(params, shapes["upper_params"]),
        "neurons_over_naive": ratio(neurons, shapes["naive_neurons"]),
    }


def account(net: Network) -> dict:
    per_layer = [layer.n_out for layer in net.hidden]
    neurons = int(sum(per_layer))
    params_nonzero = sum(layer.nnz + int(np.count_nonzero(layer.bias)) for layer in net.layers)
    params_dense = sum(layer.n_out * layer.n_in + layer.n_out for layer in net.layers)
    max_ops, mean_ops = ops_per_input(net)
    weights = [np.abs(layer.vals).max(initial=0.0) for layer in net.layers]
    weights += [np.abs(layer.bias).max(initial=0.0) for layer in net.layers]
    roles = {}
    for layer in net.hidden:
        if layer.role is not None:
            from .network import ROLE_NAMES
            for code, count in zip(*np.unique(layer.role, return_counts=True)):
                name = ROLE_NAMES.get(int(code), str(code))
                roles[name] = roles.get(name, 0) + int(count)
    return {
        "target": net.target,
        "inputs": net.n_inputs,
        "outputs": net.n_outputs,
        "neurons": neurons,
        "neurons_per_layer": per_layer,
        "neurons_by_role": roles,
        "layers": len(net.layers),
        "params_nonzero": int(params_nonzero),
        "params_dense": int(params_dense),
        "ops_per_input_max": int(max_ops),
        "ops_per_input_mean": round(mean_ops, 3),
        "max_weight": float(max(weights, default=0.0)),
        "bounds": bounds(net.n_outputs, neurons, int(params_nonzero)),
    }


def format_accounting(info: dict) -> str:
    b = info["bounds"]
    fmt = lambda x: "-" if x is None else f"{x:.3g}"  # noqa: E731
    lines = [
        f"target               {info['target']}",
        f"inputs / outputs     {info['inputs']:,} / {info['outputs']:,}",
        f"neurons              {info['neurons']:,}  per layer {info['neurons_per_layer']}  "
        f"{info['neurons_by_role']}",
        f"layers               {info['layers']} (hidden + read-out)",
        f"params nonzero       {info['params_nonzero']:,}  (dense equivalent {info['params_dense']:,})",
        f"ops per input        max {info['ops_per_input_max']:,}  mean {info['ops_per_input_mean']:,.1f}",
        f"largest |weight|     {info['max_weight']:g}",
        f"bounds at m'={b['m_prime']:,} (shapes, constant 1):",
        f"  neurons  lower sqrt(m' log m') {b['lower_neurons']:,.1f}  upper sqrt(m') log m' "
        f"{b['upper_neurons']:,.1f}  naive m' {b['naive_neurons']:,.0f}",
        f"  params   lower m' log m' {b['lower_params']:,.1f}  upper m' log^2 m' {b['upper_params']:,.1f}",
        f"  ratios   neurons/lower {fmt(b['neurons_over_lower'])}  params/lower "
        f"{fmt(b['params_over_lower'])}  neurons/m' {fmt(b['neurons_over_naive'])}",
    ]
    return "\n".join(lines)
