"""The library's own import discipline (issue 12), checked by walking the source with `ast`.

Every .py file under the library packages (dsl, compiler, backends, verify, sup; tests/ and
bench/ are not checked) is parsed and every `import` / `from ... import` statement is
collected, at module level and inside functions, relative and absolute. Four rules:

1. No import cycles. Each library module is a node of a graph with an edge for each import of
   another library module; every strongly connected component of more than one module, and every
   self-loop, is a failure. How an import becomes an edge:
     * `import a.b.c` depends on `a.b.c`.
     * `from P import x` depends on the module `P.x` when that is a library module (a submodule
       import), otherwise on what defines `x`: when P is a package whose `__init__` re-exports
       `x` with `from .sub import x` (possibly through several packages), the dependency is on
       the defining submodule `P.sub`, not on `P` itself. Only names that P's `__init__`
       defines itself (or that cannot be resolved) make a dependency on `P`.
   So a package `__init__` importing its own submodules is normal (edges `P -> P.sub` only),
   and a submodule importing a name that its package merely re-exports does not form the formal
   cycle `P -> P.sub -> P`; a submodule importing something its package `__init__` *defines*
   still does, and is reported, since it is a real cycle at import time.
2. No private names across modules: `from m import _x` (a name starting with one underscore;
   dunders are fine) and `m._x` attribute access on a name bound to another library module are
   failures. A module may of course use its own private names.
3. Layer order dsl <- compiler <- backends <- verify <- sup: a module may import only from its
   own layer or a lower one (to the left), at module or function level.
4. Imports belong at module level. A function-level (local) import of a library module is
   always a failure. A local import of anything else (in practice a heavy optional third-party
   dependency: onnx, tqdm, torch inside compiler/, z3) is allowed only when the same line or the
   line above carries a comment containing the word "optional" or "heavy", so the reason for
   the deferred import is written down.

The checker functions take the root directory and package names, so the planted-violation tests
at the bottom run them on small fake packages under tmp_path.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("dsl", "compiler", "backends", "verify", "sup")   # lowest first
LOCAL_IMPORT_REASON = re.compile(r"#.*\b(optional|heavy)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Import:
    """One imported thing: `module` (the importing module) depends on `target`."""
    module: str          # the importing library module, e.g. "dsl.parser"
    path: Path
    line: int
    target: str          # absolute module name the import resolves to (library or not)
    name: str | None     # the imported name for `from ... import name`, else None
    local: bool          # inside a function body
    justified: bool      # a comment with "optional" / "heavy" on this line or the one above


@dataclass
class Library:
    """The parsed library: module name -> (path, tree, source lines) and the imports."""
    root: Path
    packages: tuple
    modules: dict
    imports: list

    def is_library(self, name: str) -> bool:
        return name in self.modules

    def top(self, name: str) -> str:
        return name.split(".")[0]


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _parse(root: Path, packages) -> dict:
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            modules[module_name(root, path)] = (path, ast.parse(source, str(path)),
                                                source.splitlines())
    return modules


def _is_package(modules: dict, name: str) -> bool:
    return name in modules and modules[name][0].name == "__init__.py"


def _base(modules: dict, module: str, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` statement imports from."""
    if node.level == 0:
        return node.module
    package = module if _is_package(modules, module) else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _reexports(modules: dict, package: str) -> dict:
    """name -> (module it comes from, its name there) for `from X import name` in an __init__."""
    result = {}
    _, tree, _ = modules[package]
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            base = _base(modules, package, node)
            for alias in node.names:
                result[alias.asname or alias.name] = (base, alias.name)
    return result


def resolve(modules: dict, base: str, name: str, seen=()) -> str:
    """The module that `from base import name` depends on (see rule 1 of the docstring)."""
    if f"{base}.{name}" in modules:
        return f"{base}.{name}"
    if _is_package(modules, base) and base not in seen:
        origin = _reexports(modules, base).get(name)
        if origin is not None and origin[0] in modules:
            return resolve(modules, origin[0], origin[1], seen + (base,))
    return base


def _local_nodes(tree: ast.AST) -> set:
    """ids of the import statements inside function bodies."""
    local = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    local.add(id(inner))
    return local


def _justified(lines: list, line: int) -> bool:
    here = lines[line - 1]
    above = lines[line - 2] if line >= 2 else ""
    return bool(LOCAL_IMPORT_REASON.search(here) or
                (above.lstrip().startswith("#") and LOCAL_IMPORT_REASON.search(above)))


def collect(root: Path = ROOT, packages=LAYERS) -> Library:
    """Parse every module of `packages` under `root` and list its imports."""
    modules = _parse(root, packages)
    imports = []
    for module, (path, tree, lines) in modules.items():
        local = _local_nodes(tree)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            common = dict(module=module, path=path, line=node.lineno, local=id(node) in local,
                          justified=_justified(lines, node.lineno))
            if isinstance(node, ast.Import):
                for alias in node.names:
                    imports.append(Import(target=alias.name, name=None, **common))
            else:
                base = _base(modules, module, node)
                for alias in node.names:
                    target = base if alias.name == "*" else resolve(modules, base, alias.name)
                    imports.append(Import(target=target, name=alias.name, **common))
    return Library(root=root, packages=tuple(packages), modules=modules, imports=imports)


def _where(lib: Library, imp: Import) -> str:
    return f"{imp.path.relative_to(lib.root)}:{imp.line}"


def import_graph(lib: Library) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(lib.modules)
    for imp in lib.imports:
        if lib.is_library(imp.target):
            graph.add_edge(imp.module, imp.target)
    return graph


def find_cycles(lib: Library) -> list[str]:
    """Every strongly connected component of size > 1 and every self-loop, with its edges."""
    graph = import_graph(lib)
    problems = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1 or any(graph.has_edge(m, m) for m in component):
            edges = sorted(f"{imp.module} -> {imp.target} ({_where(lib, imp)})"
                           for imp in lib.imports
                           if imp.module in component and imp.target in component)
            problems.append(f"cycle {sorted(component)}: " + "; ".join(edges))
    return sorted(problems)


def _unique(problems: list) -> list[str]:
    """Sorted by file and line number, one entry per distinct message."""
    def key(text):
        where, _, rest = text.partition(": ")
        path, _, line = where.rpartition(":")
        return (path, int(line), rest) if line.isdigit() else (where, 0, rest)
    return sorted(set(problems), key=key)


def _check(problems: list) -> None:
    assert not problems, f"{len(problems)} violation(s):\n" + "\n".join(problems)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def find_private(lib: Library) -> list[str]:
    """`from m import _x` of another module, and `alias._x` where alias names a library module."""
    problems = []
    for imp in lib.imports:
        if imp.name is not None and _private(imp.name) and imp.target != imp.module:
            problems.append(f"{_where(lib, imp)}: {imp.module} imports private {imp.name!r} "
                            f"from {imp.target}")
    for module, (path, tree, _) in lib.modules.items():
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname and lib.is_library(alias.name):
                        aliases[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom):
                base = _base(lib.modules, module, node)
                for alias in node.names:
                    if f"{base}.{alias.name}" in lib.modules:
                        aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and _private(node.attr)
                    and aliases[node.value.id] != module):
                problems.append(f"{path.relative_to(lib.root)}:{node.lineno}: {module} uses "
                                f"private {aliases[node.value.id]}.{node.attr}")
    return _unique(problems)


def find_upward(lib: Library, layers=LAYERS) -> list[str]:
    """Imports of a higher layer than the importing module's own."""
    rank = {name: i for i, name in enumerate(layers)}
    problems = []
    for imp in lib.imports:
        mine, theirs = rank.get(lib.top(imp.module)), rank.get(lib.top(imp.target))
        if mine is not None and theirs is not None and theirs > mine:
            problems.append(f"{_where(lib, imp)}: {imp.module} ({layers[mine]}) imports "
                            f"{imp.target} ({layers[theirs]}), a higher layer")
    return _unique(problems)


def find_local(lib: Library) -> list[str]:
    """Function-level imports of library modules, and unjustified ones of anything else."""
    problems = []
    for imp in lib.imports:
        if not imp.local:
            continue
        if lib.is_library(imp.target) or lib.top(imp.target) in lib.packages:
            problems.append(f"{_where(lib, imp)}: {imp.module} imports library module "
                            f"{imp.target} inside a function")
        elif not imp.justified:
            problems.append(f"{_where(lib, imp)}: {imp.module} imports {imp.target} inside a "
                            f"function without an 'optional' / 'heavy' comment")
    return _unique(problems)


# ---- the library itself

@pytest.fixture(scope="module")
def library() -> Library:
    return collect(ROOT, LAYERS)


def test_library_is_found(library):
    assert "dsl.nodes" in library.modules and "sup.cli" in library.modules
    assert len(library.imports) > 100


def test_no_import_cycles(library):
    _check(find_cycles(library))


def test_no_private_names_across_modules(library):
    _check(find_private(library))


def test_layer_order(library):
    _check(find_upward(library))


def test_imports_at_module_level(library):
    _check(find_local(library))


# ---- the checker finds planted violations

def _plant(root: Path, files: dict) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_planted_cycle(tmp_path):
    _plant(tmp_path, {
        "low/__init__.py": "",
        "low/a.py": "from .b import g\n\ndef f():\n    return g()\n",
        "low/b.py": "import low.c\n\ndef g():\n    return 1\n",
        "low/c.py": "from low import a\n",
        "low/d.py": "from . import d\n",
    })
    problems = find_cycles(collect(tmp_path, ("low",)))
    assert len(problems) == 2
    assert "['low.a', 'low.b', 'low.c']" in problems[0]
    assert "['low.d']" in problems[1]


def test_planted_cycle_through_function_level_import(tmp_path):
    _plant(tmp_path, {
        "low/__init__.py": "",
        "low/a.py": "from .b import g\n",
        "low/b.py": "def g():\n    from .a import x  # optional\n    return x\n",
    })
    assert len(find_cycles(collect(tmp_path, ("low",)))) == 1


def test_package_reexports_are_not_cycles(tmp_path):
    # low/__init__ re-exports f from low.a; low.b importing `from low import f` depends on low.a
    _plant(tmp_path, {
        "low/__init__.py": "from .a import f\nfrom .b import g\nfrom . import sub\n",
        "low/a.py": "def f():\n    return 1\n",
        "low/b.py": "from low import f\nfrom . import sub\n\ndef g():\n    return f()\n",
        "low/sub/__init__.py": "from .inner import h\n",
        "low/sub/inner.py": "from .. import f\n\ndef h():\n    return f()\n",
    })
    lib = collect(tmp_path, ("low",))
    assert find_cycles(lib) == []
    assert {(i.module, i.target) for i in lib.imports} >= {
        ("low.b", "low.a"), ("low.b", "low.sub"), ("low.sub.inner", "low.a")}


def test_name_defined_in_package_init_is_a_cycle(tmp_path):
    _plant(tmp_path, {
        "low/__init__.py": "from .a import f\n\ndef load():\n    return f()\n",
        "low/a.py": "from . import load\n\ndef f():\n    return load\n",
    })
    problems = find_cycles(collect(tmp_path, ("low",)))
    assert len(problems) == 1 and "['low', 'low.a']" in problems[0]


def test_planted_private_import(tmp_path):
    _plant(tmp_path, {
        "low/__init__.py": "from .a import public\n",
        "low/a.py": "def _hidden():\n    pass\n\ndef public():\n    return _hidden()\n",
        "low/b.py": ("from .a import (public,\n    _hidden)\nfrom low import a as mod\n"
                     "from . import a\n\n__all__ = ['x']\n\n"
                     "def f():\n    mod._hidden()\n    return a._hidden(), a.__name__\n"),
        "low/c.py": "from .a import __doc__\n",
    })
    problems = find_private(collect(tmp_path, ("low",)))
    assert len(problems) == 3
    assert "low/b.py:1: low.b imports private '_hidden' from low.a" in problems[0]
    assert "low/b.py:9: low.b uses private low.a._hidden" in problems[1]
    assert "low/b.py:10: low.b uses private low.a._hidden" in problems[2]


def test_planted_upward_import(tmp_path):
    _plant(tmp_path, {
        "low/__init__.py": "",
        "low/a.py": "from high import b\n\ndef f():\n    import high.b  # optional\n",
        "high/__init__.py": "",
        "high/b.py": "from low.a import f\n",
    })
    problems = find_upward(collect(tmp_path, ("low", "high")), layers=("low", "high"))
    assert len(problems) == 2
    assert all("low.a (low) imports high.b (high)" in p for p in problems)


def test_planted_local_imports(tmp_path):
    _plant(tmp_path, {
        "low/__init__.py": "",
        "low/a.py": "X = 1\n",
        "low/b.py": ("import json\n\n"
                     "def f():\n"
                     "    from .a import X\n"             # library: never allowed
                     "    import low.a  # optional\n"      # library: never allowed
                     "    import onnx\n"                  # no reason given
                     "    # heavy: only needed for export\n"
                     "    import torch\n"                 # justified by the line above
                     "    import tqdm  # optional dependency\n"
                     "    return X, json, onnx, torch, tqdm\n"
                     "\nclass C:\n    def m(self):\n        import csv\n"),
    })
    problems = find_local(collect(tmp_path, ("low",)))
    assert len(problems) == 4
    assert "low/b.py:4: low.b imports library module low.a inside a function" in problems[0]
    assert "low/b.py:5:" in problems[1]
    assert "low/b.py:6: low.b imports onnx inside a function without" in problems[2]
    assert "low/b.py:14: low.b imports csv" in problems[3]
