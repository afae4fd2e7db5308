"""The shape of the code, read from its syntax tree (pure and fast: nothing is imported or run).

- No function or method under services/ and shared/ is longer than MAX_LINES: a blueprint is built
  from small route groups, one module per audience, not from one closure holding every view.
- Flask stays at the HTTP edge. A module may import flask, flask_smorest or werkzeug only when it
  is an HTTP edge module, which its name says: ``api``, ``web``, ``views``, ``pages``,
  ``bootstrap`` or ``auth`` (the request's credentials), a name beginning with ``api_`` or ending
  with ``_api`` or ``_auth``, or any module inside a ``web`` or ``http`` package. Everything else —
  the domain, the services, storage, messaging — can be used and tested without a request.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCOPE = ("services", "shared", "sim")
MAX_LINES = 80
WEB_PACKAGES = {"flask", "flask_smorest", "werkzeug"}
EDGE_NAME = re.compile(r"^(api|web|views|pages|bootstrap|auth)$|^api_|_(api|auth)$")
EDGE_PACKAGES = {"web", "http"}


def _modules():
    for top in SCOPE:
        for path in sorted((ROOT / top).rglob("*.py")):
            yield path.relative_to(ROOT)


def _tree(path: Path) -> ast.Module:
    return ast.parse((ROOT / path).read_text(encoding="utf-8"), filename=str(path))


def is_edge(path: Path) -> bool:
    return bool(EDGE_NAME.search(path.stem)) or bool(EDGE_PACKAGES & set(path.parts[:-1]))


def long_functions(tree: ast.Module, limit: int = MAX_LINES) -> list[tuple[str, int, int]]:
    """(name, first line, length) of every function or method longer than ``limit`` lines, nested
    ones included (a nested view counts towards the function that holds it, and on its own)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found.append((node.name, node.lineno, length))
    return found


def web_imports(tree: ast.Module) -> list[str]:
    """The web packages a module imports, at any depth (an import inside a function counts too)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [name for name in names if name.split(".")[0] in WEB_PACKAGES]
    return found


def test_the_scan_sees_the_code():
    modules = list(_modules())
    assert len(modules) > 50
    assert any(is_edge(m) for m in modules) and not all(is_edge(m) for m in modules)


@pytest.mark.parametrize("path", list(_modules()), ids=str)
def test_no_function_is_longer_than_the_limit(path):
    too_long = long_functions(_tree(path))
    assert not too_long, f"{path}: split these (name, line, length): {too_long}"


@pytest.mark.parametrize("path", [m for m in _modules() if not is_edge(m)], ids=str)
def test_a_domain_module_does_not_import_the_web_framework(path):
    imported = web_imports(_tree(path))
    assert not imported, f"{path} imports {imported}: move the HTTP part into an *_api module"


# -- the scan itself ------------------------------------------------------------------------------

def test_a_long_nested_view_is_found_in_its_builder():
    views = "\n".join(f"    def view_{i}():\n        return {i}\n" for i in range(30))
    found = long_functions(ast.parse(f"def build():\n{views}    return None\n"))
    assert [name for name, _, _ in found] == ["build"]


def test_a_function_of_exactly_the_limit_passes():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES - 1))
    assert long_functions(ast.parse(f"def f():\n{body}\n")) == []
    assert len(long_functions(ast.parse(f"def f():\n{body}\n    x = 0\n"))) == 1


def test_web_imports_are_found_however_they_are_written():
    source = ("import flask\nfrom flask_smorest import abort\nfrom werkzeug.http import X\n"
              "def f():\n    from flask import request\nfrom .flask import y\nimport flaskish\n")
    assert web_imports(ast.parse(source)) == ["flask", "flask_smorest", "werkzeug.http", "flask"]


@pytest.mark.parametrize("path,edge", [
    ("services/escalation/api.py", True), ("services/escalation/department_api.py", True),
    ("services/escalation/api_support.py", True), ("services/intake/resident_auth.py", True),
    ("shared/web.py", True), ("shared/auth.py", True), ("services/x/web/views_of_x.py", True),
    ("services/intake/loop.py", False), ("services/notify/service.py", False),
    ("services/dispatch/supervision/figures.py", False), ("shared/apis.py", False),
])
def test_the_edge_rule(path, edge):
    assert is_edge(Path(path)) is edge
