"""The registration check's RDAP fields, read from RFC 9083's JSON by lookup/rdapfields.py:
registry answers as registries nest them, dates without a zone, networks given only by their
first and last address, and answers that are not RDAP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lookup_http import ProviderServer, rdap_domain, rdap_network

from clubstack.core.net import HttpClient
from clubstack.lookup.findings import Status
from clubstack.lookup.indicators import parse_one
from clubstack.lookup.registration import RdapCheck


def test_fields_as_registries_write_them(app: Any, providers: ProviderServer) -> None:
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

    held_result = check.run(parse_one("heldshop.org"))
    assert held_result.status is Status.OK
    assert held_result.data["status"] == ["client hold", "server transfer prohibited"]
    assert held_result.data["created"] == "2024-02-29T12:30:00+00:00"
    assert held_result.data["registrar"] == "Held Reg"

    network = check.run(parse_one("2a00:1450:4001::7"))
    assert network.status is Status.OK and network.data["network"] == "2a00:1450::/32"
    tor = check.run(parse_one("185.220.101.4"))
    assert tor.status is Status.OK and tor.data["owner"] == "Zwiebelfreunde e.V."
    old = check.run(parse_one("oldshop.com"))
    created = datetime.fromisoformat(old.data["created"])
    assert abs(datetime.now(UTC) - timedelta(days=4000) - created) < timedelta(days=1)
    for broken in ("limited-rdap.org", "broken-rdap.org"):  # a 429, then JSON that is not RDAP
        assert check.run(parse_one(broken)).status is Status.ERROR, broken
