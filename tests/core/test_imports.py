"""Imports point one way: service -> core. Read from the source (AST), so an import hidden in a
function body, or a module path handed to importlib, counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import clubstack.core

CORE = Path(clubstack.core.__file__).parent
# What the core may import of clubstack: itself and the settings. Not the app, the CLI, the
# server, the worker, the service registry or any service.
ALLOWED = ("clubstack.core", "clubstack.settings")


def _module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, relative ones resolved, plus every
    "clubstack...." string given to importlib.import_module (an f-string by its fixed start)."""
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from clubstack import app` imports clubstack.app
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
        ):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
            elif isinstance(arg, ast.JoinedStr) and arg.values:
                head = arg.values[0]
                if isinstance(head, ast.Constant) and isinstance(head.value, str):
                    # f"clubstack.{name}": whatever name is, it is not the core
                    found.append((node.lineno, head.value + "?"))
    return found


def _forbidden(module: str) -> bool:
    if module != "clubstack" and not module.startswith("clubstack."):
        return False
    return not any(module == a or module.startswith(a + ".") for a in ALLOWED)


def core_violations() -> list[str]:
    problems = []
    for path in sorted(CORE.rglob("*.py")):
        for line, module in _imported(path):
            if module == "clubstack":  # `from clubstack import x`: x is checked on its own
                continue
            if _forbidden(module):
                problems.append(f"{path.relative_to(CORE.parent)}:{line} imports {module}")
    return problems


def test_core_imports_no_service_and_not_the_app() -> None:
    assert core_violations() == []


def test_the_scan_sees_every_kind_of_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan finds what it must refuse: a plain import of the app, a service imported in a
    function body, a relative import climbing out of core, a service named to importlib."""
    fake = tmp_path / "clubstack" / "core"
    (fake / "accounts").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "accounts" / "__init__.py").write_text("")
    (fake / "a.py").write_text("import clubstack.app\nfrom clubstack.core import db\n")
    (fake / "b.py").write_text("def f():\n    from clubstack.drop.views import bp\n")
    (fake / "accounts" / "c.py").write_text("from ...blog import comments\n")
    (fake / "d.py").write_text(
        "import importlib\nimportlib.import_module(f'clubstack.{name}')\n"
        "importlib.import_module('clubstack.core.net')\n"
    )
    (fake / "e.py").write_text("from clubstack import services\nfrom clubstack import settings\n")
    monkeypatch.setattr(f"{__name__}.CORE", fake)
    found = {line.split(" imports ")[1] for line in core_violations()}
    assert found == {
        "clubstack.app",
        "clubstack.drop.views",
        "clubstack.drop.views.bp",
        "clubstack.blog",
        "clubstack.blog.comments",
        "clubstack.?",
        "clubstack.services",
    }
