"""The event-driven forward's two ways of summing changes (backends/delta.py) agree exactly.

Changes to one (input, neuron) are summed either in a dense scratch (narrow layers) or by
sorting the chunk's keys (wide layers). Both are checked against each other bit for bit, against
the module's dense forward and against the reference semantics, with bounds and queries as the
exhaustive verifier uses them; a planted bug in the sort path is caught.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import backends.delta as delta
import dsl
from backends import SupModule
from compiler import compile_circuit
from dsl.domain import SparseDomain
from dsl.semantics import DONT_CARE, evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ["c17.sup", "multilevel.sup", "sparse_features.sup", "lookup_table.sup",
         "two_level_and.sup", "xor_majority.sup"]
SORT, SCRATCH = 1, 1 << 40          # scratch_cells forcing each path


def _example(name, target="dense"):
    circuit = dsl.load(os.path.join(ROOT, "examples", name))
    net = compile_circuit(circuit, target)
    dom = SparseDomain(circuit.n_inputs, circuit.sparsity)
    ranks = np.arange(min(dom.size, 3000), dtype=np.int64)
    active = dom.unrank(ranks)
    return circuit, SupModule(net, dtype=torch.float64, device="cpu"), active, dom.dense(active)


def _same(a, b) -> bool:
    pairs = [(a.rows, b.rows), (a.outputs, b.outputs), (a.values, b.values)]
    if a.query_values is not None:
        pairs.append((a.query_values, b.query_values))
    return all(torch.equal(x, y) for x, y in pairs)


def test_sum_by_key_against_numpy():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 50, 2000)
    vals = rng.integers(-3, 4, 2000).astype(np.float64)
    unique, sums = delta.sum_by_key(torch.as_tensor(keys), torch.as_tensor(vals))
    want = np.bincount(keys, weights=vals, minlength=50)
    assert np.array_equal(unique.numpy(), np.unique(keys))
    assert np.array_equal(sums.numpy(), want[np.unique(keys)])


def test_chunking_picks_the_path_by_width():
    _, module, _, _ = _example("c17.sup")
    engine = module.delta_engine()
    assert engine.chunking(torch.device("cpu"))[0] is False          # narrow: scratch
    assert engine.chunking(torch.device("cpu"), scratch_cells=SORT)[0] is True


@pytest.mark.parametrize("name", NAMES)
def test_sort_and_scratch_paths_agree_with_the_dense_forward(name):
    circuit, module, active, x = _example(name)
    engine = module.delta_engine()
    act = torch.as_tensor(active)
    by_sort, by_scratch = engine.run(act, scratch_cells=SORT), engine.run(act, scratch_cells=SCRATCH)
    assert _same(by_sort, by_scratch)
    dense = module.forward(torch.as_tensor(x)).numpy()
    assert np.array_equal(by_sort.dense().numpy(), dense)
    ref = evaluate(circuit, x)
    care = ref != DONT_CARE
    assert np.array_equal((dense > module.threshold)[care], (ref == 1)[care])


@pytest.mark.parametrize("name", ["multilevel.sup", "two_level_and.sup"])
def test_bounds_and_queries_agree(name):
    _, module, active, _ = _example(name)
    engine = module.delta_engine()
    act = torch.as_tensor(active)
    n_out = module.shapes[-1][0]
    lower = torch.full((n_out,), 0.25, dtype=torch.float64)
    upper = torch.full((n_out,), 0.75, dtype=torch.float64)
    rng = np.random.default_rng(3)
    queries = (torch.as_tensor(rng.integers(0, len(active), 300)),
               torch.as_tensor(rng.integers(0, n_out, 300)))
    a = engine.run(act, lower, upper, queries, scratch_cells=SORT)
    b = engine.run(act, lower, upper, queries, scratch_cells=SCRATCH)
    assert _same(a, b) and a.query_values is not None
    dense = engine.run(act).dense()
    assert torch.equal(a.query_values, dense[queries[0], queries[1]])


def test_a_planted_bug_in_the_sort_path_is_caught(monkeypatch):
    """Summing keeps only the first change of each key: two active operands of one AND
    neuron no longer add up, and the comparison with the scratch path fails."""
    _, module, active, _ = _example("multilevel.sup")
    engine = module.delta_engine()
    act = torch.as_tensor(active)
    good = engine.run(act, scratch_cells=SCRATCH)

    def first_only(keys, values):
        keys, order = torch.sort(keys, stable=True)
        unique, inverse = torch.unique_consecutive(keys, return_inverse=True)
        first = torch.zeros(len(unique), dtype=torch.long).scatter_reduce_(
            0, inverse, torch.arange(len(keys)), "amin", include_self=False)
        return unique, values[order][first]

    monkeypatch.setattr(delta, "sum_by_key", first_only)
    assert not _same(engine.run(act, scratch_cells=SORT), good)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", ["multilevel.sup", "two_level_and.sup"])
def test_cuda_paths_match_the_cpu(name):
    """On a GPU both ways of summing (and the device's own chunk sizes) give the CPU's read-out."""
    _, module, active, _ = _example(name)
    want = module.delta_engine().run(torch.as_tensor(active)).dense()
    gpu = module.to("cuda").delta_engine()
    act = torch.as_tensor(active, device="cuda")
    for cells in (None, SORT, SCRATCH):
        assert torch.equal(gpu.run(act, scratch_cells=cells).dense().cpu(), want)
