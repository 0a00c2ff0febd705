"""The comments service over HTTP: threads, XSS payloads, spam guards, CORS, edit window,
moderation, mails, Akismet (against a local server speaking its API), WordPress import."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest

from clubstack.core import clock
from tests.conftest import csrf_token, login, make_admin, message_text, outbox_messages
from tests.httpstub import Request

POST = "/2021/02/writing-a-generator/"
ORIGIN = "https://blog.example.org"


@pytest.fixture
def blog_app(make_app: Any) -> Any:
    return make_app(
        blog_origin=ORIGIN,
        blog_site_url=ORIGIN,
        blog_admin_email="admin@example.org",
        blog_min_submit_seconds=2,
    )


@pytest.fixture
def client(blog_app: Any) -> Any:
    return blog_app.test_client()


def form_token(client: Any, path: str = POST) -> str:
    response = client.get(f"/blog/api/comments?path={path}")
    assert response.status_code == 200
    return response.get_json()["form_token"]


def post(client: Any, wait: bool = True, ip: str = "203.0.113.5", **data: Any) -> Any:
    data.setdefault("path", POST)
    data.setdefault("author", "Alice")
    data.setdefault("body", "Nice post")
    data.setdefault("form_token", form_token(client, data["path"]))
    if wait:
        clock.travel(timedelta(seconds=3))
    return client.post("/blog/api/comments", json=data, environ_base={"REMOTE_ADDR": ip})


def listed(client: Any, path: str = POST) -> list[dict[str, Any]]:
    return client.get(f"/blog/api/comments?path={path}").get_json()["comments"]


def test_post_list_and_threaded_reply(client: Any) -> None:
    first = post(client, body="First *comment*")
    assert first.status_code == 201, first.get_json()
    parent = first.get_json()["comment"]
    assert parent["html"] == "<p>First <em>comment</em></p>\n"
    reply = post(client, author="Bob", body="A reply", parent=parent["id"])
    assert reply.status_code == 201
    items = listed(client)
    assert [(c["author"], c["parent"]) for c in items] == [("Alice", None), ("Bob", parent["id"])]
    assert listed(client, "/other/") == []
    # the plain HTML page nests the reply inside its parent
    page = client.get(f"/blog/comments?path={POST}").get_data(as_text=True)
    outer = page.index(f'id="comment-{parent["id"]}"')
    inner = page.index(f'id="comment-{reply.get_json()["comment"]["id"]}"')
    assert outer < inner and '<ol class="comments replies">' in page[outer:inner]
    # a reply to a comment on another post is refused
    bad = post(client, path="/other/", parent=parent["id"])
    assert bad.status_code == 400 and "parent" in bad.get_json()["fields"]


XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg/onload=alert(1)>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    '<iframe src="https://evil.example/"></iframe>',
    '"><script>alert(1)</script>',
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '![x](x" onerror="alert(1))',
    "<details open ontoggle=alert(1)>",
    '<a href="data:text/html,<script>alert(1)</script>">d</a>',
    "`<script>` in code is fine",
]


def assert_inert(html: str) -> None:
    """No active content: payload text may remain, but only as escaped text."""
    lowered = html.lower()
    tags = re.findall(r"<[a-z][^>]*>", lowered)
    assert not [t for t in tags if re.match(r"<(script|iframe|svg|img|math|style|object)", t)]
    assert not [t for t in tags if re.search(r"\son\w+\s*=", t)], tags
    assert not [t for t in tags if re.search(r"(href|src)\s*=\s*[\"']?\s*(javascript|data):", t)]
    assert not [t for t in tags if " style=" in t]


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_xss_payloads_are_neutralised(client: Any, payload: str) -> None:
    response = post(client, body=payload, author=payload[:80])
    assert response.status_code == 201
    comment = response.get_json()["comment"]
    assert_inert(comment["html"])
    page = client.get(f"/blog/comments?path={POST}").get_data(as_text=True)
    body = page.split('<ol class="comments">', 1)[1].split("</ol>", 1)[0]
    assert_inert(body)
    feed = client.get(f"/blog/comments/feed.xml?path={POST}").get_data(as_text=True)
    assert "<script" not in feed


def test_links_get_nofollow_ugc_noopener(client: Any) -> None:
    response = post(client, body="see https://example.org/ and [this](https://example.com/x)")
    html = response.get_json()["comment"]["html"]
    assert html.count('rel="nofollow ugc noopener"') == 2


def test_website_must_be_http(client: Any) -> None:
    response = post(client, website="javascript:alert(1)")
    assert response.status_code == 400
    assert "website" in response.get_json()["fields"]


def test_spam_guards(client: Any, blog_app: Any) -> None:
    honeypot = post(client, homepage="http://spam.example/")
    assert honeypot.status_code == 400 and honeypot.get_json()["error"] == "spam_suspected"
    too_fast = post(client, wait=False)
    assert too_fast.status_code == 400 and too_fast.get_json()["error"] == "spam_suspected"
    forged = post(client, form_token="eyJ0IjowfQ.forged")
    assert forged.status_code == 400 and forged.get_json()["error"] == "spam_suspected"
    long = post(client, body="x" * 5001)
    assert long.status_code == 400 and "body" in long.get_json()["fields"]
    assert listed(client) == []


def test_rate_limit_per_ip(make_app: Any) -> None:
    client = make_app(blog_rate="2/minute", blog_min_submit_seconds=0).test_client()
    assert post(client, wait=False).status_code == 201
    assert post(client, wait=False).status_code == 201
    third = post(client, wait=False)
    assert third.status_code == 429 and third.get_json()["error"] == "rate_limited"
    assert post(client, wait=False, ip="203.0.113.99").status_code == 201  # another address


def test_cors_only_for_the_blog_origin(client: Any) -> None:
    headers = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type",
    }
    pre = client.options("/blog/api/comments", headers=headers)
    assert pre.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    got = client.get(f"/blog/api/comments?path={POST}", headers={"Origin": ORIGIN})
    assert got.headers["Access-Control-Allow-Origin"] == ORIGIN
    evil = client.get(f"/blog/api/comments?path={POST}", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in evil.headers
    page = client.get(f"/blog/comments?path={POST}", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in page.headers


def test_edit_and_delete_own_comment_within_window(client: Any) -> None:
    res = post(client, body="Tpyo").get_json()
    cid, token = res["comment"]["id"], res["edit_token"]
    other = post(client, body="Someone else").get_json()
    url = f"/blog/api/comments/{cid}"
    assert client.patch(url, json={"body": "Typo"}).status_code == 403  # no token
    wrong = client.patch(url, json={"body": "x"}, headers={"X-Edit-Token": other["edit_token"]})
    assert wrong.status_code == 403
    ok = client.patch(url, json={"body": "Typo fixed"}, headers={"X-Edit-Token": token})
    assert ok.status_code == 200 and ok.get_json()["comment"]["html"] == "<p>Typo fixed</p>\n"
    assert ok.get_json()["comment"]["edited"]
    clock.travel(timedelta(minutes=16))
    late = client.patch(url, json={"body": "too late"}, headers={"X-Edit-Token": token})
    assert late.status_code == 403 and late.get_json()["error"] == "edit_window_closed"
    other_url = f"/blog/api/comments/{other['comment']['id']}"
    stale = client.delete(other_url, headers={"X-Edit-Token": other["edit_token"]})
    assert stale.status_code == 403
    fresh = post(client, body="delete me").get_json()
    gone = client.delete(
        f"/blog/api/comments/{fresh['comment']['id']}",
        headers={"X-Edit-Token": fresh["edit_token"]},
    )
    assert gone.status_code == 204
    assert [c["html"] for c in listed(client)] == ["<p>Typo fixed</p>\n", "<p>Someone else</p>\n"]


def test_html_form_works_without_javascript(client: Any) -> None:
    page = client.get(f"/blog/comments?path={POST}").get_data(as_text=True)
    token = re.search(r'name="form_token" value="([^"]+)"', page).group(1)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    clock.travel(timedelta(seconds=3))
    data = {
        "csrf_token": csrf,
        "form_token": token,
        "path": POST,
        "author": "Carol",
        "body": "From a plain form",
        "homepage": "",
    }
    response = client.post("/blog/comments", data=data)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "From a plain form" in page and "your comment is published" in page
    # a mistake comes back as the form with the message, input kept, no traceback
    bad = client.post("/blog/comments", data=dict(data, website="ftp://x", body="kept text"))
    assert bad.status_code == 400
    html = bad.get_data(as_text=True)
    assert "must be an http:// or https:// address" in html and "kept text" in html


def test_premoderation_admin_mail_and_moderation(make_app: Any) -> None:
    app = make_app(
        blog_premoderate="true", blog_admin_email="admin@example.org", blog_site_url=ORIGIN
    )
    client = app.test_client()
    res = post(client, body="Please approve", email="dora@example.org")
    assert res.status_code == 201 and res.get_json()["comment"]["status"] == "pending"
    assert listed(client) == []
    mails = [m for m in outbox_messages(app) if m["To"] == "admin@example.org"]
    assert mails and "[held] New comment on " + POST in mails[-1]["Subject"]
    assert "Please approve" in message_text(mails[-1])
    assert "/blog/admin/comments" in message_text(mails[-1])
    # members are refused the queue; the admin approves
    assert client.get("/blog/admin/comments").status_code in (302, 401, 403)
    admin = app.test_client()
    make_admin(app, "admin@example.org")
    clock.travel(timedelta(seconds=2))  # outbox files sort by second: keep the login mail last
    login(admin, app, "admin@example.org", nickname="admin1")
    queue = admin.get("/blog/admin/comments").get_data(as_text=True)
    assert "Please approve" in queue and "dora@example.org" in queue
    cid = res.get_json()["comment"]["id"]
    csrf = csrf_token(admin, "/blog/admin/comments")
    done = admin.post(f"/blog/admin/comments/{cid}/approve", data={"csrf_token": csrf})
    assert done.status_code == 302
    assert [c["id"] for c in listed(client)] == [cid]
    # block: the comment becomes spam and the address is refused from then on
    admin.post(f"/blog/admin/comments/{cid}/block", data={"csrf_token": csrf})
    assert listed(client) == []
    again = post(client, body="me again")
    assert again.status_code == 403 and again.get_json()["error"] == "blocked"


def confirm_reply_mails(app: Any, client: Any, address: str) -> None:
    """Follow the confirmation link mailed to ADDRESS and press its button."""
    asked = [
        m
        for m in outbox_messages(app)
        if m["To"] == address and m["Subject"] == "Confirm reply notifications"
    ]
    assert asked, f"no confirmation mail to {address}"
    link = re.search(r"(http\S+/blog/notify/\S+)", message_text(asked[-1])).group(1)
    path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    assert client.get(path).status_code == 200
    done = client.post(path, data={"csrf_token": csrf_token(client, path)})
    assert done.status_code == 200 and "Confirmed" in done.get_data(as_text=True)


def test_reply_mail_and_one_click_unsubscribe(blog_app: Any, client: Any) -> None:
    parent = post(client, email="erin@example.org", notify=True, body="Tell me").get_json()
    confirm_reply_mails(blog_app, client, "erin@example.org")
    before = len(outbox_messages(blog_app))
    post(
        client,
        author="Frank",
        email="frank@example.org",
        body="Here you go",
        parent=parent["comment"]["id"],
    )
    mails = [m for m in outbox_messages(blog_app)[before:] if m["To"] == "erin@example.org"]
    assert len(mails) == 1
    text = message_text(mails[0])
    assert "Frank replied" in text and f"{ORIGIN}{POST}#comment-" in text
    link = re.search(r"(http\S+/blog/unsubscribe/\S+)", text).group(1)
    path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    page = client.get(path)
    assert page.status_code == 200 and "erin@example.org" in page.get_data(as_text=True)
    done = client.post(path)
    assert done.status_code == 200 and "no more mails" in done.get_data(as_text=True)
    before = len(outbox_messages(blog_app))
    post(client, author="Gina", body="Another", parent=parent["comment"]["id"])
    assert not [m for m in outbox_messages(blog_app)[before:] if m["To"] == "erin@example.org"]
    assert client.get("/blog/unsubscribe/forged-token").status_code == 404


def test_comments_feed(client: Any) -> None:
    post(client, body="Feed me")
    post(client, author="Hal", body="Second", path="/2020/01/other/")
    feed = feedparser.parse(client.get("/blog/comments/feed.xml").get_data())
    assert not feed.bozo
    assert [e.title for e in feed.entries] == ["Hal on /2020/01/other/", f"Alice on {POST}"]
    assert feed.entries[1].link.startswith(f"{ORIGIN}{POST}#comment-")
    one = feedparser.parse(client.get(f"/blog/comments/feed.xml?path={POST}").get_data())
    assert [e.title for e in one.entries] == [f"Alice on {POST}"]


def akismet_api(request: Request) -> Any:
    """Akismet's REST API as documented: form POSTs to /1.1/verify-key ("valid"/"invalid")
    and /1.1/comment-check ("true"/"false", or "invalid" with a debug header)."""
    form = request.form
    key = form.get("api_key") or form.get("key")  # verify-key sends "key"
    key_ok = key == ["test-key"] and form.get("blog") == [ORIGIN]
    if request.method != "POST":
        return 405, "POST only"
    if request.path == "/1.1/verify-key":
        return 200, "valid" if key_ok else "invalid"
    if request.path != "/1.1/comment-check":
        return 404, "not found"
    if not key_ok:
        return 200, "invalid", {"X-akismet-debug-help": "Invalid API key."}
    if form.get("comment_author") == ["akismet-error"]:
        return 500, "Internal Server Error"
    spam = "viagra" in form.get("comment_content", [""])[0]
    return 200, "true" if spam else "false"


def test_akismet_check_against_local_server(make_app: Any, http_stub: Any) -> None:
    fake = http_stub(akismet_api)
    app = make_app(
        blog_akismet_key="test-key",
        blog_akismet_api_url=fake.url,
        blog_site_url=ORIGIN,
        http_allow_hosts=fake.host,
    )
    client = app.test_client()
    ham = post(client, body="An honest opinion", ip="198.51.100.7")
    assert ham.get_json()["comment"]["status"] == "approved"
    spam = post(client, body="cheap viagra here")
    assert spam.get_json()["comment"]["status"] == "spam"
    assert [c["html"] for c in listed(client)] == ["<p>An honest opinion</p>\n"]
    assert [r.path for r in fake.requests] == ["/1.1/comment-check"] * 2  # no verify-key
    sent = fake.requests[0].form
    assert sent["blog"] == [ORIGIN] and sent["user_ip"] == ["198.51.100.7"]
    assert sent["permalink"] == [ORIGIN + POST] and sent["comment_type"] == ["comment"]
    assert fake.requests[0].headers["User-Agent"].startswith("clubstack/")  # core.net's client
    fake.stop()
    # Akismet unreachable: the comment is held for moderation, not lost and not published
    held = post(client, body="while akismet is down")
    assert held.status_code == 201 and held.get_json()["comment"]["status"] == "pending"


def test_akismet_wrong_key_holds_comments(make_app: Any, http_stub: Any) -> None:
    fake = http_stub(akismet_api)
    client = make_app(
        blog_akismet_key="wrong-key",
        blog_akismet_api_url=fake.url,
        blog_site_url=ORIGIN,
        http_allow_hosts=fake.host,
    ).test_client()
    res = post(client, body="hello")
    assert res.status_code == 201 and res.get_json()["comment"]["status"] == "pending"
    assert len(fake.requests) == 1  # Akismet answered "invalid"


def test_akismet_adapter_verdicts_and_failures(app: Any, http_stub: Any) -> None:
    from clubstack.blog.comments import CommentIn, SpamCheckUnavailableError
    from clubstack.blog.spam import AkismetCheck
    from clubstack.core.net import HttpClient

    fake = http_stub(akismet_api)
    client = HttpClient(allow_hosts=[fake.host])
    check = AkismetCheck("test-key", ORIGIN, fake.url + "/", client)
    comment = CommentIn(path=POST, author="Ann", body="fine words", email="ann@example.org")
    assert check(comment, "203.0.113.9") is False
    assert check(comment.model_copy(update={"body": "viagra"}), "203.0.113.9") is True
    assert fake.requests[0].form["comment_author_email"] == ["ann@example.org"]
    with pytest.raises(SpamCheckUnavailableError, match="Invalid API key"):
        AkismetCheck("wrong-key", ORIGIN, fake.url, client)(comment, "203.0.113.9")
    with pytest.raises(SpamCheckUnavailableError, match="HTTP 500"):
        check(comment.model_copy(update={"author": "akismet-error"}), "203.0.113.9")


def test_akismet_goes_through_the_ssrf_guard(app: Any, http_stub: Any) -> None:
    """Not allow-listed, the loopback stand-in is refused before anything is sent to it."""
    from clubstack.blog.comments import CommentIn, SpamCheckUnavailableError
    from clubstack.blog.spam import AkismetCheck
    from clubstack.core.net import HttpClient

    fake = http_stub(akismet_api)
    check = AkismetCheck("test-key", ORIGIN, fake.url, HttpClient(allow_hosts=[]))
    with pytest.raises(SpamCheckUnavailableError, match="may not reach"):
        check(CommentIn(path=POST, author="Ann", body="hi"), "203.0.113.9")
    assert fake.requests == []


def test_wordpress_comments_import(blog_app: Any, client: Any, tmp_path: Path) -> None:
    from clubstack.blog.comments import import_wordpress_comments, moderation_queue
    from clubstack.blog.wordpress import import_wordpress
    from clubstack.core.db import db

    import_wordpress(Path(__file__).parent / "fixture_wxr.xml", tmp_path / "site")
    data = json.loads((tmp_path / "site/comments.json").read_text())
    with blog_app.app_context():
        session = db.session()
        result = import_wordpress_comments(session, data)
        session.commit()
        assert (result.imported, result.pending) == (3, 1)
        again = import_wordpress_comments(session, data)
        session.commit()
        assert again.imported == 0 and again.skipped == 3
        queue = moderation_queue(session)
        assert [c.author for c in queue] == ["Bob"]
        assert "<script" not in queue[0].html
    items = listed(client, "/2021/02/writing-a-generator/")
    assert [(c["author"], c["website"]) for c in items] == [
        ("Alice", "https://alice.example.org/"),
        ("Giles", None),
    ]
    assert items[1]["parent"] == items[0]["id"]
    assert items[0]["created"].startswith("2021-02-17T09:00:00")


def test_bad_requests_get_json_errors(client: Any) -> None:
    assert client.get("/blog/api/comments").status_code == 400
    bad = client.post(
        "/blog/api/comments", data="not json", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_input"
    missing = client.patch(
        "/blog/api/comments/nope", json={"body": "x"}, headers={"X-Edit-Token": "x"}
    )
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    assert client.get("/blog/embed.js").status_code == 200


def test_import_comments_command(blog_app: Any, client: Any, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from clubstack.blog.cli import blog
    from clubstack.blog.wordpress import import_wordpress

    import_wordpress(Path(__file__).parent / "fixture_wxr.xml", tmp_path / "site")
    res = CliRunner().invoke(blog, ["import-comments", str(tmp_path / "site/comments.json")])
    assert res.exit_code == 0, res.output
    assert "3 comments imported (1 awaiting moderation), 0 already there" in res.output
    assert [c["author"] for c in listed(client)] == ["Alice", "Giles"]
    both = CliRunner().invoke(
        blog,
        [
            "import-wordpress",
            "--load-comments",
            str(Path(__file__).parent / "fixture_wxr.xml"),
            str(tmp_path / "site2"),
        ],
    )
    assert both.exit_code == 0, both.output
    assert "0 comments imported (0 awaiting moderation), 3 already there" in both.output
    (tmp_path / "bad.json").write_text("{nope")
    bad = CliRunner().invoke(blog, ["import-comments", str(tmp_path / "bad.json")])
    assert bad.exit_code == 1 and "not JSON" in bad.output


@pytest.mark.backend
def test_comments_on_each_database(make_app: Any, db_kind: str, tmp_path: Path) -> None:
    from clubstack.blog.comments import import_wordpress_comments, moderate
    from clubstack.blog.wordpress import import_wordpress
    from clubstack.core.db import db

    app = make_app(db=db_kind, blog_origin=ORIGIN)
    client = app.test_client()
    first = post(client, body="Über *unicode* ✓").get_json()["comment"]
    post(client, author="Bob", body="reply", parent=first["id"])
    import_wordpress(Path(__file__).parent / "fixture_wxr.xml", tmp_path / "site")
    data = json.loads((tmp_path / "site/comments.json").read_text())
    with app.app_context():
        session = db.session()
        assert import_wordpress_comments(session, data).imported == 3
        moderate(session, first["id"], "block")
        session.commit()
    items = listed(client)
    assert [(c["author"], c["parent"] is not None) for c in items] == [
        ("Alice", False),
        ("Giles", True),
        ("Bob", True),
    ]  # Bob's parent is hidden now
    assert first["id"] not in {c["id"] for c in items}  # clients show Bob at the top level
    assert items[0]["created"] == "2021-02-17T09:00:00+00:00"
    assert post(client, body="blocked?").status_code == 403
