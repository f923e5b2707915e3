"""toymodels/: the papers' toy models, each number checked against an independent reference
(closed form against simulation, against brute-force enumeration, against quadrature)."""

from __future__ import annotations

import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

import sup
from dsl.semantics import evaluate as reference_evaluate
from cli_helpers import run
from toymodels import autoencoder as ae
from toymodels import cc, pairs


# ------------------------------------------------------------------ CC model

def test_naive_closed_form_is_one_twelfth_and_matches_simulation():
    closed = cc.naive_closed_form()
    assert closed["idealised"] == pytest.approx(1 / 12, abs=1e-15)
    net = cc.fixed_mlp(*cc.naive_weights())
    clean = torch.zeros(cc.N_FEATURES, cc.N_FEATURES)
    sim = cc.evaluate(net, clean, 0.1, nontrivial=200_000, seed=3)
    assert abs(sim["L_over_p"] - 1 / 12) < 5 * sim["stderr"] + 1e-4
    assert sim["mixing_term"] == 0.0


def test_idealised_naive_under_mixing_is_still_one_twelfth():
    m, _ = cc.mixing_matrix(cc.parse_mixing("embed"), seed=1)
    sim = cc.evaluate(cc.idealised_naive(m), m, 0.1, nontrivial=100_000, seed=6)
    assert abs(sim["L_over_p"] - 1 / 12) < 5 * sim["stderr"] + 1e-4


def test_naive_mlp_under_mixing_labels_matches_its_closed_form():
    m, _ = cc.mixing_matrix(cc.parse_mixing("sym:0.05"), seed=2)
    closed = cc.naive_closed_form(m.double().numpy())["literal"]
    net = cc.fixed_mlp(*cc.naive_weights())
    sim = cc.evaluate(net, m, 0.1, nontrivial=200_000, seed=4)
    assert abs(sim["L_over_p"] - closed) < 5 * sim["stderr"] + 1e-4
    assert closed > 1 / 12 + 0.02           # the mixing energy |M|_F^2 / (3n) is paid in full


def test_zero_model_loss_split_matches_closed_form():
    m, _ = cc.mixing_matrix(cc.parse_mixing("embed"), seed=0)
    m64 = m.double().numpy()
    zero = lambda x: torch.zeros_like(x)      # noqa: E731
    sim = cc.evaluate(zero, m, 0.2, nontrivial=100_000, seed=5)
    assert sim["relu_term"] == pytest.approx(1 / 6, rel=0.02)       # E[ReLU(x)^2] / p
    assert sim["mixing_term"] == pytest.approx((m64 ** 2).sum() / (3 * 100), rel=0.03)


def test_embedding_rows_are_unit_and_mixing_has_the_papers_scale():
    w_e = cc.embedding(seed=1)
    assert torch.allclose(w_e.norm(dim=1), torch.ones(100), atol=1e-5)
    m, _ = cc.mixing_matrix(cc.parse_mixing("embed"), seed=1)
    off = m[~torch.eye(100, dtype=bool)]
    assert float(off.std()) == pytest.approx(1 / math.sqrt(1000), rel=0.05)
    assert float(m.diagonal().abs().max()) < 1e-5


def test_residual_architecture_is_the_reduced_mlp_with_opposite_mixing():
    """Braun et al.'s literal forward against labels x + ReLU(x) gives the same error as the
    reduced MLP against ReLU(x) + M x with M = I - W_E W_E^T."""
    m, w_e = cc.mixing_matrix(cc.parse_mixing("resid"), seed=3)
    model = cc.CCMLP(embed=w_e)
    gen = torch.Generator().manual_seed(0)
    x = cc.sample_inputs(64, 100, 0.2, gen, "cpu")
    with torch.no_grad():
        literal = model.residual_forward(x) - (x + torch.relu(x))
        reduced = model(x) - cc.labels(x, m)
    assert torch.allclose(literal, reduced, atol=1e-4)
    embed_m, _ = cc.mixing_matrix(cc.parse_mixing("embed"), seed=3)
    assert torch.allclose(m, -embed_m)


def test_inputs_have_the_right_law():
    gen = torch.Generator().manual_seed(1)
    x = cc.sample_inputs(200_000, 10, 0.3, gen, "cpu")
    active = x != 0
    assert float(active.float().mean()) == pytest.approx(0.3, abs=0.003)
    vals = x[active]
    assert float(vals.mean()) == pytest.approx(0.0, abs=0.005)
    assert float((vals ** 2).mean()) == pytest.approx(1 / 3, abs=0.004)
    assert float(vals.min()) >= -1 and float(vals.max()) < 1


def test_semi_nmf_is_nonnegative_and_monotone():
    rng = np.random.default_rng(0)
    x = np.eye(30) + 0.05 * rng.standard_normal((30, 30))
    init, _ = cc.nmf(np.abs(x).T, 10)
    init = init + 0.2
    errors = []
    for iters in (1, 5, 20, 80):
        f, g = cc.semi_nmf(x, 10, iters=iters, init=init)
        assert (g >= 0).all()
        errors.append(np.linalg.norm(x - f @ g.T))
    assert all(b <= a + 1e-9 for a, b in zip(errors, errors[1:]))
    # clean target I: the best rank-10 approximation of I_30 has error sqrt(20)
    f, g = cc.semi_nmf(np.eye(30), 10, iters=300)
    assert np.linalg.norm(np.eye(30) - f @ g.T) == pytest.approx(math.sqrt(20), abs=0.05)


def test_snmf_baseline_single_feature_is_the_target():
    """W_in = G >= 0 passes a positive single input linearly: output x_i (W_in W_out)_i."""
    m, _ = cc.mixing_matrix(cc.parse_mixing("sym:0.02"), seed=0, n=20)
    w_in, w_out = cc.snmf_weights(m.double().numpy(), d_mlp=20, iters=200)
    net = cc.fixed_mlp(w_in, w_out)
    x = torch.zeros(1, 20)
    x[0, 3] = 0.7
    with torch.no_grad():
        out = net(x)
    assert (w_in >= 0).all()
    assert torch.allclose(out, cc.labels(x, m), atol=2e-3)   # full rank: nearly exact


@pytest.fixture
def one_thread():
    """Tiny matrices: one torch thread (much faster on a shared 2-core machine); restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_short_training_lowers_the_loss(one_thread):
    m, _ = cc.mixing_matrix(cc.parse_mixing("embed"), seed=0)
    model = cc.train_cc(m, 0.05, steps=150, seed=0, batch=512)
    assert model.train_info["last_loss"] < 0.5 * model.train_info["first_loss"]


def test_parse_mixing():
    assert cc.parse_mixing("sym:0.03") == cc.Mixing("sym", 0.03)
    assert cc.parse_mixing("clean").name == "clean"
    for bad in ("bogus", "sym", "sym:x", "embed:1", "asym:-1"):
        with pytest.raises(cc.ToyInputError):
            cc.parse_mixing(bad)


# ------------------------------------------------------------------ pairs task

def test_pair_labels_match_the_circuits_reference_semantics():
    circuit = sup.loads(pairs.pairs_source(count=40), name="t.sup")
    index = torch.as_tensor(pairs.pair_index(count=40))
    gen = torch.Generator().manual_seed(0)
    x = pairs.sample_boolean(500, 100, 0.05, gen, "cpu")
    ours = pairs.and_labels(x, index).numpy().astype(np.uint8)
    assert (reference_evaluate(circuit, x.numpy().astype(bool)) == ours).all()


def test_compiled_pairs_network_is_proved_and_exact_on_its_domain():
    info = pairs.compile_task(count=30, sparsity=2)
    assert info["verify"]["structural"]["verified"] is True
    assert info["verify"]["exhaustive"]["verified"] is True
    index = torch.as_tensor(pairs.pair_index(count=30))
    errors = pairs.domain_errors(pairs.compiled_predict(info["module"]), index, 100, 2)
    assert errors == {"inputs": 1 + 100 + 4950, "wrong_inputs": 0}
    assert info["neurons"] < 30                      # fewer neurons than ANDs


def test_domain_mass_is_the_binomial_sum_and_matches_sampling():
    assert pairs.domain_mass(100, 0.01, 100) == pytest.approx(1.0)
    gen = torch.Generator().manual_seed(2)
    x = pairs.sample_boolean(200_000, 100, 0.01, gen, "cpu")
    freq = float((x.sum(dim=1) <= 2).float().mean())
    assert freq == pytest.approx(pairs.domain_mass(100, 0.01, 2), abs=0.003)


# ------------------------------------------------------------------ autoencoder

def _brute_rademacher(w, p, m, exact=False):
    """I by enumerating all 3^n inputs x in {0, +1, -1}^n with their probabilities."""
    a = w.T @ w
    n = a.shape[0]
    total = Fraction(0) if exact else 0.0
    for vals in itertools.product((0, 1, -1), repeat=n):
        prob = 1
        for v in vals:
            prob = prob * ((1 - p) if v == 0 else p / 2)
        x = np.array(vals, dtype=object if exact else float)
        xhat = np.array([sum(a[j, i] * x[i] for i in range(n)) ** m for j in range(n)],
                        dtype=object if exact else float)
        total += prob * (2 * sum(x * xhat) - sum(xhat * xhat))
    return total


def _quadrature(w, p, m, nodes, weights):
    """I by enumerating supports and integrating u over each exactly (Gauss quadrature with
    enough nodes is exact for polynomials of degree 2m + 1 in each active coordinate)."""
    a = w.T @ w
    n = a.shape[0]
    total = 0.0
    for support in itertools.product((0, 1), repeat=n):
        k = sum(support)
        prob = p ** k * (1 - p) ** (n - k)
        idx = [i for i in range(n) if support[i]]
        if not idx:
            continue
        for combo in itertools.product(range(len(nodes)), repeat=k):
            x = np.zeros(n)
            x[idx] = nodes[list(combo)]
            wq = np.prod(weights[list(combo)])
            xhat = (a @ x) ** m
            total += prob * wq * (2 * x @ xhat - xhat @ xhat)
    return total


@pytest.mark.parametrize("m", [1, 3, 5])
def test_exact_I_matches_brute_force_enumeration_rademacher(m):
    w = np.random.default_rng(m).standard_normal((2, 4))
    for p in (0.05, 0.4, 1.0):
        assert ae.exact_improvement(w, p, "rademacher", m) == pytest.approx(
            _brute_rademacher(w, p, m), rel=1e-10, abs=1e-12)


def test_exact_I_in_rationals_equals_exact_enumeration():
    w = np.array([[1, Fraction(1, 2), Fraction(-1, 4)], [0, Fraction(1, 2), 1]], dtype=object)
    p = Fraction(1, 3)
    got = ae.exact_improvement(w.astype(float), p, "rademacher", 3, exact=True)
    assert isinstance(got, Fraction)
    assert got == _brute_rademacher(w, p, 3, exact=True)


@pytest.mark.parametrize("law,m", [("gaussian", 3), ("gaussian", 5), ("uniform", 3)])
def test_exact_I_matches_quadrature_over_supports(law, m):
    npts = m + 2
    if law == "gaussian":
        nodes, weights = np.polynomial.hermite_e.hermegauss(npts)
        weights = weights / math.sqrt(2 * math.pi)
    else:
        nodes, weights = np.polynomial.legendre.leggauss(npts)
        weights = weights / 2
    w = np.random.default_rng(7).standard_normal((2, 3)) * 0.6
    for p in (0.1, 0.7):
        assert ae.exact_improvement(w, p, law, m) == pytest.approx(
            _quadrature(w, p, m, nodes, weights), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("law", ae.LAWS)
def test_exact_I_matches_simulation(law):
    w = ae.random_code(3, 12, seed=1) * 0.8
    exact = ae.exact_improvement(w, 0.1, law, 3)
    mean, stderr = ae.simulate_improvement(w, 0.1, law, 3, samples=200_000, seed=2)
    assert abs(mean - exact) < 5 * stderr


def test_torch_and_numpy_agree_and_gradients_flow():
    w = np.random.default_rng(0).standard_normal((3, 10))
    wt = torch.tensor(w, requires_grad=True)
    value = ae.exact_improvement(wt, 0.05, "gaussian", 3)
    value.backward()
    assert float(value.detach()) == pytest.approx(ae.exact_improvement(w, 0.05, "gaussian", 3),
                                                  rel=1e-12)
    assert wt.grad is not None and torch.isfinite(wt.grad).all()


@pytest.mark.parametrize("law", ae.LAWS)
def test_monosemantic_optimum(law):
    for m in (3, 5):
        w = ae.monosemantic_weights(3, 7, 0.2, law, m)
        exact = ae.exact_improvement(w, 0.2, law, m)
        assert exact == pytest.approx(float(ae.monosemantic_optimum(law, 0.2, 3, m)), rel=1e-12)
        # the scale is optimal: any other scale is worse
        for factor in (0.9, 1.1):
            assert ae.exact_improvement(w * factor, 0.2, law, m) < exact


def test_best_scale_is_the_maximum_over_scales():
    w = ae.pad_columns(ae.sup_sign_code(4, 20, 0), 30)
    best, c = ae.best_scale(w, 0.01, "rademacher", 3)
    scan = max(ae.exact_improvement(w * math.sqrt(s), 0.01, "rademacher", 3)
               for s in np.linspace(0.05, 2.0, 400))
    assert best >= scan - 1e-12
    assert ae.exact_improvement(w * math.sqrt(c), 0.01, "rademacher", 3) == pytest.approx(best)


def test_linear_case_optimum_is_p_mu2_min_d_n():
    for d, n in ((2, 5), (4, 3)):
        proj = ae.monosemantic_weights(d, n, 0.3, "gaussian", 1)
        assert ae.exact_improvement(proj, 0.3, "gaussian", 1) == pytest.approx(0.3 * min(d, n))
        w = ae.train_weights(d, n, 0.3, "gaussian", 1, steps=400, lr=0.05)
        trained = ae.exact_improvement(w, 0.3, "gaussian", 1)
        assert trained == pytest.approx(0.3 * min(d, n), rel=1e-3)
        rnd = np.random.default_rng(0).standard_normal((d, n))
        a = rnd.T @ rnd
        assert ae.exact_improvement(rnd, 0.3, "gaussian", 1) == pytest.approx(
            0.3 * (2 * np.trace(a) - np.sum(a * a)))


def test_superposition_beats_monosemantic_when_sparse():
    """For p <= d^-m a scaled code of many features beats the projection (the paper's point)."""
    cell = ae.grid_cell(3, 54, 1e-3, "rademacher", 3, train=False)
    assert cell["random_code"]["I"] > 1.3 * cell["monosemantic"]
    assert cell["monosemantic_closed_form"] == pytest.approx(cell["monosemantic"])
    assert cell["ratio"] == pytest.approx(cell["best_I"] / (1e-3 * 27))


# ------------------------------------------------------------------ command line

def test_cli_autoencoder_json(capsys, tmp_path):
    code, out, _ = run(capsys, "toy", "autoencoder", "--d", "2", "--p", "0.1", "--steps",
                        "20", "--json")
    assert code == 0
    data = json.loads(out)
    (cell,) = data["cells"]
    assert cell["monosemantic"] == pytest.approx(0.2)
    assert "trained" in cell and cell["best_I"] >= cell["monosemantic"]


def test_cli_cc_relu_small(capsys):
    code, out, _ = run(capsys, "toy", "cc", "--steps", "30", "--eval-samples", "20000",
                        "--mixing", "clean", "--no-snmf", "--p", "0.05", "--device", "cpu",
                        "--json")
    assert code == 0
    data = json.loads(out)
    assert data["naive"]["closed_form"] == pytest.approx(1 / 12)
    assert data["rows"][0]["mixing"] == "clean" and data["rows"][0]["train"]["steps"] == 30


def test_cli_cc_pairs_small(capsys):
    code, out, _ = run(capsys, "toy", "cc", "--task", "pairs", "--pairs", "12", "--steps", "20",
                        "--eval-samples", "5000", "--widths", "6", "--p", "0.05")
    assert code == 0
    assert "sup compiled (proved)" in out and "structural proof True" in out


@pytest.mark.parametrize("argv", [
    ["toy", "cc", "--p", "2"],
    ["toy", "cc", "--mixing", "bogus"],
    ["toy", "cc", "--steps", "0"],
    ["toy", "autoencoder", "--m", "2"],
    ["toy", "autoencoder", "--law", "cauchy"],
    ["toy", "cc", "--task", "pairs", "--widths", "0"],
    ["toy", "cc", "--task", "pairs", "--widths", "-3"],
    ["toy", "cc", "--task", "pairs", "--pairs", "0"],
    ["toy", "cc", "--task", "pairs", "--pairs", "100000000000"],
    ["toy", "cc", "--task", "pairs", "--sparsity", "-1"],
    ["toy", "cc", "--eval-samples", "0"],
    ["toy", "cc", "--seed", "-1"],
    ["toy", "cc", "--device", "tpu"],
    ["toy", "autoencoder", "--d", "0"],
    ["toy", "autoencoder", "--p", "0"],
    ["toy", "autoencoder", "--steps", "-1"],
])
def test_cli_bad_input_exits_2(capsys, argv):
    """Every bad option value is refused before any training: exit 2, an `error:` line, no
    traceback, and with --json the error object as the one line on standard output."""
    code, out, err = run(capsys, *argv, "--json")
    assert code == 2
    assert "error" in err and "Traceback" not in err
    assert "error" in json.loads(out)


def test_cli_plot_writes_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "ae.png"
    code, _, _ = run(capsys, "toy", "autoencoder", "--d", "2", "--p", "0.01", "0.1",
                      "--steps", "0", "--plot", path)
    assert code == 0 and path.read_bytes()[:4] == b"\x89PNG"
