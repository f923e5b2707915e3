"""Which outputs the superposed target computes in superposition (first level)."""

from __future__ import annotations

import numpy as np

from dsl import csr
from dsl.nodes import FIRST, GATE, K, KIND, OFFSETS, OP, OPERANDS, Circuit

from .channels import ChannelSpec


def superposable(circuit: Circuit):
    """(positions, ChannelSpec) of outputs that are threshold gates over distinct input features."""
    m = circuit.n_inputs
    drivers = circuit.output_drivers
    graph = circuit.graph
    node_of = circuit.node_of_signal(drivers)
    take = np.zeros(len(drivers), dtype=bool)
    k = np.zeros(len(drivers), dtype=np.int64)
    lens = np.zeros(len(drivers), dtype=np.int64)
    rows_of = {}
    copies = drivers < m
    take[copies], k[copies], lens[copies] = True, 1, 1
    for idx in np.unique(node_of[~copies]):
        data = graph.nodes[circuit.signal_nodes[idx]]
        if data[KIND] != GATE or data[OP] not in ("and", "or", "atleast"):
            continue
        sel = np.flatnonzero(node_of == idx)
        local = drivers[sel] - data[FIRST]
        off, ops = csr.gather_rows(data[OFFSETS], data[OPERANDS], local)
        all_inputs = ~csr.row_any(off, ops >= m)
        in_order = csr.sort_within_rows(off, ops)
        distinct = csr.row_sum(off, csr.first_of_run(off, in_order).astype(np.int64)) == csr.lengths(off)
        ok = all_inputs & distinct
        n = csr.lengths(off)
        kk = {"and": n, "or": np.ones_like(n)}.get(data[OP], data[K][local] if data[K] is not None else n)
        take[sel[ok]] = True
        k[sel[ok]] = kk[ok]
        lens[sel[ok]] = n[ok]
        rows_of[idx] = (sel, off, ops)
    positions = np.flatnonzero(take)
    f_len = lens[positions]
    f_off = csr.offsets_from_lengths(f_len)
    f_feat = np.empty(f_off[-1], dtype=np.int64)
    slot = np.full(len(drivers), -1, dtype=np.int64)
    slot[positions] = np.arange(len(positions))
    copy_pos = np.flatnonzero(copies)
    f_feat[f_off[slot[copy_pos]]] = drivers[copy_pos]
    for sel, off, ops in rows_of.values():
        chosen = sel[take[sel]]
        if len(chosen) == 0:
            continue
        keep_rows = np.flatnonzero(take[sel])
        o2, v2 = csr.gather_rows(off, ops, keep_rows)
        starts = f_off[slot[chosen]]
        within = np.arange(len(v2)) - np.repeat(o2[:-1], csr.lengths(o2))
        f_feat[np.repeat(starts, csr.lengths(o2)) + within] = v2
    return positions, ChannelSpec(m, circuit.sparsity, f_off, f_feat, k[positions])
