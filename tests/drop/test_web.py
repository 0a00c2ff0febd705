"""The drop's HTTP rules: status codes, error shapes, headers, limits, logs, the no-JS page."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import free_port
from tests.drop.conftest import JSON, create

API_CSP_PARTS = ("default-src 'none'", "frame-ancestors 'none'")


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b'["a list"]', "application/json", "JSON object"),
        (b"{}", "application/json", "message"),
        (b'{"message": ""}', "application/json", "message"),
        (b'{"message": "   \\n "}', "application/json", "empty"),
        (b'{"message": 42}', "application/json", "message"),
        (b'{"message": "a\\u0000b"}', "application/json", "NUL"),
        (b'{"message": "\\ud800"}', "application/json", "unicode"),
        (b'{"message": "x", "expires_in": "soon"}', "application/json", "expires_in"),
        (b'{"message": "x", "expires_in": 5}', "application/json", "expires_in"),
        (b'{"message": "x", "colour": "red"}', "application/json", "colour"),
        (b"[" * 150_000 + b"]" * 150_000, "application/json", "not valid JSON"),
        (b'{"message": "x", "expires_in": 1e400}', "application/json", "expires_in"),
        (b"\xff\xfe\xfa", "text/plain", "UTF-8"),
        (b"", "text/plain", "message"),
        (b"<a/>", "application/xml", "Send JSON"),
    ],
)
def test_bad_bodies_answer_400_with_a_json_reason(
    client: Any, body: bytes, content_type: str, reason: str
) -> None:
    response = client.post("/drop/", data=body, content_type=content_type)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    data = response.get_json()
    assert data["error"] in ("invalid_input", "invalid_body")
    assert reason in str(data), data


def test_size_limit_is_a_setting_and_answers_413(make_app: Any) -> None:
    client = make_app(drop_max_bytes=100).test_client()
    assert client.post("/drop/", json={"message": "x" * 100}).status_code == 201
    over = client.post("/drop/", json={"message": "x" * 101})
    assert over.status_code == 413 and over.get_json()["error"] == "message_too_large"
    euros = client.post("/drop/", data="€" * 34, content_type="text/plain")  # 102 bytes
    assert euros.status_code == 413
    huge = client.post("/drop/", data=b"x" * 2_000_000, content_type="text/plain")
    assert huge.status_code == 413 and huge.mimetype == "application/json"


def test_default_size_limit_is_64_kib(client: Any) -> None:
    assert client.post("/drop/", json={"message": "x" * 65_536}).status_code == 201
    assert client.post("/drop/", json={"message": "x" * 65_537}).status_code == 413


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/drop/msg/" + "a" * 22, {"GET", "HEAD", "DELETE"}),
        ("POST", "/drop/msg/" + "a" * 22, {"GET", "HEAD", "DELETE"}),
        ("PATCH", "/drop/", {"GET", "HEAD", "POST"}),
        ("DELETE", "/drop/", {"GET", "HEAD", "POST"}),
        ("OPTIONS", "/drop/msg/" + "a" * 22, {"GET", "HEAD", "DELETE"}),
        ("DELETE", "/drop/msg/" + "a" * 22 + "/raw", {"GET", "HEAD"}),
        ("POST", "/drop/openapi.json", {"GET", "HEAD"}),
    ],
)
def test_other_methods_answer_405_with_allow(
    client: Any, method: str, path: str, allow: set
) -> None:
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["Allow"].split(",")} == allow
    assert response.get_json()["error"] == "method_not_allowed"


def test_api_answers_carry_security_headers(client: Any) -> None:
    created = create(client, "headers")
    path = f"/drop/msg/{created['message_id']}"
    answers = [
        client.post("/drop/", json={"message": "x"}),
        client.get(path, headers=JSON),
        client.get(path + "/raw"),
        client.get("/drop/msg/nope", headers=JSON),
        client.put(path),
        client.post("/drop/", json={}),
        client.get("/drop/openapi.json"),
    ]
    for response in answers:
        csp = response.headers["Content-Security-Policy"]
        assert all(part in csp for part in API_CSP_PARTS), (response.status, csp)
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"


def test_pages_get_the_page_csp_with_the_script_nonce(client: Any) -> None:
    created = create(client, "page")
    for path in ("/drop/", f"/drop/msg/{created['message_id']}"):
        page = client.get(path, headers={"Accept": "text/html"})
        assert page.status_code == 200 and page.mimetype == "text/html"
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self' 'nonce-" in csp and "frame-ancestors 'none'" in csp
        nonce = re.search(r"'nonce-([^']+)'", csp).group(1)  # type: ignore[union-attr]
        assert f'nonce="{nonce}"' in page.get_data(as_text=True)
        assert page.headers["Cache-Control"] == "no-store"
        assert page.headers["Referrer-Policy"] == "no-referrer"
    script = client.get("/drop/assets/drop.js")
    assert script.status_code == 200 and "AES-GCM" in script.get_data(as_text=True)


def test_creation_is_limited_to_10_per_minute_per_ip_by_default(client: Any) -> None:
    for _ in range(10):
        assert client.post("/drop/", json={"message": "m"}).status_code == 201
    limited = client.post("/drop/", json={"message": "m"})
    assert limited.status_code == 429
    assert limited.get_json()["error"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    other_ip = client.post(
        "/drop/", json={"message": "m"}, environ_base={"REMOTE_ADDR": "127.0.0.2"}
    )
    assert other_ip.status_code == 201
    text_plain = client.post("/drop/", data="m", content_type="text/plain")
    assert text_plain.status_code == 429 and text_plain.mimetype == "application/json"


def test_read_limit_is_a_setting(make_app: Any) -> None:
    client = make_app(drop_read_rate="5/minute").test_client()
    created = create(client, "read me")
    path = f"/drop/msg/{created['message_id']}"
    statuses = [client.get(path, headers=JSON).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    limited = client.get(path + "/raw")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0


def test_store_down_answers_503_and_the_rest_keeps_serving(make_app: Any) -> None:
    app = make_app(drop_redis_url=f"redis://127.0.0.1:{free_port()}/0", drop_store_timeout=1)
    client = app.test_client()
    down = client.post("/drop/", json={"message": "x"})
    assert down.status_code == 503
    assert down.get_json()["error"] == "store_unavailable"
    assert "store" in down.get_json()["message"]
    assert client.get("/drop/msg/" + "a" * 22, headers=JSON).status_code == 503
    assert client.get("/drop/msg/malformed", headers=JSON).status_code == 404  # never asked
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/drop/").status_code == 200
    assert client.get("/login").status_code == 200


def test_malformed_ids_never_reach_the_store(app: Any, client: Any) -> None:
    store = app.extensions["clubstack.drop"]["store"]
    calls: list[str] = []
    store.read = lambda message_id, limit=None: calls.append(message_id)  # type: ignore[method-assign]
    store.delete = lambda message_id, h: calls.append(message_id)  # type: ignore[method-assign]
    for bad in ("short", "a" * 21, "a" * 23, "a" * 21 + "!", "%00" * 8, "a" * 300):
        assert client.get(f"/drop/msg/{bad}", headers=JSON).status_code == 404
        assert client.get(f"/drop/msg/{bad}/raw").status_code == 404
        assert client.delete(f"/drop/msg/{bad}", headers={"X-Delete-Token": "t"}).status_code == 404
    assert calls == []
    client.get("/drop/msg/" + "a" * 22, headers=JSON)
    assert calls == ["a" * 22]


def test_access_log_has_one_line_per_request_with_an_id_prefix_only(app: Any, client: Any) -> None:
    created = create(client, "do-not-log-this-text")
    message_id, token = created["message_id"], created["delete_token"]
    client.get(f"/drop/msg/{message_id}", headers=JSON)
    client.get(f"/drop/msg/{message_id}/raw")
    client.delete(f"/drop/msg/{message_id}", headers={"X-Delete-Token": token})
    log_file = Path(app.config["CLUBSTACK"].instance) / "logs" / "web.log"
    deadline = time.monotonic() + 10  # the core writes logs from a queue, a moment later
    while True:
        log = log_file.read_text() if log_file.exists() else ""
        access = [line for line in log.splitlines() if "clubstack.access" in line]
        if len(access) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(access) == 4
    assert f"/drop/msg/{message_id[:4]}…" in access[1]
    assert access[2].endswith("/raw 200") and access[3].endswith("204")
    for secret in (message_id, token, "do-not-log-this-text"):
        assert secret not in log


def test_form_post_without_javascript_shows_the_link(client: Any) -> None:
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    page = client.get("/drop/", headers=browser).get_data(as_text=True)
    assert 'name="message"' in page and 'action="/drop/"' in page
    created = client.post(
        "/drop/",
        data={
            "message": "plain <b>from</b> a form",
            "expires_in": "3600",
            "burn_after_reading": "on",
        },
        headers=browser,
    )
    assert created.status_code == 201 and created.mimetype == "text/html"
    html = created.get_data(as_text=True)
    url = created.headers["Location"]
    assert url in html
    token = re.search(r'id="delete-token"[^>]*>([^<]+)<', html).group(1)  # type: ignore[union-attr]
    assert len(token) == 22
    path = urlsplit(url).path
    shown = client.get(path, headers=browser).get_data(as_text=True)
    # the result page shows the expiry as the read page does, not a raw ISO timestamp
    expiry = re.search(r"<time [^>]*>([^<]+)</time>", html).group(1)  # type: ignore[union-attr]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", expiry), expiry
    assert "plain &lt;b&gt;from&lt;/b&gt; a form" in shown
    assert "deleted as you opened it" in shown
    assert client.get(path, headers=browser).status_code == 404


def test_form_errors_rerender_the_page(client: Any) -> None:
    browser = {"Accept": "text/html"}
    empty = client.post("/drop/", data={"message": ""}, headers=browser)
    assert empty.status_code == 400 and empty.mimetype == "text/html"
    assert 'aria-invalid="true"' in empty.get_data(as_text=True)


def test_empty_prefix_answers_at_the_root(make_app: Any) -> None:
    client = make_app(drop_prefix="").test_client()
    created = client.post("/", json={"message": "at the root"}, headers=JSON)
    assert created.status_code == 201
    body = created.get_json()
    base = client.application.config["CLUBSTACK"].base_url
    assert body["url"] == f"{base}/msg/{body['message_id']}"
    assert client.get(f"/msg/{body['message_id']}", headers=JSON).get_json()["message"] == (
        "at the root"
    )
    assert client.get(f"/msg/{body['message_id']}/raw").get_data() == b"at the root"
    assert 'action="/"' in client.get("/").get_data(as_text=True)
    assert client.get("/openapi.json").get_json()["servers"] == [{"url": "/"}]
    assert client.get("/assets/drop.js").status_code == 200


@pytest.mark.parametrize("redis", [False, True], ids=["limiter", "redis-store-counts"])
def test_a_limited_page_read_is_an_html_429_and_writes_keep_their_own_limit(
    make_app: Any, redis: bool
) -> None:
    client = make_app(redis=redis, drop_read_rate="3/minute").test_client()
    created = create(client, "read me")
    path = f"/drop/msg/{created['message_id']}"
    # The message and its raw form share one read limit.
    statuses = [client.get(path).status_code, client.get(path + "/raw").status_code]
    assert [*statuses, client.get(path).status_code] == [200, 200, 200]
    page = client.get(path)
    assert page.status_code == 429 and page.mimetype == "text/html"
    assert 0 < int(page.headers["Retry-After"]) <= 61
    limited = client.get(path, headers=JSON)
    assert limited.status_code == 429 and limited.get_json()["error"] == "rate_limited"
    # Deleting is a write: the read limit does not stop it.
    gone = client.delete(path, headers={"X-Delete-Token": created["delete_token"]})
    assert gone.status_code == 204


def test_reads_are_served_when_the_rate_limit_store_is_down(make_app: Any) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0", drop_store="sql")
    client = app.test_client()
    created = create(client, "still readable")
    shown = client.get(f"/drop/msg/{created['message_id']}", headers=JSON)
    assert shown.status_code == 200 and shown.get_json()["message"] == "still readable"


def test_errors_go_through_the_core_mapping_only(app: Any, client: Any) -> None:
    """The drop registers no error handler of its own; the core answers its errors, JSON-first
    as the drop negotiates (an API client sending no Accept gets JSON)."""
    assert not any(app.error_handler_spec.get("drop", {}).values())
    missing = client.delete("/drop/msg/" + "a" * 22, headers={"X-Delete-Token": "t"})
    assert missing.status_code == 404 and missing.mimetype == "application/json"
    assert missing.get_json()["error"] == "not_found"
    wrong = client.put("/drop/openapi.json")
    assert wrong.status_code == 405 and wrong.get_json() == {
        "error": "method_not_allowed",
        "message": "This address does not accept that.",
    }
    assert wrong.headers["Allow"] == "GET, HEAD"


def test_with_redis_a_read_and_its_limit_are_one_round_trip(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis.connection

    client = make_app(redis=True).test_client()
    created = create(client, "one trip")
    path = f"/drop/msg/{created['message_id']}"
    assert client.get(path, headers=JSON).status_code == 200  # the script is loaded by now
    sent: list[object] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(command)
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    shown = client.get(path, headers=JSON)
    assert shown.status_code == 200 and shown.get_json()["message"] == "one trip"
    assert len(sent) == 1  # the count and the message in one script (before: two round trips)
