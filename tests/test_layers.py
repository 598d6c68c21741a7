"""Layers that go one way (issue 22, item 4).

Every product module is parsed with `ast` and every import is collected, at module level and
inside functions alike (an import inside a function still ties the two modules together; it
only hides the tie from a reader). The test fails on

- an import cycle between product modules,
- an import that goes against the layer order of `LAYERS` (a module may import its own layer and
  the layers listed before it, never one listed after it),
- a library module importing `pfdeploy.cli`,
- a product module that `LAYERS` does not place (a new module is placed deliberately).

Imports under `if TYPE_CHECKING:` are not counted (they never run). Importing a submodule runs
its parent packages' `__init__` too; like import-linter, the test counts only the imports that
are written, not that implicit one. `from pfdeploy import __version__` (or `from .. import
__version__`) reads a constant of the package root and counts as an import of the pseudo-module
`pfdeploy.__version__` in the bottom layer; anything else taken from the root (`create_model`...)
is an import of the root package, the public facade, which sits with the models.

docs/architecture.md ("Layers") explains the table.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# source folder -> the package it installs as (pyproject.toml [tool.setuptools] package-dir)
SOURCES = {"pfdeploy": "pfdeploy", "exporters": "pfdeploy.exporters", "bench": "pfdeploy.bench",
           "devices": "pfdeploy.devices", "backends": "pfdeploy.backends"}
VERSION = "pfdeploy.__version__"

# The layer order, lowest first: a module may import modules of its own layer and of the layers
# before it. Entries are module names; an entry also covers its submodules (`pfdeploy.zoo` covers
# `pfdeploy.zoo.spec`), except the root `pfdeploy`, which is only the package's own __init__.
# The longest matching entry wins.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", (VERSION, "pfdeploy.errors", "pfdeploy.config", "pfdeploy.outputs", "pfdeploy.signals",
              "pfdeploy.clock", "pfdeploy.validate", "pfdeploy.plugins", "pfdeploy.runfile", "pfdeploy.result", "pfdeploy.render", "pfdeploy.digest",
              "pfdeploy.labels", "pfdeploy.probecache", "pfdeploy.importhook", "pfdeploy.publish", "pfdeploy.versions")),
    ("models", ("pfdeploy", "pfdeploy.zoo", "pfdeploy.weights", "pfdeploy.pretrained", "pfdeploy.complexity")),
    ("devices", ("pfdeploy.devices",)),
    ("backends", ("pfdeploy.backends",)),
    ("exporters", ("pfdeploy.exporters",)),
    ("bench", ("pfdeploy.bench", "pfdeploy.preflight")),
    ("store", ("pfdeploy.store", "pfdeploy.migrations", "pfdeploy.results")),
    ("tune", ("pfdeploy.tune", "pfdeploy.ab")),
    ("analysis", ("pfdeploy.compare", "pfdeploy.claims", "pfdeploy.capacity", "pfdeploy.report", "pfdeploy.fleet")),
    ("cli", ("pfdeploy.cli", "pfdeploy.__main__")),
]

# Cycles and upward imports allowed for now: none. An entry here names its owner and must only
# shrink (an entry that no longer occurs fails the test).
KNOWN_CYCLES: list[frozenset[str]] = []
KNOWN_UPWARD: set[tuple[str, str]] = set()


def product_modules() -> dict[str, Path]:
    mods = {}
    for folder, package in SOURCES.items():
        root = REPO / folder
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("").parts
            if folder == "pfdeploy" and rel[0] in SOURCES:  # not a folder of its own here
                continue
            parts = rel[:-1] if rel[-1] == "__init__" else rel
            mods[".".join((package, *parts))] = path
    return mods


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else None
            if name == "TYPE_CHECKING":
                for sub in node.body:
                    skip.update(id(n) for n in ast.walk(sub))
    return skip


def imports_of(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The product modules `name` imports (anywhere in the file)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_nodes(tree)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()

    def add(target: str):
        while target and target not in mods and target != VERSION:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pfdeploy":
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "pfdeploy":
                continue
            for alias in node.names:
                if module == "pfdeploy" and alias.name == "__version__":
                    found.add(VERSION)
                elif f"{module}.{alias.name}" in mods:
                    add(f"{module}.{alias.name}")
                else:
                    add(module)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = product_modules()
    return {name: imports_of(name, path, mods) for name, path in mods.items()}


def layer_of(module: str) -> int | None:
    best, best_len = None, -1
    for index, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            covers = module == entry or (entry != "pfdeploy" and module.startswith(entry + "."))  # the root: itself only
            if covers and len(entry) > best_len:
                best, best_len = index, len(entry)
    return best


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_parser_sees_imports_inside_functions(graph):
    # bench/prepare.py imports get_artifact inside a method: the graph must have that edge
    assert "pfdeploy.exporters" in graph["pfdeploy.bench.prepare"]
    assert "pfdeploy.zoo" in graph["pfdeploy"]  # the facade's lazy imports count
    assert graph["pfdeploy.backends"] >= {"pfdeploy.errors"}


def test_every_product_module_has_a_layer(graph):
    unplaced = sorted(m for m in graph if layer_of(m) is None)
    assert not unplaced, f"place these modules in LAYERS (tests/test_layers.py): {unplaced}"


def test_no_import_cycles(graph):
    found = set(cycles(graph))
    new = [sorted(c) for c in found if c not in KNOWN_CYCLES]
    assert not new, f"import cycles between product modules: {new}"
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"fixed, remove from KNOWN_CYCLES: {gone}"


def test_imports_follow_the_layer_order(graph):
    upward = set()
    for module, targets in graph.items():
        mine = layer_of(module)
        for target in targets:
            theirs = layer_of(target)
            if mine is not None and theirs is not None and theirs > mine:
                upward.add((module, target))
    new = sorted(upward - KNOWN_UPWARD)
    assert not new, "imports against the layer order (lower layer importing a higher one): " + "; ".join(
        f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})" for a, b in new)
    gone = sorted(KNOWN_UPWARD - upward)
    assert not gone, f"fixed, remove from KNOWN_UPWARD: {gone}"


def test_no_library_module_imports_the_cli(graph):
    bad = sorted((m, t) for m, targets in graph.items() for t in targets
                 if t.split(".")[:2] == ["pfdeploy", "cli"] and m.split(".")[:2] not in (["pfdeploy", "cli"],)
                 and m != "pfdeploy.__main__" and (m, t) not in KNOWN_UPWARD)
    assert not bad, f"library modules importing pfdeploy.cli: {bad}"


def test_the_checks_catch_what_they_should(tmp_path):
    """The checker itself: a planted cycle, imports inside functions, TYPE_CHECKING, the layers."""
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [frozenset({"a", "b", "c"})]
    src = tmp_path / "mod.py"
    src.write_text("from typing import TYPE_CHECKING\n"
                   "from .. import __version__\n"
                   "if TYPE_CHECKING:\n    from ..store import Store\n"
                   "def f():\n    from ..bench.engine import Engine\n    import pfdeploy.cli.bench\n"
                   "class C:\n    def g(self):\n        from . import parity\n")
    mods = dict.fromkeys(["pfdeploy.exporters.mod", "pfdeploy.exporters.parity", "pfdeploy.bench.engine",
                          "pfdeploy.store", "pfdeploy.cli.bench", "pfdeploy.cli", "pfdeploy.bench"], src)
    assert imports_of("pfdeploy.exporters.mod", src, mods) == {
        VERSION, "pfdeploy.bench.engine", "pfdeploy.cli.bench", "pfdeploy.exporters.parity"}
    assert layer_of("pfdeploy.zoo.spec") == layer_of("pfdeploy.zoo") < layer_of("pfdeploy.exporters.pipeline")
    assert layer_of("pfdeploy.backends.base") < layer_of("pfdeploy.exporters") < layer_of("pfdeploy.bench.engine")
    assert layer_of("pfdeploy.nonexistent_module") is None  # the root entry covers the root only
    assert layer_of(VERSION) == 0


def test_the_architecture_docs_layers_table_is_this_tests_table():
    """docs/architecture.md's one Layers table names, layer by layer, exactly the modules LAYERS places."""
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    assert doc.count("\n## Layers") == 1, "one Layers section"
    section = doc.split("\n## Layers", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| layer")]
    table = {}
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        names = re.findall(r"`([A-Za-z_.]+)`", cells[1])
        table[cells[0]] = {n if n.startswith("pfdeploy") else f"pfdeploy.{n}" for n in names}
    for layer, modules in LAYERS:
        expected = {m for m in modules if m != VERSION} | ({"pfdeploy.__version__"} if VERSION in modules else set())
        got = {m for m in table.get(layer, set()) if not m.startswith("pfdeploy.create_model")}
        if layer == "models":
            got.add("pfdeploy")  # "the package root" in words
        assert got == expected, (layer, sorted(got ^ expected))
    assert [layer for layer, _ in LAYERS] == list(table)
