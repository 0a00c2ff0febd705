"""The magic-link login flow, as a member experiences it and as an attacker probes it."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from clubstack.core import clock
from tests.conftest import csrf_token, link_in, login, message_text, outbox_messages


def _request_link(client: Any, address: str) -> Any:
    return client.post(
        "/login", data={"email": address, "csrf_token": csrf_token(client, "/login")}
    )


def _token_from_mail(app: Any, index: int = -1) -> str:
    url = link_in(outbox_messages(app)[index])
    match = re.search(r"token=([A-Za-z0-9_-]+)", url)
    assert match
    return match.group(1)


def _confirm(client: Any, token: str) -> Any:
    csrf = csrf_token(client, "/login")
    return client.post("/login/confirm", data={"token": token, "csrf_token": csrf})


def test_login_link_logs_in_and_shows_account(app: Any, client: Any) -> None:
    login(client, app, "ada@example.org")
    page = client.get("/account")
    assert page.status_code == 200
    assert "ada@example.org" in page.get_data(as_text=True)


def test_link_opens_a_confirmation_page_and_get_does_not_consume(app: Any, client: Any) -> None:
    _request_link(client, "ada@example.org")
    token = _token_from_mail(app)
    for _ in range(3):  # a mail scanner following the link many times
        page = client.get(f"/login/confirm?token={token}")
        assert page.status_code == 200
        assert "Log in" in page.get_data(as_text=True)
    assert client.get("/account").status_code == 302  # GET logged nobody in
    assert _confirm(client, token).status_code == 302
    assert client.get("/account").status_code == 200


def test_link_is_single_use(app: Any, client: Any) -> None:
    _request_link(client, "ada@example.org")
    token = _token_from_mail(app)
    assert _confirm(client, token).status_code == 302
    other = app.test_client()
    response = _confirm(other, token)
    assert response.status_code == 410
    assert other.get("/account").status_code == 302


def test_link_expires_after_lifetime(app: Any, client: Any) -> None:
    _request_link(client, "ada@example.org")
    token = _token_from_mail(app)
    with clock.moved(timedelta(minutes=15, seconds=1)):
        assert _confirm(client, token).status_code == 410
    assert client.get("/account").status_code == 302


def test_same_answer_for_known_and_unknown_addresses(make_app: Any) -> None:
    app = make_app(signup="invite")
    client = app.test_client()
    from tests.conftest import make_admin

    make_admin(app, "known@example.org")
    known = _request_link(client, "known@example.org")
    unknown = _request_link(client, "unknown@example.org")
    assert known.status_code == unknown.status_code == 200
    strip = lambda r, a: re.sub(r'value="[^"]+"', "", r.get_data(as_text=True)).replace(a, "")  # noqa: E731
    assert strip(known, "known@example.org") == strip(unknown, "unknown@example.org")
    # invite-only: both addresses get a mail (the same work either way), only the known one
    # a link; the unknown one learns that it needs an invitation
    mails = {m["To"]: message_text(m) for m in outbox_messages(app)}
    assert set(mails) == {"known@example.org", "unknown@example.org"}
    assert "/login/confirm" in mails["known@example.org"]
    assert "http" not in mails["unknown@example.org"]
    assert "invitation" in mails["unknown@example.org"]


def test_session_is_rotated_at_login(app: Any, client: Any) -> None:
    client.get("/login")
    before = client.get_cookie("clubstack_session").value
    login(client, app, "ada@example.org")
    after = client.get_cookie("clubstack_session").value
    assert before != after


def test_logout_ends_the_server_side_session(app: Any, client: Any) -> None:
    login(client, app, "ada@example.org")
    cookie = client.get_cookie("clubstack_session").value
    client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})
    assert client.get("/account").status_code == 302
    replay = app.test_client()
    replay.set_cookie("clubstack_session", cookie)
    assert replay.get("/account").status_code == 302  # the old cookie is worthless


def test_session_expires(app: Any, client: Any) -> None:
    login(client, app, "ada@example.org")
    with clock.moved(timedelta(days=15)):
        assert client.get("/account").status_code == 302


def test_bad_address_is_refused_next_to_the_field(client: Any) -> None:
    response = _request_link(client, "not an address")
    assert response.status_code == 400
    assert 'aria-invalid="true"' in response.get_data(as_text=True)


def test_login_without_csrf_token_is_rejected(client: Any, app: Any) -> None:
    response = client.post("/login", data={"email": "ada@example.org"})
    assert response.status_code == 400
    assert outbox_messages(app) == []


def test_open_redirect_is_refused(app: Any, client: Any) -> None:
    client.post(
        "/login",
        data={
            "email": "ada@example.org",
            "next": "//evil.example/",
            "csrf_token": csrf_token(client, "/login"),
        },
    )
    assert "evil.example" not in link_in(outbox_messages(app)[-1])


def test_link_requests_are_rate_limited_per_address(app: Any, client: Any) -> None:
    statuses = []
    for i in range(7):
        other = app.test_client()
        other.environ_base["REMOTE_ADDR"] = f"127.0.0.{i + 2}"
        statuses.append(_request_link(other, "ada@example.org").status_code)
    assert statuses[:5] == [200] * 5
    assert statuses[5] == 429
