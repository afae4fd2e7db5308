"""The code's walls, read from the source (ast, no imports): a service uses the kernel (shared/),
never another service's package; shared/ never imports a service; the domain kernel is pure."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

# The repository root, wherever in tests/ this file lives.
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "services").is_dir() and (p / "shared").is_dir())
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists())
# The kernel is plain Python: no web framework, no storage, no broker, no validation library.
KERNEL_FORBIDDEN = ("flask", "flask_smorest", "marshmallow", "kombu", "pika", "pymongo", "shared.storage",
                    "shared.messaging", "shared.web", "shared.runtime", "services")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, relative imports resolved."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.append((node.lineno, module))
            # `from services import dispatch` names the package in the alias
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _python_files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def cross_service_imports() -> list[str]:
    bad = []
    for own in SERVICES:
        for path in _python_files(f"services/{own}"):
            for line, module in imported_modules(path):
                parts = module.split(".")
                if parts[0] == "services" and len(parts) > 1 and parts[1] != own:
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


def test_no_service_imports_another_service():
    assert cross_service_imports() == []


def test_shared_never_imports_a_service():
    bad = [f"{path.relative_to(ROOT)}:{line} imports {module}"
           for path in _python_files("shared") for line, module in imported_modules(path)
           if module == "services" or module.startswith("services.")]
    assert bad == []


def test_the_domain_kernel_is_pure():
    bad = [f"{path.relative_to(ROOT)}:{line} imports {module}"
           for path in _python_files("shared/domain") for line, module in imported_modules(path)
           if any(module == f or module.startswith(f + ".") for f in KERNEL_FORBIDDEN)]
    assert bad == []


# -- the checker itself sees what it must ---------------------------------------------------------

@pytest.mark.parametrize("source, expected", [
    ("from services.dispatch.sla import CATEGORIES\n", "services.dispatch.sla"),
    ("import services.dispatch.roster\n", "services.dispatch.roster"),
    ("from services import dispatch\n", "services.dispatch"),
    ("from ...dispatch import sla\n", "services.dispatch"),  # relative, from services/intake/sub/x.py
])
def test_the_checker_resolves_every_form_of_import(tmp_path, monkeypatch, source, expected):
    folder = tmp_path / "services" / "intake" / "sub"
    folder.mkdir(parents=True)
    path = folder / "x.py"
    path.write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert any(module == expected for _, module in imported_modules(path))


def test_relative_imports_inside_a_service_stay_inside(tmp_path, monkeypatch):
    folder = tmp_path / "services" / "dispatch" / "supervision"
    folder.mkdir(parents=True)
    path = folder / "board.py"
    path.write_text("from ..org import OrgRepository\nfrom .facts import quarter_of\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert [m for _, m in imported_modules(path)] == [
        "services.dispatch.org", "services.dispatch.org.OrgRepository",
        "services.dispatch.supervision.facts", "services.dispatch.supervision.facts.quarter_of"]
