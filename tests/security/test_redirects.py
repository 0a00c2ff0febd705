"""Open redirects: `next` must bring a member back to a page of this site, never elsewhere,
whatever a browser would make of the value (it drops tabs and newlines, reads `\\` as `/`)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

PAYLOADS = [
    "//evil.example/x",
    "///evil.example/x",
    "/\\evil.example/x",
    "\\\\evil.example/x",
    "/\t/evil.example/x",
    "\t//evil.example/x",
    " //evil.example/x",
    "/\n/evil.example/x",
    "/\r\n//evil.example/x",
    "\x00//evil.example/x",
    "https:evil.example/x",
    "https://evil.example/x",
    "http:/evil.example/x",
    "HTTPS://evil.example/x",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/%2F%2Fevil.example/x",
    "/%5Cevil.example/x",
    "/%09/evil.example/x",
    "//evil.example%2F@x",
    "/\u2028/evil.example",
    "evil.example/x",
    "//\u3000evil.example",
]


def where_a_browser_goes(site_url: str, location: str) -> str:
    """The host a browser ends up on: WHATWG URL parsing strips leading/trailing C0 controls
    and spaces, drops every tab and newline, and reads a backslash as a slash."""
    cleaned = re.sub(r"[\t\n\r]", "", location).strip("\x00- ").replace("\\", "/")
    return urlsplit(urljoin(site_url + "/login", cleaned)).netloc


def assert_stays_on_site(site_url: str, answer: Any) -> None:
    if answer.status_code == 400:
        return  # refused outright: nowhere to go
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert not re.search(r"[\x00-\x1f\x7f\\]", location), location
    assert location.startswith("/") and not location.startswith("//"), location
    assert where_a_browser_goes(site_url, location) == urlsplit(site_url).netloc, location


def test_the_reported_tab_payload_does_not_leave_the_site(site, member_a):
    answer = member_a.get("/login?next=/%09/evil.example/x")
    assert_stays_on_site(site.url, answer)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_next_after_login_stays_on_this_site(site, member_a, payload):
    answer = member_a.get("/login", params={"next": payload})
    assert_stays_on_site(site.url, answer)


@pytest.mark.parametrize("payload", ["/%09/evil.example/x", "/\\evil.example", "//evil.example"])
def test_next_in_the_raw_query_stays_on_this_site(site, member_a, payload):
    answer = member_a.get("/login?next=" + payload)
    assert_stays_on_site(site.url, answer)


def test_a_path_on_this_site_is_still_followed(site, member_a):
    answer = member_a.get("/login", params={"next": "/account?tab=tokens"})
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/account?tab=tokens"


@pytest.mark.parametrize("payload", ["/\r\nSet-Cookie: x=1", "/a\nb", "/a\rb", "/a\x00b"])
def test_next_with_line_breaks_is_a_clear_400(member_a, visitor, payload):
    for who in (member_a, visitor()):
        answer = who.get("/login", params={"next": payload})
        assert answer.status_code == 400, answer.text
        assert "next" in answer.text
        assert "Set-Cookie" not in answer.headers or "x=1" not in answer.headers["Set-Cookie"]
