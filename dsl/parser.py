"""Parse .sup text into the syntax tree of dsl/ast.py, with errors users can read.

The grammar lives in dsl/grammar.lark (LALR(1)). The LALR parser and the non-recursive
transformer never recurse over the depth of the text; expressions nested deeper
than `ast.MAX_NESTING` are rejected with a located error instead of exhausting the stack.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, v_args
from lark.visitors import Transformer_NonRecursive
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast
from .errors import SupError

GRAMMAR_FILE = Path(__file__).with_name("grammar.lark")

# How terminals are named in messages.
TERMINAL_WORDS = {
    "NAME": "a name", "INT": "an integer", "STRING": 'a quoted file name',
    "BITS": "a row of bits like 0110", "CMPOP": "a comparison", "ADDOP": "'+' or '-'",
    "MULOP": "'*', '/' or '%'", "BANG": "'!'", "NOT": "'not'", "FN_AND": "'and'", "FN_OR": "'or'",
    "$END": "end of file",
}
EXPRESSION_STARTERS = {"INT", "NAME", "LPAR", "LSQB", "BANG", "ADDOP", "NOT", "FN_AND", "FN_OR"}
BINARY_ONLY = {"AMPERSAND", "VBAR", "CIRCUMFLEX", "CMPOP", "MULOP"}
OPERATORS = {"AMPERSAND", "VBAR", "CIRCUMFLEX", "CMPOP", "ADDOP", "MULOP", "LSQB", "LPAR", "FN_AND",
             "FN_OR"}


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(GRAMMAR_FILE.read_text(), parser="lalr", lexer="contextual",
                propagate_positions=True, maybe_placeholders=True)


def parse(source: str, file: str | None = None) -> ast.Program:
    """Parse .sup source text; raise SupError (located in `file`) on any syntax error."""
    try:
        statements = _ToAst().transform(_lark().parse(source))
    except SupError as err:
        raise err.located(file, source)
    except VisitError as err:  # an error raised inside a tree callback
        orig = err.orig_exc
        if isinstance(orig, SupError):
            raise orig.located(file, source) from None
        raise
    except UnexpectedInput as err:
        raise _syntax_error(err, _lark(), source).located(file, source) from None
    except RecursionError:
        raise SupError("the text nests too deeply to parse", 1, 1).located(file, source) from None
    return ast.Program(list(statements), file, source)


def parse_file(path: str | Path) -> ast.Program:
    """Read and parse a .sup file; unreadable files become SupError too."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SupError(f"cannot read file: {exc.strerror}", file=str(path)) from None
    return parse(decode_text(data, str(path)), str(path))


def decode_text(data: bytes, file: str) -> str:
    """The UTF-8 text of a .sup file's bytes; SupError "not a text file" (located at the first
    NUL byte or invalid UTF-8 sequence) for binary data."""
    nul = data.find(b"\0")
    try:
        text = data.decode("utf-8")
        bad, why = nul, "a NUL byte"
    except UnicodeDecodeError as exc:
        bad, why = exc.start, f"byte 0x{data[exc.start]:02x} is not UTF-8"
        if 0 <= nul < bad:
            bad, why = nul, "a NUL byte"
        text = ""
    if bad < 0:
        return text
    line = data.count(b"\n", 0, bad) + 1
    column = bad - (data.rfind(b"\n", 0, bad) + 1) + 1
    raise SupError(f"not a text file ({why}); a .sup file is UTF-8 text", line, column,
                   file)


# ---------------------------------------------------------------- syntax errors

def _describe_terminal(name: str, lark: Lark) -> str:
    if name in TERMINAL_WORDS:
        return TERMINAL_WORDS[name]
    for term in lark.terminals:
        if term.name == name and term.pattern.type == "str":
            return f"'{term.pattern.value}'"
    return name.lower()


def _describe_expected(expected: set[str], lark: Lark) -> str:
    expected = set(expected)
    words = []
    if expected & BINARY_ONLY:  # after a complete operand
        expected -= OPERATORS
        words.append("an operator")
    elif len(expected & EXPRESSION_STARTERS) >= 2:
        expected -= EXPRESSION_STARTERS
        words.append("an expression")
    words = sorted(_describe_terminal(t, lark) for t in expected) + words
    if not words:
        return "something else"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    kind = {"NAME": "name", "INT": "integer", "BITS": "bits", "STRING": "string"}.get(token.type)
    return f"{kind} '{token}'" if kind else f"'{token}'"


def _syntax_error(err: UnexpectedInput, lark: Lark, source: str = "") -> SupError:
    if isinstance(err, UnexpectedCharacters):
        char = err.char
        shown = f"'{char}'" if char.isprintable() else f"U+{ord(char):04X}"
        hint = ""
        if char == '"':
            rest = source[err.pos_in_stream + 1:].split("\n", 1)[0] if source else ""
            hint = (" (quoted file names appear only in 'table ... from \"FILE\";')" if '"' in rest
                    else " (a quoted file name must end on the same line)")
        elif char.isalpha() or char.isdigit():
            hint = " (names use only the letters A-Z a-z, digits and _)"
        return SupError(f"unexpected character {shown}{hint}", err.line, err.column)
    if isinstance(err, UnexpectedEOF):
        where = _end_position(err)
        return SupError(f"unexpected end of file, expected {_describe_expected(err.expected, lark)}",
                        *where)
    if isinstance(err, UnexpectedToken):
        token = err.token
        expected = _describe_expected(err.accepts or err.expected, lark)
        if token.type == "$END":
            return SupError(f"unexpected end of file, expected {expected}", *_end_position(err))
        before = _end_of_previous(source, token.start_pos)
        if "SEMICOLON" in (err.accepts or err.expected) and before and before[0] < token.line:
            # the statement ended at a line break without its ';': point there, not at the
            # first token of the next line
            return SupError(f"missing ';' at the end of the statement (before "
                            f"{_describe_token(token)} on line {token.line})", *before)
        return SupError(f"unexpected {_describe_token(token)}, expected {expected}",
                        token.line, token.column)
    return SupError(str(err), getattr(err, "line", 0), getattr(err, "column", 0))


def _end_of_previous(source: str, pos) -> tuple[int, int] | None:
    """(line, column) just after the last character of code before offset pos (skipping
    whitespace and comments), or None when there is none."""
    if not isinstance(pos, int) or not source:
        return None
    lines = source[:pos].split("\n")
    for number in range(len(lines) - 1, -1, -1):
        code = _strip_comment(lines[number]).rstrip(" \t\f\r")
        if code:
            return number + 1, len(code) + 1
    return None


def _strip_comment(line: str) -> str:
    in_string = False
    for i, char in enumerate(line):
        if char == '"':
            in_string = not in_string
        elif char == "#" and not in_string:
            return line[:i]
    return line


def _end_position(err) -> tuple[int, int]:
    token = getattr(err, "token", None)
    line = getattr(token, "end_line", None) or getattr(token, "line", None)
    column = getattr(token, "end_column", None) or getattr(token, "column", None)
    if isinstance(line, int) and line > 0:
        return line, column or 1
    return 1, 1


# ---------------------------------------------------------------- tree building

RESERVED = {"circuit", "input", "sparsity", "const", "wire", "output", "table", "for", "in", "if",
            "default", "from", "and", "or", "not"}


def _ident(token: Token) -> str:
    """A NAME token as an identifier; reserved words are refused here because the contextual
    lexer reads a keyword as a NAME where no keyword is allowed."""
    text = str(token)
    if text in RESERVED:
        raise SupError(f"'{text}' is a reserved word and cannot be used as a name",
                       token.line, token.column)
    return text


def _pos(meta_or_token):
    return getattr(meta_or_token, "line", 1) or 1, getattr(meta_or_token, "column", 1) or 1


@v_args(meta=True)
class _ToAst(Transformer_NonRecursive):
    """Build dsl.ast nodes from the lark tree, bottom-up without recursion."""

    def __init__(self):
        super().__init__()
        self._depth = {}

    def _nest(self, node, children):
        depth = 1 + max((self._depth.get(id(c), 1) for c in children if c is not None), default=0)
        if depth > ast.MAX_NESTING:
            raise SupError(f"expression nested too deeply (more than {ast.MAX_NESTING} levels)",
                           node.line, node.column)
        self._depth[id(node)] = depth
        return node

    # statements
    def start(self, meta, children):
        self._depth.clear()
        return list(children)

    def circuit_stmt(self, meta, c):
        return ast.CircuitStmt(*_pos(meta), _ident(c[0]))

    def input_stmt(self, meta, c):
        return ast.InputStmt(*_pos(meta), tuple(c))

    def input_decl(self, meta, c):
        return ast.InputDecl(*_pos(meta), _ident(c[0]), tuple(c[1:]))

    def sparsity_stmt(self, meta, c):
        return ast.SparsityStmt(*_pos(meta), c[0])

    def const_stmt(self, meta, c):
        return ast.ConstStmt(*_pos(meta), _ident(c[0]), c[1])

    def target(self, meta, c):
        return (_ident(c[0]), tuple(c[1:]) if len(c) > 1 else None, meta)

    def _signal(self, kind, meta, c):
        (name, indices, _), value, clause = c
        return ast.SignalStmt(*_pos(meta), kind, name, indices, value, clause)

    def wire_stmt(self, meta, c):
        return self._signal("wire", meta, c)

    def output_stmt(self, meta, c):
        return self._signal("output", meta, c)

    def table_stmt(self, meta, c):
        name, *rest = c
        refs = tuple(r for r in rest if isinstance(r, ast.TableRef))
        out_name, out_size, body = rest[len(refs):]
        rows, rows_file = body
        return ast.TableStmt(*_pos(meta), _ident(name), refs, _ident(out_name), out_size, rows,
                             rows_file)

    def ref_scalar(self, meta, c):
        return ast.TableRef(*_pos(meta), _ident(c[0]), None, None)

    def ref_index(self, meta, c):
        return ast.TableRef(*_pos(meta), _ident(c[0]), c[1], None)

    def ref_slice(self, meta, c):
        return ast.TableRef(*_pos(meta), _ident(c[0]), c[1], c[2])

    def rows_inline(self, meta, c):
        return (tuple(c), None)

    def rows_file(self, meta, c):
        return ((), str(c[0])[1:-1])

    def row(self, meta, c):
        return ast.TableRow(*_pos(meta), str(c[0]), str(c[1]))

    def default_row(self, meta, c):
        return ast.TableRow(*_pos(meta), None, str(c[0]))

    # generators
    # A generator and its clause count as nesting levels too: elaborating a call whose
    # generator's range or condition holds another call recurses just like nested calls.
    def for_clause(self, meta, c):
        *gens, cond = c
        return self._nest(ast.ForClause(*_pos(meta), tuple(gens), cond), [*gens, cond])

    def gen_range(self, meta, c):
        return self._nest(ast.Generator(*_pos(meta), c[0], c[1], c[2]), c[1:])

    def gen_iter(self, meta, c):
        return self._nest(ast.Generator(*_pos(meta), c[0], c[1], None), c[1:])

    def loop_vars(self, meta, c):
        return tuple(_ident(t) for t in c)

    # expressions
    def int(self, meta, c):
        digits = str(c[0]).lstrip("0")
        if len(digits) > 30:    # far beyond any valid value; int() refuses > 4300 digits
            raise SupError(f"integer too large (the limit is {ast.INT_LIMIT})", *_pos(meta))
        return self._nest(ast.IntLit(*_pos(meta), int(digits or "0")), ())

    def name(self, meta, c):
        return self._nest(ast.Name(*_pos(meta), _ident(c[0])), ())

    def index(self, meta, c):
        return self._nest(ast.Index(*_pos(meta), c[0], tuple(c[1:])), c)

    def unary(self, meta, c):
        op = {"~": "!", "!": "!", "not": "not", "-": "-", "+": "+"}[str(c[0])]
        return self._nest(ast.Unary(*_pos(meta), op, c[1]), c[1:])

    def _chain(self, op, meta, c):
        return self._nest(ast.Chain(*_pos(meta), op, tuple(c)), c)

    def lor(self, meta, c):
        return self._chain("or", meta, c)

    def land(self, meta, c):
        return self._chain("and", meta, c)

    def bor(self, meta, c):
        return self._chain("|", meta, c)

    def bxor(self, meta, c):
        return self._chain("^", meta, c)

    def band(self, meta, c):
        return self._chain("&", meta, c)

    def cmp(self, meta, c):
        return self._nest(ast.Compare(*_pos(meta), str(c[1]), c[0], c[2]), (c[0], c[2]))

    def _arith(self, meta, c):
        return self._nest(ast.Arith(*_pos(meta), tuple(c[0::2]), tuple(str(t) for t in c[1::2])),
                          c[0::2])

    arith = _arith
    term = _arith

    def call(self, meta, c):
        func, args = c
        positional, kwargs, generator = [], [], None
        for arg in (args or ()):
            if isinstance(arg, tuple) and arg and arg[0] == "kwarg":
                kwargs.append(arg[1:])
            elif isinstance(arg, tuple) and arg and arg[0] == "last":
                inner, generator = arg[1], arg[2]
                if isinstance(inner, tuple) and inner and inner[0] == "kwarg":
                    if generator is not None:
                        raise SupError("a generator cannot follow a keyword argument",
                                       generator.line, generator.column)
                    kwargs.append(inner[1:])
                else:
                    positional.append(inner)
            else:
                positional.append(arg)
        node = ast.Call(*_pos(meta), str(func), tuple(positional), generator, tuple(kwargs))
        return self._nest(node, positional + ([generator] if generator else []))

    def args(self, meta, c):
        return list(c)

    def last_arg(self, meta, c):
        return ("last", c[0], c[1])

    def kwarg(self, meta, c):
        return ("kwarg", _ident(c[0]), c[1], c[0])

    def tuple(self, meta, c):
        return self._nest(ast.TupleLit(*_pos(meta), tuple(c)), c)

    def array(self, meta, c):
        items = tuple(x for x in c if x is not None)
        return self._nest(ast.ArrayLit(*_pos(meta), items), items)
