"""Absolute URLs the site hands out (a drop's address, feeds, API links) come from the
configured CLUBSTACK_BASE_URL. A client that sends a forged Host header (or reaches the app
through a proxy that passes it on) must not get its own host written into them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.security.conftest import Visitor

BASE = "http://club.example.org"
EVIL = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app(base_url=BASE)


def test_a_drop_address_uses_the_base_url(visitor: Callable[[], Visitor]) -> None:
    answer = visitor().post("/drop/", data=b"hello", headers={**EVIL, "Content-Type": "text/plain"})
    assert answer.status_code == 201, answer.text
    data = answer.json()
    assert data["url"].startswith(f"{BASE}/drop/msg/"), data
    assert data["raw_url"].startswith(f"{BASE}/drop/msg/"), data
    assert answer.headers["Location"].startswith(f"{BASE}/drop/msg/")
    page = visitor().get("/drop/", headers=EVIL).text
    assert "evil.example" not in page and f"{BASE}/drop/" in page


def test_feeds_use_the_base_url(visitor: Callable[[], Visitor]) -> None:
    reader = visitor()
    for path in ("/contest/feed.atom", "/blog/comments/feed.xml?path=/a/"):
        answer = reader.get(path, headers=EVIL)
        assert answer.status_code == 200, (path, answer.status_code)
        assert "evil.example" not in answer.text, path
        assert BASE in answer.text, path
