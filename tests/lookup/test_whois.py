"""Registration by port-43 WHOIS when RDAP has nothing: the IANA referral chain, thin
registries, parsing, and the guard — against local WHOIS servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from lookup_http import ProviderServer
from lookup_whois import WhoisServer, fixtures

from clubstack.core.net import HttpClient
from clubstack.lookup.findings import Level, Status
from clubstack.lookup.indicators import parse_one
from clubstack.lookup.registration import RdapCheck
from clubstack.lookup.whoisquery import WhoisClient, parse_answer

CLOSED_PORT = "127.0.0.1:1"  # nothing listens on loopback port 1


@pytest.fixture
def whois_servers() -> Iterator[dict[str, WhoisServer]]:
    iana, registry, registrar = fixtures()
    yield {"iana": iana, "registry": registry, "registrar": registrar}
    for server in (iana, registry, registrar):
        server.stop()


def server_map(servers: dict[str, WhoisServer]) -> dict[str, str]:
    """What an operator would put in CLUBSTACK_LOOKUP_WHOIS_SERVERS."""
    return {
        "whois.denic.de": servers["registry"].address,
        "whois.verisign-grs.com": servers["registry"].address,
        "whois.example-registrar.com": servers["registrar"].address,
        "whois.unreachable-registrar.com": CLOSED_PORT,
    }


@pytest.fixture
def check(app: Any, providers: ProviderServer, whois_servers) -> RdapCheck:
    allow = [providers.host, CLOSED_PORT] + [s.address for s in whois_servers.values()]
    http = HttpClient(allow_hosts=allow, retries=0)
    client = WhoisClient(
        http, iana_server=whois_servers["iana"].address, servers=server_map(whois_servers)
    )
    return RdapCheck(http, base_url=f"{providers.url}/rdap", whois=client)


def test_rdap_answer_wins_and_whois_is_not_asked(check, whois_servers) -> None:
    result = check.run(parse_one("www.oldshop.com"))
    assert result.data["source"] == "rdap"
    assert "via WHOIS" not in result.summary
    assert whois_servers["iana"].questions == []


def test_tld_without_rdap_falls_back_to_whois_through_iana(check, whois_servers) -> None:
    result = check.run(parse_one("https://www.beispiel-gmbh.de/impressum"))
    assert result.status is Status.OK
    assert result.data["source"] == "whois"
    assert result.data["whois_servers"] == ["whois.denic.de"]
    assert result.data["nameservers"] == ["ns1.beispiel-gmbh.de", "ns2.beispiel-gmbh.de"]
    assert result.data["status"] == ["connect"]
    assert "via WHOIS" in result.summary
    assert whois_servers["iana"].questions == ["de"]
    assert whois_servers["registry"].questions == ["beispiel-gmbh.de"]


def test_thin_registry_is_followed_to_the_registrar(check, whois_servers) -> None:
    result = check.run(parse_one("thin-shop.com"))
    data = result.data
    assert data["whois_servers"] == ["whois.verisign-grs.com", "whois.example-registrar.com"]
    assert data["registrar"] == "Example Registrar, LLC (retail brand)"
    assert data["status"] == ["clientHold"]
    assert data["created"] is not None and data["expires"] is not None
    texts = [f.text for f in result.findings]
    assert "registered 2 days ago (newer than 30)" in texts
    assert "on hold: the registry or registrar suspended it" in texts
    assert result.level is Level.SUSPICIOUS
    assert whois_servers["registrar"].questions == ["thin-shop.com"]


def test_unreachable_registrar_keeps_the_registry_data(check) -> None:
    result = check.run(parse_one("old-thin.com"))
    assert result.status is Status.OK
    assert result.data["whois_servers"] == ["whois.verisign-grs.com"]
    assert result.data["registrar"] == "Example Registrar, LLC"
    assert result.data["status"] == ["clientTransferProhibited"]
    assert result.level is Level.HARMLESS


def test_not_registered_anywhere(check) -> None:
    free = check.run(parse_one("frei.de"))
    assert free.status is Status.OK and free.summary == "not found in RDAP or WHOIS"
    unknown = check.run(parse_one("nobody-registered-this.com"))
    assert unknown.summary == "not found in RDAP or WHOIS"


def test_tld_without_any_whois_server(check) -> None:
    result = check.run(parse_one("bakery.coop"))
    assert result.status is Status.OK
    assert result.summary == "not found in RDAP; no WHOIS server is known for .coop"


def test_iana_answer_is_remembered(check, whois_servers) -> None:
    from concurrent.futures import ThreadPoolExecutor

    names = ["beispiel-gmbh.de", "frei.de"] * 4
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda name: check.run(parse_one(name)), names))
    assert all(r.status is Status.OK for r in results)
    assert whois_servers["iana"].questions == ["de"]  # once, although asked concurrently


def test_whois_goes_through_the_guard(app, providers, whois_servers) -> None:
    http = HttpClient(allow_hosts=[providers.host], retries=0)  # WHOIS ports not allowed
    client = WhoisClient(
        http, iana_server=whois_servers["iana"].address, servers=server_map(whois_servers)
    )
    result = RdapCheck(http, base_url=f"{providers.url}/rdap", whois=client).run(
        parse_one("beispiel-gmbh.de")
    )
    assert result.status is Status.ERROR and "may not reach" in result.summary
    assert whois_servers["iana"].questions == []


def test_unreachable_registry_is_an_error_not_a_verdict(app, providers, whois_servers) -> None:
    http = HttpClient(allow_hosts=[providers.host, CLOSED_PORT], retries=0)
    client = WhoisClient(http, iana_server=CLOSED_PORT)
    result = RdapCheck(http, base_url=f"{providers.url}/rdap", whois=client).run(
        parse_one("beispiel-gmbh.de")
    )
    assert result.status is Status.ERROR and result.summary.startswith("not in RDAP; WHOIS:")


def test_a_tld_can_be_pinned_to_a_server(app, providers, whois_servers) -> None:
    allow = [providers.host] + [s.address for s in whois_servers.values()]
    http = HttpClient(allow_hosts=allow, retries=0)
    client = WhoisClient(
        http, iana_server=CLOSED_PORT, servers={"de": whois_servers["registry"].address}
    )
    result = RdapCheck(http, base_url=f"{providers.url}/rdap", whois=client).run(
        parse_one("beispiel-gmbh.de")
    )
    assert result.data["source"] == "whois"
    assert whois_servers["iana"].questions == []


def test_parser_reads_common_formats() -> None:
    fields = parse_answer(
        "example.com",
        "Domain Name: EXAMPLE.COM\nCreation Date: 1995-08-14T04:00:00Z\n"
        "Registry Expiry Date: 2027-08-13T04:00:00Z\nRegistrar: RESERVED-Internet Assigned "
        "Numbers Authority\nName Server: A.IANA-SERVERS.NET\nName Server: B.IANA-SERVERS.NET\n"
        "Domain Status: clientDeleteProhibited https://icann.org/epp#clientDeleteProhibited\n",
    )
    assert fields is not None
    assert fields["created"].year == 1995 and fields["created"].tzinfo is not None
    assert fields["expires"].year == 2027
    assert fields["nameservers"] == ["a.iana-servers.net", "b.iana-servers.net"]
    assert fields["status"] == ["clientDeleteProhibited"]
    assert parse_answer("nothing.org", "NOT FOUND\n") is None
