"""pyproject.toml declares every library src/ imports, and src/ imports every library it declares
(or the declaration says why not), so nothing runs on another package's transitive dependency
and nothing is installed that nothing uses."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).parents[1]
RUNTIME_EXTRAS = ("postgres", "mysql", "redis", "compute")

# Declared but never imported by name: what loads them instead.
USED_WITHOUT_IMPORT = {
    "psycopg": "SQLAlchemy's postgresql+psycopg driver",
    "pymysql": "SQLAlchemy's mysql+pymysql driver",
}


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = project["dependencies"] + [r for e in RUNTIME_EXTRAS for r in extras[e]]
    return {_name(r) for r in requirements}


def imported_modules() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "src" / "clubstack").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"clubstack", "__future__"}


def imported_distributions() -> dict[str, set[str]]:
    by_module = packages_distributions()
    return {
        module: {_name(dist) for dist in by_module.get(module, [module])}
        for module in imported_modules()
    }


def test_every_imported_library_is_declared() -> None:
    names = declared()
    undeclared = {
        module: dists for module, dists in imported_distributions().items() if not dists & names
    }
    assert undeclared == {}


def test_every_declared_library_is_imported() -> None:
    used = set().union(*imported_distributions().values())
    assert declared() - used - set(USED_WITHOUT_IMPORT) == set()


def _closure(roots: list[str]) -> set[str]:
    """The distributions `roots` (requirement strings) install, from the installed metadata."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [(Requirement(root), "") for root in roots]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = _name(requirement.name)
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            needs = requires(name) or []
        except PackageNotFoundError:
            continue  # not for this platform or Python (its marker said so above)
        for extra_name in sorted(requirement.extras) or [""]:
            todo.extend((Requirement(need), extra_name) for need in needs)
    return {key.split("[")[0] for key in seen}


def test_constraints_hold_only_what_the_extras_install() -> None:
    """Every pinned package is pulled in by pyproject's dependencies and extras, and every
    package they pull in is pinned (the locked set CI tests)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    roots = project["dependencies"] + [
        r for extra in project["optional-dependencies"].values() for r in extra
    ]
    pinned = {
        _name(line.split("==")[0])
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    installed = _closure(roots) - {"clubstack", "pip"}  # pip freeze leaves the installer out
    assert sorted(pinned - installed) == [], "pinned but nothing installs it"
    assert sorted(installed - pinned) == [], "installed but not pinned"
