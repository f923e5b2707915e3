"""The q_j = 1 exactness criterion of bitcheck.py in torch, on any device (CUDA when present).

Same criterion as `bitcheck.failing_outputs_bits`: output j fails when the intersection A_j of
the listen sets of its channel's neurons holds a feature outside its operand set F_j. Torch has
no popcount, so instead of comparing popcount(A_j) with the number of F_j's bits in A_j, the
operand bits are cleared from the AND-accumulator and the output fails when any word is still
nonzero.

Proof of equivalence. Clearing every bit of F_j from the words of A_j leaves exactly A_j \\ F_j,
which is empty iff all words are zero; and popcount(A_j) > |A_j & F_j| iff A_j \\ F_j is
nonempty, where |A_j & F_j| counts each set operand bit once because F_j's features are
distinct (csr rows of sorted distinct ids). The clearing mask of one (output, word) cell is the
OR of the bits of the operands in that word; being distinct powers of two, their OR equals
their sum, so an int64 `index_add_` builds it without carries (with 1 << 63 = INT64_MIN in
two's complement: adding it to a sum of lower bits cannot overflow). Bit b of a word is
taken from the table `BIT_MASKS` (uint64 1 << b viewed as int64), so bit 63 needs no shift
of a signed value. A partial check (`features=`) keeps the same words in both versions.

`failing_outputs_bits_torch` returns the same sorted numpy array as the numpy version
(tests/test_bitcheck_torch.py checks both, and the dense count product, on CPU and on CUDA
when present). torch is imported inside the functions: importing the compiler stays light.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .bitcheck import (channel_blocks, channel_neurons, failing_outputs_bits, listen_bits,
                       operand_cells, word_positions)

BIT_MASKS = (np.uint64(1) << np.arange(64, dtype=np.uint64)).view(np.int64)   # bit b -> 1 << b
BLOCK_WORDS_CPU = 1 << 18      # words of one block's accumulator on the CPU (2 MiB: in cache)
BLOCK_WORDS_CUDA = 1 << 26     # on a GPU (512 MiB; three such tensors per block at most)
# the CPU default: numpy, faster on one thread (bench/bitcheck_speed.py, the check alone at
# m' = 2^14 / 2^16 / 2^18: numpy 4.5 / 76 / 980 ms, torch 5.2 / 87 / 1440 ms)
TORCH_ON_CPU = False


@lru_cache(maxsize=1)
def _cuda_present() -> bool:
    import torch  # heavy: importing the compiler stays light (see the module docstring)
    return torch.cuda.is_available()


def check_device(device: str | None = None) -> str | None:
    """Where the q = 1 check runs: a torch device name, or None for the numpy version.
    `device` None: "cuda" when torch sees a GPU, else the CPU default (numpy, unless
    TORCH_ON_CPU); "cpu": the CPU default; "cuda" / "cuda:N" is kept (ValueError when torch
    sees no GPU); anything else is a ValueError."""
    if device is None:
        device = "cuda" if _cuda_present() else "cpu"
    device = str(device)
    if device == "cpu":
        return "cpu" if TORCH_ON_CPU else None
    if not is_device_name(device):
        raise ValueError(f"unknown device '{device}' for the exactness check (cpu, cuda, cuda:N)")
    if not _cuda_present():
        raise ValueError(f"device '{device}': torch sees no CUDA GPU here")
    return device


def is_device_name(device) -> bool:
    """Whether `device` names a device the check can run on: "cpu", "cuda" or "cuda:N"."""
    name = str(device)
    return name in ("cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit())


def bits_on(bits, device: str):
    """The listen bitset (`bitcheck.listen_bits`, uint64) as an int64 tensor on `device`
    (uploaded once: pass the result as `bits` to several checks of the same assignment)."""
    import torch  # heavy: importing the compiler stays light (see the module docstring)
    if isinstance(bits, torch.Tensor):
        return bits.to(device)
    return torch.from_numpy(np.ascontiguousarray(bits).view(np.int64)).to(device)


def block_words(device: str) -> int:
    """Words of one block's accumulator on `device` (bounded by a tenth of the free GPU memory
    on CUDA)."""
    import torch  # heavy: importing the compiler stays light (see the module docstring)
    dev = torch.device(device)
    if dev.type != "cuda":
        return BLOCK_WORDS_CPU
    free, _ = torch.cuda.mem_get_info(dev)
    return max(BLOCK_WORDS_CPU, min(BLOCK_WORDS_CUDA, free // 80))


def failing_outputs_bits_torch(spec, a, listen, outputs: np.ndarray, bits=None,
                               max_bytes: int | None = None, features=None,
                               device: str = "cpu") -> np.ndarray:
    """`bitcheck.failing_outputs_bits` computed in torch on `device`: indices (sorted, numpy)
    among `outputs` (all with q_j = 1) whose channel's neurons share a feature outside the
    output's operands. `bits`: the listen bitset, numpy (`listen_bits`) or already on the
    device (`bits_on`); built from `listen` when not given. Blocks of outputs are sized by the
    device (`block_words`) and so that the bitset and a block's three int64 tensors stay within
    `max_bytes` (when given). `features`: a partial check on the words holding these."""
    import torch  # heavy: importing the compiler stays light (see the module docstring)
    outputs = np.asarray(outputs, dtype=np.int64)
    if bits is None:
        bits = listen_bits(a.n, spec.m, listen)
    bits = bits_on(bits, device)
    position = None
    if features is not None:
        kept, position = word_positions(features, bits.shape[1])
        bits = bits.index_select(1, torch.as_tensor(kept, device=bits.device))
    words = bits.shape[1]
    step = max(1, block_words(device) // words)
    if max_bytes is not None:
        used = bits.numel() * 8
        step = max(1, min(step, (max_bytes - used) // (24 * words + 256)))
    masks = torch.as_tensor(BIT_MASKS, device=bits.device)
    always, blocks = channel_blocks(a, outputs, step)
    bad = [always] + [block[block_fails_torch(spec, a, bits, masks, block, t, position)
                            .cpu().numpy()] for t, block in blocks]
    return np.sort(np.concatenate(bad))


def block_fails_torch(spec, a, bits, masks, block: np.ndarray, t: int, position=None):
    """bool tensor per output of `block` (channels of t neurons): fails the q = 1 criterion
    within the words of `bits` (int64, on its device; `masks`: BIT_MASKS there; `position`:
    word -> column of `bits`, -1 when left out)."""
    import torch  # heavy: importing the compiler stays light (see the module docstring)
    dev = bits.device
    chan = torch.as_tensor(channel_neurons(a, block, t), device=dev)
    acc = bits.index_select(0, chan[:, 0])
    for s in range(1, t):
        acc &= bits.index_select(0, chan[:, s])
    row, word, bit = operand_cells(spec, block, position)
    cell = torch.as_tensor(row * acc.shape[1] + word, device=dev)
    clear = torch.zeros(acc.numel(), dtype=torch.int64, device=dev)
    clear.index_add_(0, cell, masks[torch.as_tensor(bit, device=dev)])
    acc &= ~clear.view_as(acc)
    return (acc != 0).any(dim=1)


def failing_outputs_q1(spec, a, listen, outputs: np.ndarray, bits=None,
                       max_bytes: int | None = None, features=None,
                       device: str | None = None) -> np.ndarray:
    """The q = 1 check where `check_device(device)` says: the numpy version
    (`bitcheck.failing_outputs_bits`) or the torch one on that device. Same arguments and
    result; `bits` may be a tensor from `bits_on` only when the torch version runs."""
    where = check_device(device)
    if where is None:
        return failing_outputs_bits(spec, a, listen, outputs, bits, max_bytes, features)
    return failing_outputs_bits_torch(spec, a, listen, outputs, bits, max_bytes, features,
                                      device=where)
