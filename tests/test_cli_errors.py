"""Every argument checked, every error clean (issue 14): each bad value below is an `error:`
on standard error and exit status 2, never a traceback and never silently accepted; with
--json the error is also one JSON object on standard output,
{"error": ..., "file": ..., "line": ..., "column": ...}; language errors carry FILE:LINE:COL.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import dsl
import sup.output
from dsl import SupError
from cli_helpers import run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PAIRS = str(EXAMPLES / "pairs_small.sup")
C17 = str(EXAMPLES / "c17.sup")


@pytest.fixture
def json_errors():
    """The JSON error object is on by default (sup/output.py JSON_ERRORS): nothing to switch."""
    assert sup.output.JSON_ERRORS is True


def json_error(capsys, *argv) -> dict:
    """The JSON error object of `sup ARGV --json` (asserting exit 2 and one JSON line)."""
    code, out, err = run(capsys, *argv, "--json")
    assert code == 2, (out, err)
    assert "Traceback" not in err
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    data = json.loads(lines[0])
    assert set(data) >= {"error", "file", "line", "column"}
    assert data["error"]
    return data


# ------------------------------------------------------------------ numeric flags

BAD_FLAGS = [
    ("compile", PAIRS, "--target", "superposed", "--width", "-5"),
    ("compile", PAIRS, "--target", "superposed", "--width", "0"),
    ("compile", PAIRS, "--target", "superposed", "--channel", "0"),
    ("compile", PAIRS, "--target", "superposed", "--seed", "-1"),
    ("compile", C17, "--target", "conditional", "--max-domain", "0"),
    ("verify", C17, "--method", "sample", "--samples", "-1"),
    ("verify", C17, "--method", "sample", "--samples", "0"),
    ("verify", C17, "--method", "smt", "--timeout", "-1"),
    ("verify", C17, "--method", "smt", "--timeout", "nan"),
    ("verify", C17, "--method", "exhaustive", "--batch", "0"),
    ("verify", C17, "--method", "exhaustive", "--batch", "1000000000000"),
    ("verify", C17, "--max-counterexamples", "-1"),
    ("check", C17, "--max-elements", "0"),
    ("compile", PAIRS, "--width", "lots"),
]


@pytest.mark.parametrize("argv", BAD_FLAGS, ids=lambda a: " ".join(a[2:]))
def test_bad_flag_values_are_refused(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    assert "error:" in err and "Traceback" not in err
    flag = next(a for a in argv if a.startswith("--") and a not in ("--target", "--method"))
    assert flag in err, err                        # the message names the flag


@pytest.mark.parametrize("argv", [BAD_FLAGS[0], BAD_FLAGS[5], BAD_FLAGS[-1]],
                         ids=["width", "samples", "not-an-int"])
def test_bad_flag_values_json(capsys, json_errors, argv):
    data = json_error(capsys, *argv)
    assert data["line"] is None and data["column"] is None


def test_huge_width_is_refused_without_allocating(capsys):
    """--width 10^12 asked for a 7.28 TiB array; superposition must use fewer neurons than
    outputs, so a width of at least the output count is refused before anything is built."""
    code, out, err = run(capsys, "compile", PAIRS, "--target", "superposed",
                         "--width", "1000000000000")
    assert code == 2 and "Traceback" not in err
    assert "--width" in err and "256" in err


def test_unknown_subcommand_and_missing_argument_json(capsys, json_errors):
    assert json_error(capsys, "frobnicate")["file"] is None
    json_error(capsys, "eval")                      # FILE missing


# ------------------------------------------------------------------ huge expansions

@pytest.mark.parametrize("text, words", [
    ("input x[10000000000]; sparsity 1; output y = x[0];", "input features"),
    ("input x[4]; output y[i] = x[0] for i in 0..10000000000;", "combinations"),
])
def test_expansion_larger_than_memory_is_a_located_error(capsys, json_errors, tmp_path, text,
                                                         words):
    path = tmp_path / "huge.sup"
    path.write_text(text + "\n")
    code, out, err = run(capsys, "check", path, "--max-elements", "100000000000")
    assert code == 2 and "Traceback" not in err
    assert re.match(rf"^{re.escape(str(path))}:1:\d+: error: .*{words}.*memory", err), err
    data = json_error(capsys, "check", path, "--max-elements", "100000000000")
    assert data["file"] == str(path) and data["line"] == 1 and data["column"] >= 1


# ------------------------------------------------------------------ the language

@pytest.mark.parametrize("text, line, column, words", [
    ("input x[4];\noutput z = maj();\n", 2, 12, "maj"),
    ("input x[4];\nwire w = x[0];\noutput z = maj() | w;\n", 3, 12, "at least one"),
])
def test_language_errors_are_located(capsys, json_errors, tmp_path, text, line, column, words):
    path = tmp_path / "bad.sup"
    path.write_text(text)
    with pytest.raises(SupError) as info:
        dsl.load(path)
    assert (info.value.line, info.value.column) == (line, column)
    assert words in info.value.message
    data = json_error(capsys, "eval", path)
    assert (data["file"], data["line"], data["column"]) == (str(path), line, column)


def test_still_valid_threshold_corners():
    """atleast(0, ...) = 1, atmost(0, ...) and maj over an empty generator = 0 stay valid."""
    circuit = dsl.loads("input a, b; output p = atleast(0, a, b); output q = atmost(0, a);"
                        " output r = maj(a for i in 3..1);")
    assert circuit.n_outputs == 3


@pytest.mark.parametrize("func", ["atleast", "atmost", "exactly"])
def test_negative_count_is_a_located_error(capsys, json_errors, tmp_path, func):
    """A count below 0 has no meaning (atleast(-1, a) used to evaluate to 1): refused where K
    is written, also when a generator makes one of many counts negative."""
    path = tmp_path / "neg.sup"
    path.write_text(f"input x[4];\noutput y[i] = {func}(i - 1, x[0], x[1]) for i in 0..3;\n")
    with pytest.raises(SupError) as info:
        dsl.load(path)
    assert (info.value.line, info.value.column) == (2, 16 + len(func))
    assert "K >= 0" in info.value.message and "-1" in info.value.message
    data = json_error(capsys, "check", path)
    assert (data["line"], data["column"]) == (2, 16 + len(func))


# ------------------------------------------------------------------ files that are not text

@pytest.mark.parametrize("data", [bytes(range(256)), b"\x00\x01abc", b"input a;\n\xff\xfe"],
                         ids=["random", "nul", "latin"])
def test_binary_file_is_not_a_text_file(capsys, json_errors, tmp_path, data):
    path = tmp_path / "model.sup"
    path.write_bytes(data)
    code, out, err = run(capsys, "check", path)
    assert code == 2 and "Traceback" not in err
    assert "not a text file" in err and err.startswith(str(path))
    assert "not a text file" in json_error(capsys, "check", path)["error"]


def test_json_error_carries_the_location(capsys, json_errors, tmp_path):
    path = tmp_path / "syntax.sup"
    path.write_text("input a, b;\noutput y = a & ;\n")
    data = json_error(capsys, "compile", path)
    assert data == {"error": data["error"], "file": str(path), "line": 2, "column": 16}
    assert "unexpected" in data["error"]


@pytest.mark.parametrize("code", ["1", "64", "rs"])
def test_codes_on_an_empty_circuit(capsys, tmp_path, code):
    """Found by tests/test_cli_fuzz.py: an empty file with --input-code was a traceback."""
    path = tmp_path / "empty.sup"
    path.write_text("")
    code_, out, err = run(capsys, "compile", path, "--target", "superposed", "--input-code", code)
    assert code_ == 2 and "Traceback" not in err and "at least one input" in err
