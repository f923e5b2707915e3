"""`--device cpu|cuda` for every bench script: the flag, its check, and the device's clock.

    parser = argparse.ArgumentParser(...)
    add_device_argument(parser)
    args = parser.parse_args()
    device = chosen_device(args)      # SystemExit with a clear message when CUDA is missing
"""

from __future__ import annotations

import time

import torch

DEVICES = ("cpu", "cuda")


def add_device_argument(parser) -> None:
    """Add `--device cpu|cuda` (default cpu) to an argparse parser."""
    parser.add_argument("--device", default="cpu", choices=DEVICES,
                        help="where the torch modules run (default cpu; cuda needs a GPU)")


def chosen_device(args) -> str:
    """`args.device`, refused with exit status 2 and a message when it is cuda and no CUDA
    device is available."""
    device = getattr(args, "device", "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available here "
                         "(torch.cuda.is_available() is False); use --device cpu")
    return device


def synchronize(device) -> None:
    """Wait for the device's queued work (a no-op on CPU), before reading a clock."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(device, fn, *args, **kwargs):
    """(fn's result, seconds), the device synchronized before and after."""
    synchronize(device)
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    synchronize(device)
    return result, time.perf_counter() - start
