"""Write a flat gate-level .sup file as BLIF, so that ABC can check it (bench/abc_cec.py).

    python bench/sup_blif.py examples/mult16.sup -o mult16.blif

sup has no BLIF/AIGER exporter; this bench helper covers only the flat subset that generated
netlists such as examples/mult16.sup (bench/make_multiplier.py) use:

    circuit NAME;                 input a[16], b[16];     (scalar or vector inputs)
    wire w = EXPR;                output p = EXPR;
    EXPR := PRODUCT | xor(PRODUCT, ...) | maj(PRODUCT, PRODUCT, PRODUCT)
    PRODUCT := TERM & TERM & ...  TERM := name | name[i]

Comments (#) are dropped. Anything else (families, tables, domains, other gates, `!`, `|`)
raises ValueError: the caller then has no ABC file for that circuit. Input and output names are
kept (a[0], p0), so ABC's `cec` matches them by name.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_NAME = r"[A-Za-z_][A-Za-z_0-9]*"
_TERM = re.compile(rf"^{_NAME}(\[[0-9]+\])?$")
_INPUT = re.compile(rf"^({_NAME})(?:\[([0-9]+)\])?$")
_DEF = re.compile(rf"^(wire|output)\s+({_NAME})\s*=\s*(.+)$")
_CALL = re.compile(r"^(xor|maj)\s*\((.*)\)$")


class Blif:
    """BLIF covers being collected: one `.names` per net."""

    def __init__(self):
        """An empty netlist."""
        self.covers: list[str] = []
        self.fresh = 0

    def cover(self, ins: list[str], out: str, rows: list[str]) -> str:
        """Add the cover `out = OR of rows` over `ins`; returns `out`."""
        self.covers.append(f".names {' '.join(ins)} {out}\n" + "".join(f"{r} 1\n" for r in rows))
        return out

    def product(self, text: str, out: str | None = None) -> str:
        """The net of an AND of terms (a lone term is its own net unless `out` is asked)."""
        terms = [t.strip() for t in text.split("&")]
        if any(not _TERM.match(t) for t in terms):
            raise ValueError(f"unsupported expression: {text!r}")
        if len(terms) == 1 and out is None:
            return terms[0]
        if out is None:
            self.fresh += 1
            out = f"_t{self.fresh}"
        return self.cover(terms, out, ["1" * len(terms)])

    def expression(self, text: str, out: str) -> None:
        """Define net `out` as the expression (product, xor or maj of products)."""
        call = _CALL.match(text)
        if call is None:
            self.product(text, out)
            return
        op, args = call.group(1), [self.product(a) for a in call.group(2).split(",")]
        k = len(args)
        if op == "xor":
            rows = [f"{v:0{k}b}" for v in range(2 ** k) if bin(v).count("1") % 2]
        elif k == 3:
            rows = ["11-", "1-1", "-11"]
        else:
            raise ValueError(f"maj with {k} operands is not supported")
        self.cover(args, out, rows)


def _inputs(decl: str) -> list[str]:
    """Input names of one `input` declaration (vectors expanded to name[i])."""
    names = []
    for item in decl.split(","):
        m = _INPUT.match(item.strip())
        if m is None:
            raise ValueError(f"unsupported input declaration: {item.strip()!r}")
        names += [m.group(1)] if m.group(2) is None else \
            [f"{m.group(1)}[{i}]" for i in range(int(m.group(2)))]
    return names


def sup_to_blif(text: str) -> str:
    """The BLIF text of a flat gate-level .sup text (see the module docstring); ValueError
    for anything outside that subset."""
    statements = " ".join(line.split("#", 1)[0] for line in text.splitlines()).split(";")
    name, inputs, outputs, blif = "top", [], [], Blif()
    for stmt in (s.strip() for s in statements):
        if not stmt:
            continue
        if stmt.startswith("circuit "):
            name = stmt.split()[1]
        elif stmt.startswith("input "):
            inputs += _inputs(stmt[len("input "):])
        else:
            m = _DEF.match(stmt)
            if m is None:
                raise ValueError(f"unsupported statement: {stmt[:60]!r}")
            blif.expression(m.group(3).strip(), m.group(2))
            if m.group(1) == "output":
                outputs.append(m.group(2))
    if not inputs or not outputs:
        raise ValueError("no inputs or no outputs")
    return (f".model {name}\n.inputs {' '.join(inputs)}\n.outputs {' '.join(outputs)}\n"
            + "".join(blif.covers) + ".end\n")


def main() -> int:
    """Convert one .sup file; exit 2 with a message when it is outside the subset."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("file", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    try:
        args.output.write_text(sup_to_blif(args.file.read_text()))
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
