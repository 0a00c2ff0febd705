"""A real browser on the contest pages: the chart renders without JavaScript, on a phone."""

from __future__ import annotations

import io
import shutil
from datetime import timedelta

import pytest

from clubstack.core import clock
from tests.conftest import csrf_token, login

from .conftest import SAMPLES

pytestmark = pytest.mark.usefixtures("sandbox_ready")
AES_KEY = "2b7e151628aed2a6abf7158809cf4f3c"


@pytest.fixture
def app(make_app):
    return make_app(contest_kind="aes", contest_random_vectors=10, contest_title="Browser cup")


def test_index_chart_and_challenge_page_on_a_phone(app, live_server, browser, tmp_path):
    owner = app.test_client()
    login(owner, app, "designer@example.org", nickname="designer")
    token = csrf_token(owner, "/contest/submit")
    response = owner.post("/contest/submit", content_type="multipart/form-data", data={
        "csrf_token": token, "key": AES_KEY,
        "file": (io.BytesIO((SAMPLES / "aes_sample.c").read_bytes()), "a.c")})
    assert response.status_code == 302
    clock.travel(timedelta(hours=12))
    context = browser.new_context(viewport={"width": 390, "height": 844},
                                  java_script_enabled=False)
    page = context.new_page()
    page.goto(live_server.url + "/contest/")
    assert page.locator("h1").inner_text() == "Browser cup"
    chart = page.locator("svg.chart")
    assert chart.is_visible() and chart.locator("polyline").count() == 1
    assert "strawberries" in (chart.locator("desc").text_content() or "").lower()
    # nothing wider than the phone's screen except inside scrollable tables
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1
    shot = tmp_path / "contest-index.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copy(shot, "/tmp/contest-index.png")
    page.get_by_role("link", name="Challenges").first.click()
    page.locator("table a").first.click()
    assert "Challenge" in page.locator("h1").inner_text()
    assert page.get_by_role("link", name="Download the source").is_visible()
    context.close()
