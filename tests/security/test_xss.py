"""Stored XSS: payloads in every field a user writes, rendered on every page that shows them,
in a real Chromium. A payload that ran would call alert() (a dialog) or leave an element
marked data-xss in the DOM; neither may happen. The DOM check does not lean on the CSP: it
fails on markup that was not escaped even when the policy stops the script.

Fields the app validates strictly (nicknames, capsul names, challenge names) are refused over
HTTP and then written to the database as they are, to prove the pages escape them anyway."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import update

from clubstack.core.accounts.models import User
from clubstack.core.db import db
from tests.conftest import make_admin
from tests.security import seed
from tests.security.conftest import BLOG_ORIGIN, Visitor, http_login
from tests.security.test_access import new_token

A = "alice@example.org"
# Short enough for a 64-character token name; each marks itself so the DOM check can find it.
IMG = "\"'><img src=x onerror=alert(1) data-xss>"
SCRIPT = "<script data-xss>alert(2)</script>"
SVG = "<svg onload=alert(3) data-xss>"
PAYLOAD = IMG + SCRIPT + SVG


@pytest.fixture
def app(make_app: Any) -> Any:
    return make_app(blog_origin=BLOG_ORIGIN, blog_min_submit_seconds=0)


class Browser:
    """One Chromium context carrying a visitor's cookies; records every dialog."""

    def __init__(self, browser: Any, base: str, cookies: Any = ()) -> None:
        self.base = base
        self.context = browser.new_context()
        self.context.add_cookies([{"name": c.name, "value": c.value, "url": base} for c in cookies])
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.dialogs: list[str] = []

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        self.page.on("dialog", on_dialog)

    def check(self, path: str, shown: bool = True) -> None:
        """Open PATH: no dialog, no live payload element, and (if SHOWN) the payload as text."""
        self.page.goto(self.base + path, wait_until="load")
        self.assert_inert(path, shown)

    def assert_inert(self, where: str, shown: bool = True) -> None:
        self.page.wait_for_timeout(50)  # let onerror/onload handlers fire, if any would
        live = self.page.evaluate("document.querySelectorAll('[data-xss]').length")
        assert live == 0, f"payload markup is live on {where}"
        assert self.dialogs == [], f"a payload ran on {where}: {self.dialogs}"
        if shown:
            assert "data-xss" in self.page.inner_text("body"), f"payload not shown on {where}"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def chromium(browser: Any, site: Any) -> Iterator[Any]:
    made: list[Browser] = []

    def open_as(visitor: Visitor | None = None) -> Browser:
        made.append(Browser(browser, site.url, visitor.cookies if visitor else ()))
        return made[-1]

    yield open_as
    for one in made:
        one.close()


def _set_nickname(app: Any, address: str, nickname: str) -> None:
    with app.app_context():
        session = db.session()
        session.execute(update(User).where(User.email == address).values(nickname=nickname))
        session.commit()


def test_member_fields_are_inert_on_every_page(app, visitor, member_a, chromium):
    # Refused over HTTP ...
    answer = member_a.post(
        "/account/nickname", data={"nickname": IMG, "csrf_token": member_a.csrf("/account")}
    )
    assert answer.status_code == 400
    # ... and harmless had it got in by another way.
    _set_nickname(app, A, PAYLOAD)
    new_token(member_a, name=IMG)
    seed.ssh_key(app, A, name=PAYLOAD)
    capsul = seed.capsul(app, A, name=PAYLOAD)
    challenge_name = "c" + IMG.replace("/", "")
    seed.challenge(app, A, challenge_name, published=True, public_key="02" + "cd" * 32)
    draft = seed.challenge(app, A, "d" + SVG, published=False)
    batch = seed.lookup_batch(app, A, value="https://evil.example/?q=" + IMG, kind="url")
    me = chromium(member_a)
    for path in (
        "/account",
        "/compute/",
        f"/compute/capsuls/{capsul}",
        f"/compute/capsuls/{capsul}/destroy",
        f"/compute/capsuls/{capsul}/console",
        "/compute/keys",
        "/contest/",
        "/contest/challenges",
        "/contest/mine",
        f"/contest/challenges/{quote(challenge_name, safe='')}",
        f"/contest/submissions/{draft}",
        "/contest/bananas",
        f"/lookup/batches/{batch}",
    ):
        me.check(path)
    # Pages that show a payload without being about it: the header's account link, 404s.
    for path in (
        "/billing/",
        "/lookup/",
        "/contest/challenges/" + quote(IMG, safe=""),
        "/drop/msg/" + quote(IMG, safe=""),
    ):
        me.check(path, shown=False)
    # What the administrators see.
    admin = visitor()
    make_admin(app, "root@example.org")
    http_login(admin, app, "root@example.org", nickname="sysop")
    boss = chromium(admin)
    for path in (
        "/admin/users",
        "/compute/admin",
        "/billing/admin/",
        "/contest/challenges",
        f"/contest/submissions/{draft}",
    ):
        boss.check(path, shown=path != "/billing/admin/")


def test_lookup_input_is_inert_on_the_preview(member_a, chromium):
    me = chromium(member_a)
    # Recognised: a URL carrying the payload in its query.
    me.page.goto(me.base + "/lookup/")
    me.page.fill("#f-text", "https://evil.example/?q=" + PAYLOAD)
    me.page.click("form[action$='/lookup/preview'] button[type=submit]")
    me.page.wait_for_load_state("load")
    me.assert_inert("the preview", shown=False)
    assert "evil[.]example" in me.page.inner_text("body") or "evil.example" in me.page.content()
    # Not recognised: the text comes back in the form, as text.
    me.page.goto(me.base + "/lookup/")
    me.page.fill("#f-text", PAYLOAD)
    me.page.click("form[action$='/lookup/preview'] button[type=submit]")
    me.page.wait_for_load_state("load")
    me.assert_inert("the preview's error page", shown=False)
    assert me.page.input_value("#f-text") == PAYLOAD


def test_drop_messages_are_inert(visitor, chromium):
    sender = visitor()
    made = sender.post("/drop/", json={"message": PAYLOAD}).json()
    reader = chromium()
    reader.check(f"/drop/msg/{made['message_id']}")
    reader.check(f"/drop/msg/{made['message_id']}/raw")


def test_comments_are_inert_where_they_are_shown(app, visitor, chromium):
    poster = visitor()
    form = poster.get("/blog/api/comments", params={"path": "/p/"}).json()["form_token"]
    for website in ('https://x.example/"><img src=x onerror=alert(4) data-xss>', ""):
        answer = poster.post(
            "/blog/api/comments",
            json={
                "path": "/p/",
                "author": PAYLOAD[:80],
                "website": website,
                "form_token": form,
                "body": PAYLOAD + "\n\n[link](javascript:alert(5))",
            },
        )
        assert answer.status_code in (201, 400), answer.text
    # A javascript: website is refused, not stored.
    refused = poster.post(
        "/blog/api/comments",
        json={
            "path": "/p/",
            "author": "x",
            "body": "y",
            "website": "javascript:alert(6)",
            "form_token": form,
        },
    )
    assert refused.status_code == 400
    reader = chromium()
    reader.check("/blog/comments?path=/p/")
    reader.check("/blog/")
    for link in reader.page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
        assert not link.lower().startswith("javascript:"), link
    admin = visitor()
    make_admin(app, "root@example.org")
    http_login(admin, app, "root@example.org", nickname="sysop")
    chromium(admin).check("/blog/admin/comments")


def test_reflected_parameters_are_inert(app, visitor, member_a, chromium):
    """Query parameters that pages echo back (a path, a reply id, a search, a sort)."""
    q = quote(PAYLOAD, safe="")
    anonymous = chromium()
    for path in (
        f"/blog/comments?path=/{q}",
        f"/blog/comments?path=/p/&reply={q}",
        f"/login?next={q}",
        f"/login?next=/{q}",
        f"/drop/?message={q}",
    ):
        anonymous.check(path, shown=False)
    batch = seed.lookup_batch(app, A)
    me = chromium(member_a)
    for path in (
        f"/lookup/batches/{batch}?sort={q}&dir={q}",
        f"/billing/ledger?kind={q}&q={q}",
        f"/compute/create?name={q}",
        f"/contest/submit?source={q}",
    ):
        me.check(path, shown=False)
    admin = visitor()
    make_admin(app, "root@example.org")
    http_login(admin, app, "root@example.org", nickname="sysop")
    boss = chromium(admin)
    for path in (
        f"/billing/admin/?q={q}&sort={q}",
        f"/admin/users?q={q}",
        f"/billing/admin/payments?status={q}",
    ):
        boss.check(path, shown=False)
