"""Write any `Circuit` as readable .sup text that parses back to the same function.

    text = to_sup(circuit)

The file has the circuit's inputs (same names, shapes and order), its sparsity, one `wire`
per gate that is read more than once (or that would make an expression too deep or long), and
its outputs (same names and order), each an expression over inputs and wires written with the
operators `! & ^ |` (chains of up to 4 operands; `and(...)`, `or(...)`, `xor(...)` beyond) and
the functions `atleast`, `atmost`, `exactly`, `ite`. Tables are written as inline tables.

Wire names come from the graph attribute `signal_names` (the net names of an imported file),
from the circuit's scalar wires, or are `w<id>`; all are made valid and unique. A gate that
drives a scalar output and is read again later is written as that output and read by its name.

A family of outputs must be defined by one statement, but its members may have unrelated
drivers, so a family of n members is written as

    output y[_i] = or(d0 for _ in 0..1 if _i == 0)
                 | or(d1 for _ in 0..1 if _i == 1)
                 | ...
                   for _i in 0..n;

(`or(...)` over an empty generator is 0, so member i is d_i: the same signals, no extra gate.)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..nodes import (CARE, COUNT, DEFAULT_CARE, DEFAULT_VALUES, DRIVERS, FIRST, GATE, INDEX, INPUTS,
                     K, KEYS, KIND, NAME, OFFSETS, OP, OPERANDS, OUT_NAME, SHAPE, SIGNAL_NAMES,
                     TABLE, VALUES, WIRE, Circuit, member_name)
from .names import Namer, is_valid, sanitize

OR_P, XOR_P, AND_P, NOT_P, ATOM = 1, 2, 3, 4, 5
CHAIN = {"and": (" & ", AND_P), "or": (" | ", OR_P), "xor": (" ^ ", XOR_P)}
MAX_CHAIN = 4           # operands written with operators; more use and(...), or(...), xor(...)
MAX_DEPTH = 8           # deepest inline expression before a gate becomes a wire
MAX_LEAVES = 16         # most leaves in one inline expression before a gate becomes a wire
LINE = 96


@dataclass
class _Item:
    """An output statement (scalar, family or table) waiting for its signals."""
    kind: str                 # 'scalar', 'family', 'table'
    key: str
    need: int                 # largest signal id it reads (it can be written once all wires
    drivers: np.ndarray = field(default=None)   # up to `need` are)


def to_sup(circuit: Circuit, header: str | None = None) -> str:
    """.sup text for `circuit` that parses back to the same function (module docstring).

    Args:
        circuit: any elaborated circuit.
        header: an optional comment put at the top of the file.
    Returns:
        The .sup source text.
    """
    return _Writer(circuit).write(header)


class _Writer:
    def __init__(self, circuit: Circuit):
        self.c = circuit
        self.g = circuit.graph
        self.m = circuit.n_inputs
        self.lines: list[str] = []
        self.names: dict[int, str] = {}         # signal id -> how to refer to it
        self.ref_names: dict[int, str] = {}     # constant -> wire naming it for a table
        self.gate: dict[int, tuple] = {}        # signal id -> (op, operands, k)
        self.table_of: dict[int, str] = {}      # table output id -> table node key
        for key in circuit.signal_nodes:
            data = self.g.nodes[key]
            if data[KIND] == GATE:
                off, ops, ks = data[OFFSETS], data[OPERANDS].tolist(), data[K]
                for j in range(data[COUNT]):
                    self.gate[data[FIRST] + j] = (data[OP], ops[off[j]:off[j + 1]],
                                                    None if ks is None else int(ks[j]))
            elif data[KIND] == TABLE:
                for j in range(data[COUNT]):
                    self.table_of[data[FIRST] + j] = key
                    self.names[data[FIRST] + j] = f"{data[OUT_NAME]}[{j}]"
        for pos, name in enumerate(circuit.input_names()):
            self.names[pos] = name
        self.names[self.m], self.names[self.m + 1] = "0", "1"
        taken = set()
        for key in circuit.input_nodes + circuit.output_nodes:
            taken.add(self.g.nodes[key][NAME])
        for key in circuit.table_nodes():
            taken.add(self.g.nodes[key][NAME])
        self.namer = Namer(taken)
        self.loop = [self._fresh(base, taken) for base in ("_i", "_j", "_k", "_l", "_")]
        self.preferred = dict(self.g.graph.get(SIGNAL_NAMES, {}))
        for key in circuit.wire_nodes:
            data = self.g.nodes[key]
            for idx, d in zip(data[INDEX], data[DRIVERS].tolist()):
                self.preferred.setdefault(d, member_name(data[NAME], idx))

    def _fresh(self, base: str, taken: set) -> str:
        name, k = base, 2
        while name in taken:
            name, k = f"{base}{k}", k + 1
        taken.add(name)
        return name

    # ------------------------------------------------------------------ analysis

    def _items(self) -> list[_Item]:
        items, tables = [], {}
        for key in self.c.table_nodes():
            tables[self.g.nodes[key][OUT_NAME]] = key
        for key in self.c.output_nodes:
            data = self.g.nodes[key]
            drivers = data[DRIVERS]
            if data[NAME] in tables and data[KIND] != WIRE and self._is_table_family(
                    tables[data[NAME]], drivers):
                tkey = tables[data[NAME]]
                inputs = self.g.nodes[tkey][INPUTS]
                items.append(_Item("table", tkey, int(inputs.max(initial=-1)), inputs))
            elif data[SHAPE] == ():
                items.append(_Item("scalar", key, int(drivers[0]), drivers))
            else:
                items.append(_Item("family", key, int(drivers.max(initial=-1)), drivers))
        return items

    def _is_table_family(self, tkey: str, drivers) -> bool:
        data = self.g.nodes[tkey]
        return np.array_equal(drivers, np.arange(data[FIRST], data[FIRST] + data[COUNT]))

    def _plan(self, items) -> None:
        """Decide which gates become wires: read twice, forced, or too deep/long inline."""
        refs: dict[int, int] = {}
        forced: set = set()
        named: set = set()
        stack = []
        for item in items:
            for d in item.drivers.tolist():
                refs[d] = refs.get(d, 0) + 1
                stack.append(d)
                if item.kind != "scalar":
                    forced.add(d)       # table inputs and family members are read by name
        seen = set()
        while stack:
            s = stack.pop()
            if s in seen:
                continue
            seen.add(s)
            if s in self.gate:
                for x in self.gate[s][1]:
                    refs[x] = refs.get(x, 0) + 1
                    stack.append(x)
            elif s in self.table_of:
                tkey = self.table_of[s]
                if tkey not in seen:
                    seen.add(tkey)
                    for x in self.g.nodes[tkey][INPUTS].tolist():
                        refs[x] = refs.get(x, 0) + 1
                        forced.add(x)
                        stack.append(x)
                        if x >= self.m and x not in self.table_of:
                            named.add(x)    # a gate or constant read by a table needs a name
        live = sorted(s for s in seen if isinstance(s, int) and s in self.gate)
        # a NOT is written inline (`!x`) wherever it is read: its reads count for its operand
        for s in reversed(live):
            op, ops, _ = self.gate[s]
            if op == "not" and s not in forced:
                refs[ops[0]] += refs[s] - 1
        wire = set()
        depth, leaves = {}, {}
        for s in live:
            op, ops, _ = self.gate[s]
            if s in forced or (refs.get(s, 0) >= 2 and op != "not"):
                wire.add(s)
            # an expression too deep or too long: its largest inline operands become wires
            while True:
                inline = [x for x in set(ops) if x in self.gate and x not in wire]
                depth[s] = 1 + max((depth[x] for x in inline), default=0)
                leaves[s] = sum(leaves[x] if x in inline else 1 for x in ops)
                if (depth[s] <= MAX_DEPTH and leaves[s] <= MAX_LEAVES) or not inline:
                    break
                wire.add(max(inline, key=lambda x: (leaves[x], depth[x], x)))
        for s in wire:
            depth[s], leaves[s] = 0, 1
        # constants read by a table get a wire too (a table reads named signals only)
        self.wires = sorted(wire | named)
        self.wire_set = set(self.wires)

    # ------------------------------------------------------------------ rendering

    def expr(self, s: int) -> tuple[str, int]:
        if s in self.names:
            return self.names[s], ATOM
        op, ops, k = self.gate[s]
        if op == "not":
            text, prec = self.expr(ops[0])
            return "!" + (text if prec >= NOT_P else f"({text})"), NOT_P
        if op in CHAIN and len(ops) <= MAX_CHAIN:
            sep, mine = CHAIN[op]
            parts = []
            for x in ops:
                text, prec = self.expr(x)
                if prec == mine:          # the same operator: a call, so it stays one gate
                    text, prec = self._call(x), ATOM
                parts.append(text if prec > mine else f"({text})")
            return sep.join(parts), mine
        return self._call(s), ATOM

    def _call(self, s: int) -> str:
        op, ops, k = self.gate[s]
        args = [self.expr(x)[0] for x in ops]
        if k is not None:
            args.insert(0, str(k))
        return f"{op}({', '.join(args)})"

    def _define(self, s: int) -> None:
        if s in self.gate:
            name = self._wire_name(s)
            self._emit(f"wire {name} = {self.expr(s)[0]};")
            self.names[s] = name
        else:                           # a constant read by a table
            name = self.namer.claim(f"const{s - self.m}")
            self._emit(f"wire {name} = {self.names[s]};")
            self.ref_names[s] = name

    def _wire_name(self, s: int) -> str:
        base = self.preferred.get(s)
        if base is None:
            base = f"w{s}"
        return self.namer.claim(base)

    # ------------------------------------------------------------------ statements

    def write(self, header: str | None) -> str:
        c = self.c
        lines = self.lines
        if header:
            lines.extend("# " + h if h else "#" for h in header.split("\n"))
        name = c.name if is_valid(c.name) else sanitize(c.name)
        lines.append(f"circuit {name};")
        lines.append("")
        decls = []
        for key in c.input_nodes:
            data = self.g.nodes[key]
            shape = data[SHAPE]
            decls.append(data[NAME] + (f"[{', '.join(map(str, shape))}]" if shape else ""))
        if decls:
            self._emit_list("input ", decls, ";")
        if c.sparsity is not None:
            lines.append(f"sparsity {c.sparsity};")
        lines.append("")
        items = self._items()
        self._plan(items)
        pending = deque(items)
        for s in self.wires:
            while pending and pending[0].need < s:
                self._item(pending.popleft())
            head = pending[0] if pending else None
            if head is not None and head.kind == "scalar" and int(head.drivers[0]) == s \
                    and s in self.gate:
                # the output itself is the named signal that later gates read
                self._item(pending.popleft())
                self.names[s] = self.g.nodes[head.key][NAME]
                continue
            self._define(s)
        while pending:
            self._item(pending.popleft())
        return "\n".join(lines).rstrip("\n") + "\n"

    def _emit(self, text: str) -> None:
        self.lines.append(text)

    def _emit_list(self, head: str, parts: list, tail: str) -> None:
        line = head
        for j, part in enumerate(parts):
            piece = part + ("," if j + 1 < len(parts) else tail)
            if len(line) + len(piece) + 1 > LINE and line.strip() != head.strip():
                self.lines.append(line.rstrip())
                line = " " * len(head)
            line += piece + " "
        self.lines.append(line.rstrip())

    def _item(self, item: _Item) -> None:
        data = self.g.nodes[item.key]
        if item.kind == "scalar":
            self._emit(f"output {data[NAME]} = {self.expr(int(item.drivers[0]))[0]};")
        elif item.kind == "family":
            self._family(data)
        else:
            self._table(data)

    def _family(self, data) -> None:
        index, drivers = data[INDEX], data[DRIVERS].tolist()
        dims = index.shape[1]
        loops = self.loop[:dims] if dims <= 4 else None
        if loops is None:
            raise ValueError(f"output family '{data[NAME]}' has {dims} dimensions; the writer "
                             "handles up to 4")
        under = self.loop[4]
        target = f"{data[NAME]}[{', '.join(loops)}]"
        if dims == 1 and np.array_equal(index[:, 0], np.arange(len(drivers))):
            gen = f"for {loops[0]} in 0..{len(drivers)}"
        else:
            const = self.namer.claim(f"{data[NAME]}_index")
            rows = [("(" + ", ".join(map(str, r)) + ")") if dims > 1 else str(r[0])
                    for r in index.tolist()]
            self._emit_list(f"const {const} = [", rows, "];")
            names = loops[0] if dims == 1 else "(" + ", ".join(loops) + ")"
            gen = f"for {names} in {const}"
        if len(drivers) == 1:
            self._emit(f"output {target} = {self.expr(drivers[0])[0]} {gen};")
            return
        head = f"output {target} = "
        for j, (row, d) in enumerate(zip(index.tolist(), drivers)):
            cond = " and ".join(f"{v} == {x}" for v, x in zip(loops, row))
            term = f"or({self.expr(d)[0]} for {under} in 0..1 if {cond})"
            self._emit((head if j == 0 else " " * (len(head) - 2) + "| ") + term)
        self._emit(" " * len(head) + gen + ";")

    def _table(self, data) -> None:
        refs = ", ".join(self.ref_names.get(x, self.names[x]) for x in data[INPUTS].tolist())
        width, count = len(data[INPUTS]), data[COUNT]
        self._emit(f"table {data[NAME]}({refs}) -> {data[OUT_NAME]}[{count}] {{")
        for key, values, care in zip(data[KEYS].tolist(), data[VALUES], data[CARE]):
            bits = "".join("1" if (key >> b) & 1 else "0" for b in range(width))
            self._emit(f"  {bits} -> {_bits(values, care)};")
        self._emit(f"  default -> {_bits(data[DEFAULT_VALUES], data[DEFAULT_CARE])};")
        self._emit("}")


def _bits(values, care) -> str:
    return "".join("*" if not c else ("1" if v else "0") for v, c in zip(values, care))
