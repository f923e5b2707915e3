"""Worker of tests/test_cli_fuzz.py: runs `sup` command lines in-process under a memory limit.

Reads {"cases": [argv, ...], "folder": DIR, "memory": BYTES, "seconds": S} as JSON on standard
input, limits its address space to BYTES (resource.setrlimit), runs each argv through
`sup.cli.main` in DIR with standard output and error captured and an alarm of S seconds, and
prints one JSON line per case: {"argv", "code", "escaped" (a traceback of an exception that left
main, else null), "stderr" (its last 2,000 characters), "seconds", "timed_out"}; then a last
line {"max_rss_bytes"}.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402  (after the path: the worker runs as a script)

from sup.cli import main  # noqa: E402


class CaseTimeout(BaseException):
    """A case ran past its time limit (BaseException, so `main` cannot swallow it)."""


def _alarm(signum, frame):
    raise CaseTimeout()


def run_case(argv, seconds: int) -> dict:
    """Run one command line; never raises."""
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    code, escaped, timed_out = None, None, False
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except CaseTimeout:
        timed_out = True
    except BaseException:            # noqa: BLE001  (an exception that escaped main is the finding)
        escaped = traceback.format_exc()[-3000:]
    finally:
        signal.alarm(0)
    return {"argv": argv, "code": code, "escaped": escaped, "stderr": err.getvalue()[-2000:],
            "stdout_lines": len(out.getvalue().splitlines()), "timed_out": timed_out,
            "seconds": round(time.perf_counter() - start, 3)}


def run() -> None:
    """Read the job from standard input; print the results."""
    job = json.load(sys.stdin)
    resource.setrlimit(resource.RLIMIT_AS, (job["memory"], job["memory"]))
    torch.set_num_threads(1)
    os.chdir(job["folder"])
    for argv in job["cases"]:
        print(json.dumps(run_case(argv, job["seconds"])), flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"max_rss_bytes": rss}), flush=True)


if __name__ == "__main__":
    run()
