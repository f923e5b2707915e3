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
from compiler.superposed import CODE_KINDS, CONSTRUCTIONS
from dsl import SupError, formats
from toymodels import ToyInputError
from toymodels import commands as toy_commands
from verify import PATHS

from . import argtypes, compile_cmds, frontend_cmds, import_cmds, run_cmds, verify_cmds
from . import export_cmds
from . import activations_cmds
from . import ray_cmds
from .output import UsageError, emit, report_error

DESCRIPTION = """\
sup compiles boolean feature circuits (.sup files) into ReLU networks and verifies them.

  sup check FILE              parse and elaborate; print a summary
  sup eval FILE --active a,x[3]   evaluate the reference semantics on one input
  sup graph FILE -o OUT.dot   export the circuit graph (DOT or GraphML)
  sup compile FILE --target dense [-o MODEL]   compile to a ReLU network; print the accounting
  sup verify FILE [--model MODEL | --target T] --method exhaustive|smt|sample|structural
  sup import FILE.aag|.aig|.bench|.blif [-o FILE.sup]   standard formats to .sup
  sup run MODEL --active 'x[0],x[3]' [--circuit FILE] [--hidden]   run a saved network
  sup toy cc [--task relu|pairs] [--p P ...]   the papers' toy models (no FILE)
  sup toy autoencoder [--m M ...] [--d D ...]

FILE is a .sup file or, chosen by its extension, ASCII/binary AIGER (.aag, .aig), ISCAS
.bench or BLIF (.blif).

Every subcommand takes --json (one JSON object on standard output).
Exit status: 0 ok, 1 mismatch found, 2 bad input, 3 undecided.
"""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE",
                        help="circuit file (.sup, or .aag, .aig, .bench, .blif)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--max-elements", type=argtypes.positive_int,
                        default=dsl.Limits.max_elements,
                        metavar="N", help="largest expansion, array, family or table the file may "
                        f"ask for (default {dsl.Limits.max_elements:,}); raise it deliberately")


def code_arg(text: str):
    """--input-code / --output-code: an integer width (random sign code) or a code kind."""
    try:
        return int(text)
    except ValueError:
        pass
    kind = text.strip().lower()
    if kind in CODE_KINDS:
        return kind
    raise argparse.ArgumentTypeError(f"expected a width (an integer) or one of "
                                     f"{', '.join(CODE_KINDS)}, got '{text}'")


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
    group.add_argument("--seed", type=argtypes.nonnegative_int,
                       help="random seed of the assignment (and of --method sample; default 0)")
    group.add_argument("--max-error", type=float, metavar="RATE",
                       help="accept a channel assignment whose measured error rate (fraction of "
                       "domain inputs with any wrong output; exact count, or a 95%% "
                       "Clopper-Pearson bound from samples) is at most RATE, for a smaller "
                       "width (default: exact). The network is then not verified")
    group.add_argument("--input-code", type=code_arg, metavar="DIM|rs|auto", nargs="?",
                       const="rs",
                       help="inputs arrive in superposition. rs (also the bare flag): a "
                       "combinatorial Reed-Solomon (Kautz-Singleton) code, exact by construction, "
                       "fewest neurons (pairwise ANDs; compiler/superposed/rs_codes.py); auto: the "
                       "narrowest certified rs code; DIM: a DIM-wide random sign code "
                       "(compiler/superposed/codes.py), certified exact or the error says which "
                       "width would be")
    group.add_argument("--output-code", type=code_arg, metavar="DIM|rs|auto", nargs="?",
                       const="rs",
                       help="outputs leave in superposition, read by a fixed decoder and a "
                       "threshold: rs / auto (combinatorial, with an rs or no input code) or a "
                       "DIM-wide random sign code")
    group.add_argument("--code-seed", type=argtypes.nonnegative_int, metavar="S",
                       help="seed of the input and output codes (SplitMix64; default 0)")
    group.add_argument("--max-memory", type=argtypes.memory_size, metavar="SIZE",
                       help="memory the exactness check of one channel assignment may use, e.g. "
                       "512M or 4G (default: a quarter of this machine's memory); wider widths "
                       "are checked in blocks, and a width that cannot fit is an error saying "
                       "which widths do")


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


class ArgumentsError(UsageError):
    """A command line argparse cannot parse; carries the usage line of the (sub)command."""

    def __init__(self, message: str, prog: str, usage: str):
        super().__init__(message)
        self.prog = prog
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """argparse that raises ArgumentsError instead of exiting, so `main` reports every bad
    argument the same way (an `error:` line, the JSON error object with --json, exit 2)."""

    def error(self, message):
        raise ArgumentsError(message, self.prog, self.format_usage())


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the `sup` command, one subparser per subcommand."""
    parser = _Parser(prog="sup", description=DESCRIPTION,
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
                     help="auto: structural for superposed channel networks, else the cheaper "
                     "of exhaustive and smt by estimated time (default; verify/auto.py); "
                     "structural: exact combinatorial proof for superposed channel networks")
    ver.add_argument("--max-seconds", type=argtypes.seconds, default=300.0, metavar="S",
                     help="refuse up front (exit 2) an exhaustive check, or an auto choice, "
                     "whose estimated time exceeds S (default 300)")
    ver.add_argument("--shard", metavar="I/N", help="exhaustive: check only part I of N")
    ver.add_argument("--merge", nargs="+", metavar="REPORT",
                     help="combine shard reports (written with --report) into one verdict")
    ver.add_argument("--report", metavar="OUT.json", help="also write the report to a file")
    ver.add_argument("--batch", type=argtypes.batch_size, default=1 << 16,
                     help="inputs per batch (exhaustive; at most 16,777,216)")
    ver.add_argument("--path", default="auto", choices=PATHS,
                     help="exhaustive: blocks covers the inputs block by block, each input "
                     "evaluated exactly or proved by a per-block bound (one-hidden-layer "
                     "integer networks); delta and dense evaluate every input one by one "
                     "(event-driven / dense read-out); tensor evaluates every input as dense "
                     "blocks on the device, exact in low precision (integer networks whose "
                     "outputs are threshold gates of inputs; float16 tensor cores on a GPU); "
                     "auto: tensor on a GPU where it applies, else blocks where it applies, "
                     "else the cheaper of delta and dense (default)")
    ver.add_argument("--max-counterexamples", type=argtypes.counterexample_count, default=20,
                     metavar="N", help="counterexamples to report (default 20; 0: none)")
    ver.add_argument("--timeout", type=argtypes.seconds, default=10.0, metavar="SECONDS",
                     help="smt: time limit per output query (default 10)")
    ver.add_argument("--samples", type=argtypes.sample_count, default=100_000,
                     help="sample: inputs to draw (default 100,000)")
    ver.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                     help="where the network runs (auto: CUDA when available)")
    ver.add_argument("--dtype", choices=("float32", "float64"),
                     help="number type of the forward pass (default: float32; float64 for "
                     "conditional networks, whose table keys need exact integers)")
    ray_cmds.add_arguments(ver)
    ver.set_defaults(run=verify_cmds.cmd_verify)

    import_cmds.register(sub, _common)
    export_cmds.register(sub, _common)
    run_cmds.register(sub)
    activations_cmds.register(sub)
    _toy(sub)
    return parser


def _toy(sub) -> None:
    """`sup toy cc` and `sup toy autoencoder`: the papers' toy models (toymodels/); no FILE."""
    toy = sub.add_parser("toy", help="the papers' toy models beside sup's exact networks",
                         description="Reproduce the toy models of two of the papers sup was "
                         "built from (docs/benchmarks.md, section Toy models). No FILE.")
    models = toy.add_subparsers(dest="toy_command", metavar="MODEL")
    models.required = True
    cc = models.add_parser("cc", help="compressed computation: trained MLP vs naive, SNMF, "
                           "and (--task pairs) sup's compiled network",
                           description=toy_commands.CC_DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    toy_commands.add_cc_arguments(cc)
    cc.set_defaults(run=_toy_runner(toy_commands.run_cc))
    ae = models.add_parser("autoencoder", help="power autoencoders: exact I against the bounds",
                           description=toy_commands.AE_DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    toy_commands.add_autoencoder_arguments(ae)
    ae.set_defaults(run=_toy_runner(toy_commands.run_autoencoder))


def _toy_runner(run):
    """A command function (args, circuit) around a toymodels run(args) -> (data, text)."""
    def command(args, circuit=None) -> int:
        try:
            data, text = run(args)
        except ToyInputError as exc:
            raise UsageError(str(exc)) from None
        emit(args, data, text)
        return 0
    return command


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
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    want_json = "--json" in argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except ArgumentsError as err:         # argparse's own exit status 2, as SystemExit
        raise SystemExit(report_error(want_json, f"{err.usage}{err.prog}: error: {err}",
                                      str(err))) from None
    try:
        circuit = load_circuit(args) if getattr(args, "file", None) is not None else None
        return args.run(args, circuit)
    except SupError as err:
        return report_error(want_json, err.format(), err.message, err.file, err.line, err.column)
    except UsageError as err:
        return report_error(want_json, f"sup {args.command}: error: {err}", str(err),
                            getattr(args, "file", None))
    except MemoryError as err:
        detail = f" ({err})" if str(err) else ""
        return report_error(want_json, f"sup {args.command}: error: out of memory{detail}",
                            f"out of memory{detail}", getattr(args, "file", None))
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
