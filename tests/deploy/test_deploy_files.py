"""The deploy/ files say what docs/operations.md promises: gunicorn as `clubstack serve`,
hardened systemd units, a non-root image that carries every role (the contest sandbox too), and
a compose file that runs every role and exposes only the web container."""

from __future__ import annotations

import re
import runpy
import subprocess
from pathlib import Path

import pytest
import yaml

from clubstack.server import gunicorn_options

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _gunicorn_conf(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict:
    for name in ("CLUBSTACK_BIND", "CLUBSTACK_WEB_WORKERS", "CLUBSTACK_WEB_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))


def test_gunicorn_config_matches_clubstack_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = _gunicorn_conf(monkeypatch)
    expected = gunicorn_options("127.0.0.1", 8000, None, 4)
    for key, value in expected.items():
        assert conf[key] == value, key
    assert conf["wsgi_app"] == "clubstack.app:create_app()"


def test_gunicorn_config_takes_address_and_sizes_from_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf = _gunicorn_conf(
        monkeypatch,
        CLUBSTACK_BIND="unix:/run/clubstack/web.sock",
        CLUBSTACK_WEB_WORKERS="3",
        CLUBSTACK_WEB_THREADS="1",
    )
    assert conf["bind"] == "unix:/run/clubstack/web.sock"
    assert conf["workers"] == 3
    assert conf["worker_class"] == "sync"  # one thread: gunicorn_options picks sync
    assert conf["reuse_port"] is False  # a unix socket path can be bound by one worker only
    assert _gunicorn_conf(monkeypatch)["reuse_port"] is True  # TCP: a socket per worker


def _unit(name: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.parametrize("name", ["clubstack-web.service", "clubstack-worker.service"])
def test_systemd_units_run_unprivileged_and_hardened(name: str) -> None:
    unit = _unit(name)
    assert unit["User"] == ["clubstack"]
    for option in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "RestrictSUIDSGID"):
        assert unit[option] == ["yes"], option
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ReadWritePaths"] == ["/var/lib/clubstack"]
    assert unit["CapabilityBoundingSet"] == [""]
    assert "@system-service" in unit["SystemCallFilter"]
    assert unit["EnvironmentFile"] == ["/etc/clubstack/clubstack.env"]


def test_web_unit_migrates_before_starting_gunicorn_with_the_deploy_config() -> None:
    unit = _unit("clubstack-web.service")
    assert unit["ExecStartPre"] == ["/opt/clubstack/venv/bin/clubstack db upgrade"]
    assert unit["ExecStart"][0].endswith("gunicorn -c /opt/clubstack/deploy/gunicorn.conf.py")


def test_dockerfile_installs_the_wheel_and_runs_as_non_root() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    assert any("python -m build --wheel" in line for line in lines)
    text = "\n".join(lines)
    assert "pip install" in text and "/tmp/clubstack-*.whl" in text  # the wheel, not -e
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    cmd = [line for line in lines if line.startswith("CMD ")][-1]  # the last CMD counts
    assert "clubstack db upgrade" in cmd and "gunicorn -c" in cmd


def test_compose_exposes_only_web_and_keeps_data_on_internal_network() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert [name for name, s in services.items() if s.get("ports")] == ["web"]
    assert compose["networks"]["internal"]["internal"] is True
    for name in ("db", "redis"):
        assert services[name]["networks"] == ["internal"], name
        assert "ports" not in services[name] and "expose" not in services[name]
    for name in ("web", "worker"):
        assert "internal" in services[name]["networks"]
        assert services[name]["read_only"] is True
        assert services[name]["cap_drop"] == ["ALL"]


ROOT = DEPLOY.parent
SANDBOX_NEEDS = {"bubblewrap", "gcc", "libgmp-dev"}  # what the contest sandbox worker runs


def _dockerfile_lines() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_every_file_the_dockerfile_copies_exists() -> None:
    copies = [line.split()[1:-1] for line in _dockerfile_lines() if line.startswith("COPY ")]
    sources = [s for args in copies if not any(a.startswith("--from") for a in args) for s in args]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"deploy/Dockerfile copies {source}, which is missing"
    # .dockerignore lets exactly those into the build context (no venv, instance or .git).
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore and allowed == {source.rstrip("/") for source in sources}


def _system_packages(*roles: str) -> set[str]:
    listed = subprocess.run(
        ["bash", str(ROOT / "scripts" / "system-packages"), "--list", *roles],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return set(listed.stdout.split())


def test_image_installs_what_the_sandbox_needs_from_the_one_package_list() -> None:
    lines = _dockerfile_lines()
    runtime = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    assert "COPY scripts/system-packages /opt/clubstack/scripts/system-packages" in runtime
    calls = [
        line.split("scripts/system-packages", 1)[1].split("&&")[0].split()
        for line in runtime
        if line.startswith("RUN ") and "scripts/system-packages " in line
    ]
    assert calls, "the final image does not call scripts/system-packages"
    installed = _system_packages(*[role for call in calls for role in call])
    assert installed >= SANDBOX_NEEDS, SANDBOX_NEEDS - installed
    # The one list: no package names written into the Dockerfile itself.
    assert not any("apt-get" in line or "apt " in line for line in lines)


def _make_run_roles() -> list[list[str]]:
    """The long-running `clubstack ...` processes `make run` starts, besides the web server."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    commands = re.findall(r"\$\(VENV\)/bin/clubstack ([a-z ]+?)(?: &|;|$)", recipe, re.M)
    return [c.split() for c in commands if c.split()[0] not in ("serve", "db")]


def test_compose_runs_every_role_and_the_operations_guide_names_them() -> None:
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    roles = _make_run_roles()
    assert ["worker"] in roles and ["contest", "worker"] in roles
    commands = {name: s.get("command") for name, s in services.items()}
    for role in roles:
        assert ["clubstack", *role] in commands.values(), f"no compose service runs {role}"
    assert "command" not in services["web"]  # the image's CMD: migrate, then gunicorn
    guide = (ROOT / "docs" / "operations.md").read_text()
    for name in ("web", "worker", "sandbox"):
        assert f"`{name}`" in guide, f"docs/operations.md does not name the {name} service"


def test_compose_sandbox_gets_the_job_store_only_and_documented_security_options() -> None:
    sandbox = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["sandbox"]
    assert sandbox["command"] == ["clubstack", "contest", "worker"]
    assert "env_file" not in sandbox  # no secret key, database URL or API keys
    assert set(sandbox["environment"]) >= {"CLUBSTACK_REDIS_URL"}
    assert not any("DATABASE" in name for name in sandbox["environment"])
    assert sandbox["networks"] == ["internal"]
    assert sandbox["read_only"] is True and sandbox["cap_drop"] == ["ALL"]
    guide = (ROOT / "docs" / "operations.md").read_text()
    for option in [*sandbox["security_opt"], *sandbox["cap_add"]]:
        assert option in guide, f"docs/operations.md does not explain {option}"
