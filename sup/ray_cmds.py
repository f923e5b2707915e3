"""`sup verify --engine ray [--address ADDR] [--workers N]`: exhaustive shards and SMT queries
as Ray tasks (verify/ray_engine.py), merged into one report as `--merge` does."""

from __future__ import annotations

import dsl
from verify.ray_engine import METHODS, RayEngine, RayUnavailable

from . import argtypes
from .output import UsageError


def add_arguments(parser) -> None:
    """The engine flags of `sup verify`."""
    parser.add_argument("--engine", default="local", choices=("local", "ray"),
                        help="ray: run the exhaustive check as one shard per worker and the SMT "
                        "queries in chunks as Ray tasks (GPU tasks where workers have GPUs), "
                        "merged as --merge does (needs pip install -e '.[ray]'; default local)")
    parser.add_argument("--address", metavar="ADDR",
                        help="--engine ray: the cluster to use (e.g. 10.0.0.5:6379, or auto for "
                        "the one `ray start --head` started here; default: a local Ray "
                        "started for this command)")
    parser.add_argument("--workers", type=argtypes.positive_int, metavar="N",
                        help="--engine ray: workers (Ray actors, one CPU or GPU each, started "
                        "and warmed up before the check), one shard each (default: the "
                        "cluster's CPUs, or GPUs where it has them)")


def runner(args, local):
    """`local` (verify.verify) itself, or for --engine ray a function with its signature that
    runs exhaustive and smt on Ray (other methods still run here)."""
    if getattr(args, "engine", "local") != "ray":
        if getattr(args, "address", None) or getattr(args, "workers", None):
            raise UsageError("--address and --workers apply only with --engine ray")
        return local
    if args.shard:
        raise UsageError("--engine ray splits the domain into shards itself: drop --shard")

    def run(circuit, net, module, method, **options):
        if method not in METHODS:
            return local(circuit, net, module, method, **options)
        try:
            engine = RayEngine(args.address, args.workers, args.device)
        except RayUnavailable as exc:
            raise UsageError(str(exc)) from None
        limits = dsl.Limits(max_elements=args.max_elements,
                            max_inputs=max(args.max_elements, dsl.Limits.max_inputs))
        try:
            return engine.verify(args.file, net, method, model_file=args.model,
                                 dtype=str(module.dtype).replace("torch.", ""), limits=limits,
                                 batch=options.get("batch", 1 << 16),
                                 path=options.get("path", "auto"),
                                 timeout_ms=options.get("timeout_ms", 10_000),
                                 max_counterexamples=options.get("max_counterexamples", 20))
        finally:
            engine.close()
    return run
