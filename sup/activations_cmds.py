"""`sup activations MODEL --samples N --site NAME [--p P | --k K] -o DATA`: an activation dataset.

Draws N inputs (random inputs of the sparse domain by default: a uniform number 0..sparsity of
features on, chosen uniformly; `--k K`: exactly K on; `--p P`: each feature on with probability
P), runs the saved layered network on them in chunks (CUDA when present, `--device`), and
writes DATA.safetensors with

    inputs       uint8  [N, n_inputs]   the inputs
    activations  float32 [N, width]     the module's activation at the site (its hook)
    predicted    float32 [N, width]     the activation the ground truth predicts
    features     float32 [N, F]         the true feature values at the site: the input features
                                        (an encoded site), the outputs (a decoded site; the
                                        circuit's values with --circuit, else the ground truth's
                                        decisions), the neurons' true values (a neuron site)

and JSON metadata (site, kind, feature names, how the inputs were drawn). The ground truth is
the model's sidecar (model.groundtruth.json) when present, else computed from the network.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from safetensors.numpy import save_file
from tqdm import tqdm

import dsl
from backends import ModelFileError, load, to_module
from backends.ground_truth import (GroundTruthError, ground_truth, load_ground_truth,
                                   sample_inputs)
from compiler.network import Network
from dsl.memory import available_bytes, format_bytes
from dsl.semantics import evaluate

from . import argtypes
from .output import EXIT_OK, UsageError, emit


def _probability(text: str) -> float:
    """An argparse type: a probability in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text}")
    return value


def register(sub) -> None:
    """Add the `activations` subcommand to the subparsers `sub`."""
    act = sub.add_parser(
        "activations", help="write activations at a site and the true feature values",
        description=__doc__.split("\n\n")[1] if __doc__ else None)
    act.add_argument("model", metavar="MODEL", help="a layered network saved by sup compile -o")
    act.add_argument("--site", required=True, metavar="NAME",
                     help="hook name: hook_in, layers.{i}.hook_pre, layers.{i}.hook_post, hook_out")
    act.add_argument("--samples", type=argtypes.sample_count, default=10_000, metavar="N",
                     help="inputs to draw (default 10,000)")
    draw = act.add_mutually_exclusive_group()
    draw.add_argument("--p", type=_probability, metavar="P",
                      help="each feature on with probability P (i.i.d.)")
    draw.add_argument("--k", type=argtypes.nonnegative_int, metavar="K",
                      help="exactly K features on per input")
    act.add_argument("-o", "--output", required=True, metavar="DATA",
                     help="the dataset to write (.safetensors added when missing)")
    act.add_argument("--circuit", dest="file", metavar="FILE",
                     help="the circuit the model was compiled from: names gates, gives outputs' "
                     "reference values")
    act.add_argument("--seed", type=argtypes.nonnegative_int, default=0, help="random seed")
    act.add_argument("--chunk", type=argtypes.batch_size, default=4096, metavar="B",
                     help="inputs per forward pass (default 4,096)")
    act.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                     help="where the network runs (auto: CUDA when available)")
    act.add_argument("--json", action="store_true", help="print one JSON object")
    act.add_argument("--max-elements", type=argtypes.positive_int,
                     default=dsl.Limits.max_elements, metavar="N",
                     help="size limit when reading --circuit")
    act.set_defaults(run=cmd_activations)


def _load(args, circuit):
    """(network, ground truth) of the model; UsageError for what cannot be studied."""
    try:
        net = load(args.model)
    except ModelFileError as exc:
        raise UsageError(str(exc)) from None
    if not isinstance(net, Network):
        raise UsageError(f"{args.model} is a {net.target} network of trees; activations need a "
                         "layered network (compile with --target dense or superposed)")
    if circuit is not None and (net.n_inputs != circuit.n_inputs
                                or net.output_names() != circuit.output_names()):
        raise UsageError(f"the model {args.model} was not compiled from {args.file}")
    try:
        gt = ground_truth(net, circuit) if circuit is not None else load_ground_truth(args.model)
    except GroundTruthError:
        gt = ground_truth(net, circuit)
    if args.site not in gt.sites:
        raise UsageError(f"unknown site '{args.site}'; the sites of this model are: "
                         f"{', '.join(gt.site_names())}")
    if args.k is not None and args.k > net.n_inputs:
        raise UsageError(f"--k {args.k}: the model has only {net.n_inputs} inputs")
    return net, gt


def _device(choice: str) -> str:
    if choice == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def _true_features(gt, site, x, pred, circuit) -> np.ndarray:
    """The true feature values at the site for inputs x (see the module docstring)."""
    data = gt.sites[site]
    if data.kind == "encoded":
        return x.astype(np.float32)
    if data.kind == "decoded":
        if circuit is not None:
            return evaluate(circuit, x).astype(np.float32)   # 2 marks a don't-care
        return (gt.feature_values(x)["hook_out"] > gt.threshold).astype(np.float32)
    return pred.astype(np.float32)


def collect(net, gt, args, circuit, device: str) -> dict:
    """The dataset's arrays, computed chunk by chunk with a progress bar."""
    module = to_module(net, dtype=torch.float32, device=device)
    rng = np.random.default_rng(args.seed)
    inputs, acts, preds, feats = [], [], [], []
    with tqdm(total=args.samples, unit="input", desc="activations", leave=False,
              disable=None) as bar:
        for start in range(0, args.samples, args.chunk):
            n = min(args.chunk, args.samples - start)
            x = sample_inputs(net.n_inputs, n, rng, k=args.k, p=args.p, sparsity=net.sparsity)
            with torch.no_grad():
                _, cache = module.run_with_cache(
                    torch.as_tensor(x, dtype=torch.float32, device=device),
                    names_filter=args.site)
            pred = gt.feature_values(x)[args.site]
            inputs.append(x.astype(np.uint8))
            acts.append(cache[args.site].float().cpu().numpy())
            preds.append(pred.astype(np.float32))
            feats.append(_true_features(gt, args.site, x, pred, circuit))
            bar.update(n)
    return {"inputs": np.concatenate(inputs), "activations": np.concatenate(acts),
            "predicted": np.concatenate(preds), "features": np.concatenate(feats)}


def check_memory(net, gt, args) -> None:
    """Refuse up front a dataset that would not fit in half the available memory: the arrays
    are held whole until written (one safetensors file), so say how many samples would fit."""
    width = max(gt.sites[args.site].width, net.n_outputs)
    per_sample = net.n_inputs + 3 * 4 * width            # uint8 inputs, three float32 arrays
    budget = available_bytes() // 2
    if args.samples * per_sample > budget:
        raise UsageError(f"--samples {args.samples:,} needs about "
                         f"{format_bytes(args.samples * per_sample)} of memory, more than half "
                         f"the {format_bytes(2 * budget)} available: at most "
                         f"{max(budget // per_sample, 1):,} samples fit")


def cmd_activations(args, circuit) -> int:
    """`sup activations`: write the dataset; print where and its shapes."""
    net, gt = _load(args, circuit)
    check_memory(net, gt, args)
    device = _device(args.device)
    arrays = collect(net, gt, args, circuit, device)
    site = gt.sites[args.site]
    names = ([f"neuron {i}: {n['meaning']}" for i, n in enumerate(site.neurons)]
             if site.kind == "neurons" else site.features)
    draw = ("p", args.p) if args.p is not None else ("k", args.k) if args.k is not None \
        else ("sparse domain", net.sparsity)
    meta = {"model": args.model, "site": args.site, "kind": site.kind,
            "feature_names": names, "draw": list(draw), "seed": args.seed,
            "samples": args.samples, "device": device}
    path = args.output if args.output.endswith(".safetensors") else args.output + ".safetensors"
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, path,
                  metadata={"sup": json.dumps(meta)})
    except Exception as exc:  # safetensors reports a missing folder as its own error type
        raise UsageError(f"cannot write {path}: {exc}") from None
    gap = float(np.abs(arrays["activations"] - arrays["predicted"]).max(initial=0.0))
    data = {**meta, "output": path, "shapes": {k: list(v.shape) for k, v in arrays.items()},
            "max_abs_gap_predicted": gap}
    text = (f"wrote {path}: {args.samples:,} inputs ({draw[0]} {draw[1]}), site {args.site} "
            f"({site.kind}, width {site.width}, {arrays['features'].shape[1]:,} features) on "
            f"{device}\nlargest |activation - ground truth prediction| {gap:.3g}")
    emit(args, data, text)
    return EXIT_OK
