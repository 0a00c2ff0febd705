"""A finished look-up batch written straight into the database, for page tests.

Every check, every level and every status an analyst can meet, with the long values that
strain a layout (a phishing URL with a query string, a SHA-256, an IPv6 address, a TLS chain),
without running a check or sending a packet anywhere.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

CHECKS = ["dns", "mail", "rdap", "asn", "tls", "virustotal", "abuseipdb", "urlhaus", "blocklist"]
AS_OF = "2026-12-05T17:58:03.120000+00:00"
LONG_URL = (
    "http://login-microsoftonline-secure-verify.evil.example/wp-content/plugins/akismet/owa/"
    "index.php?client_id=00000002-0000-0ff1-ce00-000000000000&redirect_uri=https%3A%2F%2F"
    "outlook.office365.com%2Fowa%2F"
)
SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"


def result(
    check: str,
    summary: str,
    *findings: tuple[str, str],
    status: str = "ok",
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One stored check result, shaped like CheckResult.to_dict()."""
    ranks = ["none", "harmless", "suspicious", "malicious"]
    level = max((lvl for lvl, _ in findings), key=ranks.index, default="none")
    return {
        "check": check,
        "status": status,
        "level": level,
        "summary": summary,
        "findings": [{"level": lvl, "text": text} for lvl, text in findings],
        "data": data or {},
        "as_of": AS_OF,
    }


def na(check: str, why: str) -> dict[str, Any]:
    return result(check, why, status="not_applicable")


TLS_CHAIN = [
    {
        "subject": "CN=login-microsoftonline-secure-verify.evil.example",
        "issuer": "CN=R11,O=Let's Encrypt,C=US",
        "san": ["login-microsoftonline-secure-verify.evil.example"],
        "not_before": "2026-11-30T00:00:00+00:00",
        "not_after": "2027-02-28T00:00:00+00:00",
        "days_to_expiry": 84,
        "key_type": "RSA",
        "key_size": 2048,
        "signature_algorithm": "sha256WithRSAEncryption",
    },
    {
        "subject": "CN=R11,O=Let's Encrypt,C=US",
        "issuer": "CN=ISRG Root X1,O=Internet Security Research Group,C=US",
        "san": [],
        "not_before": "2024-03-13T00:00:00+00:00",
        "not_after": "2027-03-12T23:59:59+00:00",
        "days_to_expiry": 97,
        "key_type": "RSA",
        "key_size": 2048,
        "signature_algorithm": "sha256WithRSAEncryption",
    },
]

# (kind, value, verdict 0-3, {check: result})
ITEMS: list[tuple[str, str, int, dict[str, dict[str, Any]]]] = [
    (
        "url",
        LONG_URL,
        3,
        {
            "dns": result("dns", "203.0.113.66", ("none", "A 203.0.113.66")),
            "mail": na("mail", "only for domains and e-mail addresses"),
            "rdap": result(
                "rdap",
                "registered 3 days ago, NameCheap, Inc.",
                ("suspicious", "registered 3 days ago"),
                data={"source": "whois", "whois_servers": ["whois.nic.example"]},
            ),
            "asn": result("asn", "AS64500 EXAMPLE-HOSTING NL", ("none", "AS64500")),
            "tls": result(
                "tls",
                "verifies; expires in 84 days; issuer CN=R11,O=Let's Encrypt,C=US",
                ("harmless", "valid, trusted, names login-microsoftonline-secure-verify.evil"),
                data={"chain": TLS_CHAIN},
            ),
            "virustotal": result(
                "virustotal", "14/93 engines malicious", ("malicious", "14 engines: phishing")
            ),
            "abuseipdb": na("abuseipdb", "only for IP addresses"),
            "urlhaus": result(
                "urlhaus",
                "listed (malware_download), online",
                ("malicious", "URLhaus: malware_download, online"),
                data={"reference": "https://urlhaus.abuse.ch/url/3141592/"},
            ),
            "blocklist": result(
                "blocklist",
                "on phishing.txt: login-microsoftonline-secure-verify.evil.example",
                ("malicious", "listed in phishing.txt"),
            ),
        },
    ),
    (
        "ipv4",
        "185.220.101.4",
        3,
        {
            "dns": result("dns", "PTR tor-exit-4.example.net", ("none", "PTR")),
            "mail": na("mail", "only for domains and e-mail addresses"),
            "rdap": result("rdap", "RDAP HTTP 503", status="error"),
            "asn": result("asn", "AS64501 EXAMPLE-TOR-RELAYS DE", ("none", "AS64501")),
            "tls": result("tls", "185.220.101.4:443: TLS timed out", status="error"),
            "virustotal": result(
                "virustotal", "quota exhausted: not sent", status="quota_exhausted"
            ),
            "abuseipdb": result(
                "abuseipdb",
                "confidence 100%, 1842 reports",
                ("malicious", "confidence 100%"),
                ("suspicious", "Tor exit node"),
            ),
            "urlhaus": result("urlhaus", "not listed in URLhaus"),
            "blocklist": result("blocklist", "not on the blocklists"),
        },
    ),
    (
        "domain",
        "plusall.example.com",
        2,
        {
            "dns": result("dns", "192.0.2.10", ("none", "A 192.0.2.10")),
            "mail": result(
                "mail",
                "SPF ends in +all; no DMARC record",
                ("suspicious", "SPF ends in +all: anyone may send as this domain"),
                ("suspicious", "no DMARC record"),
            ),
            "rdap": result(
                "rdap",
                "registered 2019-04-02, Example Registrar",
                ("none", "registered 7 years ago"),
                data={"source": "rdap", "nameservers": ["ns1.example.com", "ns2.example.com"]},
            ),
            "asn": result("asn", "AS64502 EXAMPLE-NET US", ("none", "AS64502")),
            "tls": result("tls", "no TLS server at plusall.example.com:443"),
            "virustotal": result("virustotal", "0/93 engines malicious", ("harmless", "0/93")),
            "abuseipdb": na("abuseipdb", "only for IP addresses"),
            "urlhaus": result("urlhaus", "not listed in URLhaus"),
            "blocklist": result("blocklist", "not on the blocklists"),
        },
    ),
    (
        "email",
        "ceo@plusall.example.com",
        2,
        {
            "dns": result("dns", "mail only (MX, no address)", ("none", "MX")),
            "mail": result(
                "mail",
                "SPF ends in +all; no DMARC record",
                ("suspicious", "SPF ends in +all: anyone may send as this domain"),
            ),
            "rdap": result("rdap", "registered 2019-04-02, Example Registrar"),
            "asn": na("asn", "only for IP addresses and host names"),
            "tls": na("tls", "only for URLs, domains and IP addresses"),
            "virustotal": result("virustotal", "VirusTotal HTTP 500 ServerError", status="error"),
            "abuseipdb": na("abuseipdb", "only for IP addresses"),
            "urlhaus": na("urlhaus", "not for e-mail addresses"),
            "blocklist": result("blocklist", "not on the blocklists"),
        },
    ),
    (
        "domain",
        "good.example.com",
        1,
        {
            "dns": result("dns", "192.0.2.20, 2001:db8::20", ("none", "A, AAAA")),
            "mail": result("mail", "SPF and DMARC enforced", ("harmless", "SPF ok")),
            "rdap": result("rdap", "registered 2004-08-17, Example Registrar"),
            "asn": result("asn", "AS64502 EXAMPLE-NET US"),
            "tls": result(
                "tls",
                "verifies; expires in 61 days; issuer CN=E6,O=Let's Encrypt,C=US",
                ("harmless", "valid, trusted, names good.example.com"),
            ),
            "virustotal": result("virustotal", "0/93 engines malicious", ("harmless", "0/93")),
            "abuseipdb": na("abuseipdb", "only for IP addresses"),
            "urlhaus": result("urlhaus", "not listed in URLhaus"),
            "blocklist": result("blocklist", "not on the blocklists"),
        },
    ),
    (
        "ipv6",
        "2001:db8:85a3::8a2e:370:7334",
        0,
        {
            "dns": result("dns", "DNS failed: The DNS operation timed out.", status="error"),
            "mail": na("mail", "only for domains and e-mail addresses"),
            "rdap": result("rdap", "not found in RDAP"),
            "asn": result("asn", "2001:db8:85a3::8a2e:370:7334: not announced"),
            "tls": result("tls", "no TLS server at [2001:db8:85a3::8a2e:370:7334]:443"),
            "virustotal": result("virustotal", "not known to VirusTotal"),
            "abuseipdb": result("abuseipdb", "no API key configured", status="not_configured"),
            "urlhaus": result("urlhaus", "not listed in URLhaus"),
            "blocklist": result("blocklist", "not on the blocklists"),
        },
    ),
    (
        "sha256",
        SHA256,
        0,
        {
            **{c: na(c, "not for hashes") for c in CHECKS},
            "virustotal": result("virustotal", "not known to VirusTotal"),
            "urlhaus": result("urlhaus", "not listed in URLhaus"),
        },
    ),
]


def insert_finished_batch(app: Any, email: str) -> str:
    """A done batch of ITEMS owned by the account EMAIL (which must exist); its id."""
    from clubstack.core.accounts.models import User
    from clubstack.core.db import db, utcnow
    from clubstack.lookup.models import LookupBatch, LookupItem

    with app.app_context():
        session = db.session()
        user = session.scalar(select(User).where(User.email == email))
        assert user is not None, f"no account {email}"
        total = len(ITEMS) * len(CHECKS)
        batch = LookupBatch(
            user_id=user.id,
            source="web",
            status="done",
            total=total,
            done=total,
            checks=",".join(CHECKS),
            finished_at=utcnow(),
        )
        batch.items = [
            LookupItem(position=i, kind=kind, value=value, verdict=verdict, results=json.dumps(r))
            for i, (kind, value, verdict, r) in enumerate(ITEMS)
        ]
        session.add(batch)
        session.commit()
        return batch.id
