"""sup's torch modules against a plain dense model holding the same weights (issue 18).

    python bench/module_speed.py [--device cpu|cuda] [--exps 12 14 16] [--batch 4096]
                                 [--tables 12 14 16] [--cache DIR]

For each m' = 2^e random pairwise ANDs over m'/4 features at sparsity 2 (the superposed
scaling family), compile with --target superposed and time, on the same 0/1 input batches
(random inputs with at most 2 active features, as the network is proved for):

* `SupModule.forward(x)` (the module's default path), and
* `nn.Sequential(nn.Linear, nn.ReLU, ..., nn.Linear)` built from the same layers as dense
  matrices (`backends.to_sequential` when present, else built here), the plain model a user
  would write by hand;

and for each random 32-bit lookup table of 2^e rows (bench/conditional_tables.py's family,
don't-care default), `ConditionalModule.forward_active` against the dense-target network of the
same table as an `nn.Sequential`. Outputs are checked equal (decided at the module's threshold)
before any time is taken. Prints inputs/s and the ratio module / plain; `--json FILE` stores the
rows. Compiled networks are cached under --cache (safetensors) so that a rerun times only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import torch  # noqa: E402
from torch import nn  # noqa: E402

import dsl  # noqa: E402
from backends import load as load_network, save as save_network, to_module  # noqa: E402
from compiler import compile_circuit  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conditional_tables import active_of, write_table  # noqa: E402
from superposed_scaling import pairs_text  # noqa: E402


def plain_sequential(net, dtype=torch.float32) -> nn.Sequential:
    """nn.Linear / nn.ReLU layers holding the network's weights as dense matrices, the input
    map folded into the first layer (what a user writes by hand for the same function)."""
    mods: list[nn.Module] = []
    for index, layer in enumerate(net.layers):
        weight = np.zeros((layer.n_out, layer.n_in))
        np.add.at(weight, (layer.rows, layer.cols), layer.vals)
        if index == 0:                       # input features -> first layer's columns
            full = np.zeros((layer.n_out, net.n_inputs))
            np.add.at(full.T, net.input_map, weight.T)
            weight = full
        linear = nn.Linear(weight.shape[1], weight.shape[0], dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weight))
            linear.bias.copy_(torch.from_numpy(np.asarray(layer.bias)))
        linear.requires_grad_(False)
        mods.append(linear)
        if layer.relu:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def sparse_batch(features: int, batch: int, k: int, rng) -> torch.Tensor:
    """[batch, features] 0/1 rows, each with 0..k active features (uniform count)."""
    x = np.zeros((batch, features), np.float32)
    counts = rng.integers(0, k + 1, batch)
    for j in range(k):
        rows = np.flatnonzero(counts > j)
        x[rows, rng.integers(0, features, len(rows))] = 1.0
    return torch.from_numpy(x)


def rate(fn, x: torch.Tensor, repeats: int, device: torch.device) -> float:
    """Inputs per second of fn(x) (best of `repeats` after one warm-up)."""
    with torch.inference_mode():
        fn(x)
        best = float("inf")
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return len(x) / best


def cached(cache: Path, name: str, circuit, target: str):
    """The compiled network of `circuit` for `target`, from cache/NAME when stored."""
    path = cache / name
    if path.with_suffix(".safetensors").exists() or path.exists():
        try:
            return load_network(path)
        except Exception:                    # stale or partial cache: compile again
            pass
    start = time.perf_counter()
    net = compile_circuit(circuit, target)
    print(f"  compiled {name} ({target}) in {time.perf_counter() - start:.1f} s", flush=True)
    save_network(net, path)
    return net


def superposed_row(e: int, args, device, rng) -> dict:
    """SupModule.forward vs the plain Sequential at m' = 2^e."""
    circuit = dsl.loads(pairs_text(1 << e, 2), f"pairs_2^{e}.sup")
    net = cached(args.cache, f"pairs_{e}", circuit, "superposed")
    module = to_module(net, device=device, dtype=torch.float32)
    plain = plain_sequential(net).to(device)
    x = sparse_batch(circuit.n_inputs, args.batch, 2, rng).to(device)
    threshold = float(getattr(module, "threshold", 0.5))
    with torch.inference_mode():
        same = torch.equal(module(x) > threshold, plain(x) > threshold)
    if not same:
        raise SystemExit(f"2^{e}: SupModule and the plain model disagree")
    sup_rate = rate(module, x, args.repeats, device)
    plain_rate = rate(plain, x, args.repeats, device)
    return {"family": "superposed pairs", "size": f"2^{e}", "outputs": circuit.n_outputs,
            "neurons": int(sum(layer.n_out for layer in net.layers[:-1])),
            "module": "SupModule.forward", "module_rate": sup_rate, "plain_rate": plain_rate,
            "ratio": sup_rate / plain_rate}


def table_row(e: int, args, device, rng) -> dict:
    """ConditionalModule.forward_active vs the dense network of the same table (plain)."""
    folder = Path(tempfile.mkdtemp(prefix="module_speed_"))
    sup_path, keys, _ = write_table(folder, 1 << e, 8, "*", seed=e)
    circuit = dsl.load(sup_path)
    cond = cached(args.cache, f"table_{e}_conditional", circuit, "conditional")
    dense = cached(args.cache, f"table_{e}_dense", circuit, "dense")
    module = to_module(cond, device=device)
    plain = plain_sequential(dense).to(device)
    pick = rng.integers(0, len(keys), args.batch)
    active_np = active_of(keys[pick])
    active = torch.from_numpy(active_np).to(device)
    x = torch.zeros((args.batch, circuit.n_inputs), device=device)
    rows, cols = np.nonzero(active_np >= 0)
    x[torch.from_numpy(rows).to(device), torch.from_numpy(active_np[rows, cols]).to(device)] = 1
    with torch.inference_mode():
        got = module.forward_active(active) > 0.5
        want = plain(x) > 0.5
    if not torch.equal(got.cpu(), want.cpu()):
        raise SystemExit(f"table 2^{e}: ConditionalModule and the dense network disagree")
    cond_rate = rate(module.forward_active, active, args.repeats, device)
    plain_rate = rate(plain, x, args.repeats, device)
    return {"family": "lookup table (rows)", "size": f"2^{e}", "outputs": circuit.n_outputs,
            "neurons": int(sum(layer.n_out for layer in dense.layers[:-1])),
            "module": "ConditionalModule.forward_active", "module_rate": cond_rate,
            "plain_rate": plain_rate, "ratio": cond_rate / plain_rate}


def main(argv=None) -> None:
    """Parse arguments, time every row, print the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--exps", type=int, nargs="*", default=[12, 14],
                        help="superposed pairs sizes m' = 2^e (default 12 14)")
    parser.add_argument("--tables", type=int, nargs="*", default=[12, 14],
                        help="lookup-table sizes 2^e rows (default 12 14)")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "sup_bench")
    parser.add_argument("--json", type=Path, help="also store the rows in this file")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    rows = [superposed_row(e, args, device, rng) for e in args.exps]
    rows += [table_row(e, args, device, rng) for e in args.tables]
    print(f"device {args.device}, batch {args.batch:,}, torch threads {torch.get_num_threads()}")
    print("| family | size | outputs | hidden neurons | module | module inputs/s "
          "| plain inputs/s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['family']} | {r['size']} | {r['outputs']:,} | {r['neurons']:,} | "
              f"{r['module']} | {r['module_rate']:,.0f} | {r['plain_rate']:,.0f} | "
              f"{r['ratio']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
