"""The attack suite: every test drives the real app over HTTP (a live server on loopback),
as an attacker with a browser, curl or a script would. Shared pieces: the served app and
members logged in through the real magic-link flow, each with their own cookie jar."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests.conftest import LiveServer, link_in, make_admin, outbox_messages


class Visitor(requests.Session):
    """An HTTP client bound to one site: relative paths; redirects are followed only when a
    call says follow=True, so a test sees every Location the site answers with."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        target = url.decode() if isinstance(url, bytes) else url
        if target.startswith("/"):
            target = self.base + target
        kwargs["allow_redirects"] = kwargs.pop("follow", False)
        kwargs.setdefault("timeout", 30)
        return super().request(method, target, *args, **kwargs)

    def csrf(self, path: str) -> str:
        """The CSRF token of the form on PATH."""
        html = self.get(path).text
        match = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert match, f"no CSRF token on {path}"
        return match.group(1)


def http_login(visitor: Visitor, app: Any, address: str, nickname: str | None = None) -> None:
    """Log in over HTTP through the real flow: ask for a link, read the mail, confirm."""
    before = len(outbox_messages(app))
    answer = visitor.post("/login", data={"email": address, "csrf_token": visitor.csrf("/login")})
    assert answer.status_code == 200, answer.text
    url = link_in(outbox_messages(app)[before])
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    html = visitor.get(path).text
    token = re.search(r'name="token" value="([^"]+)"', html)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token and csrf, "no confirm form behind the login link"
    answer = visitor.post(
        "/login/confirm", data={"token": token.group(1), "csrf_token": csrf.group(1)}
    )
    assert answer.status_code == 302, answer.text
    if nickname:
        answer = visitor.post(
            "/account/nickname",
            data={"nickname": nickname, "csrf_token": visitor.csrf("/account")},
        )
        assert answer.status_code == 302, answer.text


BLOG_ORIGIN = "http://blog.example.org"


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    """The default app, with the blog's comments API opened to one origin and no minimum
    time to fill in a comment form (a script posts at once)."""
    return make_app(blog_origin=BLOG_ORIGIN, blog_min_submit_seconds=0)


@pytest.fixture
def site(app: Any) -> Iterator[LiveServer]:
    """The default app served over HTTP on a free loopback port."""
    server = LiveServer(app)
    yield server
    server.stop()


@pytest.fixture
def visitor(site: LiveServer) -> Iterator[Callable[[], Visitor]]:
    """visitor() -> a new anonymous client with its own cookie jar."""
    made: list[Visitor] = []

    def make() -> Visitor:
        made.append(Visitor(site.url))
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.fixture
def member_a(app: Any, visitor: Callable[[], Visitor]) -> Visitor:
    one = visitor()
    http_login(one, app, "alice@example.org", nickname="alice")
    return one


@pytest.fixture
def member_b(app: Any, visitor: Callable[[], Visitor]) -> Visitor:
    one = visitor()
    http_login(one, app, "bob@example.org", nickname="bob")
    return one


@pytest.fixture
def site_admin(app: Any, visitor: Callable[[], Visitor]) -> Visitor:
    one = visitor()
    make_admin(app, "root@example.org")
    http_login(one, app, "root@example.org", nickname="sysop")
    return one
