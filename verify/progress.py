"""Progress bars for long checks (tqdm on standard error, off when not a terminal)."""

from __future__ import annotations

import contextlib
import sys

from tqdm import tqdm


@contextlib.contextmanager
def progress_bar(total: int, unit: str, enabled: bool = True):
    """Context manager: a tqdm bar of `total` `unit`s, shown when enabled and stderr is a terminal."""
    show = enabled and sys.stderr.isatty()
    with tqdm(total=total, unit=unit, unit_scale=True, disable=not show, file=sys.stderr,
              dynamic_ncols=True, smoothing=0.1) as bar:
        yield bar
