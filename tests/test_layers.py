"""The house's layering rules (docs/architecture.md), checked on the source as the interpreter
would import it: module-level imports only (``if TYPE_CHECKING:`` blocks and function bodies
are not run at import time), resolved to the modules of the project.

- no import cycle between the project's modules;
- ``graphql_schema/`` imports no SQLAlchemy, no model and no session factory;
- ``adapters/`` imports nothing of ``app/`` or ``providers/``, ``geo/`` nothing of the others;
- ``app/platform/`` imports no domain, no interface and nothing of ``providers/`` (only the
  vehicle's pure record, app/vehicle.py);
- ``providers/`` imports only the platform modules of ``app/``, never a domain package;
- an import inside a function has its reason written beside it (a comment above it in the
  function, or on its line);
- no source file of the project's packages, its scripts or the web app's sources is over
  ``MAX_LINES`` lines (issue 17: a file a newcomer can read through). Tests, migrations and
  benchmarks are not among them, nor is the generated ``schema.graphql``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "adapters", "geo", "graphql_schema", "providers")
MAX_LINES = 600
# Where the size rule looks, besides the packages: hand-written code only (web/dist is built).
SIZED_SOURCES = (("scripts", "*"), ("web/src", "*.*"), ("web/scripts", "*.mjs"))

# What providers/ may import of app/: the platform, not the domains (search, booking, fleet,
# accounts, live updates, GBFS publishing) nor the runtime that assembles them.
PROVIDERS_MAY_IMPORT = frozenset(
    {
        "app.platform",
        # The data every layer shares: the models, the vehicle's home and its index, the
        # reference cache (providers, vehicle types, pricing plans).
        "app.models",
        "app.reference",
        "app.vehicle",
        "app.vehicle_index",
    }
)


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    imports: set[str] = field(default_factory=set)  # every module-level import, as written


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_nodes(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run when the module is imported (not function or class bodies'
    functions, not TYPE_CHECKING blocks)."""
    for node in body:
        if isinstance(node, ast.If):
            if not _is_type_checking(node):
                yield from _import_time_nodes(node.body)
            yield from _import_time_nodes(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _import_time_nodes(block)
            for handler in node.handlers:
                yield from _import_time_nodes(handler.body)
        elif isinstance(node, ast.ClassDef):
            yield from _import_time_nodes(node.body)
        else:
            yield node


def _load() -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = _module_name(path)
            modules[name] = Module(name, path, ast.parse(path.read_text(), str(path)))
    for module in modules.values():
        for node in _import_time_nodes(module.tree.body):
            if isinstance(node, ast.Import):
                module.imports.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    module.imports.add(sub if sub in modules else node.module)
    return modules


MODULES = _load()


def _project_edges(module: Module) -> set[str]:
    edges = set()
    for target in module.imports:
        # `import a.b.c` runs a, a.b and a.b.c: the nearest project module is the edge.
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target and target != module.name:
            edges.add(target)
    return edges


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    graph = {name: _project_edges(m) for name, m in MODULES.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def _imports_under(prefix: str) -> Iterator[tuple[str, str]]:
    for name, module in MODULES.items():
        if name == prefix or name.startswith(prefix + "."):
            for target in sorted(module.imports):
                yield name, target


def _within(target: str, *packages: str) -> bool:
    return any(target == p or target.startswith(p + ".") for p in packages)


def test_the_rules_see_the_whole_project() -> None:
    # A loader that found nothing would pass every rule below.
    assert {"app.runtime", "graphql_schema.context", "providers.sync", "adapters.dto"} <= set(
        MODULES
    )
    assert "app.platform.settings" in _project_edges(MODULES["app.runtime"])


def test_there_is_no_import_cycle() -> None:
    assert _cycles() == []


def test_the_graphql_schema_holds_no_database_access() -> None:
    offending = [
        (name, target)
        for name, target in _imports_under("graphql_schema")
        if _within(target, "sqlalchemy", "geoalchemy2", "asyncpg", "app.models", "app.platform.db")
    ]
    assert offending == []


def test_adapters_and_geo_import_nothing_above_them() -> None:
    assert [(n, t) for n, t in _imports_under("adapters") if _within(t, "app", "providers")] == []
    assert [
        (n, t)
        for n, t in _imports_under("geo")
        if _within(t, "app", "providers", "adapters", "graphql_schema")
    ] == []


def test_the_platform_imports_no_domain() -> None:
    offending = [
        (name, target)
        for name, target in _imports_under("app.platform")
        if _within(target, "app", "providers", "graphql_schema")
        # The vehicle's record (pure, no I/O) names the index's document format.
        and not _within(target, "app.platform", "app.vehicle")
    ]
    assert offending == []


def test_providers_import_only_the_platform_of_app() -> None:
    offending = [
        (name, target)
        for name, target in _imports_under("providers")
        if _within(target, "app") and not _allowed_for_providers(target)
    ]
    assert offending == []


def _allowed_for_providers(target: str) -> bool:
    """``target`` or a package above it (below ``app`` itself) is on the list."""
    parts = target.split(".")
    return any(".".join(parts[:n]) in PROVIDERS_MAY_IMPORT for n in range(2, len(parts) + 1))


def test_an_import_inside_a_function_says_why() -> None:
    unexplained = []
    for module in MODULES.values():
        lines = module.path.read_text().splitlines()
        for func in ast.walk(module.tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if not isinstance(node, ast.Import | ast.ImportFrom):
                    continue
                line = lines[node.lineno - 1]
                before = lines[func.lineno - 1 : node.lineno - 1]
                if "#" not in line and not any(s.strip().startswith("#") for s in before):
                    unexplained.append(f"{module.path.relative_to(ROOT)}:{node.lineno}")
    assert unexplained == []


def _sized_files() -> list[Path]:
    files = [m.path for m in MODULES.values()]
    for folder, pattern in SIZED_SOURCES:
        files.extend(p for p in (ROOT / folder).rglob(pattern) if p.is_file())
    return sorted(files)


def test_no_source_file_is_over_the_size_limit() -> None:
    files = _sized_files()
    assert any(p.suffix == ".mjs" for p in files)  # the web sources were found too
    oversized = {
        str(p.relative_to(ROOT)): n
        for p in files
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert oversized == {}
