"""One entry point for every verification method: `verify(circuit, net, module, method, ...)`.

The method must be one the network's target supports (`compiler.TARGETS[t].methods`); the
SMT encoding follows the module's representation (layers: verify/smt.py; a forest of trees:
verify/smt_tree.py). Every method reads the weights the module computes with.
"""

from __future__ import annotations

import torch

from backends import SupModule, to_module
from compiler import TARGETS

from .code_certificate import is_rs_coded, verify_rs_certificate
from .exhaustive import verify_exhaustive
from .sample import verify_sample
from .smt_boolean import verify_smt_boolean
from .smt_tree import verify_smt_tree
from .structural import verify_structural


class MethodUnavailable(ValueError):
    """The verification method does not apply to this network's target."""


def module_for(net, dtype: str | None = None, device=None):
    """The torch module a verification runs: `dtype` 'float32' / 'float64' (None: the
    target's default), `device` None for CUDA when available."""
    chosen = None if dtype is None else getattr(torch, dtype)
    return to_module(net, dtype=chosen, device=device)


def check_method(net, method: str) -> None:
    """MethodUnavailable when `method` does not apply to `net`'s target (names the ones that do)."""
    target = TARGETS.get_target(net.target)
    if method not in target.methods:
        raise MethodUnavailable(f"--method {method} does not apply to {target.name} networks "
                                f"(use --method {', '.join(target.methods)})")


def verify(circuit, net, module=None, method: str = "exhaustive", *, shard=(1, 1),
           batch: int = 1 << 16, path: str = "auto", timeout_ms: int = 10_000, samples: int = 100_000,
           seed: int = 0, max_counterexamples: int = 20, progress: bool = True) -> dict:
    """Check `net` (compiled from `circuit`) by `method` and return the report (a JSON-ready
    dict: `verified` True only with a full check or a proof, False with a replayed
    counterexample, None when undecided).

    Args:
        circuit: the reference circuit.
        net: the compiled network (its target decides which methods apply).
        module: the torch module to check (default: `module_for(net)`).
        method: 'exhaustive', 'smt', 'sample' or 'structural'.
        shard, batch, path: exhaustive options (part I of N, inputs per batch, evaluation path).
        timeout_ms: SMT time limit per output query.
        samples, seed: sampling options.
    Raises:
        MethodUnavailable: the method does not apply to this target.
        ValueError: `path='blocks'` where the block path does not apply.
    """
    check_method(net, method)
    module = module if module is not None else module_for(net)
    if method == "exhaustive":
        return verify_exhaustive(circuit, module, shard=shard, batch=batch,
                                 max_counterexamples=max_counterexamples, progress=progress,
                                 path=path)
    if method == "structural":
        if is_rs_coded(net):       # combinatorial codes: their own certificate, from the weights
            return verify_rs_certificate(circuit, net, module,
                                         max_counterexamples=max_counterexamples)
        return verify_structural(circuit, net, module, max_counterexamples=max_counterexamples)
    if method == "smt":
        prove = verify_smt_boolean if isinstance(module, SupModule) else verify_smt_tree
        return prove(circuit, net, module, timeout_ms=timeout_ms,
                     max_counterexamples=max_counterexamples, progress=progress)
    if method == "sample":
        return verify_sample(circuit, module, samples=samples, seed=seed,
                             max_counterexamples=max_counterexamples, progress=progress)
    raise MethodUnavailable(f"unknown method '{method}'")
