"""One list of Debian packages: scripts/system-packages. make run, make test, CI and the image
call it; no other file of the project names packages to install."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "system-packages"
INSTALL = re.compile(r"\bapt(?:-get)?\s+install\b((?:\s+[-\w.+=]+)+)")


def _list(*roles: str) -> set[str]:
    result = subprocess.run(
        [str(SCRIPT), "--list", *roles], capture_output=True, text=True, check=True, timeout=30
    )
    return set(result.stdout.split())


def test_each_role_lists_what_its_part_needs() -> None:
    assert {"bubblewrap", "gcc", "libgmp-dev"} <= _list("run")
    assert {"libvirt-dev", "pkg-config", "qemu-system-x86"} <= _list("compute")
    assert {"nginx", "python3-venv"} <= _list("host")
    assert {"libvirt-daemon-system", "openssh-server"} <= _list("vm-host")
    # the tests need everything the running suite needs, and their own tools
    assert _list("run", "compute", "host", "vm-host") <= _list("test")
    assert {"chromium", "nginx", "wrk"} <= _list("test")


def test_an_unknown_role_is_a_usage_error() -> None:
    result = subprocess.run([str(SCRIPT), "--list", "nope"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown role" in result.stderr


def test_without_root_or_sudo_it_prints_the_command_and_goes_on(tmp_path: Path) -> None:
    # dpkg-query says nothing is installed, id says we are not root, and there is no sudo
    for name, body in {
        "dpkg-query": "exit 1",
        "id": "echo 1000",
        "sudo": "exit 1",
    }.items():
        tool = tmp_path / name
        tool.write_text(f"#!/bin/sh\n{body}\n")
        tool.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}:/usr/bin:/bin")
    result = subprocess.run(
        ["bash", str(SCRIPT), "run"], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 0
    assert "apt-get install --no-install-recommends bubblewrap gcc" in result.stderr


def test_the_one_list_is_the_only_list() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "scripts/system-packages run" in makefile
    assert "scripts/system-packages test" in makefile
    assert "scripts/system-packages test" in (ROOT / ".ci" / "run").read_text()
    assert "system-packages run" in (ROOT / "deploy" / "Dockerfile").read_text()
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    lists = []
    for name in tracked:
        path = ROOT / name
        if name == "scripts/system-packages" or path.suffix in {".png", ".gz", ".whl"}:
            continue
        if not (name.startswith(("deploy/", "docs/", ".ci/", "scripts/")) or "/" not in name):
            continue  # source and tests only name a package in an error's hint
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if INSTALL.search(line):
                lists.append(f"{name}:{number}: {line.strip()}")
    assert lists == [], "Debian packages listed outside scripts/system-packages"
