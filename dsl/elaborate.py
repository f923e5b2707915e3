"""Elaboration: turn the syntax tree of a .sup file into the circuit graph of dsl/nodes.py.

Statements run in order. Each signal statement is evaluated ONCE for all combinations of its
generators: loop variables are int64 arrays over a `Context`, index expressions are numpy
arithmetic, signal references are vectorized family look-ups and every operator becomes one
call of `GateBuilder.make` for the whole family. So `output y[u, v] = x[u] & x[v] for (u, v) in
P;` with a million pairs costs a handful of array operations.

Every size that user text controls (ranges, expansions, inputs, table rows) is checked against
`Limits` before memory is spent on it.
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from . import ast, csr, memory, tables
from .ast import INT_LIMIT
from .constants import pair_count, pairs, perm
from .errors import SupError, error_at
from .families import Family
from .builder import GraphBuilder
from .gates import GateBuilder, add_reference_edges
from .nodes import (CARE, COLUMN, COUNT, DEFAULT_CARE, DEFAULT_VALUES, FIRST, INPUTS, KEYS, KIND,
                    LABEL, LINE, NAME, OUT_NAME, OUTPUT, TABLE, VALUES, WIRE, Circuit)
from .values import Array, Cond, Context, Ints, Rows, Sigs, kind_name

SIGNAL_FUNCTIONS = ("and", "or", "xor", "maj", "atleast", "atmost", "exactly", "ite")
CONST_FUNCTIONS = ("pairs", "perm")
MAX_INPUT_DIMS = 32
BYTES_PER_ELEMENT = 32          # a lower bound of what one expanded element costs (int64 arrays)


@dataclass
class Limits:
    """Sizes user text may ask for; raise them deliberately (`--max-elements` on the CLI)."""
    max_elements: int = 1 << 24        # members of one expansion, constant array or family
    max_inputs: int = 1 << 24          # input features
    max_table_width: int = tables.MAX_WIDTH


def elaborate(program: ast.Program, limits: Optional[Limits] = None,
              name: Optional[str] = None) -> Circuit:
    """Elaborate a parsed program into a Circuit; SupError (located) on any problem."""
    # Evaluation recurses over expressions (a few frames per level, at most ast.MAX_NESTING
    # levels, which the parser enforces): make sure that fits whatever the caller's stack depth.
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, _stack_depth() + 10 * ast.MAX_NESTING + 500))
    try:
        return _Elaborator(program, limits or Limits(), name).run()
    except SupError as err:
        raise err.located(program.file, program.source)
    except RecursionError:
        raise SupError(f"expression nested too deeply (more than {ast.MAX_NESTING} levels)", 1, 1,
                       program.file, program.source) from None
    finally:
        sys.setrecursionlimit(old_limit)


def _check_memory(where, count: int, what: str) -> None:
    """SupError at `where` when `count` elements cannot fit in the memory available (each
    element of an expansion or family takes at least BYTES_PER_ELEMENT in elaboration)."""
    need = count * BYTES_PER_ELEMENT
    have = memory.available_bytes()
    if need > have:
        raise error_at(where, f"{what}, which needs at least {memory.format_bytes(need)} of "
                              f"memory; {memory.format_bytes(have)} is available (at most about "
                              f"{have // BYTES_PER_ELEMENT:,} elements fit)")


def _loop_values(ctx: Context | None, row: int) -> str:
    """` (for i = 3, j = 5)`: the loop variables of one row of a context, for messages."""
    if ctx is None or not ctx.vars or not 0 <= row < ctx.length:
        return ""
    return " (for " + ", ".join(f"{var} = {int(np.asarray(v).reshape(-1)[row])}"
                                for var, v in ctx.vars.items()) + ")"


def _stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


class _Elaborator:
    def __init__(self, program: ast.Program, limits: Limits, name: Optional[str]):
        self.program = program
        self.limits = limits
        self.name = name or (Path(program.file).stem if program.file else "circuit")
        self.gb = GraphBuilder()          # graph, signal nodes, inputs/outputs/wires
        self.graph = self.gb.graph
        self.consts: dict = {}          # name -> Ints | Array
        self.families: dict = {}        # name -> Family
        self.tables: set = set()
        self.defined_at: dict = {}      # name -> (statement number, line)
        self.current = 0                # number of the statement being elaborated
        self.sparsity = None
        self.sparsity_line = 0
        self.signal_nodes, self.node_firsts = self.gb.signal_nodes, self.gb.node_firsts
        self.outputs, self.wires, self.inputs = self.gb.outputs, self.gb.wires, self.gb.inputs
        self.builder: Optional[GateBuilder] = None

    # ================================================================ statements

    def run(self) -> Circuit:
        try:
            return self._run()
        except MemoryError:
            stmt = self.program.statements[self.current] if self.program.statements else None
            raise error_at(stmt, "this statement needs more memory than is available "
                                 f"({memory.format_bytes(memory.available_bytes())}); make it "
                                 "smaller") from None

    def _run(self) -> Circuit:
        statements = self.program.statements
        self._collect_names(statements)
        for number, stmt in enumerate(statements):          # pass 1: no signals needed
            self.current = number
            if isinstance(stmt, ast.CircuitStmt):
                self._circuit(stmt, number)
            elif isinstance(stmt, ast.ConstStmt):
                self.consts[stmt.name] = self._const_value(stmt)
            elif isinstance(stmt, ast.InputStmt):
                self._inputs(stmt)
            elif isinstance(stmt, ast.SparsityStmt):
                self._sparsity(stmt)
        self._finish_inputs()
        for number, stmt in enumerate(statements):          # pass 2: wires, outputs, tables
            self.current = number
            if isinstance(stmt, ast.SignalStmt):
                self._signal(stmt)
            elif isinstance(stmt, ast.TableStmt):
                self._table(stmt)
        return self.gb.circuit(self.name, self.sparsity, self.program.file)

    def _collect_names(self, statements) -> None:
        def define(name, node, number, after=None):
            if name in self.defined_at:
                line, column = self._name_position(node, name, after)
                raise SupError(f"'{name}' is already defined (line {self.defined_at[name][1]})",
                               line, column)
            self.defined_at[name] = (number, node.line)

        for number, stmt in enumerate(statements):
            if isinstance(stmt, ast.InputStmt):
                for decl in stmt.decls:
                    define(decl.name, decl, number)
            elif isinstance(stmt, (ast.ConstStmt, ast.SignalStmt)):
                define(stmt.name, stmt, number)
            elif isinstance(stmt, ast.TableStmt):
                define(stmt.name, stmt, number)
                define(stmt.out_name, stmt, number, after="->")

    def _name_position(self, node, name: str, after: str | None = None) -> tuple[int, int]:
        """(line, column) of the defined `name` in the statement at `node` (the syntax tree
        keeps only the statement's position): the first whole-word match after the statement's
        keyword, or after `after`. Falls back to the statement's position."""
        source = self.program.source or ""
        lines = source.split("\n")
        if not 1 <= node.line <= len(lines):
            return node.line, node.column
        offset = sum(len(text) + 1 for text in lines[:node.line - 1]) + node.column - 1
        if after is not None:
            found = source.find(after, offset)
            offset = found + len(after) if found >= 0 else offset
        elif isinstance(node, (ast.ConstStmt, ast.SignalStmt, ast.TableStmt)):
            keyword = re.match(r"[A-Za-z_]\w*", source[offset:])
            offset += keyword.end() if keyword else 0
        match = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)").search(source, offset)
        if match is None:
            return node.line, node.column
        line = source.count("\n", 0, match.start()) + 1
        return line, match.start() - (source.rfind("\n", 0, match.start()) + 1) + 1

    def _circuit(self, stmt: ast.CircuitStmt, number: int) -> None:
        first = self.program.statements[0]
        if number != 0 and isinstance(first, ast.CircuitStmt):
            raise error_at(stmt, f"a second 'circuit' statement (the first is at line {first.line})")
        if number != 0:
            raise error_at(stmt, "'circuit NAME;' must be the first statement of the file")
        self.name = stmt.name

    def _sparsity(self, stmt: ast.SparsityStmt) -> None:
        if self.sparsity is not None:
            raise error_at(stmt, f"a second 'sparsity' statement (the first is at line "
                                 f"{self.sparsity_line}; there can be only one)")
        self.sparsity_line = stmt.line
        k = self._scalar_int(stmt.value, "the sparsity")
        if k < 0:
            raise error_at(stmt.value, f"the sparsity must be 0 or more, not {k}")
        self.sparsity = k

    def _inputs(self, stmt: ast.InputStmt) -> None:
        for decl in stmt.decls:
            if len(decl.dims) > MAX_INPUT_DIMS:
                raise error_at(decl.dims[MAX_INPUT_DIMS], f"'{decl.name}' has {len(decl.dims)} "
                                                          f"dimensions, more than the limit of "
                                                          f"{MAX_INPUT_DIMS}")
            shape = tuple(self._scalar_int(d, "an input size") for d in decl.dims)
            for d, size in zip(decl.dims, shape):
                if size < 1:
                    raise error_at(d, f"an input size must be at least 1, not {size}")
            limit = self.limits.max_inputs
            count = 1
            for size in shape:                  # capped: the exact product may be enormous
                count = min(count * size, limit + 1)
            first = sum(len(f.drivers) for f in self.families.values())
            if count > limit:
                raise error_at(decl, f"'{decl.name}' alone declares more than {limit} input "
                                     f"features, the limit (raise it with --max-elements)")
            if first + count > limit:
                raise error_at(decl, f"{first + count} input features are more than the limit of "
                                     f"{limit} (raise it with --max-elements)")
            _check_memory(decl, count, f"'{decl.name}' declares {count:,} input features")
            index = np.indices(shape).reshape(len(shape), -1).T.astype(np.int64) if shape \
                else np.zeros((1, 0), np.int64)
            fam = Family("input", decl.name, index, np.arange(first, first + count, dtype=np.int64),
                         shape=shape, line=decl.line)
            self.families[decl.name] = fam
            self.gb.add_input(decl.name, shape, decl.line, decl.column)

    def _finish_inputs(self) -> None:
        self.n_inputs = self.gb.n_inputs
        self.builder = self.gb.finish_inputs()

    def _const_value(self, stmt: ast.ConstStmt):
        value = self.eval(stmt.value, Context.single(), allow_const_calls=True)
        if isinstance(value, Ints):
            return Ints(np.int64(value.full(1)[0]))
        if isinstance(value, Array):
            return value
        raise error_at(stmt.value, f"a constant must be an integer or an array, not {kind_name(value)}")

    def _signal(self, stmt: ast.SignalStmt) -> None:
        if stmt.indices is None and stmt.clause is not None:
            raise error_at(stmt.clause, f"'{stmt.name}' has a generator but no index: "
                                        f"write {stmt.kind} {stmt.name}[i] = ... for i in ...")
        ctx = Context.single()
        if stmt.clause is not None:
            ctx, _ = self.expand(ctx, stmt.clause)
        self.builder.pos = (stmt.value.line, stmt.value.column)
        drivers = self.as_sigs(self.eval(stmt.value, ctx), stmt.value, ctx.length)
        if stmt.indices is None:
            index = np.zeros((1, 0), dtype=np.int64)
        else:
            index = np.stack([self.as_ints(self.eval(e, ctx), e, "an index must be an integer")
                              .full(ctx.length) for e in stmt.indices], axis=1).astype(np.int64)
        fam = Family(stmt.kind, stmt.name, index, np.ascontiguousarray(drivers, dtype=np.int64),
                     line=stmt.line)
        self._check_unique(fam, stmt, ctx)
        self.families[stmt.name] = fam
        self._add_named_node(fam, stmt)

    def _check_unique(self, fam: Family, stmt, ctx: Context) -> None:
        where = stmt.indices[0] if stmt.indices else stmt
        try:
            dup = fam.duplicate()
        except OverflowError:
            raise error_at(where, f"the index values of '{fam.name}' span too large a space") from None
        if dup is not None:
            first = int(np.flatnonzero((fam.index == fam.index[dup]).all(axis=1))[0])

            def values(row):
                return ", ".join(f"{var} = {int(v[row])}" for var, v in ctx.vars.items())
            raise error_at(where, f"{fam.member(dup)} is defined twice by this statement "
                                  f"(for {values(first)} and for {values(dup)})")

    def _add_named_node(self, fam: Family, stmt) -> None:
        self.gb.add_named(OUTPUT if fam.kind == "output" else WIRE, fam.name, fam.index,
                          fam.drivers, stmt.line, stmt.column)

    # ================================================================ tables

    def _table(self, stmt: ast.TableStmt) -> None:
        inputs = np.concatenate([self._table_ref(ref) for ref in stmt.refs])
        width = len(inputs)
        if width > self.limits.max_table_width:
            raise error_at(stmt, f"the table has {width} input bits, more than the limit of "
                                 f"{self.limits.max_table_width}")
        n_out = self._scalar_int(stmt.out_size, "the number of table outputs")
        if not 1 <= n_out <= self.limits.max_elements:
            raise error_at(stmt.out_size, f"a table needs 1 to {self.limits.max_elements} outputs, "
                                          f"not {n_out}")
        max_rows = self.limits.max_elements
        if stmt.rows_file is None:
            rows = [(r.inputs, r.outputs, r.line, r.column,
                     lambda m, r=r: error_at(r, m)) for r in stmt.rows]
            data = tables.build(rows, width, n_out, max_rows)
        else:
            base = Path(self.program.file).parent if self.program.file else Path(".")
            try:
                data = tables.read_rows_file(base / stmt.rows_file, width, n_out, max_rows,
                                             max_bytes=max_rows * (width + n_out + 16))
            except SupError as err:
                if err.file is None:     # the file as a whole: point at its name in the .sup
                    err.line, err.column = self._rows_file_position(stmt)
                raise
        first = self.builder.next_id
        self.builder.next_id += n_out
        key = f"table:{stmt.name}"
        self.graph.add_node(key, **{
            KIND: TABLE, LABEL: stmt.name, NAME: stmt.name, OUT_NAME: stmt.out_name,
            FIRST: first, COUNT: n_out, INPUTS: inputs, KEYS: data.keys,
            VALUES: data.values, CARE: data.care, DEFAULT_VALUES: data.default_values,
            DEFAULT_CARE: data.default_care, LINE: stmt.line, COLUMN: stmt.column})
        add_reference_edges(self.graph, self.signal_nodes, self.node_firsts, key, inputs)
        self.signal_nodes.append(key)
        self.node_firsts.append(first)
        self.tables.add(stmt.name)
        fam = Family("output", stmt.out_name, np.arange(n_out, dtype=np.int64)[:, None],
                     np.arange(first, first + n_out, dtype=np.int64), shape=(n_out,),
                     line=stmt.line)
        self.families[stmt.out_name] = fam
        self._add_named_node(fam, stmt)

    def _rows_file_position(self, stmt: ast.TableStmt) -> tuple[int, int]:
        """(line, column) of the quoted rows-file name of a table statement."""
        lines = (self.program.source or "").split("\n")
        quoted = f'"{stmt.rows_file}"'
        for number in range(stmt.line - 1, len(lines)):
            start = stmt.column - 1 if number == stmt.line - 1 else 0
            found = lines[number].find(quoted, start)
            if found >= 0:
                return number + 1, found + 1
        return stmt.line, stmt.column

    def _table_ref(self, ref: ast.TableRef) -> np.ndarray:
        fam = self._family(ref.name, ref)
        if ref.start is None:
            return self._scalar_member(fam, ref)[None]
        start = self._scalar_int(ref.start, "a table input index")
        stop = start + 1 if ref.stop is None else self._scalar_int(ref.stop, "a slice end")
        if stop <= start:
            raise error_at(ref, f"the slice {ref.name}[{start}..{stop}] is empty: a slice a..b "
                                f"takes a, a+1, ..., b-1")
        if stop - start > self.limits.max_table_width:
            raise error_at(ref, f"the slice has {stop - start} bits, more than a table can take "
                                f"({self.limits.max_table_width})")
        idx = np.arange(start, stop, dtype=np.int64)[:, None]
        return self._members(fam, idx, ref)

    # ================================================================ generators

    def expand(self, ctx: Context, clause: ast.ForClause):
        """All combinations of the clause's generators for every row of ctx, filtered.

        Returns (new context, parent) where parent[i] is the row of ctx that row i came from
        (non-decreasing).
        """
        parent = np.arange(ctx.length, dtype=np.int64)
        for gen in clause.generators:
            for k, var in enumerate(gen.names):
                if var in gen.names[:k]:
                    raise error_at(gen, f"loop variable '{var}' appears twice in ({', '.join(gen.names)})")
                self._check_loop_name(var, gen, ctx)
            if gen.stop is not None:
                ctx, step = self._expand_range(ctx, gen)
            else:
                ctx, step = self._expand_iter(ctx, gen)
            parent = parent[step]
        if clause.condition is not None:
            keep = self.as_cond(self.eval(clause.condition, ctx), clause.condition).full(ctx.length)
            rows = np.flatnonzero(keep)
            ctx, parent = ctx.select(rows), parent[rows]
        return ctx, parent

    def _check_loop_name(self, var: str, gen, ctx: Context) -> None:
        if var in ctx.vars:
            raise error_at(gen, f"loop variable '{var}' is already used by an enclosing generator")
        if var in self.defined_at:
            raise error_at(gen, f"loop variable '{var}' has the name of something defined at line "
                                f"{self.defined_at[var][1]}; choose another name")

    def _grow(self, ctx: Context, lengths: np.ndarray, gen) -> tuple[np.ndarray, np.ndarray]:
        total = int(lengths.sum(dtype=np.float64)) if len(lengths) else 0
        if total > self.limits.max_elements:
            raise error_at(gen, f"this generator makes {total} combinations, more than the limit "
                                f"of {self.limits.max_elements} (raise it with --max-elements)")
        _check_memory(gen, total, f"this generator makes {total:,} combinations")
        step = np.repeat(np.arange(ctx.length, dtype=np.int64), lengths)
        offsets = csr.offsets_from_lengths(lengths)
        within = np.arange(total, dtype=np.int64) - offsets[step]
        return step, within

    def _expand_range(self, ctx: Context, gen: ast.Generator):
        if len(gen.names) != 1:
            raise error_at(gen, "a range gives integers; unpacking needs an array of tuples")
        use = "a range A..B needs integers"
        start = self.as_ints(self.eval(gen.start, ctx), gen.start, use).full(ctx.length)
        stop = self.as_ints(self.eval(gen.stop, ctx), gen.stop, use).full(ctx.length)
        lengths = np.maximum(stop - start, 0).astype(np.int64)
        step, within = self._grow(ctx, lengths, gen)
        new = ctx.select(step)
        new.vars[gen.names[0]] = start[step] + within
        return new, step

    def _expand_iter(self, ctx: Context, gen: ast.Generator):
        value = self.eval(gen.start, ctx)
        if not isinstance(value, Array):
            raise error_at(gen.start, f"'for ... in' needs a range A..B or a constant array, "
                                      f"not {kind_name(value)}")
        arr = value.v
        width = 1 if arr.ndim == 1 else arr.shape[1]
        if arr.ndim == 1 and len(gen.names) != 1:
            raise error_at(gen, f"the array holds integers; it cannot be unpacked into "
                                f"({', '.join(gen.names)})")
        if arr.ndim == 2 and len(gen.names) != width:
            raise error_at(gen, f"the array holds tuples of {width}; unpack them into {width} "
                                f"names, like for ({', '.join('abcdefgh'[:width])}) in ...")
        lengths = np.full(ctx.length, len(arr), dtype=np.int64)
        step, within = self._grow(ctx, lengths, gen)
        new = ctx.select(step)
        if arr.ndim == 1:
            new.vars[gen.names[0]] = arr[within]
        else:
            for j, var in enumerate(gen.names):
                new.vars[var] = arr[within, j]
        return new, step

    # ================================================================ expressions

    def eval(self, node, ctx: Context, allow_const_calls: bool = False):
        """The value of expression `node` for every row of ctx."""
        if isinstance(node, ast.Call):
            return self._eval_Call(node, ctx, allow_const_calls)
        return getattr(self, "_eval_" + type(node).__name__)(node, ctx)

    def _eval_IntLit(self, node, ctx):
        return Ints(np.int64(node.value) if node.value < INT_LIMIT else self._too_big(node))

    def _too_big(self, node):
        raise error_at(node, f"integer too large (the limit is {INT_LIMIT})")

    def _eval_Name(self, node: ast.Name, ctx: Context):
        if node.name in ctx.vars:
            return Ints(ctx.vars[node.name])
        self._check_visible(node.name, node)
        if node.name in self.consts:
            return self.consts[node.name]
        if node.name in self.families:
            fam = self.families[node.name]
            if fam.dims != 0:
                raise error_at(node, f"'{node.name}' is a family of {fam.count} signals; "
                                     f"pick one with an index, like {node.name}[...]")
            return Sigs(np.full(ctx.length, fam.drivers[0], dtype=np.int64))
        if node.name in self.tables:
            raise error_at(node, f"'{node.name}' is a table; use the signals of its outputs")
        raise error_at(node, f"'{node.name}' is not defined")  # unreachable after _check_visible

    def _check_visible(self, name: str, node) -> None:
        """A name may be used only in statements after the one defining it."""
        if name not in self.defined_at:
            close = difflib.get_close_matches(name, list(self.defined_at), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise error_at(node, f"'{name}' is not defined{hint}")
        number, line = self.defined_at[name]
        if number == self.current:
            raise error_at(node, f"'{name}' cannot be used in its own definition")
        if number > self.current:
            raise error_at(node, f"'{name}' is used before its definition at line {line}")

    def _family(self, name: str, node) -> Family:
        self._check_visible(name, node)
        if name not in self.families:
            what = "a constant" if name in self.consts else "a table"
            raise error_at(node, f"'{name}' is {what}, not a signal")
        return self.families[name]

    def _eval_Index(self, node: ast.Index, ctx: Context):
        base = node.base
        if isinstance(base, ast.Name) and base.name not in ctx.vars and base.name in self.families:
            self._check_visible(base.name, base)
            fam = self.families[base.name]
            idx = np.stack([self.as_ints(self.eval(e, ctx), e, "an index must be an integer")
                            .full(ctx.length) for e in node.indices], axis=1)
            if fam.dims == 0:
                raise error_at(node, f"'{fam.name}' is a single signal; it takes no index")
            if idx.shape[1] != fam.dims:
                raise error_at(node, f"'{fam.name}' takes {fam.dims} "
                                     f"{'index' if fam.dims == 1 else 'indices'}, not {idx.shape[1]}")
            return Sigs(self._members(fam, idx, node, ctx))
        value = self.eval(base, ctx)
        for e in node.indices:
            value = self._index_value(value, self.as_ints(self.eval(e, ctx), e,
                                                          "an index must be an integer"), node, ctx)
        return value

    def _members(self, fam: Family, idx: np.ndarray, node, ctx: Context | None = None) -> np.ndarray:
        # an empty family (a generator over an empty range) has no member to locate
        pos = fam.locate(idx) if fam.count else np.full(len(idx), -1, dtype=np.int64)
        bad = np.flatnonzero(pos < 0)
        if len(bad):
            where = ", ".join(str(int(i)) for i in idx[bad[0]])
            loop = _loop_values(ctx, int(bad[0]))
            if fam.shape is not None:
                raise error_at(node, f"{fam.name}[{where}] is out of range, {fam.name} is declared "
                                     f"as {fam.name}[{', '.join(map(str, fam.shape))}]{loop}")
            if not fam.count:
                raise error_at(node, f"{fam.name}[{where}] is not defined: the {fam.kind} family "
                                     f"'{fam.name}' of line {fam.line} has no members{loop}")
            raise error_at(node, f"{fam.name}[{where}] is not defined: the {fam.kind} family "
                                 f"'{fam.name}' of line {fam.line} has no member with this index{loop}")
        return fam.drivers[pos]

    def _scalar_member(self, fam: Family, node) -> np.ndarray:
        if fam.dims != 0:
            raise error_at(node, f"'{fam.name}' is a family; pick one signal with an index "
                                 f"or a slice {fam.name}[a..b]")
        return fam.drivers[0]

    def _index_value(self, value, index: Ints, node, ctx: Context):
        if isinstance(value, Array):
            arr = value.v
            i = index.full(ctx.length)
            bad = np.flatnonzero((i < 0) | (i >= len(arr)))
            if len(bad):
                name = f"'{node.base.name}', " if isinstance(node.base, ast.Name) else ""
                raise error_at(node, f"index {int(i[bad[0]])} is out of range for {name}an array "
                                     f"of {len(arr)} elements{_loop_values(ctx, int(bad[0]))}")
            return Ints(arr[i]) if arr.ndim == 1 else Rows(arr[i])
        if isinstance(value, Rows):
            i = index.full(ctx.length)
            width = value.v.shape[1]
            bad = np.flatnonzero((i < 0) | (i >= width))
            if len(bad):
                raise error_at(node, f"index {int(i[bad[0]])} is out of range for a tuple of "
                                     f"{width} elements{_loop_values(ctx, int(bad[0]))}")
            return Ints(value.v[np.arange(ctx.length), i])
        raise error_at(node, f"only signal families and constant arrays can be indexed, "
                             f"not {kind_name(value)}")

    def _eval_Unary(self, node: ast.Unary, ctx: Context):
        value = self.eval(node.operand, ctx)
        if node.op == "!":
            self._signals_allowed(node)
            return Sigs(self.builder.negate(self.as_sigs(value, node.operand, ctx.length)))
        if node.op == "not":
            return Cond(~self.as_cond(value, node.operand, "not").full(ctx.length))
        v = self.as_ints(value, node.operand, f"arithmetic ('{node.op}') needs integers").v
        return Ints(-v if node.op == "-" else v)

    def _eval_Chain(self, node: ast.Chain, ctx: Context):
        operands = self._flatten(node)
        if node.op in ("and", "or"):
            # short-circuit like Python, row by row: an operand is evaluated only on the rows
            # its left neighbours leave undecided, so `i != 0 and 12 % i == 0` is safe. (It is
            # still evaluated, on no rows, when none are left, so type errors always show.)
            stop_at = node.op == "or"           # the value that decides the chain
            result = np.full(ctx.length, not stop_at)
            undecided = np.arange(ctx.length, dtype=np.int64)
            for o in operands:
                sub = ctx if len(undecided) == ctx.length else ctx.select(undecided)
                value = self.as_cond(self.eval(o, sub), o, node.op).full(sub.length)
                decided = value == stop_at
                result[undecided[decided]] = stop_at
                undecided = undecided[~decided]
            return Cond(result)
        self._signals_allowed(node)
        sigs = [self.as_sigs(self.eval(o, ctx), o, ctx.length) for o in operands]
        op = {"&": "and", "|": "or", "^": "xor"}[node.op]
        self.builder.pos = (node.line, node.column)
        flat = np.stack(sigs, axis=1).ravel()
        return Sigs(self.builder.make(op, csr.uniform(ctx.length, len(sigs)), flat))

    @staticmethod
    def _flatten(node: ast.Chain) -> list:
        """Operands of a chain, with same-operator sub-chains (from parentheses) spliced in."""
        out, stack = [], list(reversed(node.operands))
        while stack:
            item = stack.pop()
            if isinstance(item, ast.Chain) and item.op == node.op:
                stack.extend(reversed(item.operands))
            else:
                out.append(item)
        return out

    def _eval_Arith(self, node: ast.Arith, ctx: Context):
        use = f"arithmetic ('{node.ops[0]}') needs integers"
        value = self.as_ints(self.eval(node.operands[0], ctx), node.operands[0], use).v
        for op, operand in zip(node.ops, node.operands[1:]):
            right = self.as_ints(self.eval(operand, ctx), operand,
                                 f"arithmetic ('{op}') needs integers").v
            value = self._arith(op, value, right, operand, ctx)
        return Ints(value)

    def _arith(self, op: str, a, b, node, ctx: Context | None = None):
        """a op b for int64 values of magnitude below INT_LIMIT (2**62), which every integer
        value keeps: a result outside that range is an error, not a wrap-around."""
        if op in "+-":
            result = a + b if op == "+" else a - b      # below 2**63: no int64 wrap-around
        elif op == "*":
            estimate = np.abs(np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64))
            if float(np.max(estimate, initial=0)) >= INT_LIMIT / 2:   # exactly, when near
                exact = np.asarray(a).astype(object) * np.asarray(b).astype(object)
                if np.any(np.abs(exact) >= INT_LIMIT):
                    self._overflow(op, node)
            result = a * b
        else:
            zero = np.flatnonzero(np.asarray(b).reshape(-1) == 0)
            if len(zero):
                loop = _loop_values(ctx, int(zero[0])) if np.ndim(b) else ""
                raise error_at(node, ("division by zero" if op == "/" else "modulo by zero") + loop)
            return a // b if op == "/" else a % b
        if np.any(np.abs(result) >= INT_LIMIT):
            self._overflow(op, node)
        return result

    @staticmethod
    def _overflow(op: str, node):
        verb = {"+": "adding", "-": "subtracting", "*": "multiplying by"}[op]
        raise error_at(node, f"integer overflow: {verb} this value goes beyond the limit of "
                             f"+-{INT_LIMIT} (2**62)")

    def _eval_Compare(self, node: ast.Compare, ctx: Context):
        use = f"a comparison ('{node.op}') needs integers"
        a = self.as_ints(self.eval(node.left, ctx), node.left, use).v
        b = self.as_ints(self.eval(node.right, ctx), node.right, use).v
        ops = {"<": np.less, "<=": np.less_equal, "==": np.equal, "!=": np.not_equal,
               ">=": np.greater_equal, ">": np.greater}
        return Cond(ops[node.op](a, b))

    def _eval_TupleLit(self, node, ctx):
        raise error_at(node, "a tuple can only appear inside a constant array, like [(0, 1), (2, 3)]")

    def _eval_ArrayLit(self, node: ast.ArrayLit, ctx: Context):
        if ctx.vars:
            raise error_at(node, "array literals can only define constants: const L = [...];")
        if len(node.items) > self.limits.max_elements:
            raise error_at(node, f"the array has more than {self.limits.max_elements} elements")
        if not node.items:
            return Array(np.zeros(0, dtype=np.int64))
        if all(isinstance(item, ast.TupleLit) for item in node.items):
            width = len(node.items[0].items)
            for item in node.items:
                if len(item.items) != width:
                    raise error_at(item, f"every tuple of the array must have {width} elements, "
                                         f"this one has {len(item.items)}")
            for item in node.items:
                for x in item.items:
                    if isinstance(x, ast.TupleLit):
                        raise error_at(x, "the tuples of an array hold integers, not tuples")
            rows = [[self._scalar_int(x, "an array element") for x in item.items]
                    for item in node.items]
            return Array(np.array(rows, dtype=np.int64).reshape(len(rows), width))
        for item in node.items:
            if isinstance(item, ast.TupleLit) != isinstance(node.items[0], ast.TupleLit):
                raise error_at(item, "an array holds either integers or tuples, not both")
        return Array(np.array([self._scalar_int(x, "an array element") for x in node.items],
                              dtype=np.int64))

    # ---------------------------------------------------------------- calls

    def _eval_Call(self, node: ast.Call, ctx: Context, allow_const_calls: bool = False):
        func = node.func
        if func in CONST_FUNCTIONS:
            if not allow_const_calls:
                raise error_at(node, f"{func}(...) can only define a constant, like "
                                     f"const P = {func}(...);")
            return self._const_call(node)
        if func not in SIGNAL_FUNCTIONS:
            close = difflib.get_close_matches(func, SIGNAL_FUNCTIONS + CONST_FUNCTIONS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise error_at(node, f"unknown function '{func}'{hint}; the functions are "
                                 f"{', '.join(SIGNAL_FUNCTIONS + CONST_FUNCTIONS)}")
        self._signals_allowed(node)
        if node.kwargs:
            raise error_at(node.kwargs[0][2], f"{func}(...) takes no keyword arguments")
        args = list(node.args)
        k = None
        if func in ("atleast", "atmost", "exactly"):
            if not args:
                raise error_at(node, f"{func}(K, ...) needs the count K first")
            if node.generator is not None and len(args) == 1:
                raise error_at(node, f"{func}(K, ...) needs the count K first, then the signals: "
                                     f"{func}(K, x[i] for i in ...)")
            k_value = self.eval(args[0], ctx)
            if not isinstance(k_value, Ints):
                raise error_at(args[0], f"{func}(K, ...) needs the count K first: an integer, "
                                        f"not {kind_name(k_value)}")
            k = k_value.full(ctx.length)
            if k.size and int(k.min()) < 0:
                raise error_at(args[0], f"{func}(K, ...) needs a count K >= 0, not "
                                        f"{int(k.min())}")
            args = args[1:]
        if func == "maj" and not args and node.generator is None:
            raise error_at(node, "maj(...) needs at least one signal (the majority of no "
                                 "arguments is not defined)")
        if func == "ite":
            if node.generator is not None or len(args) != 3:
                raise error_at(node, f"ite(c, t, e) takes 3 arguments, not "
                                     f"{'a generator' if node.generator else len(args)}")
        offsets, operands = self._call_operands(node, args, ctx)
        self.builder.pos = (node.line, node.column)
        if func == "maj":
            return Sigs(self.builder.make("atleast", offsets, operands, csr.lengths(offsets) // 2 + 1))
        return Sigs(self.builder.make(func, offsets, operands, k))

    def _call_operands(self, node: ast.Call, args: list, ctx: Context):
        """CSR operands per row of ctx: the positional signals, the last one expanded by the
        call's generator when there is one."""
        if node.generator is None:
            fixed = [self.as_sigs(self.eval(a, ctx), a, ctx.length) for a in args]
            flat = np.stack(fixed, axis=1).ravel() if fixed else np.zeros(0, np.int64)
            return csr.uniform(ctx.length, len(fixed)), flat
        *head, element = args
        fixed = [self.as_sigs(self.eval(a, ctx), a, ctx.length) for a in head]
        sub, parent = self.expand(ctx, node.generator)
        elems = self.as_sigs(self.eval(element, sub), element, sub.length)
        gen_len = np.bincount(parent, minlength=ctx.length).astype(np.int64)
        offsets = csr.offsets_from_lengths(gen_len + len(fixed))
        flat = np.empty(offsets[-1], dtype=np.int64)
        if fixed:
            slots = (offsets[:-1, None] + np.arange(len(fixed))).ravel()
            flat[slots] = np.stack(fixed, axis=1).ravel()
        within = np.arange(sub.length, dtype=np.int64) - csr.offsets_from_lengths(gen_len)[parent]
        flat[offsets[parent] + len(fixed) + within] = elems
        return offsets, flat

    def _const_call(self, node: ast.Call):
        kwargs = {}
        for name, value, where in node.kwargs:
            if name in kwargs:
                raise error_at(where, f"the keyword '{name}' is given twice")
            kwargs[name] = (value, where)
        for name, (_, where) in kwargs.items():
            if name != "seed":
                raise error_at(where, f"{node.func}(...) takes only the keyword 'seed'")
        if node.generator is not None:
            raise error_at(node.generator, f"{node.func}(...) takes no generator")
        seed = self._scalar_int(kwargs["seed"][0], "the seed") if "seed" in kwargs else 0
        expected = 2 if node.func == "pairs" else 1
        if len(node.args) != expected:
            usage = "pairs(N, COUNT, seed=S)" if node.func == "pairs" else "perm(N, seed=S)"
            raise error_at(node, f"{usage} takes {expected} positional argument"
                                 f"{'s' if expected > 1 else ''}, not {len(node.args)}")
        n = self._scalar_int(node.args[0], "N")
        if n < 0:
            raise error_at(node.args[0], f"N must be 0 or more, not {n}")
        if node.func == "pairs" and pair_count(n) >= INT_LIMIT:
            raise error_at(node.args[0], f"N = {n} is too large for pairs: it has more than "
                                         f"2**62 pairs")
        if node.func == "perm":
            if n > self.limits.max_elements:
                raise error_at(node, f"perm of {n} elements is more than the limit of "
                                     f"{self.limits.max_elements} (raise it with --max-elements)")
            return Array(perm(n, seed))
        count = self._scalar_int(node.args[1], "COUNT")
        if count < 0 or count > pair_count(n):
            raise error_at(node.args[1], f"COUNT must be between 0 and {pair_count(n)} "
                                         f"(the number of pairs of {n}), not {count}")
        if count > self.limits.max_elements or (4 * count >= pair_count(n)
                                                and pair_count(n) > 4 * self.limits.max_elements):
            raise error_at(node, f"{count} pairs are more than the limit of "
                                 f"{self.limits.max_elements} (raise it with --max-elements)")
        return Array(pairs(n, count, seed))

    # ================================================================ coercions

    def _scalar_int(self, node, what: str) -> int:
        value = self.as_ints(self.eval(node, Context.single()), node)
        return int(value.full(1)[0])

    def as_ints(self, value, node, use: str | None = None) -> Ints:
        """value as integers; `use` says what needs them (`an index must be an integer`)."""
        if isinstance(value, Ints):
            return value
        if use is not None:
            hint = ("; combine signals with & | ^ ! instead"
                    if isinstance(value, Sigs) and use.startswith("arithmetic") else "")
            raise error_at(node, f"{use}, not {kind_name(value)}{hint}")
        raise error_at(node, f"expected an integer here, not {kind_name(value)}")

    def as_cond(self, value, node, op: str | None = None) -> Cond:
        """value as a compile-time condition; `op` is the 'and' / 'or' / 'not' needing it."""
        if isinstance(value, Cond):
            return value
        if isinstance(value, Ints):
            return Cond(np.asarray(value.v) != 0)
        if isinstance(value, Sigs) and op is not None:
            symbol = {"and": "&", "or": "|", "not": "!"}[op]
            verb = "negates" if op == "not" else "combines"
            raise error_at(node, f"'{op}' {verb} compile-time conditions, not signals; "
                                 f"for signals use '{symbol}'")
        if isinstance(value, Sigs):
            raise error_at(node, "conditions are decided at compile time; signals cannot be used "
                                 "in them (use & | ! to combine signals)")
        raise error_at(node, f"expected a condition here, not {kind_name(value)}")

    def _signals_allowed(self, node) -> None:
        """Signal operators need the gate builder, which exists once the inputs are known:
        the constants, input sizes and sparsity (elaborated before) are integers only."""
        if self.builder is None:
            raise error_at(node, "signal operations cannot appear here: constants, input sizes "
                                 "and the sparsity are integers known at compile time")

    def as_sigs(self, value, node, length: int) -> np.ndarray:
        self._signals_allowed(node)
        if isinstance(value, Sigs):
            return value.v
        if isinstance(value, Ints):
            v = value.full(length)
            bad = np.flatnonzero((v != 0) & (v != 1))
            if len(bad):
                raise error_at(node, f"expected a signal, 0 or 1 here, not the integer {int(v[bad[0]])}")
            return self.builder.constant(v)
        if isinstance(value, Cond):
            raise error_at(node, "'and', 'or', 'not' and comparisons make compile-time conditions; "
                                 "for signals use &, |, ! or and(...), or(...)")
        raise error_at(node, f"expected a signal here, not {kind_name(value)}")
