"""Real servers for the lookup tests: a DNS server with fixture zones, provider APIs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from lookup_dns import FIXTURE_ZONE, LocalDNS, ZoneResolver
from lookup_http import ProviderServer

from clubstack.lookup.resolver import make_resolver


@pytest.fixture(scope="session")
def dns_server() -> Iterator[LocalDNS]:
    """Fixture zones on 127.0.0.1:<port>; names under slow.example.com answer after 3 s."""
    server = LocalDNS(ZoneResolver(FIXTURE_ZONE, delays={"slow.example.com": 3.0})).start()
    yield server
    server.stop()


@pytest.fixture
def resolver(dns_server: LocalDNS):
    return make_resolver([dns_server.nameserver], timeout=1.0, lifetime=1.5)


@pytest.fixture
def providers() -> Iterator[ProviderServer]:
    server = ProviderServer()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def public_services_out_of_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every lookup test on loopback unless it sets up its own stand-in.

    RDAP and the start of the WHOIS chain point at a loopback port the guard refuses (an
    error result; nothing is sent), and the TLS check, which connects to the indicator's own
    host, is left out of the default set here; tests/lookup/test_tls.py and the web test of
    the new checks run it against local TLS servers. make_app's settings override these.
    """
    monkeypatch.setenv("CLUBSTACK_LOOKUP_RDAP_URL", "http://127.0.0.1:9/rdap")
    monkeypatch.setenv("CLUBSTACK_LOOKUP_WHOIS_IANA_SERVER", "127.0.0.1:9")
    monkeypatch.setenv(
        "CLUBSTACK_LOOKUP_CHECKS", "dns,mail,rdap,asn,virustotal,abuseipdb,urlhaus,blocklist"
    )
