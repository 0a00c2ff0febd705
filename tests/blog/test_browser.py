"""In a real browser: moderation by an admin, and the embed script on a generated page
talking to the comments API across origins (CORS)."""

from __future__ import annotations

import re
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from clubstack.blog.build import build
from tests.conftest import LiveServer, free_port, link_in, make_admin, outbox_messages

pytestmark = pytest.mark.browser
POST = "/2021/02/a-new-website/"


def test_moderation_in_the_browser(make_app: Any, page: Any) -> None:
    app = make_app(
        blog_premoderate="true", blog_min_submit_seconds=1, blog_admin_email="admin@example.org"
    )
    server = LiveServer(app)
    try:
        base = server.url
        # a reader comments through the plain HTML form
        page.goto(f"{base}/blog/comments?path={POST}")
        page.fill("#f-author", "Reader <b>One</b>")
        page.fill("#f-body", "Held for *moderation*")
        page.wait_for_timeout(1100)  # the minimum time to submit
        page.click("text=Post comment")
        page.wait_for_selector("text=will appear once a moderator approves it")
        assert "Held for" not in page.inner_text("main")

        # the admin logs in with the magic link and approves it
        make_admin(app, "admin@example.org")
        before = len(outbox_messages(app))
        page.goto(f"{base}/login")
        page.fill("#f-email", "admin@example.org")
        page.click("text=Send me a login link")
        page.wait_for_load_state()
        login_mail = [m for m in outbox_messages(app)[before:] if "/login" in str(m)][-1]
        link = link_in(login_mail, r"https?://\S+/login/\S+")
        page.goto(base + "/" + link.split("://", 1)[1].split("/", 1)[1])
        page.click("button:has-text('Log in')")
        page.wait_for_load_state()
        page.goto(f"{base}/blog/admin/comments")
        assert "Held for" in page.inner_text("#main")
        page.click("button[aria-label='Approve: comment by Reader <b>One</b>']")
        page.wait_for_selector("text=approved")
        page.goto(f"{base}/blog/comments?path={POST}")
        comment = page.locator("li.comment")
        assert comment.count() == 1
        assert "Reader <b>One</b>" in comment.inner_text()  # shown as text, not markup
        assert comment.locator("em").inner_text() == "moderation"
    finally:
        server.stop()


def test_embed_script_on_a_generated_page(make_app: Any, page: Any, tmp_path: Path) -> None:
    static_port = free_port()
    origin = f"http://127.0.0.1:{static_port}"
    app = make_app(blog_origin=origin, blog_min_submit_seconds=1)
    server = LiveServer(app)
    src = tmp_path / "site"
    shutil.copytree(Path(__file__).parent / "fixture_site", src)
    toml = src / "site.toml"
    toml.write_text(
        toml.read_text().replace('base_url = "https://blog.example.org"', f'base_url = "{origin}"')
        + f'comments_url = "{server.url}/blog"\n'
    )
    out = tmp_path / "out"
    assert build(src, out, cache_dir=tmp_path / "cache").ok
    handler = partial(SimpleHTTPRequestHandler, directory=str(out))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    static = ThreadingHTTPServer(("127.0.0.1", static_port), handler)
    threading.Thread(target=static.serve_forever, daemon=True).start()
    try:
        page.goto(f"{origin}{POST}")
        page.wait_for_selector("#clubstack-comments form")
        box = page.locator("#clubstack-comments")
        assert "0 comments" in box.inner_text()
        box.locator("input[name=author]").fill("Embed <img src=x onerror=alert(1)>")
        box.locator("textarea[name=body]").fill("Posted **from the page**")
        page.wait_for_timeout(1100)
        box.locator("button:has-text('Post comment')").click()
        page.wait_for_selector("#clubstack-comments li.comment strong:has-text('from the page')")
        assert "1 comment" in box.inner_text()
        assert box.locator("img").count() == 0  # the name stayed text
        # the author may edit within the window: the token is in this browser
        assert box.locator("button:has-text('Edit')").count() == 1
        # the no-JS link is there too
        href = page.get_attribute(".comments-link a", "href")
        assert href.startswith(f"{server.url}/blog/comments?path=")
    finally:
        static.shutdown()
        static.server_close()
        server.stop()


def test_embed_works_out_of_the_box_on_the_suites_own_origin(
    make_app: Any, page: Any, tmp_path: Path
) -> None:
    """The blog served by the same site as the suite (nginx: the blog's files at /, the suite
    behind it): no CORS setting needed, the comments look like the blog's and dates read the
    way the blog writes them."""
    from werkzeug.wrappers import Request, Response

    port = free_port()
    site = f"http://127.0.0.1:{port}"
    app = make_app(base_url=site, blog_min_submit_seconds=0)  # blog_origin left empty
    src = tmp_path / "site"
    shutil.copytree(Path(__file__).parent / "fixture_site", src)
    toml = src / "site.toml"
    toml.write_text(
        toml.read_text().replace('base_url = "https://blog.example.org"', f'base_url = "{site}"')
        + f'comments_url = "{site}/blog"\n'
    )
    out = tmp_path / "out"
    assert build(src, out, cache_dir=tmp_path / "cache").ok

    def front(environ: dict[str, Any], start: Any) -> Any:
        """What nginx does in front: the suite under /blog/ (and its static), files elsewhere."""
        request = Request(environ)
        if request.path.startswith(("/blog/", "/static/")):
            return app(environ, start)
        target = (out / request.path.lstrip("/")).resolve()
        if target.is_dir():
            target = target / "index.html"
        if out.resolve() not in target.parents or not target.is_file():
            return Response("not found", status=404)(environ, start)
        kind = "text/css" if target.suffix == ".css" else "text/html; charset=utf-8"
        return Response(target.read_bytes(), content_type=kind)(environ, start)

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, front, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")  # the fixture site has none
            else None
        ),
    )
    try:
        page.goto(f"{site}{POST}")
        page.wait_for_selector("#clubstack-comments form")
        box = page.locator("#clubstack-comments")
        box.locator("input[name=author]").fill("Neighbour")
        box.locator("textarea[name=body]").fill("Same origin works")
        box.locator("button:has-text('Post comment')").click()
        page.wait_for_selector("#clubstack-comments li.comment:has-text('Same origin works')")
        assert [e for e in errors if "favicon" not in e and "404 (NOT FOUND)" not in e] == []
        # styled by the blog's theme: the form's fields are not the browser's bare defaults
        width = box.locator("textarea[name=body]").evaluate("e => e.getBoundingClientRect().width")
        column = box.evaluate("e => e.getBoundingClientRect().width")
        assert width >= column * 0.9
        # the date reads like the blog's own dates ("5 December 2026"), not the browser locale
        meta = box.locator("li.comment .meta").first.inner_text()
        published = page.locator(".meta").first.inner_text()
        month = re.search(
            r"(January|February|March|April|May|June|July|August|September|October|November|"
            r"December)",
            published,
        )
        assert month, published
        assert re.search(r"\b\d{1,2} [A-Z][a-z]+ \d{4}\b", meta), meta
    finally:
        server.shutdown()
