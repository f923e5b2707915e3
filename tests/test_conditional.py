"""The conditional target end to end: every example, random circuits, accounting.

Reference: dsl.semantics.evaluate (the circuit's dense reference semantics) on the whole
domain; the compiled forest is run through its numpy walk and through the torch module.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

import dsl
from backends import to_module
from compiler import account, compile_circuit
from compiler.accounting import ops_per_input
from compiler.dense import compile_dense
from dsl.domain import SparseDomain, verification_domain
from dsl.semantics import DONT_CARE, evaluate

from tests.random_circuits import load_random_circuit

EXAMPLES = sorted(Path(__file__).resolve().parents[1].joinpath("examples").glob("*.sup"))
WHOLE_DOMAIN_LIMIT = 60_000


def mismatches(circuit, net, active) -> int:
    spec = evaluate(circuit, SparseDomain(circuit.n_inputs, circuit.sparsity).dense(active))
    y = net.forward_active(active)
    return int(((spec != DONT_CARE) & ((y > 0.5) != (spec == 1))).sum())


def domain_inputs(circuit, limit=WHOLE_DOMAIN_LIMIT, seed=0):
    domain = SparseDomain(circuit.n_inputs, circuit.sparsity)
    if domain.size <= limit:
        return domain.unrank(np.arange(domain.size)), True
    rng = np.random.default_rng(seed)
    return domain.unrank(np.unique(rng.integers(0, domain.size, 2000))), False


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize("path", [p for p in EXAMPLES if "1m" not in p.name and
                                  p.stem != "mult16"], ids=lambda p: p.stem)
def test_every_example_agrees_with_the_reference(path):
    circuit = dsl.load(path)
    net = compile_circuit(circuit, "conditional")
    active, whole = domain_inputs(circuit)
    assert mismatches(circuit, net, active) == 0
    module = to_module(net, device="cpu")
    y_module = module.forward_active(torch.as_tensor(active)).double().numpy()
    assert np.allclose(y_module, net.forward_active(active))
    info = account(net)
    assert info["ops_per_input_mean"] <= info["ops_per_input_max"]
    # never more operations than the unconditional (dense) network of the same function
    assert info["ops_per_input_max"] <= ops_per_input(compile_dense(circuit))[0]


def test_million_pairs_compile():
    circuit = dsl.load(next(p for p in EXAMPLES if "1m" in p.name))
    net = compile_circuit(circuit, "conditional")
    assert net.forest.n_trees == circuit.n_outputs == 1_000_000
    active, _ = domain_inputs(circuit, limit=0)
    assert mismatches(circuit, net, active[:200]) == 0


@pytest.mark.parametrize("seed", range(40))
def test_random_circuits(seed, tmp_path):
    circuit = load_random_circuit(1000 + seed, tmp_path)
    net = compile_circuit(circuit, "conditional")
    active, _ = domain_inputs(circuit)
    assert mismatches(circuit, net, active) == 0


def test_planted_bug_is_caught_by_the_reference():
    circuit = dsl.load(next(p for p in EXAMPLES if p.stem == "c17"))
    net = compile_circuit(circuit, "conditional")
    active, _ = domain_inputs(circuit)
    assert mismatches(circuit, net, active) == 0
    forest = net.forest
    forest.entry_const[0] = 1.0 - forest.entry_const[0] if len(forest.entry_const) else 0.0
    forest.gate_bias[0] += 3.0
    assert mismatches(circuit, net, active) > 0


def test_row_domain_mean_and_table_accounting():
    text = ("input x[12];\ntable t(" + ", ".join(f"x[{i}]" for i in reversed(range(12)))
            + ") -> y[3] {\n")
    rng = np.random.default_rng(3)
    keys = rng.choice(1 << 12, 300, replace=False)
    text += "".join(f"  {k:012b} -> {''.join(rng.choice(list('01'), 3))};\n" for k in keys)
    text += "  default -> *;\n}\n"
    circuit = dsl.loads(text, "rows.sup")
    net = compile_circuit(circuit, "conditional")
    info = account(net)
    c = info["conditional"]
    assert c["domain_size"] == verification_domain(circuit).size == 300
    assert c["ops_mean_over"].startswith("rows of table")
    table = c["tables"][0]
    assert table["rows"] == 300 and table["log2_rows"] == 9
    assert info["ops_per_input_max"] <= 2 * 9 + 12 + 8
    for method in ("key", "bits"):
        other = compile_circuit(circuit, "conditional", table_method=method)
        assert other.meta["tables"][0]["method"] == method
        rows = verification_domain(circuit).unrank(np.arange(300))
        assert mismatches(circuit, other, rows) == 0


def test_unknown_table_method_is_an_error():
    circuit = dsl.loads("input a, b; output y = a & b;", "t.sup")
    with pytest.raises(ValueError, match="table method"):
        compile_circuit(circuit, "conditional", table_method="nope")
