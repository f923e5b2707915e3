"""Two coded levels (compiler/superposed/rs_depth.py): ANDs of ANDs (and OR / atleast of
ANDs) with the input, the level-1 stream and the output all in combinatorial codes, checked on
the whole domain against the reference, by the exhaustive verifier, with planted bugs, and
through the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import dsl
from backends.torch_module import SupModule
from compiler import compile_circuit
from compiler.superposed.codes import CodeError
from dsl.semantics import evaluate_active
from sup.cli import main
from verify.exhaustive import verify_exhaustive

from test_rs_codes import whole_domain

torch.set_num_threads(1)


def ands_of_ands(m: int, K: int, wires: int, outputs: int, seed: int = 0, gate: str = "&") -> str:
    """`wires` distinct random pairs of features, `outputs` gates over two or three wires."""
    rng = np.random.default_rng(seed)
    pairs = set()
    while len(pairs) < wires:
        pairs.add(tuple(sorted(rng.choice(m, 2, replace=False).tolist())))
    lines = [f"input x[{m}]; sparsity {K};"]
    lines += [f"wire w{i} = x[{a}] & x[{b}];" for i, (a, b) in enumerate(sorted(pairs))]
    for j in range(outputs):
        if gate == "atleast":
            u, v, w = rng.choice(wires, 3, replace=False)
            lines.append(f"output y{j} = atleast(2, w{u}, w{v}, w{w});")
        else:
            u, v = rng.choice(wires, 2, replace=False)
            lines.append(f"output y{j} = w{u} {gate} w{v};")
    return "\n".join(lines)


CASES = [ands_of_ands(16, 3, 24, 40), ands_of_ands(40, 3, 80, 120, seed=1),
         ands_of_ands(14, 4, 20, 30, seed=2), ands_of_ands(20, 3, 30, 30, seed=3, gate="|"),
         ands_of_ands(16, 3, 20, 20, seed=4, gate="atleast")]


@pytest.mark.parametrize("src", CASES)
@pytest.mark.parametrize("codes", [("rs", "rs"), (None, "rs"), ("rs", None)])
def test_two_levels_exact_on_the_whole_domain(src, codes):
    circuit = dsl.loads(src)
    net = compile_circuit(circuit, "superposed", input_code=codes[0], output_code=codes[1])
    assert sum(layer.relu for layer in net.layers) == 2           # two levels of neurons
    assert net.meta["codes"]["kind"] == "rs-levels"
    active, x = whole_domain(circuit)
    spec = evaluate_active(circuit, active).dense()
    assert np.array_equal(net.forward(x) > 0.5, spec == 1)
    assert (spec == 1).any()                                     # not vacuous
    report = verify_exhaustive(circuit, SupModule(net, device="cpu"), progress=False)
    assert report["verified"] is True and report["min_margin"] >= 0.5


def test_every_stream_is_coded():
    circuit = dsl.loads(ands_of_ands(200, 3, 400, 600, seed=1))
    net = compile_circuit(circuit, "superposed", input_code="rs", output_code="rs")
    codes = net.meta["codes"]
    relu = [layer.relu for layer in net.layers]
    assert relu == [False, True, False, True, False, False]   # E, H1, W1, H2, W2, R
    assert codes["input"]["dim"] < circuit.n_inputs            # inputs in superposition
    assert codes["level1"]["dim"] == net.layers[2].n_out < 200 * 199 // 2  # all pairs, coded
    # the output code counts active level-2 terms per (block, symbol set): c blocks of sets
    assert codes["output"]["dim"] == net.layers[-1].n_in and codes["output"]["blocks"] == 9
    assert [lv["level"] for lv in net.meta["levels"]] == [1, 2]


@pytest.mark.parametrize("plant", ["decoder bias", "level-1 count", "level-2 count",
                                   "level-2 bias"])
def test_planted_bugs_are_found(plant):
    circuit = dsl.loads(ands_of_ands(40, 3, 80, 120, seed=1))     # lambda = 1, c = 9
    net = compile_circuit(circuit, "superposed", input_code="rs", output_code="rs")
    if plant == "decoder bias":
        net.layers[-1].bias[:] = 0                     # one matching coordinate fires
    elif plant == "level-1 count":
        net.layers[2].vals[net.layers[2].vals < 0] *= -1
    elif plant == "level-2 count":
        net.layers[4].vals[net.layers[4].vals < 0] *= -1
    else:
        net.layers[3].bias[:] = 0
    active, x = whole_domain(circuit)
    spec = evaluate_active(circuit, active).dense()
    wrong = (net.forward(x) > 0.5) != (spec == 1)      # float64 numpy reference path
    report = verify_exhaustive(circuit, SupModule(net, device="cpu"), progress=False)
    assert report["verified"] is (not wrong.any())
    assert wrong.any() or plant != "decoder bias"
    if wrong.any():
        assert report["counterexamples"]


def test_shapes_that_are_not_two_levels_are_refused():
    for src in ("input x[8]; sparsity 2; wire w = x[0] ^ x[1]; output y = w & x[2];",
                "input x[8]; sparsity 3; wire a = x[0] & x[1]; wire b = x[2] & x[3] & x[4]; "
                "output y = a & b;",
                "input x[8]; sparsity 2; wire a = x[0] & x[1]; wire b = a & x[2]; "
                "output y = b & a;"):
        with pytest.raises(CodeError):
            compile_circuit(dsl.loads(src), "superposed", input_code="rs", output_code="rs")


def test_cli_compile_save_load_verify(tmp_path, capsys):
    src = tmp_path / "two.sup"
    src.write_text(ands_of_ands(16, 3, 24, 40))
    model = tmp_path / "m"
    assert main(["compile", str(src), "--target", "superposed", "--input-code", "rs",
                 "--output-code", "rs", "-o", str(model), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["codes"]["certificate"]["kind"] == "rs-levels"
    assert main(["verify", str(src), "--model", str(model), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] is True and report["method"] == "exhaustive"
