"""Tests of the `sup` command line (contract: shared/sup-cli.md), run in-process through
`sup.cli.main`: the --json fields and their values for c17 and pairs_small (hand-computed),
exit codes for bad input, graph export read back with networkx, compile -o read back with
backends.load.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re

import networkx as nx
import numpy as np
import pytest

import dsl
from backends import load
from compiler import compile_circuit
from dsl.domain import SparseDomain
from sup.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C17 = os.path.join(ROOT, "examples", "c17.sup")
PAIRS = os.path.join(ROOT, "examples", "pairs_small.sup")
LOOKUP = os.path.join(ROOT, "examples", "lookup_table.sup")


def run(capsys, *argv):
    """(exit status, parsed JSON of stdout or None, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    data = None
    if "--json" in argv and out.strip():
        lines = out.strip().splitlines()
        assert len(lines) == 1, "--json prints exactly one JSON object (one line)"
        data = json.loads(lines[0])
        assert isinstance(data, dict)
    return code, data, err


def pair_names(circuit_path=PAIRS):
    """The (u, v) of every output y[u,v] of pairs_small, in order."""
    names = dsl.load(circuit_path).output_names()
    out = []
    for name in names:
        m = re.fullmatch(r"y\[(\d+),(\d+)\]", name)
        assert m, name
        out.append((int(m.group(1)), int(m.group(2))))
    return out


# ====================================================================== check

def test_check_c17(capsys):
    code, data, _ = run(capsys, "check", C17, "--json")
    assert code == 0
    expected = {
        "name": "c17", "inputs": 5, "outputs": 2,
        "wires": 4,                    # N10 N11 N16 N19
        "gates": 12,                   # six NANDs, each !(x & y): 6 and + 6 not
        "depth": 6,                    # three NAND levels, two gates each
        "sparsity": None, "domain_size": 32,
    }
    assert {k: data[k] for k in expected} == expected


def test_check_pairs_small(capsys):
    code, data, _ = run(capsys, "check", PAIRS, "--json")
    assert code == 0
    expected = {"name": "pairs_small", "inputs": 64, "outputs": 256, "wires": 0, "gates": 256,
                "depth": 1, "sparsity": 2, "domain_size": 1 + 64 + 64 * 63 // 2}
    assert {k: data[k] for k in expected} == expected


def test_check_text_mode(capsys):
    assert main(["check", C17]) == 0
    out = capsys.readouterr().out
    assert "c17" in out and "32" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


# ====================================================================== eval

def c17_by_hand(n1, n2, n3, n6, n7):
    nand = lambda a, b: 1 - (a & b)  # noqa: E731
    n10, n11 = nand(n1, n3), nand(n3, n6)
    n16, n19 = nand(n2, n11), nand(n11, n7)
    return {"N22": nand(n10, n16), "N23": nand(n16, n19)}


def test_eval_c17_every_input(capsys):
    names = ["N1", "N2", "N3", "N6", "N7"]
    for bits in itertools.product([0, 1], repeat=5):
        active = ",".join(n for n, b in zip(names, bits) if b)
        code, data, _ = run(capsys, "eval", C17, "--active", active, "--json")
        assert code == 0
        assert data["outputs"] == c17_by_hand(*bits), bits
        assert all(type(v) is int for v in data["outputs"].values())


def test_eval_pairs_small(capsys):
    pairs = pair_names()
    u, v = pairs[17]
    code, data, _ = run(capsys, "eval", PAIRS, "--active", f"x[{u}],x[{v}]", "--json")
    assert code == 0
    outputs = data["outputs"]
    assert len(outputs) == 256
    assert outputs[f"y[{u},{v}]"] == 1
    assert sum(outputs.values()) == 1
    # a pair that is not an output, a single feature, and nothing: every output 0
    missing = next((a, b) for a in range(64) for b in range(a + 1, 64) if (a, b) not in pairs)
    for active in (f"x[{missing[0]}],x[{missing[1]}]", f"x[{u}]", ""):
        code, data, _ = run(capsys, "eval", PAIRS, "--active", active, "--json")
        assert code == 0 and set(data["outputs"].values()) == {0}, active
    code, data, _ = run(capsys, "eval", PAIRS, "--json")
    assert code == 0 and sum(data["outputs"].values()) == 0


def test_eval_dont_care(capsys):
    # store without immediate: op = 011, imm = 0 -> ctl = 0*100; mem_read is don't care but
    # touches_mem = mem_read | mem_write = 1 regardless
    code, data, _ = run(capsys, "eval", LOOKUP, "--active", "op[1],op[0]", "--json")
    assert code == 0
    out = data["outputs"]
    assert out["ctl[0]"] == 0 and out["ctl[1]"] is None and out["ctl[2]"] == 1
    assert out["touches_mem"] == 1 and out["legal"] == 1


def test_eval_unknown_input(capsys):
    code, data, err = run(capsys, "eval", C17, "--active", "N1,N4", "--json")
    assert code == 2 and "N4" in data["error"]
    assert "N4" in err and "error" in err
    code, _, err = run(capsys, "eval", PAIRS, "--active", "x[64]", "--json")
    assert code == 2 and "x[64]" in err


# ====================================================================== compile

def test_compile_c17(capsys):
    code, data, _ = run(capsys, "compile", C17, "--target", "dense", "--json")
    assert code == 0
    # hand count (see tests/test_compiler.py::test_accounting_c17_by_hand): layers of 4, 3, 2
    # neurons (6 NAND neurons, carries of N2, N7 and N10), weights 6/5/4/2, biases 2/0/2/2
    expected = {"target": "dense", "neurons": 9, "layers": 4, "params_nonzero": 23,
                "params_dense": 24 + 15 + 8 + 6, "ops_per_input_max": 39,
                "ops_per_input_mean": 36.0}
    assert {k: data[k] for k in expected} == expected
    b = data["bounds"]
    assert b["m_prime"] == 2
    assert b["lower_neurons"] == pytest.approx(math.sqrt(2), abs=1e-3)
    assert b["upper_params"] == pytest.approx(2.0)
    assert b["neurons_over_naive"] == pytest.approx(4.5)


def test_compile_pairs_small(capsys):
    code, data, _ = run(capsys, "compile", PAIRS, "--json")      # dense is the default
    assert code == 0
    degree = np.zeros(64, int)
    for u, v in pair_names():
        degree[u] += 1
        degree[v] += 1
    # 256 neurons relu(x_u + x_v - 1): 512 weights + 256 biases; read-out 256 weights
    fixed = 256 + (256 + 256) + 256 + 256     # later weights, bias adds, ReLUs, thresholds
    mean_active = (64 + 2 * 2016) / 2081
    expected = {"target": "dense", "neurons": 256, "layers": 2, "params_nonzero": 1024,
                "params_dense": 256 * 64 + 256 + 256 * 256 + 256,
                "ops_per_input_max": fixed + int(np.sort(degree)[-2:].sum())}
    assert {k: data[k] for k in expected} == expected
    assert data["ops_per_input_mean"] == pytest.approx(fixed + 512 * mean_active / 64, abs=1e-3)
    b = data["bounds"]
    assert b["m_prime"] == 256
    assert b["lower_neurons"] == pytest.approx(math.sqrt(256 * 8), abs=1e-3)
    assert b["lower_params"] == pytest.approx(256 * 8)
    assert b["upper_neurons"] == pytest.approx(16 * 8)
    assert b["upper_params"] == pytest.approx(256 * 64)
    assert b["naive_neurons"] == 256
    assert b["neurons_over_naive"] == pytest.approx(1.0)


def test_compile_conditional_target(capsys, tmp_path):
    model = tmp_path / "c17tree"
    code, data, _ = run(capsys, "compile", C17, "--target", "conditional", "-o", model, "--json")
    assert code == 0 and data["target"] == "conditional"
    for key in ("neurons", "layers", "params_nonzero", "params_dense", "ops_per_input_max",
                "ops_per_input_mean", "bounds"):
        assert key in data
    assert data["neurons"] == data["conditional"]["gates"] > 0
    assert data["ops_per_input_max"] < data["conditional"]["unconditional_ops_max"]
    code, report, _ = run(capsys, "verify", C17, "--model", model, "--method", "exhaustive", "--json")
    assert code == 0 and report["verified"] is True and report["target"] == "conditional"


def test_compile_conditional_options_errors(capsys):
    code, data, err = run(capsys, "compile", C17, "--target", "conditional", "--max-domain", "0")
    assert code == 2 and "--max-domain" in err
    code, data, err = run(capsys, "compile", C17, "--target", "conditional", "--max-domain", "4",
                          "--json")
    assert code == 2 and "--max-domain" in data["error"]
    assert "--max-domain" in err and "Traceback" not in err


def test_compile_unknown_target(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compile", C17, "--target", "bogus", "--json"])
    assert exc.value.code == 2
    assert "bogus" in capsys.readouterr().err


def test_compile_output_model(capsys, tmp_path):
    model = tmp_path / "c17model"
    code, data, _ = run(capsys, "compile", C17, "-o", model, "--json")
    assert code == 0
    assert data["model"] == str(tmp_path / "c17model.safetensors")
    assert (tmp_path / "c17model.safetensors").exists() and (tmp_path / "c17model.json").exists()
    net = load(data["model"])
    fresh = compile_circuit(dsl.load(C17), "dense")
    x = np.array(list(itertools.product([0, 1], repeat=5)), dtype=bool)
    assert np.array_equal(net.forward(x), fresh.forward(x))
    assert net.output_names() == ["N22", "N23"]
    want = np.array([[c17_by_hand(*r)[n] for n in ("N22", "N23")] for r in x.astype(int)])
    assert np.array_equal(net.decide(x), want == 1)
    meta = json.loads((tmp_path / "c17model.json").read_text())
    assert meta["accounting"]["neurons"] == 9


def test_compile_output_unwritable(capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, _, err = run(capsys, "compile", C17, "-o", blocker / "dir" / "m", "--json")
    assert code == 2 and "error" in err


def test_compile_output_creates_missing_folders(capsys, tmp_path):
    code, data, _ = run(capsys, "compile", C17, "-o", tmp_path / "new" / "dir" / "m", "--json")
    assert code == 0 and (tmp_path / "new" / "dir" / "m.safetensors").exists()


def test_compile_onnx(capsys, tmp_path):
    onnx = pytest.importorskip("onnx")
    path = tmp_path / "c17.onnx"
    code, data, _ = run(capsys, "compile", C17, "--onnx", path, "--json")
    assert code == 0 and path.exists()
    from onnx.reference import ReferenceEvaluator
    x = np.array(list(itertools.product([0, 1], repeat=5)), dtype=np.float32)
    y = ReferenceEvaluator(onnx.load(str(path))).run(None, {"x": x})[0]
    want = np.array([[c17_by_hand(*r)[n] for n in ("N22", "N23")] for r in x.astype(int)])
    assert np.array_equal(y > 0.5, want == 1)


# ====================================================================== bad input files

BAD = {
    "syntax.sup": ("input a, b;\noutput y = a & ;\n", 2, 16, "unexpected ';'"),
    "undefined.sup": ("input a, b;\noutput y = a & c;\n", 2, 16, "'c' is not defined"),
    "redefined.sup": ("input a, b;\n\n  wire a = b;\noutput y = a;\n", 3, 8,
                      "'a' is already defined"),
}


@pytest.mark.parametrize("fname", sorted(BAD))
@pytest.mark.parametrize("command", ["check", "eval", "compile", "graph"])
def test_bad_file_exit_2_with_location(capsys, tmp_path, fname, command):
    text, line, column, words = BAD[fname]
    path = tmp_path / fname
    path.write_text(text)
    extra = ["-o", tmp_path / "g.dot"] if command == "graph" else []
    code, data, err = run(capsys, command, path, *extra, "--json")
    assert code == 2 and words in data["error"]
    assert (data["file"], data["line"], data["column"]) == (str(path), line, column)
    first = err.splitlines()[0]
    m = re.match(r"^(.*):(\d+):(\d+): error: (.*)$", first)
    assert m, err
    assert m.group(1) == str(path)
    assert int(m.group(2)) == line
    assert int(m.group(3)) == column
    assert words in m.group(4)
    lines = err.splitlines()
    source = text.splitlines()[line - 1]
    assert lines[1].endswith(source)                       # the source line, indented
    indent = len(lines[1]) - len(source)
    assert lines[2].rstrip() == " " * (indent + column - 1) + "^"   # caret under the column
    assert "Traceback" not in err


def test_missing_file_exit_2(capsys, tmp_path):
    code, _, err = run(capsys, "check", tmp_path / "nope.sup", "--json")
    assert code == 2 and "error" in err and "Traceback" not in err


# ====================================================================== graph

def read_dot(path) -> nx.DiGraph:
    """DOT as written by dsl/export.py, read back (pydot when installed, else a small parser of
    node and edge statements)."""
    try:
        import pydot  # noqa: F401
        return nx.DiGraph(nx.nx_pydot.read_dot(str(path)))
    except ImportError:
        pass
    g = nx.DiGraph()
    text = path.read_text()
    assert text.startswith("digraph") and text.rstrip().endswith("}")
    for m in re.finditer(r'^\s*(\w+) \[label="((?:[^"\\]|\\.)*)"', text, re.M):
        g.add_node(m.group(1), label=m.group(2))
    for m in re.finditer(r"^\s*(\w+) -> (\w+)", text, re.M):
        assert m.group(1) in g and m.group(2) in g
        g.add_edge(m.group(1), m.group(2))
    return g


@pytest.mark.parametrize("example", [C17, PAIRS, LOOKUP])
def test_graph_dot_and_graphml(capsys, tmp_path, example):
    circuit = dsl.load(example)
    for suffix in (".dot", ".graphml"):
        out = tmp_path / f"g{suffix}"
        code, data, _ = run(capsys, "graph", example, "-o", out, "--json")
        assert code == 0 and out.exists()
        back = read_dot(out) if suffix == ".dot" else nx.read_graphml(str(out))
        assert back.number_of_nodes() == circuit.graph.number_of_nodes()
        assert back.number_of_edges() == circuit.graph.number_of_edges()
        assert nx.is_isomorphic(nx.DiGraph(back), circuit.graph)
        if suffix == ".graphml":
            assert set(back.nodes) == set(circuit.graph.nodes)
            assert set(back.edges) == set(circuit.graph.edges)
            for key, attrs in back.nodes(data=True):
                assert attrs["kind"] == circuit.graph.nodes[key]["kind"]


def test_graph_bad_suffix(capsys, tmp_path):
    code, _, err = run(capsys, "graph", C17, "-o", tmp_path / "g.png", "--json")
    assert code == 2 and "error" in err


def test_domain_size_matches_sparse_domain(capsys):
    for path in (C17, PAIRS, LOOKUP):
        code, data, _ = run(capsys, "check", path, "--json")
        c = dsl.load(path)
        assert data["domain_size"] == SparseDomain(c.n_inputs, c.sparsity).size


def test_compile_superposed_reports_what_was_superposed(capsys):
    code, data, _ = run(capsys, "compile", "examples/pairs_small.sup", "--target", "superposed",
                        "--json")
    assert code == 0 and data["target"] == "superposed"
    assert data["superposed"]["superposed_outputs"] == 256
    assert data["neurons"] == data["superposed"]["channel_neurons"] < 256


def test_check_domain_of_a_dont_care_table_is_its_rows(capsys):
    path = os.path.join(os.path.dirname(C17), "table_file.sup")
    code, data, _ = run(capsys, "check", path, "--json")
    rows = sum(1 for line in open(os.path.join(os.path.dirname(C17), "table_file.rows"))
               if line.strip() and not line.startswith(("#", "default")))
    assert code == 0 and data["domain"] == "table rows" and data["domain_size"] == rows == 10
    code, data, _ = run(capsys, "check", C17, "--json")
    assert data["domain"] == "sparse" and data["domain_size"] == 32


def test_conditional_huge_max_domain_is_bounded(capsys):
    """A huge --max-domain cannot make synthesis enumerate a 2^30-input cone: clear error."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "wide.sup")
        with open(path, "w") as fh:
            fh.write("input x[30]; output y = xor(x[i] for i in 0..30);\n")
        code, data, err = run(capsys, "compile", path, "--target", "conditional",
                              "--max-domain", str(10 ** 12))
    assert code == 2 and "memory bound" in err and "Traceback" not in err
