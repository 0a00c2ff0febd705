"""The account page: nickname, address change, API tokens, deletion, admin list."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from clubstack.core.accounts.models import User
from clubstack.core.db import db
from tests.conftest import (
    api_token,
    csrf_token,
    link_in,
    login,
    make_admin,
    message_text,
    outbox_messages,
)


def test_nickname_is_validated_and_unique(app: Any, client: Any) -> None:
    login(client, app, "ada@example.org", nickname="ada")
    other = app.test_client()
    login(other, app, "bob@example.org")
    taken = other.post(
        "/account/nickname", data={"nickname": "ada", "csrf_token": csrf_token(other, "/account")}
    )
    assert taken.status_code == 400 and "taken" in taken.get_data(as_text=True)
    for bad in ["a", "<script>", "x" * 40, "admin", "a b"]:
        response = other.post(
            "/account/nickname", data={"nickname": bad, "csrf_token": csrf_token(other, "/account")}
        )
        assert response.status_code == 400, bad


def test_api_token_shown_once_works_and_revokes(app: Any, client: Any) -> None:
    login(client, app, "ada@example.org")
    token = api_token(client, "laptop")
    api = app.test_client()
    me = api.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json["email"] == "ada@example.org"
    page = client.get("/account").get_data(as_text=True)
    assert token not in page and token[:10] in page  # only the hint is shown again
    with app.app_context():
        from clubstack.core.accounts.models import ApiToken

        stored = db.session().scalars(select(ApiToken.token_hash)).all()
        assert token not in stored
    token_id = re.search(r"/account/tokens/(\d+)/revoke", page).group(1)  # type: ignore[union-attr]
    client.post(
        f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf_token(client, "/account")}
    )
    assert api.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_bad_bearer_token_is_401_json(client: Any) -> None:
    response = client.get("/api/me", headers={"Authorization": "Bearer cs_nope"})
    assert response.status_code == 401 and response.json["error"] == "unauthorized"


def test_change_address_needs_the_link_from_the_new_address(app: Any, client: Any) -> None:
    login(client, app, "ada@example.org")
    client.post(
        "/account/email",
        data={"email": "ada@new.example", "csrf_token": csrf_token(client, "/account")},
    )
    mail = outbox_messages(app)[-1]
    assert mail["To"] == "ada@new.example"
    assert "ada@example.org" in client.get("/account").get_data(as_text=True)
    token = re.search(r"token=([A-Za-z0-9_-]+)", link_in(mail)).group(1)  # type: ignore[union-attr]
    client.post(
        "/account/email/confirm",
        data={"token": token, "csrf_token": csrf_token(client, "/account")},
    )
    assert "ada@new.example" in client.get("/account").get_data(as_text=True)


def test_change_to_a_taken_address_changes_nothing_and_reveals_nothing(
    app: Any, client: Any
) -> None:
    login(client, app, "ada@example.org")
    login(app.test_client(), app, "bob@example.org")
    response = client.post(
        "/account/email",
        data={"email": "bob@example.org", "csrf_token": csrf_token(client, "/account")},
    )
    assert response.status_code == 302  # the same answer as for a free address
    mail = outbox_messages(app)[-1]
    assert mail["To"] == "bob@example.org"
    assert "Someone tried" in message_text(mail)
    assert "http" not in message_text(mail)  # nothing to confirm
    assert "ada@example.org" in client.get("/account").get_data(as_text=True)


def test_delete_account_needs_confirmation(app: Any, client: Any) -> None:
    login(client, app, "ada@example.org")
    wrong = client.post(
        "/account/delete",
        data={"confirm_email": "x@example.org", "csrf_token": csrf_token(client, "/account")},
    )
    assert wrong.status_code == 400
    client.post(
        "/account/delete",
        data={"confirm_email": "ada@example.org", "csrf_token": csrf_token(client, "/account")},
    )
    assert client.get("/account").status_code == 302
    with app.app_context():
        assert db.session().scalar(select(User).where(User.email == "ada@example.org")) is None


def test_admin_page_for_admins_only(app: Any, client: Any) -> None:
    login(client, app, "ada@example.org")
    assert client.get("/admin/users").status_code == 403
    admin = app.test_client()
    make_admin(app, "root@example.org")
    login(admin, app, "root@example.org")
    page = admin.get("/admin/users")
    assert page.status_code == 200 and "ada@example.org" in page.get_data(as_text=True)


def test_admin_invites_an_address_for_invite_only_signup(make_app: Any) -> None:
    app = make_app(signup="invite")
    admin = app.test_client()
    make_admin(app, "root@example.org")
    login(admin, app, "root@example.org")
    admin.post(
        "/admin/users",
        data={"email": "new@example.org", "csrf_token": csrf_token(admin, "/admin/users")},
    )
    newcomer = app.test_client()
    login(newcomer, app, "new@example.org")
    assert newcomer.get("/account").status_code == 200


def test_anonymous_is_sent_to_login_with_next(client: Any) -> None:
    response = client.get("/account")
    assert response.status_code == 302 and "/login?next=/account" in response.location
