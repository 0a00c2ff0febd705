"""TLS, the WHOIS fallback, URLhaus and the blocklist through the web page, the JSON API, the
exports and the CLI, each against its local stand-in."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from lookup_http import URLHAUS_KEY
from lookup_tls import Pki, TlsServer
from lookup_whois import fixtures

from clubstack.cli import main
from tests.conftest import api_token, login


@pytest.fixture
def stand_ins(tmp_path: Path) -> Iterator[dict[str, Any]]:
    pki = Pki.make(tmp_path)
    tls = TlsServer(pki.chain("expired"), tmp_path).start()
    iana, registry, registrar = fixtures()
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text("# ours\nblocked.example.org\n")
    yield {
        "pki": pki,
        "tls": tls,
        "iana": iana,
        "registry": registry,
        "registrar": registrar,
        "blocklist": blocklist,
    }
    tls.stop()
    for server in (iana, registry, registrar):
        server.stop()


@pytest.fixture
def desk(make_app, dns_server, providers, stand_ins) -> Any:
    s = stand_ins
    allow = [providers.host, f"localhost:{s['tls'].port}"] + [
        server.address for server in (s["iana"], s["registry"], s["registrar"])
    ]
    return make_app(
        lookup_nameservers=dns_server.nameserver,
        lookup_dns_timeout=1,
        lookup_dns_lifetime=1.5,
        lookup_dkim_selectors="",
        lookup_checks="dns,rdap,tls,urlhaus,blocklist",
        lookup_rdap_url=f"{providers.url}/rdap",
        lookup_whois_iana_server=s["iana"].address,
        lookup_whois_servers=f"whois.denic.de={s['registry'].address}",
        lookup_tls_ca_file=str(s["pki"].root_file),
        lookup_tls_ports=str(s["tls"].port),  # the local server's random port
        lookup_urlhaus_url=f"{providers.url}/urlhaus/v1",
        lookup_urlhaus_api_key=URLHAUS_KEY,
        lookup_blocklist_files=str(s["blocklist"]),
        lookup_workers=4,
        http_allow_hosts=",".join(allow),
        http_retries=0,
    )


def indicators(stand_ins: dict[str, Any]) -> list[str]:
    return [
        f"https://localhost:{stand_ins['tls'].port}/login",
        "beispiel-gmbh.de",
        "evil.example.com",
        "www.blocked.example.org",
    ]


def by_indicator(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["indicator"]: row for row in results}


def test_new_checks_in_api_page_and_exports(desk, stand_ins) -> None:
    client = desk.test_client()
    login(client, desk, "soc@example.org", nickname="soc")
    headers = {"Authorization": f"Bearer {api_token(client)}"}
    created = client.post(
        "/lookup/api/lookups", json={"indicators": indicators(stand_ins)}, headers=headers
    )
    assert created.status_code == 202
    status = client.get(created.headers["Location"], headers=headers).get_json()
    assert status["status"] == "done"
    assert status["checks"] == ["dns", "rdap", "tls", "urlhaus", "blocklist"]
    rows = by_indicator(status["results"])

    tls_url = indicators(stand_ins)[0]
    tls = rows[tls_url]["results"]["tls"]
    assert tls["level"] == "suspicious" and tls["data"]["verified"] is False
    assert any(f["text"].startswith("expired 3 days ago") for f in tls["findings"])
    assert rows[tls_url]["verdict"] == "suspicious"

    whois = rows["beispiel-gmbh.de"]["results"]["rdap"]
    assert whois["data"]["source"] == "whois" and "via WHOIS" in whois["summary"]

    assert rows["evil.example.com"]["results"]["urlhaus"]["level"] == "malicious"
    assert rows["evil.example.com"]["verdict"] == "malicious"
    blocked = rows["www.blocked.example.org"]
    assert blocked["results"]["blocklist"]["data"] == {
        "entry": "blocked.example.org",
        "list": "blocklist.txt",
    }
    assert blocked["verdict"] == "malicious"

    batch_id = status["id"]
    page = client.get(f"/lookup/batches/{batch_id}").get_data(as_text=True)
    for title in ("TLS certificate", "URLhaus", "Blocklist", "Registration"):
        assert f">{title}" in page
    assert "via WHOIS" in page and "expired 3 days ago" in page
    # the presented chain, leaf first, in the expanded TLS cell
    assert "Certificates the server presented" in page
    assert "CN=Test Intermediate CA,O=clubstack tests" in page
    assert "ec-secp256r1 256 bits" in page and "(expired)" in page and "ecdsa-with-sha256" in page
    assert "Source: WHOIS (whois.denic.de)" in page

    exported = client.get(f"/lookup/batches/{batch_id}.csv").get_data(as_text=True)
    table = list(csv.DictReader(io.StringIO(exported)))
    assert {"tls_level", "urlhaus_summary", "blocklist_level"} <= set(table[0])
    levels = {row["indicator"]: row for row in table}
    assert levels["www[.]blocked[.]example[.]org"]["blocklist_level"] == "malicious"
    assert levels[tls_url]["tls_level"] == "suspicious"
    as_json = json.loads(client.get(f"/lookup/batches/{batch_id}.json").get_data(as_text=True))
    assert by_indicator(as_json["results"])["beispiel-gmbh.de"]["results"]["rdap"]["data"][
        "whois_servers"
    ] == ["whois.denic.de"]


def test_new_checks_from_the_cli(desk, stand_ins) -> None:
    runner = CliRunner()
    out = runner.invoke(
        main, ["lookup", "--json", "--checks", "tls,blocklist", *indicators(stand_ins)]
    )
    assert out.exit_code == 3, out.output  # the blocklist hit is malicious
    data = json.loads(out.output)
    assert data["checks"] == ["tls", "blocklist"]
    rows = by_indicator(data["results"])
    assert rows[indicators(stand_ins)[0]]["results"]["tls"]["data"]["verified"] is False
    assert set(rows["beispiel-gmbh.de"]["results"]) == {"tls", "blocklist"}
    table = runner.invoke(main, ["lookup", "--checks", "blocklist", "www.blocked.example.org"])
    assert table.exit_code == 3 and "Blocklist" in table.output
    wrong = runner.invoke(main, ["lookup", "--checks", "dns,nonsense", "example.com"])
    assert wrong.exit_code == 2 and "unknown checks: nonsense" in wrong.output
