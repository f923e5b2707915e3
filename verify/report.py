"""Verification reports: what was checked, what failed, the margin, and how to merge shards.

A report is a `Report`: a frozen, read-only mapping whose JSON form (`to_json()`) has at least
the fields of sup-cli.md: `verified` (True only when every case was checked or proved; False
when a counterexample was found; None when undecided or incomplete), `method`,
`inputs_checked`, `outputs_checked`, `counterexamples` ([{active: [names], wrong: [names],
values: {name: y}}]), `min_margin` (smallest distance of a cared output's read-out from the
threshold, negative when wrong), `seconds`; each method adds its own fields.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Optional


class Report(dict):
    """One verdict: a dict of the JSON fields (in the order the verifier wrote them) with typed
    accessors. Not frozen on purpose: callers annotate reports in place (shard fingerprints,
    a test marking an SMT report undecided), which a frozen type would break."""

    @property
    def verified(self) -> Optional[bool]:
        """True only with a full check or a proof; False with a counterexample; None undecided."""
        return self["verified"]

    @property
    def method(self) -> str:
        """The verification method that produced the report."""
        return self["method"]

    @property
    def seconds(self) -> float:
        """Wall time of the check."""
        return float(self.get("seconds", 0.0))

    @classmethod
    def from_json(cls, data: Mapping) -> "Report":
        """The report of a JSON object (or a dict a verifier built); KeyError without
        `verified` or `method`."""
        if isinstance(data, Report):
            return data
        data["verified"], data["method"]  # noqa: B018  (required fields)
        return cls(data)

    def to_json(self) -> dict:
        """The JSON object (a plain dict copy)."""
        return dict(self)

    def with_fields(self, **updates) -> "Report":
        """A copy with the given fields added or replaced."""
        return Report({**self, **updates})


def returns_report(verifier):
    """Decorator: the verifier's dict comes back as a `Report`."""
    @functools.wraps(verifier)
    def wrapped(*args, **kwargs) -> Report:
        return Report.from_json(verifier(*args, **kwargs))
    return wrapped


def fingerprint(path) -> str:
    """sha256 of a file's bytes, to tell whether shard reports are about the same thing."""
    if path is None:
        return ""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


@returns_report
def merge(reports: list) -> dict:
    """Combine shard reports of one exhaustive check into one report.

    Verified only if the shards are 1..n of the same n, of the same circuit and model, and each
    verified; False if any found a counterexample; None otherwise (e.g. shards missing).
    """
    if not reports:
        raise ValueError("no reports to merge")
    methods = sorted({str(r.get("method")) for r in reports} - {"exhaustive"})
    if methods:  # a sample or smt report has no shard of the domain: merging it proves nothing
        raise ValueError(f"only exhaustive shard reports can be merged, not {', '.join(methods)}")
    keys = {(r.get("circuit_sha"), r.get("model_sha"), r.get("shard", {}).get("n"))
            for r in reports}
    if len(keys) != 1:
        raise ValueError("the reports are about different circuits, models or shard counts")
    n = reports[0].get("shard", {}).get("n", 1)
    seen = sorted(r.get("shard", {}).get("i", 1) for r in reports)
    complete = seen == list(range(1, n + 1))
    limit = max(r.get("max_counterexamples", 20) for r in reports)
    counterexamples = [c for r in reports for c in r["counterexamples"]][:limit]
    failing = sum(r.get("failing_inputs", 0) for r in reports)
    if failing or any(r["verified"] is False for r in reports):
        verified = False
    elif complete and all(r.get("failing_inputs", 0) == 0 and r["verified"] is not False
                          and not r.get("thin_margin") for r in reports) and len(reports) == n \
            and _covers_domain(reports):
        verified = True
    else:
        verified = None
    margins = [r["min_margin"] for r in reports if r.get("min_margin") is not None]
    merged = dict(reports[0])
    merged.update({
        "verified": verified, "inputs_checked": sum(r["inputs_checked"] for r in reports),
        "outputs_checked": sum(r["outputs_checked"] for r in reports),
        "counterexamples": counterexamples, "failing_inputs": failing,
        "min_margin": min(margins) if margins else None,
        "seconds": sum(r["seconds"] for r in reports),
        "shard": {"merged": seen, "n": n, "complete": complete},
        "complete": complete and len(reports) == n,
    })
    seconds = merged["seconds"]
    merged["inputs_per_second"] = (round(merged["inputs_checked"] / seconds, 1)
                                   if seconds else None)
    return merged


def _covers_domain(reports: list) -> bool:
    """The shards' inputs add up to the whole domain (when the reports say its size): a shard
    that stopped early, or a report edited by hand, cannot make the merge verified."""
    size = reports[0].get("domain_size")
    return size is None or sum(r["inputs_checked"] for r in reports) == size
