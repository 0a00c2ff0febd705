"""The gate around rdapfields.py's use of whoisit's private bootstrap object: only on tested
versions, and its fallback (reading RFC 9083's fields directly) gives the same results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lookup_http import ProviderServer, rdap_domain, rdap_network

from clubstack.core.net import HttpClient
from clubstack.lookup import rdapfields
from clubstack.lookup.findings import Status
from clubstack.lookup.indicators import parse_one
from clubstack.lookup.registration import RdapCheck

INDICATORS = [
    "oldshop.com",
    "fresh-login.net",
    "www.example.com",
    "heldshop.org",
    "185.220.101.4",
    "2a00:1450:4001::7",
    "unknown-nowhere.com",
    "limited-rdap.org",
    "broken-rdap.org",
]


def test_the_private_path_runs_only_on_tested_versions() -> None:
    assert rdapfields.whoisit_fits("4.1.0") and rdapfields.whoisit_fits("4.0.0")
    assert not rdapfields.whoisit_fits("5.0.0")
    assert not rdapfields.whoisit_fits("3.9.9")


def test_forced_fallback_gives_the_same_results(
    app: Any, providers: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = rdap_domain("heldshop.org", datetime.now(UTC) - timedelta(days=900), "Held Reg")
    held["status"] = ["client hold", "server transfer prohibited"]
    held["entities"][0]["entities"] = [  # the registrar's abuse contact, nested as registries do
        {
            "objectClassName": "entity",
            "roles": ["abuse"],
            "vcardArray": ["vcard", [["fn", {}, "text", "Abuse Desk"]]],
        }
    ]
    held["events"][0]["eventDate"] = "2024-02-29T12:30:00Z"
    providers.rdap_domains["heldshop.org"] = held
    v6 = rdap_network(
        "2a00:1450::", "2a00:1450:ffff:ffff:ffff:ffff:ffff:ffff", "x/0", "V6", "", "NL"
    )
    del v6["cidr0_cidrs"]  # only a start and an end address: the networks are worked out
    v6["entities"][0]["roles"] = ["technical"]  # no owner role: the network's name is shown
    providers.rdap_ips["2a00:1450:4001::7"] = v6
    check = RdapCheck(HttpClient(allow_hosts=[providers.host], retries=0), base_url=providers.url)
    check.base_url += "/rdap"

    assert rdapfields.PARSER == "whoisit"  # this test environment is inside the tested range
    with_whoisit = [check.run(parse_one(text)) for text in INDICATORS]
    monkeypatch.setattr(rdapfields, "PARSER", "own")
    monkeypatch.setattr(rdapfields, "whoisit_parse", None)  # the fallback must not need it
    own = [check.run(parse_one(text)) for text in INDICATORS]

    for text, theirs, ours in zip(INDICATORS, with_whoisit, own, strict=True):
        assert ours.status == theirs.status, text
        if theirs.status is Status.ERROR:  # the wording of a parse error is each parser's own
            assert "malformed" in ours.summary or ours.summary == theirs.summary, text
            continue
        mine, whoisits = ours.to_dict(), theirs.to_dict()
        mine.pop("as_of"), whoisits.pop("as_of")  # when each ran
        assert mine == whoisits, text
    assert with_whoisit[3].data["status"] == ["client hold", "server transfer prohibited"]
    assert with_whoisit[3].data["created"] == "2024-02-29T12:30:00+00:00"
    assert with_whoisit[5].data["network"] == "2a00:1450::/32"
    assert with_whoisit[4].data["owner"] == "Zwiebelfreunde e.V."
    assert [r.status for r in own[-2:]] == [Status.ERROR, Status.ERROR]
