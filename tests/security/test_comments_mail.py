"""The blog's comments over HTTP, as a spammer or a prankster would use them: replaying one
form token for many comments, signing someone else up for reply mails, and reading the address
back out of an unsubscribe link or the access log."""

from __future__ import annotations

import base64
import contextlib
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import message_text, outbox_messages
from tests.security.conftest import Visitor

POST = "/2021/02/writing-a-generator/"
VICTIM = "victim.person@example.org"


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app(blog_min_submit_seconds=0)


def _form_token(visitor: Visitor) -> str:
    return str(visitor.get(f"/blog/api/comments?path={POST}").json()["form_token"])


def _post(visitor: Visitor, token: str | None = None, **fields: Any) -> Any:
    data = {"path": POST, "author": "Mallory", "body": "Buy now", **fields}
    data["form_token"] = token or _form_token(visitor)
    return visitor.post("/blog/api/comments", json=data)


def _mails_to(app: Any, address: str) -> list[Any]:
    return [m for m in outbox_messages(app) if m["To"] == address]


def _path_of(link: str) -> str:
    return "/" + link.split("://", 1)[1].split("/", 1)[1]


def test_a_form_token_posts_one_comment_through_the_api(visitor: Callable[[], Visitor]) -> None:
    spammer = visitor()
    token = _form_token(spammer)
    first = _post(spammer, token, body="one")
    assert first.status_code == 201, first.text
    again = _post(spammer, token, body="two")
    assert again.status_code == 400, again.text
    assert again.json()["error"] == "spam_suspected"
    comments = spammer.get(f"/blog/api/comments?path={POST}").json()["comments"]
    assert [c["html"] for c in comments] == ["<p>one</p>\n"]
    # the answer hands the embed a fresh token for its next comment
    assert _post(spammer, first.json()["form_token"], body="three").status_code == 201


def test_a_form_token_posts_one_comment_through_the_html_form(
    visitor: Callable[[], Visitor],
) -> None:
    spammer = visitor()
    page = spammer.get(f"/blog/comments?path={POST}").text
    token = re.search(r'name="form_token" value="([^"]+)"', page)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token and csrf
    form = {
        "csrf_token": csrf.group(1),
        "form_token": token.group(1),
        "path": POST,
        "author": "Mallory",
        "body": "Buy now",
    }
    assert spammer.post("/blog/comments", data=form).status_code == 302
    replay = spammer.post("/blog/comments", data=form)
    assert replay.status_code == 400, replay.status_code
    assert "already sent" in replay.text
    comments = spammer.get(f"/blog/api/comments?path={POST}").json()["comments"]
    assert len(comments) == 1


def test_reply_mails_go_only_to_a_confirmed_address(
    app: Any, visitor: Callable[[], Visitor]
) -> None:
    prankster, replier = visitor(), visitor()
    parent = _post(prankster, email=VICTIM, notify=True, body="Tell me about replies").json()
    assert _post(replier, author="Bob", body="A reply", parent=parent["comment"]["id"]).ok
    mails = _mails_to(app, VICTIM)
    # the address typed into the form gets a confirmation request, and nothing else
    assert [m["Subject"] for m in mails] == ["Confirm reply notifications"]
    assert "replied" not in message_text(mails[0])
    # a second comment naming the same address within the hour sends no second request
    _post(prankster, email=VICTIM, notify=True, body="again")
    assert len(_mails_to(app, VICTIM)) == 1

    # the owner follows the link in the mail and presses the button
    owner = visitor()
    link = re.search(r"(http\S+/blog/notify/\S+)", message_text(mails[0]))
    assert link, message_text(mails[0])
    path = _path_of(link.group(1))
    assert owner.get(path).status_code == 200
    assert owner.post(path, data={"csrf_token": owner.csrf(path)}).status_code == 200
    assert _post(replier, author="Bob", body="Second reply", parent=parent["comment"]["id"]).ok
    subjects = [m["Subject"] for m in _mails_to(app, VICTIM)]
    assert subjects[-1] == f"New reply to your comment on {POST}", subjects
    # the confirmation link works once
    assert owner.post(path, data={"csrf_token": owner.csrf(path)}).status_code == 404


def _decoded_parts(token: str) -> str:
    decoded = []
    for part in token.split("."):
        with contextlib.suppress(ValueError):
            raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
            decoded.append(raw.decode("latin-1"))
    return " ".join(decoded)


def test_unsubscribe_links_and_the_log_hold_no_address(
    app: Any, visitor: Callable[[], Visitor]
) -> None:
    commenter, replier = visitor(), visitor()
    parent = _post(commenter, email=VICTIM, notify=True, body="Tell me").json()
    confirm = re.search(r"(http\S+/blog/notify/\S+)", message_text(_mails_to(app, VICTIM)[0]))
    assert confirm
    confirm_path = _path_of(confirm.group(1))
    commenter.post(confirm_path, data={"csrf_token": commenter.csrf(confirm_path)})
    assert _post(replier, author="Bob", body="A reply", parent=parent["comment"]["id"]).ok
    text = message_text(_mails_to(app, VICTIM)[-1])
    link = re.search(r"(http\S+/blog/unsubscribe/(\S+))", text)
    assert link, text
    token = link.group(2)
    # the signature's random bytes may hold an "@" by chance: look for the address's parts
    local, domain = VICTIM.split("@")
    assert local not in _decoded_parts(token) and domain not in _decoded_parts(token)

    path = _path_of(link.group(1))
    page = commenter.get(path)
    assert page.status_code == 200 and VICTIM in page.text
    assert commenter.post(path).status_code == 200
    commenter.get(path + "/")  # a link mangled by a mail client: routed nowhere
    time.sleep(0.3)  # the log writer batches lines
    log = (Path(app.config["CLUBSTACK"].instance) / "logs" / "web.log").read_text()
    assert "/blog/unsubscribe/" in log and "/blog/notify/" in log  # the requests were logged
    confirm_token = confirm_path.rsplit("/", 1)[1]
    for secret in (token, confirm_token, VICTIM, "victim"):
        assert secret not in log, f"{secret} is in the log"
