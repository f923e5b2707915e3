"""Channel assignments for computation in superposition, and their exact combinatorial check.

Every output j = atleast(k_j, F_j) owns a channel C_j of t_j neurons; neuron i listens to the
union of the operand sets of its channels. `failing_outputs` decides the exactness criterion for
all outputs at once; `assign_random` / `assign_design` build assignments and `repair` fixes
failing channels. `verify/structural.py` re-checks the same criterion from stored weights.

Proof: docs/proofs/channels.md
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsl import csr
from dsl.memory import format_bytes, total_bytes

from ..target import TargetUnavailable
from .bitcheck import listen_bits
from .bitcheck_torch import bits_on, check_device, failing_outputs_q1

DEFAULT_CHECK_BYTES = max(1 << 28, total_bytes() // 4)   # without a limit: a quarter of memory
MAX_BLOCK_CELLS = 1 << 26      # outputs x (n + m) cells per block at most (speed, not memory)
REDRAW_CELLS = 1 << 24         # random keys drawn at once when many channels are redrawn


@dataclass
class ChannelSpec:
    """The outputs to superpose: operand features (CSR) and thresholds, m features, sparsity K."""
    m: int
    sparsity: int | None
    f_offsets: np.ndarray
    f_features: np.ndarray
    k: np.ndarray

    @property
    def n_outputs(self) -> int:
        """Number of outputs."""
        return len(self.k)

    @property
    def free(self) -> np.ndarray:
        """q_j = K - (k_j - 1): how many non-operand features can be active with k_j - 1 operands."""
        big = self.m if self.sparsity is None else min(self.sparsity, self.m)
        return big - (self.k - 1)


@dataclass
class Assignment:
    """Channels (CSR over outputs, neuron ids) and the neuron class (threshold k) of each neuron."""
    n: int
    c_offsets: np.ndarray
    c_neurons: np.ndarray
    neuron_k: np.ndarray

    def channel_sizes(self) -> np.ndarray:
        """t_j: the number of neurons in each output's channel."""
        return csr.lengths(self.c_offsets)


# ------------------------------------------------------------------ listen sets

def listen_sets(spec: ChannelSpec, a: Assignment):
    """CSR over neurons of the sorted distinct features each neuron listens to."""
    out_of_slot = csr.row_of_each(a.c_offsets)
    # every (neuron, feature) for feature in F_j of each channel the neuron is in
    f_len = csr.lengths(spec.f_offsets)[out_of_slot]
    neuron = np.repeat(a.c_neurons, f_len)
    _, feats = csr.gather_rows(spec.f_offsets, spec.f_features, out_of_slot)
    keys = sorted_unique(neuron * np.int64(spec.m) + feats)
    neurons, features = keys // spec.m, keys % spec.m
    offsets = csr.offsets_from_lengths(np.bincount(neurons, minlength=a.n))
    return offsets, features


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique of a 1-d integer array by one sort (numpy's hashing unique is many times
    slower on the million-key arrays of the width search)."""
    s = np.sort(np.asarray(values))
    return s[np.r_[True, s[1:] != s[:-1]]] if len(s) else s


# ------------------------------------------------------------------ the exact check

class MemoryLimit(TargetUnavailable):
    """The channel check of a width does not fit in the memory limit (option `max_memory`);
    the message says how much it needs and which widths fit."""

    def __init__(self, message: str):
        super().__init__(message, option="max_memory")


def check_memory(n: int, m: int, q_max: int) -> tuple[int, int]:
    """(fixed, per_output) bytes of `failing_outputs` at width n over m features: the float32
    listen matrix (n x m) once, and per output of a block its incidence row (n), its counts
    (m) and the top-q values, mask and index (about 4 q). The bitset path of outputs with
    q_j = 1 (bitcheck.py) needs less (n m / 8 bytes once, 16 m / 64 per output of a block), so
    this is an upper bound for it."""
    return 4 * n * m, 4 * (n + m + 4 * max(q_max, 1)) + 64


def widest_that_fits(m: int, q_max: int, max_bytes: int | None) -> int | None:
    """The largest width n whose channel check fits in max_bytes with blocks of at least one
    output (None: no limit)."""
    if max_bytes is None:
        return None
    room = max_bytes - 4 * (m + 4 * max(q_max, 1)) - 64
    return max(0, room // (4 * (m + 1)))


def failing_outputs(spec: ChannelSpec, a: Assignment, listen=None, outputs=None,
                    max_bytes: int | None = None, method: str = "auto",
                    device: str | None = None) -> np.ndarray:
    """Indices (sorted) of outputs that are not exact, among `outputs` (all by default).

    method "auto" decides outputs with q_j = 1 by bitset products (bitcheck.py: the same
    criterion, about n / t times fewer operations) and the others by the dense count product
    below; "dense" decides every output by the dense product. The memory bound below is that of
    the dense product in both cases (the bitset path needs less). `device`: where the bitset
    path runs (bitcheck_torch.check_device: None = CUDA when present, else numpy on the CPU).

    counts[j, f] = sum over channel neurons of [f in L_i] is a product of two 0/1 matrices
    (channel incidence x listen matrix), computed in float32 blocks of outputs (exact: counts
    are small integers); operands are masked out, then the q largest counts of each row are
    summed and compared with t_j - 1. The blocks are sized from an estimate of the memory they
    take (`check_memory`) to stay under `max_bytes` (default DEFAULT_CHECK_BYTES); MemoryLimit
    when even one output does not fit.
    """
    import torch  # heavy: the only torch use in compiler/; importing the compiler stays light

    if listen is None:
        listen = listen_sets(spec, a)
    l_off, l_feat = listen
    outputs = np.arange(spec.n_outputs) if outputs is None else np.asarray(outputs, dtype=np.int64)
    outputs = outputs[spec.free[outputs] > 0]
    if len(outputs) == 0:
        return outputs
    q_max = int(min(spec.free[outputs].max(), spec.m))
    fixed, per_output = check_memory(a.n, spec.m, q_max)
    budget = DEFAULT_CHECK_BYTES if max_bytes is None else max_bytes
    step = min((budget - fixed) // per_output, max(1, MAX_BLOCK_CELLS // max(a.n + spec.m, 1)))
    if step < 1:
        fits = widest_that_fits(spec.m, q_max, budget)
        raise MemoryLimit(f"the exactness check of {a.n:,} channel neurons over {spec.m:,} "
                          f"features needs at least {format_bytes(fixed + per_output)}, more "
                          f"than the memory limit of {format_bytes(budget)}; widths up to "
                          f"{fits:,} fit")
    if method not in ("auto", "dense"):
        raise ValueError(f"unknown method '{method}' (auto or dense)")
    if method == "auto":
        single = spec.free[outputs] == 1
        bad_bits = failing_outputs_q1(spec, a, listen, outputs[single], max_bytes=budget,
                                      device=device) if single.any() else outputs[:0]
        if single.all():
            return bad_bits
        return np.sort(np.concatenate([bad_bits, failing_outputs(
            spec, a, listen, outputs[~single], max_bytes=max_bytes, method="dense")]))
    listen_matrix = torch.zeros(a.n, spec.m)
    listen_matrix[torch.as_tensor(csr.row_of_each(l_off)), torch.as_tensor(l_feat)] = 1.0
    bad = []
    for start in range(0, len(outputs), step):
        block = outputs[start:start + step]
        c_off, c_neu = csr.gather_rows(a.c_offsets, a.c_neurons, block)
        incidence = torch.zeros(len(block), a.n)
        incidence.index_put_((torch.as_tensor(csr.row_of_each(c_off)), torch.as_tensor(c_neu)),
                             torch.ones(len(c_neu)), accumulate=True)
        counts = incidence @ listen_matrix
        f_off, f_feat = csr.gather_rows(spec.f_offsets, spec.f_features, block)
        counts[torch.as_tensor(csr.row_of_each(f_off)), torch.as_tensor(f_feat)] = 0.0
        top = torch.topk(counts, min(q_max, spec.m), dim=1).values          # descending
        q = torch.as_tensor(spec.free[block])
        keep = torch.arange(top.shape[1])[None, :] < q[:, None]
        worst = (top * keep).sum(dim=1).numpy()
        t = csr.lengths(a.c_offsets)[block]
        bad.append(block[worst > t - 1])
    return np.concatenate(bad)


# ------------------------------------------------------------------ assignments

def class_pools(spec: ChannelSpec, n: int, t: int) -> dict:
    """Split n neurons into one pool per threshold class, proportional to channel slots."""
    classes, counts = np.unique(spec.k, return_counts=True)
    share = counts / counts.sum()
    sizes = np.maximum(np.floor(share * n).astype(int), min(t, n))
    sizes[np.argmax(sizes)] += n - sizes.sum()
    pools, start = {}, 0
    for k, size in zip(classes.tolist(), sizes.tolist()):
        pools[k] = np.arange(start, start + size, dtype=np.int64)
        start += size
    return pools


def assign_random(spec: ChannelSpec, n: int, t: int, rng) -> Assignment:
    """Balanced random channels: each class's neurons are used almost equally often (random
    permutations of the pool, cut into channels of t distinct neurons)."""
    pools = class_pools(spec, n, t)
    c_neurons = np.zeros((spec.n_outputs, t), dtype=np.int64)
    neuron_k = np.zeros(n, dtype=np.int64)
    for k, pool in pools.items():
        if len(pool) < t:
            raise ValueError(f"{len(pool)} neurons cannot hold channels of {t}")
        neuron_k[pool] = k
        members = np.flatnonzero(spec.k == k)
        need = len(members) * t
        reps = -(-need // len(pool)) + 1
        seq = np.concatenate([rng.permutation(pool) for _ in range(reps)])[:need].reshape(-1, t)
        c_neurons[members] = _fix_duplicates(seq, pool, rng)
    return Assignment(n, csr.uniform(spec.n_outputs, t), c_neurons.ravel(), neuron_k)


def _fix_duplicates(rows: np.ndarray, pool: np.ndarray, rng) -> np.ndarray:
    """Channels cut across two permutations may repeat a neuron: redraw those rows."""
    s = np.sort(rows, axis=1)
    bad = np.flatnonzero((s[:, 1:] == s[:, :-1]).any(axis=1))
    for r in bad:
        rows[r] = rng.choice(pool, size=rows.shape[1], replace=False)
    return rows


def assign_design(spec: ChannelSpec, n: int, t: int, rng) -> Assignment:
    """Channels as lines of a transversal design: t groups of p neurons (p prime), output j takes
    neuron (alpha_j + beta_j * s) mod p of group s. Two channels share at most one neuron."""
    pools = class_pools(spec, n, t)
    c_neurons = np.zeros((spec.n_outputs, t), dtype=np.int64)
    neuron_k = np.zeros(n, dtype=np.int64)
    for k, pool in pools.items():
        neuron_k[pool] = k
        members = np.flatnonzero(spec.k == k)
        p = _prime_at_most(len(pool) // t)
        if p < 2 or p * p < len(members):
            return assign_random(spec, n, t, rng)
        lines = rng.permutation(p * p)[:len(members)]
        alpha, beta = lines // p, lines % p
        s = np.arange(t)
        local = (alpha[:, None] + beta[:, None] * s[None, :]) % p + s[None, :] * p
        c_neurons[members] = pool[local]
    return Assignment(n, csr.uniform(spec.n_outputs, t), c_neurons.ravel(), neuron_k)


def _prime_at_most(x: int) -> int:
    for p in range(int(x), 1, -1):
        if all(p % d for d in range(2, int(p ** 0.5) + 1)):
            return p
    return 0


# ------------------------------------------------------------------ repair

def repair(spec: ChannelSpec, a: Assignment, rng, rounds: int = 30, candidates: int = 8,
           give_up: int | None = None, patience: int = 4, max_bytes: int | None = None,
           device: str | None = None):
    """Re-draw the channels of failing outputs until every output is exact.

    Many failing outputs are re-drawn at once (random channels from their class pool); the last
    few each try `candidates` channels and keep the least loaded. Outputs sharing a changed
    neuron are re-checked. Stops after `rounds`, after `patience` rounds without progress, or at
    once when more than `give_up` outputs fail initially (the width is hopeless). Returns the
    number of outputs still failing. `max_bytes` bounds the memory of the exactness check
    (`failing_outputs`); `device`: where its bitset path runs (`failing_outputs`).
    """
    listen = listen_sets(spec, a)
    failing = failing_outputs(spec, a, listen, max_bytes=max_bytes, device=device)
    if not _uniform(a) or (give_up is not None and len(failing) > give_up):
        return len(failing)
    c = a.c_neurons.reshape(spec.n_outputs, -1)
    pools = {k: np.flatnonzero(a.neuron_k == k) for k in np.unique(a.neuron_k)}
    t = c.shape[1]
    best, stale = len(failing), 0
    for _ in range(rounds):
        if len(failing) == 0:
            break
        touched = [c[failing].ravel()]
        for k, pool in pools.items():
            sel = failing[spec.k[failing] == k]
            if len(sel) == 0:
                continue
            if len(sel) > 64:           # random t-subsets of the pool, in bounded blocks
                rows = max(1, REDRAW_CELLS // len(pool))
                for start in range(0, len(sel), rows):
                    part = sel[start:start + rows]
                    keys = rng.random((len(part), len(pool)))
                    c[part] = pool[np.argsort(keys, axis=1)[:, :t]]
            else:
                load = np.diff(listen[0])
                for j in sel.tolist():
                    cands = [rng.choice(pool, size=t, replace=False) for _ in range(candidates)]
                    c[j] = min(cands, key=lambda cand: int(load[cand].sum()))
        a.c_neurons = c.ravel()
        listen = listen_sets(spec, a)
        if (spec.free == 1).all():
            failing = recheck_redrawn(spec, a, listen, failing, max_bytes, device)
        else:
            touched.append(c[failing].ravel())
            affected = _outputs_using(a, np.concatenate(touched))
            failing = failing_outputs(spec, a, listen, affected, max_bytes=max_bytes,
                                      device=device)
        if len(failing) < best:
            best, stale = len(failing), 0
        else:
            stale += 1
            if stale >= patience:
                break
    return len(failing)


def recheck_redrawn(spec: ChannelSpec, a: Assignment, listen, redrawn: np.ndarray,
                    max_bytes: int | None = None, device: str | None = None) -> np.ndarray:
    """The failing outputs after the channels of `redrawn` were drawn anew, when every other
    output passed before and every output has q_j = 1 (bitcheck.py). Exact, by monotonicity:
    a neuron's listen set only gains features of the redrawn outputs (its other outputs are
    unchanged), so an output that passed and kept its channel can only fail through one of
    those features, on a neuron of a new channel. The redrawn outputs are checked in full;
    the users of the new channels' neurons only on the words holding the redrawn operands.
    `device`: where the checks run (`failing_outputs`; the bitset is uploaded once)."""
    bits = listen_bits(a.n, spec.m, listen)
    where = check_device(device)
    if where is not None:
        bits = bits_on(bits, where)
    redrawn = np.asarray(redrawn, dtype=np.int64)
    _, c_neu = csr.gather_rows(a.c_offsets, a.c_neurons, redrawn)
    others = np.setdiff1d(_outputs_using(a, c_neu), redrawn, assume_unique=True)
    _, feats = csr.gather_rows(spec.f_offsets, spec.f_features, redrawn)
    bad = [failing_outputs_q1(spec, a, listen, redrawn, bits, max_bytes, device=device)]
    if len(others):
        bad.append(failing_outputs_q1(spec, a, listen, others, bits, max_bytes, features=feats,
                                      device=device))
    return np.sort(np.concatenate(bad))


def _uniform(a: Assignment) -> bool:
    lens = csr.lengths(a.c_offsets)
    return len(lens) == 0 or (lens == lens[0]).all()


def _outputs_using(a: Assignment, neurons: np.ndarray) -> np.ndarray:
    mark = np.zeros(a.n, dtype=bool)
    mark[neurons] = True
    return sorted_unique(csr.row_of_each(a.c_offsets)[mark[a.c_neurons]])
