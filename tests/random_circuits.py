"""Random small .sup programs for differential tests (tests/test_semantics.py).

`random_circuit(seed)` returns `(text, files)`: the source text and a dict of rows files
(file name -> content) that tables of the text read with `from "NAME";` (write them next to
the .sup file). The same seed always gives the same program.

The programs are valid by construction: the generator knows every constant, every loop
variable's values (it expands the generators itself) and every defined family member, and only
writes an index expression after checking it is in range for every combination of the loop
variables in scope. They are small (at most 10 input features, at most a few hundred inputs in
the domain) and use every construct of the language: scalar and family inputs (1-D, sometimes
2-D), sparsity (sometimes), integer / array / tuple-array / pairs / perm constants, wires and
outputs, scalar and family statements with nested generators, `if` filters and arithmetic
indices, every operator (! ~ & ^ |) and function (and or xor maj atleast atmost exactly ite),
generators inside function arguments (nested, depending on outer loop variables), constants 0/1
inside expressions, repeated sub-expressions (sharing, x ^ x, x & !x), double negations, and
tables (inline or from files, slices, don't cares, default rows or none).
"""

from __future__ import annotations

import itertools
import math
import random
import re

from dsl.constants import pairs, perm

MAX_DOMAIN = 400
LOOP_VARS = ("i", "j", "u", "v", "r", "s", "p", "t", "e", "f")
FUNCS = ("and", "or", "xor", "maj", "atleast", "atmost", "exactly", "ite")


class _Bad(Exception):
    """An index expression is out of range for some combination."""


class _SafeArr:
    """A constant array for Python evaluation of index text: no negative indexing."""

    def __init__(self, items):
        self.items = [(_SafeArr(x) if isinstance(x, tuple) else x) for x in items]

    def __getitem__(self, i):
        if not 0 <= i < len(self.items):
            raise _Bad()
        return self.items[i]

    def __len__(self):
        return len(self.items)


class _Scope:
    """Loop variables in scope and every combination of their values (in generator order)."""

    def __init__(self, envs, names=()):
        self.envs = envs
        self.names = list(names)
        self.pool = []        # signal expression texts valid in this scope (for repeats)


def _binds(text):
    """Loop variable names a text may bind (conservative: every such word in it)."""
    return set(re.findall(r"\b[a-z]\b", text)) & set(LOOP_VARS)


def _domain_size(m, k):
    top = m if k is None else min(k, m)
    return sum(math.comb(m, j) for j in range(top + 1))


class _Gen:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.lines = []
        self.files = {}
        self.ns = {}             # constants for Python evaluation
        self.ints = {}           # integer constants
        self.arrays = {}         # name -> list of distinct ints
        self.tarrays = {}        # name -> list of distinct 2-tuples
        self.scalars = []        # scalar signal names
        self.fams = {}           # family name -> list of index tuples (generator order)
        self.one_d = []          # names of 1-D families with integer members (table refs)
        self.global_pool = []    # loop-variable-free signal expressions
        self.defined = []        # wires, outputs and table outputs, in definition order
        self.n_outputs = 0
        self.counter = itertools.count()
        self._compiled = {}

    # ------------------------------------------------------------------ helpers

    def chance(self, p):
        return self.rng.random() < p

    def fresh(self, prefix):
        return f"{prefix}{next(self.counter)}"

    def py(self, text, env):
        """Value of integer / condition text (sup syntax) in env; _Bad when out of range."""
        code = self._compiled.get(text)
        if code is None:
            code = compile(text.replace("/", "//"), "<idx>", "eval")
            self._compiled[text] = code
        try:
            return eval(code, {"__builtins__": {}}, {**self.ns, **env})
        except ZeroDivisionError:
            raise _Bad() from None

    def valid_everywhere(self, text, scope, ok):
        try:
            return all(ok(self.py(text, env)) for env in scope.envs)
        except _Bad:
            return False

    # ------------------------------------------------------------------ declarations

    def declare(self):
        rng = self.rng
        n_scalar = rng.randint(0, 3)
        scal = ["a", "b", "c"][:n_scalar]
        nx = rng.randint(2, 8)
        decls = list(scal) + [f"x[{nx}]"]
        m = n_scalar + nx
        use_g = m + 4 <= 10 and self.chance(0.2)
        if use_g:
            decls.append("g[2, 2]")
            m += 4
        rng.shuffle(decls)
        if len(decls) > 1 and self.chance(0.3):   # two input statements
            cut = rng.randint(1, len(decls) - 1)
            self.lines.append(f"input {', '.join(decls[:cut])};")
            self.lines.append(f"input {', '.join(decls[cut:])};")
        else:
            self.lines.append(f"input {', '.join(decls)};")
        self.scalars.extend(scal)
        self.fams["x"] = [(i,) for i in range(nx)]
        self.one_d.append("x")
        if use_g:
            self.fams["g"] = [(i, j) for i in range(2) for j in range(2)]
        # sparsity: always when the full cube would be too large, sometimes otherwise
        if _domain_size(m, None) > MAX_DOMAIN or self.chance(0.4):
            ks = [k for k in range(0, m + 3) if _domain_size(m, k) <= MAX_DOMAIN]
            k = rng.choice(ks[-3:]) if not self.chance(0.1) else rng.choice(ks)
            self.lines.append(f"sparsity {k};")
        # constants
        a = rng.randint(0, nx)
        self.lines.append(rng.choice([f"const N = {nx};", f"const N = {a} + {nx - a};",
                                      f"const N = 2 * {nx} - {nx};"]))
        self.ns["N"] = self.ints["N"] = nx
        if self.chance(0.5):
            self.lines.append(f"const H = N / 2 + N % 2;")
            self.ns["H"] = self.ints["H"] = nx // 2 + nx % 2
        if self.chance(0.6):
            items = rng.sample(range(nx), rng.randint(1, min(4, nx)))
            self.lines.append(f"const L = [{', '.join(map(str, items))}];")
            self.arrays["L"] = items
        if self.chance(0.5):
            allp = [(u, v) for u in range(nx) for v in range(nx) if u != v]
            items = rng.sample(allp, rng.randint(1, min(4, len(allp))))
            self.lines.append("const T = [" + ", ".join(f"({u}, {v})" for u, v in items) + "];")
            self.tarrays["T"] = items
        if self.chance(0.6):
            count = rng.randint(1, min(6, nx * (nx - 1) // 2))
            seed = rng.randint(0, 99)
            self.lines.append(f"const P = pairs(N, {count}, seed={seed});")
            self.tarrays["P"] = [(int(u), int(v)) for u, v in pairs(nx, count, seed)]
        if self.chance(0.5):
            seed = rng.randint(0, 99)
            self.lines.append(f"const Q = perm(N, seed={seed});")
            self.arrays["Q"] = [int(v) for v in perm(nx, seed)]
        for name, items in {**self.arrays, **self.tarrays}.items():
            self.ns[name] = _SafeArr(items)

    # ------------------------------------------------------------------ generators

    def clause(self, scope, used, inner=False):
        """A for-clause text (without the leading `for`) and its combinations.

        Returns (text, new_names, envs, parents) where envs are the combinations over all rows
        of scope (each extended) and parents[i] is the scope row of envs[i]."""
        rng = self.rng
        names = [n for n in LOOP_VARS if n not in used]
        outer = scope.names
        options = ["range"]
        if self.arrays:
            options.append("array")
        if self.tarrays:
            options.append("tuples")
        kind = rng.choice(options)
        gens, new = [], []
        if kind == "range":
            v = names.pop(0)
            new.append(v)
            lo, hi = rng.choice(self._range_bounds(outer, inner))
            gens.append((f"{v} in {lo}..{hi}", ("range", v, lo, hi)))
            if self.chance(0.35):      # a second, nested generator that may use the first
                w = names.pop(0)
                new.append(w)
                lo2, hi2 = rng.choice([(f"{v} + 1", "N"), ("0", v), ("0", "2"), (v, f"{v} + 2")])
                gens.append((f"{w} in {lo2}..{hi2}", ("range", w, lo2, hi2)))
        elif kind == "array":
            v = names.pop(0)
            new.append(v)
            arr = rng.choice(sorted(self.arrays))
            gens.append((f"{v} in {arr}", ("array", (v,), arr)))
        else:
            u, v = names.pop(0), names.pop(0)
            new.extend([u, v])
            arr = rng.choice(sorted(self.tarrays))
            gens.append((f"({u}, {v}) in {arr}", ("array", (u, v), arr)))
        cond = None
        if self.chance(0.3):
            cond = self._condition(new + outer)
        envs, parents = [], []
        for row, env in enumerate(scope.envs):
            for e in self._expand(env, [g[1] for g in gens]):
                if cond is None or self.py(cond, e):
                    envs.append(e)
                    parents.append(row)
        text = ", ".join(g[0] for g in gens) + ("" if cond is None else f" if {cond}")
        return text, new, envs, parents

    def _range_bounds(self, outer, inner):
        bounds = [("0", "N"), ("0", "N"), ("1", "N - 1"), ("0", "3"), ("2", "N")]
        if "H" in self.ints:
            bounds.append(("0", "H"))
        for v in outer:
            bounds += [(f"{v} + 1", "N"), ("0", v), (v, f"{v} + 3")]
        return bounds

    def _expand(self, env, gens):
        envs = [env]
        for g in gens:
            grown = []
            for e in envs:
                if g[0] == "range":
                    _, v, lo, hi = g
                    for i in range(self.py(lo, e), self.py(hi, e)):
                        grown.append({**e, v: i})
                else:
                    _, names, arr = g
                    source = self.arrays.get(arr) or self.tarrays.get(arr)
                    for item in source:
                        item = item if isinstance(item, tuple) else (item,)
                        grown.append({**e, **dict(zip(names, item))})
            envs = grown
        return envs

    def _condition(self, names):
        rng = self.rng
        v = rng.choice(names)
        w = rng.choice(names)
        atoms = [f"{v} != {w}", f"{v} % 2 == 0", f"{v} < {rng.randint(1, 5)}",
                 f"{v} - {w} <= 2", f"{v} >= 1", f"{v} + {w} > 3", f"{v} / 2 == 1"]
        c = rng.choice(atoms)
        if self.chance(0.3):
            c = f"{c} {rng.choice(['and', 'or'])} {rng.choice(atoms)}"
        if self.chance(0.15):
            c = f"not ({c})"
        return c

    # ------------------------------------------------------------------ indices

    def int_templates(self, scope):
        """Candidate integer index texts over the loop variables in scope."""
        rng = self.rng
        out = []
        for v in scope.names:
            c = rng.randint(1, 3)
            out += [v, v, f"{v} + {c}", f"{v} - {c}", f"({v} + {c}) % N", f"N - 1 - {v}",
                    f"{v} / 2", f"2 * {v}", f"({v} * 3 + 1) % N"]
            for arr in self.arrays:
                out += [f"{arr}[{v}]", f"{arr}[{v} % {len(self.arrays[arr])}]"]
            for arr in self.tarrays:
                out.append(f"{arr}[{v} % {len(self.tarrays[arr])}][{rng.randint(0, 1)}]")
            for w in scope.names:
                if w != v:
                    out += [f"({v} + {w}) % N", f"{v} * {w} % N"]
        return out

    def const_index(self, value):
        """Integer text with the given value, sometimes through a constant."""
        rng = self.rng
        options = [str(value)]
        if value == self.ints["N"] - 1:
            options.append("N - 1")
        for arr, items in self.arrays.items():
            if value in items:
                options.append(f"{arr}[{items.index(value)}]")
        for arr, items in self.tarrays.items():
            for n, tup in enumerate(items):
                if value in tup:
                    options.append(f"{arr}[{n}][{tup.index(value)}]")
        if value >= 1:
            options.append(f"{value + 2} - 2")
        return rng.choice(options)

    def member_ref(self, name, scope):
        """Text of one member of family `name`, in range for every combination of scope."""
        members = self.fams[name]
        dims = len(members[0])
        allowed = set(members)
        templates = self.int_templates(scope)
        if templates and self.chance(0.75):
            for _ in range(25):
                idx = [self.rng.choice(templates) for _ in range(dims)]
                try:
                    ok = all(tuple(self.py(t, env) for t in idx) in allowed for env in scope.envs)
                except _Bad:
                    ok = False
                if ok:
                    return f"{name}[{', '.join(idx)}]"
        tup = self.rng.choice(members)
        return f"{name}[{', '.join(self.const_index(i) for i in tup)}]"

    # ------------------------------------------------------------------ signal expressions

    def leaf(self, scope):
        rng = self.rng
        r = rng.random()
        if r < 0.08:
            return rng.choice(["0", "1", "1 - 0", "N - N", "(N + 1) % N" if self.ints["N"] > 1
                               else "1"])
        if r < 0.3 and self.defined and self.chance(0.5):   # prefer wires and outputs
            name = rng.choice(self.defined[-3:])
            return name if name in self.scalars else self.member_ref(name, scope)
        if r < 0.3 and self.scalars:
            return rng.choice(self.scalars)
        name = rng.choice(sorted(self.fams))
        return self.member_ref(name, scope)

    def atom(self, scope, depth):
        """An expression that can stand as an operand of any operator."""
        rng = self.rng
        if scope.pool and self.chance(0.12):
            return rng.choice(scope.pool)
        if self.global_pool and self.chance(0.06):
            text = rng.choice(self.global_pool)
            if not _binds(text) & set(scope.names):   # no clash with enclosing loop variables
                return text
        if depth <= 0:
            text = self.leaf(scope)
            return f"({text})" if " " in text else text
        r = rng.random()
        if r < 0.25:
            text = self.leaf(scope)
            text = f"({text})" if " " in text else text
        elif r < 0.40:
            op = rng.choice(["!", "~", "!!", "!~", "~~"])
            text = op + self.atom(scope, depth - 1)
        elif r < 0.70:
            text = f"({self.chain(scope, depth - 1)})"
        else:
            text = self.call(scope, depth - 1)
        if depth >= 1:
            scope.pool.append(text)
            if not scope.names:
                self.global_pool.append(text)
        return text

    def chain(self, scope, depth):
        rng = self.rng
        n = rng.choice([2, 2, 2, 3, 4])
        parts = [self.atom(scope, depth)]
        for _ in range(n - 1):
            r = rng.random()
            if r < 0.1:
                operand = parts[-1]                   # x op x
            elif r < 0.15:
                operand = "!" + parts[-1]             # x op !x
            else:
                operand = self.atom(scope, depth)
            parts += [rng.choice("&^|"), operand]
        return " ".join(parts)

    def expr(self, scope, depth):
        """A top-level expression (of a wire or output statement)."""
        r = self.rng.random()
        if r < 0.5:
            return self.chain(scope, depth)
        return self.atom(scope, depth)

    def call(self, scope, depth):
        rng = self.rng
        func = rng.choice(FUNCS)
        if func == "ite":
            c, t, e = (self.atom(scope, depth) for _ in range(3))
            r = rng.random()
            if r < 0.1:
                t = "1"
            elif r < 0.2:
                e = "0"
            elif r < 0.3:
                t = c
            elif r < 0.35:
                e = t
            return f"ite({c}, {t}, {e})"
        head = []
        if func in ("atleast", "atmost", "exactly"):
            ks = [str(rng.randint(0, 4))]
            ks += [f"{v} % 3" for v in scope.names]
            head.append(rng.choice(ks))
        if self.chance(0.45):
            return self.generator_call(func, head, scope, depth)
        n = rng.randint(1, 4)
        args = [self.expr_arg(scope, depth) for _ in range(n)]
        if n >= 2 and self.chance(0.15):
            args[-1] = args[0]                        # repeated operand (a multiset)
        return f"{func}({', '.join(head + args)})"

    def expr_arg(self, scope, depth):
        return self.chain(scope, depth) if self.chance(0.25) else self.atom(scope, depth)

    def generator_call(self, func, head, scope, depth):
        rng = self.rng
        used = set(scope.names)
        fixed = [self.atom(scope, depth) for _ in range(rng.choice([0, 0, 0, 1, 2]))]
        text, new, envs, parents = self.clause(scope, used, inner=True)
        sub = _Scope(envs, scope.names + new)
        element = self.expr_arg(sub, depth)
        return f"{func}({', '.join(head + fixed + [element])} for {text})"

    # ------------------------------------------------------------------ statements

    def statement(self, last):
        rng = self.rng
        r = rng.random()
        kind = "output" if last or self.chance(0.55) else "wire"
        if r < 0.15:
            self.table()
        elif r < 0.5:
            self.scalar_statement(kind)
        else:
            self.family_statement(kind)

    def scalar_statement(self, kind):
        scope = _Scope([{}])
        name = self.fresh("y" if kind == "output" else "w")
        text = self.expr(scope, self.rng.randint(1, 3))
        self.lines.append(f"{kind} {name} = {text};")
        self.scalars.append(name)
        self.defined.append(name)
        self.global_pool.append(name)
        if kind == "output":
            self.n_outputs += 1

    def family_statement(self, kind):
        rng = self.rng
        for _ in range(10):
            text, names, envs, _ = self.clause(_Scope([{}]), set())
            if 1 <= len(envs) <= 16:
                break
        else:
            text, names, envs = "i in 0..N", ["i"], [{"i": k} for k in range(self.ints["N"])]
        scope = _Scope(envs, names)
        name = self.fresh("y" if kind == "output" else "w")
        index = list(names)
        if len(names) == 1 and self.chance(0.3):
            index = [rng.choice([f"{names[0]} + 1", f"2 * {names[0]}", f"{names[0]} * 3 + 2",
                                 f"{names[0]} - 2", f"N - {names[0]}"])]
        elif len(names) == 2 and self.chance(0.3):
            i, j = names
            index = rng.choice([[j, i], [f"{i} + {j}", i], [i, f"{j} - {i}"], [i, j, "0"]])
        value = self.expr(scope, rng.randint(1, 3))
        self.lines.append(f"{kind} {name}[{', '.join(index)}] = {value} for {text};")
        members = [tuple(self.py(t, env) for t in index) for env in envs]
        assert len(set(members)) == len(members), (text, members)
        self.fams[name] = members
        self.defined.append(name)
        if len(index) == 1:
            self.one_d.append(name)
        if kind == "output":
            self.n_outputs += len(members)

    def table(self):
        rng = self.rng
        refs, width = [], 0
        for _ in range(rng.randint(1, 3)):
            if width >= 5:
                break
            r = rng.random()
            if r < 0.3 and self.scalars:
                refs.append(rng.choice(self.scalars))
                width += 1
                continue
            name = rng.choice(self.one_d)
            values = sorted(t[0] for t in self.fams[name])
            if r < 0.55:
                refs.append(f"{name}[{self.const_index(rng.choice(values))}]")
                width += 1
                continue
            # a slice over a contiguous run of defined members
            present = set(values)
            lo = rng.choice(values)
            hi = lo
            while hi in present and hi - lo < min(3, 5 - width):
                hi += 1
            if hi == lo:
                continue
            hi = rng.randint(lo + 1, hi)
            refs.append(f"{name}[{lo}..{'N' if hi == self.ints['N'] else hi}]")
            width += hi - lo
        if width == 0:
            name = "x"
            refs.append("x[0]")
            width = 1
        n_out = rng.randint(1, 3)
        keys = rng.sample(range(1 << width), rng.randint(0, min(6, 1 << width)))
        if not keys and self.chance(0.5):
            keys = [0]

        def outbits():
            if self.chance(0.1):
                return "*"
            return "".join(rng.choice("01*" if self.chance(0.5) else "01") for _ in range(n_out))

        rows = [(format(k, f"0{width}b")[::-1], outbits()) for k in keys]
        default = rng.choice([None, None, "*", "0" * n_out, "1" * n_out, outbits()])
        tname, out = self.fresh("tb"), self.fresh("q")
        head = f"table {tname}({', '.join(refs)}) -> {out}[{n_out}]"
        if self.chance(0.3):
            fname = f"{tname}.rows"
            lines = ["# rows of " + tname]
            for bits, outs in rows:
                lines.append(f"{bits}\t{outs}" + ("  # a row" if self.chance(0.2) else ""))
                if self.chance(0.2):
                    lines.append("")
            if default is not None:
                lines.insert(rng.randint(1, len(lines)), f"default {default}")
            self.files[fname] = "\n".join(lines) + "\n"
            self.lines.append(f'{head} from "{fname}";')
        else:
            body = [f"  {bits} -> {outs};" for bits, outs in rows]
            if default is not None:
                body.insert(rng.randint(0, len(body)), f"  default -> {default};")
            self.lines.append(head + " {\n" + "\n".join(body) + "\n}")
        self.fams[out] = [(j,) for j in range(n_out)]
        self.one_d.append(out)
        self.defined.append(out)
        self.n_outputs += n_out


def random_circuit(seed: int) -> tuple[str, dict]:
    """A random valid .sup program and its rows files (see the module docstring)."""
    gen = _Gen(seed)
    if gen.chance(0.3):
        gen.lines.append(f"circuit rnd{seed};")
    gen.declare()
    n = gen.rng.randint(1, 6)
    for k in range(n):
        gen.statement(last=(k == n - 1 and gen.n_outputs == 0))
    if gen.n_outputs == 0:
        gen.scalar_statement("output")
    text = "\n".join(gen.lines) + "\n"
    if gen.chance(0.2):
        text = "# a random circuit\n" + text.replace(";\n", ";  # end\n", 1)
    return text, gen.files


def load_random_circuit(seed: int, folder):
    """random_circuit(seed) written to `folder` (with its rows files) and loaded."""
    import dsl
    text, files = random_circuit(seed)
    for fname, content in files.items():
        (folder / fname).write_text(content)
    path = folder / "circuit.sup"
    path.write_text(text)
    return dsl.load(str(path))
