"""The SSRF guard (core/net.py) against the ways an address can be spelled, directly, behind a
redirect, and through the look-up desk over HTTP with a DNS stub that points names at loopback.

Only loopback is ever dialled: spellings of loopback go through the real client to a canary
server that counts what reaches it; spellings of private, link-local and CGNAT addresses are
checked with check_destination, which resolves but never connects."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clubstack.core.net import HttpClient, SSRFBlocked, check_destination

sys.path.insert(0, str(Path(__file__).parents[1] / "lookup"))
from lookup_dns import FIXTURE_ZONE, LocalDNS, ZoneResolver

from tests.httpstub import Answer, Request, StubServer
from tests.security.conftest import BLOG_ORIGIN


class Canary:
    """An HTTP stub on 127.0.0.1 and ::1 (same port) that answers 200 and records requests;
    with `location` set it answers every request with a redirect there instead."""

    def __init__(self, location: str | None = None) -> None:
        self.location = location
        self.stub = StubServer(self._answer, ipv6=True)
        self.port, self.host, self.stop = self.stub.port, self.stub.host, self.stub.stop

    @property
    def hits(self) -> list[str]:
        return [request.target for request in self.stub.requests]

    def _answer(self, request: Request) -> Answer:
        if self.location:
            return 302, b"", {"Location": self.location}
        return 200, b"reached"


@pytest.fixture
def canary() -> Iterator[Canary]:
    server = Canary()
    yield server
    server.stop()


LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "2130706433",  # decimal
    "0x7f000001",  # hex
    "0x7f.0.0.1",
    "0177.0.0.1",  # octal
    "0177.0000.0000.0001",
    "127.1",  # short form
    "127.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "0",
    "localhost",
    "[::1]",
    "[::]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::ffff:7f00:1]",
]

INTERNAL_SPELLINGS = [
    "169.254.169.254",  # cloud metadata
    "2852039166",  # the same, decimal
    "0xa9fea9fe",
    "0251.0376.0251.0376",
    "169.254.43518",
    "[::ffff:169.254.169.254]",
    "[fe80::1]",
    "100.64.0.1",  # carrier-grade NAT
    "100.127.255.254",
    "10.0.0.1",
    "10.1",
    "012.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "[fd00::1]",
    "[fc00::1]",
    "224.0.0.1",
    "[ff02::1]",
    "240.0.0.1",
    "255.255.255.255",
]


@pytest.fixture
def plain_app(make_app: Any) -> Any:
    """Settings for the client (timeouts, retries); nothing on the allow-list."""
    return make_app()


def _refused(call: Any) -> bool:
    try:
        call()
    except SSRFBlocked:
        return True
    return False


def test_loopback_in_any_spelling_is_refused(plain_app, canary):
    client = HttpClient(allow_hosts=[], retries=0)
    with plain_app.app_context():
        let_through = [
            host
            for host in LOOPBACK_SPELLINGS
            if not _refused(lambda host=host: client.get(f"http://{host}:{canary.port}/secret"))
        ]
    assert let_through == []
    assert canary.hits == []


def test_internal_addresses_in_any_spelling_are_refused_before_connecting(plain_app):
    with plain_app.app_context():
        let_through = [
            host
            for host in INTERNAL_SPELLINGS
            if not _refused(lambda host=host: check_destination(host, 80))
        ]
    assert let_through == []


def test_only_http_and_https_are_fetched(plain_app, canary):
    client = HttpClient(allow_hosts=[canary.host], retries=0)
    for url in (
        f"ftp://{canary.host}/",
        f"gopher://{canary.host}/",
        "file:///etc/passwd",
        f"dict://{canary.host}/",
        "http:///nohost",
        f"//{canary.host}/",
    ):
        with plain_app.app_context(), pytest.raises(SSRFBlocked):
            client.get(url)
    assert canary.hits == []


def test_a_redirect_to_loopback_in_any_spelling_is_refused(plain_app, canary):
    """An allowed server (a stand-in for a public one) redirects to an internal one."""
    hop = Canary()
    client = HttpClient(allow_hosts=[hop.host], retries=0)
    let_through = []
    try:
        for host in (
            "2130706433",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "127.1",
            "0.0.0.0",
            "[::ffff:127.0.0.1]",
            "[::1]",
            "[::]",
            "localhost",
            "127.0.0.1",
        ):
            hop.location = f"http://{host}:{canary.port}/secret"
            with plain_app.app_context():
                if not _refused(lambda: client.get(f"http://{hop.host}/start")):
                    let_through.append(host)
        assert let_through == []
        assert len(hop.hits) == 10
        assert canary.hits == []
    finally:
        hop.stop()


# --- through the look-up desk, over HTTP ---------------------------------------------------


@pytest.fixture
def dns() -> Iterator[LocalDNS]:
    """The lookup tests' DNS stub: rebind.example.com and mta-sts.rebind.example.com are
    127.0.0.1, intranet.corp is 10.1.2.3."""
    server = LocalDNS(ZoneResolver(FIXTURE_ZONE)).start()
    yield server
    server.stop()


@pytest.fixture
def rdap(canary: Canary) -> Iterator[Canary]:
    """A registry that redirects every question to loopback, spelled in decimal."""
    hop = Canary(location=f"http://2130706433:{canary.port}/internal")
    yield hop
    hop.stop()


@pytest.fixture
def app(make_app: Any, dns: LocalDNS, rdap: Canary) -> Any:
    return make_app(
        blog_origin=BLOG_ORIGIN,
        lookup_nameservers=dns.nameserver,
        lookup_rdap_url=f"http://{rdap.host}",
        lookup_dns_timeout=1,
        lookup_dns_lifetime=2,
        http_allow_hosts=rdap.host,
        http_retries=0,
    )


def test_lookups_of_names_pointing_inside_fetch_nothing_inside(app, member_a, canary, rdap):
    csrf = member_a.csrf("/lookup/")
    answer = member_a.post(
        "/lookup/api/lookups",
        headers={"X-CSRFToken": csrf},
        json={"indicators": ["rebind.example.com"]},
    )
    assert answer.status_code == 202, answer.text
    result = member_a.get(answer.headers["Location"]).json()
    assert result["status"] == "done", result
    text = json.dumps(result)
    # The registry was asked, its redirect to 2130706433 (127.0.0.1) was not followed ...
    assert rdap.hits and canary.hits == []
    assert "not reach" in text or "address_refused" in text, text
    # ... and the MTA-STS policy host, which the DNS puts on 127.0.0.1, was never fetched.
    assert "resolves to 127.0.0.1" in text, text
