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


def test_cli_table_reads_in_80_columns(make_app, dns_server, providers) -> None:
    """COLUMNS=80: one block per indicator instead of an eleven-column table squeezed into
    slivers; every line fits except an indicator, which stays whole on its own line so it can
    be copied; every result says its level in words."""
    from lookup_http import VT_KEY

    make_app(
        lookup_nameservers=dns_server.nameserver,
        lookup_dkim_selectors="",
        lookup_rdap_url=f"{providers.url}/rdap",
        lookup_virustotal_url=f"{providers.url}/vt/api/v3",
        lookup_virustotal_api_key=VT_KEY,
        lookup_virustotal_per_minute=100,
        # refused by the SSRF guard before anything is sent: an error result
        lookup_abuseipdb_url="http://127.0.0.1:9/abuseipdb/api/v2",
        lookup_abuseipdb_api_key="k",
        http_allow_hosts=providers.host,
    )
    long_url = "http://good.example.com/" + "wp-content/" * 12 + "index.php?id=" + "0" * 40
    indicators = ["evil.example.com", "good.example.com", long_url, "185.220.101.4"]
    runner = CliRunner()
    exported = runner.invoke(main, ["lookup", "--csv", *indicators]).output
    shown = {row["indicator"] for row in csv.DictReader(io.StringIO(exported))}  # defanged or not
    assert len(shown) == 4 and "evil[.]example[.]com" in shown
    answer = runner.invoke(main, ["lookup", *indicators], env={"COLUMNS": "80"})
    assert answer.exit_code == 3, answer.output
    lines = answer.output.splitlines()
    assert shown <= set(lines), "every indicator on a line of its own, unbroken"
    too_long = [line for line in lines if len(line) > 80 and line not in shown]
    assert not too_long, too_long
    assert len(long_url) > 80 and long_url in lines
    # a line per check under each indicator, its level in words
    assert sum(line.startswith("  DNS ") for line in lines) == 4
    assert sum(line.startswith("  VirusTotal ") for line in lines) == 4
    evil = lines.index("evil[.]example[.]com")
    assert lines[evil - 1].startswith("malicious")
    virustotal = next(line for line in lines[evil:] if line.startswith("  VirusTotal "))
    assert "malicious" in virustotal and "12/" in virustotal
    abuseipdb = next(line for line in lines if line.startswith("  AbuseIPDB") and "n/a" not in line)
    assert abuseipdb.split()[1] == "error", abuseipdb

    wide = runner.invoke(main, ["lookup", "good.example.com"], env={"COLUMNS": "260"})
    header = next(line for line in wide.output.splitlines() if "verdict" in line)
    assert "indicator" in header and "VirusTotal" in header and "Blocklist" in header
