"""The verifier (verify/*.py) against brute force.

* correct dense compilations: exhaustive and SMT both say verified, on the small examples and
  on random circuits (tests/random_circuits.py);
* planted bugs: one weight or bias of a compiled network changed; the whole domain is brute
  forced with the numpy forward (`Network.forward`) and the dense reference (`evaluate`), and
  the exhaustive report must list EXACTLY the brute-force failing inputs with EXACTLY their
  wrong outputs; SMT must refute with a counterexample that brute force confirms;
* the issue's SMT requirements (c17, a random 32-input / ~200-gate circuit, 64 features at
  sparsity 3), shards and merge, sampling and its Clopper-Pearson bound, undecided SMT.

The command line is tested in tests/test_verify_cli.py.
"""

from __future__ import annotations

import copy
import functools
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import z3

import dsl
from backends import SupModule
from compiler import compile_circuit
from dsl.domain import SparseDomain, to_dense, verification_domain
from dsl.semantics import DONT_CARE, evaluate
from verify import merge, verify_exhaustive, verify_sample, verify_smt
from verify.sample import upper_bound

try:  # `python -m pytest` puts the repository root on sys.path, plain `pytest` only tests/
    from tests.random_circuits import random_circuit
except ImportError:  # pragma: no cover
    from random_circuits import random_circuit

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SMALL_LIMIT = 5_000
HUGE = {"pairs_1m", "pairs_16k"}                  # millions of inputs: not even loaded


def _domain_size(path) -> int:
    circuit = dsl.load(path)
    return SparseDomain(circuit.n_inputs, circuit.sparsity).size


SMALL_EXAMPLES = sorted(p.stem for p in EXAMPLES.glob("*.sup")
                        if p.stem not in HUGE and _domain_size(p) <= SMALL_LIMIT)
N_RANDOM = 40


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


# ====================================================================== building blocks

@functools.lru_cache(maxsize=None)
def example(name: str):
    circuit = dsl.load(EXAMPLES / f"{name}.sup")
    return circuit, compile_circuit(circuit, target="dense")


_RANDOM_DIR = {}


@functools.lru_cache(maxsize=None)
def random_example(seed: int):
    """(circuit, dense network) of random_circuit(seed); rows files go to a temp folder."""
    import tempfile
    text, files = random_circuit(seed)
    if files:
        if "dir" not in _RANDOM_DIR:
            _RANDOM_DIR["dir"] = tempfile.TemporaryDirectory(prefix="sup_verify_")
        folder = Path(_RANDOM_DIR["dir"].name) / f"r{seed}"
        folder.mkdir(exist_ok=True)
        for name, content in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(content)
        (folder / "c.sup").write_text(text)
        circuit = dsl.load(folder / "c.sup")
    else:
        circuit = dsl.loads(text, name=f"r{seed}")
    return circuit, compile_circuit(circuit, target="dense")


def cpu(net) -> SupModule:
    return SupModule(net, device="cpu")


def domain_of(circuit) -> SparseDomain:
    """The domain the language defines (a don't-care-default table's rows, or the sparse one)."""
    return verification_domain(circuit)


def brute_force(circuit, net) -> dict:
    """{frozenset(active feature ids): frozenset(wrong output positions)} over the whole domain,
    from the numpy float64 forward and the dense reference evaluator."""
    dom = domain_of(circuit)
    active = dom.unrank(np.arange(dom.size, dtype=np.int64))
    x = to_dense(active, circuit.n_inputs)
    y = net.forward(x)
    spec = evaluate(circuit, x)
    wrong = (spec != DONT_CARE) & ((y > net.threshold) != (spec == 1))
    return {frozenset(int(f) for f in active[r] if f >= 0): frozenset(np.flatnonzero(wrong[r]).tolist())
            for r in np.flatnonzero(wrong.any(axis=1))}


def brute_force_margin(circuit, net) -> float:
    """Smallest signed distance of a cared read-out from the threshold over the domain."""
    dom = domain_of(circuit)
    x = to_dense(dom.unrank(np.arange(dom.size, dtype=np.int64)), circuit.n_inputs)
    y, spec = net.forward(x), evaluate(circuit, x)
    margin = np.where(spec == 1, y - net.threshold, net.threshold - y)
    return float(margin[spec != DONT_CARE].min())


def as_ids(circuit, counterexample) -> frozenset:
    lookup = circuit.input_lookup()
    return frozenset(lookup[name] for name in counterexample["active"])


def wrong_ids(circuit, counterexample) -> frozenset:
    positions = {name: i for i, name in enumerate(circuit.output_names())}
    return frozenset(positions[name] for name in counterexample["wrong"])


def perturbed(net, layer: int, what: str, index: int, delta: float):
    bad = copy.deepcopy(net)
    target = bad.layers[layer].vals if what == "w" else bad.layers[layer].bias
    target[index] += delta
    return bad


def plant_bug(circuit, net, seed: int, proper: bool = True):
    """A copy of net with one integer change of one weight or bias that makes at least one
    input fail (and, with proper, not every input): (bad net, brute-force failures)."""
    rng = random.Random(seed)
    candidates = [(li, "w", e) for li, layer in enumerate(net.layers) for e in range(len(layer.vals))]
    candidates += [(li, "b", n) for li, layer in enumerate(net.layers) for n in range(layer.n_out)]
    rng.shuffle(candidates)
    size = domain_of(circuit).size
    for li, what, idx in candidates[:200]:
        for delta in rng.sample([1.0, -1.0, 2.0, -2.0], 4):
            bad = perturbed(net, li, what, idx, delta)
            fails = brute_force(circuit, bad)
            if fails and (not proper or len(fails) < size):
                return bad, fails
    raise AssertionError("no perturbation makes an input fail")


def baseline_bug(circuit, net, output: int):
    """Shift the read-out bias of `output` by one so the all-zero input gets it wrong."""
    spec0 = evaluate(circuit, np.zeros((1, circuit.n_inputs), bool))[0, output]
    assert spec0 != DONT_CARE
    return perturbed(net, len(net.layers) - 1, "b", output, 1.0 if spec0 == 0 else -1.0)


def check_exact_report(circuit, report, fails):
    """The exhaustive report lists exactly the brute-force failures and their wrong outputs."""
    assert report["verified"] is False
    assert report["failing_inputs"] == len(fails)
    assert report["inputs_checked"] == domain_of(circuit).size
    listed = {}
    for cx in report["counterexamples"]:
        key = as_ids(circuit, cx)
        assert key not in listed, f"input {cx['active']} listed twice"
        listed[key] = wrong_ids(circuit, cx)
    assert set(listed) == set(fails)
    for key, wrong in listed.items():
        assert wrong == fails[key], (sorted(key), sorted(wrong), sorted(fails[key]))
    assert report["min_margin"] is not None and report["min_margin"] <= 0


def check_smt_refutes(circuit, report, fails):
    assert report["verified"] is False
    assert report["outputs_refuted"] >= 1
    assert report["counterexamples"]
    for cx in report["counterexamples"]:
        key = as_ids(circuit, cx)
        assert key in fails, f"SMT counterexample {cx['active']} is not a failing input"
        assert wrong_ids(circuit, cx) <= fails[key]


# ====================================================================== 1. correct networks

def test_small_examples_are_selected():
    assert {"c17", "multilevel", "pairs_small", "lookup_table"} <= set(SMALL_EXAMPLES)
    assert "sparse_features" not in SMALL_EXAMPLES      # 7,807 inputs


def _check_correct(circuit, net):
    size = domain_of(circuit).size
    assert not brute_force(circuit, net)               # the dense compiler is exact
    module = cpu(net)
    ex = verify_exhaustive(circuit, module, progress=False)
    assert ex["verified"] is True, ex["counterexamples"][:3]
    assert ex["method"] == "exhaustive"
    assert ex["inputs_checked"] == size == ex["domain_size"]
    assert ex["failing_inputs"] == 0 and ex["counterexamples"] == []
    assert ex["min_margin"] is not None and ex["min_margin"] > 0
    # every input's cared outputs, counted by brute force
    dom = domain_of(circuit)
    x = to_dense(dom.unrank(np.arange(size, dtype=np.int64)), circuit.n_inputs)
    assert ex["outputs_checked"] == int((evaluate(circuit, x) != DONT_CARE).sum())
    sm = verify_smt(circuit, net, module, progress=False)
    assert sm["verified"] is True, (sm["undecided"], sm["counterexamples"])
    assert sm["method"] == "smt"
    assert sm["outputs_checked"] == circuit.n_outputs == sm["outputs_total"]
    assert sm["counterexamples"] == [] and sm["outputs_undecided"] == 0


@pytest.mark.parametrize("name", SMALL_EXAMPLES)
def test_examples_verify(name):
    _check_correct(*example(name))


@pytest.mark.parametrize("seed", range(N_RANDOM))
def test_random_circuits_verify(seed):
    _check_correct(*random_example(seed))


def test_random_circuits_cover_dont_care_and_sparsity():
    circuits = [random_example(s)[0] for s in range(N_RANDOM)]
    assert any(c.has_dont_care for c in circuits)
    assert any(c.sparsity is not None for c in circuits)
    assert any(c.sparsity is None for c in circuits)


def test_exhaustive_batches_do_not_matter():
    circuit, net = example("multilevel")
    bad, fails = plant_bug(circuit, net, 5)
    module = cpu(bad)
    whole = verify_exhaustive(circuit, module, max_counterexamples=10**6, progress=False)
    small = verify_exhaustive(circuit, module, batch=7, max_counterexamples=10**6, progress=False)
    check_exact_report(circuit, small, fails)
    for key in ("inputs_checked", "outputs_checked", "failing_inputs", "min_margin"):
        assert whole[key] == small[key]


# ====================================================================== 2. planted bugs

PLANTED = [("example", "c17", 0), ("example", "c17", 1), ("example", "multilevel", 2),
           ("example", "xor_majority", 3), ("example", "lookup_table", 4),
           ("example", "table_file", 5), ("example", "pairs_small", 6),
           ("random", 3, 7), ("random", 11, 8), ("random", 21, 9),
           ("random", 1, 10), ("random", 33, 11)]         # 1, 3, 33: don't cares at baseline


def _planted_source(kind, which):
    return example(which) if kind == "example" else random_example(which)


@pytest.mark.parametrize("kind,which,seed", PLANTED)
def test_planted_bug(kind, which, seed):
    circuit, net = _planted_source(kind, which)
    bad, fails = plant_bug(circuit, net, seed)
    module = cpu(bad)
    report = verify_exhaustive(circuit, module, max_counterexamples=10**6, progress=False)
    check_exact_report(circuit, report, fails)
    assert report["min_margin"] == pytest.approx(brute_force_margin(circuit, bad), abs=1e-6)
    # the default limit truncates the list, not the count
    few = verify_exhaustive(circuit, module, max_counterexamples=1, progress=False)
    assert few["failing_inputs"] == len(fails) and len(few["counterexamples"]) == 1
    assert as_ids(circuit, few["counterexamples"][0]) in fails
    check_smt_refutes(circuit, verify_smt(circuit, bad, module, progress=False), fails)


def test_planted_bugs_are_varied():
    """The planted bugs include proper subsets of the domain, several layers, and a failing
    all-zero input."""
    zero_fails, layers = 0, set()
    for kind, which, seed in PLANTED:
        circuit, net = _planted_source(kind, which)
        bad, fails = plant_bug(circuit, net, seed)
        assert 0 < len(fails) < domain_of(circuit).size
        zero_fails += frozenset() in fails
        layers |= {i for i, (a, b) in enumerate(zip(net.layers, bad.layers))
                   if not (np.array_equal(a.vals, b.vals) and np.array_equal(a.bias, b.bias))}
    assert len(layers) >= 2
    assert zero_fails >= 1
    assert sum(_planted_source(k, w)[0].has_dont_care for k, w, _ in PLANTED) >= 3


@pytest.mark.parametrize("name,output", [("c17", 0), ("multilevel", 4), ("multilevel", 9),
                                         ("lookup_table", 6), ("pairs_small", 17)])
def test_bug_at_baseline(name, output):
    """A read-out bias off by one: the all-zero input gets the output wrong, and so does every
    input whose reference value of that output is the all-zero input's."""
    circuit, net = example(name)
    bad = baseline_bug(circuit, net, output)
    fails = brute_force(circuit, bad)
    dom = domain_of(circuit)
    x = to_dense(dom.unrank(np.arange(dom.size, dtype=np.int64)), circuit.n_inputs)
    spec = evaluate(circuit, x)[:, output]
    expected = int((spec == spec[0]).sum())
    assert frozenset() in fails and len(fails) == expected
    assert all(wrong == {output} for wrong in fails.values())
    module = cpu(bad)
    report = verify_exhaustive(circuit, module, max_counterexamples=10**6, progress=False)
    check_exact_report(circuit, report, fails)
    check_smt_refutes(circuit, verify_smt(circuit, bad, module, progress=False), fails)


def test_bug_at_baseline_in_a_hidden_layer():
    """A first-layer AND neuron made to fire on the all-zero input: several outputs wrong at
    baseline, and inputs that change some of them but not all."""
    circuit, net = example("multilevel")
    layer = net.layers[0]
    candidates = []
    for n in range(layer.n_out):
        bad = perturbed(net, 0, "b", n, 1.0)
        fails = brute_force(circuit, bad)
        if frozenset() in fails and len(fails[frozenset()]) >= 2:
            candidates.append((bad, fails))
    assert candidates
    for bad, fails in candidates[:3]:
        module = cpu(bad)
        report = verify_exhaustive(circuit, module, max_counterexamples=10**6, progress=False)
        check_exact_report(circuit, report, fails)
        check_smt_refutes(circuit, verify_smt(circuit, bad, module, progress=False), fails)


def test_threshold_is_strict():
    """An output counts as 1 only when its value is ABOVE 0.5: a read-out exactly 0.5 decodes
    to 0. Bias +0.5 keeps the network correct (margin 0 on the 0s), bias -0.5 breaks every 1."""
    circuit, net = example("multilevel")
    output = 9                                           # some output, 0 on the all-zero input
    readout = len(net.layers) - 1
    up = perturbed(net, readout, "b", output, 0.5)
    assert not brute_force(circuit, up)
    report = verify_exhaustive(circuit, cpu(up), progress=False)
    assert report["verified"] is True and report["min_margin"] == 0.0
    smt = verify_smt(circuit, up, cpu(up), outputs=[output], progress=False)
    # proved over exact reals, but margin 0 is within float rounding: flagged, so undecided
    assert smt["verified"] is None and smt["outputs_refuted"] == 0
    assert smt["flagged_rounding"] == [circuit.output_names([output])[0]]
    down = perturbed(net, readout, "b", output, -0.5)
    fails = brute_force(circuit, down)
    assert fails and all(w == {output} for w in fails.values())
    module = cpu(down)
    check_exact_report(circuit, verify_exhaustive(circuit, module, max_counterexamples=10**6,
                                                  progress=False), fails)
    assert verify_exhaustive(circuit, module, progress=False)["min_margin"] == 0.0
    check_smt_refutes(circuit, verify_smt(circuit, down, module, progress=False), fails)


def test_margin_thinner_than_float_rounding():
    """A read-out 0.5 + 2^-26 is 1 over the reals but rounds to 0.5 (so 0) in float32: the
    float module is wrong on that input and exhaustive (which runs the module) says so; SMT
    (exact reals) must not refute a correct real network, and must flag the output rather than
    prove it silently."""
    circuit, net = example("pairs_small")
    bad = copy.deepcopy(net)
    readout = bad.layers[-1]
    entry = int(np.flatnonzero(readout.rows == 0)[0])
    readout.vals[entry], readout.bias[0] = 2.0 ** -26, 0.5
    assert not brute_force(circuit, bad)                 # exact enough in float64
    module = cpu(bad)
    ex = verify_exhaustive(circuit, module, max_counterexamples=10**6, progress=False)
    name = circuit.output_names([0])[0]
    assert ex["verified"] is False and ex["failing_inputs"] == 1
    assert ex["counterexamples"][0]["wrong"] == [name]
    sm = verify_smt(circuit, bad, module, outputs=[0], progress=False)
    assert sm["verified"] is not False
    assert sm["flagged_rounding"] == [name] or sm["outputs_undecided"] == 1
    exact = SupModule(bad, dtype=torch.float64, device="cpu")
    assert verify_exhaustive(circuit, exact, progress=False)["verified"] is True


def test_min_margin_is_the_smallest_over_the_domain():
    """Fractional weights: output y[0]'s read-out also reads output 1's AND neuron with weight
    0.3 (or -0.3 on its own), so some inputs that do not change y[0]'s specification move its
    read-out to 0.3 (or 0.7): still correct, margin 0.2. The report's min_margin must find it,
    also in shards and merged."""
    circuit, net = example("pairs_small")
    readout_index = len(net.layers) - 1
    neuron1 = int(net.layers[-1].cols[np.flatnonzero(net.layers[-1].rows == 1)[0]])
    cross = copy.deepcopy(net)
    layer = cross.layers[-1]
    layer.rows = np.append(layer.rows, 0)
    layer.cols = np.append(layer.cols, neuron1)
    layer.vals = np.append(layer.vals, 0.3)
    entry0 = int(np.flatnonzero(net.layers[-1].rows == 0)[0])
    for variant in (cross, perturbed(net, readout_index, "w", entry0, -0.3)):
        assert not brute_force(circuit, variant)
        expected = brute_force_margin(circuit, variant)
        assert expected == pytest.approx(0.2, abs=1e-9)
        module = cpu(variant)
        whole = verify_exhaustive(circuit, module, progress=False)
        assert whole["verified"] is True
        assert whole["min_margin"] == pytest.approx(expected, abs=1e-6)
        parts = [verify_exhaustive(circuit, module, shard=(i, 3), progress=False) for i in (1, 2, 3)]
        assert merge(parts)["min_margin"] == whole["min_margin"]


def test_float64_module():
    circuit, net = example("xor_majority")
    bad, fails = plant_bug(circuit, net, 13)
    for network, expected in ((net, True), (bad, False)):
        module = SupModule(network, dtype=torch.float64, device="cpu")
        ex = verify_exhaustive(circuit, module, max_counterexamples=10**6, progress=False)
        sm = verify_smt(circuit, network, module, progress=False)
        assert ex["verified"] is expected and sm["verified"] is expected
        assert ex["dtype"] == "float64"
    check_exact_report(circuit, ex, fails)
    check_smt_refutes(circuit, sm, fails)


# ====================================================================== 3. the SMT cases

def big_circuit_text(seed: int = 3, m: int = 32, wires: int = 144, outs: int = 6) -> str:
    """A random circuit of m inputs, ~200 gates of mixed ops (negations count as gates)
    chained through wires, and `outs` outputs."""
    rng = random.Random(seed)
    lines = ["circuit big32;", f"input x[{m}];"]
    inputs = [f"x[{i}]" for i in range(m)]
    names = []

    def lit():
        s = rng.choice(names[-30:]) if names and rng.random() < 0.6 else rng.choice(inputs)
        return f"!{s}" if rng.random() < 0.2 else s

    forms = {
        "and2": lambda: f"{lit()} & {lit()}", "or2": lambda: f"{lit()} | {lit()}",
        "xor2": lambda: f"{lit()} ^ {lit()}", "maj": lambda: f"maj({lit()}, {lit()}, {lit()})",
        "ite": lambda: f"ite({lit()}, {lit()}, {lit()})",
        "atleast": lambda: f"atleast(2, {lit()}, {lit()}, {lit()}, {lit()})",
        "and3": lambda: f"and({lit()}, {lit()}, {lit()})",
        "or3": lambda: f"or({lit()}, {lit()}, {lit()})",
    }
    for g in range(wires):
        op = rng.choice(sorted(forms))
        lines.append(f"wire w{g} = {forms[op]()};")
        names.append(f"w{g}")
    for o in range(outs):
        lines.append(f"output y{o} = {lit()} ^ {lit()};")
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=None)
def big_circuit():
    circuit = dsl.loads(big_circuit_text(), name="big32")
    return circuit, compile_circuit(circuit)


def sparse64_text(count: int = 300, seed: int = 3) -> str:
    rng = random.Random(seed)
    lines = ["circuit ands64;", "input x[64];", "sparsity 3;"]
    for i in range(count):
        fs = rng.sample(range(64), rng.choice([2, 3]))
        lines.append(f"output y{i} = and({', '.join(f'x[{f}]' for f in fs)});")
    return "\n".join(lines) + "\n"


def test_smt_proves_c17():
    circuit, net = example("c17")
    report = verify_smt(circuit, net, cpu(net), progress=False)
    assert report["verified"] is True and report["outputs_checked"] == 2


def test_smt_proves_random_32_input_200_gate_circuit():
    circuit, net = big_circuit()
    assert circuit.n_inputs == 32 and circuit.sparsity is None
    assert 180 <= circuit.n_gates <= 230 and circuit.n_outputs >= 4
    ops = {circuit.graph.nodes[k]["op"] for k in circuit.gate_nodes()}
    assert {"and", "or", "xor", "not", "ite", "atleast"} <= ops
    assert circuit.depth >= 10
    report = verify_smt(circuit, net, cpu(net), timeout_ms=60_000, progress=False)
    assert report["verified"] is True, report["undecided"]
    assert report["outputs_checked"] == circuit.n_outputs
    assert report["seconds"] < 60


def test_smt_refutes_random_32_input_200_gate_circuit_with_a_bug():
    """Far too many inputs for brute force (2^32): the counterexample is checked against the
    reference and the numpy forward on that one input."""
    circuit, net = big_circuit()
    readout = len(net.layers) - 1
    bad = perturbed(net, readout, "b", 2, 1.0)        # y2 is 1 whenever it should be 0
    report = verify_smt(circuit, bad, cpu(bad), outputs=[2], progress=False)
    assert report["verified"] is False
    cx = report["counterexamples"][0]
    assert cx["wrong"] == ["y2"]
    x = np.zeros((1, 32), bool)
    x[0, sorted(as_ids(circuit, cx))] = True
    assert evaluate(circuit, x)[0, 2] == 0 and bad.forward(x)[0, 2] > 0.5


@pytest.mark.parametrize("plant", [False, True])
def test_smt_decides_64_features_at_sparsity_3(plant):
    circuit = dsl.loads(sparse64_text(), name="ands64")
    net = compile_circuit(circuit)
    assert circuit.n_inputs == 64 and circuit.sparsity == 3 and circuit.n_outputs == 300
    fails = None
    if plant:
        net, fails = plant_bug(circuit, net, 12)
    report = verify_smt(circuit, net, cpu(net), progress=False)
    assert report["verified"] is (not plant)
    if plant:
        check_smt_refutes(circuit, report, fails)


# ====================================================================== 4. shards

def _shard_source(kind):
    if kind == "correct":
        circuit, net = example("multilevel")
        return circuit, net
    if kind == "bug":              # 16 failing inputs, not in every shard
        circuit, net = example("multilevel")
        return circuit, plant_bug(circuit, net, 13)[0]
    circuit, net = example("c17")
    return circuit, baseline_bug(circuit, net, 1)


@pytest.mark.parametrize("kind", ["correct", "bug", "baseline"])
def test_shards_merge_to_the_whole(kind):
    circuit, net = _shard_source(kind)
    module = cpu(net)
    whole = verify_exhaustive(circuit, module, max_counterexamples=10**6, progress=False)
    size = domain_of(circuit).size
    for n in (1, 3, 7):
        parts = [verify_exhaustive(circuit, module, shard=(i, n), batch=50,
                                   max_counterexamples=10**6, progress=False)
                 for i in range(1, n + 1)]
        assert sum(p["inputs_checked"] for p in parts) == size
        merged = merge(parts)
        for key in ("verified", "inputs_checked", "outputs_checked", "failing_inputs", "min_margin"):
            assert merged[key] == whole[key], (n, key)
        assert sorted(map(str, merged["counterexamples"])) == sorted(map(str, whole["counterexamples"]))
        if kind == "bug" and n == 7:   # the merge must take the smallest margin
            assert len({p["min_margin"] for p in parts}) > 1
            assert len({p["failing_inputs"] for p in parts}) > 1
        if n > 1:
            for p in parts:            # one shard alone proves nothing about the domain
                assert p["verified"] is not True
                assert p["verified"] is (False if p["failing_inputs"] else None)
            # any shard missing: undecided, unless a present shard has a counterexample
            for drop in range(n):
                rest = merge(parts[:drop] + parts[drop + 1:])
                expected = False if any(p["failing_inputs"] for j, p in enumerate(parts)
                                        if j != drop) else None
                assert rest["verified"] is expected
                assert rest["inputs_checked"] == size - parts[drop]["inputs_checked"]
    if kind == "correct":
        assert whole["verified"] is True
    else:
        assert whole["verified"] is False


def test_merge_needs_the_shards_to_cover_the_domain():
    """A shard report whose inputs fall short of its range (stopped early, edited by hand) leaves
    the merge undecided; the merged report says whether it is complete."""
    circuit, net = _shard_source("correct")
    module = cpu(net)
    parts = [verify_exhaustive(circuit, module, shard=(i, 3), progress=False) for i in (1, 2, 3)]
    merged = merge(parts)
    assert merged["verified"] is True and merged["complete"] is True
    assert merged["inputs_per_second"] == round(merged["inputs_checked"] / merged["seconds"], 1) \
        if merged["seconds"] else True
    short = dict(parts[1], inputs_checked=parts[1]["inputs_checked"] - 1)
    assert merge([parts[0], short, parts[2]])["verified"] is None
    assert merge(parts[:2])["complete"] is False


def test_merge_accepts_only_exhaustive_reports():
    """A sample report (never verified) or an undecided SMT report must not become 'verified'
    by merging it (it used to: one report, shard 1 of 1 by default, no failures)."""
    circuit, net = example("c17")
    module = cpu(net)
    sample = verify_sample(circuit, module, samples=50, progress=False)
    assert sample["verified"] is None
    smt = verify_smt(circuit, net, module, progress=False)
    smt["verified"] = None                                       # as if it had timed out
    for reports in ([sample], [smt], [verify_exhaustive(circuit, module, progress=False), sample]):
        try:
            merged = merge(reports)
        except ValueError:
            continue
        assert merged["verified"] is not True


def test_merge_rejects_duplicates_and_mixed_shard_counts():
    circuit, net = example("c17")
    module = cpu(net)
    a = verify_exhaustive(circuit, module, shard=(1, 2), progress=False)
    b = verify_exhaustive(circuit, module, shard=(2, 2), progress=False)
    assert merge([a, b])["verified"] is True
    assert merge([a, a])["verified"] is None                      # shard 2 missing
    assert merge([b, a, b])["verified"] is not True               # duplicate shard
    c = verify_exhaustive(circuit, module, shard=(1, 3), progress=False)
    with pytest.raises(ValueError):
        merge([a, c])


def test_more_shards_than_inputs():
    circuit, net = example("c17")                                 # 32 inputs
    module = cpu(net)
    parts = [verify_exhaustive(circuit, module, shard=(i, 40), progress=False)
             for i in range(1, 41)]
    assert sum(p["inputs_checked"] == 0 for p in parts) == 8
    merged = merge(parts)
    assert merged["verified"] is True and merged["inputs_checked"] == 32


# ====================================================================== 5. sampling

def test_sampling_never_verifies():
    for name in ("c17", "pairs_small", "multilevel"):
        circuit, net = example(name)
        report = verify_sample(circuit, cpu(net), samples=400, seed=1, progress=False)
        assert report["verified"] is None and report["failing_inputs"] == 0
        assert report["inputs_checked"] == 400
        assert report["error_rate_upper_bound"] == pytest.approx(1 - 0.05 ** (1 / 200), rel=1e-6)


def _needle():
    """256 features at sparsity 2 with 20 AND outputs; output y7's read-out weight flipped so it
    fails only when exactly its two features are on: 1 input of 32,897, which uniform sampling
    almost never draws and aimed sampling (an output's support) often does."""
    rng = random.Random(9)
    lines = ["input x[256];", "sparsity 2;"]
    for i in range(20):
        u, v = sorted(rng.sample(range(256), 2))
        lines.append(f"output y{i} = x[{u}] & x[{v}];")
    circuit = dsl.loads("\n".join(lines) + "\n", name="needle")
    net = compile_circuit(circuit)
    readout = net.layers[-1]
    entry = int(np.flatnonzero(readout.rows == 7)[0])
    bad = copy.deepcopy(net)
    bad.layers[-1].vals[entry] = -bad.layers[-1].vals[entry]
    return circuit, bad


def test_sampling_finds_an_aimed_bug():
    circuit, bad = _needle()
    fails = brute_force(circuit, bad)
    assert len(fails) == 1 and all(w == {7} for w in fails.values())
    report = verify_sample(circuit, cpu(bad), samples=1000, seed=0, max_counterexamples=10**6,
                           progress=False)
    assert report["verified"] is False
    assert report["aimed_failures"] >= 3 and report["uniform_failures"] == 0
    assert report["uniform_samples"] == report["aimed_samples"] == 500
    assert report["failing_inputs"] == report["aimed_failures"] + report["uniform_failures"]
    assert report["counterexamples"]
    for cx in report["counterexamples"]:
        key = as_ids(circuit, cx)
        assert key in fails and wrong_ids(circuit, cx) == fails[key]


def test_sampling_stays_in_the_domain():
    """Aimed inputs have at most K active features (K = 0 included: the domain is then just
    the all-zero input, and a network wrong only off the domain is correct), and their weights
    vary."""
    from verify.sample import aimed_inputs
    circuit = dsl.loads("input x[4];\nsparsity 0;\noutput y = x[0] | x[1];\n", name="k0")
    net = compile_circuit(circuit)
    off_domain = copy.deepcopy(net)
    off_domain.layers[0].vals[:] = 0                  # ignores its inputs: right on {}, only
    assert not brute_force(circuit, off_domain)
    report = verify_sample(circuit, cpu(off_domain), samples=100, progress=False)
    assert report["verified"] is None and report["failing_inputs"] == 0
    assert verify_exhaustive(circuit, cpu(off_domain), progress=False)["verified"] is True
    circuit = dsl.loads(sparse64_text(40), name="ands64")
    active = aimed_inputs(circuit, 400, np.random.default_rng(0))
    weights = (active >= 0).sum(axis=1)
    assert weights.max() <= 3 and set(weights.tolist()) == {1, 2, 3}
    for row in active:                                # distinct features, valid domain ranks
        features = row[row >= 0]
        assert len(set(features.tolist())) == len(features)
    domain_of(circuit).rank(active)


def _bisect_upper(failures: int, n: int, confidence: float) -> float:
    """Largest p with P[Bin(n, p) <= failures] >= 1 - confidence, by exact sums."""
    def cdf(p):
        return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(failures + 1))
    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if cdf(mid) >= 1 - confidence:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def test_upper_bound_clopper_pearson():
    for n in (1, 10, 100, 1000, 100_000):
        assert upper_bound(0, n) == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-9)
        assert upper_bound(0, n, 0.99) == pytest.approx(1 - 0.01 ** (1 / n), rel=1e-9)
    assert upper_bound(2, 100) == pytest.approx(0.0616, abs=2e-4)      # tables: 0.0616
    for failures, n, conf in [(1, 10, 0.95), (2, 100, 0.95), (5, 50, 0.9), (3, 1000, 0.99),
                              (40, 200, 0.95), (9, 10, 0.95)]:
        assert upper_bound(failures, n, conf) == pytest.approx(_bisect_upper(failures, n, conf),
                                                               rel=1e-7, abs=1e-12)
    assert upper_bound(0, 0) == 1.0 and upper_bound(10, 10) == 1.0
    # more failures or fewer samples never lower the bound
    assert upper_bound(3, 100) > upper_bound(2, 100) > upper_bound(2, 200)


# ====================================================================== 6. SMT undecided

def test_smt_tiny_timeout_is_never_a_wrong_refutation():
    circuit, net = big_circuit()
    report = verify_smt(circuit, net, cpu(net), timeout_ms=1, progress=False)
    assert report["verified"] in (None, True)
    assert report["counterexamples"] == [] and report["outputs_refuted"] == 0
    if report["verified"] is None:
        assert report["outputs_undecided"] == len(report["undecided"]) >= 1
        assert report["outputs_checked"] + report["outputs_undecided"] == circuit.n_outputs


def test_smt_unknown_is_undecided(monkeypatch):
    circuit, net = example("c17")
    monkeypatch.setattr(z3.Solver, "check", lambda self, *args: z3.unknown)
    report = verify_smt(circuit, net, cpu(net), progress=False)
    assert report["verified"] is None
    assert report["outputs_checked"] == 0 and report["counterexamples"] == []
    assert sorted(u["output"] for u in report["undecided"]) == ["N22", "N23"]
    assert report["outputs_undecided"] == 2


def test_smt_unknown_after_sat_is_undecided(monkeypatch):
    """The margin query is sat but the exact query is unknown: undecided, not refuted."""
    circuit, net = example("c17")
    bad = baseline_bug(circuit, net, 0)
    real_check = z3.Solver.check
    calls = []

    def check(self, *args):
        calls.append(1)
        return real_check(self, *args) if len(calls) % 2 else z3.unknown

    monkeypatch.setattr(z3.Solver, "check", check)
    report = verify_smt(circuit, bad, cpu(bad), outputs=[0], progress=False)
    assert report["verified"] is None
    assert [u["output"] for u in report["undecided"]] == ["N22"]


def test_smt_unknown_on_one_output_and_bug_on_another(monkeypatch):
    """A refuted output makes the verdict False even when another is undecided."""
    circuit, net = example("c17")
    bad = baseline_bug(circuit, net, 1)
    fails = brute_force(circuit, bad)
    real_check = z3.Solver.check
    state = {"output": None}

    import verify.smt as smt
    real_prove = smt._prove_output

    def prove(circuit_, net_, module, layers, o, *rest):
        state["output"] = o
        return real_prove(circuit_, net_, module, layers, o, *rest)

    def check(self, *args):
        return z3.unknown if state["output"] == 0 else real_check(self, *args)

    monkeypatch.setattr(smt, "_prove_output", prove)
    monkeypatch.setattr(z3.Solver, "check", check)
    report = verify_smt(circuit, bad, cpu(bad), progress=False)
    assert report["verified"] is False
    assert [u["output"] for u in report["undecided"]] == ["N22"]
    check_smt_refutes(circuit, report, fails)


def test_smt_counterexample_that_does_not_replay_is_undecided():
    """SMT finds an exact-real counterexample in the module's weights; if running the module
    itself on that input gives the right answer, nothing is refuted (undecided instead)."""
    circuit, net = example("c17")
    bad = baseline_bug(circuit, net, 0)
    module = cpu(bad)
    module.forward_active = cpu(net).forward_active       # the module "runs" correctly
    report = verify_smt(circuit, bad, module, progress=False)
    assert report["verified"] is None and report["counterexamples"] == []
    assert report["outputs_refuted"] == 0
    assert [u["output"] for u in report["undecided"]] == ["N22"]
    assert "replay" in report["undecided"][0]["reason"]
