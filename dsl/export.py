"""Export the circuit graph as Graphviz DOT or GraphML, one drawing node per family.

DOT is written directly (no pydot needed). GraphML goes through networkx, which only stores
scalar attributes, so array attributes (operands, drivers, table rows...) are written as
space-separated integers when they have at most `max_array` elements and left out otherwise
(the node then says `arrays_omitted = true`).
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np

from .nodes import (CONST, COUNT, GATE, INPUT, K, KEYS, KIND, NAME, OP, OUT_NAME, OUTPUT, REFS, SHAPE,
                    TABLE, WIRE, Circuit)

SHAPES = {INPUT: "invtriangle", CONST: "plaintext", GATE: "box", TABLE: "box3d",
          WIRE: "ellipse", OUTPUT: "doublecircle"}


def node_caption(data: dict) -> str:
    """The label of one graph node in a drawing: its name and shape, operator and count, or table size."""
    kind, count = data[KIND], data.get(COUNT, 1)
    if kind == INPUT:
        shape = data[SHAPE]
        return data[NAME] + (f"[{', '.join(map(str, shape))}]" if shape else "")
    if kind == CONST:
        return "0 / 1"
    if kind == GATE:
        text = data[OP]
        if data[K] is not None and len(data[K]):
            ks = np.unique(data[K])
            text += f" k={int(ks[0])}" if len(ks) == 1 else f" k={int(ks.min())}..{int(ks.max())}"
        return f"{text} x{count}" if count > 1 else text
    if kind == TABLE:
        return f"table {data[NAME]}\\n{len(data[KEYS])} rows -> {data[OUT_NAME]}[{count}]"
    name = data[NAME]
    return f"{kind} {name}" + (f" x{count}" if data.get(SHAPE) != () else "")


def to_dot(circuit: Circuit) -> str:
    """The circuit graph as Graphviz DOT text, one drawing node per family (edge label: REFS > 1)."""
    lines = [f'digraph "{circuit.name}" {{', "  rankdir=LR;", '  node [fontname="Helvetica"];']
    ids = {key: f"n{i}" for i, key in enumerate(circuit.graph.nodes)}
    for key, data in circuit.graph.nodes(data=True):
        label = node_caption(data).replace('"', '\\"')
        lines.append(f'  {ids[key]} [label="{label}", shape={SHAPES[data[KIND]]}];')
    for u, v, data in circuit.graph.edges(data=True):
        refs = data.get(REFS, 1)
        label = f' [label="{refs}"]' if refs > 1 else ""
        lines.append(f"  {ids[u]} -> {ids[v]}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_graphml_graph(circuit: Circuit, max_array: int = 100_000) -> nx.DiGraph:
    """A copy of the graph with only GraphML-storable (scalar) attributes."""
    out = nx.DiGraph(name=circuit.name)
    for key, data in circuit.graph.nodes(data=True):
        attrs, omitted = {"caption": node_caption(data)}, False
        for name, value in data.items():
            if value is None:
                continue
            if isinstance(value, np.ndarray):
                if value.size <= max_array:
                    attrs[name] = " ".join(str(int(v)) for v in value.ravel())
                    if value.ndim > 1:
                        attrs[name + "_shape"] = " ".join(map(str, value.shape))
                else:
                    omitted = True
            elif isinstance(value, tuple):
                attrs[name] = " ".join(map(str, value))
            elif isinstance(value, (str, int, float, bool, np.integer)):
                attrs[name] = value.item() if isinstance(value, np.integer) else value
        if omitted:
            attrs["arrays_omitted"] = True
        out.add_node(key, **attrs)
    for u, v, data in circuit.graph.edges(data=True):
        out.add_edge(u, v, **{REFS: int(data.get(REFS, 1))})
    return out


def write(circuit: Circuit, path: str | Path) -> None:
    """Write DOT (.dot / .gv) or GraphML (.graphml), chosen by the file extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".dot", ".gv"):
        path.write_text(to_dot(circuit))
    elif suffix == ".graphml":
        nx.write_graphml(to_graphml_graph(circuit), path)
    else:
        raise ValueError(f"unknown graph format '{suffix}': use .dot or .graphml")
