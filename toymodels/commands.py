"""What `sup toy cc` and `sup toy autoencoder` run: their arguments, the runs, and the text.

Each `run_*` takes the parsed arguments and returns (data, text): the JSON-ready result and
the human-readable table; `sup.cli` prints one or the other and turns ToyInputError into
exit status 2.
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

import numpy as np
import torch

from verify.progress import progress_bar

from . import autoencoder, cc, pairs, plots
from .common import ToyInputError, check_positive, check_probability, resolve_device, seed_arg

CURVE_PS = [float(v) for v in np.geomspace(1e-3, 1.0, 10)]
AE_PS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0]

CC_DESCRIPTION = """\
The compressed-computation toy model (Braun et al. 2025) as analysed by Bhagat et al.:
a bias-free MLP 100 -> 50 ReLU -> 100 trained on y = ReLU(x) + M x, x_i active with
probability p and uniform in [-1, 1]; AdamW (wd 0.01), lr 3e-3 cosine, batch 2048.

--task relu (default): for each --p and --mixing, train and report L/p (loss per feature)
beside the naive baseline (1/12 in closed form, and simulated), the naive MLP under the same
labels, and the SNMF baseline built from M alone; the loss split into the ReLU term R/p (error
against clean labels ReLU(x)) and the mixing term (L - R)/p.
  mixing: embed (M = W_E W_E^T - I, the paper's code), resid (the literal residual
  architecture, W_E fixed, labels x + ReLU(x); its reduced M = I - W_E W_E^T), clean (M = 0),
  sym:S / asym:S (Gaussian M, off-diagonal std S, zero diagonal).

--task pairs: the same MLP (with biases) trained on 100 pairwise ANDs of boolean features
active with probability p, beside sup's compiled superposed network for the same .sup
circuit (exact on every input with at most --sparsity active features, proved).

Timing on the 2-core CPU: about 45 s per 10,000-step training run (one thread).
"""

AE_DESCRIPTION = """\
Chowdhury & Weiner's tied-weight power autoencoders x_hat = (W^T W x)^m, W in R^{d x n},
x_i = s_i u_i with s_i ~ Bernoulli(p), u_i symmetric (--law). Prints the EXACT improvement
I = 2E<x, x_hat> - E|x_hat|^2 (closed form from the moments of u, no sampling) of:
the monosemantic projection (optimum d p mu_{m+1}^2 / mu_{2m}), random near-orthogonal codes,
sup's sign codes (best scale in closed form, best number of coded features), and W trained by
gradient ascent on the exact I; with the bound shape min{p d^m, d p^(1/m)} and the ratio
best / shape. With m = 1 the known optimum p mu_2 min(d, n) is checked.
"""


def add_cc_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `sup toy cc`."""
    parser.add_argument("--task", choices=("relu", "pairs"), default="relu",
                        help="relu: the CC model (default); pairs: pairwise ANDs, trained "
                        "vs sup's compiled network")
    parser.add_argument("--p", type=float, nargs="+", default=[0.01], metavar="P",
                        help="feature probabilities to train at (default 0.01)")
    parser.add_argument("--steps", type=int, default=cc.PAPER_STEPS, metavar="N",
                        help=f"training steps (default {cc.PAPER_STEPS:,}, the paper's; "
                        "about 45 s each on the 2-core CPU)")
    parser.add_argument("--mixing", nargs="+", default=["embed", "clean"], metavar="SPEC",
                        help="relu: mixing matrices, each embed, resid, clean, sym:S or "
                        "asym:S (default: embed clean)")
    parser.add_argument("--eval-samples", type=int, default=cc.PAPER_NONTRIVIAL, metavar="N",
                        help="relu: evaluation samples with at least one active feature "
                        "(default 1,000,000 as the paper); pairs: samples drawn")
    parser.add_argument("--no-snmf", action="store_true", help="relu: skip the SNMF baseline")
    parser.add_argument("--pairs", type=int, default=pairs.PAIRS, metavar="COUNT",
                        help="pairs: number of pairwise ANDs (default 100)")
    parser.add_argument("--sparsity", type=int, default=pairs.SPARSITY, metavar="K",
                        help="pairs: sup compiles and proves exactness on inputs with at "
                        "most K active features (default 2)")
    parser.add_argument("--widths", type=int, nargs="+", metavar="N",
                        help="pairs: neurons of the trained models (default: 50 and the "
                        "compiled network's)")
    parser.add_argument("--no-bias", action="store_true",
                        help="pairs: train the bias-free CC MLP instead")
    _shared(parser)


def add_autoencoder_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `sup toy autoencoder`."""
    parser.add_argument("--m", type=int, nargs="+", default=[3], metavar="M",
                        help="odd powers (default 3; 1 checks the linear optimum)")
    parser.add_argument("--d", type=int, nargs="+", default=[2, 3, 4], metavar="D",
                        help="hidden widths (default 2 3 4)")
    parser.add_argument("--p", type=float, nargs="+", default=AE_PS, metavar="P",
                        help="feature probabilities (default 1e-4 ... 1, 9 values)")
    parser.add_argument("--n", type=int, metavar="N",
                        help="features (default 2 d^m per width, so that n > d^m)")
    parser.add_argument("--law", choices=autoencoder.LAWS, default="rademacher",
                        help="law of the active values u (default rademacher)")
    parser.add_argument("--steps", type=int, default=1000, metavar="N",
                        help="gradient-ascent steps for the trained W (default 1000; 0: no "
                        "training)")
    _shared(parser)


def _shared(parser) -> None:
    parser.add_argument("--seed", type=seed_arg, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where torch runs (auto: CUDA when available)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", metavar="OUT.png", help="also draw the figure to OUT.png")


@contextmanager
def _threads(device: torch.device):
    """On CPU, one torch thread for the duration (the matrices are tiny: one thread is
    several times faster than two on a shared 2-core machine); restored afterwards."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_cc(args) -> tuple[dict, str]:
    """`sup toy cc`: train and compare; returns (data, text)."""
    device = resolve_device(args.device)
    with _threads(device):
        return _run_cc(args, device)


def _run_cc(args, device) -> tuple[dict, str]:
    ps = [check_probability(p) for p in args.p]
    steps = check_positive(args.steps, "--steps")
    samples = check_positive(args.eval_samples, "--eval-samples")
    start = time.perf_counter()
    if args.task == "pairs":
        data = pairs.run_pairs(ps, steps, count=args.pairs, sparsity=args.sparsity,
                               widths=[check_positive(w, "--widths") for w in args.widths]
                               if args.widths else None, seed=args.seed, samples=samples,
                               bias=not args.no_bias, device=device, progress=not args.json)
        text = format_pairs(data)
    else:
        mixings = [cc.parse_mixing(m) for m in args.mixing]
        data = cc.run_relu(ps, mixings, steps, seed=args.seed, nontrivial=samples,
                           curve_ps=CURVE_PS if args.plot else None, device=device,
                           progress=not args.json, snmf=not args.no_snmf)
        text = format_relu(data)
    data["wall_seconds"] = round(time.perf_counter() - start, 1)
    text += f"\nwall time {data['wall_seconds']} s on {data['device']}"
    if args.plot:
        draw = plots.plot_pairs if args.task == "pairs" else plots.plot_cc
        data["plot"] = draw(data, args.plot)
        text += f"\nplot: {data['plot']}"
    return data, text


def run_autoencoder(args) -> tuple[dict, str]:
    """`sup toy autoencoder`: the exact-I grid; returns (data, text)."""
    device = resolve_device(args.device)
    with _threads(device):
        return _run_autoencoder(args, device)


def _run_autoencoder(args, device) -> tuple[dict, str]:
    ps = [check_probability(p) for p in args.p]
    for m in args.m:
        if m < 1 or m % 2 == 0:
            raise ToyInputError(f"--m must be odd and positive, got {m}")
    ds = [check_positive(d, "--d") for d in args.d]
    if args.n is not None:
        check_positive(args.n, "--n")
    if args.steps < 0:
        raise ToyInputError("--steps must be >= 0")
    for m in args.m:
        for d in ds:
            n = args.n or autoencoder.default_n(d, m)
            if n > 4096:
                raise ToyInputError(f"n = {n} features (d = {d}, m = {m}) is more than 4096; "
                                    "choose a smaller --d or give --n")
    start = time.perf_counter()
    cells = []
    total = len(args.m) * len(ds) * len(ps)
    with progress_bar(total, "cell", enabled=not args.json) as bar:
        for m in args.m:
            for d in ds:
                n = args.n or autoencoder.default_n(d, m)
                for p in ps:
                    cells.append(autoencoder.grid_cell(d, n, p, args.law, m, steps=args.steps,
                                                       seed=args.seed, device=device,
                                                       train=args.steps > 0))
                    bar.update(1)
    data = {"law": args.law, "steps": args.steps, "seed": args.seed, "device": str(device),
            "cells": cells, "wall_seconds": round(time.perf_counter() - start, 1)}
    text = format_autoencoder(data) + f"\nwall time {data['wall_seconds']} s on {device}"
    if args.plot:
        data["plot"] = plots.plot_autoencoder(data, args.plot)
        text += f"\nplot: {data['plot']}"
    return data, text


def format_autoencoder(data: dict) -> str:
    """The text table of an autoencoder grid."""
    lines = [f"exact improvement I = 2E<x,x_hat> - E|x_hat|^2, u ~ {data['law']}; "
             f"codes: best scale and best number of coded features; trained: "
             f"{data['steps']} Adam steps on the exact I", "",
             f"{'m':>2} {'d':>2} {'n':>4} {'p':>7} {'mono':>10} {'random':>10} {'sign':>10} "
             f"{'trained':>10} {'shape':>10} {'best/shape':>10}"]
    for c in data["cells"]:
        trained = f"{c['trained']['I']:>10.4g}" if "trained" in c else f"{'-':>10}"
        lines.append(f"{c['m']:>2} {c['d']:>2} {c['n']:>4} {c['p']:>7g} "
                     f"{c['monosemantic']:>10.4g} {c['random_code']['I']:>10.4g} "
                     f"{c['sign_code']['I']:>10.4g} {trained} {c['bound_shape']:>10.4g} "
                     f"{c['ratio']:>10.3f}")
        if c["m"] == 1:
            lines[-1] += f"  linear optimum p mu_2 min(d,n) = {c['linear_optimum']:.4g}"
    lines.append("")
    lines.append("mono: scaled projection on d features (closed form d p mu_{m+1}^2/mu_{2m}, "
                 "equal to the exact I); shape: min{p d^m, d p^(1/m)}.")
    return "\n".join(lines)


def format_relu(data: dict) -> str:
    """The text table of a relu run."""
    naive = data["naive"]
    lines = [f"CC model: n={data['n']}, {data['d_mlp']} ReLU neurons, {data['steps']:,} steps, "
             f"batch {data['batch']}, seed {data['seed']}",
             f"naive baseline L/p: closed form {naive['closed_form']:.5f} (= 1/12); simulated "
             f"{naive['simulated']:.5f} +- {naive['simulated_stderr']:.5f} at p = "
             f"{naive['simulated_p']:g} ({naive['simulated_samples']:,} samples)", "",
             f"{'mixing':<10} {'p':>7} {'trained L/p':>12} {'ReLU term':>10} {'mix term':>9} "
             f"{'SNMF L/p':>9} {'naive':>7} {'naive MLP':>10} {'train s':>8}"]
    for r in data["rows"]:
        t = r["trained"]
        snmf = f"{r['snmf']['L_over_p']:.4f}" if "snmf" in r else "-"
        lines.append(f"{r['mixing']:<10} {r['p']:>7g} {t['L_over_p']:>12.4f} "
                     f"{t['relu_term']:>10.4f} {t['mixing_term']:>9.4f} {snmf:>9} "
                     f"{r['naive_idealised']:>7.4f} {r['naive_literal']['L_over_p']:>10.4f} "
                     f"{r['train_seconds']:>8.1f}")
    lines.append("")
    lines.append("L/p: loss per feature (mean squared error over batch and features, / p), "
                 "standard errors about 1e-4; ReLU term: error against ReLU(x) alone; mix "
                 "term = L/p - ReLU term; naive: the papers' idealised baseline; naive MLP: "
                 "the naive network itself under these labels.")
    return "\n".join(lines)


def format_pairs(data: dict) -> str:
    """The trained-vs-compiled table of a pairs run."""
    comp = data["compiled"]
    lines = [f"task: {data['pairs']} pairwise ANDs y_uv = x_u & x_v over {data['n']} boolean "
             f"features (pairs({data['n']}, {data['pairs']}, seed={data['pair_seed']}))",
             f"sup superposed network: {comp['neurons']} neurons, {comp['params_nonzero']:,} "
             f"nonzero parameters, compiled in {comp['compile_seconds']} s; exact on all "
             f"{comp['domain']['inputs']:,} inputs with <= {data['sparsity']} active: "
             f"structural proof {comp['verify']['structural']['verified']}, exhaustive "
             f"{comp['verify']['exhaustive']['verified']}",
             f"trained: one hidden ReLU layer, {'with' if data['bias'] else 'without'} biases, "
             f"{data['steps']:,} steps AdamW, MSE on 0/1 labels; decided at 1/2", ""]
    for row in data["rows"]:
        lines.append(f"p = {row['p']:g}: P(<= {data['sparsity']} active) = "
                     f"{row['domain_mass']:.4f}; {row['compiled']['samples']:,} samples, "
                     f"{row['compiled']['true_ands']:,} true ANDs among them")
        lines.append(f"  {'model':<22} {'neurons':>7} {'MSE':>10} {'wrong outputs':>14} "
                     f"{'wrong inputs':>13} {'recall':>7} {'wrong on domain':>16}")
        entries = [("sup compiled (proved)", comp["neurons"], row["compiled"],
                    comp["domain"]["wrong_inputs"]),
                   ("zero output", 0, row["zero_model"], None)]
        entries += [(f"trained ({e['train']['seconds']:.0f} s)", e["neurons"], e,
                     e["domain"]["wrong_inputs"]) for e in row["trained"]]
        for name, neurons, m, dom in entries:
            recall = "-" if m["recall"] is None else f"{m['recall']:.3f}"
            dom_text = "-" if dom is None else f"{dom} / {comp['domain']['inputs']}"
            lines.append(f"  {name:<22} {neurons:>7} {m['mse']:>10.2e} "
                         f"{m['output_error_rate']:>14.2e} {m['input_error_rate']:>13.4f} "
                         f"{recall:>7} {dom_text:>16}")
    lines.append("")
    lines.append("wrong inputs: fraction of sampled inputs with any wrong output; wrong on "
                 "domain: exact count over every input with at most K active features; the "
                 "compiled network's errors all come from inputs with more than K active.")
    return "\n".join(lines)
