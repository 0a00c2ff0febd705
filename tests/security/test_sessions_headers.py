"""Sessions and headers as a browser sees them: cookie flags, a cookie from before the login or
after the logout is worth nothing, and every kind of answer carries the security headers."""

from __future__ import annotations

import re

from tests.conftest import link_in, outbox_messages
from tests.security.conftest import Visitor, http_login

SESSION = "clubstack_session"


def _cookie_header(answer) -> str:
    return "; ".join(v for k, v in answer.raw.headers.items() if k.lower() == "set-cookie")


def test_session_cookie_flags(app, visitor):
    client = visitor()
    header = _cookie_header(client.get("/login"))
    assert header.startswith(SESSION + "=")
    assert "HttpOnly" in header and "SameSite=Lax" in header


def test_a_cookie_from_before_login_or_after_logout_is_worth_nothing(app, site, visitor):
    victim = visitor()
    victim.get("/login")
    planted = victim.cookies.get(SESSION)  # what an attacker could have planted or copied
    assert planted
    http_login(victim, app, "alice@example.org", nickname="alice")
    assert victim.cookies.get(SESSION) != planted
    logged_in = victim.cookies.get(SESSION)
    attacker = Visitor(site.url)
    attacker.cookies.set(SESSION, planted)
    assert attacker.get("/account").status_code == 302
    # Logging out ends the session on the server: a copy of the cookie is dead too.
    answer = victim.post("/logout", data={"csrf_token": victim.csrf("/account")})
    assert answer.status_code in (302, 303)
    thief = Visitor(site.url)
    thief.cookies.set(SESSION, logged_in)
    answer = thief.get("/account")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login")
    # A forged cookie (not signed with the secret key) is ignored, not an error.
    forger = Visitor(site.url)
    forger.cookies.set(SESSION, logged_in[:-4] + "AAAA")
    assert forger.get("/account").status_code == 302


def test_a_login_link_works_once(app, visitor):
    first = visitor()
    first.post("/login", data={"email": "alice@example.org", "csrf_token": first.csrf("/login")})
    link = link_in(outbox_messages(app)[-1])
    path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    tokens = []
    for client in (first, visitor()):
        html = client.get(path).text
        token = re.search(r'name="token" value="([^"]+)"', html)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)
        if token and csrf:
            tokens.append(
                client.post(
                    "/login/confirm", data={"token": token.group(1), "csrf_token": csrf.group(1)}
                ).status_code
            )
    assert tokens[0] == 302
    assert 302 not in tokens[1:]


HEADERS = {
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("DENY",),
    "Referrer-Policy": ("same-origin", "no-referrer"),  # drop sends none at all
}


def test_every_kind_of_answer_carries_the_security_headers(member_a, visitor):
    anonymous = visitor()
    answers = {
        "page": member_a.get("/account"),
        "anonymous page": anonymous.get("/"),
        "redirect": anonymous.get("/account"),
        "404 page": anonymous.get("/nothing-here"),
        "JSON API": member_a.get("/api/me"),
        "JSON error": anonymous.get("/api/me"),
        "405": anonymous.put("/login"),
        "static file": anonymous.get("/static/clubstack.css"),
        "drop": anonymous.get("/drop/"),
        "feed": anonymous.get("/contest/feed.atom"),
    }
    for what, answer in answers.items():
        for name, values in HEADERS.items():
            assert answer.headers.get(name) in values, (what, name, answer.headers.get(name))
        policy = answer.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in policy, (what, policy)
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, (what, policy)
        assert "Server-Timing" not in answer.headers
