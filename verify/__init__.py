"""Verification of compiled networks against the circuit's reference semantics.

    from verify import verify_exhaustive, verify_smt, verify_sample, merge
    report = verify_exhaustive(circuit, module)          # every input of the domain
    report = verify_smt(circuit, net, module)            # z3 proofs, per output
    report = verify_sample(circuit, module, samples=10**5)   # never "verified"

Reports are JSON-ready dicts (verify/report.py). `verified` is True only when every case was
checked or proved, False with a counterexample (replayed on the module), None when undecided.
"""

from .exhaustive import verify_exhaustive
from .report import merge
from .sample import verify_sample
from .smt import verify_smt

__all__ = ["merge", "verify_exhaustive", "verify_sample", "verify_smt"]
