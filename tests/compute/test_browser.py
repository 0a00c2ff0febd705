"""A member on a phone, without JavaScript, creates a capsul, reads its status and graphs,
and destroys it, in a real Chromium."""

from __future__ import annotations

import pytest

from tests.compute.conftest import user_id
from tests.conftest import LiveServer, login

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ann@laptop"


@pytest.mark.browser
def test_phone_without_javascript(compute_app, browser, ledger, hv):
    client = compute_app.test_client()
    login(client, compute_app, "ann@example.org", nickname="ann")
    ledger.credit(user_id(compute_app, "ann@example.org"), 10_000)
    server = LiveServer(compute_app)
    context = browser.new_context(java_script_enabled=False, viewport={"width": 360, "height": 740})
    try:
        cookie = client.get_cookie(compute_app.config["SESSION_COOKIE_NAME"])
        context.add_cookies(
            [{"name": cookie.key, "value": cookie.value, "domain": "127.0.0.1", "path": "/"}]
        )
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{server.url}/compute/create")
        page.get_by_label("Name (the hostname)").fill("phone1")
        page.locator("input[name=plan][value=f1-xs]").check()
        page.get_by_label("Add a public key").fill(KEY)
        page.get_by_role("button", name="Create").click()
        page.wait_for_load_state()
        assert "/compute/capsuls/" in page.url, (page.url, page.inner_text("main")[:800])
        assert page.locator("#status").inner_text() == "running"
        charts = page.locator("svg[role=img]")
        assert charts.count() == 4
        assert charts.first.locator("title").text_content() == "CPU"
        # nothing sticks out sideways on a phone
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.get_by_role("button", name="Force off").click()
        assert "Force-off: the capsul is now stopped." in page.content()
        page.get_by_role("link", name="Destroy…").click()
        page.get_by_label("Type phone1 to confirm").fill("phone1")
        page.get_by_role("button", name="Destroy").click()
        page.wait_for_url("**/compute/")
        assert "was destroyed" in page.content()
    finally:
        context.close()
        server.stop()
