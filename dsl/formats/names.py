"""How net names of standard formats become .sup names (families or sanitized scalars).

The rule, applied separately to the list of inputs and to the list of outputs, in file order:

1. A name of the form `base[i]` (base a valid .sup name, i a decimal integer) is a *member
   candidate*. All the names with one base form the family `base` when
   * every name of the list with that base has this form, and they are consecutive in the
     list (so families never reorder inputs or outputs),
   * for inputs, their indices are 0, 1, ..., n-1 in that order (`input base[n];` declares
     exactly those, in that order); for outputs, the indices are distinct (any order),
   * `base` is not also used as a plain name, and is not a keyword or function name.
2. Every other name is *sanitized* into a scalar: characters other than letters, digits and
   `_` become `_` (`a[3]` -> `a_3`, `x.y` -> `x_y`, trailing `_` removed), a leading digit gets
   the prefix `n` (`22` -> `n22`), a keyword or function name gets the suffix `_`
   (`input` -> `input_`), an empty name becomes `n`.
3. Names are unique: a name already taken (by an earlier input or output, or a family) gets
   `_2`, `_3`, ...; an output whose name is an input's name (an output wired straight to an
   input) gets the suffix `_out` first.

So every name of an imported circuit is a valid .sup name and the circuit writes back to .sup
(`dsl/formats/to_sup.py`) with the same input and output names, in the same order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

KEYWORDS = frozenset(("circuit", "input", "sparsity", "const", "wire", "output", "table", "for",
                      "in", "if", "default", "from", "and", "or", "not"))
FUNCTIONS = frozenset(("xor", "maj", "atleast", "atmost", "exactly", "ite", "pairs", "perm"))
RESERVED = KEYWORDS | FUNCTIONS
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MEMBER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\[(\d{1,9})\]\Z")


def is_valid(name: str) -> bool:
    """A name the .sup grammar accepts for a signal (not a keyword or function name)."""
    return bool(_NAME.match(name)) and name not in RESERVED


def sanitize(name: str) -> str:
    """A valid .sup scalar name for `name` (rule 2 of the module docstring)."""
    text = re.sub(r"[^A-Za-z0-9_]", "_", name).rstrip("_") or "n"
    if text[0].isdigit():
        text = "n" + text
    if text in RESERVED:
        text += "_"
    return text


class Namer:
    """Hands out unique valid names: `base`, then `base_2`, `base_3`, ..."""

    def __init__(self, taken=()):
        self.taken = set(taken)

    def claim(self, base: str) -> str:
        """Reserve and return a unique valid name from `base` (sanitized, then `_2`, `_3`, ... if taken)."""
        base = base if is_valid(base) else sanitize(base)
        name, k = base, 2
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name


@dataclass
class Group:
    """One named family (index [count, 1]) or scalar (index [1, 0]) made from file names."""
    name: str
    positions: list          # positions in the original list, in family order
    index: np.ndarray        # int64 [count, d]

    @property
    def shape(self) -> tuple:
        """() for a scalar, (count,) for a family."""
        return () if self.index.shape[1] == 0 else (len(self.positions),)


def group_names(names: list[str], inputs: bool, namer: Namer, avoid=frozenset()) -> list[Group]:
    """The families and scalars of one list of names (module docstring), in list order.

    `namer` holds the names already taken; `avoid` are names that get `_out` (outputs named
    like an input)."""
    parsed = [_MEMBER.match(n) for n in names]
    plain = {n for n, m in zip(names, parsed) if m is None}
    runs: dict[str, list] = {}           # base -> list of (start, stop) runs of consecutive
    for pos, m in enumerate(parsed):
        if m is None:
            continue
        base = m.group(1)
        spans = runs.setdefault(base, [])
        if spans and spans[-1][1] == pos:
            spans[-1][1] = pos + 1
        else:
            spans.append([pos, pos + 1])
    family_at: dict[int, str] = {}       # start position -> base of a family
    for base, spans in runs.items():
        if len(spans) != 1 or base in plain or base in RESERVED:
            continue
        start, stop = spans[0]
        idx = [int(parsed[p].group(2)) for p in range(start, stop)]
        ok = idx == list(range(len(idx))) if inputs else len(set(idx)) == len(idx)
        if ok:
            family_at[start] = base
    groups, pos = [], 0
    while pos < len(names):
        if pos in family_at:
            base = family_at[pos]
            stop = pos
            while stop < len(names) and parsed[stop] is not None and parsed[stop].group(1) == base:
                stop += 1
            idx = np.array([[int(parsed[p].group(2))] for p in range(pos, stop)], dtype=np.int64)
            name = namer.claim(base + "_out" if base in avoid else base)
            groups.append(Group(name, list(range(pos, stop)), idx))
            pos = stop
            continue
        name = names[pos]
        base = sanitize(name) if not is_valid(name) else name
        if base in avoid:
            base += "_out"
        groups.append(Group(namer.claim(base), [pos], np.zeros((1, 0), dtype=np.int64)))
        pos += 1
    return groups
