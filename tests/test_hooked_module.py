"""SupModule as a real nn.Module (issue 17): gradients, hook points, caches, plain export.

References: finite differences (torch.autograd.gradcheck), the numpy layer-by-layer forward of
the compiled network (compiler/network.py), and the module's own inference path."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

import sup
from backends import SupModule

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CASES = [("c17.sup", "dense"), ("multilevel.sup", "dense"), ("pairs_small.sup", "superposed"),
         ("xor_majority.sup", "superposed"), ("all_pairs.sup", "superposed")]


def compiled(name, target):
    return sup.compile(sup.load(str(EXAMPLES / name)), target)


def numpy_sites(net, x):
    """Every site's activation by the numpy reference: {hook name: [B, width]}."""
    h = np.zeros((len(x), net.layers[0].n_in))
    np.add.at(h.T, net.input_map, x.T)
    sites = {"hook_in": h}
    for i, layer in enumerate(net.layers):
        linear = copy.copy(layer)
        linear.relu = False
        pre = linear.apply(h)
        h = np.maximum(pre, 0) if layer.relu else pre
        sites[f"layers.{i}.hook_pre"], sites[f"layers.{i}.hook_post"] = pre, h
    sites["hook_out"] = h
    return sites


@pytest.mark.parametrize("name,target", CASES)
def test_run_with_cache_returns_every_site_as_the_reference_computes_it(name, target):
    net = compiled(name, target)
    model = SupModule(net, dtype=torch.float64, device="cpu")
    x = (np.random.default_rng(0).random((50, net.n_inputs)) < 0.1).astype(np.float64)
    out, cache = model.run_with_cache(torch.as_tensor(x))
    want = numpy_sites(net, x)
    assert list(cache) == model.hook_names() == list(want)
    for site, value in want.items():
        assert np.array_equal(cache[site].numpy(), value), site
    assert torch.equal(out, cache["hook_out"])
    assert torch.equal(cache["hook_post", 0], cache["layers.0.hook_post"])
    assert all(not point._handles for point in model.hook_dict.values())  # hooks removed


@pytest.mark.parametrize("name,target", CASES[:3])
def test_ablation_hook_changes_exactly_what_zeroing_the_neuron_changes(name, target):
    net = compiled(name, target)
    model = SupModule(net, dtype=torch.float64, device="cpu")
    x = (np.random.default_rng(1).random((200, net.n_inputs)) < 0.15).astype(np.float64)
    neuron = int(net.layers[0].rows[0])

    def ablate(activation, hook):
        activation = activation.clone()
        activation[:, neuron] = 0
        return activation

    got = model.run_with_hooks(torch.as_tensor(x), fwd_hooks=[("layers.0.hook_post", ablate)])
    edited = copy.deepcopy(net)             # the same ablation in the reference: neuron's row off
    layer = edited.layers[0]
    keep = layer.rows != neuron
    layer.rows, layer.cols, layer.vals = layer.rows[keep], layer.cols[keep], layer.vals[keep]
    layer.bias = layer.bias.copy()
    layer.bias[neuron] = 0
    assert np.array_equal(got.numpy(), edited.forward(x))
    # the hook is gone afterwards
    assert np.array_equal(model(torch.as_tensor(x)).numpy(), net.forward(x))


def test_a_planted_wrong_hook_is_seen():
    net = compiled("c17.sup", "dense")
    model = SupModule(net, dtype=torch.float64, device="cpu")
    x = torch.as_tensor((np.random.default_rng(2).random((64, 5)) < 0.5).astype(np.float64))
    plain = model(x)
    hooked = model.run_with_hooks(x, fwd_hooks=[(lambda n: n.endswith("hook_pre"),
                                                 lambda a, hook: a + 1)])
    assert not torch.equal(plain, hooked)


@pytest.mark.parametrize("name,target", CASES)
def test_gradients_match_finite_differences(name, target):
    net = compiled(name, target)
    model = SupModule(net, dtype=torch.float64, device="cpu")
    # reals away from the ReLU kinks of 0/1 inputs: the network is linear around them
    x = torch.rand(3, net.n_inputs, dtype=torch.float64,
                   generator=torch.Generator().manual_seed(3)).requires_grad_()
    assert torch.autograd.gradcheck(model, (x,), eps=1e-6, atol=1e-5)
    model.requires_grad_(True)
    first = model.layers[0]
    out = model(x.detach()).sum()
    out.backward()
    assert first.vals.grad is not None and first.vals.grad.shape == first.vals.shape
    # d(sum of outputs) / d(bias of the read-out) is the batch size for every output
    assert torch.equal(model.layers[-1].bias.grad,
                       torch.full_like(model.layers[-1].bias, 3.0))


def test_weight_gradients_match_finite_differences():
    net = compiled("multilevel.sup", "dense")
    model = SupModule(net, dtype=torch.float64, device="cpu")
    x = torch.rand(4, net.n_inputs, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    layer = model.layers[0]

    def out_of(vals):               # torch.func: the module as a function of its weights
        return torch.func.functional_call(model, {"layers.0.vals": vals}, (x,))
    vals = layer.vals.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(out_of, (vals,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name,target", CASES)
def test_to_sequential_and_inference_paths_agree_with_forward(name, target):
    net = compiled(name, target)
    model = SupModule(net, dtype=torch.float64, device="cpu")
    rng = np.random.default_rng(5)
    x = (rng.random((100, net.n_inputs)) < 0.1).astype(np.float64)
    active = [np.flatnonzero(row).tolist() or [-1] for row in x]
    want = net.forward(x)
    assert np.array_equal(model(torch.as_tensor(x)).numpy(), want)
    assert np.array_equal(model.forward_active(active).numpy(), want)
    seq = model.to_sequential()
    assert all(isinstance(m, (torch.nn.Linear, torch.nn.ReLU)) for m in seq)
    assert np.allclose(seq(torch.as_tensor(x)).detach().numpy(), want, atol=1e-9)
    with pytest.raises(ValueError, match="to_sequential builds"):
        model.to_sequential(max_weights=1)


def test_in_place_weight_edits_reach_every_path():
    net = compiled("c17.sup", "dense")
    model = SupModule(net, dtype=torch.float64, device="cpu")
    x = torch.ones(1, 5, dtype=torch.float64)
    before = model(x).clone()
    model.forward_active([[0, 1, 2, 3, 4]])
    model.forward_delta([[0, 1, 2, 3, 4]])
    with torch.no_grad():
        model.layers[-1].bias += 10
    assert torch.equal(model(x), before + 10)
    assert torch.equal(model.forward_active([[0, 1, 2, 3, 4]]), before + 10)
    assert torch.equal(model.forward_delta([[0, 1, 2, 3, 4]]).dense(), before + 10)


def test_a_shared_input_column_holds_the_sum_on_every_path():
    net = compiled("c17.sup", "dense")
    net.input_map = net.input_map.copy()
    net.input_map[1] = net.input_map[0]          # features 0 and 1 feed one column
    model = SupModule(net, dtype=torch.float64, device="cpu")
    x = np.eye(5)[[0, 1]].sum(0, keepdims=True)
    want = net.forward(x)
    assert np.array_equal(model(torch.as_tensor(x)).numpy(), want)
    assert np.array_equal(model.forward_active([[0, 1]]).numpy(), want)
    assert np.array_equal(model.forward_delta([[0, 1]]).dense().numpy(), want)


def test_print_shows_every_layer_and_what_it_is():
    model = SupModule(compiled("multilevel.sup", "dense"), device="cpu")
    text = str(model)
    assert "in=9, out=20, relu" in text and "read-out" in text and "13 gate" in text
    assert text.count("hook_pre") == len(model.layers)


def test_unknown_hook_names_list_the_sites():
    model = SupModule(compiled("c17.sup", "dense"), device="cpu")
    with pytest.raises(KeyError, match="layers.0.hook_post"):
        model.run_with_hooks(torch.zeros(1, 5), fwd_hooks=[("blocks.0.hook_post", print)])


def test_transformer_lens_style_snippet_runs_unchanged():
    """The shape of TransformerLens's docs' examples (caching, a hook on hook_post), run on a
    sup model; with TransformerLens installed its ActivationCache is not needed either."""
    model = SupModule(compiled("pairs_small.sup", "superposed"), device="cpu")
    tokens = torch.zeros(2, model.n_inputs)
    tokens[0, [0, 1]] = 1
    logits, cache = model.run_with_cache(tokens, remove_batch_dim=False)
    post = cache["layers.0.hook_post"]
    assert post.shape == (2, model.layers[0].n_out)

    def zero_ablation_hook(value, hook):
        value[:] = 0.0
        return value
    ablated = model.run_with_hooks(tokens, fwd_hooks=[("layers.0.hook_post",
                                                       zero_ablation_hook)])
    readout = model.layers[-1]
    assert torch.allclose(ablated, readout.bias.detach().expand_as(ablated))
    assert torch.equal(logits, model(tokens))


def test_torch_compile_runs_the_dense_path():
    model = SupModule(compiled("c17.sup", "dense"), dtype=torch.float64, device="cpu")
    x = torch.as_tensor((np.random.default_rng(6).random((16, 5)) < 0.5).astype(np.float64))
    compiled_model = torch.compile(model.to_sequential(), backend="eager")
    assert torch.allclose(compiled_model(x), model(x))
    compiled_sup = torch.compile(model, backend="eager")      # the module itself (graph breaks
    assert torch.equal(compiled_sup(x), model(x))             # allowed around its caches)


@pytest.mark.parametrize("name,target", CASES[:3])
def test_onnx_runs_any_batch_size_as_the_module_does(name, target, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from backends.onnx_export import export_onnx
    net = compiled(name, target)
    path = export_onnx(net, tmp_path / "model.onnx", dtype=np.float64)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"]
    assert [o.name for o in session.get_outputs()] == ["y"]
    assert session.get_inputs()[0].shape[0] == "batch"
    model = SupModule(net, dtype=torch.float64, device="cpu")
    rng = np.random.default_rng(7)
    for batch in (1, 1000):
        x = (rng.random((batch, net.n_inputs)) < 0.1).astype(np.float64)
        (y,) = session.run(None, {"x": x})
        assert y.shape == (batch, net.n_outputs)
        assert np.array_equal(y, model(torch.as_tensor(x)).numpy())


def test_conditional_module_has_the_same_cache_calls():
    net = sup.compile(sup.load(str(EXAMPLES / "lookup_table.sup")), "conditional")
    model = sup.to_module(net, device="cpu")
    x = torch.as_tensor(np.eye(net.n_inputs)[:3])
    out, cache = model.run_with_cache(x)
    assert list(cache) == ["hook_in", "hook_out"] and torch.equal(cache["hook_out"], out)
    assert torch.equal(out, model.forward_active([[0], [1], [2]]))
    doubled = model.run_with_hooks(x, fwd_hooks=[("hook_out", lambda a, hook: 2 * a)])
    assert torch.equal(doubled, 2 * out)


def test_chunked_batches_equal_one_chunk_and_the_cache_joins_them():
    net = compiled("pairs_small.sup", "superposed")
    whole = SupModule(net, dtype=torch.float64, device="cpu")
    tiny = SupModule(net, dtype=torch.float64, device="cpu", max_cells=7 * whole.layers[0].n_out)
    x = torch.as_tensor((np.random.default_rng(8).random((50, net.n_inputs)) < 0.05) * 1.0)
    active = [row.nonzero().flatten().tolist() or [-1] for row in x]
    assert torch.equal(tiny(x), whole(x))
    assert torch.equal(tiny.forward_active(active), whole.forward_active(active))
    _, cache = tiny.run_with_cache(x)
    _, want = whole.run_with_cache(x)
    assert all(torch.equal(cache[name], want[name]) for name in want)
    assert tiny.forward_active(torch.zeros(0, 2, dtype=torch.long)).shape == (0, net.n_outputs)


def transformer_lens_snippet(model, tokens):
    """The pattern of TransformerLens's docs: cache every activation, then ablate through a
    hook on hook_post and read the result; run unchanged on either library's model."""
    logits, cache = model.run_with_cache(tokens)
    post = cache["layers.0.hook_post"]

    def mean_ablation_hook(value, hook):
        value[:, :3] = value[:, :3].mean(0)
        return value
    ablated = model.run_with_hooks(tokens, fwd_hooks=[("layers.0.hook_post", mean_ablation_hook)])
    return logits, post, ablated, sorted(cache.keys())


def test_transformer_lens_gives_the_same_answers_on_the_same_network():
    """With TransformerLens installed: the same network as a TransformerLens HookedRootModule
    (its own HookPoint and run_with_* code) gives the same caches and ablations as sup's."""
    tl = pytest.importorskip("transformer_lens")
    model = SupModule(compiled("multilevel.sup", "dense"), dtype=torch.float64, device="cpu")
    seq = model.to_sequential()

    class TLLayer(torch.nn.Module):
        def __init__(self, linear, relu):
            super().__init__()
            self.linear, self.relu = linear, relu
            self.hook_pre, self.hook_post = tl.hook_points.HookPoint(), tl.hook_points.HookPoint()

        def forward(self, h):
            pre = self.hook_pre(self.linear(h))
            return self.hook_post(torch.relu(pre) if self.relu else pre)

    class TLModel(tl.HookedRootModule):
        def __init__(self):
            super().__init__()
            self.hook_in = tl.hook_points.HookPoint()
            linears = [m for m in seq if isinstance(m, torch.nn.Linear)]
            self.layers = torch.nn.ModuleList(TLLayer(lin, layer.relu)
                                              for lin, layer in zip(linears, model.layers))
            self.hook_out = tl.hook_points.HookPoint()
            self.setup()

        def forward(self, x):
            h = self.hook_in(x)
            for layer in self.layers:
                h = layer(h)
            return self.hook_out(h)

    tokens = torch.as_tensor((np.random.default_rng(9).random((40, model.n_inputs)) < 0.3) * 1.0)
    theirs = transformer_lens_snippet(TLModel(), tokens)
    ours = transformer_lens_snippet(model, tokens)
    assert ours[3] == theirs[3]
    for a, b in zip(ours[:3], theirs[:3]):
        assert torch.allclose(a, b)
    assert not torch.equal(ours[2], ours[0])         # the ablation did something
