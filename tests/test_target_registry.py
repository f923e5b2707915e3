"""The target interface: a fourth target added from the test suite alone, through the registry,
compiles, saves, loads, runs and verifies with no change to library code; and the library
branches on no target name outside the registry."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import sup
from backends import ModelFileError, SupModule, load, save, to_module
from compiler import TARGETS, Target, account, compile_circuit, register, unregister
from compiler.dense import compile_dense
from compiler.network import Layer, Network, input_families, output_families
from dsl.semantics import evaluate_active
from dsl.domain import verification_domain
from verify import verify

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("dsl", "compiler", "backends", "verify", "sup")


@dataclass
class IdentityOptions:
    """Options of the toy target: how many identity layers to put in front."""
    identity_layers: int = 1


class IdentityDenseTarget(Target):
    """The dense network behind `identity_layers` ReLU layers that copy the inputs (relu(x) = x
    for 0/1 x): a layered target the library has never heard of."""
    name = "identity-dense"
    summary = "identity layers, then the dense network (a test target)"
    options_type = IdentityOptions

    def compile(self, circuit, options, progress=None) -> Network:
        dense = compile_dense(circuit)
        m = circuit.n_inputs
        idx = np.arange(m, dtype=np.int64)
        front = [Layer(m, m, idx, idx, np.ones(m), np.zeros(m), True)
                 for _ in range(options.identity_layers)]
        return Network(self.name, m, front + dense.layers, np.arange(m, dtype=np.int64),
                       output_families=output_families(circuit),
                       input_families=input_families(circuit), sparsity=circuit.sparsity,
                       circuit_name=circuit.name)


@pytest.fixture
def identity_target():
    target = register(IdentityDenseTarget())
    yield target
    unregister(target.name)


def _brute_force_wrong(circuit, module) -> int:
    """Inputs of the whole domain on which some output of the module is wrong."""
    domain = verification_domain(circuit)
    active = domain.unrank(np.arange(domain.size))
    expected = evaluate_active(circuit, active).dense()
    got = module.decide(module.forward_active(active)).cpu().numpy()
    cared = expected != 2
    return int(((got != (expected == 1)) & cared).any(axis=1).sum())


def test_a_fourth_target_end_to_end(identity_target, tmp_path):
    circuit = sup.load(ROOT / "examples" / "c17.sup")
    net = compile_circuit(circuit, "identity-dense", identity_layers=2)
    assert net.target == "identity-dense" and len(net.layers) == len(compile_dense(circuit).layers) + 2
    info = account(net)
    assert info["neurons"] == sum(layer.n_out for layer in net.hidden)
    path = save(net, tmp_path / "toy")
    back = load(path)
    assert back.target == "identity-dense" and len(back.layers) == len(net.layers)
    module = to_module(back, device="cpu")
    assert isinstance(module, SupModule)
    assert _brute_force_wrong(circuit, module) == 0
    for method in ("exhaustive", "smt", "sample"):
        report = verify(circuit, back, module, method, progress=False)
        expected = None if method == "sample" else True
        assert report["verified"] is expected, (method, report)


def test_a_fourth_target_through_the_cli_and_facade(identity_target, tmp_path, capsys):
    from sup.cli import main
    src = str(ROOT / "examples" / "c17.sup")
    assert main(["compile", src, "--target", "identity-dense", "-o", str(tmp_path / "m"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["target"] == "identity-dense"
    assert main(["verify", src, "--model", str(tmp_path / "m"), "--method", "exhaustive",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True
    net = sup.compile(sup.load(src), "identity-dense")
    assert sup.verify(sup.load(src), net, method="exhaustive")["verified"] is True


def test_a_planted_bug_in_the_fourth_target_is_caught(identity_target):
    circuit = sup.load(ROOT / "examples" / "c17.sup")
    net = compile_circuit(circuit, "identity-dense")
    net.layers[0].vals[1] = 0.0                 # the identity layer drops input 1
    module = to_module(net, device="cpu")
    assert _brute_force_wrong(circuit, module) > 0
    report = verify(circuit, net, module, "exhaustive", progress=False)
    assert report["verified"] is False and report["counterexamples"]


def test_unregistered_targets_are_refused_on_load(identity_target, tmp_path):
    circuit = sup.load(ROOT / "examples" / "c17.sup")
    path = save(compile_circuit(circuit, "identity-dense"), tmp_path / "toy")
    unregister("identity-dense")
    with pytest.raises(ModelFileError, match="unknown target 'identity-dense'"):
        load(path)


def test_options_and_methods_come_from_the_target(identity_target):
    circuit = sup.load(ROOT / "examples" / "c17.sup")
    with pytest.raises(ValueError, match="identity_layers|width"):
        compile_circuit(circuit, "identity-dense", width=3)
    assert TARGETS["conditional"].methods == ("exhaustive", "smt", "sample")
    assert "structural" in TARGETS["superposed"].methods
    assert TARGETS.get_target("identity-dense") is identity_target


def test_no_target_name_branches_outside_the_registry():
    """`grep -rn "target ==" dsl compiler backends verify sup` finds nothing."""
    pattern = re.compile(r"target\s*(==|!=)|\.target\s+in\s")
    hits = [f"{path}:{n}" for package in LIBRARY for path in (ROOT / package).rglob("*.py")
            for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []
