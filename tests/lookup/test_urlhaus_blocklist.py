"""URLhaus against a local server speaking its documented API; blocklist files the test writes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from lookup_http import URLHAUS_KEY, ProviderServer

from clubstack.core.net import HttpClient, Quota
from clubstack.lookup.blocklist import BlocklistCheck
from clubstack.lookup.findings import Level, Status
from clubstack.lookup.indicators import parse_one
from clubstack.lookup.reputation import URLhausCheck


@pytest.fixture
def http(app: Any, providers: ProviderServer) -> HttpClient:
    return HttpClient(allow_hosts=[providers.host], retries=0)


def urlhaus(http: HttpClient, providers: ProviderServer, key: str | None = URLHAUS_KEY, **kw: Any):
    return URLhausCheck(http, key, base_url=f"{providers.url}/urlhaus/v1", **kw)


# --- URLhaus ---------------------------------------------------------------------------


def test_host_with_online_malware_urls_is_malicious(http, providers) -> None:
    result = urlhaus(http, providers).run(parse_one("evil[.]example[.]com"))
    assert result.status is Status.OK
    assert result.level is Level.MALICIOUS
    assert result.summary == "2 malware URLs, 1 online"
    assert result.data["threats"] == ["malware_download"]
    assert result.data["blacklists"] == {"spamhaus_dbl": "abused_legit_malware"}
    sent = providers.requests[-1]
    assert sent.path == "/urlhaus/v1/host/"
    assert sent.form == {"host": ["evil.example.com"]}
    assert sent.headers["Auth-Key"] == URLHAUS_KEY
    assert URLHAUS_KEY not in json.dumps(result.to_dict())


def test_host_with_only_offline_urls_is_suspicious(http, providers) -> None:
    result = urlhaus(http, providers).run(parse_one("185.220.101.4"))
    assert result.level is Level.SUSPICIOUS
    assert "hosted 1 malware URLs (all offline now)" in [f.text for f in result.findings]


def test_url_and_payload_lookups(http, providers) -> None:
    check = urlhaus(http, providers)
    url = check.run(parse_one("hxxp://evil[.]example[.]com/payload.exe"))
    assert url.level is Level.MALICIOUS
    assert url.data["url_status"] == "online" and url.data["tags"] == ["exe", "Emotet"]
    assert providers.requests[-1].form == {"url": ["http://evil.example.com/payload.exe"]}
    payload = check.run(parse_one("44D88612FEA8A8F36DE82E1278ABB02F"))
    assert payload.level is Level.MALICIOUS and payload.summary == "malware payload: Emotet"
    assert providers.requests[-1].path == "/urlhaus/v1/payload/"


def test_not_listed_unknown_key_quota_malformed(http, providers) -> None:
    check = urlhaus(http, providers)
    clean = check.run(parse_one("good.example.com"))
    assert clean.status is Status.OK and clean.level is Level.NONE
    assert clean.summary == "not listed in URLhaus"
    bad_key = urlhaus(http, providers, key="wrong").run(parse_one("good.example.com"))
    assert bad_key.status is Status.ERROR and "Auth-Key" in bad_key.summary
    limited = check.run(parse_one("quota.example.com"))
    assert limited.status is Status.QUOTA_EXHAUSTED
    broken = check.run(parse_one("broken.example.com"))
    assert broken.status is Status.ERROR and "malformed" in broken.summary


def test_without_key_or_for_internal_names_nothing_is_sent(http, providers) -> None:
    assert urlhaus(http, providers, key=None).run(parse_one("evil.example.com")).status is (
        Status.NOT_CONFIGURED
    )
    internal = urlhaus(http, providers).run(parse_one("db01.corp"))
    assert internal.status is Status.NOT_APPLICABLE
    assert urlhaus(http, providers).run(parse_one("a" * 40)).status is Status.NOT_APPLICABLE
    assert providers.count("/urlhaus/") == 0


def test_operator_quota_applies_to_urlhaus(http, providers) -> None:
    check = urlhaus(http, providers, quota=Quota("urlhaus-test", [(1, 60)]))
    first = check.run(parse_one("evil.example.com"))
    second = check.run(parse_one("good.example.com"))
    assert first.status is Status.OK
    assert second.status is Status.QUOTA_EXHAUSTED and second.summary == "quota exhausted: not sent"
    assert providers.count("/urlhaus/") == 1


# --- blocklist files -------------------------------------------------------------------


BLOCKLIST = """\
# operator's list
evil[.]example                 # a domain and everything below it
0.0.0.0 tracker.example.net    hosts-file form
||ads.example.org^
203.0.113.7
198.51.100.0/24
2001:db8:bad::/48
http://files.example.com/drop.exe
44d88612fea8a8f36de82e1278abb02f
not an indicator at all !!
"""


@pytest.fixture
def listfile(tmp_path: Path) -> Path:
    path = tmp_path / "soc-blocklist.txt"
    path.write_text(BLOCKLIST)
    return path


@pytest.mark.parametrize(
    ("value", "entry"),
    [
        ("evil.example", "evil.example"),
        ("https://cdn.evil.example/x", "evil.example"),
        ("user@mail.evil.example", "evil.example"),
        ("tracker.example.net", "tracker.example.net"),
        ("ads.example.org", "ads.example.org"),
        ("203.0.113.7", "203.0.113.7"),
        ("198.51.100.200", "198.51.100.0/24"),
        ("2001:db8:bad::1", "2001:db8:bad::/48"),
        ("hxxp://files.example[.]com/drop.exe", "http://files.example.com/drop.exe"),
        ("44D88612FEA8A8F36DE82E1278ABB02F", "44d88612fea8a8f36de82e1278abb02f"),
    ],
)
def test_blocklist_hit_is_malicious(listfile: Path, value: str, entry: str) -> None:
    result = BlocklistCheck([listfile]).run(parse_one(value))
    assert result.level is Level.MALICIOUS
    assert result.data == {"entry": entry, "list": "soc-blocklist.txt"}


@pytest.mark.parametrize(
    "value",
    ["notevil.example", "example.net", "203.0.113.8", "http://files.example.com/other.exe"],
)
def test_blocklist_miss(listfile: Path, value: str) -> None:
    result = BlocklistCheck([listfile]).run(parse_one(value))
    assert result.status is Status.OK and result.level is Level.NONE


def test_blocklist_is_reread_when_the_file_changes(listfile: Path) -> None:
    check = BlocklistCheck([listfile])
    assert check.run(parse_one("new-threat.example")).level is Level.NONE
    listfile.write_text(BLOCKLIST + "new-threat.example\n")
    stat = listfile.stat()
    os.utime(listfile, (stat.st_atime, stat.st_mtime + 5))
    assert check.run(parse_one("new-threat.example")).level is Level.MALICIOUS


def test_blocklist_not_configured_or_missing(tmp_path: Path) -> None:
    assert BlocklistCheck([]).run(parse_one("evil.example")).status is Status.NOT_CONFIGURED
    missing = BlocklistCheck([tmp_path / "gone.txt"]).run(parse_one("evil.example"))
    assert missing.status is Status.ERROR and "unreadable" in missing.summary
