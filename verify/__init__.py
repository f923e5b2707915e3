"""Verification of compiled networks against the circuit's reference semantics.

    from verify import verify_exhaustive, verify_smt, verify_sample, merge
    report = verify_exhaustive(circuit, module)          # every input of the domain
    report = verify_smt(circuit, net, module)            # z3 proofs, per output
    report = verify_sample(circuit, module, samples=10**5)   # never "verified"

Reports are JSON-ready dicts (verify/report.py). `verified` is True only when every case was
checked or proved, False with a counterexample (replayed on the module), None when undecided.
"""

from .exhaustive import PATHS, verify_exhaustive
from .report import merge
from .sample import verify_sample
from .run import MethodUnavailable, check_method, module_for, verify
from .smt import verify_smt
from .smt_boolean import verify_smt_boolean
from .smt_tree import verify_smt_tree
from .structural import verify_structural

__all__ = ["MethodUnavailable", "PATHS", "check_method", "merge", "module_for", "verify",
           "verify_exhaustive", "verify_sample", "verify_smt", "verify_smt_boolean",
           "verify_smt_tree", "verify_structural"]
