"""The package's folders follow the data: no import cycles, lower layers never import higher ones,
modules stay small, and the old documented import paths keep working."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "llm_audit_langchain"
MAX_LINES = 450
# Modules allowed over MAX_LINES, each because one class needs the room (its docstring says why).
LONG_MODULES = {"capture/handler.py", "pipeline/worker.py"}

# What each layer may import from the package (besides itself). The model modules at the top of
# the package are importable from everywhere.
MODEL = {"events", "errors", "config", "context", "schema", "forksafe"}
ALLOWED = {
    "events": {"errors"},
    "errors": set(),
    "forksafe": set(),
    "config": {"errors"},
    "context": {"errors", "forksafe"},
    "schema": {"events"},
    "enrich": MODEL,
    "privacy": MODEL,
    "exporters": MODEL,
    "pipeline": MODEL | {"enrich", "privacy", "exporters"},
    "capture": MODEL | {"enrich", "pipeline", "exporters", "alerts"},
    "alerts": MODEL,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path) -> set[str]:
    """Package modules imported by ``path`` at run time (any depth, TYPE_CHECKING excluded)."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    if name == "":
        package = []
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
            elif (node.module or "").startswith("llm_audit_langchain"):
                base = []
                node = ast.ImportFrom(module=node.module.partition(".")[2] or None,
                                      names=node.names, level=0)
            else:
                return
            target = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                candidate = f"{target}.{alias.name}" if target else alias.name
                found.add(candidate if _exists(candidate) else target)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    found.discard(name)
    return {m for m in found if _exists(m)}


def _exists(module: str) -> bool:
    if module == "":
        return True
    base = PACKAGE.joinpath(*module.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == "" or nxt not in graph:
                continue  # the package root re-exports; nothing below imports it (tested below)
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                walk(nxt, stack)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [])
    assert cycles == []


def test_lower_layers_never_import_higher_ones() -> None:
    wrong = []
    for module, imported in _graph().items():
        layer = module.split(".")[0]
        if layer not in ALLOWED:
            continue
        for target in imported:
            top = target.split(".")[0]
            if top != layer and top not in ALLOWED[layer]:
                wrong.append(f"{module} imports {target or 'the package root'}")
    assert wrong == []


def test_modules_stay_small() -> None:
    long = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines())
            for p in PACKAGE.rglob("*.py") if len(p.read_text().splitlines()) > MAX_LINES}
    assert set(long) <= LONG_MODULES, long
    for name in long:
        doc = ast.get_docstring(ast.parse((PACKAGE / name).read_text())) or ""
        assert "one class" in doc, f"{name} must say why it is long"


def test_every_package_says_what_it_is_for() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, init


@pytest.mark.parametrize(("old", "new", "names"), [
    ("middleware", "capture.middleware", ["AuditMiddleware"]),
    ("sanitizer", "privacy.sanitizer", ["Sanitizer", "sanitize", "CaptureMode"]),
    ("pricing", "enrich.pricing", ["calculate_cost", "set_price_overrides"]),
    ("tree", "inspect.tree", ["render_trace", "trace_totals"]),
    ("cli", "inspect.cli", ["main", "build_parser"]),
    ("pipeline", "pipeline.worker", ["Pipeline"]),
])
def test_documented_old_paths_still_import(old: str, new: str, names: list[str]) -> None:
    before = importlib.import_module(f"llm_audit_langchain.{old}")
    after = importlib.import_module(f"llm_audit_langchain.{new}")
    for name in names:
        assert getattr(before, name) is getattr(after, name)


def test_public_api_is_unchanged() -> None:
    import llm_audit_langchain

    assert sorted(llm_audit_langchain.__all__) == sorted([
        "AuditCallbackHandler", "AuditConfig", "AuditError", "AuditEvent", "AuditEventType",
        "AuditLogExporter", "AuditedCheckpointSaver", "ConfigError", "EVENT_VERSION",
        "ErrorDetail", "ExportResult",
        "Exporter", "JsonlExporter", "MemoryExporter", "ReplayFixture", "SamplingPolicy",
        "Sanitizer", "StdoutExporter", "TraceContext", "TraceNotFoundError", "__version__",
        "audit_node",
        "audit_span", "calculate_cost", "current_traceparent", "emit", "get_default_handler",
        "record_feedback", "replay_trace", "sanitize", "set_default_handler", "verify",
    ])
    for name in llm_audit_langchain.__all__:
        assert getattr(llm_audit_langchain, name) is not None
