"""`clubstack drop post` and `clubstack drop get` against a live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from clubstack.cli import main
from clubstack.drop.cli import decrypt, encrypt_text
from tests.conftest import LiveServer, free_port


@pytest.fixture
def server(app: Any) -> Iterator[LiveServer]:
    live = LiveServer(app)
    yield live
    live.stop()


def test_post_a_file_and_get_it_back(server: LiveServer, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("meet at the club, 8pm\n")
    runner = CliRunner()
    posted = runner.invoke(
        main, ["drop", "post", str(note), "--expires", "1h", "--server", f"{server.url}/drop"]
    )
    assert posted.exit_code == 0, posted.output
    url = posted.stdout.strip()
    assert url.startswith(f"{server.url}/drop/msg/")
    assert "delete token: " in posted.stderr
    got = runner.invoke(main, ["drop", "get", url])
    assert got.exit_code == 0, got.output
    assert got.stdout == "meet at the club, 8pm\n"


def test_post_stdin_with_burn_reads_once(server: LiveServer) -> None:
    runner = CliRunner()
    posted = runner.invoke(
        main, ["drop", "post", "-", "--burn", "--server", f"{server.url}/drop"], input="once only"
    )
    assert posted.exit_code == 0, posted.output
    url = posted.stdout.strip()
    first = runner.invoke(main, ["drop", "get", url])
    assert first.exit_code == 0 and first.stdout == "once only\n"
    second = runner.invoke(main, ["drop", "get", url])
    assert second.exit_code == 1
    assert "404" in second.output


def test_default_server_is_the_configured_base_url(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clubstack.settings import clear_settings_cache

    monkeypatch.setenv("CLUBSTACK_BASE_URL", server.url)
    clear_settings_cache()
    posted = CliRunner().invoke(main, ["drop", "post", "-"], input="via base_url")
    assert posted.exit_code == 0, posted.output
    assert posted.stdout.startswith(f"{server.url}/drop/msg/")


def test_encrypted_post_keeps_the_key_out_of_the_server(server: LiveServer, app: Any) -> None:
    runner = CliRunner()
    posted = runner.invoke(
        main,
        ["drop", "post", "-", "--encrypt", "--server", f"{server.url}/drop"],
        input="cli secret",
    )
    assert posted.exit_code == 0, posted.output
    url = posted.stdout.strip()
    address = url.split("#", 1)[0]
    stored = runner.invoke(main, ["drop", "get", address])
    assert stored.exit_code == 1 and "no #key" in stored.output
    got = runner.invoke(main, ["drop", "get", url])
    assert got.exit_code == 0 and got.stdout == "cli secret\n"


def test_cli_errors_are_clear(server: LiveServer) -> None:
    runner = CliRunner()
    bad = runner.invoke(main, ["drop", "post", "-", "--expires", "soon", "--server", server.url])
    assert bad.exit_code == 2 and "--expires" in bad.output
    binary = runner.invoke(
        main, ["drop", "post", "-", "--server", f"{server.url}/drop"], input=b"\xff\xfe"
    )
    assert binary.exit_code == 1 and "UTF-8" in binary.output
    down = runner.invoke(
        main, ["drop", "get", f"http://127.0.0.1:{free_port()}/drop/msg/" + "a" * 22]
    )
    assert down.exit_code == 1 and "cannot reach" in down.output
    assert "Usage" in runner.invoke(main, ["drop", "--help"]).output


def test_encryption_round_trip_matches_the_page_format() -> None:
    body, key = encrypt_text("ünïcødé")
    assert body.startswith("clubstack-e2e:v1:") and "ünïcødé" not in body
    assert decrypt(body, key) == "ünïcødé"
