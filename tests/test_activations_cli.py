"""`sup activations` (sup/activations_cmds.py): datasets whose activations equal the ground
truth's predictions and whose features are the true values; clear errors for bad input."""

from __future__ import annotations

import json

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

from cli_helpers import run
from dsl.semantics import evaluate
import sup

EXAMPLE = "examples/pairs_small.sup"


def _model(tmp_path, target="superposed"):
    path = tmp_path / "m"
    sup.save(sup.compile(sup.load(EXAMPLE), target), path)
    return path


def test_hidden_site_dataset(tmp_path, capsys):
    """Activations at the channel layer equal the ground truth's prediction; k inputs on."""
    model = _model(tmp_path)
    code, out, err = run(capsys, "activations", model, "--samples", 3000, "--site",
                         "layers.0.hook_post", "--k", 2, "--chunk", 1000, "-o", tmp_path / "d")
    assert code == 0, err
    data = load_file(str(tmp_path / "d.safetensors"))
    assert data["inputs"].shape == (3000, 64) and (data["inputs"].sum(1) == 2).all()
    np.testing.assert_allclose(data["activations"], data["predicted"], atol=1e-5)
    with safe_open(str(tmp_path / "d.safetensors"), framework="numpy") as handle:
        meta = json.loads(handle.metadata()["sup"])
    assert meta["site"] == "layers.0.hook_post" and len(meta["feature_names"]) == \
        data["activations"].shape[1]


def test_output_site_features_are_reference_values(tmp_path, capsys):
    """At hook_out with --circuit the features are the circuit's outputs; --p draws i.i.d."""
    model = _model(tmp_path, "dense")
    code, out, err = run(capsys, "activations", model, "--samples", 500, "--site", "hook_out",
                         "--p", 0.03, "--circuit", EXAMPLE, "-o", tmp_path / "d", "--json")
    assert code == 0, err
    assert json.loads(out)["kind"] == "decoded"
    data = load_file(str(tmp_path / "d.safetensors"))
    want = evaluate(sup.load(EXAMPLE), data["inputs"])
    np.testing.assert_array_equal(data["features"], want)
    # on inputs inside the promise the network decides as the circuit
    inside = data["inputs"].sum(1) <= 2
    assert ((data["activations"][inside] > 0.5) == want[inside].astype(bool)).all()


def test_bad_input(tmp_path, capsys):
    """Unknown site (lists the valid ones), --k and --p together, a forest, a missing model."""
    model = _model(tmp_path, "dense")
    code, out, err = run(capsys, "activations", model, "--site", "layers.7.hook_pre", "-o",
                         tmp_path / "d")
    assert code == 2 and "hook_in, layers.0.hook_pre" in err and "Traceback" not in err
    code, _, err = run(capsys, "activations", model, "--site", "hook_in", "--k", 1, "--p", 0.1,
                       "-o", tmp_path / "d")
    assert code == 2
    code, _, err = run(capsys, "activations", model, "--site", "hook_in", "--p", 1.5,
                       "-o", tmp_path / "d")
    assert code == 2 and "between 0 and 1" in err
    code, _, err = run(capsys, "activations", model, "--site", "hook_in", "--k", 65,
                       "-o", tmp_path / "d")
    assert code == 2 and "64 inputs" in err
    forest = tmp_path / "f"
    sup.save(sup.compile(sup.load(EXAMPLE), "conditional"), forest)
    code, _, err = run(capsys, "activations", forest, "--site", "hook_in", "-o", tmp_path / "d")
    assert code == 2 and "layered" in err
    code, _, err = run(capsys, "activations", tmp_path / "nope", "--site", "hook_in", "-o",
                       tmp_path / "d")
    assert code == 2 and "Traceback" not in err


def test_a_dataset_larger_than_memory_is_refused_up_front(tmp_path, capsys, monkeypatch):
    """The arrays are held whole until written: a request over half the available memory
    stops before any work, saying how many samples fit."""
    import sup.activations_cmds as activations
    model = _model(tmp_path, "dense")
    monkeypatch.setattr(activations, "available_bytes", lambda: 2 << 20)   # 2 MiB free
    code, _, err = run(capsys, "activations", model, "--site", "hook_in", "--samples", 100_000,
                       "-o", tmp_path / "d")
    assert code == 2 and "samples fit" in err and not (tmp_path / "d.safetensors").exists()
    code, _, _ = run(capsys, "activations", model, "--site", "hook_in", "--samples", 100,
                     "-o", tmp_path / "d")
    assert code == 0 and (tmp_path / "d.safetensors").exists()
