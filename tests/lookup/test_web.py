"""The lookup desk over HTTP: pages, uploads, batches, exports, the JSON API, limits."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from typing import Any

import pytest
from lookup_http import ABUSE_KEY, VT_KEY

from tests.conftest import api_token, csrf_token, login


@pytest.fixture
def lookup_app(make_app, dns_server, providers) -> Any:
    return make_app(
        lookup_nameservers=dns_server.nameserver,
        lookup_dns_timeout=1,
        lookup_dns_lifetime=1.5,
        lookup_dkim_selectors="sel1",
        lookup_rdap_url=f"{providers.url}/rdap",
        lookup_virustotal_url=f"{providers.url}/vt/api/v3",
        lookup_virustotal_api_key=VT_KEY,
        lookup_abuseipdb_url=f"{providers.url}/abuseipdb/api/v2",
        lookup_abuseipdb_api_key=ABUSE_KEY,
        lookup_quota_max_wait=0,
        lookup_virustotal_per_minute=100,
        lookup_workers=8,
        lookup_max_indicators=5,
        lookup_max_upload_bytes=2048,
        http_allow_hosts=providers.host,
        http_retries=0,
    )


@pytest.fixture
def analyst(lookup_app) -> Any:
    client = lookup_app.test_client()
    login(client, lookup_app, "analyst@example.org", nickname="analyst")
    return client


def preview(client, text: str = "", file: tuple[bytes, str] | None = None) -> Any:
    data: dict[str, Any] = {"text": text, "csrf_token": csrf_token(client, "/lookup/")}
    if file is not None:
        data["file"] = (io.BytesIO(file[0]), file[1])
    return client.post("/lookup/preview", data=data, content_type="multipart/form-data")


def run(client, indicators: list[str]) -> Any:
    token = csrf_token(client, "/lookup/")
    return client.post("/lookup/batches", data={"indicators": indicators, "csrf_token": token})


def test_login_required(lookup_app) -> None:
    client = lookup_app.test_client()
    assert client.get("/lookup/").status_code == 302
    response = client.post(
        "/lookup/api/lookups",
        json={"indicators": ["example.com"]},
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert response.status_code == 401
    assert client.get("/lookup/api/lookups/x").status_code == 401


def test_preview_shows_what_was_recognised(analyst) -> None:
    page = preview(
        analyst,
        "beacon to evil[.]example[.]com and 185.220.101[.]4, hash 44D88612FEA8A8F36DE82E1278ABB02F",
    ).get_data(as_text=True)
    assert "3 indicators recognised" in page
    assert "evil.example.com\n185.220.101.4\n44d88612fea8a8f36de82e1278abb02f" in html.unescape(
        page
    )
    assert "evil[.]example[.]com" in page  # "As written": the analyst's own defanged text


def test_full_batch_results_page_and_exports(analyst, providers) -> None:
    response = run(analyst, ["evil.example.com", "good.example.com", "185.220.101.4"])
    assert response.status_code == 303
    batch_url = response.headers["Location"]
    page = analyst.get(batch_url).get_data(as_text=True)
    assert "done" in page
    # verdict first, malicious rows first and defanged
    rows = page.split("<tbody")[1]
    assert rows.index("evil[.]example[.]com") < rows.index("good.example.com")
    assert "malicious" in rows and "12/" in rows  # VirusTotal summary
    assert "SPF ok" in rows  # mail security details for good.example.com
    assert "Tor exit node" in rows

    exported = analyst.get(batch_url + ".csv")
    assert exported.headers["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    by_indicator = {r["indicator"]: r for r in table}
    assert by_indicator["evil[.]example[.]com"]["verdict"] == "malicious"
    # its MTA-STS host has a public address that cannot be reached from the test machine
    assert by_indicator["good.example.com"]["mail_level"] == "suspicious"
    assert "MTA-STS policy unavailable" in by_indicator["good.example.com"]["mail_summary"]
    assert by_indicator["185[.]220[.]101[.]4"]["abuseipdb_level"] == "malicious"

    data = json.loads(analyst.get(batch_url + ".json").get_data(as_text=True))
    assert data["status"] == "done" and data["progress"]["percent"] == 100
    evil = next(r for r in data["results"] if r["indicator"] == "evil.example.com")
    assert evil["results"]["virustotal"]["data"]["last_analysis_stats"]["malicious"] == 12


def test_second_lookup_within_ttl_spends_no_quota(analyst, providers) -> None:
    run(analyst, ["evil.example.com"])
    before = providers.count("/vt/")
    response = run(analyst, ["evil.example.com"])
    assert providers.count("/vt/") == before
    page = analyst.get(response.headers["Location"]).get_data(as_text=True)
    assert "as of" in page


def test_history_lists_only_own_batches(lookup_app, analyst) -> None:
    batch_url = run(analyst, ["good.example.com"]).headers["Location"]
    assert batch_url.split("/")[-1] in analyst.get("/lookup/").get_data(as_text=True)
    other = lookup_app.test_client()
    login(other, lookup_app, "other@example.org", nickname="other")
    assert batch_url.split("/")[-1] not in other.get("/lookup/").get_data(as_text=True)
    assert other.get(batch_url).status_code == 404
    assert other.get(batch_url + ".csv").status_code == 404


def test_too_many_indicators_is_refused_clearly(analyst) -> None:
    text = " ".join(f"host{i}.example.com" for i in range(6))
    response = preview(analyst, text)
    assert response.status_code == 413
    assert "6 indicators found; at most 5 fit in one batch." in response.get_data(as_text=True)


def test_nothing_recognised(analyst) -> None:
    response = preview(analyst, "hello world, nothing here")
    assert response.status_code == 400
    assert "No URL, domain, IP address" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("content", "name", "status", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "x.txt", 400, "binary file"),
        (b"   \n ", "x.txt", 400, "The file is empty."),
        (b"a.example.com " * 300, "big.txt", 413, "larger than 2048 bytes"),
    ],
)
def test_bad_uploads(analyst, content, name, status, message) -> None:
    response = preview(analyst, file=(content, name))
    assert response.status_code == status
    assert message in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "content",
    [
        "evil.example.com,Müller\n185.220.101.4,x\n".encode("utf-8-sig"),
        "evil.example.com,Müller\n185.220.101.4,x\n".encode("utf-16"),
        "evil.example.com;Müller\n185.220.101.4;x\n".encode("cp1252"),
    ],
)
def test_csv_uploads_in_several_encodings(analyst, content) -> None:
    page = preview(analyst, file=(content, "alerts.csv")).get_data(as_text=True)
    assert "2 indicators recognised" in page


def test_api_accepts_and_reports(lookup_app, analyst) -> None:
    token = api_token(analyst)
    client = lookup_app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    response = client.post(
        "/lookup/api/lookups", json={"text": "see good.example.com and 192.0.2.10"}, headers=headers
    )
    assert response.status_code == 202
    body = response.get_json()
    assert body["indicators"] == 2
    status = client.get(response.headers["Location"], headers=headers).get_json()
    assert status["status"] == "done"
    assert len(status["checks"]) == 8  # the tests' default set (conftest.py): all but tls
    assert status["progress"] == {"done": 16, "total": 16, "percent": 100}
    assert {r["indicator"] for r in status["results"]} == {"good.example.com", "192.0.2.10"}


def test_api_errors(lookup_app, analyst) -> None:
    headers = {"Authorization": f"Bearer {api_token(analyst)}"}
    client = lookup_app.test_client()
    bad = client.post(
        "/lookup/api/lookups", json={"indicators": ["not an indicator"]}, headers=headers
    )
    assert bad.status_code == 400
    assert bad.get_json()["fields"]["indicators.0"].startswith("not a URL")
    empty = client.post("/lookup/api/lookups", json={}, headers=headers)
    assert empty.status_code == 400
    many = client.post(
        "/lookup/api/lookups",
        json={"indicators": [f"h{i}.example.com" for i in range(6)]},
        headers=headers,
    )
    assert many.status_code == 413 and many.get_json()["limit"] == 5
    missing = client.get("/lookup/api/lookups/nope", headers=headers)
    assert missing.status_code == 404


def test_per_user_rate_limit(make_app, dns_server) -> None:
    app = make_app(
        lookup_nameservers=dns_server.nameserver,
        lookup_rate_limit="2/hour",
        services="lookup",
        lookup_dkim_selectors="",
    )
    client = app.test_client()
    login(client, app, "fast@example.org", nickname="fast")
    headers = {"Authorization": f"Bearer {api_token(client)}"}
    codes = [
        client.post(
            "/lookup/api/lookups", json={"indicators": ["db01.internal"]}, headers=headers
        ).status_code
        for _ in range(3)
    ]
    assert codes == [202, 202, 429]


def test_batch_on_every_database(make_app, db_kind, dns_server) -> None:
    app = make_app(db_kind, lookup_nameservers=dns_server.nameserver, lookup_dkim_selectors="")
    client = app.test_client()
    login(client, app, f"db-{db_kind}@example.org", nickname=f"db{db_kind}")
    headers = {"Authorization": f"Bearer {api_token(client)}"}
    long_url = "https://good.example.com/" + "a" * 1900
    response = client.post(
        "/lookup/api/lookups",
        json={"indicators": ["good.example.com", "db01.internal", long_url]},
        headers=headers,
    )
    assert response.status_code == 202
    again = client.post(
        "/lookup/api/lookups", json={"indicators": ["good.example.com"]}, headers=headers
    )
    status = client.get(again.headers["Location"], headers=headers).get_json()
    assert status["status"] == "done"
    assert status["results"][0]["results"]["dns"]["data"]["records"]["A"] == ["192.0.2.10"]
    first = client.get(response.headers["Location"], headers=headers).get_json()
    assert {r["indicator"] for r in first["results"]} == {
        "good.example.com",
        "db01.internal",
        long_url,
    }


def test_api_key_from_secret_file(make_app, tmp_path) -> None:
    key_file = tmp_path / "vt.key"
    key_file.write_text("from-a-file\n")
    make_app(lookup_virustotal_api_key_file=str(key_file))
    from clubstack.lookup.batches import settings

    assert settings().virustotal_key() == "from-a-file"
    assert "from-a-file" not in repr(settings())


def test_batch_spread_over_two_processes(make_app, dns_server, providers) -> None:
    app = make_app(
        lookup_nameservers=dns_server.nameserver,
        lookup_dkim_selectors="",
        lookup_processes=2,
        lookup_workers=2,
        lookup_virustotal_url=f"{providers.url}/vt/api/v3",
        lookup_virustotal_api_key=VT_KEY,
        lookup_virustotal_per_minute=100,
        http_allow_hosts=providers.host,
    )
    client = app.test_client()
    login(client, app, "procs@example.org", nickname="procs")
    headers = {"Authorization": f"Bearer {api_token(client)}"}
    response = client.post(
        "/lookup/api/lookups",
        json={"indicators": ["evil.example.com", "good.example.com", "db01.internal"]},
        headers=headers,
    )
    status = client.get(response.headers["Location"], headers=headers).get_json()
    assert status["status"] == "done" and status["progress"]["percent"] == 100
    evil = next(r for r in status["results"] if r["indicator"] == "evil.example.com")
    assert evil["verdict"] == "malicious"  # VirusTotal ran in a child, with the quota in the DB
    assert providers.count("/vt/") == 2


def test_a_thousand_indicators_fit_through_the_preview_form(make_app, dns_server) -> None:
    """A form may have at most 1,000 parts: the preview sends the list as one field."""
    app = make_app(lookup_nameservers=dns_server.nameserver, jobs_immediate="false")
    client = app.test_client()
    login(client, app, "bulk@example.org", nickname="bulk")
    text = "\n".join(f"host{i}.internal" for i in range(1000))
    page = preview(client, text).get_data(as_text=True)
    assert "1000 indicators recognised" in page
    field = re.search(r'name="indicators" value="([^"]*)"', page).group(1)
    token = csrf_token(client, "/lookup/")
    response = client.post(
        "/lookup/batches", data={"indicators": html.unescape(field), "csrf_token": token}
    )
    assert response.status_code == 303
    status = client.get("/lookup/api/lookups/" + response.headers["Location"].rsplit("/", 1)[1])
    assert status.get_json()["progress"]["total"] == 8000  # x 8 checks: the tests' default set


def test_deleting_an_account_deletes_its_batches(lookup_app, analyst) -> None:
    from sqlalchemy import func, select

    from clubstack.core.accounts.closing import close_account
    from clubstack.core.accounts.models import User
    from clubstack.core.db import db
    from clubstack.lookup.models import LookupBatch, LookupItem

    run(analyst, ["db01.internal", "good.example.com"])
    with lookup_app.app_context():
        session = db.session()
        user = session.scalar(select(User).where(User.email == "analyst@example.org"))
        close_account(session, user, lookup_app.extensions["clubstack.services"])
        assert session.scalar(select(func.count()).select_from(LookupBatch)) == 0
        assert session.scalar(select(func.count()).select_from(LookupItem)) == 0
