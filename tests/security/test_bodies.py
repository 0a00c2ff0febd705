"""Oversize and malformed bodies on every JSON API that takes one (read from app.url_map):
a clear 413 or 400 in JSON, never a 500, and no traceback in the log."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from tests.security.conftest import BLOG_ORIGIN, Visitor
from tests.security.test_access import new_token

WRITES = {"POST", "PUT", "PATCH"}
# The comments API and drop are anonymous; the rest take the member's token. The webhooks
# are JSON too, but answer 400 to anything unsigned before they parse (test_webhooks.py).
SKIP = {"billing.stripe_webhook", "billing.btcpay_webhook"}


@pytest.fixture
def app(make_app: Any) -> Any:
    # A small contest source limit, so the submit API's own (larger) body limit is near the
    # core's and an oversize body stays a few megabytes.
    # Rate limits high enough for a dozen bad bodies per route from one address.
    many = "1000/minute"
    return make_app(
        blog_origin=BLOG_ORIGIN,
        blog_min_submit_seconds=0,
        contest_source_bytes=1000,
        blog_rate=many,
        contest_submit_rate=many,
        contest_break_rate=many,
        drop_create_rate=many,
        lookup_rate_limit=many,
    )


def _json_writes(app: Any) -> list[tuple[str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIP:
            continue
        if "/api/" not in rule.rule and not rule.rule.startswith("/drop/"):
            continue
        if rule.endpoint.startswith("drop.") and rule.endpoint != "drop.index":
            continue  # drop takes a body only where it creates a message
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", "x" * 22, rule.rule)
        methods = {"POST"} if rule.endpoint == "drop.index" else rule.methods & WRITES
        for method in sorted(methods):
            found.append((method, path))
    return sorted(found)


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    traced = [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert traced == [], traced


def _json_error(answer: Any, statuses: tuple[int, ...]) -> None:
    assert answer.status_code in statuses, (
        answer.request.method,
        answer.url,
        answer.status_code,
        answer.text[:300],
    )
    assert answer.headers["Content-Type"].startswith("application/json"), answer.url
    body = answer.json()
    assert body.get("error") and body.get("message"), body
    assert "Traceback" not in answer.text


def test_every_json_api_is_found(app):
    routes = _json_writes(app)
    assert ("POST", "/lookup/api/lookups") in routes and ("POST", "/drop/") in routes
    assert len(routes) >= 9, routes


def test_oversize_bodies_get_413_in_json(app, member_a, caplog):
    caplog.set_level(logging.WARNING)
    token, _ = new_token(member_a)
    anonymous = Visitor(member_a.base)
    big = b'{"x": "' + b"a" * 3_000_000 + b'"}'
    for method, path in _json_writes(app):
        for client, headers in ((member_a, {"Authorization": f"Bearer {token}"}), (anonymous, {})):
            answer = client.request(
                method,
                path,
                data=big,
                headers={
                    **headers,
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                },
            )
            _json_error(answer, (413,))
    _no_traceback(caplog)


# Each is wrong in its own way; none is a request a client could mean.
MALFORMED = [
    ("application/json", b'{"indicators": ['),  # cut short
    ("application/json", b"{'single': 'quotes'}"),
    ("application/json", b"[]"),  # not an object
    ("application/json", b'"a string"'),
    ("application/json", b"null"),
    ("application/json", b"42"),
    ("application/json", b""),
    ("application/json", b"\xff\xfe{\x00}"),  # not UTF-8
    ("application/json", b'{"message": 1e999999, "path": 1e999999}'),
    (
        "application/json",
        b'{"message": ["a"], "text": {"b": 1}, "indicators": "c", '
        b'"body": [], "source": {}, "key": [], "action": {}, "name": []}',
    ),
    ("application/xml", b"<a>&lol;</a>"),
]


def test_malformed_bodies_get_400_in_json(app, member_a, caplog):
    caplog.set_level(logging.WARNING)
    token, _ = new_token(member_a)
    for method, path in _json_writes(app):
        for content_type, body in MALFORMED:
            answer = member_a.request(
                method,
                path,
                data=body,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": content_type,
                    "Accept": "application/json",
                },
            )
            # 404: the route needs an object that is not there (an edit of comment xxx...).
            _json_error(answer, (400, 404, 415, 422))
    _no_traceback(caplog)
