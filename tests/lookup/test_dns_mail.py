"""DNS and mail-security checks against a real DNS server serving fixture zones."""

from __future__ import annotations

import time

import checkdmarc.utils

from clubstack.lookup.dnsrecords import DnsCheck
from clubstack.lookup.findings import Level, Status
from clubstack.lookup.indicators import parse_one
from clubstack.lookup.mailsec import MailSecurityCheck
from clubstack.lookup.resolver import make_resolver, parse_nameserver


def texts(result) -> list[str]:
    return [f.text for f in result.findings]


def test_nameserver_setting_forms() -> None:
    assert parse_nameserver("9.9.9.9") == ("9.9.9.9", 53)
    assert parse_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_nameserver("::1") == ("::1", 53)
    assert parse_nameserver("[::1]:5300") == ("::1", 5300)


def test_dns_records_of_a_name(resolver) -> None:
    result = DnsCheck(resolver).run(parse_one("good.example.com"))
    records = result.data["records"]
    assert records["A"] == ["192.0.2.10"]
    assert records["AAAA"] == ["2001:db8::10"]
    assert records["MX"] == ["10 mx1.good.example.com."]
    assert records["NS"] == ["ns1.good.example.com."]
    assert records["CAA"] == ['0 issue "letsencrypt.org"']
    assert records["SOA"][0].startswith("ns1.good.example.com. hostmaster.good.example.com. 1 ")
    assert any(t.startswith("v=spf1") for t in records["TXT"])
    assert result.level is Level.HARMLESS


def test_dns_for_url_and_email_uses_the_host(resolver) -> None:
    check = DnsCheck(resolver)
    url = check.run(parse_one("https://good.example.com/login"))
    mail = check.run(parse_one("ceo@good.example.com"))
    assert url.data["records"]["A"] == mail.data["records"]["A"] == ["192.0.2.10"]


def test_ptr_for_ip(resolver) -> None:
    result = DnsCheck(resolver).run(parse_one("192.0.2.10"))
    assert result.data["PTR"] == ["good.example.com."]
    assert "good.example.com" in result.summary
    empty = DnsCheck(resolver).run(parse_one("192.0.2.99"))
    assert empty.status is Status.OK and empty.data["PTR"] == []


def test_nxdomain_is_no_data_not_an_error(resolver) -> None:
    result = DnsCheck(resolver).run(parse_one("nx.example.com"))
    assert result.status is Status.OK
    assert result.level is Level.NONE
    assert result.data == {"nxdomain": True}


def test_internal_names_resolve_through_the_configured_server(resolver) -> None:
    result = DnsCheck(resolver).run(parse_one("db01.internal"))
    assert result.data["records"]["A"] == ["10.1.2.4"]
    assert result.level is Level.HARMLESS  # private addresses are normal for internal names


def test_public_name_pointing_at_loopback_is_suspicious(resolver) -> None:
    result = DnsCheck(resolver).run(parse_one("rebind.example.com"))
    assert result.level is Level.SUSPICIOUS
    assert "loopback address 127.0.0.1" in " ".join(texts(result))


def test_slow_answers_end_in_an_error_result_not_a_hang(dns_server) -> None:
    resolver = make_resolver([dns_server.nameserver], timeout=0.3, lifetime=0.5)
    start = time.monotonic()
    result = DnsCheck(resolver).run(parse_one("slow.example.com"))
    assert time.monotonic() - start < 2.5
    assert result.status is Status.ERROR
    assert "DNS failed" in result.summary


def test_good_mail_setup(resolver) -> None:
    check = MailSecurityCheck(resolver, dkim_selectors=["sel1", "weak", "revoked", "nope"])
    result = check.run(parse_one("good.example.com"))
    data = result.data
    assert data["spf"]["all"] == "fail" and data["spf"]["dns_lookups"] == 1
    assert data["dmarc"]["p"] == "reject" and data["dmarc"]["rua"] == [
        "mailto:dmarc@good.example.com"
    ]
    assert data["mx"] == ["10 mx1.good.example.com."]
    assert data["mta_sts"]["record"] == "v=STSv1; id=20240101T000000"
    assert data["tls_rpt"]["rua"] == ["mailto:tlsrpt@good.example.com"]
    assert data["dnssec"]["dnskey"] and data["dnssec"]["ds"]
    assert data["bimi"]["logo"] == "https://good.example.com/logo.svg"
    assert data["dkim"]["sel1"] == {"found": True, "type": "rsa", "bits": 2048}
    assert data["dkim"]["weak"]["bits"] == 1024
    assert data["dkim"]["revoked"] == {"found": True, "revoked": True}
    assert data["dkim"]["nope"] == {"found": False}
    found = texts(result)
    assert "DKIM selector weak: weak 1024-bit RSA key" in found
    assert "DNSSEC signed" in found
    # only the weak DKIM key is a problem
    assert [f.text for f in result.findings if f.level is Level.SUSPICIOUS] == [
        "DKIM selector weak: weak 1024-bit RSA key"
    ]


def test_mail_for_an_email_address_checks_its_domain(resolver) -> None:
    result = MailSecurityCheck(resolver).run(parse_one("bad.guy@plusall.example.com"))
    assert result.data["domain"] == "plusall.example.com"


def test_plus_all_and_p_none(resolver) -> None:
    result = MailSecurityCheck(resolver).run(parse_one("plusall.example.com"))
    found = texts(result)
    assert "SPF ends in +all: anyone may send as this domain" in found
    assert "DMARC p=none: not enforced" in found
    assert result.level is Level.SUSPICIOUS


def test_question_all_and_partial_pct(resolver) -> None:
    result = MailSecurityCheck(resolver).run(parse_one("qall.example.com"))
    found = texts(result)
    assert "SPF ends in ?all: no protection" in found
    assert "DMARC p=quarantine applies to only 20% of mail" in found


def test_missing_spf_and_dmarc(resolver) -> None:
    result = MailSecurityCheck(resolver).run(parse_one("nospf.example.com"))
    found = texts(result)
    assert "SPF missing: anyone may send as this domain" in found
    assert "DMARC missing" in found
    assert result.data["mx"] == []


def test_spf_over_ten_lookups(resolver) -> None:
    result = MailSecurityCheck(resolver).run(parse_one("toomany.example.com"))
    assert result.data["spf"]["dns_lookups"] > 10
    assert any("(limit 10): permerror" in t for t in texts(result))
    assert result.level is Level.SUSPICIOUS


def test_mail_on_nxdomain_and_ip(resolver) -> None:
    check = MailSecurityCheck(resolver)
    assert check.run(parse_one("nx.example.com")).data == {"nxdomain": True}
    assert check.run(parse_one("192.0.2.10")).status is Status.NOT_APPLICABLE


def test_checkdmarc_module_cache_is_off(dns_server, resolver) -> None:
    """Two resolvers pointing at different servers must not share answers via checkdmarc."""
    from lookup_dns import LocalDNS, ZoneResolver

    other = LocalDNS(ZoneResolver('plusall.example.com. IN TXT "v=spf1 -all"')).start()
    try:
        first = MailSecurityCheck(resolver).run(parse_one("plusall.example.com"))
        other_resolver = make_resolver([other.nameserver], timeout=1.0, lifetime=1.5)
        second = MailSecurityCheck(other_resolver).run(parse_one("plusall.example.com"))
    finally:
        other.stop()
    assert first.data["spf"]["all"] == "pass"
    assert second.data["spf"]["all"] == "fail"
    assert checkdmarc.utils.DNS_CACHE.get("plusall.example.com_TXT_False") is None


# --- MTA-STS policy fetches and the SSRF guard -------------------------------------------


def test_mta_sts_policy_fetched_and_parsed(app, resolver, providers) -> None:
    from clubstack.core.net import HttpClient
    from clubstack.lookup.mailsec import policy_fetcher

    providers.mta_sts["good.example.com"] = (
        "version: STSv1\nmode: enforce\nmx: mx1.good.example.com\nmax_age: 86400\n"
    )
    fetch = policy_fetcher(HttpClient(allow_hosts=[providers.host], retries=0))
    asked: list[str] = []

    def via_stub(url: str) -> str:
        # The RFC fixes the URL (https://mta-sts.<domain>/...); the stub serves it by host.
        asked.append(url)
        return fetch(f"{providers.url}/mta-sts/good.example.com")

    result = MailSecurityCheck(resolver, fetch_policy=via_stub).run(parse_one("good.example.com"))
    assert asked == ["https://mta-sts.good.example.com/.well-known/mta-sts.txt"]
    assert result.data["mta_sts"]["policy"]["mode"] == "enforce"
    assert "MTA-STS mode=enforce" in texts(result)


def test_mta_sts_host_resolving_to_loopback_is_never_fetched(app, resolver, providers) -> None:
    """rebind.example.com's mta-sts host resolves to 127.0.0.1 in the configured DNS."""
    from clubstack.core.net import HttpClient
    from clubstack.lookup.mailsec import policy_fetcher

    fetched: list[str] = []
    fetch = policy_fetcher(HttpClient(allow_hosts=[providers.host], retries=0))

    def recording(url: str) -> str:
        fetched.append(url)
        return fetch(url)

    result = MailSecurityCheck(resolver, fetch_policy=recording).run(
        parse_one("rebind.example.com")
    )
    assert fetched == []
    message = result.data["mta_sts"]["error"]
    assert "resolves to 127.0.0.1, an address this server may not reach" in message
    assert result.level is Level.SUSPICIOUS


def test_policy_fetch_to_loopback_refused_by_core_client(app, providers) -> None:
    """Even without our resolver's help, the core client refuses loopback: nothing is sent."""
    import pytest

    from clubstack.core.net import HttpClient, SSRFBlocked
    from clubstack.lookup.mailsec import policy_fetcher

    fetch = policy_fetcher(HttpClient(allow_hosts=[], retries=0))
    for url in (
        f"{providers.url}/mta-sts/x",
        f"http://localhost:{providers.port}/mta-sts/x",
        f"http://[::ffff:127.0.0.1]:{providers.port}/mta-sts/x",
    ):
        with pytest.raises(SSRFBlocked):
            fetch(url)
    assert providers.requests == []


def test_internal_names_get_mail_information_not_suspicion(resolver) -> None:
    result = MailSecurityCheck(resolver).run(parse_one("db01.internal"))
    assert result.level is Level.NONE
    assert result.summary.startswith("internal name; no MX records; SPF missing")
    assert result.data["internal"] is True
