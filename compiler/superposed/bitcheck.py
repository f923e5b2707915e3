"""The exactness criterion of channel assignments as bitset products (the case q_j = 1).

When at most k_j features can be active together with the k_j - 1 operands' worst case
(q_j = K - k_j + 1 = 1, e.g. pairwise ANDs at sparsity 2), output j's criterion
(docs/proofs/channels.md: the q_j largest counts n_f over f not in F_j sum to at most t_j - 1)
reads: no feature outside F_j is listened to by every neuron of the channel C_j, i.e. the
intersection of the listen sets L_i, i in C_j, lies inside F_j. With each L_i a row of packed
64-bit words that is t_j - 1 word-wise ANDs and one popcount per output, block after block of
outputs (no per-output Python loop): about t_j m / 64 word operations per output instead of the
n m multiply-adds of the dense count product. F_j's features are distinct, so the intersection
lies inside F_j exactly when its popcount equals the number of F_j's bits set in it.

`failing_outputs_bits` gives the same answer as `channels.failing_outputs`'s dense path on
every output with q_j = 1 (tests/test_superposed_bitcheck.py checks both against each other
and against brute force on small instances).
"""

from __future__ import annotations

import numpy as np

from dsl import csr

BLOCK_WORDS = 1 << 18          # words of one block's accumulator at most (2 MiB: stays in cache)


def listen_bits(n: int, m: int, listen) -> np.ndarray:
    """The listen sets (CSR over neurons of feature ids) as an n x ceil(m / 64) uint64 bitset
    (bit f % 64 of word f // 64 of row i set when neuron i listens to feature f)."""
    l_off, l_feat = listen
    words = max(1, -(-m // 64))
    l_feat = np.asarray(l_feat, dtype=np.int64)
    cell = csr.row_of_each(l_off).astype(np.int64) * words + (l_feat >> 6)
    bit = np.left_shift(np.uint64(1), (l_feat & 63).astype(np.uint64))
    out = np.zeros(n * words, dtype=np.uint64)
    if len(cell):
        if np.any(cell[1:] < cell[:-1]):
            order = np.argsort(cell, kind="stable")
            cell, bit = cell[order], bit[order]
        starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
        out[cell[starts]] = np.bitwise_or.reduceat(bit, starts)
    return out.reshape(n, words)


def bits_bytes(n: int, m: int) -> int:
    """Bytes of the listen bitset of n neurons over m features."""
    return 8 * n * max(1, -(-m // 64))


def failing_outputs_bits(spec, a, listen, outputs: np.ndarray, bits=None,
                         max_bytes: int | None = None, features=None) -> np.ndarray:
    """Indices (sorted) among `outputs` (all with q_j = 1) whose channel's listen sets share a
    feature outside the output's operands (module docstring). `bits`: the listen bitset of
    `a` (`listen_bits`), built from `listen` when not given. Blocks of outputs are sized so
    that the bitset and a block's two accumulators stay within `max_bytes` (when given).

    `features` (optional): look for shared features only in the 64-feature words holding
    these (a partial check: every output it reports fails; `channels.repair` uses it where the
    only features that can have become shared are known)."""
    outputs = np.asarray(outputs, dtype=np.int64)
    if bits is None:
        bits = listen_bits(a.n, spec.m, listen)
    position = None
    if features is not None:
        kept, position = word_positions(features, bits.shape[1])
        bits = np.ascontiguousarray(bits[:, kept])
    words = bits.shape[1]
    step = max(1, BLOCK_WORDS // words)
    if max_bytes is not None:
        step = max(1, min(step, (max_bytes - bits.nbytes) // (16 * words + 256)))
    always, blocks = channel_blocks(a, outputs, step)
    bad = [always] + [block[_block_fails(spec, a, bits, block, t, position)]
                      for t, block in blocks]
    return np.sort(np.concatenate(bad))


def word_positions(features, n_words: int):
    """(kept words, word -> column among them or -1) for a partial check on the 64-feature
    words holding `features`."""
    kept = np.unique(np.asarray(features, dtype=np.int64) >> 6)
    position = np.full(n_words, -1, dtype=np.int64)
    position[kept] = np.arange(len(kept))
    return kept, position


def channel_blocks(a, outputs: np.ndarray, step: int):
    """(outputs with an empty channel, which always fail: an empty channel reads -(0 - 1) = 1;
    an iterator of (t, block): the other outputs grouped by channel size t, in blocks of at
    most `step`)."""
    sizes = csr.lengths(a.c_offsets)[outputs]

    def blocks():
        for t in np.unique(sizes[sizes > 0]).tolist():
            group = outputs[sizes == t]
            for start in range(0, len(group), step):
                yield t, group[start:start + step]
    return outputs[sizes == 0], blocks()


def channel_neurons(a, block: np.ndarray, t: int) -> np.ndarray:
    """[len(block), t]: the neurons of each output's channel (all of size t)."""
    return a.c_neurons[a.c_offsets[block][:, None] + np.arange(t)[None, :]]


def operand_cells(spec, block: np.ndarray, position=None):
    """(row in block, word, bit in word) of every operand feature of the outputs of `block`;
    with `position` (word -> column, -1 when left out) words are columns and left-out words
    are dropped."""
    f_off, f_feat = csr.gather_rows(spec.f_offsets, spec.f_features, block)
    row = csr.row_of_each(f_off)
    word = f_feat >> 6
    if position is not None:
        word = position[word]
        row, word, f_feat = row[word >= 0], word[word >= 0], f_feat[word >= 0]
    return row, word, f_feat & 63


def _block_fails(spec, a, bits, block: np.ndarray, t: int, position=None) -> np.ndarray:
    """bool per output of `block` (channels of t neurons): fails the q = 1 criterion (within
    the words of `bits`; `position`: word -> column of `bits`, -1 when left out)."""
    chan = channel_neurons(a, block, t)
    acc = bits[chan[:, 0]]
    for s in range(1, t):
        acc &= bits[chan[:, s]]
    total = np.bitwise_count(acc).sum(axis=1, dtype=np.int64)
    row, word, bit = operand_cells(spec, block, position)
    inside = (acc[row, word] >> bit.astype(np.uint64)) & np.uint64(1)
    own = np.bincount(row, weights=inside.astype(np.float64), minlength=len(block))
    return total > own.astype(np.int64)
