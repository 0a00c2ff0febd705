"""The drop API as a client uses it, on every store: SQL on SQLite, PostgreSQL, MariaDB; Redis."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

from clubstack.core import clock
from tests.drop.conftest import JSON, create


def test_create_answers_201_location_and_json(drop_client: Any) -> None:
    response = drop_client.post("/drop/", json={"message": "hi there"}, headers=JSON)
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) >= {"message_id", "url", "raw_url", "expires_at", "delete_token"}
    assert response.headers["Location"] == body["url"]
    assert body["url"].endswith(f"/drop/msg/{body['message_id']}")
    assert body["raw_url"] == body["url"] + "/raw"


def test_read_json_html_and_raw(drop_client: Any) -> None:
    created = create(drop_client, "<script>alert(1)</script> & ünïcødé ✓")
    path = f"/drop/msg/{created['message_id']}"

    data = drop_client.get(path, headers=JSON)
    assert data.status_code == 200 and data.mimetype == "application/json"
    body = data.get_json()
    assert body["message"] == "<script>alert(1)</script> & ünïcødé ✓"
    assert body["message_id"] == created["message_id"]
    assert body["expires_at"] == created["expires_at"]
    assert body["created_at"].endswith("Z")

    page = drop_client.get(path, headers={"Accept": "text/html,*/*;q=0.8"})
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; ünïcødé ✓" in html
    assert "<script>alert(1)" not in html
    assert drop_client.get(path).mimetype == "text/html"  # no Accept at all: the page

    raw = drop_client.get(path + "/raw")
    assert raw.status_code == 200
    assert raw.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert raw.get_data(as_text=True) == "<script>alert(1)</script> & ünïcødé ✓"


def test_text_plain_and_form_posts(drop_client: Any) -> None:
    plain = drop_client.post(
        "/drop/?expires_in=3600&burn_after_reading=true",
        data=b"line one\nline two\n",
        content_type="text/plain; charset=utf-8",
        headers=JSON,
    )
    assert plain.status_code == 201
    assert plain.get_json()["burn_after_reading"] is True
    raw = drop_client.get(f"/drop/msg/{plain.get_json()['message_id']}/raw")
    assert raw.get_data(as_text=True) == "line one\nline two\n"

    form = drop_client.post(
        "/drop/", data={"message": "from a form", "expires_in": "600"}, headers=JSON
    )
    assert form.status_code == 201
    assert form.get_json()["burn_after_reading"] is False
    read = drop_client.get(f"/drop/msg/{form.get_json()['message_id']}", headers=JSON)
    assert read.get_json()["message"] == "from a form"
    unticked = drop_client.post(
        "/drop/", data={"message": "m", "burn_after_reading": "false"}, headers=JSON
    )
    assert unticked.get_json()["burn_after_reading"] is False
    ticked = drop_client.post(
        "/drop/", data={"message": "m", "burn_after_reading": "on"}, headers=JSON
    )
    assert ticked.get_json()["burn_after_reading"] is True


def test_delete_with_token(drop_client: Any) -> None:
    created = create(drop_client, "delete me")
    path = f"/drop/msg/{created['message_id']}"
    wrong = drop_client.delete(path, headers={"X-Delete-Token": "A" * 22, **JSON})
    assert wrong.status_code == 404
    assert drop_client.get(path, headers=JSON).status_code == 200
    missing = drop_client.delete(path, headers=JSON)
    assert missing.status_code == 400 and "X-Delete-Token" in missing.get_json()["message"]
    gone = drop_client.delete(path, headers={"X-Delete-Token": created["delete_token"]})
    assert gone.status_code == 204 and gone.get_data() == b""
    assert drop_client.get(path, headers=JSON).status_code == 404
    again = drop_client.delete(path, headers={"X-Delete-Token": created["delete_token"]})
    assert again.status_code == 404


def test_burn_after_reading_reads_once(drop_client: Any) -> None:
    created = create(drop_client, "only once", burn_after_reading=True)
    path = f"/drop/msg/{created['message_id']}"
    first = drop_client.get(path, headers=JSON)
    assert first.status_code == 200 and first.get_json()["message"] == "only once"
    assert drop_client.get(path, headers=JSON).status_code == 404
    assert drop_client.get(path + "/raw").status_code == 404


def test_missing_expired_burned_and_malformed_ids_answer_the_same_404(drop_client: Any) -> None:
    burned = create(drop_client, "burn", burn_after_reading=True)
    drop_client.get(f"/drop/msg/{burned['message_id']}", headers=JSON)
    expiring = create(drop_client, "short", expires_in=60)
    paths = {
        "missing": "/drop/msg/" + "x" * 22,
        "burned": f"/drop/msg/{burned['message_id']}",
        "malformed": "/drop/msg/not-an-id",
        "too long": "/drop/msg/" + "a" * 200,
    }
    answers = {name: drop_client.get(path, headers=JSON) for name, path in paths.items()}
    with clock.moved(timedelta(seconds=61)):
        answers["expired"] = drop_client.get(f"/drop/msg/{expiring['message_id']}", headers=JSON)
    bodies = {name: (a.status_code, a.get_data()) for name, a in answers.items()}
    assert len(set(bodies.values())) == 1, bodies
    status, body = bodies["missing"]
    assert status == 404 and b"not_found" in body
    # the raw view and delete answer the same way
    assert drop_client.get(paths["malformed"] + "/raw").status_code == 404
    deleted = drop_client.delete(paths["malformed"], headers={"X-Delete-Token": "t"})
    assert deleted.status_code == 404


def test_ids_are_128_random_bits_and_unique(drop_client: Any) -> None:
    ids = {create(drop_client, f"m{i}")["message_id"] for i in range(8)}
    assert len(ids) == 8
    for message_id in ids:
        assert len(base64.urlsafe_b64decode(message_id + "==")) == 16


def test_lifetimes_default_and_maximum(drop_client: Any) -> None:
    before = clock.utcnow()
    created = create(drop_client)
    from datetime import datetime

    expires = datetime.fromisoformat(created["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - before - timedelta(days=7)) <= timedelta(seconds=5)
    too_long = drop_client.post(
        "/drop/", json={"message": "x", "expires_in": 31 * 86400}, headers=JSON
    )
    assert too_long.status_code == 400
    assert "expires_in" in too_long.get_json()["fields"]
    month = create(drop_client, expires_in=30 * 86400)
    assert month["expires_at"] > created["expires_at"]


def test_expired_messages_are_gone(drop_client: Any) -> None:
    created = create(drop_client, "soon gone", expires_in=120)
    path = f"/drop/msg/{created['message_id']}"
    with clock.moved(timedelta(seconds=100)):
        assert drop_client.get(path, headers=JSON).status_code == 200
    with clock.moved(timedelta(seconds=121)):
        assert drop_client.get(path, headers=JSON).status_code == 404
