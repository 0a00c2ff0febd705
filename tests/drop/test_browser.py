"""End-to-end encryption in a real browser: the key stays in the fragment, the server keeps
ciphertext only, and a reader in a fresh browser context sees the plaintext."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from clubstack.core.db import db
from clubstack.drop.messages import E2E_PREFIX
from clubstack.drop.models import DropMessage

pytestmark = pytest.mark.browser

SECRET = "the door code is 4711 — ünïcødé too"


def test_encrypted_message_round_trip(app: Any, live_server: Any, page: Any, browser: Any) -> None:
    page.goto(f"{live_server.url}/drop/")
    encrypt_box = page.locator("#f-encrypt")
    assert encrypt_box.is_visible() and encrypt_box.is_checked()
    page.fill("#f-message", SECRET)
    page.click("button[type=submit]")
    link = page.locator("#result-link")
    link.wait_for(state="visible")
    url = link.get_attribute("href")
    assert url is not None and url.startswith(f"{live_server.url}/drop/msg/") and "#" in url
    key = url.split("#", 1)[1]
    assert page.locator("#result-token").inner_text().strip()
    assert page.input_value("#f-message") == ""

    with app.app_context():
        rows = db.session.scalars(select(DropMessage)).all()
        assert len(rows) == 1
        assert rows[0].body.startswith(E2E_PREFIX)
        assert "door code" not in rows[0].body and "4711" not in rows[0].body
        db.session.remove()
    log_file = Path(app.config["CLUBSTACK"].instance) / "logs" / "web.log"
    deadline = time.monotonic() + 10  # the core writes logs from a queue, a moment later
    while "POST /drop/ 201" not in (log := log_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "POST /drop/ 201" in log and key not in log

    reader = browser.new_context()
    try:
        other = reader.new_page()
        other.goto(url)
        other.wait_for_selector("#message-text[data-decrypted=true]")
        assert other.locator("#message-text").inner_text() == SECRET
        # without the key, the same page shows ciphertext and says why
        keyless = reader.new_page()
        keyless.goto(url.split("#", 1)[0])
        assert keyless.locator("#message-text").inner_text().startswith(E2E_PREFIX)
        assert "no key" in keyless.locator("#e2e-note").inner_text()
    finally:
        reader.close()


def test_an_encrypted_message_of_only_spaces_is_refused_in_the_page(
    app: Any, live_server: Any, page: Any
) -> None:
    page.goto(f"{live_server.url}/drop/")
    assert page.locator("#f-encrypt").is_checked()
    page.fill("#f-message", "   \n  ")
    page.locator("#f-message").evaluate("box => box.removeAttribute('required')")
    page.click("button[type=submit]")
    problem = page.locator("#drop-error")
    problem.wait_for(state="visible")
    assert "empty" in problem.inner_text()
    assert page.locator("#result").is_hidden()
    with app.app_context():
        assert db.session.scalars(select(DropMessage)).all() == []
        db.session.remove()


def test_plain_message_without_javascript(live_server: Any, browser: Any) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/drop/")
        assert not page.locator("#e2e").is_visible()
        page.fill("#f-message", "no script needed")
        page.check("#f-burn")
        page.click("button[type=submit]")
        url = page.locator("#message-url").inner_text()
        reader = context.new_page()
        reader.goto(url)
        assert reader.locator("#message-text").inner_text() == "no script needed"
        reader.goto(url)
        assert "There is no message here" in reader.content()
    finally:
        context.close()
