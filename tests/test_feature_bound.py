"""The block check's feature bound (verify/block_check.py `FeatureBound`), table or rows on
demand: equal to its definition, and sound against brute force on random integer networks
whose dormant neurons (those one feature alone cannot fire) the bound must account for.

    y_o(Q + c) <= y_o(Q) + A_up[o] + sum_{f in Q} G_up[f, o]   (and the lower bound with G_dn)
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from verify.block_check import FeatureBound


def _network(seed: int, m: int = 12, n: int = 10, n_out: int = 15):
    """(wt [m, N], bias [N], read-out R [n_out, N] sparse): random small integers, most
    neurons dormant (bias <= -max weight), some read-out weights negative."""
    rng = np.random.default_rng(seed)
    wt = rng.choice([0, 0, 0, 1, 2, 3, -1], size=(m, n)).astype(np.int64)
    bias = rng.integers(-6, 1, size=n).astype(np.int64)
    r = rng.choice([0, 0, 0, 1, 2, -1, -2], size=(n_out, n)).astype(np.float64)
    return wt, bias, sp.csr_matrix(r)


def _y(wt, bias, r, q) -> np.ndarray:
    """The read-out (without its bias) on the input whose active features are `q`."""
    h = np.clip(bias + wt[list(q)].sum(axis=0), 0, None).astype(np.float64)
    return r @ h


def _definition(wt, bias, r):
    """G_up, G_dn as dense products, written out from the definition."""
    wp = np.clip(wt.max(axis=0), 0, None).astype(np.float64)
    wn = np.clip(-wt.min(axis=0), 0, None).astype(np.float64)
    up_dormant, dn_dormant = (bias + wp) <= 0, bias <= 0
    rp, rn = np.clip(r.toarray(), 0, None), np.clip(-r.toarray(), 0, None)
    c_up = (rp * (wp * up_dormant) + rn * (wn * dn_dormant)).T          # [N, n_out]
    c_dn = (rn * (wp * up_dormant) + rp * (wn * dn_dormant)).T
    feeds = (wt > 0).astype(np.float64)
    return feeds @ c_up, feeds @ c_dn


@pytest.fixture(params=["table", "on-demand"])
def reuse(request):
    return request.param == "table"


@pytest.mark.parametrize("seed", range(6))
def test_sums_equal_definition(seed, reuse):
    wt, bias, r = _network(seed)
    bound = FeatureBound(wt, bias, r, reuse=reuse)
    assert bound.dense is reuse
    g_up, g_dn = _definition(wt, bias, r)
    rng = np.random.default_rng(seed)
    for width in (1, 2, 3):
        q = np.sort(rng.choice(wt.shape[0], size=(7, width)), axis=1)
        up, dn = bound.sums(q)
        assert np.array_equal(up, g_up[q].sum(axis=1))
        assert np.array_equal(dn if bound.has_dn else np.zeros_like(up), g_dn[q].sum(axis=1))
    assert bound.sums(np.zeros((3, 0), dtype=np.int64)) == (0.0, 0.0)


@pytest.mark.parametrize("seed", range(6))
def test_bound_sound_by_brute_force(seed, reuse):
    """For every Q of at most 2 features and every further feature c: the bounds hold; and
    they are needed: dropping G (dormant neurons) breaks them on these networks."""
    wt, bias, r = _network(seed)
    bound = FeatureBound(wt, bias, r, reuse=reuse)
    m = wt.shape[0]
    broken = False
    for size in (0, 1, 2):
        for q in itertools.combinations(range(m), size):
            up, dn = bound.sums(np.array([q], dtype=np.int64).reshape(1, size))
            y_q = _y(wt, bias, r, q)
            hi = y_q + bound.a_up + np.ravel(up)
            lo = y_q - bound.a_dn - np.ravel(dn)
            for c in set(range(m)) - set(q):
                y = _y(wt, bias, r, q + (c,))
                assert np.all(y <= hi) and np.all(y >= lo), (q, c)
                broken |= bool(np.any(y > y_q + bound.a_up))
    assert broken          # the G part of the bound carried weight on this network


def test_linear_rows_computed_equal_table():
    """The linear bound's extrema of g_o[c] over c < hi: computed per pair (only the columns
    below the largest hi of a chunk) equal the precomputed prefix table."""
    import dataclasses

    import dsl
    from compiler import compile_circuit
    from dsl.domain import verification_domain
    from verify.block_check import integer_network
    from verify.run import module_for
    circuit = dsl.loads("circuit p; const P = pairs(40, 150, seed=3); input x[40]; sparsity 2; "
                        "output y[u, v] = x[u] & x[v] for (u, v) in P;")
    module = module_for(compile_circuit(circuit, "superposed"))
    net, why = integer_network(module, circuit, verification_domain(circuit))
    assert net is not None and net.linear is not None and net.linear.key is not None, why
    computed = dataclasses.replace(net.linear, key=None)
    rng = np.random.default_rng(0)
    outs = rng.choice(np.flatnonzero(net.linear.has), 400)
    for top in (1, 7, net.m):
        hi = rng.integers(1, top + 1, size=len(outs))
        want = net.linear.extrema(outs, hi, net.wt)
        got = computed.extrema(outs, hi, net.wt)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
