"""The hardened web layer: headers on every response, clean error pages, CSRF, limits."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tests.conftest import csrf_token, login

PATHS = ["/", "/login", "/healthz", "/nope", "/static/clubstack.css", "/account"]


def _assert_security_headers(response: Any) -> None:
    headers = response.headers
    csp = headers["Content-Security-Policy"]
    for directive in (
        "default-src",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ):
        assert directive in csp, (directive, csp)
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"]
    assert headers["Permissions-Policy"]
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "Server" not in headers and "X-Powered-By" not in headers


@pytest.mark.parametrize("path", PATHS)
def test_every_response_carries_security_headers(client: Any, path: str) -> None:
    _assert_security_headers(client.get(path))


def test_hsts_only_over_https(client: Any) -> None:
    assert "Strict-Transport-Security" not in client.get("/").headers
    secure = client.get("/", base_url="https://localhost")
    assert "max-age=" in secure.headers["Strict-Transport-Security"]


def test_inline_scripts_need_the_nonce(app: Flask, client: Any) -> None:
    @app.get("/with-script")
    def with_script() -> str:
        from flask import render_template_string

        return render_template_string('<script nonce="{{ csp_nonce() }}">1</script>')

    csp = client.get("/").headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp and "script-src 'self';" in csp  # no inline script at all
    response = client.get("/with-script")
    nonce = response.get_data(as_text=True).split('nonce="')[1].split('"')[0]
    assert f"'nonce-{nonce}'" in response.headers["Content-Security-Policy"]
    assert nonce not in client.get("/with-script").headers["Content-Security-Policy"]


def _no_traceback(response: Any) -> None:
    body = response.get_data(as_text=True)
    assert "Traceback" not in body and 'File "' not in body and "werkzeug" not in body.lower()


def test_404_page(client: Any) -> None:
    response = client.get("/does-not-exist")
    assert response.status_code == 404
    assert "text/html" in response.content_type
    _no_traceback(response)
    _assert_security_headers(response)


def test_404_json_for_api_clients(client: Any) -> None:
    response = client.get("/api/nothing")
    assert response.status_code == 404
    assert response.json["error"] == "not_found"


def test_405_lists_allowed_methods(client: Any) -> None:
    response = client.delete("/login")
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    _no_traceback(response)


def test_413_for_oversized_bodies(make_app: Any) -> None:
    app = make_app(max_request_bytes=2048)
    client = app.test_client()
    response = client.post("/login", data={"email": "a" * 5000 + "@example.org"})
    assert response.status_code == 413
    _no_traceback(response)


def test_500_page_hides_the_traceback(app: Flask, client: Any) -> None:
    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals")

    response = client.get("/boom")
    assert response.status_code == 500
    _no_traceback(response)
    assert "secret internals" not in response.get_data(as_text=True)
    assert response.headers["X-Request-ID"] in response.get_data(as_text=True)


def test_429_with_retry_after_html_and_json(make_app: Any) -> None:
    from clubstack.core.web import csrf

    app = make_app(default_rate="3/minute")

    @app.post("/api/ping")
    @csrf.exempt
    def api_ping() -> str:
        return "pong"

    @app.post("/ping")
    @csrf.exempt
    def page_ping() -> str:
        return "pong"

    client = app.test_client()
    statuses = [client.post("/api/ping").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    api = client.post("/api/ping")
    assert api.json["error"] == "rate_limited" and 0 < int(api.headers["Retry-After"]) <= 61
    for _ in range(4):
        page = client.post("/ping", headers={"Accept": "text/html"})
    assert page.status_code == 429 and "text/html" in page.content_type
    assert int(page.headers["Retry-After"]) > 0
    _no_traceback(page)


def test_plain_page_views_are_not_counted_by_the_default_limit(make_app: Any) -> None:
    app = make_app(default_rate="2/minute")
    client = app.test_client()
    assert {client.get("/").status_code for _ in range(5)} == {200}


def test_a_view_s_own_limit_applies_to_reads_and_the_default_one_to_writes(
    make_app: Any,
) -> None:
    from clubstack.core.web import limiter

    app = make_app(default_rate="2/minute", csrf=False)

    @app.route("/api/counted", methods=["GET", "POST"])
    @limiter.limit("3/minute", methods=["GET"])
    def counted() -> str:
        return "ok"

    client = app.test_client()
    assert [client.get("/api/counted").status_code for _ in range(4)] == [200, 200, 200, 429]
    writes = [client.post("/api/counted").status_code for _ in range(3)]
    assert writes == [200, 200, 429]


def test_state_changing_forms_need_csrf(app: Flask, client: Any) -> None:
    login(client, app, "ada@example.org")
    for path, data in [
        ("/account/nickname", {"nickname": "ada"}),
        ("/account/tokens", {"name": "t"}),
        ("/account/delete", {"confirm_email": "ada@example.org"}),
        ("/logout", {}),
    ]:
        response = client.post(path, data=data)
        assert response.status_code == 400, path
    assert client.get("/account").status_code == 200  # nothing happened, still logged in


def test_request_id_is_generated_or_kept(client: Any) -> None:
    assert len(client.get("/").headers["X-Request-ID"]) >= 8
    kept = client.get("/", headers={"X-Request-ID": "abcdef123456"})
    assert kept.headers["X-Request-ID"] == "abcdef123456"
    evil = client.get("/", headers={"X-Request-ID": "bad id <script>"})
    assert "<" not in evil.headers["X-Request-ID"]


def test_proxy_headers_ignored_unless_configured(make_app: Any) -> None:
    app = make_app(login_rate_ip="2/minute")
    client = app.test_client()
    for i in range(3):
        response = client.post(
            "/login",
            data={"email": f"u{i}@example.org", "csrf_token": csrf_token(client, "/login")},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        )
    assert response.status_code == 429  # spoofed X-Forwarded-For does not dodge the limit


def test_landing_lists_enabled_services(make_app: Any) -> None:
    app = make_app(services="")
    page = app.test_client().get("/").get_data(as_text=True)
    assert "No services are enabled" in page


def test_csrf_token_present_on_login_form(client: Any) -> None:
    assert csrf_token(client, "/login")


def test_rate_limits_live_in_redis_when_configured(make_app: Any) -> None:
    import redis

    from tests.conftest import BACKEND_URLS

    app = make_app(redis=True, login_rate_ip="2/minute")
    client = app.test_client()
    statuses = [
        client.post(
            "/login", data={"email": "a@example.org", "csrf_token": csrf_token(client, "/login")}
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    keys = redis.Redis.from_url(BACKEND_URLS["redis"]).keys("*clubstack*")
    assert keys, "the limiter kept its counters somewhere else"


def test_anonymous_landing_page_cache_does_not_leak_a_login(app: Any, client: Any) -> None:
    assert "Log in" in client.get("/").get_data(as_text=True)
    login(client, app, "ada@example.org")
    page = client.get("/").get_data(as_text=True)
    assert "Log out" in page and "ada@example.org" in page


def test_a_view_may_accept_a_larger_body_and_others_may_not(make_app: Any) -> None:
    from clubstack.core.web import body_limit, csrf

    app = make_app(max_request_bytes=2048)

    @app.post("/upload")
    @body_limit(lambda: 10_000)
    @csrf.exempt
    def upload() -> str:
        from flask import request

        return str(len(request.get_data()))

    client = app.test_client()
    # the larger limit is for members; a stranger keeps the default
    assert client.post("/upload", data=b"x" * 8000).status_code == 413
    login(client, app, "member@example.org")
    assert client.post("/upload", data=b"x" * 8000).get_data(as_text=True) == "8000"
    assert client.post("/upload", data=b"x" * 12_000).status_code == 413
    assert client.post("/login", data={"email": "a" * 5000}).status_code == 413


def test_a_blueprint_may_negotiate_its_errors_through_the_one_mapping(make_app: Any) -> None:
    """A JSON-first blueprint (json_errors) gets JSON errors unless its rule says a page; the
    mapping (status, code, message, headers) stays the core's; other blueprints keep the
    core's rule, and so do routing errors, which reach no view."""
    from flask import Blueprint, request

    from clubstack.core.errors import NotFound, RateLimited
    from clubstack.core.web import json_errors

    app = make_app()
    api, pages = Blueprint("jsonfirst", __name__), Blueprint("pagefirst", __name__)
    for bp in (api, pages):

        @bp.get("/missing")
        def missing() -> str:
            raise NotFound("no such thing")

        @bp.get("/limited")
        def limited() -> str:
            raise RateLimited(retry_after=7)

        @bp.get("/boom")
        def boom() -> str:
            raise RuntimeError("secret internals")

    json_errors(
        api,
        lambda: (
            request.accept_mimetypes.best_match(["application/json", "text/html"]) != "text/html"
        ),
    )
    app.register_blueprint(api, url_prefix="/jsonfirst")
    app.register_blueprint(pages, url_prefix="/pagefirst")
    client = app.test_client()

    answer = client.get("/jsonfirst/missing")
    assert answer.status_code == 404 and answer.mimetype == "application/json"
    assert answer.json == {"error": "not_found", "message": "no such thing"}
    slow_down = client.get("/jsonfirst/limited")
    assert slow_down.status_code == 429 and slow_down.headers["Retry-After"] == "7"
    assert slow_down.json["error"] == "rate_limited"
    failed = client.get("/jsonfirst/boom")
    assert failed.status_code == 500 and failed.json["error"] == "server_error"
    assert "secret internals" not in failed.get_data(as_text=True)
    browser = client.get("/jsonfirst/missing", headers={"Accept": "text/html"})
    assert browser.status_code == 404 and browser.mimetype == "text/html"

    assert client.get("/pagefirst/missing").mimetype == "text/html"
    assert client.get("/jsonfirst/no-such-route").mimetype == "text/html"
