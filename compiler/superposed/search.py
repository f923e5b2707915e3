"""The width search of the superposed target: the smallest (n, t) whose repaired channel
assignment is exact (or within the error budget).

`search` looks for one assignment of all the outputs of a ChannelSpec; `search_groups` splits
the outputs into groups of equal threshold k (plain copies of a feature apart: they cost no
neuron in the dense form), searches each group on its own neurons, and merges the groups that
superpose into one assignment. Groups share no neuron, so each output's exactness criterion
(docs/proofs/channels.md) only involves its own group: a merged assignment is exact exactly
when every group's is, and `failing_outputs` re-checks the merge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from dsl import csr
from dsl.memory import format_bytes

from .channels import (DEFAULT_CHECK_BYTES, Assignment, ChannelSpec, MemoryLimit, assign_design,
                       assign_random, check_memory, repair, widest_that_fits)
from .error_budget import within
from .options import SuperposedOptions


def attempt(spec, n, t, construction, seed, rounds, give_up=True, max_bytes=None, device=None):
    """One assignment of width n and channel size t by `construction`, repaired: (assignment,
    number of outputs still failing); (None, all outputs) when n neurons cannot hold channels
    of t (one pool of at least t neurons per threshold class). `device`: where the exactness
    check's bitset path runs (`channels.failing_outputs`)."""
    rng = np.random.default_rng(seed)
    if n < t * len(np.unique(spec.k)):
        return None, spec.n_outputs
    if construction == "input-channels":
        a = assign_input_channels(spec, n, t, rng)
    elif construction == "design":
        a = assign_design(spec, n, t, rng)
    else:
        a = assign_random(spec, n, t, rng)
    left = repair(spec, a, rng, rounds=rounds,
                  give_up=max(64, spec.n_outputs // 10) if give_up else None, max_bytes=max_bytes,
                  device=device)
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
    """Smallest (n, t) whose repaired assignment has no failing output (or is within
    options.max_error); with options.width, that width only. Returns the Assignment, or None.

    Widths whose exactness check does not fit in options.max_memory are not tried; MemoryLimit
    when that leaves no width to try or when none of the widths that fit works."""
    if len(np.unique(spec.k)) > 1 and options.construction == "input-channels":
        options.construction = "output-channels"
    ts = (options.channel,) if options.channel else options.channels
    budget = options.max_memory or DEFAULT_CHECK_BYTES
    q_max = int(min(spec.free.max(initial=1), spec.m))
    fits = widest_that_fits(spec.m, q_max, budget)
    best, cut = None, None
    for t in ts:
        if options.width:
            if options.width > fits:
                raise _too_big(spec, options.width, q_max, budget, fits)
            a, left = attempt(spec, options.width, t, options.construction, options.seed,
                              options.repair_rounds, options.max_error is None, budget,
                              options.check_device)
            _log(options, progress, {"n": options.width, "t": t, "failing": left})
            if a is not None and _accept(spec, a, left, options) and (best is None or a.n < best.n):
                best = a
            continue
        # superposition must beat one neuron per output, so widths stop below m'
        lo, hi = max(t + 1, t * len(np.unique(spec.k))), spec.n_outputs - 1
        if hi > fits:
            hi, cut = fits, (spec.n_outputs - 1, t)
        found = None
        if lo > hi:
            continue
        while lo < hi:                      # smallest n in [lo, hi] that works
            mid = (lo + hi) // 2
            a, left = attempt(spec, mid, t, options.construction, options.seed, options.repair_rounds,
                              options.max_error is None, budget, options.check_device)
            _log(options, progress, {"n": mid, "t": t, "failing": left})
            if a is not None and _accept(spec, a, left, options):
                hi, found = mid, a
            else:
                lo = mid + 1
            if best is not None and lo >= best.n:
                break
        if found is None and lo == hi and (best is None or lo < best.n) and cut is not None:
            a, left = attempt(spec, lo, t, options.construction, options.seed,
                              options.repair_rounds, options.max_error is None, budget,
                              options.check_device)
            _log(options, progress, {"n": lo, "t": t, "failing": left})
            if a is not None and _accept(spec, a, left, options):
                found = a
        if found is not None and (best is None or found.n < best.n):
            best = found
    if best is None and cut is not None:
        raise _too_big(spec, cut[0], q_max, budget, fits, searched=bool(options.log))
    return best


def attempts_estimate(spec: ChannelSpec, options: SuperposedOptions) -> int:
    """About how many attempts `search` makes (for a progress bar's total)."""
    ts = (options.channel,) if options.channel else options.channels
    if options.width:
        return len(ts)
    span = max(spec.n_outputs - 1 - 2 * max(ts), 1)
    return len(ts) * (math.ceil(math.log2(span + 1)) + 1)


def _log(options, progress, entry: dict) -> None:
    options.log.append(entry)
    if progress:
        progress(entry)


def _too_big(spec, n, q_max, budget, fits, searched=False) -> MemoryLimit:
    fixed, per_output = check_memory(n, spec.m, q_max)
    tail = f"; widths up to {fits:,} fit" + (", and none of those tried works" if searched else "")
    return MemoryLimit(f"checking a channel assignment of {n:,} neurons over {spec.m:,} features "
                       f"needs at least {format_bytes(fixed + per_output)}, more than the memory "
                       f"limit of {format_bytes(budget)}{tail}")


def _accept(spec, a, left, options) -> bool:
    return within(spec, a, left, options.max_error, seed=options.seed)


# ------------------------------------------------------------------ groups of equal k

@dataclass
class Group:
    """Outputs searched together: their rows in the ChannelSpec, a label for people, and the
    result (an assignment of the group's outputs, or the reason there is none)."""
    label: str
    rows: np.ndarray
    assignment: Assignment | None = None
    reason: str = ""

    def to_json(self) -> dict:
        """The group's entry in the network's meta["groups"]."""
        a = self.assignment
        return {"outputs": int(len(self.rows)), "label": self.label, "superposed": a is not None,
                "channel_neurons": int(a.n) if a is not None else 0,
                "channel_size": int(a.channel_sizes().max()) if a is not None else 0,
                "reason": self.reason or None}


COPY_REASON = ("a copy of an input feature costs no neuron in the dense form (the read-out "
               "reads the input)")


def sub_spec(spec: ChannelSpec, rows: np.ndarray) -> ChannelSpec:
    """The ChannelSpec of the outputs `rows` of `spec` (same features and sparsity)."""
    off, feat = csr.gather_rows(spec.f_offsets, spec.f_features, np.asarray(rows, np.int64))
    return ChannelSpec(spec.m, spec.sparsity, off, feat, spec.k[rows])


def copy_rows(spec: ChannelSpec) -> np.ndarray:
    """Rows that are plain copies of one feature (one operand, k = 1)."""
    return np.flatnonzero((csr.lengths(spec.f_offsets) == 1) & (spec.k == 1))


def output_groups(spec: ChannelSpec) -> list:
    """The copies (never superposed) and one Group per threshold k of the other outputs."""
    lens = csr.lengths(spec.f_offsets)
    copies = copy_rows(spec)
    groups = [Group(f"{len(copies):,} copies of input features", copies, reason=COPY_REASON)] \
        if len(copies) else []
    rest = np.setdiff1d(np.arange(spec.n_outputs), copies)
    for k in np.unique(spec.k[rest]).tolist():
        rows = rest[spec.k[rest] == k]
        groups.append(Group(_label(int(k), lens[rows]), rows))
    return groups


def _label(k: int, lens: np.ndarray) -> str:
    forms = []
    for n, count in zip(*np.unique(lens, return_counts=True)):
        name = "AND" if n == k else "OR" if k == 1 else f"atleast({k})"
        forms.append(f"{int(count):,} {name} of {int(n)}")
    more = ", ..." if len(forms) > 3 else ""
    return f"k = {k}: " + ", ".join(forms[:3]) + more


def search_groups(spec: ChannelSpec, options: SuperposedOptions, progress=None):
    """Search each group of equal k on its own neurons (module docstring). Returns (rows,
    assignment, groups): the spec rows superposed (sorted), their merged Assignment (None when
    no group superposes) and every Group with its result or reason. With an error budget each
    of the G searched groups gets max_error / G (the union bound keeps the network's rate
    within max_error; the merged network's rate is measured afterwards)."""
    groups = output_groups(spec)
    todo = [g for g in groups if not g.reason]
    share = options.max_error / len(todo) if options.max_error is not None and todo else None
    subs = [sub_spec(spec, g.rows) for g in todo]
    opts = [replace(options, max_error=share, width=None, log=[]) for _ in todo]
    total = sum(attempts_estimate(s, o) for s, o in zip(subs, opts))
    done = 0
    for group, sub, opt in zip(todo, subs, opts):
        def tell(entry, label=group.label):
            nonlocal done
            done += 1
            if progress:
                progress(dict(entry, group=label, step=done, total=max(total, done)))
        group.assignment = search(sub, opt, tell)
        options.log.extend(dict(e, group=group.label) for e in opt.log)
        if group.assignment is None:
            group.reason = _why_not(sub, opt)
    chosen = [g for g in todo if g.assignment is not None]
    if not chosen:
        return np.zeros(0, np.int64), None, groups
    rows, merged = merge_assignments([(g.rows, g.assignment) for g in chosen])
    return rows, merged, groups


def _why_not(spec: ChannelSpec, options: SuperposedOptions) -> str:
    goal = ("exact" if options.max_error is None
            else f"within the error rate {options.max_error:.3g}")
    if not options.log:
        if options.channel and options.channel + 2 > spec.n_outputs:
            return (f"channels of {options.channel:,} neurons need a width of at least "
                    f"{options.channel + 1:,}, not below its {spec.n_outputs:,} outputs")
        return (f"too few outputs ({spec.n_outputs:,}) to share channel neurons: a channel "
                "width must be below the number of outputs")
    tried = [e for e in options.log if e["n"] < spec.n_outputs]
    best = min(tried, key=lambda e: (e["failing"], -e["n"]))
    ts = sorted({e["t"] for e in tried})
    return (f"no channel assignment with fewer neurons than its {spec.n_outputs:,} outputs is "
            f"{goal}: tried widths up to {max(e['n'] for e in tried):,} with channels of "
            f"{', '.join(map(str, ts))}; at best {best['failing']:,} outputs still failed "
            f"(n = {best['n']:,}, t = {best['t']})")


def merge_assignments(parts) -> tuple:
    """(rows, Assignment) of groups with disjoint neurons: part i = (its spec rows, its
    Assignment over those rows in that order); neurons are renumbered group after group and
    the outputs sorted by row."""
    rows = np.concatenate([r for r, _ in parts]).astype(np.int64)
    shift = np.cumsum([0] + [a.n for _, a in parts])[:-1]
    lens = np.concatenate([a.channel_sizes() for _, a in parts])
    neurons = np.concatenate([a.c_neurons + s for (_, a), s in zip(parts, shift)])
    order = np.argsort(rows, kind="stable")
    c_off, c_neu = csr.gather_rows(csr.offsets_from_lengths(lens), neurons, order)
    neuron_k = np.concatenate([a.neuron_k for _, a in parts])
    return rows[order], Assignment(int(sum(a.n for _, a in parts)), c_off, c_neu, neuron_k)
