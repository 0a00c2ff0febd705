"""The results page in Chromium at desktop and phone width, light and dark: the table fits
the screen (cards at 360 px, each result naming its check), every state has a readable
colour and a word, and the page works with JavaScript switched off."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sample_batch import CHECKS, ITEMS, insert_finished_batch

from clubstack.lookup.batches import CHECK_TITLES
from tests.conftest import LiveServer, login

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}

# Every cell of the results: where it is, whether it is shown, and the check name its
# narrow layout puts before it.
CELLS = """() => [...document.querySelectorAll("table.lookup-results tbody tr")].map(tr =>
  [...tr.children].map(cell => {
    const box = cell.getBoundingClientRect();
    return {left: box.left, right: box.right, width: box.width, text: cell.innerText,
            shown: cell.checkVisibility(),
            label: getComputedStyle(cell, "::before").content};
  }))"""

# The contrast ratio (WCAG 2) of each coloured label against what is behind it.
CONTRAST = """(selector) => {
  const channels = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = (c) => { const [r, g, b] = channels(c).slice(0, 3).map(v => {
      v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const behind = (el) => { for (; el; el = el.parentElement) {
      const bg = getComputedStyle(el).backgroundColor;
      if (channels(bg)[3] !== 0) return bg; } return "rgb(255, 255, 255)"; };
  return [...document.querySelectorAll(selector)].map(el => {
    const [a, b] = [lum(getComputedStyle(el).color), lum(behind(el))];
    return {text: el.innerText.trim(), cls: el.className,
            bg: behind(el), ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)};
  });
}"""


@pytest.fixture
def results(make_app: Any) -> Iterator[tuple[str, str]]:
    """A finished batch with every level and status, served on loopback; (url, cookie)."""
    app = make_app()
    client = app.test_client()
    login(client, app, "soc@example.org", nickname="soc")
    batch_id = insert_finished_batch(app, "soc@example.org")
    cookie = client.get_cookie("clubstack_session")
    server = LiveServer(app)
    try:
        yield f"{server.url}/lookup/batches/{batch_id}", cookie.value
    finally:
        server.stop()


def open_page(browser: Any, results: tuple[str, str], **options: Any) -> Any:
    url, cookie = results
    context = browser.new_context(**options)
    context.add_cookies([{"name": "clubstack_session", "value": cookie, "url": url}])
    page = context.new_page()
    page.set_default_timeout(15_000)
    answer = page.goto(url)
    assert answer is not None and answer.status == 200
    return page


def overflow(page: Any) -> int:
    return page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - window.innerWidth"
    )


def test_at_360_px_every_result_is_on_screen_and_names_its_check(browser, results) -> None:
    page = open_page(browser, results, viewport=PHONE)
    try:
        assert overflow(page) <= 0
        table = page.locator("table.lookup-results")
        assert table.evaluate("t => t.scrollWidth <= t.clientWidth"), "no scrolling inside"
        rows = page.evaluate(CELLS)
        assert len(rows) == len(ITEMS)
        for row in rows:
            assert len(row) == 2 + len(CHECKS)
            for cell in row:
                assert cell["shown"] and cell["width"] > 0, cell
                assert cell["left"] >= 0 and cell["right"] <= PHONE["width"], cell
            assert [cell["label"] for cell in row[2:]] == [f'"{CHECK_TITLES[c]}"' for c in CHECKS]
            assert row[0]["text"].split()[0] in ("malicious", "suspicious", "harmless", "no")
        # the whole phishing URL is there, wrapped, not cut off
        assert (
            rows[0][1]["text"]
            .replace("\n", "")
            .startswith("hxxp://login-microsoftonline-secure-verify[.]evil[.]example/wp-content/")
        )
        # a result's details open on tap and stay on screen, the TLS chain included
        # (the indicator is a th: the verdict is td 0, the checks td 1 onwards)
        tls = (
            page.locator("table.lookup-results tbody tr")
            .first.locator("td")
            .nth(1 + CHECKS.index("tls"))
        )
        tls.locator("summary").click()
        chain = tls.locator("ol.cert-chain")
        assert chain.is_visible()
        box = chain.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        assert overflow(page) <= 0
    finally:
        page.context.close()


def test_at_1280_px_the_table_fits_without_scrolling(browser, results) -> None:
    page = open_page(browser, results, viewport=DESKTOP)
    try:
        assert overflow(page) <= 0
        heads = page.locator("table.lookup-results thead th")
        tops = {
            round(box["y"]) for box in (heads.nth(i).bounding_box() for i in range(heads.count()))
        }
        assert len(tops) == 1, "a real table: every column title on one row"
        table = page.locator("table.lookup-results").bounding_box()
        assert table is not None and table["x"] + table["width"] <= DESKTOP["width"]
        for row in page.evaluate(CELLS):
            for cell in row:
                assert cell["right"] <= DESKTOP["width"], cell
        # a level badge is never broken inside its word
        badges = page.evaluate(
            "() => [...document.querySelectorAll('table.lookup-results .badge')]"
            ".map(b => b.getClientRects().length)"
        )
        assert badges and set(badges) == {1}
    finally:
        page.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_state_has_its_own_readable_colour(browser, results, scheme: str) -> None:
    page = open_page(browser, results, viewport=DESKTOP, color_scheme=scheme)
    try:
        legend = page.evaluate(CONTRAST, ".lookup-legend li > :first-child")
        assert [item["text"] for item in legend] == [
            "malicious",
            "suspicious",
            "harmless",
            "no data",
            "error",
            "not applicable",
        ]
        backgrounds = [item["bg"] for item in legend[:5]]
        assert len(set(backgrounds)) == 5, f"each level and error its own colour: {legend}"
        cells = page.evaluate(
            CONTRAST,
            "table.lookup-results td, table.lookup-results .badge,"
            " table.lookup-results summary, table.lookup-results .muted",
        )
        for item in legend + cells:
            assert item["ratio"] >= 4.5, item
        errors = [c for c in cells if "lookup-error" in c["cls"] and c["text"]]
        assert errors and {c["bg"] for c in errors} == {legend[4]["bg"]}
    finally:
        page.context.close()


def test_without_javascript_details_open_and_sorting_works(browser, results) -> None:
    page = open_page(browser, results, viewport=PHONE, java_script_enabled=False)
    try:
        first = page.locator("table.lookup-results tbody tr").first
        virustotal = first.locator("td").nth(1 + CHECKS.index("virustotal"))
        virustotal.locator("summary").click()
        assert virustotal.get_by_text("14 engines: phishing").is_visible()
        page.get_by_role("link", name="Indicator").click()
        page.wait_for_url("**sort=indicator**")
        rows = page.locator("table.lookup-results tbody tr")
        assert rows.count() == len(ITEMS)
        assert "plusall.example.com" in rows.first.inner_text()  # descending first
        assert "185[.]220[.]101[.]4" in rows.last.inner_text()
    finally:
        page.context.close()


def test_preview_at_360_px_shows_both_forms_without_sideways_scrolling(browser, results) -> None:
    url, _ = results
    page = open_page(browser, results, viewport=PHONE)
    try:
        page.goto(url.split("/lookup/")[0] + "/lookup/")
        page.get_by_label("Indicators or text").fill(
            "click on hxxps://login-microsoftonline-secure-verify[.]evil[.]example/wp-content/"
            "plugins/akismet/owa/index.php?client_id=00000002-0000-0ff1-ce00-000000000000"
            " from ceo(at)plusall[.]example[.]com"
        )
        page.get_by_role("button", name="Recognise indicators").click()
        assert page.get_by_role("heading", name="2 indicators recognised").is_visible()
        assert overflow(page) <= 0
        table = page.locator("main table")
        assert table.evaluate("t => t.parentElement.scrollWidth <= t.parentElement.clientWidth")
        cells = table.locator("td")
        for i in range(cells.count()):
            box = cells.nth(i).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
        written = table.locator("tbody tr").first.locator("td").nth(3).inner_text()
        assert written.replace("\n", "").startswith("hxxps://login-microsoftonline-secure-verify")
        kinds = [table.locator("tbody tr").nth(i).locator("td").nth(1) for i in range(2)]
        assert [k.inner_text() for k in kinds] == ["url", "email"]  # short words stay whole
    finally:
        page.context.close()
