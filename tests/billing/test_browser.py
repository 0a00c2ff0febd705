"""The member page in a real Chromium on a phone-sized screen: balance, runway, chart, no
horizontal scrolling, no CSP or script errors."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from clubstack.billing import ledger
from clubstack.core.accounts.models import User
from clubstack.core.db import db
from tests.billing.conftest import _latest_mail_to
from tests.conftest import link_in

pytestmark = pytest.mark.browser


def test_member_page_on_a_phone(app: Any, live_server: Any, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    failed: list[str] = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    try:
        page.goto(live_server.url + "/login?next=/billing/")
        page.fill("input[name=email]", "phone@example.org")
        page.click("button[type=submit]")
        page.wait_for_selector("text=/check your mail/i")
        link = link_in(_latest_mail_to(app, "phone@example.org"))
        page.goto(live_server.url + "/" + link.split("://", 1)[1].split("/", 1)[1])
        page.click("button:has-text('Log in')")
        with app.app_context():
            session = db.session()
            uid = session.scalar(select(User.id).where(User.email == "phone@example.org"))
            ledger.credit(
                session, uid, 3000, reason="Card payment", reference="t", idempotency_key="p1"
            )
            ledger.charge(
                session, uid, 450, reason="capsul hour", reference="t", idempotency_key="u1"
            )
            session.commit()
        page.goto(live_server.url + "/billing/")
        assert page.text_content("#balance") == "€25.50"
        chart = page.locator("svg.chart")
        assert chart.is_visible()
        assert chart.bounding_box()["width"] <= 390  # type: ignore[index]
        assert "capsul hour" in page.text_content("main")  # type: ignore[operator]
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.goto(live_server.url + "/billing/ledger?kind=usage")
        assert "capsul hour" in page.text_content("main")  # type: ignore[operator]
        assert "Card payment" not in page.text_content("table")  # type: ignore[operator]
    finally:
        context.close()
    # The browser asks every site for /favicon.ico, which the core does not serve (yet).
    failed = [url for url in failed if not url.endswith("/favicon.ico")]
    assert failed == []
    assert [p for p in problems if "404" not in p or failed] == []
