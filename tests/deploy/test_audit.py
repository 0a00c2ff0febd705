"""scripts/audit-dependencies: fails on a known vulnerability whenever a service can be asked,
and never passes as if it had checked when no service answered (offline, or a PyPI mirror
without vulnerability data, where pip-audit itself skips every package and says "no known
vulnerabilities").

pip-audit reaches its services at fixed addresses, so these tests put a stand-in `pip_audit`
module first on the path: it answers as pip-audit does (same options, same JSON report) for
the situation each test sets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "audit-dependencies"

FAKE_PIP_AUDIT = r"""
import json, os, sys

args = sys.argv[1:]
value = lambda option: args[args.index(option) + 1]
mode = os.environ["FAKE_AUDIT"]
service = value("--vulnerability-service")
if mode == "offline" or (mode == "osv-only" and service != "osv"):
    sys.exit("requests.exceptions.ConnectionError: Failed to resolve 'api.osv.dev'")
vulnerable = set(os.environ.get("FAKE_VULNERABLE", "jinja2").split(","))
dependencies = []
for line in open(value("--requirement")):
    name, _, version = line.strip().partition("==")
    if not name:
        continue
    if mode == "mirror":
        reason = f"Dependency not found on PyPI and could not be audited: {name} ({version})"
        dependencies.append({"name": name, "skip_reason": reason})
    elif name in vulnerable:
        vuln = {"id": "PYSEC-0000-1", "fix_versions": ["9.9"], "aliases": ["CVE-0000-1"]}
        dependencies.append({"name": name, "version": version, "vulns": [vuln]})
    else:
        dependencies.append({"name": name, "version": version, "vulns": []})
with open(value("--output"), "w") as report:
    json.dump({"dependencies": dependencies, "fixes": []}, report)
sys.exit(1 if any(d.get("vulns") for d in dependencies) else 0)
"""


def _audit(
    tmp_path: Path, mode: str, pins: str, *options: str, vulnerable: str = "jinja2"
) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "fake" / "pip_audit"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(FAKE_PIP_AUDIT)
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(pins)
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "fake"),
        "FAKE_AUDIT": mode,
        "FAKE_VULNERABLE": vulnerable,
    }
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--requirements", str(constraints), *options],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("service", ["works", "osv-only"])
def test_a_vulnerable_pin_fails_the_audit_even_where_offline_is_allowed(
    tmp_path: Path, service: str
) -> None:
    result = _audit(
        tmp_path, service, "flask==3.1.3\nrequests==2.0.0\n", "--allow-offline",
        vulnerable="jinja2,requests",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert "requests 2.0.0: PYSEC-0000-1 (CVE-0000-1); fixed in 9.9" in result.stdout
    assert "flask" not in result.stdout.split("FAILED")[0]


def test_a_clean_set_passes(tmp_path: Path) -> None:
    result = _audit(tmp_path, "works", "flask==3.1.3\nrequests==2.34.2\n")
    assert result.returncode == 0, result.stdout
    assert "audit: ok - 2 pinned packages" in result.stdout


@pytest.mark.parametrize("mode", ["offline", "mirror"])
def test_no_reachable_service_is_never_reported_as_a_pass(tmp_path: Path, mode: str) -> None:
    strict = _audit(tmp_path / "strict", mode, "requests==2.0.0\n", vulnerable="requests")
    assert strict.returncode == 3, strict.stdout
    assert "NOT DONE" in strict.stdout and "audit: ok" not in strict.stdout
    allowed = _audit(tmp_path / "ci", mode, "requests==2.0.0\n", "--allow-offline")
    assert allowed.returncode == 0, allowed.stdout  # CI on a closed network goes on ...
    assert "NOT DONE" in allowed.stdout  # ... and says the audit did not happen
