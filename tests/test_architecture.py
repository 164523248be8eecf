"""The import rules of docs/architecture.md, enforced: storage stands on records alone, records on nothing
but other records and errors, capabilities never reach up into the adapters (cli, api, web), and no two
packages import each other, directly or round a loop."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "loopwise"
#: the adapters, and the composition root that assembles the server from them
ADAPTERS = ("loopwise.cli", "loopwise.api", "loopwise.web", "loopwise.app")
#: what storage may import besides records: the ground it stands on
STORAGE_GROUND = ("loopwise.storage", "loopwise.errors", "loopwise.config", "loopwise._private")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str) -> set[str]:
    """Every loopwise module ``name`` imports when it runs (inside functions too), resolved to modules."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                targets.add(submodule if submodule in MODULES else module)
    return {t for t in targets if t in MODULES and t != name}


IMPORTS = {name: _imports(name) for name in MODULES}


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _is_records(module: str) -> bool:
    return module.endswith(".records")


def _node(module: str) -> str:
    """The package a module belongs to for the cycle rule. A capability's records are their own layer, and so
    is its ``__init__`` (what importing anything of the package runs first)."""
    parts = module.split(".")
    if _is_records(module) or len(parts) == 1:
        return module
    if MODULES[module].name == "__init__.py" and len(parts) == 2:
        return f"{module}.__init__"
    return ".".join(parts[:2])


def test_storage_imports_only_records() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in IMPORTS.items()
        if module.startswith("loopwise.storage")
        for target in targets
        if not (_is_records(target) or _within(target, STORAGE_GROUND))
    )
    assert not wrong, "storage may import only records (and its own ground):\n" + "\n".join(wrong)


def test_records_import_only_records_and_errors() -> None:
    records = [m for m in MODULES if _is_records(m)]
    assert len(records) >= 8, records
    wrong = sorted(
        f"{module} imports {target}"
        for module in records
        for target in IMPORTS[module]
        if not (_is_records(target) or target == "loopwise.errors")
    )
    assert not wrong, "records may import only other records and loopwise.errors:\n" + "\n".join(wrong)


def test_capabilities_never_import_adapters() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in IMPORTS.items()
        if module != "loopwise" and not _within(module, ADAPTERS)
        for target in targets
        if _within(target, ADAPTERS)
    )
    assert not wrong, "only cli, api and web may import cli, api and web:\n" + "\n".join(wrong)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def package_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, targets in IMPORTS.items():
        for target in targets:
            # importing a.b.c runs a/b/__init__ first (unless the importer is inside a.b: it already ran)
            parents = [target.rsplit(".", k)[0] for k in range(1, target.count("."))]
            for t in [target] + [p for p in parents if not module.startswith(p + ".")]:
                if t in MODULES and t != "loopwise" and _node(t) != _node(module):
                    edges[_node(module)].add(_node(t))
    return edges


def test_no_import_cycle_between_packages() -> None:
    edges = package_edges()
    cycles = _cycles(edges)
    detail = []
    for cycle in cycles:
        members = set(cycle)
        for module, targets in sorted(IMPORTS.items()):
            for target in sorted(targets):
                if _node(module) in members and _node(target) in members and _node(module) != _node(target):
                    detail.append(f"  {module} -> {target}")
    assert not cycles, f"import cycles between packages: {cycles}\n" + "\n".join(detail)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("module", ["loopwise.storage", "loopwise.storage.repositories"])
def test_importing_storage_loads_no_capability(module: str) -> None:
    """What runs, not only what is written: importing storage loads records and no capability's logic."""
    code = (
        f"import sys, {module}\nprint('\\n'.join(sorted(m for m in sys.modules if m.startswith('loopwise'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=SRC.parent
    ).stdout.split()
    capability_packages = {m for m in MODULES if m.count(".") == 1 and (MODULES[m].name == "__init__.py")}
    wrong = [
        m
        for m in loaded
        if not (
            _is_records(m)
            or m in capability_packages
            or m == "loopwise"
            or m == "loopwise._lazy"
            or _within(m, STORAGE_GROUND)
        )
    ]
    assert not wrong, f"importing {module} loads {wrong}"
