"""Cross-site requests: every state-changing route (read from app.url_map) refuses a logged-in
member's request that lacks the CSRF token, with 400 and no change; cookie-authenticated JSON
needs the token too; and only the blog's own origin gets CORS headers, only on its API."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import outbox_messages
from tests.security.conftest import BLOG_ORIGIN, Visitor

WRITES = {"POST", "PUT", "PATCH", "DELETE"}

# Routes that take writes without a CSRF token, each for a reason (docs/security.md):
# provider callbacks carry a signature; drop is anonymous and token-based; the comments API
# is called cross-origin by the static blog and authorised by signed edit tokens; a one-click
# unsubscribe (RFC 8058) is authorised by its signed token.
EXEMPT = {
    "billing.stripe_webhook",
    "billing.btcpay_webhook",
    "blog.api_post",
    "blog.api_change",
    "blog.unsubscribe",
    "drop.index",
    "drop.message",
    "drop.raw",
    "drop.openapi",
}


def _path(rule: Any) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if type(rule._converters[name]).__name__ == "IntegerConverter":
            return "1"
        return "approve" if name == "action" else "x" * 22

    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", value, rule.rule)


def _writes(app: Any) -> list[tuple[str, str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods & WRITES):
            found.append((rule.endpoint, method, _path(rule)))
    return sorted(found)


def _csrf_refused(answer: Any) -> bool:
    if answer.status_code != 400:
        return False
    if answer.headers.get("Content-Type", "").startswith("application/json"):
        return answer.json().get("error") == "csrf_failed"
    return "did not come from this site" in answer.text


def _state(app: Any, member: Visitor) -> tuple[str, int, int]:
    account = member.get("/account")
    assert account.status_code == 200, "the member was logged out or deleted"
    tokens = len(re.findall(r"/account/tokens/\d+/revoke", account.text))
    return account.text.count("alice"), tokens, len(outbox_messages(app))


def test_every_write_without_a_token_is_refused_and_changes_nothing(app, member_a):
    before = _state(app, member_a)
    let_through = set()
    checked = 0
    for endpoint, method, path in _writes(app):
        # What a forged cross-site form would send: the member's cookie, plausible fields.
        form = {
            "nickname": "mallory",
            "email": "mallory@example.net",
            "name": "forged",
            "amount": "20.00",
            "action": "stop",
            "text": "example.org",
            "key": "00",
        }
        answer = member_a.request(method, path, data=form)
        if _csrf_refused(answer):
            checked += 1
        else:
            let_through.add(endpoint)
        # Cookie-authenticated JSON, as a script on another site could send with fetch().
        answer = member_a.request(method, path, json={"name": "forged", "action": "stop"})
        if not _csrf_refused(answer):
            let_through.add(endpoint)
    assert let_through == EXEMPT
    assert checked >= 30
    assert _state(app, member_a) == before


def test_the_token_from_the_page_is_what_lets_a_write_through(member_a):
    csrf = member_a.csrf("/account")
    refused = member_a.post("/account/tokens", data={"name": "x", "csrf_token": "forged"})
    assert _csrf_refused(refused)
    other = Visitor(member_a.base)
    other.get("/login")  # a session of its own: its token is no good for the member
    foreign = other.csrf("/login")
    assert _csrf_refused(
        member_a.post("/account/tokens", data={"name": "x", "csrf_token": foreign})
    )
    assert (
        member_a.post("/account/tokens", data={"name": "x", "csrf_token": csrf}).status_code == 201
    )
    # JSON with the cookie passes with the token in the header, and only then.
    body = {"name": "laptop", "public_key": "not a key"}
    assert _csrf_refused(member_a.post("/compute/api/ssh-keys", json=body))
    answer = member_a.post("/compute/api/ssh-keys", json=body, headers={"X-CSRFToken": csrf})
    assert answer.status_code == 400 and answer.json()["error"] != "csrf_failed"


# --- CORS of the comments API ------------------------------------------------------------


def test_the_blog_origin_gets_cors_headers_on_the_comments_api(visitor):
    client = visitor()
    answer = client.get(
        "/blog/api/comments", params={"path": "/p/"}, headers={"Origin": BLOG_ORIGIN}
    )
    assert answer.headers["Access-Control-Allow-Origin"] == BLOG_ORIGIN
    assert "Origin" in answer.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in answer.headers
    preflight = client.options(
        "/blog/api/comments",
        headers={
            "Origin": BLOG_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["Access-Control-Allow-Origin"] == BLOG_ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "content-type" in preflight.headers["Access-Control-Allow-Headers"].lower()


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://blog.example.org.evil.example",
        "null",
        BLOG_ORIGIN + ":8080",
        BLOG_ORIGIN.upper(),
    ],
)
def test_other_origins_get_no_cors_headers(visitor, origin):
    client = visitor()
    answers = [
        client.get("/blog/api/comments", params={"path": "/p/"}, headers={"Origin": origin}),
        client.options(
            "/blog/api/comments",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        ),
        client.options(
            "/blog/api/comments/" + "x" * 22,
            headers={"Origin": origin, "Access-Control-Request-Method": "DELETE"},
        ),
    ]
    for answer in answers:
        assert "Access-Control-Allow-Origin" not in answer.headers, answer.url
        assert "Access-Control-Allow-Methods" not in answer.headers


def test_no_other_page_or_api_is_open_to_the_blog_origin(member_a):
    for path in (
        "/api/me",
        "/compute/api/capsuls",
        "/billing/api/v1/balance",
        "/lookup/api/lookups/x",
        "/contest/api/challenges",
        "/blog/comments?path=/p/",
        "/account",
    ):
        answer = member_a.get(path, headers={"Origin": BLOG_ORIGIN})
        assert "Access-Control-Allow-Origin" not in answer.headers, path
        assert "Access-Control-Allow-Credentials" not in answer.headers, path
