"""The README's walk-through runs as written (issue 14): the circuit of "Your first circuit" is
written to a fresh folder and every `$ sup ...` command of its console blocks is run there; each
line the README shows under a command must be printed by it, in order (`...` stands for lines
left out), so the README's numbers are the code's. The quoted answer of the `--input-code 64`
example, the command list and the module classes are checked against the code too.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from sup.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    """The text of the README section `## title` (up to the next `## ` heading)."""
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


FIRST = section("Your first circuit")


def blocks(text: str, lang: str) -> list:
    """The contents of the ```lang fenced blocks of text."""
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def console_steps(text: str) -> list:
    """[(command, expected lines)] of every ```console block of text."""
    steps = []
    for block in blocks(text, "console"):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                assert steps, f"output before any command in a console block: {line!r}"
                steps[-1][1].append(line.rstrip())
    return steps


def test_the_walk_through_is_complete():
    """Write, check, eval, compile with every target, verify, run: all there."""
    commands = [cmd for cmd, _ in console_steps(FIRST)]
    words = [shlex.split(cmd)[:2] for cmd in commands]
    assert all(w[0] == "sup" for w in words)
    assert {w[1] for w in words} >= {"check", "eval", "compile", "verify", "run"}
    targets = {shlex.split(c)[shlex.split(c).index("--target") + 1]
               for c in commands if "--target" in c}
    assert targets == {"dense", "superposed", "conditional"}
    assert len(blocks(FIRST, "sup")) == 1
    assert "bounds" in FIRST and "accounting" in FIRST


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder holding the README's first.sup."""
    path = tmp_path_factory.mktemp("first")
    (path / "first.sup").write_text(blocks(FIRST, "sup")[0])
    return path


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


STEPS = console_steps(FIRST)


@pytest.mark.parametrize("step", range(len(STEPS)), ids=[s[0] for s in STEPS])
def test_walk_through_command(step, folder, capsys, monkeypatch):
    """Run the commands up to this one (later ones read what earlier ones saved); this one
    must exit 0 and print the README's lines in order."""
    monkeypatch.chdir(folder)
    for index in range(step + 1):
        command, expected = STEPS[index]
        capsys.readouterr()
        code = main(shlex.split(command)[1:])
        out = capsys.readouterr().out
        assert code == 0, f"{command} exited {code}"
    printed = [line.rstrip() for line in out.splitlines()]
    position = 0
    for line in expected:
        if line == "...":
            continue
        assert line in printed[position:], (f"`{command}` no longer prints the README's line "
                                            f"{line!r}; it prints:\n" + "\n".join(printed))
        position = printed.index(line, position) + 1


def test_code_widths_example_is_current(capsys):
    """The --input-code 64 example quotes the widths the compiler names today."""
    match = re.search(r"`(sup compile examples/permutation\.sup [^`]*--input-code 64[^`]*)` "
                      r"answers\s+`\.\.\. ([^`]*)`", README.replace("\n", " "))
    assert match, "the README's --input-code 64 example is missing"
    command, answer = match.groups()
    code = main([str(ROOT / a) if a.startswith("examples/") else a
                 for a in shlex.split(command)[1:]])
    err = capsys.readouterr().err
    assert code == 2 and answer in " ".join(err.split()), err


def test_command_list_names_every_subcommand_and_onnx():
    block = section("Command line")
    for word in ("sup check", "sup eval", "sup graph", "sup compile", "sup verify", "sup import",
                 "sup run", "--onnx", "--max-memory"):
        assert word in block, word


def test_module_classes_are_explained():
    api = section("Python API")
    assert "SupModule" in api and "ConditionalModule" in api and "to_module" in api
