"""The width search of the superposed target: the smallest (n, t) whose repaired channel
assignment is exact (or within the error budget)."""

from __future__ import annotations

import numpy as np

from dsl import csr

from .channels import (Assignment, ChannelSpec, assign_design, assign_random, repair)
from .error_budget import within
from .options import SuperposedOptions


def attempt(spec, n, t, construction, seed, rounds, give_up=True):
    """One assignment of width n and channel size t by `construction`, repaired: (assignment,
    number of outputs still failing)."""
    rng = np.random.default_rng(seed)
    if construction == "input-channels":
        a = assign_input_channels(spec, n, t, rng)
    elif construction == "design":
        a = assign_design(spec, n, t, rng)
    else:
        a = assign_random(spec, n, t, rng)
    left = repair(spec, a, rng, rounds=rounds,
                  give_up=max(64, spec.n_outputs // 10) if give_up else None)
    return a, left


def assign_input_channels(spec: ChannelSpec, n: int, t: int, rng) -> Assignment:
    """Universal-AND style: every neuron listens to each feature with probability p chosen so
    that an output's operands share about t neurons; output j's channel is the set of neurons
    listening to all its operands (at least one: missing ones are added)."""
    r = max(1, int(np.max(np.diff(spec.f_offsets), initial=1)))
    p = min(1.0, (t / n) ** (1.0 / r))
    listen = rng.random((n, spec.m)) < p
    chans = []
    for j in range(spec.n_outputs):
        feats = spec.f_features[spec.f_offsets[j]:spec.f_offsets[j + 1]]
        members = np.flatnonzero(listen[:, feats].all(axis=1))
        if len(members) < 1:
            members = rng.choice(n, size=min(t, n), replace=False)
        chans.append(np.sort(members))
    lens = np.array([len(c) for c in chans])
    width = int(lens.max())
    # pad to a uniform width with extra random neurons so the repair machinery applies
    c = np.zeros((spec.n_outputs, width), dtype=np.int64)
    for j, ch in enumerate(chans):
        extra = rng.choice(np.setdiff1d(np.arange(n), ch), size=width - len(ch), replace=False)
        c[j] = np.concatenate([ch, extra])
    return Assignment(n, csr.uniform(spec.n_outputs, width), c.ravel(),
                      np.full(n, int(spec.k.max()) if len(spec.k) else 1, dtype=np.int64))


def search(spec: ChannelSpec, options: SuperposedOptions, progress=None):
    """Smallest (n, t) whose repaired assignment has no failing output. Returns Assignment."""
    if len(np.unique(spec.k)) > 1 and options.construction == "input-channels":
        options.construction = "output-channels"
    ts = (options.channel,) if options.channel else options.channels
    best = None
    for t in ts:
        if options.width:
            a, left = attempt(spec, options.width, t, options.construction, options.seed,
                               options.repair_rounds, options.max_error is None)
            options.log.append({"n": options.width, "t": t, "failing": left})
            if _accept(spec, a, left, options) and (best is None or a.n < best.n):
                best = a
            continue
        # superposition must beat one neuron per output, so widths stop below m'
        lo, hi = max(t + 1, t * len(np.unique(spec.k))), spec.n_outputs - 1
        found = None
        if lo > hi:
            continue
        while lo < hi:                      # smallest n in [lo, hi] that works
            mid = (lo + hi) // 2
            a, left = attempt(spec, mid, t, options.construction, options.seed, options.repair_rounds,
                               options.max_error is None)
            options.log.append({"n": mid, "t": t, "failing": left})
            if progress:
                progress(options.log[-1])
            if _accept(spec, a, left, options):
                hi, found = mid, a
            else:
                lo = mid + 1
            if best is not None and lo >= best.n:
                break
        if found is not None and (best is None or found.n < best.n):
            best = found
    return best


def _accept(spec, a, left, options) -> bool:
    return within(spec, a, left, options.max_error, seed=options.seed)
