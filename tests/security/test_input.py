"""Malformed input: every one is a 400 with a reason, never a 500 with a traceback in the log,
and never a mail header built from it."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.conftest import outbox_messages


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert bad == [], [r.getMessage() for r in bad]


def bomb(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_deeply_nested_json_is_a_400(site, visitor, caplog, depth):
    answer = visitor().post(
        "/blog/api/comments", data=bomb(depth), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    assert "nests deeper" in answer.json()["message"]
    no_traceback(caplog)


def test_nested_json_is_refused_by_every_json_api(site, member_a, caplog):
    """The bound lives in the core's JSON parsing, so APIs of other services have it too."""
    body = '{"indicators": ' + bomb(100) + "}"
    answer = member_a.post(
        "/lookup/api/lookups",
        data=body,
        headers={"Content-Type": "application/json", "X-CSRFToken": member_a.csrf("/account")},
    )
    assert answer.status_code == 400, answer.text
    assert "nests deeper" in answer.json()["message"]
    no_traceback(caplog)


def test_ordinary_json_still_works(site, visitor):
    answer = visitor().get("/blog/api/comments", params={"path": "/2021/hello/"})
    assert answer.status_code == 200


BAD_ADDRESSES = [
    "=?utf-8?q?a=0D=0Abcc=3A_evil=40x.example?=@example.org",  # CRLF inside an encoded word
    "=?utf-8?q?a=40x.example=2C_b=40y.example?=@example.org",  # becomes three recipients
    "=?utf-8?b?YUB4LmV4YW1wbGUsYkB5LmV4YW1wbGU=?=@example.org",
    "a\x00b@example.org",
    "a\rb@example.org",
    "a\nBcc: evil@x.example@example.org",
    "a\x07@example.org",
    "a\x85@example.org",
    "a\u2028@example.org",
    "\u00e4@example.org",  # would leave as an encoded word in To (no SMTPUTF8)
]


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_login_with_a_malformed_address_is_a_400(app, site, visitor, caplog, address):
    one = visitor()
    answer = one.post("/login", data={"email": address, "csrf_token": one.csrf("/login")})
    assert answer.status_code == 400, answer.text
    assert "address" in answer.text
    assert outbox_messages(app) == []
    no_traceback(caplog)


@pytest.mark.parametrize("address", BAD_ADDRESSES[:3] + BAD_ADDRESSES[4:5])
def test_address_change_with_a_malformed_address_is_a_400(app, member_a, caplog, address):
    mails = len(outbox_messages(app))
    answer = member_a.post(
        "/account/email", data={"email": address, "csrf_token": member_a.csrf("/account")}
    )
    assert answer.status_code == 400, answer.text
    assert len(outbox_messages(app)) == mails
    no_traceback(caplog)


@pytest.mark.parametrize("address", BAD_ADDRESSES[:3])
def test_admin_invitation_with_a_malformed_address_is_a_400(site_admin, caplog, address):
    answer = site_admin.post(
        "/admin/users", data={"email": address, "csrf_token": site_admin.csrf("/admin/users")}
    )
    assert answer.status_code == 400, answer.text
    no_traceback(caplog)


@pytest.mark.parametrize("address", BAD_ADDRESSES[:3])
def test_blog_comment_with_a_malformed_address_is_a_400(site, visitor, caplog, address):
    one = visitor()
    answer = one.post(
        "/blog/api/comments",
        json={
            "path": "/2021/hello/",
            "author": "x",
            "body": "hi",
            "email": address,
            "notify": True,
        },
    )
    assert answer.status_code == 400, answer.text
    assert "email" in answer.json()["fields"]
    no_traceback(caplog)


def test_the_mailer_refuses_a_malformed_address_whatever_the_caller(app: Any) -> None:
    from clubstack.core.mail import MailError, send_mail

    with app.app_context(), pytest.raises(MailError):
        send_mail(BAD_ADDRESSES[1], "subject", "body")
    assert outbox_messages(app) == []


@pytest.mark.parametrize("value", ["/\r\nLocation: //evil.example", "/a\nb", "/a%0d%0ab"])
def test_next_with_a_line_break_is_a_400_on_every_login_page(site, visitor, caplog, value):
    one = visitor()
    csrf = one.csrf("/login")
    for answer in (
        one.get("/login", params={"next": value}),
        one.post("/login", data={"email": "x@example.org", "next": value, "csrf_token": csrf}),
        one.get("/login/confirm", params={"token": "x", "next": value}),
    ):
        if "%0d" in value:  # percent-encoded once more: a harmless literal path
            assert answer.status_code in (200, 410), answer.text
            continue
        assert answer.status_code == 400, answer.text
        assert "next" in answer.text
    no_traceback(caplog)
