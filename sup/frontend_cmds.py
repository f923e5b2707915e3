"""`sup check`, `sup eval` and `sup graph`: the front-end subcommands."""

from __future__ import annotations

import sys
from collections import Counter


from dsl import export
from dsl.domain import verification_domain
from dsl.nodes import COUNT, OP
from dsl.semantics import DONT_CARE, evaluate_active

from .output import UsageError, emit, table


def summary(circuit) -> dict:
    """The `sup check` fields of sup-cli.md, plus a few more."""
    ops = Counter()
    for key in circuit.gate_nodes():
        data = circuit.graph.nodes[key]
        ops[data[OP]] += data[COUNT]
    domain = verification_domain(circuit)   # a don't-care-default table's rows, else sparse
    return {
        "name": circuit.name, "inputs": circuit.n_inputs, "outputs": circuit.n_outputs,
        "wires": circuit.n_wires, "gates": circuit.n_gates, "depth": circuit.depth,
        "sparsity": circuit.sparsity, "domain_size": domain.size,
        "domain": "table rows" if getattr(domain, "kind", "") == "table rows" else "sparse",
        "tables": len(circuit.table_nodes()), "gates_by_op": dict(sorted(ops.items())),
        "graph_nodes": circuit.graph.number_of_nodes(),
        "graph_edges": circuit.graph.number_of_edges(),
    }


def cmd_check(args, circuit) -> int:
    """`sup check`: print the circuit's summary; returns 0."""
    info = summary(circuit)
    ops = ", ".join(f"{op} {n:,}" for op, n in info["gates_by_op"].items()) or "none"
    text = table([
        ("circuit", info["name"]), ("inputs", info["inputs"]), ("outputs", info["outputs"]),
        ("wires", info["wires"]), ("gates", f"{info['gates']:,} ({ops})"),
        ("tables", info["tables"]), ("depth", info["depth"]),
        ("sparsity", "none (all assignments)" if info["sparsity"] is None else info["sparsity"]),
        ("domain size", f"{info['domain_size']:,}"
                        + (" (the table's rows)" if info["domain"] == "table rows" else "")),
        ("graph", f"{info['graph_nodes']:,} family nodes, {info['graph_edges']:,} edges"),
    ])
    emit(args, info, text)
    return 0


def split_names(text: str) -> list[str]:
    """Split `a,x[3],g[1,2]` on the commas that are not inside brackets."""
    names, depth, current = [], 0, []
    for ch in text:
        if ch == "," and depth == 0:
            names.append("".join(current))
            current = []
            continue
        depth += ch == "["
        depth -= ch == "]"
        current.append(ch)
    names.append("".join(current))
    return [n.replace(" ", "") for n in names if n.strip()]


def cmd_eval(args, circuit) -> int:
    """`sup eval`: print every output on the input whose --active features are 1; returns 0."""
    lookup = circuit.input_lookup()
    active = []
    for name in split_names(args.active or ""):
        if name not in lookup:
            raise UsageError(f"'{name}' is not an input of {circuit.name} "
                             f"(inputs look like {', '.join(list(lookup)[:4])})")
        active.append(lookup[name])
    active = sorted(set(active))
    if circuit.sparsity is not None and len(active) > circuit.sparsity:
        print(f"sup eval: warning: {len(active)} active features break the promise "
              f"'sparsity {circuit.sparsity};'", file=sys.stderr)
    result = evaluate_active(circuit, [active])
    values = result.dense()[0]
    names = circuit.output_names()
    outputs = {n: (None if v == DONT_CARE else int(v)) for n, v in zip(names, values.tolist())}
    ones = [n for n, v in outputs.items() if v == 1]
    if len(names) <= 200:
        lines = [f"{n} = {'*' if v is None else v}" for n, v in outputs.items()]
    else:
        lines = [f"{len(ones):,} of {len(names):,} outputs are 1:"] + ones[:1000]
    emit(args, {"outputs": outputs, "active": [circuit.input_names([i])[0] for i in active]},
         "\n".join(lines))
    return 0


def cmd_graph(args, circuit) -> int:
    """`sup graph`: write the circuit graph to -o (DOT or GraphML by extension); returns 0."""
    try:
        export.write(circuit, args.output)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
    emit(args, {"output": args.output, "nodes": circuit.graph.number_of_nodes(),
                "edges": circuit.graph.number_of_edges()},
         f"wrote {args.output} ({circuit.graph.number_of_nodes():,} nodes, "
         f"{circuit.graph.number_of_edges():,} edges)")
    return 0
