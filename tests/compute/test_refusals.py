"""Bad input is refused cleanly: right status, a message, no record, no VM."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from clubstack.compute import capsuls
from clubstack.compute.errors import InputError
from clubstack.compute.models import Capsul
from clubstack.core.db import db
from tests.compute.conftest import user_id
from tests.conftest import api_token, csrf_token, login

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ann@laptop"


def member_of(app, ledger):
    client = app.test_client()
    login(client, app, "ann@example.org", nickname="ann")
    ledger.credit(user_id(app, "ann@example.org"), 100_000)
    return client, {"Authorization": f"Bearer {api_token(client)}"}


@pytest.fixture
def ann(compute_app, ledger):
    return member_of(compute_app, ledger)


def count_capsuls(app):
    with app.app_context():
        return db.session().scalar(select(func.count()).select_from(Capsul))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a", "plan": "no-such-plan", "image": "tiny"}, "plan"),
        ({"name": "a", "plan": "f1-xs", "image": "windows"}, "image"),
        ({"name": "x" * 64, "plan": "f1-xs", "image": "tiny"}, "name"),
        ({"name": "<domain>&'\"", "plan": "f1-xs", "image": "tiny"}, "name"),
        ({"name": "a]]></name><devices/>", "plan": "f1-xs", "image": "tiny"}, "name"),
        (
            {
                "name": "ok",
                "plan": "f1-xs",
                "image": "tiny",
                "ssh_keys": ["ssh-ed25519 !!notbase64"],
            },
            "public_key",
        ),
        (
            {
                "name": "ok",
                "plan": "f1-xs",
                "image": "tiny",
                "ssh_keys": [KEY + "\nssh-rsa AAAA injected"],
            },
            "public_key",
        ),
        ({"name": "ok", "plan": "f1-xs", "image": "tiny", "ssh_key_ids": [99999]}, "ssh_key_ids"),
        ({"name": "ok", "plan": "f1-xs", "image": "tiny", "ssh_keys": []}, "ssh_keys"),
        (
            {"name": "ok", "plan": "f1-xs", "image": "tiny", "ssh_keys": [KEY], "admin": True},
            "admin",
        ),
    ],
)
def test_api_refuses_bad_input(compute_app, ann, body, field):
    _, auth = ann
    client = compute_app.test_client()
    body = (
        {"ssh_keys": [KEY], **body}
        if "ssh_keys" not in body and "ssh_key_ids" not in body
        else body
    )
    response = client.post("/compute/api/capsuls", json=body, headers=auth)
    assert response.status_code == 400, response.get_json()
    answer = response.get_json()
    assert answer["error"] == "invalid_input"
    assert field in answer["fields"], answer
    assert count_capsuls(compute_app) == 0


def test_api_refuses_non_json(compute_app, ann):
    _, auth = ann
    response = compute_app.test_client().post("/compute/api/capsuls", data="name=x", headers=auth)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_input"


def test_form_shows_errors_next_to_fields(compute_app, ann):
    client, _ = ann
    response = client.post(
        "/compute/create",
        data={
            "csrf_token": csrf_token(client, "/compute/create"),
            "name": "<b>x</b>",
            "plan": "nope",
            "image": "tiny",
            "new_key": KEY,
        },
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Unknown plan" in html and "hostname" in html
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html  # escaped, not rendered
    assert count_capsuls(compute_app) == 0


def test_another_members_capsul_does_not_exist_for_me(compute_app_any_db, ledger):
    compute_app = compute_app_any_db
    client, auth = member_of(compute_app, ledger)
    with compute_app.app_context():
        session = db.session()
        from clubstack.core.accounts.models import User

        other = User(email="eve@example.org")
        session.add(other)
        session.commit()
        ledger.credit(other.id, 100_000)
        capsul = capsuls.request_capsul(
            session,
            other.id,
            plan="f1-xs",
            image="tiny",
            name="evebox",
            keys=[KEY],
            min_credit_hours=1,
            max_capsuls=5,
        )
        capsul.status = "active"
        session.commit()
        cid = capsul.id
    api = compute_app.test_client()
    for method, path in (
        ("get", f"/compute/api/capsuls/{cid}"),
        ("delete", f"/compute/api/capsuls/{cid}"),
        ("get", f"/compute/api/capsuls/{cid}/console"),
        ("get", "/compute/api/capsuls/nonexistent"),
    ):
        response = getattr(api, method)(path, headers=auth)
        assert response.status_code == 404, path
        assert response.get_json()["error"] == "capsul_not_found"
    response = api.post(
        f"/compute/api/capsuls/{cid}/actions", json={"action": "stop"}, headers=auth
    )
    assert response.status_code == 404
    assert client.get(f"/compute/capsuls/{cid}").status_code == 404
    assert client.get("/compute/admin").status_code == 403
    response = client.post(
        f"/compute/capsuls/{cid}/destroy",
        data={"csrf_token": csrf_token(client, "/compute/keys"), "confirm": "evebox"},
    )
    assert response.status_code == 404
    with compute_app.app_context():
        assert db.session().get(Capsul, cid).status == "active"


def test_too_little_credit_and_no_room(compute_app, ann, ledger):
    _, auth = ann
    api = compute_app.test_client()
    ledger.set_balance(user_id(compute_app, "ann@example.org"), 23)  # < 24 h at 1 cent
    response = api.post(
        "/compute/api/capsuls",
        headers=auth,
        json={"name": "a", "plan": "f1-xs", "image": "tiny", "ssh_keys": [KEY]},
    )
    assert response.status_code == 402
    assert "does not cover 24 hours" in response.get_json()["message"]
    ledger.set_balance(user_id(compute_app, "ann@example.org"), 100_000)
    response = api.post(
        "/compute/api/capsuls",
        headers=auth,
        json={"name": "a", "plan": "huge", "image": "tiny", "ssh_keys": [KEY]},
    )
    assert response.status_code == 503 and response.get_json()["error"] == "no_room"
    assert count_capsuls(compute_app) == 0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
        "ssh-ed25519",
        "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMq",
        "ssh-ed25519 AAAA\u0000",
        KEY + "\rx",
        "x" * 9000,
    ],
)
def test_bad_ssh_keys(text):
    with pytest.raises(InputError):
        capsuls.parse_ssh_key(text)


def test_key_fingerprint_matches_ssh_keygen():
    parsed = capsuls.parse_ssh_key(KEY)
    # what ssh-keygen -l prints for KEY
    assert parsed.fingerprint == "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU"
    assert parsed.line == KEY


def test_ssh_keys_through_the_api(compute_app, ann):
    _, auth = ann
    api = compute_app.test_client()
    response = api.post(
        "/compute/api/ssh-keys", headers=auth, json={"name": "laptop", "public_key": KEY}
    )
    assert response.status_code == 201
    key_id = response.get_json()["id"]
    assert response.get_json()["fingerprint"] == (
        "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU"
    )
    again = api.post(
        "/compute/api/ssh-keys", headers=auth, json={"name": "again", "public_key": KEY}
    )
    assert again.status_code == 400 and "already" in again.get_json()["fields"]["public_key"]
    listed = api.get("/compute/api/ssh-keys", headers=auth).get_json()["ssh_keys"]
    assert [k["name"] for k in listed] == ["laptop"]
    # a capsul can be created from the saved key by id
    response = api.post(
        "/compute/api/capsuls",
        headers=auth,
        json={"name": "bykey", "plan": "huge", "image": "tiny", "ssh_key_ids": [key_id]},
    )
    assert response.status_code == 503  # the key was accepted; only the host is too small
    assert api.delete(f"/compute/api/ssh-keys/{key_id}", headers=auth).status_code == 200
    assert api.delete(f"/compute/api/ssh-keys/{key_id}", headers=auth).status_code == 404
