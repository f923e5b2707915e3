"""Tests of backends/: the torch module (dense, active-list and event-driven forwards), the
safetensors files (round trip, and every kind of bad file refused with ModelFileError), ONNX.

References: `Network.forward` (the numpy forward of compiler/network.py, itself checked
against the circuit semantics in tests/test_compiler.py) and `dsl.semantics.evaluate_active`
(the reference semantics, for the wide networks where a numpy forward would be too big).
"""

from __future__ import annotations

import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch

import backends.torch_module as torch_module
import dsl
from backends import ModelFileError, SupModule, load, save
from compiler.network import LAYER_ARRAYS
from compiler import compile_circuit
from dsl.domain import SparseDomain
from dsl.semantics import DONT_CARE, evaluate, evaluate_active

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["c17.sup", "lookup_table.sup", "table_file.sup", "multilevel.sup", "xor_majority.sup",
         "pairs_small.sup", "all_pairs.sup", "sparse_features.sup", "permutation.sup"]
MAX_ROWS = 4096


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors: torch's thread pool only costs time on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_CACHE = {}


def example(name):
    """(circuit, net, padded active [N, K], dense x [N, m]) on the domain (or a random part of
    it, MAX_ROWS inputs, when the domain is larger)."""
    if name not in _CACHE:
        circuit = dsl.load(os.path.join(ROOT, "examples", name))
        net = compile_circuit(circuit, "dense")
        dom = SparseDomain(circuit.n_inputs, circuit.sparsity)
        if dom.size <= MAX_ROWS:
            ranks = np.arange(dom.size, dtype=np.int64)
        else:
            rng = np.random.default_rng(len(name))
            ranks = np.unique(np.concatenate([np.arange(300),
                                              rng.integers(0, dom.size, MAX_ROWS - 300)]))
        active = dom.unrank(ranks)
        _CACHE[name] = (circuit, net, active, dom.dense(active))
    return _CACHE[name]


def ragged(active):
    """Python lists of the active features, without padding (some rows empty)."""
    return [[int(v) for v in row if v >= 0] for row in active]


def assert_matches_reference(circuit, values, x):
    """Decoded values equal the circuit semantics where it cares."""
    ref = evaluate(circuit, x)
    care = ref != DONT_CARE
    assert np.array_equal((values > 0.5)[care], (ref == 1)[care])


# ====================================================================== the torch module

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", SMALL)
def test_module_forwards_agree(name, dtype):
    circuit, net, active, x = example(name)
    want = net.forward(x)
    module = SupModule(net, dtype=dtype, device="cpu")
    assert module.device.type == "cpu" and module.dtype == dtype
    outs = {
        "dense": module.forward(torch.as_tensor(x)),
        "dense_float": module.forward(torch.as_tensor(x, dtype=dtype)),
        "active_padded": module.forward_active(torch.as_tensor(active)),
        "active_numpy": module.forward_active(active),
        "delta": module.forward_delta(torch.as_tensor(active)).dense(),
    }
    short = ragged(active[:200])
    outs_short = {"active_lists": module.forward_active(short),
                  "delta_lists": module.forward_delta(short).dense()}
    for label, out in list(outs.items()) + list(outs_short.items()):
        assert out.dtype == dtype, label
        got = out.cpu().numpy()
        ref = want if label in outs else want[:200]
        assert got.shape == ref.shape, label
        if dtype == torch.float64:
            assert np.array_equal(got, ref), label
        else:
            assert np.allclose(got, ref, atol=1e-5), label
            assert np.array_equal(got > 0.5, ref > 0.5), label
    assert_matches_reference(circuit, outs["active_padded"].numpy(), x)
    assert np.array_equal(module.decide(outs["dense"]).numpy(), net.decide(x))


@pytest.mark.parametrize("name", ["c17.sup", "sparse_features.sup", "lookup_table.sup"])
def test_forced_delta_path(name, monkeypatch):
    """With DELTA_WIDTH lowered every network takes the event-driven path in forward_active."""
    circuit, net, active, x = example(name)
    monkeypatch.setattr(torch_module, "DELTA_WIDTH", 0)
    module = SupModule(net, dtype=torch.float64, device="cpu", max_cells=1000)  # many chunks
    assert module.prefers_delta
    assert np.array_equal(module.forward_active(torch.as_tensor(active)).numpy(), net.forward(x))


def test_to_device_and_dtype():
    circuit, net, active, x = example("multilevel.sup")
    module = SupModule(net)                          # default float32, default device
    first = module.forward(torch.as_tensor(x))       # caches float32 weights
    assert first.dtype == torch.float32
    assert module.to("cpu") is module and module.device == torch.device("cpu")
    module = module.to(torch.float64)                # derived caches must follow
    assert module.dtype == torch.float64 and module.input_map.dtype == torch.long
    for out in (module.forward(torch.as_tensor(x)),
                module.forward_active(torch.as_tensor(active)),
                module.forward_delta(torch.as_tensor(active)).dense()):
        assert out.dtype == torch.float64
        assert np.array_equal(out.numpy(), net.forward(x))
    state = module.state_dict()
    assert {"input_map", "layers.0.rows", "layers.0.cols", "layers.0.vals",
            "layers.0.bias"} <= set(state)
    assert state["layers.0.vals"].dtype == torch.float64
    assert state["layers.0.rows"].dtype == torch.long


def test_empty_and_zero_inputs():
    circuit, net, active, x = example("c17.sup")
    module = SupModule(net, dtype=torch.float64, device="cpu")
    zero = net.forward(np.zeros((1, net.n_inputs)))
    assert np.array_equal(module.forward_active([[]]).numpy(), zero)
    assert np.array_equal(module.forward_active(torch.full((3, 2), -1)).numpy(),
                          np.repeat(zero, 3, axis=0))
    assert module.forward_active(torch.zeros((0, 2), dtype=torch.long)).shape == (0, 2)
    assert module.forward(torch.zeros((0, 5))).shape == (0, 2)


# ====================================================================== wide networks

WIDE = """
    const N = 256;
    const P = pairs(N, 20000, seed=5);
    input x[N];
    sparsity 2;
    wire w[u, v] = x[u] & x[v] for (u, v) in P;
    output y[u, v] = w[u, v] for (u, v) in P;
    output o[i] = or(w[P[2 * i][0], P[2 * i][1]], w[P[2 * i + 1][0], P[2 * i + 1][1]], x[i])
        for i in 0..200;
"""


def sparse_inputs(m, n, k, seed):
    """n random inputs with 0..k distinct active features each (padded, sorted), plus the
    weight-0 input and single features."""
    rng = np.random.default_rng(seed)
    rows = [[]] + [[f] for f in rng.choice(m, size=min(m, 50), replace=False).tolist()]
    while len(rows) < n:
        rows.append(sorted(rng.choice(m, size=int(rng.integers(0, k + 1)), replace=False).tolist()))
    out = np.full((len(rows), k), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def check_wide(circuit, net, active, chunk=500, dense_path=True):
    module = SupModule(net, dtype=torch.float32, device="cpu")
    ref = evaluate_active(circuit, active)
    for start in range(0, len(active), chunk):
        part = torch.as_tensor(active[start:start + chunk])
        want = ref.dense(start, start + len(part))
        care = want != DONT_CARE
        delta = module.forward_delta(part).dense().numpy()
        assert np.array_equal((delta > 0.5)[care], (want == 1)[care])
        assert np.isin(delta, [0.0, 1.0]).all()
        fa = module.forward_active(part).numpy()
        assert np.array_equal(fa, delta)
        if dense_path:
            x = SparseDomain(circuit.n_inputs, circuit.sparsity).dense(part.numpy())
            assert np.array_equal(module.forward(torch.as_tensor(x)).numpy(), delta)
    return module


def test_wide_network_delta_equals_dense_and_reference():
    circuit = dsl.loads(WIDE, name="wide")
    net = compile_circuit(circuit, "dense")
    widths = [layer.n_out for layer in net.hidden]
    assert len(widths) == 2 and max(widths) > torch_module.DELTA_WIDTH
    active = sparse_inputs(circuit.n_inputs, 2000, 2, seed=1)
    # pairs of P itself, so that many outputs are 1
    pairs = np.array([[int(t) for t in name[2:-1].split(",")]
                      for name in circuit.output_names()[:20000:40]])
    active = np.concatenate([active, pairs])
    module = check_wide(circuit, net, active)
    assert module.prefers_delta
    ones = evaluate_active(circuit, active).dense() == 1
    assert ones.sum() >= 500                         # the test looks at real 1s


def test_pairs_16k_delta_equals_active_and_reference():
    circuit = dsl.load(os.path.join(ROOT, "examples", "pairs_16k.sup"))
    net = compile_circuit(circuit, "dense")
    active = sparse_inputs(circuit.n_inputs, 1500, 2, seed=2)
    names = circuit.output_names()
    pairs = np.array([[int(t) for t in names[j][2:-1].split(",")] for j in range(0, 16384, 32)])
    check_wide(circuit, net, np.concatenate([active, pairs]), dense_path=False)


# ====================================================================== save / load

def assert_same_network(a, b):
    assert (a.target, a.n_inputs, a.threshold, a.sparsity, a.circuit_name) == \
        (b.target, b.n_inputs, b.threshold, b.sparsity, b.circuit_name)
    assert np.array_equal(a.input_map, b.input_map)
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        assert (la.n_in, la.n_out, la.relu) == (lb.n_in, lb.n_out, lb.relu)
        for name in LAYER_ARRAYS:
            va, vb = getattr(la, name), getattr(lb, name)
            assert (va is None) == (vb is None), name
            if va is not None:
                assert va.dtype == vb.dtype and np.array_equal(va, vb), name
    for fa, fb in ((a.output_families, b.output_families), (a.input_families, b.input_families)):
        assert [n for n, _ in fa] == [n for n, _ in fb]
        assert all(np.array_equal(i, j) for (_, i), (_, j) in zip(fa, fb))
    assert a.output_names() == b.output_names()


@pytest.mark.parametrize("name", ["c17.sup", "lookup_table.sup", "multilevel.sup",
                                  "pairs_small.sup", "permutation.sup"])
def test_save_load_round_trip(name, tmp_path):
    circuit, net, active, x = example(name)
    path = save(net, tmp_path / "model")
    assert path == tmp_path / "model.safetensors" and path.exists()
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["format"] == "sup-network" and meta["n_inputs"] == circuit.n_inputs
    for loaded in (load(path), load(tmp_path / "model")):
        assert_same_network(net, loaded)
        assert np.array_equal(loaded.forward(x), net.forward(x))
        module = SupModule(loaded, dtype=torch.float64, device="cpu")
        assert np.array_equal(module.forward_active(torch.as_tensor(active)).numpy(),
                              net.forward(x))


def test_save_into_missing_folder_is_an_oserror(tmp_path):
    circuit, net, active, x = example("c17.sup")
    with pytest.raises(OSError):
        save(net, tmp_path / "missing" / "model")


# ---------------------------------------------------------------- bad files

@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    """(path, tensors, metadata) of a saved c17 network."""
    from safetensors import safe_open
    from safetensors.numpy import load_file
    net = compile_circuit(dsl.load(os.path.join(ROOT, "examples", "c17.sup")), "dense")
    path = save(net, tmp_path_factory.mktemp("good") / "c17.safetensors")
    with safe_open(str(path), framework="numpy") as handle:
        meta = json.loads(handle.metadata()["sup"])
    return path, load_file(str(path)), meta


def _edit(tensors, key, fn):
    t = dict(tensors)
    if fn is None:
        del t[key]
    else:
        t[key] = fn(t[key].copy())
    return t


def _set(a, i, v):
    a[i] = v
    return a


CRAFTED = {
    # name: (tensor edit or None, metadata edit: dict update, or a raw string, or None = drop)
    "no_sup_metadata": (None, None),
    "metadata_not_json": (None, "{not json"),
    "metadata_a_list": (None, "[1, 2, 3]"),
    "metadata_a_string": (None, '"sup"'),
    "metadata_number": (None, "5"),
    "wrong_format": (None, {"format": "something-else"}),
    "wrong_version": (None, {"version": 99}),
    "layers_not_a_list": (None, {"layers": 7}),
    "layer_not_an_object": (None, {"layers": ["a", "b", "c", "d"]}),
    "no_layers": (None, {"layers": []}),
    "extra_layer": (None, "EXTRA_LAYER"),
    "n_in_not_a_number": (None, "N_IN_TEXT"),
    "relu_not_a_bool": (None, "RELU_TEXT"),
    "threshold_text": (None, {"threshold": "half"}),
    "threshold_null": (None, {"threshold": None}),
    "n_inputs_negative": (None, {"n_inputs": -1}),
    "n_inputs_wrong": (None, {"n_inputs": 4}),
    "sparsity_text": (None, {"sparsity": "two"}),
    "families_missing": (None, "DROP_FAMILIES"),
    "families_not_a_list": (None, {"output_families": 3}),
    "more_output_families": (None, {"output_families": ["N22", "N23", "extra"]}),
    "missing_rows": (("layers.0.rows", None), {}),
    "missing_bias": (("layers.2.bias", None), {}),
    "missing_input_map": (("input_map", None), {}),
    "missing_output_index": (("outputs.1.index", None), {}),
    "row_out_of_range": (("layers.0.rows", lambda a: _set(a, 0, 4)), {}),
    "row_negative": (("layers.1.rows", lambda a: _set(a, 0, -1)), {}),
    "col_out_of_range": (("layers.3.cols", lambda a: _set(a, 0, 1 << 40)), {}),
    "input_map_out_of_range": (("input_map", lambda a: _set(a, 2, 5)), {}),
    "input_map_negative": (("input_map", lambda a: _set(a, 2, -7)), {}),
    "rows_are_floats": (("layers.0.rows", lambda a: a.astype(np.float64) + 0.5), {}),
    "rows_2d": (("layers.0.rows", lambda a: a.reshape(-1, 1)), {}),
    "vals_nan": (("layers.1.vals", lambda a: _set(a, 0, np.nan)), {}),
    "bias_inf": (("layers.0.bias", lambda a: _set(a, 0, np.inf)), {}),
    "bias_too_short": (("layers.0.bias", lambda a: a[:-1]), {}),
    "cols_too_short": (("layers.1.cols", lambda a: a[:-1]), {}),
    "role_too_short": (("layers.0.role", lambda a: a[:-1]), {}),
    "output_index_1d": (("outputs.0.index", lambda a: a.ravel()), {}),
    "output_index_long": (("outputs.0.index", lambda a: np.zeros((3, 0), np.int64)), {}),
}


def _craft(good_file, tmp_path, name):
    from safetensors.numpy import save_file
    path, tensors, meta = good_file
    tensor_edit, meta_edit = CRAFTED[name]
    if tensor_edit is not None:
        tensors = _edit(tensors, *tensor_edit)
    m = json.loads(json.dumps(meta))
    if meta_edit is None:
        text = None
    elif meta_edit == "EXTRA_LAYER":
        m["layers"].append(dict(m["layers"][-1]))
        text = json.dumps(m)
    elif meta_edit == "N_IN_TEXT":
        m["layers"][0]["n_in"] = "five"
        text = json.dumps(m)
    elif meta_edit == "RELU_TEXT":
        m["layers"][0]["relu"] = "no"
        text = json.dumps(m)
    elif meta_edit == "DROP_FAMILIES":
        del m["output_families"]
        text = json.dumps(m)
    elif isinstance(meta_edit, str):
        text = meta_edit
    else:
        m.update(meta_edit)
        text = json.dumps(m)
    out = tmp_path / f"{name}.safetensors"
    save_file(tensors, str(out), metadata=None if text is None else {"sup": text})
    return out


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_file_is_refused(good_file, tmp_path, name):
    path = _craft(good_file, tmp_path, name)
    with pytest.raises(ModelFileError):
        load(path)


def test_the_crafting_itself_is_sound(good_file, tmp_path):
    """Re-saving the untouched tensors and metadata gives a loadable file (so the refusals
    above come from the edits)."""
    from safetensors.numpy import save_file
    path, tensors, meta = good_file
    out = tmp_path / "same.safetensors"
    save_file(dict(tensors), str(out), metadata={"sup": json.dumps(meta)})
    assert load(out).n_outputs == 2


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_non_model_files_are_refused(tmp_path, good_file):
    marker = tmp_path / "EXECUTED"
    files = {
        "garbage.safetensors": b"this is not a model" * 10,
        "empty.safetensors": b"",
        "short.safetensors": b"\x01\x02",
        "huge_header.safetensors": struct.pack("<Q", 1 << 60) + b"{}",
        "header_not_json.safetensors": struct.pack("<Q", 5) + b"{{{{{",
        "pickle.safetensors": pickle.dumps(_Payload(str(marker))),
        "truncated.safetensors": good_file[0].read_bytes()[:200],
        "cut_data.safetensors": good_file[0].read_bytes()[:-8],
    }
    for fname, content in files.items():
        (tmp_path / fname).write_bytes(content)
        with pytest.raises(ModelFileError):
            load(tmp_path / fname)
    torch.save({"w": torch.ones(3)}, tmp_path / "torch.safetensors")
    with pytest.raises(ModelFileError):
        load(tmp_path / "torch.safetensors")
    with pytest.raises(ModelFileError):
        load(tmp_path / "does_not_exist.safetensors")
    (tmp_path / "folder.safetensors").mkdir()
    with pytest.raises(ModelFileError):
        load(tmp_path / "folder.safetensors")
    assert not marker.exists(), "loading executed code from the file"


def test_random_corruptions_load_or_refuse(good_file, tmp_path):
    """Single-byte changes anywhere in a good file: load refuses it with ModelFileError or
    returns a network that runs; never another exception."""
    data = good_file[0].read_bytes()
    rng = np.random.default_rng(0)
    header_len = struct.unpack("<Q", data[:8])[0] + 8
    positions = np.concatenate([rng.integers(0, header_len, 150),
                                rng.integers(header_len, len(data), 50), np.arange(8)])
    x = np.array([[0, 1, 1, 0, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=bool)
    loaded = 0
    for i, pos in enumerate(positions):
        bad = bytearray(data)
        bad[pos] = (bad[pos] + int(rng.integers(1, 256))) % 256
        path = tmp_path / f"c{i}.safetensors"
        path.write_bytes(bytes(bad))
        try:
            net = load(path)
        except ModelFileError:
            continue
        loaded += 1
        net.forward(x if net.n_inputs == 5 else np.zeros((3, net.n_inputs)))
    assert loaded < len(positions)


# ====================================================================== ONNX

@pytest.mark.parametrize("name", ["c17.sup", "lookup_table.sup", "pairs_small.sup",
                                  "permutation.sup"])
def test_onnx_reference_evaluator(name, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    from backends.onnx_export import export_onnx, to_onnx
    circuit, net, active, x = example(name)
    x = x[:600]
    want = net.forward(x)
    model = to_onnx(net)
    got = ReferenceEvaluator(model).run(None, {"x": x.astype(np.float32)})[0]
    assert got.dtype == np.float32 and np.allclose(got, want, atol=1e-5)
    assert np.array_equal(got > 0.5, want > 0.5)
    path = export_onnx(net, tmp_path / "m.onnx", dtype=np.float64)
    got64 = ReferenceEvaluator(onnx.load(str(path))).run(None, {"x": x.astype(np.float64)})[0]
    assert np.array_equal(got64, want)


# ====================================================================== CUDA

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["c17.sup", "sparse_features.sup", "pairs_small.sup"])
def test_cuda(name):
    circuit, net, active, x = example(name)
    want = net.forward(x)
    for dtype in (torch.float32, torch.float64):
        module = SupModule(net, dtype=dtype, device="cuda")
        assert module.device.type == "cuda"
        outs = [module.forward(torch.as_tensor(x)),
                module.forward_active(torch.as_tensor(active)),
                module.forward_delta(torch.as_tensor(active)).dense()]
        for out in outs:
            assert out.device.type == "cuda"
            assert np.allclose(out.cpu().numpy(), want, atol=1e-5)
            assert np.array_equal(out.cpu().numpy() > 0.5, want > 0.5)
        moved = module.to("cpu")
        assert np.allclose(moved.forward_active(torch.as_tensor(active)).numpy(), want,
                           atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_wide_network():
    circuit = dsl.loads(WIDE, name="wide")
    net = compile_circuit(circuit, "dense")
    module = SupModule(net, dtype=torch.float32, device="cuda")
    active = sparse_inputs(circuit.n_inputs, 3000, 2, seed=3)
    ref = evaluate_active(circuit, active).dense()
    got = module.forward_active(torch.as_tensor(active)).cpu().numpy()
    assert np.array_equal(got > 0.5, ref == 1)
