"""An independent brute-force reference for the .sup language (shared/sup-language.md).

A plain-Python interpreter of the syntax tree that `dsl.parser.parse` builds. It uses no numpy
and none of dsl.elaborate / dsl.gates / dsl.nodes / dsl.semantics; only the reproducible
constants `pairs` / `perm` come from dsl.constants (they *define* those values).

It works in two stages, both straight from the language page:

1. `Oracle(text)` runs the input-independent part once: constants, input declarations, the
   expansion of every generator (half-open ranges, arrays, tuple unpacking, nesting left to
   right, trailing `if`), index arithmetic (floor `/` and `%`), array look-ups. Each member of
   each wire / output family becomes a small *residual* boolean expression (nested tuples)
   over named signal members (`a`, `x[3]`, `w[1,2]`, `q[0]`) and the constants 0/1.
   Nothing is folded, simplified or shared.
2. `Oracle.run(active)` evaluates, for ONE input assignment, every signal member in statement
   order and returns the outputs (0, 1, or None for don't care) in declaration order.

Don't care follows the ternary rule of dsl/semantics.py, applied to the expressions as written:
a gate is known when its known operands decide it (0 & X = 0, atleast(2, 1, 1, X) = 1,
ite(X, 1, 1) = 1), and a table with an unknown input bit gives unknown on all its outputs.

`Oracle.possible(active)` gives instead, for every output, the set of values it takes over all
ways of filling in the tables' don't-care bits (each table is one fixed function, so e.g.
`t ^ t` is always 0). Any correct simplification of the circuit lies between the two: where
`run` knows a value, it must be that value; where a simplified circuit knows a value v,
`possible` must be {v}.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from dsl import ast
from dsl.constants import pairs as _pairs, perm as _perm
from dsl.parser import parse

X = None  # the don't-care value


class OracleError(Exception):
    """The program is not valid (the oracle is only meant for valid programs)."""


class _Arr:
    """A constant array: a list of ints or of tuples of ints."""

    def __init__(self, items):
        self.items = list(items)


class _Sig:
    """A signal-valued expression: a residual tree (see module docstring)."""

    def __init__(self, tree):
        self.tree = tree


class _Family:
    def __init__(self, kind, name, dims):
        self.kind, self.name, self.dims = kind, name, dims
        self.members = {}   # index tuple -> member name
        self.order = []     # index tuples in definition order

    def add(self, index):
        if index in self.members:
            raise OracleError(f"{self.name}{list(index)} defined twice")
        self.members[index] = member(self.name, index)
        self.order.append(index)


class _NeedChoice(Exception):
    def __init__(self, key):
        self.key = key


def member(name, index) -> str:
    return name if len(index) == 0 else f"{name}[{','.join(str(i) for i in index)}]"


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class Oracle:
    """Reference interpreter of one program (text, or a parsed `dsl.ast.Program`)."""

    def __init__(self, program, file=None):
        if isinstance(program, str):
            program = parse(program, file)
        self.file = program.file
        self.consts = {}
        self.families = {}
        self.input_names = []          # in declaration order (= feature ids)
        self.output_names = []         # in declaration order, members in generator order
        self.sparsity = None
        self.name = None
        self.steps = []                # ("sig", [(member name, tree)]) / ("table", ...)
        for stmt in program.statements:
            getattr(self, "_stmt_" + type(stmt).__name__)(stmt)

    # ================================================================ stage 1: statements

    def _stmt_CircuitStmt(self, stmt):
        self.name = stmt.name

    def _stmt_SparsityStmt(self, stmt):
        self.sparsity = self._int(stmt.value, {})

    def _stmt_ConstStmt(self, stmt):
        value = self._eval(stmt.value, {}, const=True)
        if not (_is_int(value) or isinstance(value, _Arr)):
            raise OracleError("a constant must be an integer or an array")
        self.consts[stmt.name] = value

    def _stmt_InputStmt(self, stmt):
        for decl in stmt.decls:
            shape = [self._int(d, {}) for d in decl.dims]
            fam = _Family("input", decl.name, len(shape))
            for index in itertools.product(*[range(s) for s in shape]):  # row-major
                fam.add(tuple(index))
                self.input_names.append(fam.members[tuple(index)])
            self.families[decl.name] = fam

    def _stmt_SignalStmt(self, stmt):
        envs = self._expand(stmt.clause, {}) if stmt.clause is not None else [{}]
        fam = _Family(stmt.kind, stmt.name, 0 if stmt.indices is None else len(stmt.indices))
        members = []
        for env in envs:
            tree = self._sig(self._eval(stmt.value, env))
            index = () if stmt.indices is None else tuple(self._int(e, env) for e in stmt.indices)
            fam.add(index)
            members.append((fam.members[index], tree))
        self.families[stmt.name] = fam
        self.steps.append(("sig", members))
        if stmt.kind == "output":
            self.output_names.extend(name for name, _ in members)

    def _stmt_TableStmt(self, stmt):
        bits = []
        for ref in stmt.refs:
            fam = self._fam(ref.name)
            if ref.start is None:
                if fam.dims != 0:
                    raise OracleError("a family as a table input needs an index")
                bits.append(fam.members[()])
                continue
            lo = self._int(ref.start, {})
            hi = lo + 1 if ref.stop is None else self._int(ref.stop, {})
            for i in range(lo, hi):
                if (i,) not in fam.members:
                    raise OracleError(f"{ref.name}[{i}] is not defined")
                bits.append(fam.members[(i,)])
        n_out = self._int(stmt.out_size, {})
        if stmt.rows_file is None:
            raw = [(r.inputs, r.outputs) for r in stmt.rows]
        else:
            base = Path(self.file).parent if self.file else Path(".")
            raw = _read_rows_file(base / stmt.rows_file)
        rows, default = {}, "0" * n_out
        for inputs, outputs in raw:
            if outputs == "*":
                outputs = "*" * n_out
            if len(outputs) != n_out:
                raise OracleError("a row of the wrong output width")
            if inputs is None:
                default = outputs
                continue
            if len(inputs) != len(bits) or set(inputs) - set("01"):
                raise OracleError("a row of the wrong input width")
            key = sum(1 << i for i, ch in enumerate(inputs) if ch == "1")  # leftmost = bit 0
            if key in rows:
                raise OracleError("two rows with the same input")
            rows[key] = outputs
        fam = _Family("output", stmt.out_name, 1)
        for j in range(n_out):
            fam.add((j,))
        self.families[stmt.out_name] = fam
        outs = [fam.members[(j,)] for j in range(n_out)]
        self.steps.append(("table", stmt.name, bits, rows, default, outs))
        self.output_names.extend(outs)

    def _fam(self, name):
        if name not in self.families:
            raise OracleError(f"'{name}' is not a signal")
        return self.families[name]

    # ================================================================ stage 1: generators

    def _expand(self, clause, env):
        """All environments of a for-clause, in order, starting from `env`."""
        envs = [dict(env)]
        for gen in clause.generators:
            grown = []
            for e in envs:
                for var in gen.names:
                    if var in e:
                        raise OracleError(f"loop variable {var} reused")
                if gen.stop is not None:                        # for i in A..B
                    if len(gen.names) != 1:
                        raise OracleError("a range cannot be unpacked")
                    for i in range(self._int(gen.start, e), self._int(gen.stop, e)):
                        grown.append({**e, gen.names[0]: i})
                else:                                            # for v in L / (u, v) in P
                    arr = self._eval(gen.start, e)
                    if not isinstance(arr, _Arr):
                        raise OracleError("for ... in needs an array")
                    for item in arr.items:
                        if isinstance(item, tuple):
                            if len(item) != len(gen.names):
                                raise OracleError("wrong unpacking")
                            grown.append({**e, **dict(zip(gen.names, item))})
                        else:
                            if len(gen.names) != 1:
                                raise OracleError("cannot unpack an integer")
                            grown.append({**e, gen.names[0]: item})
            envs = grown
        if clause.condition is not None:
            envs = [e for e in envs if self._cond(clause.condition, e)]
        return envs

    # ================================================================ stage 1: expressions

    def _int(self, node, env) -> int:
        v = self._eval(node, env)
        if not _is_int(v):
            raise OracleError(f"expected an integer at {node.line}:{node.column}")
        return v

    def _cond(self, node, env) -> bool:
        v = self._eval(node, env)
        if isinstance(v, bool):
            return v
        if _is_int(v):
            return v != 0
        raise OracleError(f"expected a condition at {node.line}:{node.column}")

    @staticmethod
    def _sig(v):
        """A residual tree for a signal value; integers 0 and 1 are the constants."""
        if isinstance(v, _Sig):
            return v.tree
        if _is_int(v) and v in (0, 1):
            return ("c", v)
        raise OracleError(f"expected a signal, not {v!r}")

    def _eval(self, node, env, const=False):
        if isinstance(node, ast.IntLit):
            return node.value
        if isinstance(node, ast.Name):
            if node.name in env:
                return env[node.name]
            if node.name in self.consts:
                return self.consts[node.name]
            fam = self._fam(node.name)
            if fam.dims != 0:
                raise OracleError(f"'{node.name}' needs an index")
            return _Sig(("s", fam.members[()]))
        if isinstance(node, ast.Index):
            base = node.base
            if isinstance(base, ast.Name) and base.name not in env and base.name in self.families:
                fam = self.families[base.name]
                index = tuple(self._int(e, env) for e in node.indices)
                if len(index) != fam.dims or index not in fam.members:
                    raise OracleError(f"{base.name}{list(index)} is not defined")
                return _Sig(("s", fam.members[index]))
            value = self._eval(base, env)
            for e in node.indices:
                i = self._int(e, env)
                if isinstance(value, _Arr):
                    seq = value.items
                elif isinstance(value, tuple):
                    seq = value
                else:
                    raise OracleError("only arrays and tuples can be indexed")
                if not 0 <= i < len(seq):
                    raise OracleError("index out of range")
                value = seq[i]
            return value
        if isinstance(node, ast.Unary):
            v = self._eval(node.operand, env)
            if node.op == "!":
                return _Sig(("not", self._sig(v)))
            if node.op == "not":
                return not self._cond(node.operand, env)
            if not _is_int(v):
                raise OracleError("unary minus / plus on a non-integer")
            return -v if node.op == "-" else v
        if isinstance(node, ast.Chain):
            if node.op in ("and", "or"):   # short-circuit, like Python
                if node.op == "and":
                    return all(self._cond(o, env) for o in node.operands)
                return any(self._cond(o, env) for o in node.operands)
            trees = [self._sig(self._eval(o, env)) for o in node.operands]
            return _Sig(({"&": "and", "|": "or", "^": "xor"}[node.op], tuple(trees)))
        if isinstance(node, ast.Arith):
            value = self._int(node.operands[0], env)
            for op, operand in zip(node.ops, node.operands[1:]):
                right = self._int(operand, env)
                if op == "+":
                    value = value + right
                elif op == "-":
                    value = value - right
                elif op == "*":
                    value = value * right
                else:
                    if right == 0:
                        raise OracleError("division by zero")
                    value = value // right if op == "/" else value % right  # floor, like Python
            return value
        if isinstance(node, ast.Compare):
            a, b = self._int(node.left, env), self._int(node.right, env)
            return {"<": a < b, "<=": a <= b, "==": a == b, "!=": a != b, ">=": a >= b,
                    ">": a > b}[node.op]
        if isinstance(node, ast.Call):
            return self._call(node, env, const)
        if isinstance(node, ast.ArrayLit):
            if not const:
                raise OracleError("array literal outside a constant")
            items = []
            for item in node.items:
                if isinstance(item, ast.TupleLit):
                    items.append(tuple(self._int(x, env) for x in item.items))
                else:
                    items.append(self._int(item, env))
            return _Arr(items)
        raise OracleError(f"unexpected {type(node).__name__}")

    def _call(self, node, env, const):
        func = node.func
        if func in ("pairs", "perm"):
            if not const:
                raise OracleError(f"{func} outside a constant")
            kw = {name: self._int(value, env) for name, value, _ in node.kwargs}
            seed = kw.get("seed", 0)
            n = self._int(node.args[0], env)
            if func == "perm":
                return _Arr(int(v) for v in _perm(n, seed))
            count = self._int(node.args[1], env)
            return _Arr((int(u), int(v)) for u, v in _pairs(n, count, seed))
        args = list(node.args)
        k = None
        if func in ("atleast", "atmost", "exactly"):
            k = self._int(args[0], env)
            args = args[1:]
        if node.generator is None:
            trees = [self._sig(self._eval(a, env)) for a in args]
        else:  # the generator expands the LAST argument
            trees = [self._sig(self._eval(a, env)) for a in args[:-1]]
            for sub in self._expand(node.generator, env):
                trees.append(self._sig(self._eval(args[-1], sub)))
        trees = tuple(trees)
        if func in ("and", "or", "xor"):
            return _Sig((func, trees))
        if func == "maj":  # strict majority: more than half of the arguments are 1
            return _Sig(("maj", trees))
        if func in ("atleast", "atmost", "exactly"):
            return _Sig((func, k, trees))
        if func == "ite":
            if len(trees) != 3:
                raise OracleError("ite takes 3 arguments")
            return _Sig(("ite",) + trees)
        raise OracleError(f"unknown function {func}")

    # ================================================================ stage 2: one input

    def run(self, active, choices=None) -> list:
        """Outputs (0, 1 or None) for one input: `active` is a set (or any container) of the
        names of the input members that are 1, or a dict name -> 0/1."""
        values = self.signals(active, choices)
        return [values[name] for name in self.output_names]

    def signals(self, active, choices=None) -> dict:
        """Every named signal member's value for one input (see `run`)."""
        if isinstance(active, dict):
            on = {name for name, v in active.items() if v}
        else:
            on = set(active)
        unknown = on - set(self.input_names)
        if unknown:
            raise OracleError(f"not input features: {sorted(unknown)}")
        values = {name: int(name in on) for name in self.input_names}

        def ev(t):
            tag = t[0]
            if tag == "s":
                return values[t[1]]
            if tag == "c":
                return t[1]
            if tag == "not":
                v = ev(t[1])
                return None if v is None else 1 - v
            if tag == "ite":
                c, a, b = ev(t[1]), ev(t[2]), ev(t[3])
                if c == 1:
                    return a
                if c == 0:
                    return b
                return a if a == b else None    # None == None also gives None
            vals = [ev(a) for a in t[-1]]
            if tag == "and":
                return 0 if 0 in vals else (1 if all(v == 1 for v in vals) else None)
            if tag == "or":
                return 1 if 1 in vals else (0 if all(v == 0 for v in vals) else None)
            if tag == "xor":
                return None if None in vals else sum(vals) % 2
            lo = vals.count(1)                   # operands surely 1
            hi = lo + vals.count(None)           # operands possibly 1
            if tag == "maj":
                tag, k = "atleast", len(vals) // 2 + 1
            else:
                k = t[1]
            if tag == "atleast":
                return 1 if lo >= k else (0 if hi < k else None)
            if tag == "atmost":
                return 1 if hi <= k else (0 if lo > k else None)
            if tag == "exactly":
                return 1 if lo == hi == k else (0 if k < lo or k > hi else None)
            raise AssertionError(tag)

        for step in self.steps:
            if step[0] == "sig":
                for name, tree in step[1]:
                    values[name] = ev(tree)
                continue
            _, tname, bits, rows, default, outs = step
            ins = [values[b] for b in bits]
            if None in ins:
                for name in outs:
                    values[name] = None
                continue
            key = sum(v << i for i, v in enumerate(ins))
            row = rows.get(key, default)
            for j, (name, ch) in enumerate(zip(outs, row)):
                if ch != "*":
                    values[name] = int(ch)
                elif choices is None:
                    values[name] = None
                elif (tname, j) in choices:
                    values[name] = choices[(tname, j)]
                else:
                    raise _NeedChoice((tname, j))
        return values

    def possible(self, active) -> list:
        """For every output, the set of its values over all fillings of the tables' don't-care
        bits (each table a fixed function; one input, so one choice per table output bit)."""
        result = [set() for _ in self.output_names]

        def explore(choices):
            try:
                outs = self.run(active, choices)
            except _NeedChoice as need:
                for v in (0, 1):
                    explore({**choices, need.key: v})
                return
            for s, v in zip(result, outs):
                s.add(v)

        explore({})
        return result


def _read_rows_file(path: Path):
    """Rows of a rows file: `INPUTBITS OUTPUTBITS` or `default OUTPUTBITS`, # comments."""
    rows = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        fields = raw.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 2:
            raise OracleError(f"bad rows file line {raw!r}")
        rows.append((None if fields[0] == "default" else fields[0], fields[1]))
    return rows
