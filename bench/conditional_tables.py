"""Conditional target on random lookup tables (issue: the conditional target).

    python bench/conditional_tables.py [--exps 10 14 18] [--outputs 8] [--batch 65536]

For n = 2^e random rows over 32 input bits (8 output bits, random 0/1), with a cared default
(0: every one of the 2^32 inputs is specified) and with a don't-care default (the domain is the
rows), each table is written as a .sup file plus a rows file and then:

1. parsed and compiled with --target conditional (the compiler picks the key binary search or
   the bit diagram by worst-case ops) and with --target dense (one neuron per row);
2. accounted: max ops per input (a bound over every input) and mean ops (over the rows, or a
   uniform sample of the 2^32 inputs for the cared default) beside the goal
   2 ceil(log2 n) + 32 + 8 and the dense network's ops, parameters of both;
3. run in batches on the CPU: inputs/s of the conditional torch module (tree walk,
   forward_active) and of the dense torch module (forward on 0/1 rows) on the same inputs
   (half table rows, half random 32-bit inputs), measured in the same run, and checked
   against each other and the table;
4. verified exhaustively over the rows (don't-care default: that is the whole domain).
Prints a markdown table (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import torch  # noqa: E402

import dsl  # noqa: E402
from backends import to_module  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_device import add_device_argument, chosen_device, synchronize  # noqa: E402
from compiler import account, compile_circuit  # noqa: E402

BITS = 32


def write_table(folder: Path, n: int, outputs: int, default: str, seed: int):
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(0, 1 << BITS, int(n * 1.01) + 16, dtype=np.uint64))[:n]
    keys = rng.permutation(keys)[:n]
    values = rng.random((n, outputs)) < 0.5
    key_text = np.char.zfill(np.array([format(int(k), "b") for k in keys]), BITS)
    value_text = ["".join("1" if v else "0" for v in row) for row in values]
    tag = "dc" if default == "*" else "d0"
    rows = folder / f"t{n}_{tag}.rows"
    rows.write_text("".join(f"{k} {v}\n" for k, v in zip(key_text, value_text))
                    + f"default {default * outputs}\n")
    refs = ", ".join(f"x[{i}]" for i in reversed(range(BITS)))
    sup = folder / f"t{n}_{tag}.sup"
    sup.write_text(f"circuit table_{n};\ninput x[{BITS}];\n"
                   f"table t({refs}) -> y[{outputs}] from \"{rows.name}\";\n")
    return sup, keys, values


def active_of(keys: np.ndarray) -> np.ndarray:
    bits = ((keys[:, None] >> np.arange(BITS, dtype=np.uint64)) & np.uint64(1)).astype(bool)
    order = np.argsort(~bits, axis=1, kind="stable")
    cols = np.take_along_axis(np.broadcast_to(np.arange(BITS), bits.shape), order, axis=1)
    return np.where(np.take_along_axis(bits, order, axis=1), cols, -1)


def throughput(module, active: torch.Tensor, batch: int) -> tuple[float, torch.Tensor]:
    outs = []
    module.forward_active(active[:min(batch, 256)])          # warm-up
    synchronize(active.device)
    start = time.perf_counter()
    for i in range(0, len(active), batch):
        outs.append(module.forward_active(active[i:i + batch]))
    synchronize(active.device)
    seconds = time.perf_counter() - start
    return len(active) / seconds, torch.cat(outs)


def dense_throughput(module, active: torch.Tensor, batch: int) -> tuple[float, torch.Tensor]:
    """The dense network's best batched path on these inputs: forward on 0/1 rows [B, 32]
    (sparse matmuls; its gather path forward_active is slower here, since every key bit's
    column reaches about half of the row neurons)."""
    x = torch.zeros(len(active), BITS, dtype=torch.float32, device=active.device)
    rows, slots = torch.nonzero(active >= 0, as_tuple=True)
    x[rows, active[rows, slots]] = 1
    module.forward(x[:min(batch, 64)])                       # warm-up
    synchronize(x.device)
    start = time.perf_counter()
    outs = [module.forward(x[i:i + batch]) for i in range(0, len(x), batch)]
    synchronize(x.device)
    return len(x) / (time.perf_counter() - start), torch.cat(outs)


def run(n: int, outputs: int, default: str, batch: int, inputs: int, folder: Path,
        device: str = "cpu") -> dict:
    sup, keys, values = write_table(folder, n, outputs, default, seed=n)
    start = time.perf_counter()
    circuit = dsl.load(sup)
    parse_s = time.perf_counter() - start
    start = time.perf_counter()
    net = compile_circuit(circuit, "conditional")
    compile_s = time.perf_counter() - start
    info = account(net)
    start = time.perf_counter()
    dense = compile_circuit(circuit, "dense")
    dense_s = time.perf_counter() - start
    dense_info = account(dense)
    rng = np.random.default_rng(7)
    test_keys = np.concatenate([keys[rng.integers(0, n, inputs // 2)],
                                rng.integers(0, 1 << BITS, inputs - inputs // 2, dtype=np.uint64)])
    active = torch.as_tensor(active_of(test_keys), device=device)
    cond_rate, y_cond = throughput(to_module(net, device=device), active, batch)
    dense_batch = max(1, min(batch, (1 << 24) // max(dense_info["neurons"], 1)))
    dense_inputs = active[: max(dense_batch * 4, 256)]
    dense_rate, y_dense = dense_throughput(to_module(dense, device=device), dense_inputs,
                                           dense_batch)
    agree = bool(torch.equal(y_cond[:len(y_dense)] > 0.5, y_dense > 0.5)) if default != "*" else None
    rows_ok = bool(np.array_equal((y_cond[: inputs // 2] > 0.5).cpu().numpy(),
                                  _row_values(keys, values, test_keys[: inputs // 2])))
    verify = _verify(circuit, net, device) if default == "*" else None
    c = info["conditional"]
    return {"n": n, "default": "don't care" if default == "*" else "0",
            "method": c["tables"][0]["method"], "depth": c["depth"], "gates": info["neurons"],
            "ops_max": info["ops_per_input_max"], "ops_mean": info["ops_per_input_mean"],
            "mean_over": c["ops_mean_over"], "goal": 2 * math.ceil(math.log2(n)) + BITS + 8,
            "params": info["params_nonzero"], "dense_neurons": dense_info["neurons"],
            "dense_params": dense_info["params_nonzero"], "dense_ops_max": dense_info["ops_per_input_max"],
            "dense_ops_mean": dense_info["ops_per_input_mean"], "parse_s": parse_s,
            "compile_s": compile_s, "dense_compile_s": dense_s, "cond_rate": cond_rate,
            "dense_rate": dense_rate, "speedup": cond_rate / dense_rate, "agree_dense": agree,
            "rows_correct": rows_ok, "verify": verify}


def _row_values(keys, values, query) -> np.ndarray:
    order = np.argsort(keys)
    return values[order[np.searchsorted(keys[order], query)]]


def _verify(circuit, net, device):
    from verify import verify_exhaustive
    report = verify_exhaustive(circuit, to_module(net, device=device), progress=False)
    return {"verified": report["verified"], "inputs": report["inputs_checked"],
            "seconds": report["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exps", type=int, nargs="+", default=[10, 14, 18])
    parser.add_argument("--outputs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1 << 16)
    parser.add_argument("--inputs", type=int, default=1 << 17)
    parser.add_argument("--threads", type=int, default=1)
    add_device_argument(parser)
    args = parser.parse_args()
    device = chosen_device(args)
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for e in args.exps:
            for default in ("0", "*"):
                r = run(1 << e, args.outputs, default, args.batch, args.inputs, Path(tmp), device)
                rows.append(r)
                print(r, file=sys.stderr, flush=True)
    print("| n | default | method | depth | gates | ops max | ops mean (over) | goal 2⌈log₂n⌉+40 | "
          "params | dense neurons | dense ops max / mean | dense params | compile s (cond / dense) | "
          "inputs/s cond | inputs/s dense | speed-up | exhaustive |")
    print("|" + "---|" * 17)
    for r in rows:
        v = r["verify"]
        ver = "-" if v is None else f"{'verified' if v['verified'] else v['verified']} ({v['inputs']:,} rows, {v['seconds']:.1f} s)"
        print(f"| 2^{int(math.log2(r['n']))} | {r['default']} | {r['method']} | {r['depth']} | "
              f"{r['gates']:,} | {r['ops_max']} | {r['ops_mean']:.1f} ({r['mean_over']}) | {r['goal']} | "
              f"{r['params']:,} | {r['dense_neurons']:,} | {r['dense_ops_max']:,} / {r['dense_ops_mean']:,.0f} | "
              f"{r['dense_params']:,} | {r['compile_s']:.2f} / {r['dense_compile_s']:.2f} | "
              f"{r['cond_rate']:,.0f} | {r['dense_rate']:,.0f} | {r['speedup']:,.0f} | {ver} |")


if __name__ == "__main__":
    main()
