"""Who may reach what: member B asks for member A's objects by id in every service, over the
HTML pages and the JSON API; members knock on every admin page; revoked API tokens knock on
every JSON API. The admin and API routes are read from app.url_map, so a new one is covered
the day it is added."""

from __future__ import annotations

import re
from typing import Any

from tests.security import seed
from tests.security.conftest import Visitor

A = "alice@example.org"
MISSING = ("404", "403")


def refused(answer: Any) -> bool:
    return answer.status_code in (403, 404)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_token(member: Visitor, name: str = "script") -> tuple[str, int]:
    """An API token of MEMBER, made over HTTP on the account page, and its id."""
    page = member.post(
        "/account/tokens", data={"name": name, "csrf_token": member.csrf("/account")}
    )
    match = re.search(r'id="new-token">([^<]+)<', page.text)
    assert match, page.text
    ids = re.findall(r"/account/tokens/(\d+)/revoke", member.get("/account").text)
    return match.group(1), int(ids[-1])


# --- compute -------------------------------------------------------------------------------


def test_capsuls_of_another_member_are_out_of_reach(app, member_a, member_b):
    capsul = seed.capsul(app, A, name="alice-secret-box")
    key = seed.ssh_key(app, A, name="alice-laptop")
    token_b, _ = new_token(member_b)
    csrf = member_b.csrf("/compute/keys")
    pages = [
        member_b.get(f"/compute/capsuls/{capsul}"),
        member_b.get(f"/compute/capsuls/{capsul}/console"),
        member_b.get(f"/compute/capsuls/{capsul}/destroy"),
        member_b.post(f"/compute/capsuls/{capsul}/destroy", data={"csrf_token": csrf}),
        member_b.post(
            f"/compute/capsuls/{capsul}/action", data={"action": "stop", "csrf_token": csrf}
        ),
        member_b.post(f"/compute/keys/{key}/delete", data={"csrf_token": csrf}),
    ]
    api = [
        member_b.get(f"/compute/api/capsuls/{capsul}", headers=bearer(token_b)),
        member_b.get(f"/compute/api/capsuls/{capsul}/console", headers=bearer(token_b)),
        member_b.get(f"/compute/api/capsuls/{capsul}/stats", headers=bearer(token_b)),
        member_b.post(
            f"/compute/api/capsuls/{capsul}/actions",
            json={"action": "stop"},
            headers=bearer(token_b),
        ),
        member_b.delete(f"/compute/api/capsuls/{capsul}", headers=bearer(token_b)),
        member_b.delete(f"/compute/api/ssh-keys/{key}", headers=bearer(token_b)),
    ]
    for answer in pages + api:
        assert refused(answer), (answer.request.method, answer.url, answer.status_code)
        assert "alice-secret-box" not in answer.text
    for answer in api:
        assert answer.headers["Content-Type"].startswith("application/json")
    assert "alice-secret-box" not in member_b.get("/compute/").text
    listed = member_b.get("/compute/api/capsuls", headers=bearer(token_b)).json()
    assert capsul not in str(listed)
    assert "alice-laptop" not in member_b.get("/compute/keys").text
    assert "alice-laptop" not in str(
        member_b.get("/compute/api/ssh-keys", headers=bearer(token_b)).json()
    )
    # Nothing happened to A's things, and A still sees them.
    assert seed.capsul_status(app, capsul) == "active"
    assert seed.ssh_key_exists(app, key)
    assert "alice-secret-box" in member_a.get(f"/compute/capsuls/{capsul}").text


# --- billing -------------------------------------------------------------------------------


def test_payments_and_ledger_of_another_member_are_out_of_reach(app, member_a, member_b):
    payment = seed.payment(app, A)
    assert member_a.get(f"/billing/payments/{payment}").status_code == 200
    assert refused(member_b.get(f"/billing/payments/{payment}"))
    assert payment not in member_b.get("/billing/payments").text
    assert payment not in member_b.get("/billing/ledger").text
    assert payment not in member_b.get("/billing/ledger.csv").text
    token_b, _ = new_token(member_b)
    balance = member_b.get("/billing/api/v1/balance", headers=bearer(token_b)).json()
    assert balance["balance_cents"] == 0


# --- contest -------------------------------------------------------------------------------


def test_unpublished_submissions_stay_private(app, member_a, member_b, visitor):
    key = "02" + "ab" * 32
    public_id = seed.challenge(app, A, "alice-draft", public_key=key)
    token_b, _ = new_token(member_b)
    csrf = member_b.csrf("/contest/submit")
    for client in (member_b, visitor()):
        for path in (
            f"/contest/submissions/{public_id}",
            "/contest/challenges/alice-draft",
            "/contest/challenges/alice-draft/source.c",
            "/contest/challenges/alice-draft/public_key.txt",
        ):
            answer = client.get(path)
            assert answer.status_code in (302, 403, 404), (path, answer.status_code)
            assert "secret design" not in answer.text and key not in answer.text
    answers = [
        member_b.get(f"/contest/api/submissions/{public_id}", headers=bearer(token_b)),
        # A break attempt must not become a way to read the private page.
        member_b.post(
            "/contest/challenges/alice-draft/break", data={"key": "00" * 32, "csrf_token": csrf}
        ),
        member_b.post(
            "/contest/api/challenges/alice-draft/break",
            json={"key": "00" * 32},
            headers=bearer(token_b),
        ),
    ]
    for answer in answers:
        assert refused(answer), (answer.url, answer.status_code)
        assert key not in answer.text and "secret design" not in answer.text
        assert "submitted" not in answer.text
    assert "alice-draft" not in member_b.get("/contest/mine").text
    assert "alice-draft" not in member_b.get("/contest/u/alice").text
    assert "alice-draft" not in str(member_b.get("/contest/api/challenges").json())
    # The owner does see it.
    assert "secret design" in member_a.get("/contest/challenges/alice-draft/source.c").text
    assert member_a.get(f"/contest/submissions/{public_id}").status_code == 200


# --- lookup --------------------------------------------------------------------------------


def test_lookup_batches_of_another_member_are_out_of_reach(app, member_a, member_b):
    batch = seed.lookup_batch(app, A, value="198.51.100.77")
    token_b, _ = new_token(member_b)
    assert member_a.get(f"/lookup/batches/{batch}").status_code == 200
    for answer in (
        member_b.get(f"/lookup/batches/{batch}"),
        member_b.get(f"/lookup/batches/{batch}.csv"),
        member_b.get(f"/lookup/batches/{batch}.json"),
        member_b.get(f"/lookup/api/lookups/{batch}", headers=bearer(token_b)),
        member_b.get(f"/lookup/api/lookups/{batch}"),
    ):
        assert refused(answer), (answer.url, answer.status_code)
        assert "198.51.100.77" not in answer.text
    assert batch not in member_b.get("/lookup/").text


# --- blog comments -------------------------------------------------------------------------


def _comment(visitor: Visitor, body: str) -> tuple[str, str]:
    form = visitor.get("/blog/api/comments", params={"path": "/post/"}).json()["form_token"]
    answer = visitor.post(
        "/blog/api/comments",
        json={"path": "/post/", "author": "Alice", "body": body, "form_token": form},
    )
    assert answer.status_code == 201, answer.text
    made = answer.json()
    return made["comment"]["id"], made["edit_token"]


def test_comment_edit_tokens_only_open_their_own_comment(visitor):
    alice, bob = visitor(), visitor()
    mine, _ = _comment(alice, "Alice's words")
    theirs, bob_token = _comment(bob, "Bob's words")
    assert theirs != mine
    for headers in ({}, {"X-Edit-Token": bob_token}, {"X-Edit-Token": "forged.token.value"}):
        patched = bob.patch(f"/blog/api/comments/{mine}", json={"body": "defaced"}, headers=headers)
        assert patched.status_code in (400, 403, 404), patched.text
        deleted = bob.delete(f"/blog/api/comments/{mine}", headers=headers)
        assert deleted.status_code in (400, 403, 404), deleted.text
    listed = str(bob.get("/blog/api/comments", params={"path": "/post/"}).json())
    assert "Alice&#x27;s words" in listed or "Alice's words" in listed
    assert "defaced" not in listed


# --- drop ----------------------------------------------------------------------------------


def test_drop_delete_tokens_only_delete_their_own_message(visitor):
    alice, bob = visitor(), visitor()
    mine = alice.post("/drop/", json={"message": "for Carol only"}).json()
    theirs = bob.post("/drop/", json={"message": "bob's"}).json()
    for token in (theirs["delete_token"], "x" * 43, mine["delete_token"][:-1]):
        answer = bob.delete(f"/drop/msg/{mine['message_id']}", headers={"X-Delete-Token": token})
        assert answer.status_code in (403, 404), answer.text
    read = alice.get(f"/drop/msg/{mine['message_id']}", headers={"Accept": "application/json"})
    assert read.json()["message"] == "for Carol only"


# --- API tokens ----------------------------------------------------------------------------


def test_api_tokens_of_another_member_cannot_be_seen_or_revoked(member_a, member_b):
    token_a, id_a = new_token(member_a, name="alice-ci")
    answer = member_b.post(
        f"/account/tokens/{id_a}/revoke", data={"csrf_token": member_b.csrf("/account")}
    )
    assert refused(answer)
    assert "alice-ci" not in member_b.get("/account").text
    me = member_b.get("/api/me", headers=bearer(token_a)).json()
    assert "alice@example.org" in str(me)  # A's token still works: it was not revoked


# --- admin pages ---------------------------------------------------------------------------


def _sample(rule: Any) -> str:
    """A concrete path for RULE, with a plausible value in each variable."""
    values = {
        name: (
            "1"
            if type(conv).__name__ == "IntegerConverter"
            else "approve"
            if name == "action"
            else "x" * 22
        )
        for name, conv in rule._converters.items()
    }
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: values[m.group(1)], rule.rule)


def _admin_routes(app: Any) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if "/admin" not in rule.rule:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, _sample(rule)))
    return sorted(routes)


def test_every_admin_route_is_found(app):
    routes = _admin_routes(app)
    assert ("GET", "/admin/users") in routes and ("GET", "/billing/admin/") in routes
    assert len(routes) >= 10


def test_members_are_refused_every_admin_route_and_anonymous_sent_to_login(
    app, member_a, visitor, site_admin
):
    anonymous = visitor()
    csrf = member_a.csrf("/account")
    token_a, _ = new_token(member_a)
    for method, path in _admin_routes(app):
        data = {"csrf_token": csrf} if method == "POST" else None
        answer = member_a.request(method, path, data=data)
        assert answer.status_code in (403, 404), (method, path, answer.status_code)
        assert answer.status_code == 403 or "admin" not in answer.text.lower()
        api = member_a.request(method, path, headers=bearer(token_a))
        # A token is no key to the admin pages either (a form post without a form: CSRF).
        assert api.status_code in (403, 404) or (method == "POST" and api.status_code == 400), (
            method,
            path,
            "token",
            api.status_code,
        )
        answer = anonymous.request(method, path)
        if method == "GET":
            assert answer.status_code == 302, (path, answer.status_code)
            assert answer.headers["Location"].startswith("/login"), path
        else:  # a cross-site form post without a session fails CSRF first, or goes to login
            assert answer.status_code in (302, 400), (method, path, answer.status_code)
    # The admin does get in, so the refusals above are about the role, not a broken page.
    for method, path in _admin_routes(app):
        if method == "GET" and "<" not in path and "/1" not in path and "/x" not in path:
            assert site_admin.get(path).status_code == 200, path


# --- revoked tokens on every JSON API -----------------------------------------------------


def _api_routes(app: Any) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if "/api/" not in rule.rule:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, _sample(rule)))
    return sorted(routes)


def test_revoked_tokens_are_refused_on_every_json_api(app, member_a, visitor):
    token, token_id = new_token(member_a)
    anonymous = visitor()
    protected = []
    for method, path in _api_routes(app):
        body = {} if method in ("POST", "PATCH", "PUT") else None
        if (
            anonymous.request(method, path, json=body, headers=bearer("cs_nobody")).status_code
            == 401
        ):
            protected.append((method, path, body))
            working = anonymous.request(method, path, json=body, headers=bearer(token))
            assert working.status_code != 401, (method, path)
    assert len(protected) >= 15, protected
    answer = member_a.post(
        f"/account/tokens/{token_id}/revoke", data={"csrf_token": member_a.csrf("/account")}
    )
    assert answer.status_code == 302
    for method, path, body in protected:
        for value in (token, token + "x", "cs_" + "A" * 43, "not-even-a-token"):
            answer = anonymous.request(method, path, json=body, headers=bearer(value))
            assert answer.status_code == 401, (method, path, answer.status_code)
            assert answer.json()["error"] == "unauthorized"


def test_a_token_is_not_a_session(member_a, visitor):
    """A token in a query string or under another scheme is no credential."""
    token, _ = new_token(member_a)
    anonymous = visitor()
    for path in ("/api/me", "/billing/api/v1/balance", "/compute/api/capsuls"):
        for answer in (
            anonymous.get(path, params={"token": token}),
            anonymous.get(path, params={"access_token": token}),
            anonymous.get(path, headers={"Authorization": f"Token {token}"}),
        ):
            assert answer.status_code == 401, (path, answer.status_code)
