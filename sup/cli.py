"""The `sup` command: argument parsing, loading circuits, and turning errors into exit codes.

Contract: ../shared/sup-cli.md. Exit 0 success, 1 mismatch/counterexample, 2 bad input (with
the `FILE:LINE:COL: error:` message), 3 undecided.
"""

from __future__ import annotations

import argparse
import os
import sys

import dsl
from compiler import METHODS, TARGETS
from compiler.conditional import TABLE_METHODS
from compiler.superposed import CONSTRUCTIONS
from dsl import SupError, formats
from verify import PATHS

from . import compile_cmds, frontend_cmds, import_cmds, verify_cmds
from .output import EXIT_BAD_INPUT, UsageError

DESCRIPTION = """\
sup compiles boolean feature circuits (.sup files) into ReLU networks and verifies them.

  sup check FILE              parse and elaborate; print a summary
  sup eval FILE --active a,x[3]   evaluate the reference semantics on one input
  sup graph FILE -o OUT.dot   export the circuit graph (DOT or GraphML)
  sup compile FILE --target dense [-o MODEL]   compile to a ReLU network; print the accounting
  sup verify FILE [--model MODEL | --target T] --method exhaustive|smt|sample|structural
  sup import FILE.aag|.aig|.bench|.blif [-o FILE.sup]   standard formats to .sup

FILE is a .sup file or, chosen by its extension, ASCII/binary AIGER (.aag, .aig), ISCAS
.bench or BLIF (.blif).

Every subcommand takes --json (one JSON object on standard output).
Exit status: 0 ok, 1 mismatch found, 2 bad input, 3 undecided.
"""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE",
                        help="circuit file (.sup, or .aag, .aig, .bench, .blif)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--max-elements", type=int, default=dsl.Limits.max_elements,
                        metavar="N", help="largest expansion, array, family or table the file may "
                        f"ask for (default {dsl.Limits.max_elements:,}); raise it deliberately")


def _superposed_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "superposed target", "outputs that are AND / OR / atleast of input features (or copies) "
        "share neurons through channels; the compiler searches the smallest width whose channel "
        "assignment is exact on the whole domain (every other output is compiled densely)")
    group.add_argument("--construction", choices=CONSTRUCTIONS,
                       help="output-channels: balanced random channels (default); design: "
                       "channels from a transversal design (pairwise overlap <= 1); "
                       "input-channels: universal-AND style random listening")
    group.add_argument("--width", type=int, metavar="N", help="use exactly N channel neurons")
    group.add_argument("--channel", type=int, metavar="T", help="use channels of T neurons")
    group.add_argument("--seed", type=int,
                       help="random seed of the assignment (and of --method sample; default 0)")
    group.add_argument("--max-error", type=float, metavar="RATE",
                       help="accept a channel assignment whose measured error rate (fraction of "
                       "domain inputs with any wrong output; exact count, or a 95%% "
                       "Clopper-Pearson bound from samples) is at most RATE, for a smaller "
                       "width (default: exact). The network is then not verified")
    group.add_argument("--input-code", type=int, metavar="DIM",
                       help="inputs arrive in superposition: a DIM-wide random sign code "
                       "(compiler/codes.py); the network is certified exact or the error says "
                       "which width would be")
    group.add_argument("--output-code", type=int, metavar="DIM",
                       help="outputs leave in superposition: a DIM-wide random sign code read "
                       "by a fixed decoder")
    group.add_argument("--code-seed", type=int, metavar="S",
                       help="seed of the input and output codes (SplitMix64; default 0)")


def _conditional_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "conditional target", "trees of neurons: a table becomes one tree (binary search on its "
        "key, or a reduced decision diagram on its bits); every other output is synthesised "
        "from the dense network over its cone's domain")
    group.add_argument("--table-method", choices=TABLE_METHODS,
                       help="auto: whichever has fewer operations on its worst input (default); "
                       "key: binary search on sum 2^i x_i; bits: reduced decision diagram")
    group.add_argument("--max-domain", type=int, metavar="N",
                       help="largest cone domain (inputs) the synthesis pass enumerates for one "
                       "tree (default 1,048,576)")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the `sup` command, one subparser per subcommand."""
    parser = argparse.ArgumentParser(prog="sup", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    check = sub.add_parser("check", help="parse and elaborate a circuit; print a summary",
                           description="Parse and elaborate FILE and print its inputs, outputs, "
                           "wires, gates, depth, sparsity and the size of its input domain.")
    _common(check)
    check.set_defaults(run=frontend_cmds.cmd_check)

    ev = sub.add_parser("eval", help="evaluate the reference semantics on one input",
                        description="Evaluate every output of FILE on one input: the features "
                        "listed with --active are 1, all others 0.")
    _common(ev)
    ev.add_argument("--active", default="", metavar="NAMES",
                    help="comma-separated active input features, e.g. a,x[3] (default: none)")
    ev.set_defaults(run=frontend_cmds.cmd_eval)

    graph = sub.add_parser("graph", help="export the circuit graph (DOT or GraphML)",
                           description="Write the circuit graph, one node per family of signals, "
                           "as Graphviz DOT (.dot, .gv) or GraphML (.graphml).")
    _common(graph)
    graph.add_argument("-o", "--output", required=True, metavar="OUT",
                       help="output file: .dot, .gv or .graphml")
    graph.set_defaults(run=frontend_cmds.cmd_graph)

    comp = sub.add_parser("compile", help="compile to a ReLU network and print the accounting",
                          description="Compile FILE to a ReLU network and print neurons, layers, "
                          "parameters, operations per input and the mission's bounds at this "
                          "size. With -o, save the network (safetensors plus JSON metadata).")
    _common(comp)
    comp.add_argument("--target", default="dense", choices=tuple(TARGETS),
                      help="; ".join(f"{t.name}: {t.summary}" for t in TARGETS.values())
                      + " (default: dense)")
    comp.add_argument("-o", "--output", metavar="MODEL",
                      help="save the network to MODEL(.safetensors) and MODEL.json")
    _superposed_options(comp)
    _conditional_options(comp)
    comp.add_argument("--onnx", metavar="OUT.onnx",
                      help="also export the dense form as ONNX (needs the onnx package)")
    comp.set_defaults(run=compile_cmds.cmd_compile)

    ver = sub.add_parser("verify", help="check a network against the circuit on its domain",
                         description="Check a network against FILE's reference semantics. "
                         "exhaustive: every input of the domain (split with --shard, combine "
                         "with --merge); smt: z3 proofs per output over exact reals; sample: "
                         "random and aimed inputs with an upper bound on the error rate (never "
                         "'verified'). Exit 0 verified, 1 counterexample, 3 undecided.")
    _common(ver)
    src = ver.add_mutually_exclusive_group()
    src.add_argument("--model", metavar="MODEL", help="a network saved by sup compile -o")
    src.add_argument("--target", choices=tuple(TARGETS),
                     help="compile in memory first (default: dense)")
    _superposed_options(ver)
    _conditional_options(ver)
    ver.add_argument("--method", default="auto", choices=("auto", *METHODS),
                     help="auto: exhaustive up to 200M inputs, else sample (default); "
                     "structural: exact combinatorial proof for superposed channel networks")
    ver.add_argument("--shard", metavar="I/N", help="exhaustive: check only part I of N")
    ver.add_argument("--merge", nargs="+", metavar="REPORT",
                     help="combine shard reports (written with --report) into one verdict")
    ver.add_argument("--report", metavar="OUT.json", help="also write the report to a file")
    ver.add_argument("--batch", type=int, default=1 << 16, help="inputs per batch (exhaustive)")
    ver.add_argument("--path", default="auto", choices=PATHS,
                     help="exhaustive: blocks covers the inputs block by block, each input "
                     "evaluated exactly or proved by a per-block bound (one-hidden-layer "
                     "integer networks); delta and dense evaluate every input one by one "
                     "(event-driven / dense read-out); auto: blocks where it applies, else the "
                     "cheaper of the two (default)")
    ver.add_argument("--max-counterexamples", type=int, default=20, metavar="N")
    ver.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                     help="smt: time limit per output query (default 10)")
    ver.add_argument("--samples", type=int, default=100_000, help="sample: inputs to draw")
    ver.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                     help="where the network runs (auto: CUDA when available)")
    ver.add_argument("--dtype", choices=("float32", "float64"),
                     help="number type of the forward pass (default: float32; float64 for "
                     "conditional networks, whose table keys need exact integers)")
    ver.set_defaults(run=verify_cmds.cmd_verify)

    import_cmds.register(sub, _common)
    return parser


def load_circuit(args):
    """Read `args.file` (.sup or a standard format by extension) with the --max-elements limit."""
    limits = dsl.Limits(max_elements=args.max_elements,
                        max_inputs=max(args.max_elements, dsl.Limits.max_inputs))
    return formats.load(args.file, limits)     # .sup, or a standard format by extension


def main(argv=None) -> int:
    """Run the `sup` command.

    Args:
        argv: the arguments (default: sys.argv[1:]).
    Returns:
        The exit status: 0 success, 1 mismatch, 2 bad input, 3 undecided.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        circuit = load_circuit(args)
        return args.run(args, circuit)
    except SupError as err:
        print(err.format(), file=sys.stderr)
        return EXIT_BAD_INPUT
    except UsageError as err:
        print(f"sup {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
