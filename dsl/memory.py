"""How much memory this machine has, for checks made before a large allocation (elaboration
here, the superposed target's channel check in compiler/superposed/channels.py): a size that
cannot fit is refused with a message saying what would, instead of a MemoryError or the
kernel's out-of-memory killer."""

from __future__ import annotations

import os

_FALLBACK = 4 << 30          # when the system does not say (no /proc, no sysconf)


def _meminfo(key: str) -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def total_bytes() -> int:
    """Physical memory of the machine in bytes."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return _meminfo("MemTotal") or _FALLBACK


def available_bytes() -> int:
    """Memory available to a new allocation without swapping, in bytes (MemAvailable on
    Linux; the physical memory elsewhere)."""
    return _meminfo("MemAvailable") or total_bytes()


def format_bytes(count: float) -> str:
    """`1.5 GiB`, `512 MiB`, `300 bytes`."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:,.1f} {unit}"
    return f"{int(count):,} bytes"
