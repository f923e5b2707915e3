"""The fixed-shape tree walk (backends/tree_walk.py) of ConditionalModule, issue 18.

Two references: the general walk of the same module (walk="general", ragged terms and live-pair
compaction) and the forest's reference semantics: the numpy `Forest.walk`, the table's row list
(a plain lookup of every input over the table's bits) and `dsl.semantics.evaluate` on the whole
domain of small circuits synthesised by the conditional compiler. Every forward is compared
(forward, forward_active, forward_delta with and without bounds and queries), exactly.
Parametrized over the devices present (cpu, and cuda when available).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dsl
import backends.tree_walk as tree_walk
from backends import ConditionalModule
from backends.tree_walk import FixedInputs, leaf_outputs, walk_to_leaves
from compiler import compile_circuit
from compiler.conditional.tables import bit_diagram, key_search
from dsl.domain import RowDomain, SparseDomain, to_dense
from dsl.semantics import DONT_CARE, evaluate
from forest_factory import key_table_forest, network, random_forest
from tests.random_circuits import load_random_circuit
from tests.test_tree_tables import all_inputs as table_inputs, expected, random_spec

pytestmark = pytest.mark.usefixtures("one_torch_thread")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
EXAMPLES = ("c17", "lookup_table", "table_file", "xor_majority", "multilevel",
            "sparse_features", "permutation", "two_level_and")


def all_inputs(m: int, k=None) -> np.ndarray:
    dom = SparseDomain(m, k)
    return dom.unrank(np.arange(dom.size))


def both(net, device, **kw):
    """(fixed, general) modules of one network."""
    fixed = ConditionalModule(net, device=device, walk="fixed", **kw)
    assert fixed.walk_path == "fixed"
    general = ConditionalModule(net, device=device, walk="general", **kw)
    assert general.walk_path == "general"
    return fixed, general


def same_delta(a, b) -> bool:
    return all(torch.equal(x.cpu(), y.cpu()) for x, y in
               ((a.rows, b.rows), (a.outputs, b.outputs), (a.values, b.values)))


def check_forwards(net, active: np.ndarray, ref: np.ndarray, device, **kw) -> None:
    """Every forward of the fixed walk equals `ref` [B, n_out] and the general walk."""
    fixed, general = both(net, device, **kw)
    act = torch.as_tensor(active, device=device)
    y = fixed.forward_active(act)
    assert np.array_equal(y.cpu().numpy(), ref)
    assert torch.equal(y, general.forward_active(act))
    x = torch.as_tensor(to_dense(active, net.n_inputs), device=device)
    assert torch.equal(fixed(x), y)
    assert np.array_equal(fixed.forward_delta(act).dense().cpu().numpy(), ref)
    assert same_delta(fixed.forward_delta(act), general.forward_delta(act))
    rng = np.random.default_rng(len(active))
    n_out = net.n_outputs
    bounds = [torch.full((n_out,), v, dtype=fixed.dtype, device=device) for v in (0.25, 0.75)]
    queries = [torch.as_tensor(rng.integers(0, n, 40), device=device)
               for n in (len(active), n_out)]
    d_fixed = fixed.forward_delta(act, *bounds, queries)
    d_general = general.forward_delta(act, *bounds, queries)
    assert same_delta(d_fixed, d_general)            # the same entries: touched trees only
    assert torch.equal(d_fixed.query_values, d_general.query_values)
    assert np.array_equal(d_fixed.query_values.cpu().numpy(),
                          ref[queries[0].cpu().numpy(), queries[1].cpu().numpy()])


# ====================================================================== random forests

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(10))
def test_random_forests(seed, device):
    """Few trees (every pair walked) and many (touched pairs), registers, leaf terms."""
    rng = np.random.default_rng(seed)
    forest = random_forest(rng, m=10, n_out=12, n_trees=int(rng.integers(1, 9)),
                           max_depth=int(rng.integers(1, 6)))
    active = all_inputs(10)
    ref = forest.walk(active)
    check_forwards(network(forest), active, ref, device)
    fixed = ConditionalModule(network(forest), device=device, max_pairs=97)   # many chunks
    assert np.array_equal(fixed.forward_active(torch.as_tensor(active, device=device))
                          .cpu().numpy(), ref)
    # float32: small integer and half-integer weights, nothing rounds
    f32 = ConditionalModule(network(forest), device=device, dtype=torch.float32)
    assert np.array_equal(f32.forward_active(torch.as_tensor(active, device=device))
                          .double().cpu().numpy(), ref)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dense", [True, False])
def test_large_chunks_use_sorted_keys(monkeypatch, device, dense):
    """Membership and registers through sorted keys + searchsorted (chunks too large for the
    dense bitmap / register matrix) give the same values."""
    if not dense:
        monkeypatch.setattr(tree_walk, "DENSE_CELLS", 0)
    rng = np.random.default_rng(21)
    forest = random_forest(rng, m=9, n_out=7, n_trees=6, max_depth=4)
    active = all_inputs(9)
    check_forwards(network(forest), active, forest.walk(active), device)


# ====================================================================== tables

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", (key_search, bit_diagram), ids=lambda f: f.__name__)
@pytest.mark.parametrize("cared", [False, True])
def test_tables_against_row_lookup(device, method, cared):
    rng = np.random.default_rng(3 + cared)
    spec = random_spec(rng, 9, 200, 3, cared)
    forest = method(spec)
    key, active = table_inputs(spec)
    want = expected(spec, key)
    check_forwards(network(forest), active, forest.walk(active), device)
    y = ConditionalModule(network(forest), device=device).forward_active(
        torch.as_tensor(active, device=device)).cpu().numpy()[:, 1:4]
    care = want >= 0
    assert np.array_equal((y > 0.5)[care], want[care].astype(bool))


@pytest.mark.parametrize("device", DEVICES)
def test_key_table_of_32_bits(device):
    """Keys up to 2^32 in the register: exact in float64 on both walks."""
    rng = np.random.default_rng(5)
    keys = np.unique(rng.integers(0, 1 << 32, 700, dtype=np.int64))
    values = rng.random((len(keys), 4)) < 0.5
    forest = key_table_forest(32, keys, values)
    dom = RowDomain(32, np.arange(32), keys)
    rows = dom.unrank(np.arange(dom.size))
    check_forwards(network(forest), rows, forest.walk(rows), device)
    y = ConditionalModule(network(forest), device=device).forward_active(
        torch.as_tensor(rows, device=device)).cpu().numpy()
    assert np.array_equal(y > 0.5, values)


# ====================================================================== synthesised forests

def spec_mismatches(circuit, y: np.ndarray, active: np.ndarray) -> int:
    spec = evaluate(circuit, SparseDomain(circuit.n_inputs, circuit.sparsity).dense(active))
    return int(((spec != DONT_CARE) & ((y > 0.5) != (spec == 1))).sum())


def domain(circuit, limit: int = 1 << 12) -> np.ndarray:
    """The first `limit` inputs of the circuit's domain (all of it for the small ones)."""
    dom = SparseDomain(circuit.n_inputs, circuit.sparsity)
    return dom.unrank(np.arange(min(dom.size, limit)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_against_the_reference(device, name):
    circuit = dsl.load(f"examples/{name}.sup")
    net = compile_circuit(circuit, "conditional")
    active = domain(circuit)
    ref = net.forward_active(active)
    check_forwards(net, active, ref, device)
    assert spec_mismatches(circuit, ref, active) == 0


@pytest.mark.parametrize("seed", range(6))
def test_random_circuits(seed, tmp_path):
    circuit = load_random_circuit(2000 + seed, tmp_path)
    net = compile_circuit(circuit, "conditional")
    active = domain(circuit)
    ref = net.forward_active(active)
    check_forwards(net, active, ref, "cpu")
    assert spec_mismatches(circuit, ref, active) == 0


# ====================================================================== the caps

def wide_gate_forest(width: int):
    """One tree: a gate over `width` features (value = their count - 1/2), two leaves."""
    f = random_forest(np.random.default_rng(0), m=width, n_out=2, n_trees=1, max_depth=1)
    f.tree_root = np.array([0])
    f.gate_tree, f.gate_offsets = np.array([0]), np.array([0, width])
    f.gate_cols, f.gate_vals = np.arange(width), np.ones(width)
    f.gate_bias, f.gate_child = np.array([-0.5]), np.array([[-1, -2]])
    f.gate_kind, f.gate_source = np.array([1], np.int8), np.array([-1])
    f.leaf_tree, f.leaf_offsets = np.zeros(2, np.int64), np.array([0, 0, 1])
    f.leaf_row = np.array([-1, -1])
    f.entry_output, f.entry_const = np.array([1]), np.array([1.0])
    f.entry_offsets, f.term_cols, f.term_vals = np.array([0, 0]), np.zeros(0, np.int64), np.zeros(0)
    f.output_tree = np.zeros(2, np.int64)
    f.validate()
    return f


def test_a_forest_beyond_the_caps_takes_the_general_walk():
    inside = wide_gate_forest(tree_walk.MAX_TERMS)
    assert ConditionalModule(network(inside), device="cpu").walk_path == "fixed"
    beyond = wide_gate_forest(tree_walk.MAX_TERMS + 1)
    module = ConditionalModule(network(beyond), device="cpu")
    assert module.walk_path == "general" and not module.fixed_leaves
    assert not any(name.startswith("fw_") for name, _ in module.named_buffers())
    active = all_inputs(tree_walk.MAX_TERMS + 1, 2)
    assert np.array_equal(module.forward_active(active).numpy(), beyond.walk(active))
    assert np.all(module.forward_active(active).numpy()[:, 1] == (active[:, 0] >= 0))
    with pytest.raises(ValueError, match="too many terms"):
        ConditionalModule(network(beyond), device="cpu", walk="fixed")
    with pytest.raises(ValueError, match="walk must be"):
        ConditionalModule(network(beyond), device="cpu", walk="fast")


def test_wide_leaves_keep_the_ragged_leaf_expansion():
    """sparse_features: a few leaves with 16 terms among many empty ones: gates padded, leaves
    expanded the general way, still the reference values."""
    circuit = dsl.load("examples/sparse_features.sup")
    net = compile_circuit(circuit, "conditional")
    module = ConditionalModule(net, device="cpu")
    assert module.walk_path == "fixed" and not module.fixed_leaves and not module.all_pairs
    assert module.walk_now == "general"          # on CPU: measured faster for such forests
    forced = ConditionalModule(net, device="cpu", walk="fixed")
    assert forced.walk_now == "fixed"
    active = domain(circuit)
    for mod in (module, forced):
        assert np.array_equal(mod.forward_active(active).numpy(), net.forward_active(active))
    assert ConditionalModule(compile_circuit(dsl.load("examples/c17.sup"), "conditional"),
                             device="cpu").fixed_leaves


# ====================================================================== planted bugs

def planted(module, name: str, edit) -> np.ndarray:
    """forward_active of every input after `edit` changed the buffer `name` in place."""
    edit(getattr(module, name))
    return module.forward_active(torch.as_tensor(module.test_inputs)).numpy()


@pytest.mark.parametrize("bug", ["swap children", "drop gate term", "drop leaf term",
                                 "wrong output slot"])
def test_planted_bugs_are_caught(bug):
    if bug == "drop leaf term":
        circuit = dsl.load("examples/c17.sup")
        net = compile_circuit(circuit, "conditional")
        active = domain(circuit)
    else:
        rng = np.random.default_rng(9)
        keys = np.unique(rng.integers(0, 1 << 10, 60))
        net = network(key_table_forest(10, keys, rng.random((len(keys), 3)) < 0.5))
        active = all_inputs(10)
    ref = net.forward_active(active)
    module = ConditionalModule(net, device="cpu", walk="fixed")
    module.test_inputs = active
    assert np.array_equal(module.forward_active(torch.as_tensor(active)).numpy(), ref)
    root = int(net.forest.tree_root[0])
    edits = {
        "swap children": ("fw_gate_idx", lambda t: t[root, :2].copy_(t[root, :2].flip(0))),
        "drop gate term": ("fw_gate_w", lambda t: t[root, 1:].zero_()),
        "drop leaf term": ("fw_l_in_val", lambda t: t.zero_()),
        "wrong output slot": ("fw_entry_slot", lambda t: t[:-1].copy_((t[:-1] + 1) % 3)),
    }
    name, edit = edits[bug]
    assert not np.array_equal(planted(module, name, edit), ref)


# ====================================================================== CUDA: no syncs

@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_walk_never_waits_for_the_host():
    """The fixed walk (levels and leaves) runs with CUDA sync debugging set to error."""
    rng = np.random.default_rng(1)
    keys = np.unique(rng.integers(0, 1 << 20, 3000))
    forest = key_table_forest(20, keys, rng.random((len(keys), 8)) < 0.5)
    module = ConditionalModule(network(forest), device="cuda")
    rows = RowDomain(20, np.arange(20), keys)
    active = torch.as_tensor(rows.unrank(np.arange(rows.size)), device="cuda")
    sample = torch.arange(len(active), device="cuda")
    tree = torch.zeros_like(sample)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        inputs = FixedInputs(module, active)
        leaf = walk_to_leaves(module, inputs, sample, tree)
        _, _, vals = leaf_outputs(module, inputs, sample, tree, leaf)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert np.array_equal((vals.reshape(len(keys), -1).cpu().numpy() > 0.5)[:, :8],
                          forest.walk(rows.unrank(np.arange(rows.size))) > 0.5)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_active_lists(monkeypatch, device):
    """[B, 0] active lists (no feature anywhere) read the baseline, also through sorted keys."""
    monkeypatch.setattr(tree_walk, "DENSE_CELLS", 0)
    rng = np.random.default_rng(4)
    keys = np.unique(rng.integers(0, 1 << 8, 30))
    forest = key_table_forest(8, keys, rng.random((len(keys), 2)) < 0.5)
    module = ConditionalModule(network(forest), device=device)
    y = module.forward_active(torch.zeros((3, 0), dtype=torch.long, device=device))
    assert np.array_equal(y.cpu().numpy(), forest.walk(np.full((3, 1), -1)))
