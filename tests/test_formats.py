"""Standard circuit formats (dsl/formats): AIGER (.aag, .aig), ISCAS .bench, BLIF, and .sup output.

On the circuits of ../shared/circuits (skipped when that folder is absent):

(a) the reference semantics of every AIGER file agree with py-aiger on its inputs (all of them
    for the small examples, random ones for EPFL); binary .aig files are turned into .aag for
    py-aiger by a small converter written here, independently of the reader;
(b) the .aig and .blif versions of each EPFL circuit have the same names and agree on every
    input (all have at most 2^16 inputs; more would use 20,000 random ones);
(c) import -> `to_sup` -> parse gives the same names, the same gate count and the same function;
(d) c17.bench agrees with examples/c17.sup on all 32 inputs, and the ISCAS files agree with a
    plain-Python interpreter of .bench text written here;
(e) every kind of malformed file gives its exact `FILE:LINE:COL: error:` message: the golden
    files in tests/golden_formats (NAME.EXT and NAME.err, as in tests/test_errors.py, including
    a first line `# limits: max_elements=2` for .bench/.blif files; regenerate with
    SUP_REGEN_GOLDEN=1 and read every change).

Plus small files for each construct of each format, the naming rule, and the command line.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

import dsl
from dsl import SupError, formats
from dsl.formats.names import Namer, group_names
from dsl.semantics import evaluate
from sup.cli import main

CIRCUITS = Path(__file__).resolve().parents[2] / "shared" / "circuits"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GOLDEN = Path(__file__).with_name("golden_formats")
REGEN = bool(os.environ.get("SUP_REGEN_GOLDEN"))
EPFL = ("ctrl", "int2float", "dec", "cavlc")
ISCAS = ("c17", "c432", "c499", "c880")
AIGER_EXAMPLES = ("and", "buffer", "empty", "false", "halfadder", "inverter", "or", "true")
ALL_INPUTS_LIMIT = 1 << 16
RANDOM_INPUTS = 20_000

needs_circuits = pytest.mark.skipif(not CIRCUITS.is_dir(), reason=f"{CIRCUITS} is absent")


def shared(rel: str) -> Path:
    return CIRCUITS / rel


@functools.lru_cache(maxsize=None)
def load(rel: str):
    return formats.load(shared(rel))


def all_or_random(m: int, count: int = RANDOM_INPUTS, seed: int = 0) -> np.ndarray:
    """uint8 [N, m]: every input when there are at most 2^16 of them, else `count` random."""
    if (1 << m) <= ALL_INPUTS_LIMIT:
        n = np.arange(1 << m, dtype=np.int64)
        return ((n[:, None] >> np.arange(m)) & 1).astype(np.uint8)
    return np.random.default_rng(seed).integers(0, 2, size=(count, m), dtype=np.uint8)


ALL_FILES = ([f"aiger/{n}.aag" for n in AIGER_EXAMPLES] + [f"iscas85/{n}.bench" for n in ISCAS]
             + [f"epfl/{n}.{ext}" for n in EPFL for ext in ("aig", "blif")])


# ====================================================================== (a) py-aiger

def aig_to_aag(data: bytes) -> str:
    """Binary AIGER to ASCII, written from the format description (no code shared with the
    reader). Symbols are dropped: the caller names the inputs and outputs."""
    end = data.index(b"\n")
    fields = data[:end].split()
    assert fields[0] == b"aig"
    m, i, l, o, a = (int(x) for x in fields[1:6])
    assert l == 0
    pos = end + 1
    outputs = []
    for _ in range(o):
        end = data.index(b"\n", pos)
        outputs.append(int(data[pos:end]))
        pos = end + 1

    def number():
        nonlocal pos
        value, shift = 0, 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value
    lines = [f"aag {m} {i} 0 {o} {a}"] + [str(2 * (k + 1)) for k in range(i)]
    lines += [str(x) for x in outputs]
    for k in range(a):
        lhs = 2 * (i + k + 1)
        rhs0 = lhs - number()
        rhs1 = rhs0 - number()
        lines.append(f"{lhs} {rhs0} {rhs1}")
    return "\n".join(lines) + "\n"


def with_positional_symbols(aag: str) -> str:
    """The ASCII file with its symbol table replaced by in<k> / out<k> (py-aiger names unnamed
    inputs and outputs by random ids)."""
    head = aag.split("\n")
    _, m, i, l, o, a = head[0].split()[:6]
    body = head[:1 + int(i) + int(l) + int(o) + int(a)]
    symbols = [f"i{k} in{k}" for k in range(int(i))] + [f"o{k} out{k}" for k in range(int(o))]
    return "\n".join(body + symbols) + "\n"


def py_aiger_outputs(aag_text: str, x: np.ndarray, tmp_path) -> np.ndarray:
    import aiger
    path = tmp_path / "circuit.aag"
    path.write_text(with_positional_symbols(aag_text))
    circ = aiger.load(str(path))
    n_out = len(circ.outputs)
    out = np.zeros((len(x), n_out), dtype=np.uint8)
    for r, row in enumerate(x):
        values, _ = circ(inputs={f"in{k}": bool(v) for k, v in enumerate(row)})
        out[r] = [values[f"out{k}"] for k in range(n_out)]
    return out


@needs_circuits
@pytest.mark.parametrize("name", AIGER_EXAMPLES)
def test_aiger_examples_agree_with_py_aiger(name, tmp_path):
    pytest.importorskip("aiger")
    circuit = load(f"aiger/{name}.aag")
    x = all_or_random(circuit.n_inputs)
    text = shared(f"aiger/{name}.aag").read_text()
    assert np.array_equal(evaluate(circuit, x), py_aiger_outputs(text, x, tmp_path))


@needs_circuits
@pytest.mark.parametrize("name", EPFL)
def test_epfl_aig_agrees_with_py_aiger(name, tmp_path):
    pytest.importorskip("aiger")
    circuit = load(f"epfl/{name}.aig")
    x = np.random.default_rng(7).integers(0, 2, size=(64, circuit.n_inputs), dtype=np.uint8)
    text = aig_to_aag(shared(f"epfl/{name}.aig").read_bytes())
    assert np.array_equal(evaluate(circuit, x), py_aiger_outputs(text, x, tmp_path))


@needs_circuits
def test_aiger_symbols_and_default_names():
    half = load("aiger/halfadder.aag")
    assert half.input_names() == ["x", "y"] and half.output_names() == ["s", "c"]
    anded = load("aiger/and.aag")           # no symbol table: families i and o
    assert anded.input_names() == ["i[0]", "i[1]"] and anded.output_names() == ["o[0]"]
    assert load("aiger/empty.aag").n_outputs == 0
    assert evaluate(load("aiger/true.aag"), np.zeros((1, 0), np.uint8)).tolist() == [[1]]
    assert evaluate(load("aiger/false.aag"), np.zeros((1, 0), np.uint8)).tolist() == [[0]]


# ====================================================================== (b) .aig vs .blif

@needs_circuits
@pytest.mark.parametrize("name", EPFL)
def test_epfl_aig_and_blif_agree_on_every_input(name):
    aig, blif = load(f"epfl/{name}.aig"), load(f"epfl/{name}.blif")
    assert aig.input_names() == blif.input_names()
    assert aig.output_names() == blif.output_names()
    x = all_or_random(aig.n_inputs)
    if aig.n_inputs <= 16:
        assert len(x) == 1 << aig.n_inputs
    assert np.array_equal(evaluate(aig, x), evaluate(blif, x))


@needs_circuits
def test_epfl_names_become_families():
    ctrl = load("epfl/ctrl.blif")
    assert [ctrl.graph.nodes[k]["shape"] for k in ctrl.input_nodes] == [(5,), (2,)]
    assert ctrl.input_names()[:2] == ["opcode[0]", "opcode[1]"]
    assert "halt" in ctrl.output_names() and "alu_op[2]" in ctrl.output_names()
    dec = load("epfl/dec.aig")
    assert [dec.graph.nodes[k]["name"] for k in dec.input_nodes] == ["count"]


# ====================================================================== (c) round trip

@needs_circuits
@pytest.mark.parametrize("rel", ALL_FILES)
def test_import_write_parse_same_function(rel):
    circuit = load(rel)
    text = formats.to_sup(circuit, f"from {rel}")
    back = dsl.loads(text, "roundtrip.sup")
    assert back.name == circuit.name
    assert back.input_names() == circuit.input_names()
    assert back.output_names() == circuit.output_names()
    assert back.n_gates == circuit.n_gates
    x = all_or_random(circuit.n_inputs, count=2_000, seed=3)
    assert np.array_equal(evaluate(back, x), evaluate(circuit, x))


@pytest.mark.parametrize("name", ["c17", "xor_majority", "lookup_table", "table_file", "multilevel",
                                  "sparse_features", "permutation", "pairs_small"])
def test_sup_examples_write_back(name):
    """to_sup takes any Circuit: families of several dimensions, tables, sparsity."""
    circuit = dsl.load(EXAMPLES / f"{name}.sup")
    back = dsl.loads(formats.to_sup(circuit), f"{name}_back.sup")
    assert back.input_names() == circuit.input_names()
    assert back.output_names() == circuit.output_names()
    assert back.sparsity == circuit.sparsity
    x = np.random.default_rng(1).integers(0, 2, size=(500, circuit.n_inputs), dtype=np.uint8)
    if circuit.sparsity is not None:      # inputs of the domain: at most K ones
        for row in x:
            ones = np.flatnonzero(row)
            row[ones[circuit.sparsity:]] = 0
    assert np.array_equal(evaluate(back, x), evaluate(circuit, x))


def test_writer_output_is_readable():
    circuit = formats.read_bench("t.bench", text="INPUT(a)\nINPUT(b)\nINPUT(c)\nOUTPUT(y)\n"
                                 "OUTPUT(z)\nt = NAND(a, b)\ny = XOR(t, c)\nz = NOR(t, c)\n")
    assert formats.to_sup(circuit) == (
        "circuit t;\n\ninput a, b, c;\n\nwire not_t = a & b;\n"
        "output y = !(c ^ not_t);\noutput z = !(c | !not_t);\n")


# ====================================================================== (d) ISCAS

def bench_reference(text: str, x: np.ndarray) -> np.ndarray:
    """Plain-Python .bench interpreter (repeated passes until every net is known)."""
    inputs = re.findall(r"^INPUT\((\S+)\)", text, re.M)
    outputs = re.findall(r"^OUTPUT\((\S+)\)", text, re.M)
    gates = {n: (t, [a.strip() for a in args.split(",")])
             for n, t, args in re.findall(r"^(\S+)\s*=\s*(\w+)\((.*)\)", text, re.M)}
    funcs = {"AND": all, "NAND": lambda v: not all(v), "OR": any, "NOR": lambda v: not any(v),
             "XOR": lambda v: sum(v) % 2 == 1, "XNOR": lambda v: sum(v) % 2 == 0,
             "NOT": lambda v: not v[0], "BUFF": lambda v: v[0], "BUF": lambda v: v[0]}
    out = np.zeros((len(x), len(outputs)), dtype=np.uint8)
    for r, row in enumerate(x):
        value = {n: bool(v) for n, v in zip(inputs, row)}
        while len(value) < len(inputs) + len(gates):
            for n, (t, args) in gates.items():
                if n not in value and all(a in value for a in args):
                    value[n] = funcs[t]([value[a] for a in args])
        out[r] = [value[n] for n in outputs]
    return out


@needs_circuits
@pytest.mark.parametrize("name", ISCAS)
def test_iscas_agrees_with_plain_interpreter(name):
    circuit = load(f"iscas85/{name}.bench")
    x = all_or_random(circuit.n_inputs, count=300, seed=5)
    want = bench_reference(shared(f"iscas85/{name}.bench").read_text(), x)
    assert np.array_equal(evaluate(circuit, x), want)


@needs_circuits
def test_c17_agrees_with_example():
    bench, sup = load("iscas85/c17.bench"), dsl.load(EXAMPLES / "c17.sup")
    assert bench.input_names() == sup.input_names() == ["N1", "N2", "N3", "N6", "N7"]
    assert bench.output_names() == sup.output_names() == ["N22", "N23"]
    x = all_or_random(5)
    assert len(x) == 32
    assert np.array_equal(evaluate(bench, x), evaluate(sup, x))
    assert bench.n_gates == sup.n_gates


# ====================================================================== constructs

def table_of(circuit) -> np.ndarray:
    return evaluate(circuit, all_or_random(circuit.n_inputs))


def test_bench_gates_in_any_order_and_every_type():
    text = """# gates listed before their inputs are defined
OUTPUT(y1)
OUTPUT(y2)
OUTPUT(y3)
OUTPUT(a)
y1 = XNOR(t, c, a)
y2 = NOR(a, b, c)
y3 = BUFF(t)
t = nand(a, b)
INPUT(a)
INPUT(b)
INPUT(c)
"""
    circuit = formats.read_bench("order.bench", text=text)
    assert circuit.input_names() == ["a", "b", "c"]
    assert circuit.output_names() == ["y1", "y2", "y3", "a_out"]
    got = table_of(circuit)
    for row, (a, b, c) in zip(got, [((n >> 0) & 1, (n >> 1) & 1, (n >> 2) & 1) for n in range(8)]):
        t = 1 - (a & b)
        assert row.tolist() == [1 - (t ^ c ^ a), 1 - (a | b | c), t, a]


def test_blif_covers_offset_constants_continuations():
    text = """.model m   # the name is not used
.inputs a b \\
   c
.outputs y z one zero w
.names a b c y
1-0 1
-11 1
.names a b z
11 0
.names one
1
.names zero
.names a \\
  w
0 1
.end
"""
    circuit = formats.read_blif("cov.blif", text=text)
    assert circuit.name == "cov" and circuit.input_names() == ["a", "b", "c"]
    got = table_of(circuit)
    for n, row in enumerate(got):
        a, b, c = n & 1, (n >> 1) & 1, (n >> 2) & 1
        assert row.tolist() == [(a & (1 - c)) | (b & c), 1 - (a & b), 1, 0, 1 - a]


def test_aag_any_order_constants_and_negated_outputs():
    # ANDs listed out of order; outputs: a negated AND, constant true, an input
    text = "aag 5 2 0 3 3\n2\n4\n11\n1\n4\n10 8 6\n6 2 4\n8 3 5\ni0 a\ni1 b\no0 nor_or_and\nc\nhi\n"
    circuit = formats.read_aiger("x.aag", data=text.encode())
    assert circuit.output_names() == ["nor_or_and", "o[1]", "o[2]"]
    got = table_of(circuit)
    for n, row in enumerate(got):
        a, b = n & 1, (n >> 1) & 1
        assert row.tolist() == [1 - ((a & b) & ((1 - a) & (1 - b))), 1, b]


def test_binary_aiger_decodes_large_deltas():
    # one AND of two inputs with literal numbers above 127: the deltas take two bytes
    i = 200
    lhs = 2 * (i + 1)
    d0, d1 = lhs - 400, 400 - 2          # rhs0 = 400 (input 199), rhs1 = 2 (input 0)
    enc = bytes([d0]) + bytes([(d1 & 0x7F) | 0x80, d1 >> 7])
    data = f"aig {i + 1} {i} 0 1 1\n{lhs}\n".encode() + enc
    circuit = formats.read_aiger("big.aig", data=data)
    x = np.zeros((4, i), np.uint8)
    x[1, 0] = x[2, 199] = 1
    x[3, [0, 199]] = 1
    assert evaluate(circuit, x)[:, 0].tolist() == [0, 0, 0, 1]


def test_dead_logic_is_dropped_but_checked():
    circuit = formats.read_bench("dead.bench", text="INPUT(a)\nOUTPUT(a)\nu = NOT(a)\n")
    assert circuit.n_gates == 0
    with pytest.raises(SupError, match="never defined"):
        formats.read_bench("dead.bench", text="INPUT(a)\nOUTPUT(a)\nu = NOT(q)\n")


def test_inverted_nets_make_no_unused_gates():
    # NAND read through NOT: the NAND's negation is never built
    circuit = formats.read_bench("n.bench", text="INPUT(a)\nINPUT(b)\nOUTPUT(y)\n"
                                 "t = NAND(a, b)\ny = NOT(t)\n")
    assert circuit.n_gates == 1


# ====================================================================== naming rule

def names_of(names, inputs=True, avoid=frozenset()):
    return [(g.name, g.shape) for g in group_names(names, inputs, Namer(), avoid)]


def test_naming_rule():
    assert names_of(["x[0]", "x[1]", "x[2]", "N1"]) == [("x", (3,)), ("N1", ())]
    # not consecutive, not 0..n-1, or the base also used plainly: sanitized scalars
    assert names_of(["x[0]", "y", "x[1]"]) == [("x_0", ()), ("y", ()), ("x_1", ())]
    assert names_of(["x[1]", "x[2]"]) == [("x_1", ()), ("x_2", ())]
    assert names_of(["x", "x[0]"]) == [("x", ()), ("x_0", ())]
    # outputs: distinct indices in any order form a family
    assert names_of(["y[2]", "y[0]"], inputs=False) == [("y", (2,))]
    assert names_of(["y[0]", "y[0]"], inputs=False) == [("y_0", ()), ("y_0_2", ())]
    # keywords, function names, odd characters, leading digits, repeats
    assert names_of(["input", "xor", "a.b", "22", "a$b"]) == [
        ("input_", ()), ("xor_", ()), ("a_b", ()), ("n22", ()), ("a_b_2", ())]
    assert names_of(["in[0]", "in[1]"]) == [("in_0", ()), ("in_1", ())]
    # an output named like an input
    assert names_of(["a", "b[0]"], inputs=False, avoid={"a", "b"}) == [("a_out", ()),
                                                                       ("b_out", (1,))]


# ====================================================================== (e) errors

GOLDEN_CASES = sorted(p.name for p in GOLDEN.iterdir() if p.suffix in formats.EXTENSIONS) \
    if GOLDEN.is_dir() else []


def test_every_error_kind_has_a_golden_file():
    stems = {Path(n).stem for n in GOLDEN_CASES}
    for kind in ("aag_undefined_literal", "aag_cycle", "aag_bad_header", "aag_wrong_counts",
                 "aag_latch", "aag_duplicate_definition", "aag_truncated", "aig_truncated",
                 "aig_latch", "aig_wrong_counts", "aag_counts_over_limit", "aig_inputs_over_limit",
                 "bench_too_many_gates", "bench_unknown_gate",
                 "bench_undefined_signal", "bench_cycle", "bench_duplicate_definition",
                 "bench_dff", "blif_latch", "blif_subckt", "blif_undefined_signal", "blif_cycle",
                 "blif_duplicate_definition", "blif_mixed_cover", "blif_row_width"):
        assert kind in stems


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden_error(name, monkeypatch):
    monkeypatch.chdir(GOLDEN)
    first = (GOLDEN / name).read_bytes().split(b"\n", 1)[0].decode("latin-1")
    match = re.match(r"#\s*limits:\s*(.*)", first)    # as in tests/test_errors.py
    limits = None
    if match:
        values = dict(item.split("=") for item in match.group(1).replace(" ", "").split(","))
        limits = dsl.Limits(**{key: int(value) for key, value in values.items()})
    with pytest.raises(SupError) as info:
        formats.load(name, limits)
    err = info.value
    shown = str(err)
    assert re.match(rf"{re.escape(name)}:\d+:\d+: error: ", shown), shown
    golden = GOLDEN / (Path(name).stem + ".err")
    if REGEN:
        golden.write_text(shown + "\n")
    assert golden.exists(), f"no golden message for {name}: run with SUP_REGEN_GOLDEN=1"
    assert shown == golden.read_text().rstrip("\n")


def test_unreadable_file_is_a_sup_error(tmp_path):
    with pytest.raises(SupError, match="cannot read the file"):
        formats.load(tmp_path / "missing.bench")
    bad = tmp_path / "bad.bench"
    bad.write_bytes(b"INPUT(a)\nOUTPUT(\xff)\n")
    with pytest.raises(SupError, match="not UTF-8"):
        formats.load(bad)


@pytest.mark.parametrize("data", [b"", b"aag", b"aag 1 1 0 1 0\n", b"aig 1 1 0 1 1\n2\n",
                                  b"aag 0 0 0 0 0 0 0 0 0 1\n", b"\x00\xff\x80",
                                  b"aig 2 1 0 1 1\n4\n\x80"])
def test_damaged_aiger_bytes_are_errors(data):
    for ext in (".aag", ".aig"):
        with pytest.raises(SupError) as info:
            formats.read_aiger(f"d{ext}", data=data)
        assert info.value.line >= 1


def test_random_damage_never_crashes():
    """Truncations and byte flips of real files give a circuit or a SupError, nothing else."""
    rng = np.random.default_rng(11)
    samples = [("x.aag", b"aag 7 2 0 2 3\n2\n4\n6\n12\n6 13 15\n12 2 4\n14 3 5\ni0 x\no1 c\n"),
               ("x.bench", b"INPUT(a)\nINPUT(b)\nOUTPUT(y)\nt = NAND(a, b)\ny = XOR(t, a)\n"),
               ("x.blif", b".model m\n.inputs a b\n.outputs y\n.names a b y\n1- 1\n-0 1\n.end\n")]
    if CIRCUITS.is_dir():
        samples.append(("x.aig", shared("epfl/ctrl.aig").read_bytes()))
    readers = {".aag": formats.read_aiger, ".aig": formats.read_aiger}
    for name, data in samples:
        for _ in range(60):
            damaged = bytearray(data)
            if rng.random() < 0.5:
                damaged = damaged[:int(rng.integers(0, len(data)))]
            else:
                for _ in range(int(rng.integers(1, 4))):
                    damaged[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
            suffix = Path(name).suffix
            try:
                if suffix in readers:
                    readers[suffix](name, data=bytes(damaged))
                else:
                    reader = formats.read_bench if suffix == ".bench" else formats.read_blif
                    reader(name, text=bytes(damaged).decode("latin-1"))
            except SupError as err:
                assert err.line >= 0 and err.message


# ====================================================================== command line

@needs_circuits
def test_cli_import_json_and_output_file(tmp_path, capsys):
    out = tmp_path / "c432.sup"
    assert main(["import", str(shared("iscas85/c432.bench")), "-o", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {k: info[k] for k in ("name", "inputs", "outputs", "gates")} == {
        "name": "c432", "inputs": 36, "outputs": 7, "gates": 229}
    assert out.read_text().startswith("# imported from c432.bench")
    assert dsl.load(out).n_gates == 229


@needs_circuits
def test_cli_import_to_stdout(capsys):
    assert main(["import", str(shared("aiger/halfadder.aag"))]) == 0
    text = capsys.readouterr().out
    assert "circuit halfadder;" in text and "output c = " in text


@needs_circuits
@pytest.mark.parametrize("rel", ["epfl/int2float.aig", "epfl/ctrl.blif", "iscas85/c17.bench",
                                 "aiger/halfadder.aag", "aiger/false.aag", "aiger/empty.aag"])
def test_cli_commands_read_formats(rel, capsys, tmp_path):
    path = str(shared(rel))
    assert main(["check", path, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["inputs"] == load(rel).n_inputs and info["sparsity"] is None
    assert main(["verify", path, "--method", "exhaustive", "--json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True
    assert main(["graph", path, "-o", str(tmp_path / "g.dot")]) == 0
    capsys.readouterr()


@needs_circuits
def test_cli_eval_and_compile(capsys):
    assert main(["eval", str(shared("iscas85/c17.bench")), "--active", "N1,N3", "--json"]) == 0
    outputs = json.loads(capsys.readouterr().out)["outputs"]
    assert outputs == {"N22": 1, "N23": 0}     # N10 = 0, N11 = N16 = N19 = 1
    assert main(["compile", str(shared("epfl/dec.blif")), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["neurons"] > 0


def test_cli_bad_file_exit_2(capsys):
    code = main(["check", str(GOLDEN / "bench_cycle.bench")])
    err = capsys.readouterr().err
    assert code == 2
    assert "bench_cycle.bench:3:1: error: combinational cycle: N3 -> N4 -> N5 -> N3" in err
