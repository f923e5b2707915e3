"""The torch version of the q = 1 exactness check (compiler/superposed/bitcheck_torch.py),
on CPU and on CUDA when present, against two independent references: the numpy popcount
version (bitcheck.py) and the dense count product (`failing_outputs(method="dense")`), on
random assignments, features at bit 63 of a word, partial checks, empty and uneven channels;
planted bugs in its clearing masks are caught."""

import numpy as np
import pytest
import torch

import compiler.superposed.bitcheck_torch as bt
import dsl
from compiler import OptionError, TARGETS, compile_circuit
from compiler.superposed.bitcheck import failing_outputs_bits, listen_bits
from compiler.superposed.channels import (Assignment, assign_random, failing_outputs,
                                          listen_sets, recheck_redrawn)
from dsl import csr
from tests.test_superposed_bitcheck import MIXED, PAIRS, TRIPLES, WIDE, spec_of

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# an operand at bit 63 of one of 32 words (features 63, 127, ..., 2047) in every output
BIT63 = ("input x[2048]; sparsity 2; output y[i] = x[64 * (i % 32) + 63] & x[(37 * i + 5) % 2048]"
         " for i in 0..200;")
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA GPU"))]


def single(spec):
    """The outputs with q_j = 1."""
    return np.flatnonzero(spec.free == 1)


def dense_single(spec, a):
    """q = 1 outputs failing by the dense count product."""
    return np.intersect1d(failing_outputs(spec, a, method="dense"), single(spec))


def instances(text, count=6, seed=0):
    """(spec, assignment) pairs: random widths and channel sizes, some outputs failing."""
    _, _, spec = spec_of(text)
    rng = np.random.default_rng(seed)
    for _ in range(count):
        t = int(rng.integers(2, 6))
        n = int(rng.integers(2 * t + 2, 90))
        yield spec, assign_random(spec, n, t, rng)


def uneven(spec, a, rng):
    """`a` with every third channel emptied and the others cut to 1..t neurons."""
    rows = [a.c_neurons[a.c_offsets[j]:a.c_offsets[j + 1]] for j in range(spec.n_outputs)]
    rows = [r[:0] if j % 3 == 0 else r[:int(rng.integers(1, len(r) + 1))]
            for j, r in enumerate(rows)]
    offsets = csr.offsets_from_lengths(np.array([len(r) for r in rows]))
    return Assignment(a.n, offsets, np.concatenate(rows).astype(np.int64), a.neuron_k)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("text", [PAIRS, WIDE, TRIPLES, MIXED, BIT63])
def test_torch_equals_numpy_and_dense(text, device):
    seen = 0
    for spec, a in instances(text):
        listen = listen_sets(spec, a)
        outs = single(spec)
        ref = failing_outputs_bits(spec, a, listen, outs)
        np.testing.assert_array_equal(ref, dense_single(spec, a))
        got = bt.failing_outputs_bits_torch(spec, a, listen, outs, device=device)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, ref)
        tiny = bt.failing_outputs_bits_torch(spec, a, listen, outs[::-1], max_bytes=1,
                                             bits=bt.bits_on(listen_bits(a.n, spec.m, listen),
                                                             device), device=device)
        np.testing.assert_array_equal(tiny, ref)
        seen += len(ref)
    assert seen > 0                     # not vacuous


@pytest.mark.parametrize("device", DEVICES)
def test_bit63_operands_pass_when_nothing_else_is_shared(device):
    """An assignment of BIT63 where most outputs pass although each has an operand at
    bit 63, so a mask that failed to clear bit 63 would make them fail."""
    _, _, spec = spec_of(BIT63)
    ops = spec.f_features.reshape(-1, 2)
    assert ((ops & 63) == 63).any(axis=1).all()
    rng = np.random.default_rng(3)
    a = assign_random(spec, 60, 4, rng)
    listen = listen_sets(spec, a)
    ref = dense_single(spec, a)
    assert 0 < len(ref) < spec.n_outputs // 2
    got = bt.failing_outputs_bits_torch(spec, a, listen, single(spec), device=device)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("text", [WIDE, BIT63])
def test_partial_check_matches_numpy(text, device):
    for spec, a in instances(text, count=4, seed=5):
        listen = listen_sets(spec, a)
        outs = single(spec)
        for feats in ([63], [70, 140], [127, 128], [spec.m - 1], np.arange(spec.m)):
            ref = failing_outputs_bits(spec, a, listen, outs, features=np.array(feats))
            got = bt.failing_outputs_bits_torch(spec, a, listen, outs, features=np.array(feats),
                                                device=device)
            np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("text", [PAIRS, WIDE, BIT63])
def test_empty_and_uneven_channels(text, device):
    rng = np.random.default_rng(9)
    for spec, a in instances(text, count=4, seed=2):
        b = uneven(spec, a, rng)
        listen = listen_sets(spec, b)
        outs = single(spec)
        got = bt.failing_outputs_bits_torch(spec, b, listen, outs, device=device)
        np.testing.assert_array_equal(got, failing_outputs_bits(spec, b, listen, outs))
        np.testing.assert_array_equal(got, dense_single(spec, b))
        assert set(outs[::3].tolist()) <= set(got.tolist())     # empty channels always fail
    empty = bt.failing_outputs_bits_torch(spec, b, listen, outs[:0], device=device)
    assert empty.dtype == np.int64 and len(empty) == 0


@pytest.mark.parametrize("mask", ["none", "shifted", "no63"])
def test_planted_mask_bugs_are_caught(monkeypatch, mask):
    """Not clearing operand bits, clearing the neighbouring bit, or leaving bit 63: the torch
    version then disagrees with the numpy one on these instances."""
    planted = {"none": np.zeros(64, np.int64), "shifted": np.roll(bt.BIT_MASKS, 1),
               "no63": np.r_[bt.BIT_MASKS[:63], 0]}[mask]
    monkeypatch.setattr(bt, "BIT_MASKS", planted)
    differ = 0
    for text in (PAIRS, BIT63):
        for spec, a in instances(text, count=3, seed=1):
            listen = listen_sets(spec, a)
            got = bt.failing_outputs_bits_torch(spec, a, listen, single(spec))
            differ += not np.array_equal(got, failing_outputs_bits(spec, a, listen, single(spec)))
    assert differ > 0


def test_wiring_runs_the_torch_version_when_chosen(monkeypatch):
    """failing_outputs / recheck_redrawn with the torch version as the CPU default equal the
    numpy ones; a compile gives the same width either way."""
    calls = []
    real = bt.failing_outputs_bits_torch
    monkeypatch.setattr(bt, "failing_outputs_bits_torch",
                        lambda *args, **kw: calls.append(kw["device"]) or real(*args, **kw))
    _, _, spec = spec_of(WIDE)
    rng = np.random.default_rng(4)
    a = assign_random(spec, 60, 3, rng)
    listen = listen_sets(spec, a)
    ref = failing_outputs(spec, a, listen, device="cpu")
    assert not calls
    monkeypatch.setattr(bt, "TORCH_ON_CPU", True)
    np.testing.assert_array_equal(failing_outputs(spec, a, listen, device="cpu"), ref)
    assert calls == ["cpu"]
    redrawn = ref[:len(ref) // 2]
    c = a.c_neurons.reshape(spec.n_outputs, -1)
    c[redrawn] = np.argsort(rng.random((len(redrawn), a.n)), axis=1)[:, :3]
    a.c_neurons = c.ravel()
    listen = listen_sets(spec, a)
    full = failing_outputs_bits(spec, a, listen, single(spec))
    np.testing.assert_array_equal(recheck_redrawn(spec, a, listen, ref, device="cpu"), full)
    assert len(calls) >= 2
    small = dsl.loads(PAIRS, "pairs.sup")
    with_torch = compile_circuit(small, "superposed", check_device="cpu")
    monkeypatch.setattr(bt, "TORCH_ON_CPU", False)
    with_numpy = compile_circuit(small, "superposed", check_device="cpu")
    assert with_torch.meta["channel_neurons"] == with_numpy.meta["channel_neurons"]


def test_device_choice_and_errors():
    assert bt.check_device("cpu") == ("cpu" if bt.TORCH_ON_CPU else None)
    assert bt.check_device(None) == ("cuda" if torch.cuda.is_available()
                                     else bt.check_device("cpu"))
    assert [bt.is_device_name(d) for d in ("cpu", "cuda", "cuda:1", "gpu", "cuda:x")] == \
        [True, True, True, False, False]
    with pytest.raises(ValueError, match="unknown device"):
        bt.check_device("tpu")
    target = TARGETS.get_target("superposed")
    with pytest.raises(OptionError, match="check_device"):
        target.make_options(check_device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(OptionError, match="no CUDA"):
            target.make_options(check_device="cuda")
