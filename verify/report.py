"""Verification reports: what was checked, what failed, the margin, and how to merge shards.

A report is a plain dict (JSON-ready) with at least the fields of sup-cli.md: `verified`
(True only when every case was checked or proved; False when a counterexample was found; None
when undecided or incomplete), `method`, `inputs_checked`, `outputs_checked`,
`counterexamples` ([{active: [names], wrong: [names], values: {name: y}}]), `min_margin`
(smallest distance of a cared output's read-out from the threshold, negative when wrong),
`seconds`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def fingerprint(path) -> str:
    """sha256 of a file's bytes, to tell whether shard reports are about the same thing."""
    if path is None:
        return ""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def merge(reports: list[dict]) -> dict:
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
                          and not r.get("thin_margin") for r in reports) and len(reports) == n:
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
    })
    return merged
