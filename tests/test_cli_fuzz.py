"""Fuzz of the command line (issue 14): every subcommand with random flag values (integers,
negatives, huge numbers, strings, floats) and random bytes as files. Each command line must end
with exit status 0-3 and no traceback, refuse what cannot fit before allocating it (no "out of
memory"), stay within a memory limit (resource.setrlimit on the worker process) and within a
time limit per case.

The cases come from a fixed seed, so a failure names a reproducible command line; the worker
(tests/cli_fuzz_worker.py) runs them in-process, one Python start for all of them. `sup toy`
(the papers' toy models, which train networks for minutes) is left out.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

import dsl
from backends import save
from compiler import compile_circuit

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "cli_fuzz_worker.py"
SEED = 14
CASES = 600                     # about 10-20 s on one core (the worker starts once)
MEMORY = 3 << 30                # address space of the worker (torch alone maps ~1 GiB)
SECONDS = 25                    # per case

TINY = ("const P = pairs(12, 24, seed=2);\ninput x[12];\nsparsity 2;\n"
        "output y[u, v] = x[u] & x[v] for (u, v) in P;\noutput o = x[0] | x[5];\n")
C17 = (ROOT / "examples" / "c17.sup").read_text()

INTS = ["-7", "-1", "0", "1", "2", "3", "5", "17", "1000", str(10 ** 12), str(2 ** 63),
        str(-(2 ** 63)), str(10 ** 40)]
FLOATS = ["-0.5", "0", "0.05", "0.5", "1", "1.5", "nan", "inf", "-inf", "1e308", "1e-300"]
WORDS = ["", "abc", "x[0]", "x[0],x[3]", "--json", "1/0", "0/0", "2/1", "1/2", "3/2",
         "\u00e9\u4e2d", "a,b", "'", "1e3", "4G", "512M", "1M", "0M", "rs", "auto", "-"]
SIZES = ["1M", "4G", "512M", "0", "1k", "10T", "abc", "1.5G"]
FILES = ["tiny.sup", "c17.sup", "bytes.sup", "nul.sup", "empty.sup", "bytes.aag", "bytes.aig",
         "bytes.bench", "bytes.blif", "missing.sup", "folder", "text.bench"]
MODELS = ["dense_model", "cond_model", "sup_model", "junk_model", "missing_model"]


def value(rng, kind: str) -> str:
    """A random value: mostly of the flag's kind, sometimes of any kind."""
    pools = {"int": INTS, "float": FLOATS, "word": WORDS, "size": SIZES}
    if rng.random() < 0.2:
        kind = rng.choice(list(pools))
    return rng.choice(pools[kind])


COMMON = {"--max-elements": "int"}
TARGET = {"--width": "int", "--channel": "int", "--seed": "int", "--max-error": "float",
          "--construction": "word", "--input-code": "int", "--output-code": "int",
          "--code-seed": "int", "--table-method": "word", "--max-domain": "int",
          "--max-memory": "size"}
TAKES = {"superposed": ("--width", "--channel", "--seed", "--max-error", "--construction",
                        "--input-code", "--output-code", "--code-seed", "--max-memory"),
         "conditional": ("--table-method", "--max-domain", "--seed"), "dense": ("--seed",)}
VERIFY = {"--method": "word", "--shard": "word", "--batch": "int", "--path": "word",
          "--max-counterexamples": "int", "--timeout": "float", "--samples": "int",
          "--dtype": "word"}
CHOICES = {"--construction": ["output-channels", "design", "input-channels"],
           "--table-method": ["auto", "key", "bits"], "--target": ["dense", "superposed",
                                                                   "conditional"],
           "--method": ["exhaustive", "smt", "sample", "structural", "auto"],
           "--path": ["auto", "blocks", "delta", "dense"], "--dtype": ["float32", "float64"]}


# values that make sense for each flag, so that about half the cases get to the real work
VALID = {"--width": ["8", "10", "16"], "--channel": ["3", "4"], "--seed": ["0", "1", "7"],
         "--max-error": ["0.01", "0.1"], "--input-code": ["64", "rs"],
         "--output-code": ["64", "rs"], "--code-seed": ["0", "3"],
         "--max-domain": ["64", "100000"], "--max-memory": ["64M", "1G"],
         "--batch": ["1", "7", "65536"], "--max-counterexamples": ["0", "3"],
         "--timeout": ["1", "5"], "--samples": ["10", "500"], "--shard": ["1/2", "2/2"],
         "--max-elements": ["1000", "100000"], "--active": ["x[0],x[3]", "N1,N3", ""],
         **CHOICES}


def flags(rng, table: dict, count: int) -> list:
    out = []
    for flag in rng.sample(sorted(table), min(count, len(table))):
        if flag in VALID and rng.random() < 0.7:
            out += [flag, rng.choice(VALID[flag])]
        else:
            out += [flag, value(rng, table[flag])]
    return out


def target_flags(rng, target: str, count: int) -> list:
    """Flags of `target` mostly, sometimes any target's (which must then be refused)."""
    table = TARGET if rng.random() < 0.2 else {k: TARGET[k] for k in TAKES[target]}
    return flags(rng, table, count)


def case(rng) -> list:
    """One random command line (paths relative to the worker's folder)."""
    command = rng.choice(["check", "eval", "graph", "compile", "compile", "compile", "verify",
                          "verify", "verify", "import", "run", "run"])
    file = rng.choice(FILES[:2]) if rng.random() < 0.6 else rng.choice(FILES)
    argv = [command]
    if command == "eval":
        argv += [file, "--active", rng.choice(VALID["--active"]) if rng.random() < 0.6
                 else value(rng, "word")]
        return argv + (["--json"] if rng.random() < 0.5 else [])
    if command == "run":
        argv += [rng.choice(MODELS)] + flags(rng, {"--active": "word", "--dtype": "word",
                                                   "--max-elements": "int"}, rng.randint(0, 2))
        if rng.random() < 0.6:
            argv += ["--circuit", "tiny.sup" if rng.random() < 0.6 else file]
        if rng.random() < 0.4:
            argv.append("--hidden")
    else:
        argv.append(file)
        argv += flags(rng, COMMON, rng.randint(0, 1))
    if command == "graph":
        argv += ["-o", rng.choice(["g.dot", "g.graphml", "g.txt", "folder/g.dot", "folder"])]
    elif command == "compile":
        target = rng.choice(CHOICES["--target"])
        argv += ["--target", target] + target_flags(rng, target, rng.randint(1, 3))
        if rng.random() < 0.2:
            argv += [rng.choice(["-o", "--onnx"]), rng.choice(["m1", "folder", "m.onnx", ""])]
    elif command == "verify":
        if rng.random() < 0.4:
            argv += ["--model", rng.choice(MODELS)]
        elif rng.random() < 0.7:
            target = rng.choice(CHOICES["--target"])
            argv += ["--target", target] + target_flags(rng, target, rng.randint(0, 2))
        argv += flags(rng, VERIFY, rng.randint(1, 3)) + ["--device", "cpu"]
        if rng.random() < 0.1:
            argv += ["--merge", rng.choice(["report.json", "junk.json", "missing.json"])]
    elif command == "import" and rng.random() < 0.5:
        argv += ["-o", rng.choice(["out.sup", "folder", ""])]
    if rng.random() < 0.5:
        argv.append("--json")
    return argv


def make_folder(folder: Path) -> None:
    """Circuits, random bytes, saved models and reports the cases refer to."""
    rng = random.Random(SEED)
    noise = bytes(rng.randrange(256) for _ in range(600))
    (folder / "tiny.sup").write_text(TINY)
    (folder / "c17.sup").write_text(C17)
    (folder / "bytes.sup").write_bytes(noise)
    (folder / "nul.sup").write_bytes(b"input a;\x00output y = a;\n")
    (folder / "empty.sup").write_bytes(b"")
    for ext in ("aag", "aig", "bench", "blif"):
        (folder / f"bytes.{ext}").write_bytes(noise[::-1] if ext != "aag" else b"aag 9 " + noise)
    (folder / "text.bench").write_text("INPUT(a)\nOUTPUT(y)\ny = NAND(a, a, b)\n")
    (folder / "folder").mkdir()
    tiny = dsl.load(folder / "tiny.sup")
    save(compile_circuit(tiny, "dense"), folder / "dense_model")
    save(compile_circuit(tiny, "conditional"), folder / "cond_model")
    save(compile_circuit(tiny, "superposed", channel=4), folder / "sup_model")
    (folder / "junk_model.safetensors").write_bytes(noise)
    (folder / "junk_model.json").write_text('{"target": "dense", "n_inputs": -3}')
    (folder / "junk.json").write_bytes(noise[:50])
    (folder / "report.json").write_text(json.dumps({"verified": True, "method": "exhaustive",
                                                    "shard": {"i": 1, "n": 2}}))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """The worker's result for every case, and its peak memory."""
    folder = tmp_path_factory.mktemp("fuzz")
    make_folder(folder)
    rng = random.Random(SEED)
    cases = [case(rng) for _ in range(CASES)]
    job = json.dumps({"cases": cases, "folder": str(folder), "memory": MEMORY,
                      "seconds": SECONDS})
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(WORKER)], input=job, capture_output=True,
                          text=True, timeout=CASES * SECONDS, env=env, cwd=str(folder))
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines and "max_rss_bytes" in lines[-1], proc.stderr[-3000:]
    return lines[:-1], lines[-1]["max_rss_bytes"]


def shown(result) -> str:
    return "sup " + " ".join(repr(a) if (" " in a or not a) else a for a in result["argv"])


def test_every_case_ran(results):
    cases, _ = results
    assert len(cases) == CASES
    commands = {r["argv"][0] for r in cases}
    assert commands == {"check", "eval", "graph", "compile", "verify", "import", "run"}


def test_exit_status_and_no_traceback(results):
    cases, _ = results
    bad = [f"{shown(r)}: {'timed out' if r['timed_out'] else r['code']}\n"
           f"{r['escaped'] or r['stderr'][-600:]}"
           for r in cases
           if r["timed_out"] or r["escaped"] or r["code"] not in (0, 1, 2, 3)
           or "Traceback" in r["stderr"]]
    assert not bad, "\n\n".join(bad[:5])


def test_memory_is_refused_before_it_is_allocated(results):
    cases, rss = results
    blown = [shown(r) for r in cases if "out of memory" in r["stderr"]]
    assert not blown, blown[:5]
    assert rss < MEMORY


def test_the_cases_reach_the_work(results):
    """Not only argparse refusals: a fair share of the cases compile, verify or run."""
    cases, _ = results
    codes = [r["code"] for r in cases]
    assert codes.count(0) + codes.count(1) + codes.count(3) >= CASES // 5
    assert codes.count(2) >= CASES // 5
