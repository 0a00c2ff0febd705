"""`clubstack lookup INDICATOR... [--json|--csv]`."""

from __future__ import annotations

import csv
import io
import json

from click.testing import CliRunner

from clubstack.cli import main


def test_cli_json_csv_and_exit_codes(make_app, dns_server, providers) -> None:
    from lookup_http import VT_KEY

    make_app(
        lookup_nameservers=dns_server.nameserver,
        lookup_dkim_selectors="",
        lookup_rdap_url=f"{providers.url}/rdap",
        lookup_virustotal_url=f"{providers.url}/vt/api/v3",
        lookup_virustotal_api_key=VT_KEY,
        lookup_virustotal_per_minute=100,
        http_allow_hosts=providers.host,
    )
    runner = CliRunner()
    clean = runner.invoke(main, ["lookup", "--json", "good.example.com", "db01[.]internal"])
    assert clean.exit_code == 0, clean.output
    data = json.loads(clean.output)
    assert [r["indicator"] for r in data["results"]] == ["good.example.com", "db01.internal"]
    assert data["results"][1]["results"]["dns"]["data"]["records"]["A"] == ["10.1.2.4"]

    bad = runner.invoke(main, ["lookup", "--csv", "evil.example.com"])
    assert bad.exit_code == 3  # something malicious
    rows = list(csv.DictReader(io.StringIO(bad.output)))
    assert rows[0]["indicator"] == "evil[.]example[.]com" and rows[0]["verdict"] == "malicious"

    table = runner.invoke(main, ["lookup", "good.example.com"])
    assert table.exit_code == 0 and "good.example.com" in table.output

    text = runner.invoke(
        main, ["lookup", "--json", "--text"], input="mail from a(at)good[.]example[.]com"
    )
    assert json.loads(text.output)["results"][0]["indicator"] == "a@good.example.com"


def test_cli_bad_input(make_app) -> None:
    make_app()
    runner = CliRunner()
    assert runner.invoke(main, ["lookup"]).exit_code == 2
    wrong = runner.invoke(main, ["lookup", "not-an-indicator"])
    assert wrong.exit_code == 2 and "not a URL" in wrong.output
    assert runner.invoke(main, ["lookup", "--json", "--csv", "a.example.com"]).exit_code == 2
    assert "Look up URLs" in runner.invoke(main, ["lookup", "--help"]).output
