"""Write an n x n carry-save array multiplier in .sup (the structure of ISCAS-85 c6288).

    python bench/make_multiplier.py 16 > examples/mult16.sup

Inputs a[n], b[n]; outputs p0 .. p{2n-1} with p = a * b (bit 0 least significant). Row 0
holds the partial products a[j] & b[0]; row i (1..n-1) adds a[j] & b[i] to the previous row's
sum shifted by one and its carries with full adders (xor / maj), and emits product bit i; a
ripple-carry adder adds the last row's sums and carries into the upper n bits. Wires are
scalars (s_i_j, c_i_j, r_j): a signal may be used only after its definition, and the rows are
not uniform at their last column.
"""

from __future__ import annotations

import sys


def _add(out_s: str, out_c: str, terms: list[str]) -> list[str]:
    """Full / half adder lines for 1-3 terms (sum and carry wires; a lone term passes)."""
    if len(terms) == 1:
        return [f"wire {out_s} = {terms[0]};"]
    carry = " & ".join(terms) if len(terms) == 2 else f"maj({', '.join(terms)})"
    return [f"wire {out_s} = xor({', '.join(terms)});", f"wire {out_c} = {carry};"]


def multiplier(n: int) -> str:
    """The .sup text of an n x n array multiplier (n >= 2)."""
    lines = [f"# {n}x{n} carry-save array multiplier (ISCAS-85 c6288 is the 16x16 one);",
             f"# written by `python bench/make_multiplier.py {n}`. p = a * b, p0 least significant.",
             "#",
             f"# Domain: every one of the 2^{2 * n} input words (no sparsity promise).",
             "# Why it is interesting: deep arithmetic, the hard case for SMT proofs of the",
             "# compiled network (equivalence checkers need SAT sweeping here); a benchmark for",
             "# bench/smt_circuits.py, too large for the conditional target's tables.",
             f"circuit mult{n};", f"input a[{n}], b[{n}];"]
    lines += [f"wire s_0_{j} = a[{j}] & b[0];" for j in range(n)]
    has_c = set()                                   # (row, column) pairs with a carry wire
    for i in range(1, n):
        for j in range(n):
            terms = [f"a[{j}] & b[{i}]"]
            if j + 1 < n:
                terms.append(f"s_{i - 1}_{j + 1}")
            if (i - 1, j) in has_c:
                terms.append(f"c_{i - 1}_{j}")
            lines += _add(f"s_{i}_{j}", f"c_{i}_{j}", terms)
            if len(terms) > 1:
                has_c.add((i, j))
    lines += [f"output p{i} = s_{i}_0;" for i in range(n)]
    last, carry = n - 1, None                        # upper bits: s_last_{j+1} + c_last_j
    for j in range(n):
        terms = [t for t in (f"s_{last}_{j + 1}" if j + 1 < n else None,
                             f"c_{last}_{j}" if (last, j) in has_c else None, carry) if t]
        if not terms:
            lines.append(f"output p{n + j} = 0;")
            continue
        lines += _add(f"r_{j}", f"k_{j}", terms)
        carry = f"k_{j}" if len(terms) > 1 else None
        lines.append(f"output p{n + j} = r_{j};")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(multiplier(int(sys.argv[1]) if len(sys.argv) > 1 else 16), end="")
