"""`sup run MODEL --active 'x[0],x[3]'`: run a saved network on one input and print its output
values (and, with --hidden, its hidden values) next to the circuit's reference when the circuit
is given with --circuit FILE. Works for a saved model of any target: the module is chosen by
the network's representation (backends.to_module)."""

from __future__ import annotations

import sys

import numpy as np
import torch

import dsl
from backends import ModelFileError, load
from compiler.network import ROLE_NAMES, family_member_names
from dsl.semantics import DONT_CARE, evaluate_active
from verify import module_for

from . import argtypes
from .frontend_cmds import split_names
from .output import EXIT_MISMATCH, EXIT_OK, UsageError, emit

MAX_LINES = 20           # outputs listed one per line; above, only the 1s and the disagreements
MAX_HIDDEN = 64          # nonzero hidden values listed per layer in text


def register(sub) -> None:
    """Add the `run` subcommand to the subparsers `sub`."""
    run = sub.add_parser(
        "run", help="run a saved network on one input; print its outputs beside the reference",
        description="Run the network saved in MODEL (by sup compile -o, any target) on the input "
        "whose --active features are 1 and print every output's value and bit; with --circuit "
        "FILE also the circuit's reference value of each (exit 1 when they differ); with "
        "--hidden the nonzero hidden values of a layered network.")
    run.add_argument("model", metavar="MODEL", help="a network saved by sup compile -o")
    run.add_argument("--active", default="", metavar="NAMES",
                     help="comma-separated active input features, e.g. 'x[0],x[3]' (default: none)")
    run.add_argument("--circuit", dest="file", metavar="FILE",
                     help="the circuit the model was compiled from: print its reference values")
    run.add_argument("--hidden", action="store_true", help="also print the hidden values")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"),
                     help="where the network runs (default cpu)")
    run.add_argument("--dtype", choices=("float32", "float64"),
                     help="number type of the forward pass (default: the target's)")
    run.add_argument("--max-elements", type=argtypes.positive_int,
                     default=dsl.Limits.max_elements, metavar="N",
                     help="size limit when reading --circuit (as for the other commands)")
    run.set_defaults(run=cmd_run)


def _active(net, text: str) -> list:
    """Sorted input indices named in `text`; UsageError for a name the model has no input of."""
    names = family_member_names(net.input_families) if net.input_families else \
        [f"x[{i}]" for i in range(net.n_inputs)]
    lookup = {name: i for i, name in enumerate(names)}
    active = []
    for name in split_names(text or ""):
        if name not in lookup:
            raise UsageError(f"'{name}' is not an input of the model (inputs look like "
                             f"{', '.join(names[:4])})")
        active.append(lookup[name])
    return sorted(set(active)), names


def _hidden(module, active: list) -> list:
    """[{layer, neurons, nonzero: {index: value}, roles}] of a layered module's hidden layers on
    the input `active`, computed with the module's own layers; [] for other representations."""
    if not hasattr(module, "pre_activation"):
        return []
    shapes = module.shapes
    h = torch.zeros(1, shapes[0][1], dtype=module.dtype, device=module.device)
    if active:
        h[0, module.input_map[torch.as_tensor(active, device=module.device)]] = 1
    out = []
    with torch.no_grad():
        for i in range(len(shapes) - 1):
            h = module.pre_activation(i, h)
            if shapes[i][2]:
                h = torch.relu(h)
            values = h[0].cpu().numpy()
            nz = np.flatnonzero(values)
            out.append({"layer": i + 1, "neurons": int(shapes[i][0]),
                        "nonzero": {int(j): float(values[j]) for j in nz}})
    return out


def cmd_run(args, circuit) -> int:
    """`sup run`: print the network's outputs on one input (and the reference with --circuit);
    returns 1 when a cared output differs from the reference, else 0."""
    try:
        net = load(args.model)
    except ModelFileError as exc:
        raise UsageError(str(exc)) from None
    if circuit is not None and (net.n_inputs != circuit.n_inputs
                                or net.output_names() != circuit.output_names()):
        raise UsageError(f"the model {args.model} was not compiled from {args.file} (inputs or "
                         "output names differ)")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    active, input_names = _active(net, args.active)
    if net.sparsity is not None and len(active) > net.sparsity:
        print(f"sup run: warning: {len(active)} active features break the promise 'sparsity "
              f"{net.sparsity};' the network was compiled for", file=sys.stderr)
    module = module_for(net, args.dtype, None if args.device == "auto" else args.device)
    with torch.no_grad():
        values = module.forward_active([active]).cpu().numpy()[0].astype(float)
    bits = values > net.threshold
    names = net.output_names()
    expected = None
    if circuit is not None:
        ref = evaluate_active(circuit, [active]).dense()[0]
        expected = [None if v == DONT_CARE else int(v) for v in ref.tolist()]
    differ = [] if expected is None else [
        n for n, b, e in zip(names, bits.tolist(), expected) if e is not None and int(b) != e]
    hidden = _hidden(module, active) if args.hidden else []
    data = {"model": args.model, "target": net.target, "active": [input_names[i] for i in active],
            "dtype": str(module.dtype).replace("torch.", ""), "threshold": net.threshold,
            "outputs": {n: {"value": float(v), "bit": int(b)}
                        | ({} if expected is None else {"expected": e})
                        for n, v, b, e in zip(names, values.tolist(), bits.tolist(),
                                              expected or [None] * len(names))},
            "reference": expected is not None, "differ": differ}
    if args.hidden:
        data["hidden"] = hidden
        if not hidden:
            data["hidden_note"] = "a conditional network has no hidden layers (trees of gates)"
    emit(args, data, _text(args, net, data, names, values, bits, expected, hidden))
    return EXIT_MISMATCH if differ else EXIT_OK


def _text(args, net, data, names, values, bits, expected, hidden) -> str:
    dtype = data["dtype"]
    lines = [f"{net.target} network {args.model} ({dtype}) on input "
             f"{{{', '.join(data['active'])}}}; an output is 1 when its value > {net.threshold:g}"]
    if expected is None:
        lines.append("reference: not shown (give --circuit FILE to compare with the circuit)")
    shown = range(len(names))
    if len(names) > MAX_LINES:
        shown = [i for i in range(len(names)) if bits[i] or (expected and expected[i])]
        lines.append(f"{int(bits.sum()):,} of {len(names):,} outputs are 1 in the network"
                     + ("" if expected is None else
                        f", {sum(1 for e in expected if e == 1):,} in the reference")
                     + "; listing those (--json gives every output)")
    if not len(shown):
        lines.append("(no output is 1)")
        shown = []
    width = max((len(names[i]) for i in shown), default=6)
    head = f"{'output':<{width}}  {'value':>10}  bit" + ("  reference" if expected else "")
    lines += [head] if shown else []
    for i in shown:
        row = f"{names[i]:<{width}}  {values[i]:>10.4g}  {int(bits[i]):>3}"
        if expected is not None:
            e = expected[i]
            row += f"  {'*' if e is None else e:>9}" + ("  DIFFERS" if e is not None
                                                         and e != int(bits[i]) else "")
        lines.append(row)
    if expected is not None:
        lines.append("network and reference agree" if not data["differ"] else
                     f"{len(data['differ']):,} outputs differ from the reference")
    if args.hidden:
        if not hidden:
            lines.append("hidden: " + data["hidden_note"])
        for layer in hidden:
            nz = layer["nonzero"]
            role = _roles(net, layer["layer"] - 1)
            lines.append(f"hidden layer {layer['layer']}: {layer['neurons']:,} neurons, "
                         f"{len(nz):,} nonzero" + (":" if nz else ""))
            items = list(nz.items())[:MAX_HIDDEN]
            lines += [f"  h{layer['layer']}[{j:,}] = {v:.4g}" + (f"  ({role[j]})" if role else "")
                      for j, v in items]
            if len(nz) > MAX_HIDDEN:
                lines.append(f"  ... {len(nz) - MAX_HIDDEN:,} more (--json lists them)")
    return "\n".join(lines)


def _roles(net, i: int):
    """The role name of each neuron of hidden layer i (gate, channel, ...), when recorded."""
    layer = net.layers[i]
    if getattr(layer, "role", None) is None:
        return None
    return [ROLE_NAMES.get(int(r), str(r)) for r in layer.role]
