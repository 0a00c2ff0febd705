"""RDAP, Team Cymru ASN, VirusTotal v3 and AbuseIPDB v2 against local servers speaking them."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from lookup_http import ABUSE_KEY, VT_KEY, ProviderServer

from clubstack.core.net import HttpClient, Quota
from clubstack.lookup.findings import Level, Status
from clubstack.lookup.indicators import parse_one
from clubstack.lookup.registration import AsnCheck, RdapCheck, cymru_origin_name
from clubstack.lookup.reputation import AbuseIPDBCheck, VirusTotalCheck, vt_url_id


@pytest.fixture
def http(app: Any, providers: ProviderServer) -> HttpClient:
    return HttpClient(allow_hosts=[providers.host], retries=0)


def rdap(http: HttpClient, providers: ProviderServer) -> RdapCheck:
    return RdapCheck(http, base_url=f"{providers.url}/rdap")


def vt(http: HttpClient, providers: ProviderServer, **kw: Any) -> VirusTotalCheck:
    return VirusTotalCheck(http, VT_KEY, base_url=f"{providers.url}/vt/api/v3", **kw)


def abuse(http: HttpClient, providers: ProviderServer, **kw: Any) -> AbuseIPDBCheck:
    return AbuseIPDBCheck(http, ABUSE_KEY, base_url=f"{providers.url}/abuseipdb/api/v2", **kw)


# --- RDAP ------------------------------------------------------------------------------


def test_rdap_old_domain_is_harmless(http, providers) -> None:
    result = rdap(http, providers).run(parse_one("www.oldshop.com"))
    assert result.status is Status.OK
    assert result.data["domain"] == "oldshop.com"
    assert result.data["nameservers"] == ["ns1.oldshop.com"]
    assert result.data["registrar"] == "Example Registrar, Inc."
    assert result.level is Level.HARMLESS


def test_rdap_new_domain_is_suspicious(http, providers) -> None:
    result = rdap(http, providers).run(parse_one("https://fresh-login.net/login"))
    assert result.level is Level.SUSPICIOUS
    assert "registered 3 days ago (newer than 30)" in [f.text for f in result.findings]
    assert result.data["created"].startswith(str(datetime.now(UTC).year)[:3])


def test_rdap_ip_network_owner_country(http, providers) -> None:
    result = rdap(http, providers).run(parse_one("185.220.101.4"))
    assert result.data["network"] == "185.220.101.0/24"
    assert result.data["owner"] == "Zwiebelfreunde e.V."
    assert result.data["country"] == "DE"
    json.dumps(result.to_dict())  # stored as JSON


def test_rdap_not_applicable_for_internal_names_and_private_ips(http, providers) -> None:
    check = rdap(http, providers)
    assert check.run(parse_one("db01.internal")).status is Status.NOT_APPLICABLE
    assert check.run(parse_one("10.1.2.3")).status is Status.NOT_APPLICABLE
    assert providers.count("/rdap/") == 0


def test_rdap_unknown_429_and_malformed(http, providers) -> None:
    check = rdap(http, providers)
    unknown = check.run(parse_one("unregistered.org"))
    assert unknown.status is Status.OK and unknown.summary == "not found in RDAP"
    limited = check.run(parse_one("limited-rdap.org"))
    assert limited.status is Status.ERROR and "too many requests" in limited.summary
    broken = check.run(parse_one("broken-rdap.org"))
    assert broken.status is Status.ERROR and "malformed" in broken.summary


# --- Team Cymru ------------------------------------------------------------------------


def test_cymru_names() -> None:
    assert cymru_origin_name("185.220.101.4") == "4.101.220.185.origin.asn.cymru.com"
    assert cymru_origin_name("2001:db8::1").endswith(".8.b.d.0.1.0.0.2.origin6.asn.cymru.com")


def test_asn_for_ip_v4_and_v6(resolver) -> None:
    check = AsnCheck(resolver)
    v4 = check.run(parse_one("185.220.101.4"))
    assert v4.data["asn"] == 60729 and v4.data["country"] == "DE"
    assert v4.data["prefix"] == "185.220.101.0/24"
    assert v4.data["as_name"] == "ZWIEBELFREUNDE, DE"
    assert v4.summary == "AS60729 ZWIEBELFREUNDE, DE DE"
    v6 = check.run(parse_one("2001:db8::1"))
    assert v6.status is Status.NOT_APPLICABLE  # documentation prefix is not public


def test_asn_of_private_address_is_not_looked_up(resolver) -> None:
    assert AsnCheck(resolver).run(parse_one("intranet.corp")).status is Status.NOT_APPLICABLE


# --- VirusTotal ------------------------------------------------------------------------


def test_vt_levels_and_paths(http, providers) -> None:
    check = vt(http, providers)
    evil = check.run(parse_one("evil.example.com"))
    assert evil.level is Level.MALICIOUS
    assert evil.data["last_analysis_stats"]["malicious"] == 12
    assert check.run(parse_one("good.example.com")).level is Level.HARMLESS
    assert check.run(parse_one("new.example.net")).level is Level.SUSPICIOUS
    assert check.run(parse_one("185.220.101.4")).level is Level.MALICIOUS
    assert check.run(parse_one("44d88612fea8a8f36de82e1278abb02f")).level is Level.MALICIOUS
    unknown = check.run(parse_one("https://unknown.example.org/x"))
    assert unknown.status is Status.OK and unknown.summary == "not known to VirusTotal"
    paths = [r.path for r in providers.requests]
    assert "/vt/api/v3/domains/evil.example.com" in paths
    assert "/vt/api/v3/ip_addresses/185.220.101.4" in paths
    assert "/vt/api/v3/files/44d88612fea8a8f36de82e1278abb02f" in paths
    assert f"/vt/api/v3/urls/{vt_url_id('https://unknown.example.org/x')}" in paths
    assert all(r.headers.get("x-apikey") == VT_KEY for r in providers.requests)


def test_vt_429_and_malformed(http, providers) -> None:
    check = vt(http, providers)
    assert check.run(parse_one("quota.example.com")).status is Status.QUOTA_EXHAUSTED
    broken = check.run(parse_one("broken.example.com"))
    assert broken.status is Status.ERROR and broken.summary.startswith("malformed answer")


def test_vt_without_key_sends_nothing(http, providers) -> None:
    check = VirusTotalCheck(http, None, base_url=f"{providers.url}/vt/api/v3")
    assert check.run(parse_one("evil.example.com")).status is Status.NOT_CONFIGURED
    assert providers.requests == []


def test_vt_internal_names_are_not_sent(http, providers) -> None:
    assert vt(http, providers).run(parse_one("db01.internal")).status is Status.NOT_APPLICABLE
    assert providers.requests == []


# --- AbuseIPDB -------------------------------------------------------------------------


def test_abuseipdb_check(http, providers) -> None:
    check = abuse(http, providers)
    tor = check.run(parse_one("185.220.101.4"))
    assert tor.level is Level.MALICIOUS
    assert tor.data["abuseConfidenceScore"] == 100 and tor.data["isTor"] is True
    assert tor.data["totalReports"] == 812
    assert tor.data["usageType"] == "Data Center/Web Hosting/Transit"
    assert "Tor exit node" in [f.text for f in tor.findings]
    clean = check.run(parse_one("192.0.2.10"))
    assert clean.level is Level.HARMLESS
    request = providers.requests[0]
    assert request.target == "/abuseipdb/api/v2/check?ipAddress=185.220.101.4&maxAgeInDays=90"
    assert request.headers["Key"] == ABUSE_KEY
    assert request.headers["Accept"] == "application/json"
    assert check.run(parse_one("evil.example.com")).status is Status.NOT_APPLICABLE


def test_abuseipdb_429_and_not_json(http, providers) -> None:
    check = abuse(http, providers)
    assert check.run(parse_one("198.51.100.7")).status is Status.QUOTA_EXHAUSTED
    broken = check.run(parse_one("198.51.100.8"))
    assert broken.status is Status.ERROR and "not JSON" in broken.summary


def test_api_keys_never_in_results_or_logs(http, providers, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    results = [
        vt(http, providers).run(parse_one("evil.example.com")),
        vt(http, providers).run(parse_one("quota.example.com")),
        abuse(http, providers).run(parse_one("198.51.100.8")),
        abuse(http, providers).run(parse_one("185.220.101.4")),
    ]
    dumped = repr([r.to_dict() for r in results]) + caplog.text
    assert VT_KEY not in dumped and ABUSE_KEY not in dumped


# --- operator's quota ------------------------------------------------------------------


def test_quota_exhausted_means_not_sent(http, providers) -> None:
    quota = Quota("virustotal-test", [(2, 60), (500, 86400)])
    check = vt(http, providers, quota=quota)
    results = [check.run(parse_one(d)) for d in ("good.example.com", "evil.example.com", "x.com")]
    assert [r.status for r in results] == [Status.OK, Status.OK, Status.QUOTA_EXHAUSTED]
    assert results[2].summary == "quota exhausted: not sent"
    assert providers.count("/vt/") == 2


def test_quota_waits_when_the_window_frees_soon(http, providers) -> None:
    quota = Quota("abuse-test", [(1, 60)])
    slept: list[float] = []

    def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        quota.limits = [(100, 60)]  # the window "rolled over" while we waited

    check = abuse(http, providers, quota=quota, max_wait=120, sleep=fake_sleep)
    first = check.run(parse_one("192.0.2.10"))
    second = check.run(parse_one("185.220.101.4"))
    assert first.status is second.status is Status.OK
    assert len(slept) == 1 and 0 < slept[0] <= 60
    assert providers.count("/abuseipdb/") == 2
