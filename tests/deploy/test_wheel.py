"""The wheel carries everything an installation needs: templates, static files, migrations."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "clubstack"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: hatchling comes from the dev extra, so the build needs no download.
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    wheels = list(out.glob("clubstack-*.whl"))
    assert len(wheels) == 1
    return zipfile.ZipFile(wheels[0])


def _package_files(folder: str) -> set[str]:
    return {
        f"clubstack/{path.relative_to(PACKAGE).as_posix()}"
        for path in (PACKAGE / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.mark.parametrize("folder", ["templates", "static", "migrations"])
def test_wheel_contains_every_data_file(wheel: zipfile.ZipFile, folder: str) -> None:
    expected = _package_files(folder)
    assert expected, f"src/clubstack/{folder} is empty"
    missing = expected - set(wheel.namelist())
    assert not missing, f"not in the wheel: {sorted(missing)}"


def test_wheel_has_the_essentials_and_the_console_script(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for name in (
        "clubstack/templates/base.html",
        "clubstack/static/clubstack.css",
        "clubstack/migrations/env.py",
        "clubstack/migrations/script.py.mako",
        "clubstack/migrations/versions/core/core_0001_initial.py",
    ):
        assert name in names, name
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "clubstack = clubstack.cli:main" in wheel.read(entry_points).decode()
    assert not any(n.startswith(("tests/", "clubstack/tests/")) for n in names)
