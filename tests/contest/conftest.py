from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import backend_missing

# The starter programs members download are the tests' honest samples: one copy of each.
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "clubstack" / "contest" / "starters"


@pytest.fixture(scope="session")
def sandbox_ready() -> None:
    """bubblewrap, gcc and GMP must be installed (a skip on a dev machine, a failure in CI)."""
    for tool in ("bwrap", "gcc"):
        if shutil.which(tool) is None:
            backend_missing(tool, "not installed (apt-get install bubblewrap gcc libgmp-dev)")
    if not any(
        Path(p).exists()
        for p in ("/usr/lib/x86_64-linux-gnu/libgmp.a", "/usr/lib/aarch64-linux-gnu/libgmp.a")
    ):
        backend_missing("libgmp-dev", "static GMP library missing (apt-get install libgmp-dev)")


@pytest.fixture(scope="session")
def static_program(tmp_path_factory):
    """Compile a small trusted C test program statically with the host compiler."""
    base = tmp_path_factory.mktemp("static")
    counter = iter(range(10_000))

    def build(source: str) -> bytes:
        n = next(counter)
        src = base / f"p{n}.c"
        src.write_text(source)
        out = base / f"p{n}"
        subprocess.run(["gcc", "-static", "-O1", "-w", str(src), "-o", str(out)], check=True)
        return out.read_bytes()

    return build
