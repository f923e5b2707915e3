"""examples/sae_on_superposition.py at its reduced size: it runs, prints its scores, saves the
figure, and the trained SAE finds the ground truth's features better than the neuron basis."""

from __future__ import annotations

import re
import runpy
import sys

import pytest

pytest.importorskip("matplotlib")


def test_small_sae_example(tmp_path, capsys, monkeypatch):
    """--small: scores printed; trained SAE MMCS and MCC above both baselines."""
    figure = tmp_path / "sae.png"
    monkeypatch.setattr(sys, "argv", ["sae_on_superposition.py", "--small", "--figure",
                                      str(figure)])
    with pytest.raises(SystemExit) as done:
        runpy.run_path("examples/sae_on_superposition.py", run_name="__main__")
    assert done.value.code == 0
    out = capsys.readouterr().out
    scores = {name: (float(a), float(b)) for name, a, b in re.findall(
        r"^(trained SAE|untrained SAE|neuron basis)\s+MMCS ([\d.]+) .* MCC ([\d.]+)", out, re.M)}
    assert set(scores) == {"trained SAE", "untrained SAE", "neuron basis"}
    trained = scores["trained SAE"]
    for baseline in ("untrained SAE", "neuron basis"):
        assert trained[0] > scores[baseline][0] + 0.1 and trained[1] > scores[baseline][1] + 0.1
    assert figure.stat().st_size > 10_000
