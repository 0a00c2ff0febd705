"""The one service list (clubstack.services): every service package is in it, and the settings,
the app, the CLI and the configuration table all read it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import clubstack
from clubstack import services
from clubstack.cli import main
from clubstack.core.service import Service
from clubstack.core.settings_doc import settings_table
from clubstack.settings import Settings

PACKAGE = Path(clubstack.__file__).parent


def test_every_service_package_is_registered_under_its_own_name() -> None:
    packages = {
        p.parent.name
        for p in PACKAGE.glob("*/__init__.py")
        if "\nservice = " in p.read_text() or '"service"' in p.read_text()
    }
    assert packages == set(services.REGISTRY)
    for name in services.REGISTRY:
        service = services.load(name)
        assert isinstance(service, Service) and service.name == name


def test_the_settings_accept_exactly_the_registered_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(services.REGISTRY, "extra", "clubstack.extra")
    monkeypatch.setenv("CLUBSTACK_SERVICES", "drop,extra")
    assert Settings().services == ["drop", "extra"]
    monkeypatch.setenv("CLUBSTACK_SERVICES", "drop,nosuch")
    with pytest.raises(ValueError, match="unknown service"):
        Settings()


def test_a_registered_package_that_is_not_installed_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(services.REGISTRY, "extra", "clubstack.extra")
    assert services.load("extra") is None
    assert [s.name for s in services.available()] == [n for n in services.REGISTRY if n != "extra"]


def test_the_cli_and_the_configuration_table_list_the_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A service added to the registry gets its command group and its settings section."""
    import click

    from clubstack.drop.settings import DropSettings

    extra = Service(
        name="extra",
        title="Extra",
        summary="",
        cli=click.Command("extra", callback=lambda: click.echo("extra ran")),
        settings=DropSettings,
    )
    monkeypatch.setitem(services.REGISTRY, "extra", "clubstack.extra")
    real_load = services.load
    monkeypatch.setattr(services, "load", lambda n: extra if n == "extra" else real_load(n))
    commands = CliRunner().invoke(main, ["--help"]).output
    assert all(name in commands for name in services.REGISTRY)
    assert CliRunner().invoke(main, ["extra"]).output == "extra ran\n"
    table = settings_table(services.available())
    sections = [line.split("**")[1] for line in table.splitlines() if line.startswith("| **")]
    assert sections == ["core", *services.REGISTRY]


def test_the_app_mounts_the_enabled_services_in_the_settings_order(make_app: Any) -> None:
    app = make_app(services="drop,blog")
    assert [s.name for s in app.extensions["clubstack.services"]] == ["drop", "blog"]
    assert {bp for bp in app.blueprints} == {"accounts", "drop", "blog"}


def test_json_routes_live_in_the_service_s_api_module(make_app: Any) -> None:
    app = make_app()
    misplaced = []
    for rule in app.url_map.iter_rules():
        service = rule.endpoint.split(".")[0]
        if "/api/" not in rule.rule or service not in services.REGISTRY:
            continue
        module = app.view_functions[rule.endpoint].__module__
        if module != f"clubstack.{service}.api":
            misplaced.append((rule.rule, module))
    assert misplaced == []
    drop_modules = {
        app.view_functions[r.endpoint].__module__
        for r in app.url_map.iter_rules()
        if r.endpoint.startswith("drop.") and r.endpoint != "drop.static"
    }
    assert drop_modules == {"clubstack.drop.api"}


def test_importing_an_api_module_adds_no_route(tmp_path: Path) -> None:
    """Routes join a blueprint only when the service's __init__ adds them (explicitly, once)."""
    import subprocess
    import sys

    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    bp = importlib.import_module(f'clubstack.{name}.views').bp\n"
        "    before = len(bp.deferred_functions)\n"
        "    api = importlib.import_module(f'clubstack.{name}.api')\n"
        "    assert len(bp.deferred_functions) == before, name\n"
        "    api.routes.add_to(bp)\n"
        "    assert len(bp.deferred_functions) > before, name\n"
    )
    names = list(services.REGISTRY)
    done = subprocess.run(
        [sys.executable, "-c", code, *names], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
