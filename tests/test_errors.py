"""Golden tests of every kind of error the front end reports (sup-language.md, Errors).

Each `tests/golden_errors/NAME.sup` is a small bad file; `NAME.err` holds the exact text of
`str(SupError)`: `FILE:LINE:COL: error: MESSAGE`, the source line indented by 4 and a caret
line. Files are loaded with the golden folder as working directory and a relative path, so the
FILE part reads `NAME.sup` (or the rows file's name for errors located in a rows file). A first
line `# limits: max_elements=1000, max_inputs=10` sets `dsl.Limits` for that file.

To (re)write the .err files after changing a message on purpose, run

    SUP_REGEN_GOLDEN=1 python -m pytest tests/test_errors.py -q

and read every changed message before committing it.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

import dsl
from dsl import SupError

GOLDEN = Path(__file__).with_name("golden_errors")
CASES = sorted(p.stem for p in GOLDEN.glob("*.sup"))
REGEN = bool(os.environ.get("SUP_REGEN_GOLDEN"))


def limits_of(text: str) -> dsl.Limits | None:
    match = re.match(r"#\s*limits:\s*(.*)", text)
    if not match:
        return None
    values = dict(item.split("=") for item in match.group(1).replace(" ", "").split(","))
    return dsl.Limits(**{key: int(value) for key, value in values.items()})


def load_error(name: str) -> SupError:
    text = (GOLDEN / f"{name}.sup").read_text()
    started = time.perf_counter()
    with pytest.raises(SupError) as info:
        dsl.load(f"{name}.sup", limits_of(text))
    # every bad file fails fast: sizes are refused before anything is allocated
    assert time.perf_counter() - started < 5
    return info.value


def test_there_are_golden_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", CASES)
def test_golden_error(name, monkeypatch):
    monkeypatch.chdir(GOLDEN)
    err = load_error(name)
    shown = str(err)
    assert shown == err.format()
    assert err.line >= 1 and err.column >= 1
    expected_file = GOLDEN / f"{name}.err"
    if REGEN:
        expected_file.write_text(shown + "\n")
    assert expected_file.exists(), f"no {name}.err: run with SUP_REGEN_GOLDEN=1 and review it"
    assert shown == expected_file.read_text().rstrip("\n")


def test_every_err_file_has_a_case():
    orphans = {p.stem for p in GOLDEN.glob("*.err")} - set(CASES)
    assert not orphans


@pytest.mark.parametrize("name", CASES)
def test_caret_points_into_the_line(name, monkeypatch):
    """The caret line puts '^' under a character of the shown source line (or just after it)."""
    monkeypatch.chdir(GOLDEN)
    lines = str(load_error(name)).split("\n")
    assert len(lines) == 3
    source, caret = lines[1], lines[2]
    assert source.startswith("    ") and caret.strip() == "^"
    assert len(caret) - 1 <= len(source)


# ------------------------------------------------------------------ the path as given

def test_file_path_is_rendered_as_given(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.sup").write_text("input a;\noutput y = b;\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SupError) as info:
        dsl.load("sub/bad.sup")
    assert str(info.value).startswith("sub/bad.sup:2:12: error: 'b' is not defined")
    with pytest.raises(SupError) as info:
        dsl.loads("input a;\noutput y = b;\n")
    assert str(info.value).startswith("<input>:2:12: error:")


def test_unreadable_sup_file(tmp_path):
    with pytest.raises(SupError) as info:
        dsl.load(tmp_path / "missing.sup")
    assert "cannot read file" in str(info.value)
    (tmp_path / "latin1.sup").write_bytes(b"input \xe9;\n")
    with pytest.raises(SupError):
        dsl.load(tmp_path / "latin1.sup")


# ------------------------------------------------------------------ rows files that are not files

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_rows_file_that_is_a_fifo_does_not_block(tmp_path):
    os.mkfifo(tmp_path / "rows.tsv")
    (tmp_path / "t.sup").write_text('input x[2];\ntable t(x[0..2]) -> y[1] from "rows.tsv";\n')
    with pytest.raises(SupError) as info:
        dsl.load(tmp_path / "t.sup")
    assert "not a regular file" in info.value.message
    assert (info.value.line, info.value.column) == (2, 31)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_rows_file_endless_device_is_refused():
    with pytest.raises(SupError) as info:
        dsl.loads('input x[2];\ntable t(x[0..2]) -> y[1] from "/dev/zero";\n')
    assert "not a regular file" in info.value.message


def test_rows_file_too_big_is_refused_without_reading_it(tmp_path):
    (tmp_path / "rows.tsv").write_text("01 1\n" * 10000)
    (tmp_path / "t.sup").write_text('input x[2];\ntable t(x[0..2]) -> y[1] from "rows.tsv";\n')
    with pytest.raises(SupError) as info:
        dsl.load(tmp_path / "t.sup", dsl.Limits(max_elements=100))
    assert "more than" in info.value.message and info.value.line == 2


# ------------------------------------------------------------------ things that must NOT fail

@pytest.mark.parametrize("text", [
    # names that start with the keywords 'and' / 'or' / 'not' (were split by the lexer)
    "input order, android, nothing; output y = order & android | nothing;",
    "input origin, a; output y = or(origin, and(a, origin));",
    # 'and' / 'or' short-circuit in conditions, like Python
    "input x[8]; output y[i] = x[i] for i in 0..8 if i != 0 and 12 % i == 0;",
    "const L = [1, 2, 3]; input x[8]; output y[i] = x[i] for i in 0..8 if i >= 3 or L[i] == 2;",
    # arithmetic near the integer limit is exact, not a conservative overflow
    "const A = 4611686018427387903 - 4611686018427387903 + 4611686018427387903;",
    "const A = 2147483647 * 2147483647;",
    # an empty family is fine as long as nobody reads a member of it
    "input x[2]; output a[i] = x[i] for i in 2..0;",
])
def test_valid_corner_cases(text):
    dsl.loads(text)


def test_names_starting_with_keywords_are_names():
    circuit = dsl.loads("input order, android; output y = order & android;")
    assert circuit.n_inputs == 2 and circuit.n_outputs == 1


def test_short_circuit_keeps_the_right_members():
    circuit = dsl.loads("input x[8]; output y[i] = x[i] for i in 0..8 "
                        "if i != 0 and 12 % i == 0;")
    assert circuit.n_outputs == 5       # i = 1, 2, 3, 4, 6


def test_source_line_shown_is_the_parsers_line():
    """Lines end at '\\n' only: a form feed or '\\r\\n' must not shift the shown line."""
    for text in ["input a;\x0c\ninput b;\noutput y = c;", "input a;\r\ninput b;\r\noutput y = c;\r\n"]:
        with pytest.raises(SupError) as info:
            dsl.loads(text)
        assert info.value.line == 3
        assert str(info.value).split("\n")[1] == "    output y = c;"


def test_huge_range_fails_fast_with_default_limits():
    started = time.perf_counter()
    with pytest.raises(SupError) as info:
        dsl.loads("input x[4]; output y[i, j] = x[0] for i in 0..4000000000, j in 0..4000000000;")
    assert "more than the limit" in info.value.message
    assert time.perf_counter() - started < 2
