"""Fuzzing the front end: no text may crash, hang or exhaust memory (sup-language.md, Errors).

Property: `dsl.loads(text)` either returns a Circuit or raises `dsl.SupError` located at a line
and column >= 1 whose `format()` works. Any other exception is a bug. Texts come from

(a) random sequences of the language's tokens and of statements of valid programs (ours
    below and examples/*.sup), and shuffles of those statements,
(b) mutations of the valid programs (characters and tokens deleted, inserted, duplicated,
    swapped, numbers made huge or negative),
(c) random unicode text and random bytes,
(d) random programs from a small grammar: well-formed statements misusing names, kinds of
    values, arities and sizes, so that the elaborator's checks are reached, not only the parser,
and deep nesting at and past the limit. A text running SECONDS_PER_TEXT counts as a hang.

Every crash found so far is kept as an `@example` of the test that found it (or would have).
Sizes are capped with small `Limits`, so a generator over 0..10**18 must be refused, not run.
The runs are deterministic; SUP_FUZZ_RANDOM=1 SUP_FUZZ_EXAMPLES=5000 fuzzes longer and afresh.
"""

from __future__ import annotations

import os
import re
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import dsl
from dsl import Circuit, SupError

LIMITS = dsl.Limits(max_elements=10**5, max_inputs=10**4)
SECONDS_PER_TEXT = 10   # one text taking this long counts as a hang

# Deterministic in CI; SUP_FUZZ_RANDOM=1 explores fresh examples on every run and
# SUP_FUZZ_EXAMPLES=N runs N examples per test instead of 300 (3 N for the random programs).
EXAMPLES = int(os.environ.get("SUP_FUZZ_EXAMPLES", 300))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                database=None,
                derandomize=not os.environ.get("SUP_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

VALID = [
    """circuit demo;
input a, b, x[8];
sparsity 3;
const N = 8;
const P = pairs(N, 10, seed=7);
const Q = perm(N, seed=3);
const L = [3, 1, 2];
const T = [(0, 1), (2, 5)];
wire t = a & !b | x[0] ^ x[1];
output y[u, v] = x[u] & x[v] for (u, v) in P;
output z[i] = x[Q[i]] for i in 0..N;
output w[i, j] = x[i] ^ x[j] for i in 0..N, j in i+1..N if j - i <= 3;
output m = maj(a, b, t);
output k = atleast(2, x[i] & x[i+1] for i in 0..7);
output e = ite(a, b, t);
output q[v] = xor(x[v], x[T[1][1]], ~a) for v in L;
""",
    """input x[4];
table lut(x[0..4]) -> y[3] {
  0000 -> 101;
  0110 -> 011;   # a comment
  default -> *;
}
table small(x[0], x[3]) -> s[1] { 01 -> 1; 10 -> *; default -> 0; }
output o = y[0] | y[2] & s[0];
""",
    """input a, b, c, d;
sparsity 2;
wire p = and(a, b);
wire q = or(c, d, p);
output r = exactly(1, a, b, c, d);
output s = atmost(1, a, b, c, d) & !a;
""",
    """input g[3, 4];
const R = 3;
output row[i] = or(g[i, j] for j in 0..4) for i in 0..R;
output col[j] = and(g[i, j] for i in 0..R if i != 1) for j in 0..4;
output d = xor(g[i, i] for i in 0..3) ^ 1;
output c0 = 0; output c1 = 1;
""",
    """input x[6], order, android;
const N = 6;
output a[i] = x[i] & x[(i + 1) % N] for i in 0..N if i % 2 == 0 or i > 3 and not i == 5;
output b[i] = x[N - 1 - i] for i in 0..N;
output c = atleast(N / 2, x[i] for i in 0..N) | order & android;
wire t[i] = !x[i] for i in 0..N;
output e[i] = t[i] | a[i - i % 2] for i in 0..N if i % 2 == 0;
output f[i] = x[i] for i in 0..N if i != 0 and 12 % i == 0;
""",
]

# The example programs of examples/ (with their paths, so that rows files resolve), and ours.
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
PROGRAMS = [(str(p), p.read_text()) for p in sorted(EXAMPLES_DIR.glob("*.sup"))] + \
    [("fuzz.sup", text) for text in VALID]

TOKENS = sorted(set(re.findall(
    r'[A-Za-z_][A-Za-z0-9_]*|\d+|\.\.|->|<=|>=|==|!=|"[^"\n]*"|\S',
    re.sub(r"#[^\n]*", "", "\n".join(text for _, text in PROGRAMS))))) + [
    "circuit", "input", "sparsity", "const", "wire", "output", "table", "for", "in", "if",
    "default", "from", "and", "or", "not", "pairs", "perm", "seed", "maj", "atleast", "atmost",
    "exactly", "ite", "xor", '"rows.tsv"', '""', '"', "#", "\n", "\t", "0..1000000000000",
    "4611686018427387903", "4611686018427387904", "99999999999999999999999", "-1", "0", "1",
    "*", "**", "0110", "1*0", "/", "%", "~", "^", "|", "&", "!", "(", ")", "[", "]", "{", "}",
]
STATEMENTS = [s.strip() for _, v in PROGRAMS
              for s in re.split(r"(?<=;)\s*\n|(?<=})\s*\n", re.sub(r"#[^\n]*", "", v))
              if s.strip()]
BIG_NUMBERS = ["0", "1", "-1", "2", "63", "64", "65", "1000", "100001", "-100000", "2147483648",
               "4611686018427387903", "4611686018427387904", "9223372036854775808",
               "99999999999999999999999999", "(0-5)"]


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: int):
    """Fail a text that takes longer than `seconds` (SIGALRM; a no-op where unavailable)."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check(text: str, file: str = "fuzz.sup") -> None:
    """The property: a Circuit, or a located SupError that formats; nothing else."""
    try:
        with time_limit(SECONDS_PER_TEXT):
            result = dsl.loads(text, file=file, limits=LIMITS)
    except SupError as err:
        assert err.line >= 1 and err.column >= 1, (err.line, err.column, err.message)
        shown = err.format()
        assert err.file is not None
        assert shown.startswith(f"{err.file}:{err.line}:{err.column}: error: "), shown
        assert str(err) == shown
        return
    assert isinstance(result, Circuit)


def test_valid_programs_load():
    for file, text in PROGRAMS:
        if "pairs_1m" not in file:   # a million outputs: above the fuzzing limits
            assert isinstance(dsl.loads(text, file=file, limits=LIMITS), Circuit), file


# ------------------------------------------------------------------ (a) tokens and fragments

separators = st.sampled_from([" ", " ", " ", "", "\n", "\t", ";\n", ", "])
pieces = st.one_of(st.sampled_from(TOKENS), st.sampled_from(STATEMENTS))


@FUZZ
@given(st.lists(st.tuples(pieces, separators), max_size=60))
@example([("input", " "), ("a", ""), (";", " "), ("const", " "), ("C", " "), ("=", " "),
          ("!", ""), ("a", ""), (";", "")])                      # signal op in a constant
@example([("const C = 1 & 1;", "")])                              # integer as signal, pass 1
@example([("const C = or();", "")])
@example([("input a; sparsity a & a;", "")])
@example([("input a; input x[!a];", "")])
@example([("const P = pairs(99999999999, 10);", "")])            # pair count beyond int64
@example([("input x[2]; output a[i] = x[i] for i in 2..0; output b = a[0];", "")])  # empty family
@example([("const A = 2147483648 * 2147483648 * 4;", "")])       # int64 wrap-around
@example([("input a; table t(a) -> y[1] from \"/dev/zero\";", "")])  # endless rows file
@example([("input a; output y = a\n\x0c\noutput z = q;", "")])  # form feed in a line
def test_token_soup(parts):
    check("".join(piece + sep for piece, sep in parts))


@FUZZ
@given(st.lists(st.sampled_from(STATEMENTS), max_size=25), st.randoms(use_true_random=False))
def test_statement_shuffles(statements, rng):
    """Valid statements in random order and number: use before definition, redefinitions."""
    rng.shuffle(statements)
    check("\n".join(statements))


# ------------------------------------------------------------------ (b) mutations

def _mutate(text: str, data) -> str:
    ops = data.draw(st.lists(st.sampled_from(
        ["delete", "insert", "duplicate", "swap", "number", "delete_token", "swap_tokens",
         "insert_token"]), min_size=1, max_size=5))
    for op in ops:
        n = len(text)
        i = data.draw(st.integers(0, n))
        j = data.draw(st.integers(0, n))
        i, j = min(i, j), max(i, j)
        if op == "delete":
            text = text[:i] + text[i + 1:]
        elif op == "insert":
            text = text[:i] + data.draw(st.characters(codec="utf-8")) + text[i:]
        elif op == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif op == "swap" and 0 < i < j < n:
            text = text[:i] + text[j] + text[i + 1:j] + text[i] + text[j + 1:]
        elif op == "number":
            numbers = list(re.finditer(r"\d+", text))
            if numbers:
                m = numbers[data.draw(st.integers(0, len(numbers) - 1))]
                text = text[:m.start()] + data.draw(st.sampled_from(BIG_NUMBERS)) + text[m.end():]
        else:
            tokens = re.findall(r"\w+|\.\.|->|\S|\s+", text)
            if not tokens:
                continue
            a = data.draw(st.integers(0, len(tokens) - 1))
            b = data.draw(st.integers(0, len(tokens) - 1))
            if op == "delete_token":
                del tokens[a]
            elif op == "swap_tokens":
                tokens[a], tokens[b] = tokens[b], tokens[a]
            else:
                tokens.insert(a, " " + data.draw(st.sampled_from(TOKENS)) + " ")
            text = "".join(tokens)
    return text


@FUZZ
@given(st.sampled_from(PROGRAMS), st.data())
def test_mutated_programs(program, data):
    file, text = program
    check(_mutate(text, data), file)


@FUZZ
@given(st.sampled_from(PROGRAMS), st.data())
def test_mutated_numbers(program, data):
    """Numbers replaced by extremes: huge ranges, negative sizes, overflow."""
    file, text = program
    numbers = list(re.finditer(r"\d+", text))
    chosen = data.draw(st.lists(st.integers(0, len(numbers) - 1), min_size=1, max_size=4))
    for k in sorted(set(chosen), reverse=True):
        m = numbers[k]
        text = text[:m.start()] + data.draw(st.sampled_from(BIG_NUMBERS)) + text[m.end():]
    check(text, file)


# ------------------------------------------------------------------ (c) random text and bytes

@FUZZ
@given(st.text(max_size=300))
@example("\x00")
@example("input \u00e9;")
@example("input a; output y = a\r\n;\u2028output z = b;")
def test_random_unicode(text):
    check(text)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(raw):
    check(raw.decode("latin-1"))
    check(raw.decode("utf-8", errors="replace"))


# ------------------------------------------------------------------ (d) random programs from the grammar

# Well-formed (mostly) programs whose statements use the defined names in all the wrong ways:
# this reaches the elaborator's checks, where token soup mostly stops at the parser.
HEADER = ("input a, b, x[8], g[3, 4];\nconst N = 8;\nconst L = [3, 1, 2];\n"
          "const T = [(0, 1), (2, 5)];\nconst P = pairs(N, 5, seed=1);\nwire t[i] = x[i] for i in 0..4;\n")
names = st.sampled_from(["a", "b", "x", "g", "t", "N", "L", "T", "P", "i", "j", "u", "v", "y", "w",
                         "lut", "out", "zz", "and", "order"])
ints = st.sampled_from(["0", "1", "2", "3", "4", "7", "8", "64", "65", "100001", "(0-1)",
                        "4611686018427387903", "4611686018427387904", "1" + "0" * 40])
functions = st.sampled_from(["and", "or", "xor", "maj", "atleast", "atmost", "exactly", "ite",
                             "pairs", "perm", "foo"])
binary_ops = st.sampled_from(["&", "|", "^", "+", "-", "*", "/", "%", "<", "<=", "==", "!=",
                              ">", ">=", "and", "or"])
loop_vars = st.sampled_from(["i", "j", "k", "u", "v", "N", "a"])


def _expressions():
    atom = st.one_of(names, ints, st.builds("{}[{}]".format, names, st.one_of(ints, loop_vars)))

    def extend(sub):
        generator = st.builds(" for {} in {}{}".format, loop_vars,
                              st.one_of(st.builds("{}..{}".format, sub, sub), sub),
                              st.one_of(st.just(""), st.builds(" if {}".format, sub)))
        return st.one_of(
            st.builds("{}{}".format, st.sampled_from(["!", "~", "-", "not ", "+"]), sub),
            st.builds("{} {} {}".format, sub, binary_ops, sub),
            st.builds("({})".format, sub),
            st.builds("{}[{}]".format, names, sub),
            st.builds("{}[{}, {}]".format, names, sub, sub),
            st.builds("{}[{}][{}]".format, names, sub, sub),
            st.builds("{}({}{}{})".format, functions,
                      st.lists(sub, max_size=4).map(", ".join),
                      st.one_of(st.just(""), st.builds(", seed={}".format, sub)),
                      st.one_of(st.just(""), generator)),
            st.builds("({}, {})".format, sub, sub),
            st.builds("[{}]".format, st.lists(sub, max_size=3).map(", ".join)),
        )
    return st.recursive(atom, lambda sub: extend(sub), max_leaves=10)


expressions = _expressions()
clauses = st.builds(" for {} in {}{}{}".format, loop_vars,
                    st.one_of(st.builds("{}..{}".format, expressions, expressions), expressions),
                    st.one_of(st.just(""), st.builds(", {} in {}..{}".format, loop_vars,
                                                      expressions, expressions)),
                    st.one_of(st.just(""), st.builds(" if {}".format, expressions)))
bits = st.text("01*", min_size=1, max_size=6)
rows = st.lists(st.one_of(st.builds("{} -> {};".format, bits, bits),
                          st.builds("default -> {};".format, bits)), max_size=4).map(" ".join)
refs = st.lists(st.one_of(names, st.builds("{}[{}]".format, names, expressions),
                          st.builds("{}[{}..{}]".format, names, expressions, expressions)),
                min_size=1, max_size=3).map(", ".join)
statements = st.one_of(
    st.builds("circuit {};".format, names),
    st.builds("input {};".format, st.lists(st.one_of(
        names, st.builds("{}[{}]".format, names, expressions),
        st.builds("{}[{}, {}]".format, names, expressions, expressions)), min_size=1, max_size=3)
        .map(", ".join)),
    st.builds("sparsity {};".format, expressions),
    st.builds("const {} = {};".format, names, expressions),
    st.builds("{} {} = {}{};".format, st.sampled_from(["wire", "output"]), names, expressions,
              st.one_of(st.just(""), clauses)),
    st.builds("{} {}[{}] = {}{};".format, st.sampled_from(["wire", "output"]), names,
              st.lists(expressions, min_size=1, max_size=3).map(", ".join), expressions,
              st.one_of(st.just(""), clauses)),
    st.builds("table {}({}) -> {}[{}] {{ {} }}".format, names, refs, names, expressions, rows),
    st.builds('table {}({}) -> {}[{}] from "{}";'.format, names, refs, names, expressions,
              st.sampled_from(["", ".", "missing.tsv", "/dev/null", "/dev/zero"])),
)


@settings(FUZZ, max_examples=3 * EXAMPLES)
@given(st.lists(statements, min_size=1, max_size=6), st.booleans())
@example(["output y = atleast(2 for i in 0..3);"], True)               # K but no signals
@example(["input x2[" + ", ".join(["1"] * 40) + "];"], False)          # > 32 dimensions (numpy)
@example(["input x2[" + ", ".join(["4611686018427387903"] * 240) + "];"], False)  # huge product
@example(["const C = " + "9" * 5000 + ";"], False)                    # int() digit limit
@example(["const C = " + "0" * 5000 + "1;"], False)
@example(["output y[i] = x[i] for (i, i) in T;"], True)              # repeated loop variable
def test_random_programs(body, with_header):
    check((HEADER if with_header else "") + "\n".join(body))


# ------------------------------------------------------------------ deep nesting

@pytest.mark.parametrize("depth", [100, 255, 256, 257, 2000])
def test_deep_nesting_never_overflows_the_stack(depth):
    """Nesting at and past the limit (ast.MAX_NESTING) is either fine or a located error,
    whatever recursion the elaborator needs for it."""
    kinds = {
        "not": ("!" * depth, ""),
        "calls": ("and(" * depth, ")" * depth),
        "ite": ("ite(a, a, " * depth, ")" * depth),
        "parens": ("(" * depth, ")" * depth),
        "conditions": ("".join(f"or(a for i{k} in 0..1 if " for k in range(depth)),
                       "1" + ")" * depth),
        "ranges": ("".join(f"or(a for i{k} in 0..(" for k in range(depth)), "1" + "))" * depth),
    }
    for open_, close in kinds.values():
        check(f"input a; output y = {open_}a{close};")
    check("const L = [0]; input x[1]; output y = x[" + "L[" * depth + "0" + "]" * depth + "];")
    check("const C = " + "-" * depth + "1;")
