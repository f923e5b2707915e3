"""`--method auto`: choose the verification method by estimated cost, and refuse work that
would not finish within a time budget.

Estimates:

* exhaustive: measured, not guessed. Two probes run the real check (same path, same module)
  on the first ~4,096 and ~65,536 inputs of the domain (or of the shard); the cost per input is
  the slope between them (the check's fixed setup cancels) and the estimate extrapolates it
  to the whole range. Domains of at
  most PROBE_FREE inputs are not probed (checking them costs about as much as probing).
* structural: applies to superposed channel networks (every output read from channel neurons
  only, or combinatorial rs codes); it is a proof from the weights, costing about a second.
* smt: a rough model, SMT_FIXED seconds per output plus SMT_PER_NEURON per neuron of the
  output's cone, each output capped at its time-out (the worst case is outputs x time-out).

`choose` takes structural where it applies, else the cheaper of exhaustive and smt; when even
the cheapest exceeds the budget it raises `TooExpensive`, whose message shows the estimates and
names what would answer (the exit status is 2, bad input, in the command line).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from compiler import TARGETS
from compiler.network import CHANNEL, Network
from dsl.domain import verification_domain

from .code_certificate import is_rs_coded
from .cones import network_cone
from .exhaustive import verify_exhaustive
from .smt import module_layers

PROBE_FREE = 1 << 18
PROBES = (4_096, 65_536)
SMT_FIXED = 0.02
SMT_PER_NEURON = 0.002
STRUCTURAL_SECONDS = 1.0
DEFAULT_MAX_SECONDS = 300.0


class TooExpensive(ValueError):
    """The chosen (or asked-for) method's estimated time exceeds the budget."""


@dataclass
class Choice:
    """The method chosen, why, and every estimate considered (seconds; None: not applicable)."""
    method: str
    why: str
    estimates: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-ready form, stored in the report under `auto`."""
        return {"chosen": self.method, "why": self.why,
                "estimated_seconds": {k: (None if v is None else
                                          (v if math.isfinite(v) else "inf"))
                                      for k, v in self.estimates.items()}}


def format_seconds(seconds: float) -> str:
    """`0.3 s`, `4.2 min`, `3.1 h`, `2.5e+05 years`: a duration for people."""
    if not math.isfinite(seconds):
        return "more than can be counted"
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size * (2 if unit != "min" else 1):
            value = seconds / size
            return f"{value:.3g} {unit}" if value < 1e6 else f"{value:.2e} {unit}"
    return f"{seconds:.2g} s"


def channel_outputs(net) -> tuple[int, int]:
    """(outputs read only from channel neurons, outputs) of a layered network; rs-coded
    networks count as all channel (the code certificate proves them)."""
    if not isinstance(net, Network):
        return 0, getattr(net, "n_outputs", 0)
    if is_rs_coded(net):
        return net.n_outputs, net.n_outputs
    if len(net.layers) != 2 or net.layers[0].role is None:
        return 0, net.n_outputs
    hidden, readout = net.layers
    bad_entry = (hidden.role[readout.cols] != CHANNEL) & (readout.vals != 0)
    bad_rows = np.unique(readout.rows[bad_entry])
    fed = np.bincount(readout.rows[readout.vals != 0], minlength=readout.n_out) > 0
    good = fed.copy()
    good[bad_rows] = False
    return int(good.sum()), net.n_outputs


def structural_applies(net) -> bool:
    """Whether --method structural can decide every output: a superposed channel network."""
    target = TARGETS.get_target(net.target)
    if "structural" not in target.methods:
        return False
    channel, total = channel_outputs(net)
    return total > 0 and channel == total


def estimate_exhaustive(circuit, module, shard=(1, 1), path: str = "auto",
                        batch: int = 1 << 16) -> float:
    """Seconds the exhaustive check of `shard` would take, measured by two probes (module
    docstring); inf when the domain cannot be enumerated."""
    domain = verification_domain(circuit)
    if not domain.fits_int64:
        return math.inf
    start, stop = domain.shard(*shard)
    count = stop - start
    if count <= PROBE_FREE:
        return 0.0
    times = [_probe(circuit, module, domain, start, n, path, batch) for n in PROBES]
    # the slope, not times[1] / PROBES[1]: each probe pays the check's fixed setup (seconds on
    # a large network), which a per-input share would multiply by the domain size
    per_input = max((times[1] - times[0]) / (PROBES[1] - PROBES[0]), 0.0)
    return times[1] + per_input * (count - PROBES[1])


def _probe(circuit, module, domain, start: int, n: int, path: str, batch: int) -> float:
    """Seconds the exhaustive check takes on ranks [start, start + n) (about: a shard)."""
    parts = max(1, domain.size // n)
    index = min(parts, start * parts // domain.size + 1)
    began = time.perf_counter()
    verify_exhaustive(circuit, module, shard=(index, parts), batch=min(batch, n),
                      max_counterexamples=1, progress=False, path=path)
    return time.perf_counter() - began


def estimate_smt(net, module, timeout_s: float) -> float:
    """Rough seconds of --method smt (module docstring); each output capped at its time-out."""
    try:
        layers = module_layers(module)
    except (AttributeError, TypeError):
        return net.n_outputs * min(timeout_s, SMT_FIXED + SMT_PER_NEURON * 16)
    total = 0.0
    for j in range(net.n_outputs):
        cone = sum(len(c) for c in network_cone(layers, j)[1:-1])
        total += min(timeout_s, SMT_FIXED + SMT_PER_NEURON * cone)
    return total


def choose(circuit, net, module, max_seconds: float = DEFAULT_MAX_SECONDS,
           timeout_s: float = 10.0, shard=(1, 1), path: str = "auto",
           batch: int = 1 << 16, structural: bool = True) -> Choice:
    """The method `--method auto` runs (module docstring); `structural=False` skips structural
    (after it left outputs undecided).

    Raises:
        TooExpensive: every exact method is estimated beyond `max_seconds`.
    """
    methods = TARGETS.get_target(net.target).methods
    if structural and "structural" in methods and structural_applies(net):
        return Choice("structural", "a superposed channel network: structural proves it exactly "
                      "from its weights", {"structural": STRUCTURAL_SECONDS})
    estimates = {"exhaustive": estimate_exhaustive(circuit, module, shard, path, batch)}
    if estimates["exhaustive"] <= min(max_seconds, 1.0):
        return Choice("exhaustive", f"the domain is checked in an estimated "
                      f"{format_seconds(estimates['exhaustive'])}", estimates)
    if "smt" in methods and shard == (1, 1):
        estimates["smt"] = estimate_smt(net, module, timeout_s)
    best = min(estimates, key=estimates.get)
    if estimates[best] > max_seconds:
        raise TooExpensive(refusal_message("auto", estimates, max_seconds, net))
    other = [f"{m} {format_seconds(s)}" for m, s in estimates.items() if m != best]
    return Choice(best, f"estimated {format_seconds(estimates[best])}"
                  + (f" against {', '.join(other)}" if other else ""), estimates)


def check_budget(circuit, net, module, method: str, max_seconds: float, shard=(1, 1),
                 path: str = "auto", batch: int = 1 << 16, timeout_s: float = 10.0) -> None:
    """Refuse (TooExpensive) an asked-for exhaustive check estimated beyond `max_seconds`."""
    if method != "exhaustive":
        return
    estimate = estimate_exhaustive(circuit, module, shard, path, batch)
    if estimate > max_seconds:
        estimates = {"exhaustive": estimate}
        if "smt" in TARGETS.get_target(net.target).methods and shard == (1, 1):
            estimates["smt"] = estimate_smt(net, module, timeout_s)
        raise TooExpensive(refusal_message("exhaustive", estimates, max_seconds, net))


def refusal_message(method: str, estimates: dict, max_seconds: float, net) -> str:
    """Why the run is refused: the estimates, the budget, and the methods that would answer."""
    shown = ", ".join(f"{m} {format_seconds(s)}" for m, s in estimates.items())
    answers = []
    if structural_applies(net):
        answers.append("--method structural (a proof from the weights)")
    if "smt" in estimates and estimates["smt"] <= max_seconds:
        answers.append(f"--method smt (estimated {format_seconds(estimates['smt'])})")
    answers += ["--method sample (bounds the error rate, never verifies)",
                "--shard I/N on several machines, then --merge",
                "a larger --max-seconds"]
    return (f"--method {method}: estimated time ({shown}) exceeds --max-seconds "
            f"{max_seconds:g}; refused before starting. Methods that would answer: "
            + "; ".join(answers))


def smt_hint(net) -> str | None:
    """For --method smt on a superposed channel network: the note pointing to structural."""
    if structural_applies(net):
        return ("this is a superposed channel network: --method structural proves it exactly "
                "from its weights, usually far faster than smt")
    return None
