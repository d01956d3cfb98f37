"""The project's imports flow one way: no module imports, directly or through others, itself.

Every Python file of the project (the model server's package, the benchmark, the shared harness
and the tests) is parsed, each import resolved to the project module it loads (relative imports
included, and the packages a submodule import executes), and the graph searched for cycles.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Where each top-level package lives: the model server's is under its src/ folder.
SOURCE_ROOTS = (ROOT / "services/model-server/src", ROOT)
PACKAGES = ("model_server", "bench", "harness", "tests")
SKIPPED_PARTS = {".venv", ".cache", "__pycache__", "node_modules"}


def project_modules(roots: Iterable[Path], packages: Iterable[str]) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, whether it is a package's __init__), for every module of ``packages``."""
    modules: dict[str, tuple[Path, bool]] = {}
    for root in roots:
        for package in packages:
            base = root / package
            if not base.is_dir():
                continue
            for path in base.rglob("*.py"):
                if SKIPPED_PARTS & set(path.relative_to(root).parts):
                    continue
                parts = list(path.relative_to(root).with_suffix("").parts)
                is_package = parts[-1] == "__init__"
                if is_package:
                    parts.pop()
                modules[".".join(parts)] = (path, is_package)
    return modules


def imports_of(name: str, path: Path, is_package: bool, known: Mapping[str, object]) -> set[str]:
    """The project modules that importing ``name`` executes directly (its imports' targets and their packages)."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        candidates: list[str] = []
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([base] if base else [])])
            candidates = [f"{base}.{alias.name}" if base else alias.name for alias in node.names] + [base]
        for candidate in candidates:
            parts = candidate.split(".")
            for end in range(1, len(parts) + 1):  # the module and every package on the way to it
                prefix = ".".join(parts[:end])
                if prefix in known and prefix != name:
                    targets.add(prefix)
    return targets


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def import_graph(roots: Iterable[Path], packages: Iterable[str]) -> dict[str, set[str]]:
    modules = project_modules(roots, packages)
    return {name: imports_of(name, path, is_package, modules) for name, (path, is_package) in modules.items()}


def test_the_project_has_no_import_cycle() -> None:
    graph = import_graph(SOURCE_ROOTS, PACKAGES)

    assert len(graph) > 100, "every module of the project was found"
    assert "model_server.serving.live_models" in graph["model_server.serving.repository_poller"], "edges resolved"
    assert cycles(graph) == []


def test_the_benchmark_imports_nothing_from_the_tests() -> None:
    graph = import_graph(SOURCE_ROOTS, PACKAGES)

    leaks = {name: sorted(t for t in targets if t.split(".")[0] == "tests") for name, targets in graph.items()}
    assert {name: found for name, found in leaks.items() if name.startswith("bench") and found} == {}


def test_a_cycle_through_relative_imports_is_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from .sub import b\n")
    (package / "sub" / "b.py").write_text("from .. import c\n")
    (package / "c.py").write_text("import pkg.a\n")
    (package / "d.py").write_text("from .a import something\n")

    graph = import_graph([tmp_path], ["pkg"])

    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    assert "pkg.a" in graph["pkg.d"], "d imports a, outside the cycle"


# The model server's parts from the bottom up (README, "Layout"): each imports only from its own
# part and the parts before it.
LAYERS = (
    ("model_server", "model_server.repository"),
    ("model_server.config", "model_server.logs"),
    ("model_server.monitoring",),
    ("model_server.serving",),
    ("model_server.state",),
    ("model_server.rest",),
    ("model_server.app",),
    ("model_server.process",),
    ("model_server.tools",),
    ("model_server.train", "model_server.package"),
)


def layer_of(module: str) -> int:
    """The index in LAYERS of the longest prefix naming ``module``'s part."""
    best, best_length = -1, -1
    for index, parts in enumerate(LAYERS):
        for part in parts:
            if (module == part or module.startswith(part + ".")) and len(part) > best_length:
                best, best_length = index, len(part)
    return best


def test_the_server_imports_only_from_the_parts_below_it() -> None:
    graph = import_graph(SOURCE_ROOTS, ["model_server"])
    assert all(layer_of(module) >= 0 for module in graph), "every module belongs to a part"

    upward = {
        module: sorted(t for t in targets if layer_of(t) > layer_of(module))
        for module, targets in graph.items()
        if any(layer_of(t) > layer_of(module) for t in targets)
    }

    assert upward == {}
