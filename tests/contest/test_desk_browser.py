"""An organiser at the desk in a real browser, on a 360 px phone screen: rule on a challenge,
withdraw a break, announce, answer a question, freeze the board and rejudge."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest

from clubstack.core import clock
from tests.conftest import LiveServer, csrf_token, make_admin

from .test_desk import FAST, break_it, member, publish

pytestmark = pytest.mark.usefixtures("sandbox_ready")
PHONE = {"width": 360, "height": 740}


def fits_the_phone(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1


def test_the_desk_on_a_phone(make_app, page, tmp_path):
    app = make_app(**FAST, contest_title="Desk cup")
    designer = member(app, "designer@example.org", "designer")
    name = publish(app, designer)
    mallory = member(app, "mallory@example.org", "mallory")
    with clock.moved(timedelta(hours=12)):
        assert break_it(mallory, name).status_code == 302
    token = csrf_token(mallory, "/contest/questions")
    asked = mallory.post(
        "/contest/questions",
        data={"csrf_token": token, "question": "Is a 4 MB table allowed?", "challenge": name},
    )
    assert asked.status_code == 303
    make_admin(app, "boss@example.org")
    boss = member(app, "boss@example.org", "boss")
    cookie = boss.get_cookie("clubstack_session")
    server = LiveServer(app)
    try:
        page.set_viewport_size(PHONE)
        page.context.add_cookies(
            [{"name": "clubstack_session", "value": cookie.value, "url": server.url}]
        )
        page.goto(f"{server.url}/contest/")
        page.get_by_role("link", name="Organiser's desk").click()
        assert page.get_by_role("heading", name="Organiser's desk").is_visible()
        fits_the_phone(page)

        # rule on the challenge and withdraw its break
        page.locator("#desk-challenges").get_by_role("link", name=name).click()
        page.get_by_role("radio", name="Disqualify").check()
        page.get_by_label("Reason (shown publicly)").fill("The key sits in a side file.")
        page.get_by_role("button", name="Record the ruling").click()
        assert "ruling recorded" in page.locator(".flashes").inner_text()
        assert "disqualified" in page.locator("#desk-ruling").inner_text()
        page.get_by_label("Reason to withdraw it").fill("Found through a leaked log.")
        page.get_by_role("button", name="Withdraw this break").click()
        assert "withdrawn" in page.locator(".flashes").inner_text()
        assert page.get_by_text("No break.").is_visible()
        fits_the_phone(page)
        page.screenshot(path=str(tmp_path / "desk-challenge.png"), full_page=True)

        # announce
        page.get_by_role("navigation", name="Organiser's desk").get_by_role(
            "link", name="Announcements"
        ).click()
        page.get_by_label("Title").fill("Rejudge tonight")
        page.get_by_label("Text").fill("The harness changed; every aes challenge is rejudged.")
        page.get_by_role("button", name="Announce").click()
        assert page.get_by_role("heading", name="Rejudge tonight").is_visible()
        fits_the_phone(page)

        # answer the question, publicly
        page.get_by_role("navigation", name="Organiser's desk").get_by_role(
            "link", name="Questions"
        ).click()
        assert page.get_by_text("Is a 4 MB table allowed?").is_visible()
        page.get_by_label("Answer", exact=True).fill("Yes: only the object limit counts.")
        page.get_by_label("Make the question and answer public").check()
        page.get_by_role("button", name="Send the answer").click()
        assert "Everyone sees it" in page.locator(".flashes").inner_text()
        fits_the_phone(page)

        # freeze the public board now
        page.get_by_role("navigation", name="Organiser's desk").get_by_role(
            "link", name="Desk"
        ).click()
        page.get_by_role("button", name="Freeze now").click()
        assert "Frozen since" in page.locator("#freeze-state").inner_text()
        fits_the_phone(page)
        page.screenshot(path=str(tmp_path / "desk-index.png"), full_page=True)

        # rejudge that one challenge
        page.get_by_role("navigation", name="Organiser's desk").get_by_role(
            "link", name="Rejudge"
        ).click()
        page.get_by_label("One challenge (its name)").fill(name)
        page.get_by_label("Why (for the log)").fill("harness update")
        page.get_by_role("button", name="Rejudge").click()
        page.wait_for_url("**/contest/admin/rejudge/*")
        assert "Finished" in page.locator("#rejudge-state").inner_text()
        assert page.locator("#rejudge-items tbody tr").count() == 1
        fits_the_phone(page)
        page.screenshot(path=str(tmp_path / "desk-rejudge.png"), full_page=True)

        page.get_by_role("navigation", name="Organiser's desk").get_by_role(
            "link", name="Log"
        ).click()
        log = page.locator("table.desk-log").inner_text()
        for action in (
            "disqualified",
            "break_withdrawn",
            "announcement",
            "answered",
            "freeze_set",
            "rejudge",
        ):
            assert action in log
        fits_the_phone(page)

        # what a visitor sees, without JavaScript, on the same phone
        visitor = page.context.browser.new_context(viewport=PHONE, java_script_enabled=False)
        public = visitor.new_page()
        public.goto(f"{server.url}/contest/")
        assert public.get_by_role("heading", name="Rejudge tonight").is_visible()
        assert "The scoreboard is frozen" in public.locator("#freeze-note").inner_text()
        fits_the_phone(public)
        shot = tmp_path / "contest-overview-frozen.png"
        public.screenshot(path=str(shot), full_page=True)
        shutil.copy(shot, "/tmp/contest-desk-overview.png")
        visitor.close()
    finally:
        server.stop()
