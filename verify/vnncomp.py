"""VNN-COMP benchmarks from a compiled network: ONNX models, VNN-LIB properties, instances.csv.

One ONNX graph per instance (float32, MatMul + Add + Relu, batch 1): input `X` [1, m] (the m
features), output `Y` [1, 2n + 2], the concatenation of

* Y[0:n]     the network under test (its input map and layers, as sup runs it);
* Y[n:2n]    the reference: the circuit's dense network (exact 0/1 on boolean inputs), a
             second path of the same graph, so that the property stays linear;
* Y[2n]      booleanness: sum relu(x) - sum relu(2x - 1), which is >= 0 on the box [0, 1]
             and 0 exactly when every x_i is 0 or 1 (as NeuroCodeBench's sat_relu);
* Y[2n + 1]  sum x, the number of active features (the sparsity promise sum x <= K).

The VNN-LIB 1.0 property (`<=` / `>=` only, DNF with explicit `and`) asks for a violation:
X in [0, 1]^m, Y[2n] <= 0, Y[2n+1] <= K, and for some output j either (reference 1, network
<= t) or (reference 0, network >= t), t the network's decision threshold. A network correct on
the sparse domain makes it unsat (a read-out exactly at t with reference 0 is conservatively a
violation). `plant_bug` makes sat variants: one output's read-out bias shifted so that it is
wrong by 0.5 on a chosen domain input, the witness, which `replay` checks with onnxruntime.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compiler import compile_circuit
from compiler.network import Network
from dsl.domain import SparseDomain, to_dense, verification_domain
from dsl.semantics import DONT_CARE, evaluate_active

OPSET = 17
MAX_CHECK_INPUTS = 200_000


class VnncompError(ValueError):
    """The circuit, network or environment cannot give a VNN-COMP benchmark."""


@dataclass
class Instance:
    """One benchmark instance: files (relative to the benchmark folder) and expected answer."""
    onnx: str
    vnnlib: str
    expected: str                       # "unsat" or "sat"
    witness: list = field(default_factory=list)    # active feature names (sat instances)
    replayed: bool | None = None        # the witness satisfies the property under onnxruntime


def _onnx():
    """The onnx module (optional dependency)."""
    try:
        import onnx  # optional: the onnx extra
    except ImportError:
        raise VnncompError("VNN-COMP export needs the onnx package: pip install onnx") from None
    return onnx


def _path_nodes(net: Network, prefix: str, out: str, helper, numpy_helper) -> tuple:
    """(nodes, initializers) computing `net`'s read-out from `X` into tensor `out`."""
    first = np.zeros((net.n_inputs, net.input_width), dtype=np.float32)
    np.add.at(first, (np.arange(net.n_inputs), net.input_map), 1)
    inits = [numpy_helper.from_array(first, f"{prefix}_map")]
    nodes = [helper.make_node("MatMul", ["X", f"{prefix}_map"], [f"{prefix}_h0"])]
    current = f"{prefix}_h0"
    for i, layer in enumerate(net.layers):
        last = i == len(net.layers) - 1
        w, b = f"{prefix}_W{i}", f"{prefix}_b{i}"
        inits += [numpy_helper.from_array(layer.dense().T.astype(np.float32), w),
                  numpy_helper.from_array(layer.bias.astype(np.float32).reshape(1, -1), b)]
        nodes.append(helper.make_node("MatMul", [current, w], [f"{prefix}_mm{i}"]))
        pre = f"{prefix}_pre{i}"
        nxt = out if last else f"{prefix}_h{i + 1}"
        nodes.append(helper.make_node("Add", [f"{prefix}_mm{i}", b], [pre if layer.relu else nxt]))
        if layer.relu:
            nodes.append(helper.make_node("Relu", [pre], [nxt]))
        current = nxt
    return nodes, inits


def _aux_nodes(m: int, helper, numpy_helper) -> tuple:
    """(nodes, initializers) of the booleanness (`aux_bool`) and count (`aux_count`) outputs."""
    eye = np.eye(m, dtype=np.float32)
    inits = [numpy_helper.from_array(np.hstack([eye, 2 * eye]), "aux_A"),
             numpy_helper.from_array(np.concatenate([np.zeros(m), -np.ones(m)])
                                     .astype(np.float32).reshape(1, -1), "aux_c"),
             numpy_helper.from_array(np.concatenate([np.ones(m), -np.ones(m)])
                                     .astype(np.float32).reshape(-1, 1), "aux_v"),
             numpy_helper.from_array(np.ones((m, 1), dtype=np.float32), "aux_ones")]
    nodes = [helper.make_node("MatMul", ["X", "aux_A"], ["aux_mm"]),
             helper.make_node("Add", ["aux_mm", "aux_c"], ["aux_pre"]),
             helper.make_node("Relu", ["aux_pre"], ["aux_relu"]),
             helper.make_node("MatMul", ["aux_relu", "aux_v"], ["aux_bool"]),
             helper.make_node("MatMul", ["X", "aux_ones"], ["aux_count"])]
    return nodes, inits


def build_onnx(net: Network, reference: Network):
    """The instance's ONNX graph (module docstring): X [1, m] -> Y [1, 2n + 2]."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper  # optional, present once _onnx() passed
    nodes, inits = _path_nodes(net, "net", "y_net", helper, numpy_helper)
    more, more_inits = _path_nodes(reference, "ref", "y_ref", helper, numpy_helper)
    aux, aux_inits = _aux_nodes(net.n_inputs, helper, numpy_helper)
    nodes += more + aux + [helper.make_node("Concat", ["y_net", "y_ref", "aux_bool", "aux_count"],
                                            ["Y"], axis=1)]
    graph = helper.make_graph(
        nodes, f"sup_{net.circuit_name or net.target}",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, net.n_inputs])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2 * net.n_outputs + 2])],
        inits + more_inits + aux_inits)
    model = helper.make_model(graph, producer_name="sup",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _num(value: float) -> str:
    return repr(float(value))


def property_text(m: int, n: int, sparsity: int, threshold: float, title: str = "") -> str:
    """The VNN-LIB 1.0 property (module docstring) for m features and n outputs."""
    lines = [f"; {title}".rstrip(), "; sat: some input of the sparse domain makes an output wrong"]
    lines += [f"(declare-const X_{i} Real)" for i in range(m)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(2 * n + 2)]
    for i in range(m):
        lines += [f"(assert (>= X_{i} 0.0))", f"(assert (<= X_{i} 1.0))"]
    common = f"(<= Y_{2 * n} 0.0) (<= Y_{2 * n + 1} {_num(sparsity)})"
    t = _num(threshold)
    terms = []
    for j in range(n):
        terms.append(f"  (and {common} (>= Y_{n + j} 0.5) (<= Y_{j} {t}))")
        terms.append(f"  (and {common} (<= Y_{n + j} 0.5) (>= Y_{j} {t}))")
    lines += ["(assert (or", *terms, "))"]
    return "\n".join(lines) + "\n"


_ATOM = re.compile(r"\((<=|>=) ([XY])_(\d+) ([-+0-9.eE]+)\)")


def parse_vnnlib(text: str) -> tuple:
    """A small VNN-LIB reader for the properties `property_text` writes (and ones like them):
    (input box {i: [lo, hi]}, DNF over Y: a list of conjunctions, each a list of
    (index, op, value)). Top-level asserts over X bound the box; the `(assert (or (and ...)
    ...))` over Y is the DNF; a plain assert over Y is a conjunct of every disjunct."""
    body = "\n".join(line.split(";", 1)[0] for line in text.splitlines())
    box, always, dnf = {}, [], []
    for stmt in _statements(body):
        if stmt.startswith("(declare-const"):
            continue
        if not stmt.startswith("(assert"):
            raise VnncompError(f"unexpected VNN-LIB statement: {stmt[:60]}")
        inner = stmt[len("(assert"):-1].strip()
        if inner.startswith("(or"):
            for conj in _statements(inner[3:-1]):
                atoms = _atoms(conj[len("(and"):-1] if conj.startswith("(and") else conj)
                dnf.append([(i, op, v) for var, i, op, v in atoms])
            continue
        for var, i, op, v in _atoms(inner):
            if var == "X":
                box.setdefault(i, [-np.inf, np.inf])[0 if op == ">=" else 1] = v
            else:
                always.append((i, op, v))
    dnf = [always + conj for conj in dnf] if dnf else [always]
    return box, dnf


def _statements(text: str) -> list:
    """Top-level parenthesised expressions of `text`."""
    out, depth, start = [], 0, None
    for pos, ch in enumerate(text):
        if ch == "(":
            start = pos if depth == 0 else start
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                out.append(text[start:pos + 1])
            if depth < 0:
                raise VnncompError("unbalanced parentheses in VNN-LIB text")
    if depth:
        raise VnncompError("unbalanced parentheses in VNN-LIB text")
    return out


def _atoms(text: str) -> list:
    """[(var, index, op, value)] of every `(op V_i number)` in `text` (nothing else allowed)."""
    found = [(var, int(i), op, float(v)) for op, var, i, v in _ATOM.findall(text)]
    if len(found) != len(_statements(text)):
        raise VnncompError(f"unsupported VNN-LIB constraint in: {text.strip()[:80]}")
    return found


def holds(box: dict, dnf: list, x: np.ndarray, y: np.ndarray) -> bool:
    """Whether input x and output y satisfy the property (x in the box, some conjunction true)."""
    if any(not lo <= x[i] <= hi for i, (lo, hi) in box.items()):
        return False
    return any(all(y[i] <= v if op == "<=" else y[i] >= v for i, op, v in conj) for conj in dnf)


def plant_bug(net: Network, circuit, rng) -> tuple:
    """(buggy copy of `net`, witness active feature indices, output index): one output's
    read-out bias shifted so the output is wrong by 0.5 at a random domain input."""
    domain = verification_domain(circuit)
    rank = int(rng.integers(0, min(domain.size, 1 << 62)))
    active = domain.unrank(np.array([rank], dtype=np.int64))
    reference = evaluate_active(circuit, active).dense()[0]
    choices = np.flatnonzero(reference != DONT_CARE)
    j = int(rng.choice(choices))
    y = net.forward(to_dense(active, circuit.n_inputs))[0, j]
    target = net.threshold + (0.5 if reference[j] == 0 else -0.5)
    layers = list(net.layers)
    readout = layers[-1]
    bias = readout.bias.astype(np.float64).copy()
    bias[j] += target - y
    layers[-1] = dataclasses.replace(readout, bias=bias)
    bad = dataclasses.replace(net, layers=layers)
    return bad, [int(f) for f in active[0] if f >= 0], j


def run_onnx(path, x: np.ndarray) -> np.ndarray:
    """Y of the ONNX model at `path` on one input x [m] (onnxruntime, CPU)."""
    try:
        import onnxruntime  # optional: the vnncomp extra
    except ImportError:
        raise VnncompError("replaying needs onnxruntime: pip install onnxruntime") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(["Y"], {"X": np.asarray(x, np.float32).reshape(1, -1)})[0][0]


def replay(onnx_path, vnnlib_path, x: np.ndarray) -> bool:
    """Whether the witness x satisfies the written property under onnxruntime."""
    box, dnf = parse_vnnlib(Path(vnnlib_path).read_text())
    return holds(box, dnf, np.asarray(x, np.float64), run_onnx(onnx_path, x).astype(np.float64))


def check_instance(onnx_path, vnnlib_path, circuit) -> str:
    """'sat' or 'unsat' by running the exported ONNX file (onnxruntime) on every input of the
    circuit's sparse domain against the exported property (small domains only). Inputs off the
    domain are excluded by the property itself (booleanness and count outputs)."""
    import onnxruntime  # optional, as run_onnx
    domain = verification_domain(circuit)
    if domain.size > MAX_CHECK_INPUTS:
        raise VnncompError(f"the domain has {domain.size:,} inputs; checking through the files "
                           f"enumerates at most {MAX_CHECK_INPUTS:,}")
    box, dnf = parse_vnnlib(Path(vnnlib_path).read_text())
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(onnx_path), options,
                                           providers=["CPUExecutionProvider"])
    for _, active in domain.batches(4096):
        for x in to_dense(active, circuit.n_inputs).astype(np.float32):
            y = session.run(["Y"], {"X": x.reshape(1, -1)})[0][0]
            if holds(box, dnf, x.astype(np.float64), y.astype(np.float64)):
                return "sat"
    return "unsat"


def export_benchmark(circuit, net, out_dir, plant: int = 0, timeout: int = 300, seed: int = 0,
                     name: str | None = None) -> list:
    """Write the benchmark folder (onnx/, vnnlib/, instances.csv, expected.csv) and return its
    `Instance`s: the network (expected unsat) and `plant` planted-bug variants (expected sat,
    each witness replayed with onnxruntime when it is installed).

    Raises:
        VnncompError: a forest network, a table-rows domain, or onnx missing.
    """
    if not isinstance(net, Network):
        raise VnncompError(f"{net.target} networks are forests of trees; VNN-COMP export "
                           "takes layered networks (compile with --target dense or superposed)")
    if not isinstance(verification_domain(circuit), SparseDomain):
        raise VnncompError("the circuit's domain is a table's rows, which a box with a "
                           "sparsity bound cannot express")
    out = Path(out_dir)
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    (out / "vnnlib").mkdir(parents=True, exist_ok=True)
    name = name or re.sub(r"[^A-Za-z0-9_]+", "_", net.circuit_name or "circuit")
    reference = compile_circuit(circuit, "dense")
    sparsity = circuit.sparsity if circuit.sparsity is not None else circuit.n_inputs
    rng = np.random.default_rng(seed)
    variants = [(name, net, None)]
    for i in range(plant):
        bad, witness, j = plant_bug(net, circuit, rng)
        variants.append((f"{name}_plant{i + 1}", bad, (witness, j)))
    instances = []
    for stem, variant, planted in variants:
        onnx_rel, vnn_rel = f"onnx/{stem}.onnx", f"vnnlib/{stem}.vnnlib"
        _onnx().save(build_onnx(variant, reference), str(out / onnx_rel))
        title = (f"{stem}: {circuit.n_inputs} features, sparsity {sparsity}, "
                 f"{variant.n_outputs} outputs; expected "
                 + ("unsat" if planted is None else f"sat (output {planted[1]} planted wrong)"))
        (out / vnn_rel).write_text(property_text(circuit.n_inputs, variant.n_outputs, sparsity,
                                                 variant.threshold, title))
        inst = Instance(onnx_rel, vnn_rel, "unsat" if planted is None else "sat")
        if planted is not None:
            inst.witness = circuit.input_names(planted[0])
            inst.replayed = _replay_or_none(out, inst, planted[0], circuit.n_inputs)
        instances.append(inst)
    _write_csv(out, instances, timeout)
    return instances


def _replay_or_none(out: Path, inst: Instance, active: list, m: int) -> bool | None:
    """Replay a planted witness with onnxruntime (None when onnxruntime is not installed)."""
    x = np.zeros(m, dtype=np.float32)
    x[active] = 1
    try:
        return replay(out / inst.onnx, out / inst.vnnlib, x)
    except VnncompError:
        return None


def _write_csv(out: Path, instances: list, timeout: int) -> None:
    """instances.csv (onnx, vnnlib, timeout; no header) and expected.csv beside it."""
    with open(out / "instances.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        for inst in instances:
            writer.writerow([inst.onnx, inst.vnnlib, timeout])
    with open(out / "expected.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["onnx", "vnnlib", "expected", "witness"])
        for inst in instances:
            writer.writerow([inst.onnx, inst.vnnlib, inst.expected, " ".join(inst.witness)])
