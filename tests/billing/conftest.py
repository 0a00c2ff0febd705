"""Shared helpers of the billing tests."""

from __future__ import annotations

import email
import re
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from clubstack.core.accounts.models import User
from tests.conftest import csrf_token, link_in, make_admin


def make_user(session: Any, email: str, nickname: str | None = None) -> int:
    user = User(email=email, nickname=nickname)
    session.add(user)
    session.commit()
    return user.id


# The core helper picks "the next mail" by file name, which is only second-precise: two logins
# within one second can pick each other's link. Billing's fixtures pick the login mail by
# recipient and modification time instead (reported to the lead for tests/conftest.py).


def _latest_mail_to(app: Any, address: str) -> Message:
    folder = Path(app.config["CLUBSTACK"].instance) / "outbox"
    files = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    for path in reversed(files):
        message = email.message_from_bytes(path.read_bytes())
        if message["To"] == address:
            return message
    raise AssertionError(f"no mail to {address}")


def login_as(client: Any, app: Any, address: str, nickname: str | None = None) -> None:
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"email": address, "csrf_token": token})
    assert response.status_code == 200, response.get_data(as_text=True)
    url = link_in(_latest_mail_to(app, address))
    path = url.split("://", 1)[1].split("/", 1)[1]
    html = client.get("/" + path).get_data(as_text=True)
    link_token = re.search(r'name="token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    assert (
        client.post("/login/confirm", data={"token": link_token, "csrf_token": csrf}).status_code
        == 302
    )
    if nickname:
        csrf = csrf_token(client, "/account")
        client.post("/account/nickname", data={"nickname": nickname, "csrf_token": csrf})


@pytest.fixture
def member(app: Any, client: Any) -> Any:
    login_as(client, app, "member@example.org", nickname="member1")
    return client


@pytest.fixture
def admin(app: Any) -> Any:
    client = app.test_client()
    make_admin(app, "admin@example.org")
    login_as(client, app, "admin@example.org", nickname="admin1")
    return client
