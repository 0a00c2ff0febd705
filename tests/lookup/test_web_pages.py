"""What the lookup pages say, read from the server-rendered HTML (no JavaScript involved):
the preview's columns and the sentence that explains them, the results' legend and labels."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from sample_batch import CHECKS, ITEMS, insert_finished_batch

from clubstack.lookup.batches import CHECK_TITLES
from tests.conftest import csrf_token, login


class Cells(HTMLParser):
    """The cells of one table (found by class): each as (tag, class, data-label, text)."""

    def __init__(self, table_class: str) -> None:
        super().__init__()
        self.table_class = table_class
        self.inside = False
        self.rows: list[list[tuple[str, str, str, str]]] = []
        self.cell: list[Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table" and self.table_class in (found.get("class") or "").split():
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = [tag, found.get("class") or "", found.get("data-label") or "", ""]

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.cell[3] = " ".join(self.cell[3].split())
            self.rows[-1].append(tuple(self.cell))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell[3] += data


def cells(page: str, table_class: str) -> list[list[tuple[str, str, str, str]]]:
    parser = Cells(table_class)
    parser.feed(page)
    return parser.rows


@pytest.fixture
def member(make_app) -> tuple[Any, Any]:
    app = make_app()
    client = app.test_client()
    login(client, app, "soc@example.org", nickname="soc")
    return app, client


def test_preview_as_written_is_the_analysts_text_and_columns_follow_the_sentence(
    member,
) -> None:
    _, client = member
    text = "beacon to hxxp://evil[.]example/gate.php from ceo(at)corp[.]example, WWW.Example.ORG."
    page = client.post(
        "/lookup/preview", data={"text": text, "csrf_token": csrf_token(client, "/lookup/")}
    ).get_data(as_text=True)
    header, *rows = cells(page, "lookup-preview")
    assert [c[3] for c in header] == ["#", "Kind", "Indicator", "As written"]
    assert [tuple(c[3] for c in row[1:]) for row in rows] == [
        ("url", "http://evil.example/gate.php", "hxxp://evil[.]example/gate.php"),
        ("email", "ceo@corp.example", "ceo(at)corp[.]example"),
        ("domain", "www.example.org", "WWW.Example.ORG"),
    ]
    # the sentence above names the columns in their order and says what Indicator holds
    sentence = re.search(r"<p>Check the list.*?</p>", page, re.S)
    assert sentence is not None
    words = " ".join(re.sub(r"<[^>]+>", "", html.unescape(sentence.group(0))).split()).lower()
    positions = [words.find(name) for name in ("kind", "indicator", "as written")]
    assert -1 not in positions and positions == sorted(positions), words
    assert "normalised" in words and "refanged" in words


def test_results_page_labels_every_state_in_words_with_error_apart(member) -> None:
    app, client = member
    batch_id = insert_finished_batch(app, "soc@example.org")
    page = client.get(f"/lookup/batches/{batch_id}").get_data(as_text=True)

    legend = re.search(r'<section class="lookup-legend".*?</section>', page, re.S)
    assert legend is not None
    for label, css in [
        ("malicious", "level-malicious"),
        ("suspicious", "level-suspicious"),
        ("harmless", "level-harmless"),
        ("no data", "level-none"),
        ("error", "lookup-error"),
    ]:
        assert f'<span class="badge {css}">{label}</span>' in legend.group(0)
    assert "not applicable" in legend.group(0)

    header, *rows = cells(page, "lookup-results")
    assert [c[3].rstrip(" ▼▲") for c in header] == ["Verdict", "Indicator"] + [
        CHECK_TITLES[c] for c in CHECKS
    ]
    assert len(rows) == len(ITEMS)
    by_indicator = {row[1][3].rsplit(" ", 1)[0]: row for row in rows}
    ip = by_indicator["185[.]220[.]101[.]4"]
    assert ip[0][3] == "malicious 3 errors"
    results = dict(zip(CHECKS, ip[2:], strict=True))
    # a failed check: its own class (not the grey of "no data"), the word, and why
    assert results["rdap"][1] == "lookup-error" and results["rdap"][3] == "error RDAP HTTP 503"
    assert results["virustotal"][3] == "error quota exhausted: not sent"
    assert results["mail"][1] == "lookup-na" and results["mail"][3] == "not applicable"
    assert results["dns"][1] == "level-none" and results["dns"][3].startswith("no data")
    assert results["abuseipdb"][3].startswith("malicious confidence 100%")
    # every result cell names its check, for the narrow layout
    for row in rows:
        assert [c[2] for c in row[2:]] == [CHECK_TITLES[c] for c in CHECKS]
    ipv6 = by_indicator["2001:db8:85a3::8a2e:370:7334"]
    assert ipv6[0][3] == "no data 1 error"  # a "no data" verdict says what is missing


def test_results_page_is_whole_without_javascript(member) -> None:
    """Everything is in the HTML: no script once a batch is done; while it runs, the page
    refreshes itself and the script only speeds the numbers up."""
    app, client = member
    batch_id = insert_finished_batch(app, "soc@example.org")
    page = client.get(f"/lookup/batches/{batch_id}").get_data(as_text=True)
    assert "<script" not in page
    text = html.unescape(page)
    for *_, results in ITEMS:
        for result in results.values():
            assert result["summary"] in text or result["status"] == "not_applicable"
    assert "<details>" in page  # findings open with the browser's own disclosure widget
    assert f'href="/lookup/batches/{batch_id}?sort=virustotal&amp;dir=desc"' in page

    from clubstack.core.db import db
    from clubstack.lookup.models import LookupBatch

    with app.app_context():
        running = db.session().get(LookupBatch, batch_id)
        assert running is not None
        running.status, running.done = "running", 10
        db.session().commit()
    page = client.get(f"/lookup/batches/{batch_id}").get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="3">' in page
    assert "This page refreshes itself" in page
    assert '<progress id="batch-progress"' in page and "15%" in page
