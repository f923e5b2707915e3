"""Ground truth (backends/ground_truth.py) against the module's activations and the reference
semantics: predicted values at every site, exact neurons, read-out decisions, ablations of
neurons (only the outputs the ground truth names may change), JSON round trip, planted errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import sup
from backends.ground_truth import (GroundTruthError, GroundTruth, dense_of, ground_truth,
                                   load_ground_truth, sample_inputs)
from dsl.semantics import evaluate

SMALL = ["pairs_small", "all_pairs", "c17", "lookup_table", "multilevel", "permutation",
         "sparse_features", "two_level_and", "xor_majority", "table_file"]
CASES = [(ex, "dense", {}) for ex in SMALL] + [(ex, "superposed", {}) for ex in SMALL] + [
    ("pairs_small", "superposed", {"input_code": 256})]
_NETS: dict = {}


def compiled(example, target, options):
    """(circuit, network), compiled once per test session."""
    key = (example, target, tuple(sorted(options.items())))
    if key not in _NETS:
        circuit = sup.load(f"examples/{example}.sup")
        _NETS[key] = circuit, sup.compile(circuit, target, **options)
    return _NETS[key]


def activations(net, x) -> dict:
    """Every site's activation from the float64 module's run_with_cache."""
    module = sup.to_module(net, dtype=torch.float64, device="cpu")
    _, cache = module.run_with_cache(torch.as_tensor(x, dtype=torch.float64))
    return {k: v.numpy() for k, v in cache.items()}


def problems(gt: GroundTruth, circuit, net, x) -> list:
    """Where the ground truth disagrees with the module or the semantics on inputs x."""
    found = []
    acts, pred = activations(net, x), gt.feature_values(x)
    if set(acts) != set(gt.sites):
        found.append(f"sites {sorted(set(acts) ^ set(gt.sites))}")
    for name in acts:
        if name in pred and not np.allclose(acts[name], pred[name], atol=1e-9):
            found.append(f"{name}: predicted values differ")
    semantic = gt.semantic_values(circuit, x)
    want = evaluate(circuit, x)
    care = want != 2
    for name, site in gt.sites.items():
        cols, values = semantic[name]
        if site.kind == "encoded":   # activation = x @ encoder + offset
            if not np.allclose(values @ dense_of(site.encoder) + site.offset, acts[name]):
                found.append(f"{name}: encoder")
        elif site.kind == "decoded":  # outputs = activation @ decoder + offset, decided
            bits = acts[name] @ dense_of(site.decoder) + site.offset > gt.threshold
            if (bits != values.astype(bool))[care].any():
                found.append(f"{name}: decoded outputs differ from the semantics")
        elif cols and name.endswith("hook_post"):   # exact neurons: 0/1 signal values
            if ((acts[name][:, cols] != values) & (values != 2)).any():
                found.append(f"{name}: exact neurons differ from their signals")
    return found


@pytest.mark.parametrize("example,target,options", CASES)
def test_values_match_activations(example, target, options):
    """1,000 random sparse-domain inputs: every site as the ground truth predicts."""
    circuit, net = compiled(example, target, options)
    gt = ground_truth(net, circuit)
    x = sample_inputs(circuit.n_inputs, 1000, np.random.default_rng(1), sparsity=circuit.sparsity)
    assert problems(gt, circuit, net, x) == []
    again = GroundTruth.from_json(gt.to_json())
    assert again.site_names() == gt.site_names()
    for name, values in again.feature_values(x[:50]).items():
        np.testing.assert_array_equal(values, gt.feature_values(x[:50])[name])


def test_coded_stream_directions_are_the_code():
    """The input code's stream carries each feature along its code column."""
    circuit, net = compiled("pairs_small", "superposed", {"input_code": 256})
    gt = ground_truth(net, circuit)
    code = net.layers[net.meta["codes"]["input"]["layer"]].dense()
    np.testing.assert_allclose(dense_of(gt.sites["layers.0.hook_post"].encoder), code.T)
    assert gt.sites["layers.1.hook_post"].kind == "neurons"


def test_meanings_name_gates():
    """Neuron meanings read as the circuit's gates."""
    circuit, net = compiled("multilevel", "dense", {})
    meanings = [n["meaning"] for s in ground_truth(net, circuit).sites.values()
                if s.kind == "neurons" for n in s.neurons]
    assert any(" & " in m and "=" in m for m in meanings)
    assert any(m.startswith("carry ") for m in meanings)
    circuit, net = compiled("pairs_small", "superposed", {})
    site = ground_truth(net, circuit).sites["layers.0.hook_post"]
    assert site.neurons[0]["meaning"].startswith("channel neuron")


def _ablation_changes(circuit, net, site, neuron, x):
    """bool [n_outputs]: outputs whose bits change on some input when `neuron` is zeroed."""
    module = sup.to_module(net, dtype=torch.float64, device="cpu")
    xt = torch.as_tensor(x, dtype=torch.float64)

    def zero(act, hook):
        act = act.clone()
        act[:, neuron] = 0.0
        return act
    base = module(xt).numpy() > net.threshold
    cut = module.run_with_hooks(xt, fwd_hooks=[(site, zero)]).numpy() > net.threshold
    return (base != cut).any(axis=0), base, cut


def ablation_problems(gt, circuit, net, site_name, neuron, x, want) -> list:
    """What zeroing `neuron` shows wrong in the ground truth: an output it does not serve that
    changes, or leaves the reference values; in a dense network, a firing neuron whose served
    outputs never change."""
    changed, _, cut = _ablation_changes(circuit, net, site_name, neuron, x)
    serves = set(gt.dependents(site_name, neuron))
    others = np.array([n not in serves for n in gt.output_names])
    found = []
    if changed[others].any():
        found.append(f"{site_name}[{neuron}]: ablation changes outputs it does not serve")
    if ((cut[:, others] != want[:, others].astype(bool)) & (want[:, others] != 2)).any():
        found.append(f"{site_name}[{neuron}]: unserved outputs leave the reference values")
    if net.target == "dense" and serves and not changed.any() \
            and not _never_fires(net, gt.sites[site_name], neuron, x):
        found.append(f"{site_name}[{neuron}]: serves outputs that never depend on it")
    return found


def _inputs(circuit, n, seed):
    return sample_inputs(circuit.n_inputs, n, np.random.default_rng(seed),
                         sparsity=circuit.sparsity)


@pytest.mark.parametrize("example,target", [("pairs_small", "dense"),
                                            ("pairs_small", "superposed"),
                                            ("multilevel", "dense"), ("c17", "dense")])
def test_ablation_changes_only_served_outputs(example, target):
    """Zeroing a neuron (run_with_hooks) changes only outputs it serves; the rest keep the
    reference values. In a dense network a neuron that fires changes a served output."""
    circuit, net = compiled(example, target, {})
    gt = ground_truth(net, circuit)
    x = _inputs(circuit, 3000, 2)
    want = evaluate(circuit, x)
    rng = np.random.default_rng(3)
    for site_name in [s for s, d in gt.sites.items()
                      if d.kind == "neurons" and s.endswith("hook_post")]:
        site = gt.sites[site_name]
        for neuron in rng.choice(site.width, min(site.width, 12), replace=False):
            assert ablation_problems(gt, circuit, net, site_name, int(neuron), x, want) == []


def _never_fires(net, site, neuron, x) -> bool:
    acts = activations(net, x)[site.name]
    return not (acts[:, neuron] != 0).any()


def test_planted_errors_are_caught():
    """A wrong weight, swapped exact signals, a served output left out or a served output
    added: each is found."""
    circuit, net = compiled("multilevel", "dense", {})
    gt = ground_truth(net, circuit)
    x = _inputs(circuit, 500, 4)
    want = evaluate(circuit, x)
    assert problems(gt, circuit, net, x) == []
    bad = copy.deepcopy(gt)
    bad.weights[1]["vals"][0] += 1.0
    assert problems(bad, circuit, net, x)
    bad = copy.deepcopy(gt)
    site = bad.sites["layers.0.hook_post"]
    exact = [n for n in site.neurons if n["exact"]]
    exact[0]["exact"], exact[1]["exact"] = exact[1]["exact"], exact[0]["exact"]
    assert exact[0]["exact"] != exact[1]["exact"]
    assert problems(bad, circuit, net, x)
    site = gt.sites["layers.0.hook_post"]
    neuron = next(i for i, n in enumerate(site.neurons) if n["serves"])
    assert ablation_problems(gt, circuit, net, "layers.0.hook_post", neuron, x, want) == []
    bad = copy.deepcopy(gt)
    bad.sites["layers.0.hook_post"].neurons[neuron]["serves"] = []        # left out
    assert ablation_problems(bad, circuit, net, "layers.0.hook_post", neuron, x, want)
    bad = copy.deepcopy(gt)
    served = set(site.neurons[neuron]["serves"])
    unrelated = next(n for n in gt.output_names if n not in served)
    bad.sites["layers.0.hook_post"].neurons[neuron]["serves"] = [unrelated]   # wrong one
    assert ablation_problems(bad, circuit, net, "layers.0.hook_post", neuron, x, want)


def test_sidecar_saved_with_the_model(tmp_path):
    """sup.save writes model.groundtruth.json beside a layered model; it loads back."""
    circuit, net = compiled("c17", "dense", {})
    path = sup.save(net, tmp_path / "m")
    gt = load_ground_truth(path)
    x = sample_inputs(circuit.n_inputs, 64, np.random.default_rng(5))
    np.testing.assert_allclose(gt.feature_values(x)["hook_out"], net.forward(x))


def test_bad_input():
    """Clear errors: a forest, a malformed document, inputs of the wrong width."""
    circuit = sup.load("examples/c17.sup")
    with pytest.raises(GroundTruthError, match="layered"):
        ground_truth(sup.compile(circuit, "conditional"))
    with pytest.raises(GroundTruthError):
        GroundTruth.from_json('{"format": "other"}')
    gt = ground_truth(compiled("c17", "dense", {})[1])
    with pytest.raises(GroundTruthError, match="shape"):
        gt.feature_values(np.zeros((2, 3)))
