"""The direction of imports (docs/architecture.md, "Packages"): the transport
layer and the runtime build on the core and never on each other, the core on
neither (but where it composes them), and the runtime serves no HTTP."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The modules that compose the layers, and so may import all of them.
COMPOSERS = {"hub/app.py", "hub/__main__.py", "agents_runtime/__main__.py"}
FORBIDDEN = {
    "hub": {"http_api", "agents_runtime"},
    "http_api": {"agents_runtime"},
    "agents_runtime": {"http_api"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def _modules(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        if name not in COMPOSERS:
            yield name, path


def test_layers_import_downwards_only():
    crossings = [
        f"{name} imports {sorted(_imports(path) & FORBIDDEN[package])}"
        for package in FORBIDDEN
        for name, path in _modules(package)
        if _imports(path) & FORBIDDEN[package]
    ]
    assert not crossings, "\n".join(crossings)


def test_the_runtime_serves_no_http():
    """Routes, apps and sites belong to the transport layer."""
    serving = ("add_route", "add_get", "add_post", "add_static", "Application(", "TCPSite(")
    found = [
        f"{name}: {word}"
        for name, path in _modules("agents_runtime")
        for word in serving
        if word in path.read_text()
    ]
    assert not found, found
