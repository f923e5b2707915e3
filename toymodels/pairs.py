"""A trained 50-neuron MLP beside sup's proved network on one boolean task: pairwise ANDs.

The task: n = 100 boolean features, each active (1) with probability p independently; outputs
y_uv = x_u AND x_v for `count` random pairs (u, v) (default 100, the pairs of the .sup
expression `pairs(100, 100, seed=1)`, so the trained model and sup see the same pairs).

How the comparison is set up:
- trained: the CC model's MLP (100 -> 50 ReLU -> count, one hidden layer), with a bias per
  neuron and per output (sup's neurons have biases; without them ReLU networks need two neurons
  per AND, `bias=False` trains the bias-free CC MLP itself); AdamW, wd 0.01, lr 3e-3 cosine,
  batch 2048, mean-squared error on the 0/1 labels; also trained at the compiled network's
  width. An output is decided 1 when it exceeds 1/2.
- compiled: `sup.compile(circuit, target="superposed")` (here `compiler.compile_circuit`, which
  sup.compile forwards to) of the generated .sup text with `sparsity K` (default 2): exact on
  every input with at most K active features, which the structural proof and the exhaustive
  check (`sup.verify`, here `verify.verify`) both confirm. Its outputs are its decided bits.
- both are measured on the same fresh samples of the Bernoulli(p) distribution (MSE against
  the 0/1 labels, fraction of wrong outputs, fraction of inputs with any wrong output, recall
  of the true ANDs), and exactly on the whole sparse domain (every input with <= K active
  features): how many of those inputs each gets wrong. The probability mass of the sparse
  domain under Bernoulli(p) is exact, so 1 - mass bounds the compiled network's error rate.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from backends import to_module
from compiler import account, compile_circuit
from dsl import loads
from dsl.constants import pairs
from dsl.domain import SparseDomain, to_dense
from verify import verify

from .cc import BATCH, CCMLP, D_MLP, N_FEATURES, train
from .common import ToyInputError, generator

PAIRS = 100
PAIR_SEED = 1
SPARSITY = 2
EVAL_BATCH = 100_000


def pairs_source(n: int = N_FEATURES, count: int = PAIRS, seed: int = PAIR_SEED,
                 sparsity: int = SPARSITY) -> str:
    """The .sup text of the task: `count` pairwise ANDs over n features, at most `sparsity`
    active (the domain sup compiles and verifies on)."""
    return (f"# {count} random pairwise ANDs over {n} sparse features (sup toy cc --task pairs)\n"
            f"circuit toy_pairs;\n"
            f"const P = pairs({n}, {count}, seed={seed});\n"
            f"input x[{n}];\n"
            f"sparsity {sparsity};\n"
            f"output y[u, v] = x[u] & x[v] for (u, v) in P;\n")


def pair_index(n: int = N_FEATURES, count: int = PAIRS, seed: int = PAIR_SEED) -> np.ndarray:
    """int64 [count, 2]: the pairs (u, v) of pairs(n, count, seed) in output order."""
    return pairs(n, count, seed)


def sample_boolean(batch: int, n: int, p: float, gen: torch.Generator, device) -> torch.Tensor:
    """x [batch, n] in {0, 1}: each feature active with probability p."""
    return (torch.rand(batch, n, generator=gen, device=device) < p).float()


def and_labels(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """y [batch, count]: x_u * x_v for each pair (u, v) of index [count, 2]."""
    return x[:, index[:, 0]] * x[:, index[:, 1]]


def domain_mass(n: int, p: float, sparsity: int) -> float:
    """P(at most `sparsity` of n Bernoulli(p) features are active), exactly (a finite sum)."""
    return float(sum(math.comb(n, k) * p ** k * (1 - p) ** (n - k)
                     for k in range(min(sparsity, n) + 1)))


def compile_task(n: int = N_FEATURES, count: int = PAIRS, seed: int = PAIR_SEED,
                 sparsity: int = SPARSITY, device="cpu") -> dict:
    """Compile the task with sup's superposed target and prove it exact (structural proof and
    exhaustive check on the sparse domain). Returns the circuit, network, module, accounting."""
    source = pairs_source(n, count, seed, sparsity)
    circuit = loads(source, name="toy_pairs.sup")
    start = time.perf_counter()
    net = compile_circuit(circuit, target="superposed")
    compile_seconds = time.perf_counter() - start
    module = to_module(net, device=torch.device(device))
    reports = {}
    for method in ("structural", "exhaustive"):
        start = time.perf_counter()
        report = verify(circuit, net, module, method, progress=False)
        reports[method] = {"verified": report["verified"],
                           "seconds": round(time.perf_counter() - start, 3)}
    info = account(net)
    return {"source": source, "circuit": circuit, "net": net, "module": module,
            "neurons": int(info["neurons"]), "params_nonzero": int(info["params_nonzero"]),
            "params_dense": int(info["params_dense"]),
            "compile_seconds": round(compile_seconds, 3), "verify": reports}


def compiled_predict(module):
    """x [B, n] 0/1 -> the compiled network's decided output bits as floats [B, count]."""
    def predict(x):
        """Decided bits of the compiled module as floats."""
        return module.decide(module(x.to(module.device))).to(x.device).float()
    return predict


def trained_predict(model):
    """x -> the trained model's real outputs (MSE is measured on these)."""
    return model


@torch.no_grad()
def measure(predict, index: torch.Tensor, p: float, samples: int, seed: int = 4321,
            device="cpu") -> dict:
    """MSE, wrong outputs, wrong inputs and recall of the true ANDs on fresh Bernoulli(p)
    samples (the same samples for every model with the same seed)."""
    device = torch.device(device)
    gen = generator(seed, device)
    n = int(index.max()) + 1 if len(index) else 0
    n = max(n, N_FEATURES)
    sq = wrong_out = wrong_in = positives = hits = 0.0
    done = 0
    while done < samples:
        size = min(EVAL_BATCH, samples - done)
        x = sample_boolean(size, n, p, gen, device)
        y = and_labels(x, index)
        out = predict(x)
        bits = (out > 0.5).float()
        sq += ((out - y) ** 2).sum().item()
        wrong = bits != y
        wrong_out += wrong.sum().item()
        wrong_in += wrong.any(dim=1).sum().item()
        positives += y.sum().item()
        hits += (bits * y).sum().item()
        done += size
    cells = samples * index.shape[0]
    return {"mse": sq / cells, "output_error_rate": wrong_out / cells,
            "input_error_rate": wrong_in / samples,
            "recall": hits / positives if positives else None, "true_ands": int(positives),
            "samples": samples}


@torch.no_grad()
def domain_errors(predict, index: torch.Tensor, n: int, sparsity: int, device="cpu") -> dict:
    """Exactly: on every input with at most `sparsity` active features, how many have a wrong
    decided output (threshold 1/2)."""
    domain = SparseDomain(n, sparsity)
    active = domain.unrank(np.arange(domain.size))
    wrong = 0
    for start in range(0, len(active), EVAL_BATCH):
        x = torch.as_tensor(to_dense(active[start:start + EVAL_BATCH], n), dtype=torch.float32,
                            device=device)
        bits = (predict(x) > 0.5).float()
        wrong += (bits != and_labels(x, index)).any(dim=1).sum().item()
    return {"inputs": int(domain.size), "wrong_inputs": int(wrong)}


def train_pairs(index: torch.Tensor, n: int, p: float, width: int, steps: int, seed: int = 0,
                bias: bool = True, device="cpu", progress: bool = False) -> CCMLP:
    """The one-hidden-layer MLP (n -> width ReLU -> count) trained on the AND labels."""
    device = torch.device(device)
    torch.manual_seed(seed)
    model = CCMLP(n, width, bias=bias, n_out=index.shape[0], device=device)
    gen = generator(seed + 1, device)

    def batch_fn(size):
        """A fresh training batch (inputs, AND labels)."""
        x = sample_boolean(size, n, p, gen, device)
        return x, and_labels(x, index)

    start = time.perf_counter()
    model.train_info = train(model, batch_fn, steps, batch=BATCH, progress=progress,
                             desc=f"pairs width={width} p={p:g}")
    model.train_info["seconds"] = round(time.perf_counter() - start, 2)
    return model


def run_pairs(ps=(0.01,), steps: int = 10_000, count: int = PAIRS, sparsity: int = SPARSITY,
              widths=None, seed: int = 0, samples: int = 1_000_000, bias: bool = True,
              device="cpu", progress: bool = False) -> dict:
    """The trained-vs-compiled table for each p (JSON-ready)."""
    n = N_FEATURES
    if not 1 <= count <= n * (n - 1) // 2:
        raise ToyInputError(f"--pairs must be between 1 and {n * (n - 1) // 2}")
    if not 1 <= sparsity <= 4:
        raise ToyInputError("--sparsity must be between 1 and 4 (the exhaustive check "
                            "enumerates every input with at most that many active features)")
    device = torch.device(device)
    compiled = compile_task(n, count, PAIR_SEED, sparsity, device)
    index = torch.as_tensor(pair_index(n, count, PAIR_SEED), device=device)
    widths = list(widths) if widths else sorted({D_MLP, compiled["neurons"]})
    compiled_fn = compiled_predict(compiled["module"])
    result = {"task": "pairs", "n": n, "pairs": count, "pair_seed": PAIR_SEED,
              "sparsity": sparsity, "steps": steps, "seed": seed, "bias": bias,
              "device": str(device), "source": compiled["source"],
              "compiled": {"neurons": compiled["neurons"],
                           "params_nonzero": compiled["params_nonzero"],
                           "params_dense": compiled["params_dense"],
                           "compile_seconds": compiled["compile_seconds"],
                           "verify": compiled["verify"],
                           "domain": domain_errors(compiled_fn, index, n, sparsity, device)},
              "rows": []}
    for p in ps:
        row = {"p": p, "domain_mass": domain_mass(n, p, sparsity),
               "compiled": measure(compiled_fn, index, p, samples, device=device),
               "zero_model": measure(lambda x: torch.zeros(x.shape[0], count, device=x.device),
                                     index, p, samples, device=device),
               "trained": []}
        for width in widths:
            model = train_pairs(index, n, p, width, steps, seed, bias, device, progress)
            entry = {"neurons": width, "train": model.train_info}
            entry.update(measure(trained_predict(model), index, p, samples, device=device))
            entry["domain"] = domain_errors(trained_predict(model), index, n, sparsity, device)
            row["trained"].append(entry)
        result["rows"].append(row)
    return result
