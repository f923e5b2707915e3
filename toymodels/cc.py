"""The compressed-computation (CC) toy model and the baselines that explain it.

Braun et al. (2025, APD) built a model that seems to compute more ReLUs than it has neurons:
n = 100 features x_i, each active with probability p with a value uniform in [-1, 1]; a fixed
embedding W_E (100 x 1000, rows Gaussian then normalised) into a residual stream of width 1000;
one MLP of 50 bias-free ReLU neurons reading and writing that stream; read-out W_U = W_E^T;
labels y_i = x_i + ReLU(x_i); loss = mean squared error over batch and features.

Bhagat, Molas-Medina, Giglemiani & Heimersheim ("Compressed Computation is (probably) not
Computation in Superposition") reduce it to a plain MLP y_hat = W_out ReLU(W_in x) (100 -> 50
-> 100, no biases) trained on labels y = ReLU(x) + M x, where the mixing matrix
M = W_E W_E^T - I is what the residual stream adds to the labels (their ResidTransposeDataset).
They show the trained model beats the naive baseline (L/p = 1/12) only through M: with clean
labels (M = 0) it does not, and a random Gaussian M of the right scale works as well.

Conventions here (those of the paper's code):
- row vectors: a batch x is [B, n]; labels y = ReLU(x) + x @ M^T (= ReLU(x) + M x per sample);
- the loss L is the mean of (y_hat - y)^2 over batch and features; we report L/p ("loss per
  feature"), evaluated on fresh samples whose count is chosen so that about `nontrivial`
  samples have at least one active feature (the paper uses 10^6);
- mixing "embed" is M = W_E W_E^T - I (the paper's code); mixing "resid" trains the literal
  residual architecture of Braun et al. (W_E fixed, 1000-wide W_in / W_out, labels x + ReLU(x)),
  whose reduced form is exactly the MLP above with M = I - W_E W_E^T (the opposite sign: the
  residual adds W_E W_E^T x to the output, so the MLP must subtract the off-diagonal part);
  "clean" is M = 0; "sym:S" is a symmetric Gaussian M with off-diagonal std S and zero diagonal;
  "asym:S" the same without symmetry.

The loss split: with f(x) the model's output and r = ReLU(x),
    L = E|f - r - Mx|^2 / n = R + X - 2C,
    R = E|f - r|^2 / n          (the ReLU term: the error against the clean labels),
    X = E|Mx|^2 / n = p |M|_F^2 / (3n)   (the mixing energy),
    C = E<f - r, Mx> / n        (how much of the mixing the model reproduces);
we report R/p and the mixing term (L - R)/p = (X - 2C)/p.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from verify.progress import progress_bar

from .common import ToyInputError, generator

N_FEATURES = 100
D_RESID = 1000
D_MLP = 50
BATCH = 2048
LR = 3e-3
WEIGHT_DECAY = 0.01
PAPER_STEPS = 10_000
PAPER_NONTRIVIAL = 1_000_000
EVAL_BATCH = 100_000
MIXING_KINDS = ("embed", "resid", "clean", "sym", "asym")


# ------------------------------------------------------------------ data

@dataclass(frozen=True)
class Mixing:
    """Which mixing matrix M enters the labels y = ReLU(x) + M x (see the module docstring)."""
    kind: str
    sigma: float = 0.0

    @property
    def name(self) -> str:
        """The spelling used on the command line, e.g. 'embed' or 'sym:0.03'."""
        return f"{self.kind}:{self.sigma:g}" if self.kind in ("sym", "asym") else self.kind


def parse_mixing(text: str) -> Mixing:
    """'embed', 'resid', 'clean', 'sym:SIGMA' or 'asym:SIGMA' -> Mixing (ToyInputError else)."""
    kind, _, value = str(text).partition(":")
    if kind not in MIXING_KINDS:
        raise ToyInputError(f"--mixing {text!r}: use one of embed, resid, clean, sym:SIGMA, "
                            f"asym:SIGMA")
    if kind in ("sym", "asym"):
        try:
            sigma = float(value)
        except ValueError:
            raise ToyInputError(f"--mixing {text!r}: {kind} needs a scale, e.g. {kind}:0.03")
        if not (sigma >= 0 and math.isfinite(sigma)):
            raise ToyInputError(f"--mixing {text!r}: the scale must be >= 0")
        return Mixing(kind, sigma)
    if value:
        raise ToyInputError(f"--mixing {text!r}: {kind} takes no scale")
    return Mixing(kind)


def embedding(n: int = N_FEATURES, d_resid: int = D_RESID, seed: int = 0,
              device="cpu") -> torch.Tensor:
    """W_E [n, d_resid]: rows i.i.d. standard Gaussian, then normalised to unit length."""
    w = torch.randn(n, d_resid, generator=generator(seed, torch.device(device)),
                    device=device)
    return w / w.norm(dim=1, keepdim=True)


def mixing_matrix(mixing: Mixing, n: int = N_FEATURES, d_resid: int = D_RESID, seed: int = 0,
                  device="cpu"):
    """(M [n, n], W_E or None): the mixing matrix of `mixing`, and the embedding when the
    model is the literal residual architecture ('resid')."""
    device = torch.device(device)
    if mixing.kind in ("embed", "resid"):
        w_e = embedding(n, d_resid, seed, device)
        gram = w_e @ w_e.T
        eye = torch.eye(n, device=device)
        if mixing.kind == "embed":
            return gram - eye, None
        return eye - gram, w_e
    if mixing.kind == "clean":
        return torch.zeros(n, n, device=device), None
    raw = torch.randn(n, n, generator=generator(seed, device), device=device)
    raw.fill_diagonal_(0.0)
    if mixing.kind == "sym":
        raw = torch.triu(raw) + torch.triu(raw, diagonal=1).T
    return mixing.sigma * raw, None


def sample_inputs(batch: int, n: int, p: float, gen: torch.Generator, device) -> torch.Tensor:
    """x [batch, n]: each entry active with probability p, then uniform in [-1, 1].

    One uniform u per entry: active iff u < p, value 2u/p - 1 (u/p is uniform on [0, 1)
    given u < p), so one random draw serves both."""
    u = torch.rand(batch, n, generator=gen, device=device)
    return torch.where(u < p, u * (2.0 / p) - 1.0, torch.zeros((), device=device))


def labels(x: torch.Tensor, mixing_m: torch.Tensor) -> torch.Tensor:
    """y = ReLU(x) + M x for a batch of row vectors."""
    return torch.relu(x) + x @ mixing_m.T


# ------------------------------------------------------------------ the model

class CCMLP(nn.Module):
    """y_hat = ReLU(x W_in + b_in) W_out + b_out with d_mlp neurons (no biases by default).

    With `embed` (W_E [n, D]) the parameters live in the residual stream, as in Braun et al.:
    w_in [D, d_mlp], w_out [d_mlp, D], and the MLP's part of the output is
    ReLU(x W_E w_in) w_out W_E^T (`residual_forward` is the literal residual model)."""

    def __init__(self, n: int = N_FEATURES, d_mlp: int = D_MLP, embed: torch.Tensor = None,
                 bias: bool = False, n_out: int = None, device="cpu"):
        super().__init__()
        n_out = n if n_out is None else n_out
        rows, cols = (n, n_out) if embed is None else (embed.shape[1], embed.shape[1])
        self.w_in = nn.Parameter(torch.empty(rows, d_mlp, device=device))
        self.w_out = nn.Parameter(torch.empty(d_mlp, cols, device=device))
        nn.init.kaiming_uniform_(self.w_in)       # as the paper's code (torch's default gain)
        nn.init.kaiming_uniform_(self.w_out)
        self.register_buffer("embed", None if embed is None else embed.to(device))
        self.b_in = nn.Parameter(torch.zeros(d_mlp, device=device)) if bias else None
        self.b_out = nn.Parameter(torch.zeros(n_out, device=device)) if bias else None

    def effective(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W_in [n, d_mlp], W_out [d_mlp, n_out]) acting on feature space."""
        if self.embed is None:
            return self.w_in, self.w_out
        return self.embed @ self.w_in, self.w_out @ self.embed.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP's output in feature space [B, n_out]."""
        w_in, w_out = self.effective()
        h = x @ w_in
        if self.b_in is not None:
            h = h + self.b_in
        out = torch.relu(h) @ w_out
        return out if self.b_out is None else out + self.b_out

    def residual_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Braun et al.'s forward: r = x W_E; r += ReLU(r w_in) w_out; y_hat = r W_E^T."""
        if self.embed is None:
            raise ValueError("residual_forward needs a model built with embed=W_E")
        r = x @ self.embed
        r = r + torch.relu(r @ self.w_in) @ self.w_out
        return r @ self.embed.T


def fixed_mlp(w_in, w_out, device="cpu") -> CCMLP:
    """A CCMLP holding the given feature-space weights (baselines: naive, SNMF)."""
    w_in = torch.as_tensor(np.asarray(w_in), dtype=torch.float32)
    w_out = torch.as_tensor(np.asarray(w_out), dtype=torch.float32)
    model = CCMLP(w_in.shape[0], w_in.shape[1], n_out=w_out.shape[1], device=device)
    with torch.no_grad():
        model.w_in.copy_(w_in)
        model.w_out.copy_(w_out)
    return model


# ------------------------------------------------------------------ training

def train(model: nn.Module, batch_fn, steps: int, batch: int = BATCH, lr: float = LR,
          weight_decay: float = WEIGHT_DECAY, progress: bool = False, desc: str = "train") -> dict:
    """AdamW (weight decay `weight_decay`), learning rate `lr` with cosine decay to 0 over
    `steps`, mean-squared error on batches from batch_fn(batch) -> (x, y). Returns the first
    and last training losses."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    first = last = float("nan")
    with progress_bar(steps, f"step ({desc})", enabled=progress) as bar:
        for step in range(steps):
            x, y = batch_fn(batch)
            loss = ((model(x) - y) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step == 0:
                first = loss.item()
            if step % 100 == 99 or step == steps - 1:
                last = loss.item()
                bar.update(step + 1 - bar.n)
    return {"steps": steps, "first_loss": first, "last_loss": last}


def train_cc(mixing_m: torch.Tensor, p: float, steps: int, seed: int = 0, embed=None,
             d_mlp: int = D_MLP, batch: int = BATCH, device="cpu", progress: bool = False,
             desc: str = "cc") -> CCMLP:
    """The CC MLP trained on labels ReLU(x) + M x at feature probability p."""
    device = torch.device(device)
    torch.manual_seed(seed)
    model = CCMLP(mixing_m.shape[0], d_mlp, embed=embed, device=device)
    gen = generator(seed + 1, device)
    n = mixing_m.shape[0]

    def batch_fn(size):
        """A fresh training batch (inputs, labels)."""
        x = sample_inputs(size, n, p, gen, device)
        return x, labels(x, mixing_m)

    model.train_info = train(model, batch_fn, steps, batch=batch, progress=progress, desc=desc)
    return model


# ------------------------------------------------------------------ evaluation

def samples_for(p: float, n: int = N_FEATURES, nontrivial: int = PAPER_NONTRIVIAL) -> int:
    """How many samples hold about `nontrivial` with at least one active feature."""
    return int(math.ceil(nontrivial / (1.0 - (1.0 - p) ** n)))


@torch.no_grad()
def evaluate(model, mixing_m: torch.Tensor, p: float, nontrivial: int = PAPER_NONTRIVIAL,
             seed: int = 12345, device="cpu") -> dict:
    """L/p, the ReLU term R/p and the mixing term (L - R)/p of `model` (a callable x -> y_hat)
    on fresh samples (the same samples for every model with the same seed), with the standard
    error of L/p over evaluation batches."""
    device = torch.device(device)
    n = mixing_m.shape[0]
    total = samples_for(p, n, nontrivial)
    gen = generator(seed, device)
    sums = {"loss": 0.0, "relu": 0.0}
    per_batch = []
    done = 0
    while done < total:
        size = min(EVAL_BATCH, total - done)
        x = sample_inputs(size, n, p, gen, device)
        clean = torch.relu(x)
        out = model(x)
        loss = ((out - clean - x @ mixing_m.T) ** 2).sum().item()
        sums["loss"] += loss
        sums["relu"] += ((out - clean) ** 2).sum().item()
        per_batch.append((loss / (size * n), size))
        done += size
    count = total * n
    l_p = sums["loss"] / count / p
    values = np.array([v for v, _ in per_batch]) / p
    weights = np.array([w for _, w in per_batch], dtype=float)
    stderr = (float(np.sqrt(np.average((values - l_p) ** 2, weights=weights) / (len(values) - 1)))
              if len(values) > 1 else float("nan"))
    relu_p = sums["relu"] / count / p
    return {"L_over_p": l_p, "stderr": stderr, "relu_term": relu_p, "mixing_term": l_p - relu_p,
            "samples": total}


def loss_curve(model, mixing_m: torch.Tensor, ps, nontrivial: int = 100_000, seed: int = 777,
               device="cpu") -> list[float]:
    """L/p of `model` evaluated at each feature probability in `ps` (a trained model's curve)."""
    return [evaluate(model, mixing_m, float(q), nontrivial, seed + i, device)["L_over_p"]
            for i, q in enumerate(ps)]


# ------------------------------------------------------------------ baselines

def naive_weights(n: int = N_FEATURES, d_mlp: int = D_MLP):
    """The naive (monosemantic) MLP: neuron i copies feature i for i < d_mlp, the rest are
    ignored. Returns float64 (W_in [n, d], W_out [d, n])."""
    w_in = np.zeros((n, d_mlp))
    w_out = np.zeros((d_mlp, n))
    idx = np.arange(min(n, d_mlp))
    w_in[idx, idx] = 1.0
    w_out[idx, idx] = 1.0
    return w_in, w_out


def naive_closed_form(mixing_m=None, n: int = N_FEATURES, d_mlp: int = D_MLP) -> dict:
    """Exact L/p of the naive baseline, for any p.

    idealised (the papers' baseline: outputs equal to the labels on the first d_mlp features,
    the mixing reproduced for free): only the ignored features cost E[ReLU(x)^2] = p/6 each,
    so L/p = (n - d_mlp) / (6 n) (= 1/12 for 100 and 50).
    literal (the naive MLP itself under labels ReLU(x) + M x): the error of feature i is
    -(Mx)_i (i < d_mlp) or -ReLU(x_i) - (Mx)_i; with E[x_j^2] = p/3 and E[ReLU(x_i) x_i] = p/6,
    L/p = [ sum_{i >= d} (1/6 + M_ii/3) + sum_ij M_ij^2 / 3 ] / n."""
    ideal = (n - d_mlp) / (6.0 * n)
    if mixing_m is None:
        return {"idealised": ideal, "literal": ideal}
    m = np.asarray(mixing_m.detach().cpu() if torch.is_tensor(mixing_m) else mixing_m,
                   dtype=np.float64)
    diag = np.diag(m)[d_mlp:]
    literal = (np.sum(1.0 / 6.0 + diag / 3.0) + np.sum(m ** 2) / 3.0) / n
    return {"idealised": ideal, "literal": float(literal)}


def idealised_naive(mixing_m: torch.Tensor, d_mlp: int = D_MLP):
    """The papers' naive model as a callable: the labels on the first d_mlp features, the
    labels minus ReLU(x) on the rest (what an ideal monosemantic model would output)."""
    def model(x):
        """The idealised naive output for a batch x."""
        y = labels(x, mixing_m)
        y[:, d_mlp:] -= torch.relu(x[:, d_mlp:])
        return y
    return model


def nmf(x: np.ndarray, rank: int, iters: int = 2000, seed: int = 0):
    """Non-negative factorisation x ~ W H (x >= 0) by the multiplicative updates of Lee &
    Seung, "Algorithms for non-negative matrix factorization", NIPS 13 (2001)."""
    rng = np.random.default_rng(seed)
    scale = math.sqrt(max(x.mean(), 1e-12) / rank)
    w = rng.random((x.shape[0], rank)) * scale + 1e-3
    h = rng.random((rank, x.shape[1])) * scale + 1e-3
    for _ in range(iters):
        h *= (w.T @ x) / (w.T @ w @ h + 1e-12)
        w *= (x @ h.T) / (w @ (h @ h.T) + 1e-12)
    return w, h


def semi_nmf(x: np.ndarray, rank: int, iters: int = 3000, seed: int = 0, init=None):
    """Semi-non-negative matrix factorisation x ~ F G^T with G >= 0 and F free.

    Algorithm of Ding, Li & Jordan, "Convex and Semi-Nonnegative Matrix Factorizations",
    IEEE TPAMI 32(1):45-55, 2010 (section 3): alternate
        F = X G (G^T G)^-1,
        G <- G * sqrt( ((X^T F)^+ + G (F^T F)^-) / ((X^T F)^- + G (F^T F)^+) ),
    with A^+ = (|A| + A)/2, A^- = (|A| - A)/2; the residual |X - F G^T|_F never increases
    (their Theorems 1 and 2). G starts from `init` (default: Lee-Seung NMF of |X|^T, plus 0.2 as
    Ding et al. do). Returns float64 (F [rows, rank], G [cols, rank])."""
    x = np.asarray(x, dtype=np.float64)
    if init is None:
        init, _ = nmf(np.abs(x).T, rank, seed=seed)
        init = init + 0.2
    g = np.array(init, dtype=np.float64)
    eps = 1e-12
    for _ in range(iters):
        f = x @ g @ np.linalg.pinv(g.T @ g)
        xtf = x.T @ f
        ftf = f.T @ f
        g *= np.sqrt((_pos(xtf) + g @ _neg(ftf)) / (_neg(xtf) + g @ _pos(ftf) + eps))
    f = x @ g @ np.linalg.pinv(g.T @ g)
    return f, g


def _pos(a: np.ndarray) -> np.ndarray:
    return (np.abs(a) + a) / 2


def _neg(a: np.ndarray) -> np.ndarray:
    return (np.abs(a) - a) / 2


def snmf_weights(mixing_m, d_mlp: int = D_MLP, iters: int = 500, seed: int = 0):
    """The SNMF baseline of Bhagat et al., built from M alone (no training): factor the
    single-feature target T = I + M ~ F G^T with G >= 0 (semi_nmf), then W_in = G (so a
    positive input passes the ReLU linearly) and W_out = F^T; a single active x_i > 0 gives
    x_i (F G^T)_{:, i} ~ x_i (e_i + M e_i), its exact label. Returns (W_in [n, d], W_out [d, n])."""
    m = np.asarray(mixing_m.detach().cpu() if torch.is_tensor(mixing_m) else mixing_m,
                   dtype=np.float64)
    target = np.eye(m.shape[0]) + m
    f, g = semi_nmf(target, d_mlp, iters=iters, seed=seed)
    return g, f.T


# ------------------------------------------------------------------ the whole experiment

def run_relu(ps=(0.01,), mixings=("embed", "clean"), steps: int = PAPER_STEPS, seed: int = 0,
             nontrivial: int = PAPER_NONTRIVIAL, curve_ps=None, device="cpu",
             progress: bool = False, snmf: bool = True) -> dict:
    """Train the CC MLP at each p for each mixing and evaluate it beside the naive and SNMF
    baselines; returns a JSON-ready dict (rows, naive closed form and simulation, timings)."""
    device = torch.device(device)
    specs = [m if isinstance(m, Mixing) else parse_mixing(m) for m in mixings]
    naive = naive_closed_form()
    w_in, w_out = naive_weights()
    naive_net = fixed_mlp(w_in, w_out, device)
    clean = torch.zeros(N_FEATURES, N_FEATURES, device=device)
    check_p = ps[0]
    sim = evaluate(naive_net, clean, check_p, nontrivial, device=device)
    result = {
        "task": "relu", "n": N_FEATURES, "d_mlp": D_MLP, "d_resid": D_RESID, "batch": BATCH,
        "lr": LR, "weight_decay": WEIGHT_DECAY, "steps": steps, "seed": seed,
        "device": str(device), "nontrivial_eval_samples": nontrivial,
        "naive": {"closed_form": naive["idealised"], "simulated_p": check_p,
                  "simulated": sim["L_over_p"], "simulated_stderr": sim["stderr"],
                  "simulated_samples": sim["samples"]},
        "rows": [], "curves": [],
    }
    curve_ps = list(curve_ps) if curve_ps is not None else []
    for spec in specs:
        mixing_m, embed = mixing_matrix(spec, seed=seed, device=device)
        m64 = mixing_m.double().cpu().numpy()
        snmf_model = None
        snmf_seconds = 0.0
        if snmf:
            t0 = time.perf_counter()
            s_in, s_out = snmf_weights(m64)
            snmf_seconds = time.perf_counter() - t0
            snmf_model = fixed_mlp(s_in, s_out, device)
        naive_m = naive_closed_form(m64)
        off = m64[~np.eye(len(m64), dtype=bool)]
        for p in ps:
            t0 = time.perf_counter()
            model = train_cc(mixing_m, p, steps, seed=seed, embed=embed, device=device,
                             progress=progress, desc=f"{spec.name} p={p:g}")
            seconds = time.perf_counter() - t0
            row = {"mixing": spec.name, "p": p, "M_offdiag_std": float(off.std()),
                   "M_fro2_over_n": float((m64 ** 2).sum() / len(m64)),
                   "train_seconds": round(seconds, 2), "train": model.train_info}
            row["trained"] = evaluate(model, mixing_m, p, nontrivial, device=device)
            row["naive_idealised"] = naive["idealised"]
            row["naive_literal_closed_form"] = naive_m["literal"]
            row["naive_literal"] = evaluate(naive_net, mixing_m, p, nontrivial,
                                            device=device)
            if snmf_model is not None:
                row["snmf"] = evaluate(snmf_model, mixing_m, p, nontrivial, device=device)
                row["snmf_seconds"] = round(snmf_seconds, 2)
            result["rows"].append(row)
            if curve_ps:
                result["curves"].append({
                    "mixing": spec.name, "trained_p": p, "eval_ps": curve_ps,
                    "trained": loss_curve(model, mixing_m, curve_ps, device=device),
                    "snmf": (loss_curve(snmf_model, mixing_m, curve_ps, device=device)
                             if snmf_model is not None and p == ps[0] else None)})
    return result
