"""Conditional networks end to end without the compiler: the torch ConditionalModule against the
numpy reference `Forest.walk`, save/load (including crafted files), the exhaustive and sampling
verifiers (correct networks and planted bugs), the table-rows domain, and the CLI.

Forests come from tests/forest_factory.py (random trees, or one binary-search tree over a table
key), so these tests do not depend on compiler/tree_tables.py or compiler/synthesis.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

import dsl
from backends import ConditionalModule, ModelFileError, SupModule, load, save, to_module
from compiler import compile_circuit
from compiler.conditional.tree import Forest
from dsl.domain import RowDomain, SparseDomain, to_dense, verification_domain
from dsl.semantics import DONT_CARE, evaluate
from forest_factory import key_table_forest, network, random_forest
from sup.cli import main
from verify import verify_exhaustive, verify_sample

torch.set_num_threads(1)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def cpu(net, **kw) -> ConditionalModule:
    return ConditionalModule(net, device="cpu", **kw)


def all_inputs(m: int, k=None) -> np.ndarray:
    dom = SparseDomain(m, k)
    return dom.unrank(np.arange(dom.size))


# ====================================================================== module vs reference

@pytest.mark.parametrize("seed", range(12))
def test_module_matches_walk_on_random_forests(seed):
    rng = np.random.default_rng(seed)
    forest = random_forest(rng, m=10, n_out=8, n_trees=int(rng.integers(1, 6)),
                           max_depth=int(rng.integers(1, 6)))
    forest.validate()
    active = all_inputs(10)
    ref = forest.walk(active)
    for max_pairs in (1, 500, 1 << 20):          # chunking changes nothing
        module = cpu(network(forest), max_pairs=max_pairs)
        part = slice(None) if max_pairs > 1 else slice(0, 1024, 16)
        assert np.array_equal(module.forward_active(active[part]).numpy(), ref[part])
    assert np.array_equal(module.forward(to_dense(active, 10)).numpy(), ref)
    # float32: every weight is a small integer or half-integer, so nothing rounds
    assert np.array_equal(cpu(network(forest), dtype=torch.float32)
                          .forward_active(active).double().numpy(), ref)


def test_concatenated_forests_and_sparse_inputs():
    rng = np.random.default_rng(7)
    parts = []
    for _ in range(5):
        part = random_forest(rng, m=30, n_out=40, n_trees=3)
        part.output_tree = np.where(rng.random(40) < 0.2, part.output_tree, -1)
        parts.append(part)
    owned = np.full(40, -1)
    for j, part in enumerate(parts):        # each output owned by the last part that takes it
        owned[part.output_tree >= 0] = j
    for j, part in enumerate(parts):
        keep = owned == j
        part.output_tree = np.where(keep, part.output_tree, -1)
        leaf_entries = keep[part.entry_output]
        _drop_entries(part, leaf_entries)
    forest = Forest.concat(30, 40, parts)
    forest.output_tree[forest.output_tree < 0] = 0    # unowned outputs: tree 0, never written
    forest.validate()
    active = all_inputs(30, 2)
    module = cpu(network(forest, sparsity=2))
    assert np.array_equal(module.forward_active(active).numpy(), forest.walk(active))


def _drop_entries(f: Forest, keep: np.ndarray) -> None:
    """Remove leaf entries (and their terms) where keep is False."""
    entry_leaf = np.repeat(np.arange(f.n_leaves), np.diff(f.leaf_offsets))
    term_entry = np.repeat(np.arange(len(f.entry_output)), np.diff(f.entry_offsets))
    f.leaf_offsets = np.concatenate([[0], np.cumsum(np.bincount(entry_leaf[keep],
                                                                minlength=f.n_leaves))])
    f.entry_offsets = np.concatenate([[0], np.cumsum(np.diff(f.entry_offsets)[keep])])
    f.term_cols, f.term_vals = f.term_cols[keep[term_entry]], f.term_vals[keep[term_entry]]
    f.entry_output, f.entry_const = f.entry_output[keep], f.entry_const[keep]


def test_forward_delta_bounds_and_queries():
    rng = np.random.default_rng(3)
    forest = random_forest(rng, m=9, n_out=6, n_trees=3)
    module = cpu(network(forest))
    active = all_inputs(9)
    ref = forest.walk(active)
    plain = module.forward_delta(active)
    assert np.array_equal(plain.dense().numpy(), ref)
    assert np.all(plain.values.numpy() != plain.base.numpy()[plain.outputs.numpy()])
    lower, upper = torch.full((6,), 0.25, dtype=torch.float64), torch.full((6,), 0.75,
                                                                           dtype=torch.float64)
    q_rows = torch.as_tensor(rng.integers(0, len(active), 50))
    q_outs = torch.as_tensor(rng.integers(0, 6, 50))
    pruned = module.forward_delta(active, lower, upper, (q_rows, q_outs))
    got = ref[pruned.rows.numpy(), pruned.outputs.numpy()]
    assert np.array_equal(got, pruned.values.numpy())
    # every entry beyond the bounds that differs from the baseline is there (baseline entries
    # are the caller's to compare once), and only entries beyond the bounds
    want = ((ref > 0.75) | (ref <= 0.25)) & (ref != plain.base.numpy()[None, :])
    got_mask = np.zeros_like(want)
    got_mask[pruned.rows.numpy(), pruned.outputs.numpy()] = True
    assert np.all(got_mask[want]) and np.all((got > 0.75) | (got <= 0.25))
    assert np.array_equal(pruned.query_values.numpy(), ref[q_rows.numpy(), q_outs.numpy()])


def test_key_table_of_32_bits():
    rng = np.random.default_rng(5)
    keys = np.unique(rng.integers(0, 1 << 32, 1000, dtype=np.int64))
    values = rng.random((len(keys), 4)) < 0.5
    forest = key_table_forest(32, keys, values)
    dom = RowDomain(32, np.arange(32), keys)
    rows = dom.unrank(np.arange(dom.size))
    y = cpu(network(forest)).forward_active(rows).numpy()
    assert np.array_equal(y, forest.walk(rows))
    assert np.array_equal(y > 0.5, values)
    assert cpu(network(forest)).depth == forest.depth() == int(np.ceil(np.log2(len(keys))))


def test_module_attributes_and_to_module():
    forest = random_forest(np.random.default_rng(0))
    net = network(forest)
    module = to_module(net, device="cpu")
    assert isinstance(module, ConditionalModule)
    assert module.dtype == torch.float64 and module.device.type == "cpu"
    assert module.n_inputs == forest.n_inputs and module.n_outputs == forest.n_outputs
    assert module.output_names() == net.output_names() and module.threshold == 0.5
    names = {n for n, _ in module.named_buffers()}
    assert set(forest.arrays()) <= names
    assert module.to(torch.float32).dtype == torch.float32
    with pytest.raises(ValueError):
        module.forward_active([[forest.n_inputs]])
    assert module.forward_active([[0, 1], []]).shape == (2, forest.n_outputs)


@CUDA
def test_cuda_matches_cpu():
    rng = np.random.default_rng(11)
    forest = random_forest(rng, m=10, n_out=8, n_trees=4)
    active = all_inputs(10)
    module = ConditionalModule(network(forest), device="cuda")
    assert module.device.type == "cuda"
    assert np.array_equal(module.forward_active(torch.as_tensor(active)).cpu().numpy(),
                          forest.walk(active))
    moved = cpu(network(forest)).to("cuda")
    assert np.array_equal(moved.forward_delta(active).dense().cpu().numpy(), forest.walk(active))


# ====================================================================== save / load

def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    net = network(random_forest(rng, m=12, n_out=9, n_trees=4), sparsity=3)
    net.meta = {"note": "hand made"}
    path = save(net, tmp_path / "m")
    assert json.loads(path.with_suffix(".json").read_text())["target"] == "conditional"
    back = load(tmp_path / "m")
    assert back.target == "conditional" and back.sparsity == 3 and back.meta == net.meta
    assert back.output_names() == net.output_names()
    for name, value in net.forest.arrays().items():
        assert np.array_equal(getattr(back.forest, name), value), name
    active = all_inputs(12, 3)
    assert np.array_equal(cpu(back).forward_active(active).numpy(),
                          cpu(net).forward_active(active).numpy())


def _crafted(tmp_path, edit) -> str:
    """Save a good network, change its tensors / metadata with `edit`, write it back."""
    from safetensors import safe_open
    net = network(random_forest(np.random.default_rng(4), m=8, n_out=5, n_trees=3))
    path = save(net, tmp_path / "good")
    tensors = load_file(str(path))
    with safe_open(str(path), framework="numpy") as handle:
        meta = json.loads(handle.metadata()["sup"])
    edit(tensors, meta)
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata={"sup": json.dumps(meta)})
    return str(bad)


def _set(name, fn):
    def edit(tensors, meta):
        tensors[f"forest.{name}"] = fn(tensors[f"forest.{name}"])
    return edit


CRAFTED = {
    "root out of range": _set("tree_root", lambda a: a + 1000),
    "leaf code out of range": _set("gate_child", lambda a: np.where(a < 0, a - 1000, a)),
    "cycle": _set("gate_child", lambda a: np.zeros_like(a)),
    "short bias": _set("gate_bias", lambda a: a[:-1]),
    "offsets past the end": _set("entry_offsets", lambda a: a + 1),
    "float indices": _set("gate_cols", lambda a: a.astype(np.float64)),
    "matrix for a vector": _set("gate_bias", lambda a: a[:, None]),
    "infinite weight": _set("gate_vals", lambda a: np.full_like(a, np.inf)),
    "output of another tree": _set("entry_output", lambda a: (a + 1) % 5),
    "column out of range": _set("term_cols", lambda a: a + 100),
    "missing array": lambda t, m: t.pop("forest.leaf_row"),
    "huge input count": lambda t, m: m.update(n_inputs=10 ** 15),
    "input count not matching names": lambda t, m: m.update(n_inputs=9),
    "negative output count": lambda t, m: m.update(n_outputs=-1),
    "sparsity not a number": lambda t, m: m.update(sparsity="two"),
    "missing family": lambda t, m: t.pop("outputs.0.index"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_files_are_rejected(tmp_path, case):
    bad = _crafted(tmp_path, CRAFTED[case])
    with pytest.raises(ModelFileError):
        load(bad)


def test_cycle_in_a_tree_is_rejected(tmp_path):
    def edit(tensors, meta):       # a gate that is its own child
        child = tensors["forest.gate_child"]
        child[0, 0] = 0
    forest = random_forest(np.random.default_rng(4), m=8, n_out=5, n_trees=3)
    assert forest.n_gates and forest.gate_child[0, 0] != 0
    with pytest.raises(ModelFileError, match="cycle|another tree"):
        load(_crafted(tmp_path, edit))


# ====================================================================== the verifier

TABLE_SUP = """\
input x[{w}];
{sparsity}
table t(x[0..{w}]) -> y[{c}] from "t.rows";
"""


def table_circuit(tmp_path, keys, values, w, sparsity=None, default="*"):
    rows = [f"{''.join(str((int(k) >> i) & 1) for i in range(w))} "
            f"{''.join('1' if v else '0' for v in row)}" for k, row in zip(keys, values)]
    rows.append(f"default {default}")
    (tmp_path / "t.rows").write_text("\n".join(rows) + "\n")
    src = TABLE_SUP.format(w=w, c=values.shape[1],
                           sparsity=f"sparsity {sparsity};" if sparsity is not None else "")
    (tmp_path / "t.sup").write_text(src)
    return dsl.load(str(tmp_path / "t.sup"))


def random_table(rng, w, n, c=3):
    keys = np.unique(rng.integers(0, 1 << w, n, dtype=np.int64))
    return keys, rng.random((len(keys), c)) < 0.5


@pytest.mark.parametrize("path", ["auto", "delta"])
def test_exhaustive_verifies_a_table_network_on_its_rows(tmp_path, path):
    rng = np.random.default_rng(8)
    keys, values = random_table(rng, 32, 3000)
    circuit = table_circuit(tmp_path, keys, values, 32)
    module = cpu(network(key_table_forest(32, keys, values)))
    report = verify_exhaustive(circuit, module, progress=False, path=path)
    assert report["verified"] is True and report["domain"] == "table rows"
    assert report["inputs_checked"] == report["domain_size"] == len(keys)
    assert report["outputs_checked"] == values.size and report["min_margin"] == 0.5
    assert report["path"] == ("dense" if path == "auto" else "delta")


@pytest.mark.parametrize("bug", ["leaf constant", "gate bias"])
@pytest.mark.parametrize("path", ["auto", "delta"])
def test_planted_bug_is_caught_with_a_counterexample(tmp_path, bug, path):
    rng = np.random.default_rng(9)
    keys, values = random_table(rng, 16, 500)
    mid = len(keys) // 2
    values[mid] = ~values[mid - 1]         # the rows either side of the root's split differ
    circuit = table_circuit(tmp_path, keys, values, 16)
    forest = key_table_forest(16, keys, values)
    if bug == "leaf constant":             # row 17's first 1 bit now reads 0
        row = int(np.flatnonzero(values.any(axis=1))[17])
        leaf = int(np.flatnonzero(forest.leaf_row == row)[0])
        forest.entry_const[forest.leaf_offsets[leaf]] = 0.0
        wrong_key = keys[row]
    else:                                  # the root's split moves one key to the right
        forest.gate_bias[0] -= 1.0         # g = t - (key - 1/2) - 1: key itself goes left
        wrong_key = keys[mid]
    report = verify_exhaustive(circuit, to_module(network(forest), device="cpu"),
                               progress=False, path=path)
    assert report["verified"] is False and report["failing_inputs"] == 1
    cx = report["counterexamples"][0]
    assert cx["active"] == [f"x[{i}]" for i in range(16) if (int(wrong_key) >> i) & 1]
    assert cx["wrong"] and report["min_margin"] < 0


def test_sparse_domain_network_and_bug(tmp_path):
    """A non-table circuit on its sparse domain: y[i] = x[i] & x[i+1] as bit-test trees."""
    from forest_factory import _Builder
    (tmp_path / "a.sup").write_text("input x[6];\nsparsity 3;\n"
                                    "output y[i] = x[i] & x[i + 1] for i in 0..5;\n")
    circuit = dsl.load(str(tmp_path / "a.sup"))
    b = _Builder(6, 5)
    for i in range(5):
        g0 = b.gate(i, [i], [1.0], -0.5)
        g1 = b.gate(i, [i + 1], [1.0], -0.5)
        b.lists["gate_child"][g0] = [b.leaf(i, []), g1]
        b.lists["gate_child"][g1] = [b.leaf(i, []), b.leaf(i, [(i, 1.0, [], [])])]
        b.lists["tree_root"].append(g0)
    b.output_tree = np.arange(5)
    forest = b.forest()
    forest.validate()
    net = network(forest, sparsity=3)
    report = verify_exhaustive(circuit, cpu(net), progress=False)
    assert report["verified"] is True and report["domain"] == "sparse"
    assert report["inputs_checked"] == SparseDomain(6, 3).size
    forest.gate_bias[3] = 0.5              # tree 1's second test now always passes
    report = verify_exhaustive(circuit, cpu(network(forest, sparsity=3)), progress=False)
    assert report["verified"] is False
    assert all(c["wrong"] == ["y[1]"] and "x[2]" not in c["active"] and "x[1]" in c["active"]
               for c in report["counterexamples"])
    sample = verify_sample(circuit, cpu(network(forest, sparsity=3)), samples=400,
                           progress=False)
    assert sample["verified"] is False and sample["failing_inputs"] > 0


def test_float32_keys_round_and_the_verifier_sees_it(tmp_path):
    """Keys above 2^24 are not exact in float32: neighbouring keys collide."""
    w = 28
    base = (1 << 27) + 12345
    keys = np.array([base, base + 1, base + 2, base + 3], np.int64)
    values = np.array([[1], [0], [1], [0]], bool)
    circuit = table_circuit(tmp_path, keys, values, w)
    net = network(key_table_forest(w, keys, values))
    assert verify_exhaustive(circuit, cpu(net), progress=False)["verified"] is True
    report = verify_exhaustive(circuit, cpu(net, dtype=torch.float32), progress=False)
    assert report["verified"] is False


# ====================================================================== the table-rows domain

@pytest.mark.parametrize("seed", range(6))
def test_row_domain_against_brute_force(tmp_path, seed):
    rng = np.random.default_rng(seed)
    w = int(rng.integers(1, 9))
    sparsity = None if seed % 2 else int(rng.integers(0, w + 1))
    keys, values = random_table(rng, w, int(rng.integers(1, 1 << w)))
    circuit = table_circuit(tmp_path, keys, values, w, sparsity)
    dom = verification_domain(circuit)
    assert isinstance(dom, RowDomain)
    full = all_inputs(w, sparsity)
    spec = evaluate(circuit, to_dense(full, w))
    cared = full[(spec != DONT_CARE).any(axis=1)]
    rows = dom.unrank(np.arange(dom.size))
    as_sets = lambda a: sorted(tuple(int(f) for f in r if f >= 0) for r in a)  # noqa: E731
    assert as_sets(rows) == as_sets(cared)           # every row in the promise, nothing else
    assert np.array_equal(dom.rank(rows), np.arange(dom.size))
    assert all(np.all(np.diff(r[r >= 0]) > 0) for r in rows)       # sorted features
    n = int(rng.integers(1, 5))
    bounds = [dom.shard(i, n) for i in range(1, n + 1)]
    assert bounds[0][0] == 0 and bounds[-1][1] == dom.size
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    got = np.concatenate([a for _, a in dom.batches(3)]) if dom.size else rows
    assert np.array_equal(got, rows)


def test_domain_choice(tmp_path):
    assert isinstance(verification_domain(dsl.load("examples/table_file.sup")), RowDomain)
    assert isinstance(verification_domain(dsl.load("examples/lookup_table.sup")), SparseDomain)
    assert isinstance(verification_domain(dsl.load("examples/c17.sup")), SparseDomain)
    cases = {
        # a cared default: every input counts
        "cared": "input x[3];\ntable t(x[0..3]) -> y[1] { 101 -> 1; default -> 0; }\n",
        # an output reads an input directly
        "direct": "input x[3];\ntable t(x[0..3]) -> y[1] { 101 -> 1; default -> *; }\n"
                  "output z = x[0];\n",
        # a feature the table does not read
        "extra": "input x[3], e;\ntable t(x[0..3]) -> y[1] { 101 -> 1; default -> *; }\n",
        # a repeated table bit
        "repeat": "input x[2];\ntable t(x[0], x[1], x[0]) -> y[1] { 101 -> 1; default -> *; }\n",
        # an output that is known off the table's rows (a constant)
        "known": "input x[2];\ntable t(x[0..2]) -> y[1] { 10 -> 1; default -> *; }\n"
                 "output k = y[0] | 1;\n",
    }
    for name, src in cases.items():
        (tmp_path / f"{name}.sup").write_text(src)
        dom = verification_domain(dsl.load(str(tmp_path / f"{name}.sup")))
        assert isinstance(dom, SparseDomain), name
    (tmp_path / "ok.sup").write_text(
        "input x[3];\ntable t(x[2], x[0], x[1]) -> y[2] { 101 -> 1*; 011 -> 01; default -> *; }\n"
        "output both = y[0] & y[1];\n")
    dom = verification_domain(dsl.load(str(tmp_path / "ok.sup")))
    assert isinstance(dom, RowDomain) and dom.size == 2
    assert dom.unrank([0, 1]).tolist() == [[1, 2], [0, 1]]      # keys 5 and 6
    # a second table reading the first one's bits is don't care off the rows as well
    (tmp_path / "chain.sup").write_text(
        "input x[2];\ntable t(x[0..2]) -> y[1] { 10 -> 1; default -> *; }\n"
        "table u(y[0]) -> z[1] { 1 -> 1; default -> 0; }\n")
    assert isinstance(verification_domain(dsl.load(str(tmp_path / "chain.sup"))), RowDomain)


# ====================================================================== the command line

def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_verify_saved_conditional_models(capsys, tmp_path):
    rng = np.random.default_rng(12)
    keys, values = random_table(rng, 20, 400)
    circuit = table_circuit(tmp_path, keys, values, 20)
    sup_file = tmp_path / "t.sup"
    forest = key_table_forest(20, keys, values)
    save(network(forest), tmp_path / "good")
    forest.entry_const[0] = 1.0 - forest.entry_const[0]
    save(network(forest), tmp_path / "bad")
    for method in ("auto", "exhaustive"):
        code, out, _ = run(capsys, "verify", sup_file, "--model", tmp_path / "good", "--method",
                           method, "--json")
        data = json.loads(out)
        assert code == 0 and data["verified"] is True and data["target"] == "conditional"
        assert data["domain"] == "table rows" and data["inputs_checked"] == len(keys)
        assert data["dtype"] == "float64"
        for field in ("method", "outputs_checked", "counterexamples", "min_margin", "seconds"):
            assert field in data
    code, out, _ = run(capsys, "verify", sup_file, "--model", tmp_path / "bad", "--method",
                       "exhaustive", "--json")
    data = json.loads(out)
    assert code == 1 and data["verified"] is False and data["counterexamples"]
    code, out, _ = run(capsys, "verify", sup_file, "--model", tmp_path / "bad", "--method",
                       "sample", "--samples", "2000", "--json")
    assert code == 1 and json.loads(out)["failing_inputs"] > 0
    code, out, _ = run(capsys, "verify", sup_file, "--model", tmp_path / "good", "--method",
                       "sample", "--samples", "200", "--json")
    assert code == 3 and json.loads(out)["verified"] is None
    code, _, err = run(capsys, "verify", sup_file, "--model", tmp_path / "good", "--method",
                       "structural")
    # issue 14: not applicable is undecided (exit 3), as for a dense model, and says why
    assert code == 3 and "Traceback" not in err
    assert circuit.n_inputs == 20


def test_cli_rejects_crafted_conditional_model(capsys, tmp_path):
    bad = _crafted(tmp_path, CRAFTED["cycle"])
    (tmp_path / "c.sup").write_text("input x[8];\noutput y[i] = x[i] for i in 0..5;\n")
    code, _, err = run(capsys, "verify", tmp_path / "c.sup", "--model", bad)
    assert code == 2 and "inconsistent" in err and "Traceback" not in err


def test_cli_onnx_of_conditional_is_a_usage_error(capsys, tmp_path):
    code, _, err = run(capsys, "compile", "examples/c17.sup", "--target", "conditional",
                       "--onnx", tmp_path / "x.onnx")
    assert code == 2 and "onnx" in err.lower()


# ====================================================================== with the compiler

def _compiled(path):
    from compiler import TargetUnavailable
    try:
        return compile_circuit(dsl.load(path), target="conditional")
    except (TargetUnavailable, ImportError) as exc:
        pytest.skip(f"compile_conditional not available: {exc}")


@pytest.mark.parametrize("example", ["examples/lookup_table.sup", "examples/table_file.sup"])
def test_compiled_examples_module_and_cli(capsys, tmp_path, example):
    net = _compiled(example)
    circuit = dsl.load(example)
    dom = verification_domain(circuit)
    active = dom.unrank(np.arange(dom.size))
    module = cpu(net)
    assert np.array_equal(module.forward_active(active).numpy(), net.forest.walk(active))
    assert verify_exhaustive(circuit, module, progress=False)["verified"] is True
    code, out, _ = run(capsys, "compile", example, "--target", "conditional", "-o",
                       tmp_path / "m", "--json")
    data = json.loads(out)
    assert code == 0 and data["target"] == "conditional" and "conditional" in data
    for field in ("neurons", "layers", "params_nonzero", "params_dense", "ops_per_input_max",
                  "ops_per_input_mean", "bounds"):
        assert field in data
    for method in ("exhaustive", "auto"):
        code, out, _ = run(capsys, "verify", example, "--model", tmp_path / "m", "--method",
                           method, "--json")
        assert code == 0 and json.loads(out)["verified"] is True
    code, out, _ = run(capsys, "verify", example, "--target", "conditional", "--json")
    assert code == 0 and json.loads(out)["target"] == "conditional"


def test_dense_and_conditional_modules_agree_on_a_compiled_table():
    net = _compiled("examples/table_file.sup")
    circuit = dsl.load("examples/table_file.sup")
    dense = compile_circuit(circuit, target="dense")
    rows = verification_domain(circuit).unrank(np.arange(10))
    assert np.array_equal(cpu(net).forward_active(rows).numpy() > 0.5,
                          SupModule(dense, device="cpu").forward_active(rows).numpy() > 0.5)
