"""A combinational netlist read from a file, and its translation into the circuit graph.

Every reader (AIGER, .bench, BLIF) fills a `Netlist`: named nets, each an input, a constant,
or a gate over other nets (AND / OR / XOR / BUF with optionally negated fan-ins and an
optionally negated result, or a BLIF cover: an OR of ANDs of literals, negated for an OFF-set
cover), in any order, plus the list of outputs. `build` then

1. reports a reference to a net that is never defined (at its first reference) and a
   combinational cycle (at the earliest defined net on it, listing the cycle),
2. keeps the nets that some output depends on (dead logic is dropped),
3. creates the gates level by level (a net's level is 1 + the largest level of its fan-ins),
   one vectorized `GateBuilder.make` call per operator and level, so constants are folded
   and equal gates shared exactly as for .sup files. A net is kept as a signal plus an
   "inverted" flag: a NOT gate is made only where a negated value is read by an AND / OR or
   an output (NAND read through NOT makes no gate for the NAND's negation; the negations of
   XOR operands move to its result), so no gate is left unused,
4. names inputs and outputs by the rule of dsl/formats/names.py and returns the `Circuit`
   (graph attribute `signal_names` maps gate signal ids to the file's net names).
"""

from __future__ import annotations

import numpy as np

from .. import csr
from ..builder import GraphBuilder
from ..elaborate import Limits
from ..errors import SupError
from ..nodes import OUTPUT, SIGNAL_NAMES
from .names import Namer, group_names

INPUT, CONST0, CONST1, AND, OR, XOR, BUF, COVER = range(8)
_OPS = {AND: "and", OR: "or", XOR: "xor"}


class Netlist:
    """Nets in file order. A net is created when first defined or referenced."""

    def __init__(self, file: str, source: str | None, limits: Limits | None = None,
                 noun: str = "signal"):
        self.file, self.source = file, source
        self.limits = limits or Limits()
        self.noun = noun                    # what nets are called in messages
        self.ids: dict = {}                 # name -> net id
        self.names: list = []
        self.kind: list = []                # None until defined
        self.def_pos: list = []             # (line, column) of the definition
        self.ref_pos: list = []             # (line, column) of the first reference
        self.fanin: list = []               # list of net ids
        self.fanin_neg: list = []           # list of bools (or None: none negated)
        self.invert: list = []
        self.cubes: list = []               # COVER: list of strings over the fan-ins ('0','1','-')
        self.inputs: list = []              # net ids in order
        self.outputs: list = []             # (net id, negated, name, (line, column))

    # ------------------------------------------------------------------ filling

    def error(self, message: str, line: int = 0, column: int = 0) -> SupError:
        """A SupError located in this netlist's file (line / column 0: the whole file)."""
        return SupError(message, line, column, self.file, self.source)

    def net(self, name, pos=None) -> int:
        """The id of net `name`, creating it (undefined) if new; pos: where it is referenced."""
        net = self.ids.get(name)
        if net is None:
            net = len(self.names)
            if net >= self.limits.max_elements + self.limits.max_inputs:
                line, column = pos or (0, 0)
                raise self.error(f"more than {net} {self.noun}s: the file is larger than the "
                                 f"limit (raise it with --max-elements)", line, column)
            self.ids[name] = net
            self.names.append(name)
            self.kind.append(None)
            self.def_pos.append(None)
            self.ref_pos.append(pos)
            self.fanin.append(())
            self.fanin_neg.append(None)
            self.invert.append(False)
            self.cubes.append(None)
        elif self.ref_pos[net] is None:
            self.ref_pos[net] = pos
        return net

    def define(self, name, kind: int, pos, fanin=(), fanin_neg=None, invert=False,
               cubes=None) -> int:
        """Define net `name`; a second definition is an error (at `pos`)."""
        net = self.net(name)
        if self.kind[net] is not None:
            line = self.def_pos[net][0]
            raise self.error(f"{self.noun} '{name}' is defined twice (first at line {line})", *pos)
        self.kind[net] = kind
        self.def_pos[net] = pos
        self.fanin[net] = fanin
        self.fanin_neg[net] = fanin_neg
        self.invert[net] = invert
        self.cubes[net] = cubes
        if kind == INPUT:
            self.inputs.append(net)
        return net

    def add_output(self, name_or_net, pos, negated: bool = False, out_name: str | None = None):
        """Declare an output: net `name_or_net` (name or id), maybe negated, named `out_name`."""
        net = name_or_net if isinstance(name_or_net, int) else self.net(name_or_net, pos)
        self.outputs.append((net, negated, out_name if out_name is not None else self.names[net], pos))

    # ------------------------------------------------------------------ checks

    def check_defined(self, message=None) -> None:
        """Error at the first reference (in file order) of a net that is never defined."""
        undefined = [n for n, k in enumerate(self.kind) if k is None]
        if not undefined:
            return
        net = min(undefined, key=lambda n: self.ref_pos[n] or (0, 0))
        line, column = self.ref_pos[net] or (0, 0)
        text = message(self.names[net]) if message else \
            f"{self.noun} '{self.names[net]}' is used but never defined"
        raise self.error(text, line, column)

    def levels(self) -> list:
        """Level of every net (inputs and constants 0); a cycle is an error."""
        n = len(self.names)
        level = [0] * n
        pending = [len(f) for f in self.fanin]
        users = [[] for _ in range(n)]
        for g, fanin in enumerate(self.fanin):
            for f in fanin:
                users[f].append(g)
        ready = [g for g in range(n) if pending[g] == 0]
        done = 0
        while ready:
            d = ready.pop()
            done += 1
            ld = level[d] + 1
            for u in users[d]:
                if level[u] < ld:
                    level[u] = ld
                pending[u] -= 1
                if pending[u] == 0:
                    ready.append(u)
        if done < n:
            self._report_cycle(pending)
        return level

    def _report_cycle(self, pending) -> None:
        stuck = [g for g in range(len(pending)) if pending[g] > 0]
        start = min(stuck, key=lambda g: self.def_pos[g])
        path, seen = [], {}
        g = start
        while g not in seen:         # every stuck net has a stuck fan-in: follow them
            seen[g] = len(path)
            path.append(g)
            g = next(f for f in self.fanin[g] if pending[f] > 0)
        cycle = path[seen[g]:]
        first = min(range(len(cycle)), key=lambda i: self.def_pos[cycle[i]])
        cycle = cycle[first:] + cycle[:first]
        # each net depends on the next one listed: show the cycle as "a -> b -> ... -> a"
        names = " -> ".join(self.names[c] for c in cycle + cycle[:1])
        raise self.error(f"combinational cycle: {names} (each {self.noun} depends on the next)",
                         *self.def_pos[cycle[0]])

    # ------------------------------------------------------------------ building

    def build(self, circuit_name: str, undefined_message=None):
        """Check, then translate into a `Circuit` (see the module docstring)."""
        self.check_defined(undefined_message)
        if len(self.inputs) > self.limits.max_inputs:
            raise self.error(f"{len(self.inputs)} inputs are more than the limit of "
                             f"{self.limits.max_inputs} (raise it with --max-elements)",
                             *self.def_pos[self.inputs[self.limits.max_inputs]])
        if len(self.names) - len(self.inputs) > self.limits.max_elements:
            gates = sorted((g for g, k in enumerate(self.kind) if k not in (INPUT, CONST0, CONST1)),
                           key=lambda g: self.def_pos[g])
            if len(gates) > self.limits.max_elements:
                raise self.error(f"{len(gates)} {self.noun}s are defined by gates, more than "
                                 f"the limit of {self.limits.max_elements} (raise it with "
                                 f"--max-elements)", *self.def_pos[gates[self.limits.max_elements]])
        level = np.asarray(self.levels(), dtype=np.int64)
        gb = GraphBuilder()
        namer = Namer()
        in_groups = group_names([self.names[n] for n in self.inputs], True, namer)
        for group in in_groups:
            line, column = self.def_pos[self.inputs[group.positions[0]]]
            gb.add_input(group.name, group.shape, line, column)
        gates = gb.finish_inputs()
        n = len(self.names)
        sig = np.full(n, -1, dtype=np.int64)
        inv = np.zeros(n, dtype=bool)           # the net is the negation of sig
        order = [self.inputs[p] for g in in_groups for p in g.positions]
        sig[np.asarray(order, dtype=np.int64)] = np.arange(len(order), dtype=np.int64)
        live = self._live()
        kind = np.array([k for k in self.kind], dtype=np.int64)
        kind[~live] = INPUT                # dead nets: never built
        sig[kind == CONST0] = gates.const0
        sig[kind == CONST1] = gates.const1
        lens = np.fromiter((len(f) for f in self.fanin), dtype=np.int64, count=n)
        fan_off = csr.offsets_from_lengths(lens)
        fan_ids = np.fromiter((f for fs in self.fanin for f in fs), dtype=np.int64,
                              count=int(fan_off[-1]))
        fan_neg = np.zeros(len(fan_ids), dtype=bool)
        for g in range(n):
            if self.fanin_neg[g] is not None:
                fan_neg[fan_off[g]:fan_off[g + 1]] = self.fanin_neg[g]
        invert = np.array(self.invert, dtype=bool)
        gate_nets = np.flatnonzero(kind >= AND)
        names, negated_names = {}, {}
        for lv in np.unique(level[gate_nets]):
            nets = gate_nets[level[gate_nets] == lv]
            pos = self.def_pos[int(nets[0])]
            gates.pos = (pos[0], pos[1])
            self._build_level(gates, nets, kind, fan_off, fan_ids, fan_neg, sig, inv)
            inv[nets] ^= invert[nets]
            for g in nets.tolist():
                if inv[g]:
                    negated_names.setdefault(int(sig[g]), "not_" + self.names[g])
                else:
                    names.setdefault(int(sig[g]), self.names[g])
        for s, v in negated_names.items():     # a gate whose value only a negated net names
            names.setdefault(s, v)
        gb.graph.graph[SIGNAL_NAMES] = {s: v for s, v in names.items() if s > gates.const1}
        self._add_outputs(gb, gates, namer, sig, inv, {g.name for g in in_groups})
        return gb.circuit(circuit_name, None, self.file)

    def _live(self) -> np.ndarray:
        live = np.zeros(len(self.names), dtype=bool)
        stack = [net for net, _, _, _ in self.outputs]
        while stack:
            g = stack.pop()
            if live[g]:
                continue
            live[g] = True
            stack.extend(f for f in self.fanin[g] if not live[f])
        return live

    def _build_level(self, gates, nets, kind, fan_off, fan_ids, fan_neg, sig, inv) -> None:
        """sig and inv (before the nets' own inversion) of the nets of one level."""
        simple = nets[kind[nets] != COVER]
        if len(simple):
            off, ops = csr.gather_rows(fan_off, fan_ids, simple)
            _, neg = csr.gather_rows(fan_off, fan_neg, simple)
            vals = sig[ops]
            neg = neg ^ inv[ops]
            ks = kind[simple]
            is_xor = np.repeat(ks == XOR, csr.lengths(off))
            flip = neg & ~is_xor & (np.repeat(ks, csr.lengths(off)) != BUF)
            if flip.any():
                vals[flip] = gates.negate(vals[flip])
            for code, op in _OPS.items():
                rows = np.flatnonzero(ks == code)
                if len(rows):
                    sub_off, sub_ops = csr.gather_rows(off, vals, rows)
                    sig[simple[rows]] = gates.make(op, sub_off, sub_ops)
                    inv[simple[rows]] = False
            rows = np.flatnonzero(ks == XOR)
            if len(rows):   # xor(!a, b) = !xor(a, b): the parity of negated operands
                sub_off, sub_neg = csr.gather_rows(off, neg.astype(np.int64), rows)
                inv[simple[rows]] = csr.row_sum(sub_off, sub_neg) % 2 == 1
            rows = np.flatnonzero(ks == BUF)
            sig[simple[rows]] = vals[off[rows]]
            inv[simple[rows]] = neg[off[rows]]
        covers = nets[kind[nets] == COVER]
        if len(covers):
            cube_lens, lit_nets, lit_neg, lit_lens = [], [], [], []
            for g in covers.tolist():
                fanin = self.fanin[g]
                cubes = self.cubes[g]
                cube_lens.append(len(cubes))
                for cube in cubes:
                    count = 0
                    for f, ch in zip(fanin, cube):
                        if ch != "-":
                            lit_nets.append(f)
                            lit_neg.append(ch == "0")
                            count += 1
                    lit_lens.append(count)
            lits = np.asarray(lit_nets, dtype=np.int64)
            vals = sig[lits]
            neg = np.asarray(lit_neg, dtype=bool) ^ inv[lits]
            if neg.any():
                vals[neg] = gates.negate(vals[neg])
            cube_sig = gates.make("and", csr.offsets_from_lengths(np.asarray(lit_lens, np.int64)),
                                  vals)
            sig[covers] = gates.make("or", csr.offsets_from_lengths(np.asarray(cube_lens, np.int64)),
                                     cube_sig)
            inv[covers] = False

    def _add_outputs(self, gb, gates, namer, sig, inv, input_names) -> None:
        if len(self.outputs) > self.limits.max_elements:
            raise self.error(f"{len(self.outputs)} outputs are more than the limit of "
                             f"{self.limits.max_elements} (raise it with --max-elements)",
                             *self.outputs[self.limits.max_elements][3])
        drivers = np.array([sig[net] for net, _, _, _ in self.outputs], dtype=np.int64)
        negated = np.array([neg for _, neg, _, _ in self.outputs], dtype=bool)
        if len(self.outputs):
            negated ^= inv[np.array([net for net, _, _, _ in self.outputs], dtype=np.int64)]
        if negated.any():
            drivers[negated] = gates.negate(drivers[negated])
        groups = group_names([name for _, _, name, _ in self.outputs], False, namer,
                             avoid=input_names)
        for group in groups:
            line, column = self.outputs[group.positions[0]][3]
            gb.add_named(OUTPUT, group.name, group.index, drivers[group.positions], line, column)
