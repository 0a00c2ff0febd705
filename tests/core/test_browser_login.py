"""The whole login flow in Debian's Chromium: request a link, read the mail that reached a real
SMTP server, click the link in it, log in, see the account page, log out. Plus a phone-width
check that pages do not scroll sideways."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests.conftest import SMTPSink, free_port, link_in

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}


@pytest.fixture
def site(make_app: Callable[..., Any], smtp: SMTPSink) -> Iterator[str]:
    """The app on a live loopback server whose mails go to the real SMTP sink, with links
    pointing back at that server (base_url), as an operator would configure it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = make_app(smtp_url=smtp.url, base_url=base)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base
    server.shutdown()
    thread.join(timeout=10)


def _html_part(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/html":
            return part.get_payload(decode=True).decode()  # type: ignore[union-attr]
    raise AssertionError("the login mail has no HTML part")


def _log_in(page: Any, site: str, smtp: SMTPSink, address: str) -> None:
    page.goto(site + "/")
    page.get_by_role("link", name="Log in", exact=True).click()
    page.get_by_label("E-mail address").fill(address)
    page.get_by_role("button", name="Send me a login link").click()
    assert page.get_by_role("heading", name="Check your mail").is_visible()

    mails = smtp.wait_for(1)
    assert len(mails) == 1, "exactly one login mail reaches the SMTP server"
    mail = mails[0]
    assert mail["To"] == address
    assert "login link" in mail["Subject"]
    link = link_in(mail)
    assert link.startswith(site + "/login/confirm?token=")

    # Open the mail as a mail client would and click the link in it.
    page.set_content(_html_part(mail))
    page.get_by_role("link", name=re.compile(r"confirm\?token=")).click()
    page.wait_for_url(re.compile(r"/login/confirm\?token="))
    assert page.get_by_role("heading", name="Log in").is_visible()
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/account"))


def test_login_flow_in_a_real_browser(page: Any, site: str, smtp: SMTPSink) -> None:
    address = "grace@example.org"
    _log_in(page, site, smtp, address)

    assert page.get_by_role("heading", name="Your account").is_visible()
    assert page.get_by_text("You are logged in.").is_visible()
    assert page.locator("main").get_by_text(address).first.is_visible()

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/login"))
    assert page.get_by_text("You are logged out.").is_visible()
    assert page.get_by_role("link", name="Log in", exact=True).is_visible()
    page.goto(site + "/account")  # the session is gone: back to the login page
    assert "/login" in page.url
    assert page.get_by_role("heading", name="Log in or sign up").is_visible()


def test_a_used_link_does_not_log_in_twice(page: Any, site: str, smtp: SMTPSink) -> None:
    _log_in(page, site, smtp, "ada@example.org")
    link = link_in(smtp.messages[0])
    other = page.context.browser.new_context()
    try:
        second = other.new_page()
        second.goto(link)
        heading = second.get_by_role("heading", name="This link does not work any more")
        heading.wait_for(state="visible")
        assert second.get_by_role("button", name="Log in").count() == 0
    finally:
        other.close()


def _horizontal_overflow(page: Any) -> int:
    """How many CSS pixels the page is wider than the viewport (0 when it fits)."""
    return int(
        page.evaluate(
            "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
            " - window.innerWidth"
        )
    )


def test_pages_fit_a_phone_screen(browser: Any, site: str, smtp: SMTPSink, tmp_path: Path) -> None:
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(site + "/")
        page.screenshot(path=str(tmp_path / "landing.png"), full_page=True)
        assert _horizontal_overflow(page) <= 0, "the landing page scrolls sideways on a phone"

        _log_in(page, site, smtp, "a.rather.long.address.for.a.phone@members.example.org")
        # An API token makes the account page show its widest parts (table, token).
        page.get_by_label("Token name").fill("laptop")
        page.get_by_role("button", name=re.compile("Create")).click()
        assert page.locator("#new-token").is_visible()
        page.screenshot(path=str(tmp_path / "account.png"), full_page=True)
        assert _horizontal_overflow(page) <= 0, "the account page scrolls sideways on a phone"
    finally:
        context.close()
