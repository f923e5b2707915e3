"""Train a sparse autoencoder on the hidden layer of a compiled superposed network and score it
against the ground truth.

    python examples/sae_on_superposition.py --figure docs/sae_on_superposition.png
    python examples/sae_on_superposition.py --small              # seconds (CI)

The circuit: m features, `count` random pairs of them, one AND per pair (`both[u, v] = x[u] &
x[v]`), at most 2 features active. sup's superposed target compiles it to one layer of channel
neurons shared by the outputs (fewer neurons than outputs: the outputs are in superposition) and
backends/ground_truth.py says what each output is in that layer: its embedding (the hidden
activation the ground truth predicts when only that output's pair is on), its read direction
(column j of the hidden site's decoder: its channel's neurons, weighted by the read-out), and
its value on every input (the circuit's output).

Inputs: 90% a random pair of P (one output on), 10% random inputs of the sparse domain (0 to 2
features on, mostly no output on: cross-talk the SAE must ignore). The SAE (plain torch: ReLU
encoder, decoder with unit-norm columns, L1 penalty) sees only the hidden activations. Scores:
  * MMCS: mean over true features of the largest cosine similarity between its embedding (and,
    second, its read direction) and a decoder column of the SAE;
  * MCC: mean Pearson correlation between true feature values and SAE latents, matched one to
    one (Hungarian assignment).
Beside them, the same scores for the neuron basis (each neuron a "feature": what reading the
network neuron by neuron finds) and for an untrained SAE.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sup  # noqa: E402
from backends.ground_truth import dense_of, ground_truth, sample_inputs  # noqa: E402
from dsl.semantics import evaluate  # noqa: E402

SIZES = {"small": dict(m=24, count=40, samples=6000, steps=2000),
         "full": dict(m=64, count=256, samples=40000, steps=10000)}
PAIR_SHARE = 0.9


def build(m: int, count: int, seed: int):
    """(circuit, superposed network, ground truth, hidden site name) of the pairs circuit."""
    source = (f"circuit sae_pairs; const P = pairs({m}, {count}, seed={seed}); input x[{m}]; "
              "sparsity 2; output both[u, v] = x[u] & x[v] for (u, v) in P;")
    circuit = sup.loads(source)
    net = sup.compile(circuit, "superposed")
    gt = ground_truth(net, circuit)
    site = next(name for name, s in gt.sites.items()
                if s.kind == "neurons" and s.decoder is not None and name.endswith("hook_post"))
    return circuit, net, gt, site


def dataset(circuit, net, gt, site, samples: int, rng):
    """(hidden activations [N, width], true feature values [N, n_outputs]) as float32 tensors."""
    drivers_pairs = _pairs(circuit)
    half = int(samples * PAIR_SHARE)
    x = np.zeros((samples, circuit.n_inputs), dtype=bool)
    pick = drivers_pairs[rng.integers(0, len(drivers_pairs), half)]
    x[np.arange(half), pick[:, 0]] = True
    x[np.arange(half), pick[:, 1]] = True
    x[half:] = sample_inputs(circuit.n_inputs, samples - half, rng, sparsity=circuit.sparsity)
    module = sup.to_module(net, dtype=torch.float32, device="cpu")
    _, cache = module.run_with_cache(torch.as_tensor(x, dtype=torch.float32), names_filter=site)
    truth = evaluate(circuit, x).astype(np.float32)
    return cache[site].float(), torch.as_tensor(truth)


def feature_embeddings(circuit, gt, site) -> np.ndarray:
    """[width, n_outputs]: the hidden activation the ground truth predicts for each output's
    pair alone (the output's embedding at the site)."""
    pairs = _pairs(circuit)
    x = np.zeros((len(pairs), circuit.n_inputs), dtype=bool)
    x[np.arange(len(pairs)), pairs[:, 0]] = True
    x[np.arange(len(pairs)), pairs[:, 1]] = True
    return gt.feature_values(x)[site].T


def _pairs(circuit) -> np.ndarray:
    """int64 [count, 2]: the two features of each output (from its name `both[u,v]`)."""
    lookup = circuit.input_lookup()
    pairs = []
    for name in circuit.output_names():
        u, v = name[name.index("[") + 1:-1].split(",")
        pairs.append((lookup[f"x[{u.strip()}]"], lookup[f"x[{v.strip()}]"]))
    return np.asarray(pairs, dtype=np.int64)


class SparseAutoencoder(torch.nn.Module):
    """z = relu(W_e (a - b_d) + b_e), a_hat = W_d z + b_d with unit-norm decoder columns."""

    def __init__(self, width: int, latents: int, seed: int):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        w = torch.randn(width, latents, generator=gen)
        self.w_dec = torch.nn.Parameter(w / w.norm(dim=0, keepdim=True))
        self.w_enc = torch.nn.Parameter(self.w_dec.detach().T.clone())
        self.b_enc = torch.nn.Parameter(torch.zeros(latents))
        self.b_dec = torch.nn.Parameter(torch.zeros(width))

    def encode(self, a: torch.Tensor) -> torch.Tensor:
        """Latent activations [B, latents]."""
        return torch.relu((a - self.b_dec) @ self.w_enc.T + self.b_enc)

    def forward(self, a: torch.Tensor):
        """(reconstruction, latents)."""
        z = self.encode(a)
        return z @ self.w_dec.T + self.b_dec, z

    def directions(self) -> torch.Tensor:
        """Decoder columns [width, latents], unit norm."""
        return self.w_dec / self.w_dec.norm(dim=0, keepdim=True)


def train(sae, acts: torch.Tensor, steps: int, l1: float, seed: int, log_every: int, score,
          lr: float = 1e-2):
    """Adam on MSE + l1 * |z|_1; returns [(step, loss, mmcs)] logged along the way."""
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history = []
    for step in range(steps + 1):
        batch = acts[torch.randint(0, len(acts), (256,), generator=gen)]
        recon, z = sae(batch)
        loss = (recon - batch).pow(2).sum(1).mean() + l1 * z.abs().sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            sae.w_dec.data /= sae.w_dec.data.norm(dim=0, keepdim=True)
        if step % log_every == 0:
            history.append((step, loss.item(), score(sae)["mmcs"]))
    return history


def mmcs(true_dirs: np.ndarray, learned: np.ndarray) -> tuple:
    """(mean max cosine similarity, per-feature max cosine) of true [width, F] vs learned
    [width, L] directions."""
    t = true_dirs / np.maximum(np.linalg.norm(true_dirs, axis=0, keepdims=True), 1e-12)
    u = learned / np.maximum(np.linalg.norm(learned, axis=0, keepdims=True), 1e-12)
    best = (t.T @ u).max(axis=1)
    return float(best.mean()), best


def mcc(truth: np.ndarray, latents: np.ndarray) -> float:
    """Mean Pearson correlation of true features and latents under the best one-to-one match."""
    def standard(a):
        a = a - a.mean(0)
        return a / np.maximum(a.std(0), 1e-12)
    corr = standard(truth).T @ standard(latents) / len(truth)
    rows, cols = linear_sum_assignment(-np.abs(corr))
    full = np.zeros(truth.shape[1])
    full[rows] = np.abs(corr[rows, cols])
    return float(full.mean())


def scorer(embeddings, read_dirs, acts, truth):
    """A function SAE -> {"mmcs", "per_feature", "mmcs_read", "mcc"}."""
    def score(sae) -> dict:
        with torch.no_grad():
            learned = sae.directions().numpy()
            z = sae.encode(acts).numpy()
        m, per = mmcs(embeddings, learned)
        return {"mmcs": m, "per_feature": per, "mmcs_read": mmcs(read_dirs, learned)[0],
                "mcc": mcc(truth.numpy(), z)}
    return score


def figure(path, history, trained, untrained, neurons, title):
    """Training curve and the per-feature best cosine, trained SAE vs baselines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    steps = [h[0] for h in history]
    left.plot(steps, [h[2] for h in history], label="MMCS (trained SAE)")
    left.axhline(neurons["mmcs"], color="gray", ls="--", label="neuron basis")
    left.set_xlabel("training step")
    left.set_ylabel("mean max cosine similarity")
    left.set_ylim(0, 1.02)
    left.legend(loc="lower right")
    bins = np.linspace(0, 1, 41)
    for name, s in (("trained SAE", trained), ("untrained SAE", untrained),
                    ("neuron basis", neurons)):
        right.hist(s["per_feature"], bins=bins, alpha=0.6, label=f"{name} (MMCS {s['mmcs']:.2f})")
    right.set_xlabel("best cosine with a true feature direction")
    right.set_ylabel("true features")
    right.legend(loc="upper left", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    """Run the example; print the scores (and save the figure with --figure)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="the reduced size (seconds)")
    parser.add_argument("--figure", metavar="PATH", help="save the figure here (.png)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--l1", type=float, default=1e-2, help="L1 penalty (default 1e-2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    size = SIZES["small" if args.small else "full"]
    start = time.time()
    circuit, net, gt, site = build(size["m"], size["count"], seed=1)
    hidden = gt.sites[site]
    read_dirs = dense_of(hidden.decoder)                      # [width, n_outputs]
    embeddings = feature_embeddings(circuit, gt, site)        # [width, n_outputs]
    acts, truth = dataset(circuit, net, gt, site, size["samples"], np.random.default_rng(args.seed))
    score = scorer(embeddings, read_dirs, acts, truth)
    latents = 2 * circuit.n_outputs
    untrained = score(SparseAutoencoder(hidden.width, latents, args.seed))
    sae = SparseAutoencoder(hidden.width, latents, args.seed)
    history = train(sae, acts, size["steps"], args.l1, args.seed, max(size["steps"] // 40, 1),
                    lambda model: {"mmcs": mmcs(embeddings,
                                                model.directions().detach().numpy())[0]})
    trained = score(sae)
    eye = np.eye(hidden.width)
    neurons = {"mmcs": mmcs(embeddings, eye)[0], "per_feature": mmcs(embeddings, eye)[1],
               "mmcs_read": mmcs(read_dirs, eye)[0], "mcc": mcc(truth.numpy(), acts.numpy())}
    print(f"circuit   {circuit.n_outputs} ANDs of pairs of {circuit.n_inputs} features; "
          f"superposed on {hidden.width} neurons at {site}")
    print(f"data      {len(acts):,} hidden activations; SAE with {latents} latents, "
          f"{size['steps']:,} steps, l1 {args.l1}")
    for name, s in (("trained SAE", trained), ("untrained SAE", untrained),
                    ("neuron basis", neurons)):
        print(f"{name:14s} MMCS {s['mmcs']:.3f}  (read directions {s['mmcs_read']:.3f})  "
              f"MCC {s['mcc']:.3f}")
    print(f"time      {time.time() - start:.1f} s")
    if args.figure:
        figure(args.figure, history, trained, untrained, neurons,
               f"SAE on sup's superposed layer: {circuit.n_outputs} features on "
               f"{hidden.width} neurons")
        print(f"figure    {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
