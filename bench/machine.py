"""The machine's own dense matmul rate, measured in the same run as a benchmark."""

from __future__ import annotations

import time

import torch


def torch_mm_rate(n: int = 2048, repeats: int = 5, dtype=torch.float32, device="cpu") -> float:
    """Multiply-adds per second of torch.mm on [n, n] x [n, n] (best of `repeats`)."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return n ** 3 / best
