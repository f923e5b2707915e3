"""The target interface: what a compilation target provides, and the registry `TARGETS`.

A target turns a circuit into a network and knows everything target-specific about that
network; nothing outside this registry branches on a target's name:

* `compile(circuit, options)`: the network (a `CompiledNetwork` subclass: `Network` for layered
  targets, `ConditionalNetwork` for trees);
* `make_options(**values)`: its options dataclass, checked (`OptionError` for a bad value);
* `account(net)`: the exact resource accounting (`compiler.accounting.Accounting`);
* `compile_notes(net)`: what the compiler did beyond the accounting (`CompileNotes`), e.g.
  how many outputs were superposed;
* `network_type`: the class of its networks, which saves and loads its own arrays
  (`to_arrays` / `from_arrays`) and is run by the backend module of that representation;
* `methods`: the verification methods that apply to its networks; `default_dtype`: the float
  type its modules compute in unless told otherwise.

A new target is one subpackage with a `Target` subclass and one `register(...)` call (see
docs/architecture.md); a test suite can register a target of its own the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import ClassVar, Optional

import numpy as np

from .accounting import layered_accounting
from .network import Network

METHODS = ("exhaustive", "smt", "sample", "structural")


class TargetUnavailable(Exception):
    """The requested target does not exist, or cannot compile this circuit; `option` names
    the option (a Python keyword) whose limit stopped it, when one did."""

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.option = option


class OptionError(ValueError):
    """An option a target cannot use: `option` names it (as a Python keyword), `problem` says
    what is wrong with it ("must be positive, got 0"); the message is both together."""

    def __init__(self, option: str, problem: str):
        super().__init__(f"{option} {problem}")
        self.option = option
        self.problem = problem


def require_int(option: str, value, low: int = 1) -> None:
    """OptionError unless `value` is None or an integer (not a bool) of at least `low`."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise OptionError(option, f"must be an integer, got {value!r}")
    if value < low:
        raise OptionError(option, f"must be at least {low}, got {value}")


@dataclass(frozen=True)
class CompileNotes:
    """A target's own report of a compilation: `section` is the JSON key it goes under in
    `sup compile --json` (None for no section), `data` its JSON-ready fields, `text` the lines
    for people."""
    section: Optional[str] = None
    data: dict = field(default_factory=dict)
    text: str = ""

    def to_json(self) -> dict:
        """{section: data}, or {} when there is nothing to report."""
        return {self.section: self.data} if self.section else {}


class Target(ABC):
    """A compilation target. Subclasses set the class attributes and implement `compile`."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    options_type: ClassVar[type]
    network_type: ClassVar[type] = Network          # layered unless the target says otherwise
    methods: ClassVar[tuple] = METHODS
    default_dtype: ClassVar[str] = "float32"

    def option_names(self) -> tuple:
        """The keyword options `make_options` accepts."""
        return tuple(f.name for f in fields(self.options_type) if f.init)

    def make_options(self, **values):
        """The options dataclass from keyword values (None = the default); OptionError names an
        option this target does not take or a value it cannot use."""
        known = self.option_names()
        for key, value in values.items():
            if key not in known and value is not None:
                raise OptionError(key, f"is not an option of the {self.name} target (it takes: "
                                       f"{', '.join(known) or 'none'})")
        given = {k: v for k, v in values.items() if k in known and v is not None}
        return self.options_type(**given)

    @abstractmethod
    def compile(self, circuit, options, progress=None):
        """The network of `circuit` (options from `make_options`); `progress` is an optional
        callable receiving search-step dicts. Raises TargetUnavailable when the circuit cannot
        be compiled by this target."""

    def account(self, net):
        """Exact accounting (compiler.accounting.Accounting) of a network of this target; the
        default counts a layered network."""
        return layered_accounting(net)

    def compile_notes(self, net) -> CompileNotes:
        """What the compiler did beyond the accounting; nothing by default."""
        return CompileNotes()


class _Registry(dict):
    """name -> Target, in registration order."""

    def get_target(self, name: str) -> Target:
        """The target called `name`; TargetUnavailable (naming the choices) otherwise."""
        if name not in self:
            raise TargetUnavailable(f"unknown target '{name}' (choose from {', '.join(self)})")
        return self[name]


TARGETS = _Registry()


def register(target: Target) -> Target:
    """Add `target` to TARGETS under its name (replacing one of the same name) and return it."""
    if not isinstance(target, Target):
        raise TypeError(f"{target!r} is not a compiler.target.Target")
    TARGETS[target.name] = target
    return target


def unregister(name: str) -> None:
    """Remove a target (tests that register their own use this to clean up)."""
    TARGETS.pop(name, None)
