from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SAMPLES = Path(__file__).parent / "samples"


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
