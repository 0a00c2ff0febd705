"""The administrator's page that leads everywhere, and role changes."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from clubstack.core.accounts.models import User
from clubstack.core.db import db
from tests.conftest import csrf_token, login


def _role(app: Any, address: str) -> str:
    with app.app_context():
        role = db.session.scalar(select(User.role).where(User.email == address))
        db.session.remove()
    return str(role)


def _user_id(app: Any, address: str) -> int:
    with app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.email == address))
        db.session.remove()
    assert user_id is not None
    return int(user_id)


def test_admin_page_links_to_every_services_admin_page(app: Any, admin: Any) -> None:
    page = admin.get("/admin")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    links = set(re.findall(r'<h2><a href="([^"]+)"', html))
    enabled = {s.name for s in app.extensions["clubstack.services"]}
    expected = {"/admin/users"}
    expected |= {
        path
        for name, path in {
            "billing": "/billing/admin/",
            "blog": "/blog/admin/comments",
            "compute": "/compute/admin",
            "contest": "/contest/admin/",
        }.items()
        if name in enabled
    }
    assert links == expected
    for link in links:
        assert admin.get(link).status_code == 200, link
    # the header's Admin link leads here
    assert 'href="/admin">Admin</a>' in html


def test_members_and_visitors_do_not_get_the_admin_page(app: Any, member: Any) -> None:
    assert member.get("/admin").status_code == 403
    anonymous = app.test_client().get("/admin")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_an_admin_makes_a_member_admin_and_back(app: Any, admin: Any, client: Any) -> None:
    login(client, app, "ada@example.org", nickname="ada")
    ada = _user_id(app, "ada@example.org")
    token = csrf_token(admin, "/admin/users")
    answer = admin.post(f"/admin/users/{ada}/role", data={"role": "admin", "csrf_token": token})
    assert answer.status_code == 302
    assert _role(app, "ada@example.org") == "admin"
    assert client.get("/admin").status_code == 200  # her own session sees it at once
    answer = admin.post(f"/admin/users/{ada}/role", data={"role": "member", "csrf_token": token})
    assert _role(app, "ada@example.org") == "member"
    assert client.get("/admin").status_code == 403


def test_role_changes_refuse_bad_input_and_keep_the_last_admin(app: Any, admin: Any) -> None:
    me = _user_id(app, "admin@example.org")
    token = csrf_token(admin, "/admin/users")
    answer = admin.post(f"/admin/users/{me}/role", data={"role": "member", "csrf_token": token})
    assert answer.status_code == 409
    assert "last administrator" in answer.get_data(as_text=True)
    assert _role(app, "admin@example.org") == "admin"
    answer = admin.post(f"/admin/users/{me}/role", data={"role": "root", "csrf_token": token})
    assert answer.status_code == 400
    assert (
        admin.post(
            "/admin/users/999999/role", data={"role": "admin", "csrf_token": token}
        ).status_code
        == 404
    )
    # without the CSRF token nothing changes
    assert admin.post(f"/admin/users/{me}/role", data={"role": "member"}).status_code == 400
    assert _role(app, "admin@example.org") == "admin"


def test_a_member_cannot_change_roles(app: Any, member: Any) -> None:
    me = _user_id(app, "member@example.org")
    token = csrf_token(member, "/account")
    answer = member.post(f"/admin/users/{me}/role", data={"role": "admin", "csrf_token": token})
    assert answer.status_code == 403
    assert _role(app, "member@example.org") == "member"
