"""Exact resource accounting of a network, beside the bounds of the mission.

`layered_accounting` counts neurons, layers, nonzero and dense parameters, operations per
input (max and mean over the domain) and the largest weight, from the weights actually stored,
into an `Accounting`; `bounds` gives the known lower / upper bounds at the same size and
`format_accounting` prints a report.

Counting rules: docs/proofs/accounting.md
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .network import ROLE_NAMES, Network


@dataclass(frozen=True)
class Accounting:
    """The exact resource accounting of one network (fields as in docs/proofs/accounting.md);
    `codes` (coded superposed networks) and `conditional` (trees) are target extras. Read it
    as attributes or, like the JSON it becomes, by key (`info["neurons"]`)."""
    target: str
    inputs: int
    outputs: int
    neurons: int
    neurons_per_layer: list
    neurons_by_role: dict
    layers: int
    params_nonzero: int
    params_dense: int
    ops_per_input_max: int
    ops_per_input_mean: float
    max_weight: float
    bounds: dict
    codes: Optional[dict] = None
    conditional: Optional[dict] = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The JSON object `sup compile --json` prints (extras only when present)."""
        out = {k: getattr(self, k) for k in ("target", "inputs", "outputs", "neurons",
                                             "neurons_per_layer", "neurons_by_role", "layers",
                                             "params_nonzero", "params_dense",
                                             "ops_per_input_max", "ops_per_input_mean",
                                             "max_weight", "bounds")}
        for key in ("codes", "conditional"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out.update(self.extra)
        return out

    def __getitem__(self, key: str):
        return self.to_json()[key]

    def __contains__(self, key: str) -> bool:
        return key in self.to_json()

    def get(self, key: str, default=None):
        """Like dict.get on the JSON form."""
        return self.to_json().get(key, default)


def expected_active(m: int, k: Optional[int]) -> float:
    """Mean number of active features over the uniform distribution on the domain."""
    if k is None or k >= m:
        return m / 2
    counts = [math.comb(m, j) for j in range(k + 1)]
    return sum(j * c for j, c in enumerate(counts)) / sum(counts)


def ops_per_input(net: Network) -> tuple[int, float]:
    """(max, mean) operations per input of a layered network (counting rules: docs/proofs/accounting.md).

    Args:
        net: the layered network.
    Returns:
        The exact maximum over the domain (the K heaviest first-layer columns active) and the
        mean over the uniform distribution on the domain.
    """
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
    """The known bounds at m' = `m_out` outputs (shapes with constant 1) and this network's ratios to them.

    Args:
        m_out: number of output features m'.
        neurons: the network's neurons.
        params: the network's nonzero parameters.
    Returns:
        A dict: m_prime, lower / upper / naive shapes, and neurons_over_* / params_over_* ratios
        (None where a shape is 0).
    """
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


def layered_accounting(net: Network) -> Accounting:
    """Accounting of a layered network (dense, superposed, and any layered target). A coded
    network's fixed encoder / decoder layers (`code_layers`) are reported under `codes`."""
    fixed = code_layers(net)
    compute = [layer for i, layer in enumerate(net.layers) if i not in fixed]
    per_layer = [layer.n_out for layer in compute[:-1] if layer.relu]
    neurons = int(sum(per_layer))
    params_nonzero = sum(layer.nnz + int(np.count_nonzero(layer.bias)) for layer in compute)
    params_dense = sum(layer.n_out * layer.n_in + layer.n_out for layer in compute)
    max_ops, mean_ops = ops_per_input(net) if not fixed else _coded_ops(net, compute)
    weights = [np.abs(layer.vals).max(initial=0.0) for layer in net.layers]
    weights += [np.abs(layer.bias).max(initial=0.0) for layer in net.layers]
    roles = {}
    for layer in net.hidden:
        if layer.role is not None:
            for code, count in zip(*np.unique(layer.role, return_counts=True)):
                name = ROLE_NAMES.get(int(code), str(code))
                roles[name] = roles.get(name, 0) + int(count)
    return Accounting(
        target=net.target, inputs=net.n_inputs, outputs=net.n_outputs, neurons=neurons,
        neurons_per_layer=per_layer, neurons_by_role=roles, layers=len(compute),
        params_nonzero=int(params_nonzero), params_dense=int(params_dense),
        ops_per_input_max=int(max_ops), ops_per_input_mean=round(mean_ops, 3),
        max_weight=float(max(weights, default=0.0)),
        bounds=bounds(net.n_outputs, neurons, int(params_nonzero)),
        codes=code_accounting(net) if fixed else None)


def code_layers(net) -> set:
    """Indices of the fixed encoder / decoder layers of a coded network (not computation)."""
    codes = net.meta.get("codes") or {}
    return {int(c["layer"]) for c in (codes.get("input"), codes.get("output")) if c}


def code_accounting(net) -> dict:
    """The codes, reported apart from the computation: widths (each beside the neuron bound
    sqrt(m' log2 m')), parameters (beside m' log2 m'), coherence, and the code's own fields
    (combinatorial codes: q, blocks, lambda)."""
    codes = net.meta.get("codes") or {}
    shapes = bounds(net.n_outputs, 0, 0)
    ratio = lambda a, b: (a / b) if b else None  # noqa: E731
    out = {}
    for name in ("input", "output"):
        c = codes.get(name)
        if c:
            layer = net.layers[int(c["layer"])]
            out[name] = {"dim": c["dim"], "params": int(layer.nnz), "coherence": c["coherence"],
                         "seed_stream": c.get("stream"), "kind": c["kind"],
                         "dim_over_lower_neurons": ratio(c["dim"], shapes["lower_neurons"]),
                         "params_over_lower_params": ratio(int(layer.nnz), shapes["lower_params"])}
            out[name].update({k: c[k] for k in ("q", "blocks", "lambda", "coherence_is_bound")
                              if k in c})
    if out:
        out["fixed_params"] = sum(out[k]["params"] for k in ("input", "output") if k in out)
    if "certificate" in codes:
        out["certificate"] = codes["certificate"]
    return out


def _coded_ops(net, compute) -> tuple[int, float]:
    """Ops of the computation on an input that arrives coded (a dense vector): every weight of
    the computation layers, bias adds, ReLU comparisons, output thresholds (the encoder and
    decoder's own ops are the codes', reported with them)."""
    ops = sum(layer.nnz + layer.n_out for layer in compute)
    ops += sum(layer.n_out for layer in compute[:-1] if layer.relu) + net.n_outputs
    return int(ops), float(ops)


def format_accounting(info: dict) -> str:
    """The readable report of an accounting dict (`Accounting.to_json()`), one field per line."""
    b = info["bounds"]
    fmt = lambda x: "-" if x is None else f"{x:.3g}"  # noqa: E731
    lines = [
        f"target               {info['target']}",
        f"inputs / outputs     {info['inputs']:,} / {info['outputs']:,}",
        f"neurons              {info['neurons']:,}  per layer "
        f"[{'; '.join(f'{n:,}' for n in info['neurons_per_layer'])}]  "
        f"{{{', '.join(f'{k}: {v:,}' for k, v in info['neurons_by_role'].items())}}}",
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
    for name in ("input", "output"):
        code = info.get("codes", {}).get(name)
        if code:
            lines.append(f"{name + ' code':<21}width {code['dim']:,} ({fmt(code.get('dim_over_lower_neurons'))}"
                         f" x sqrt(m' log m')), {code['params']:,} fixed parameters (not counted "
                         f"above), coherence {'<= ' if code.get('coherence_is_bound') else ''}"
                         f"{code['coherence']:.4g}" + (f"; GF({code['q']}), {code['blocks']} blocks, "
                                                       f"lambda {code['lambda']}" if "q" in code else ""))
    cert = info.get("codes", {}).get("certificate")
    if cert and cert.get("kind") == "rs":
        lines.append(f"code certificate     {'proved' if cert['proved'] else 'NOT proved'}: an active "
                     f"pair scores >= {cert['score_active_min']}, an inactive one <= "
                     f"{cert['score_inactive_max']} (agreement <= {cert['agreement_max']} of "
                     f"{cert['blocks']} blocks, sparsity {cert['sparsity']}); margin "
                     f"{cert['margin'] if cert['margin'] is not None else '-'}")
    elif cert and cert.get("kind") == "rs-levels":
        lines.append(f"code certificate     none: {cert['reason']}")
    elif cert:
        lines.append(f"code certificate     proved margin {cert['margin']:.4g} (input cross-talk <= "
                     f"{cert['input_crosstalk_max']:.3g}, output cross-talk <= "
                     f"{cert['output_crosstalk_max']:.3g}, rounding <= {cert['rounding_slack']:.2g})")
    if "conditional" in info:
        c = info["conditional"]
        lines[2] = (f"neurons              {info['neurons']:,} gates in {c['trees']:,} trees "
                    f"(depth {c['depth']}, {c['leaves']:,} leaves, {c['registers']:,} registers)")
        lines[3] = f"layers               {info['layers']} (gates on the longest path + leaf)"
        if "unconditional_ops_max" in c:
            lines.insert(6, f"  over {c.get('ops_mean_over', 'the domain')} (n = {c['domain_size']:,}, "
                            f"ceil log2 n = {c['log2_n']}); unconditional (dense) network: max "
                            f"{c['unconditional_ops_max']:,}  mean {c['unconditional_ops_mean']:,.1f}")
        for t in c.get("tables", []):
            lines.append(f"table {t['table']}: {t['rows']:,} rows over {t['bits']} bits, "
                         f"{t['method']} method, depth {t['depth']} (ceil log2 rows = {t['log2_rows']}), "
                         f"max ops {t['ops_max']:,}")
    return "\n".join(lines)
