"""nginx in front of gunicorn, both run from the deploy/ files, smoke-tested through TLS."""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import backend_missing
from tests.deploy.stack import (
    NGINX,
    STATIC,
    Stack,
    free_port,
    make_certificate,
    render_site,
    start_nginx,
    wait_for_port,
)

pytestmark = [pytest.mark.backend, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if NGINX is None:
        backend_missing("nginx", "the nginx binary is not installed")
    folder = tmp_path_factory.mktemp("nginx")
    folder.chmod(0o755)
    stack = Stack(folder)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def test_https_reaches_the_app_with_hsts_and_proxy_headers(stack: Stack) -> None:
    response = stack.session().get(stack.https + "/", timeout=10)
    assert response.status_code == 200
    assert "<html" in response.text.lower()
    hsts = response.raw.headers.getlist("Strict-Transport-Security")
    assert hsts == ["max-age=63072000; includeSubDomains"]  # exactly one, from nginx
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    # nginx's $request_id (32 hex) reached the app, which echoes a well-formed id back
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    assert response.headers["Server"] == "nginx"  # server_tokens off: no version


def test_app_sees_https_behind_the_proxy(stack: Stack) -> None:
    response = stack.session().get(stack.https + "/login", timeout=10)
    assert response.status_code == 200
    cookie = next(c for c in response.cookies if c.name == "clubstack_session")
    assert cookie.secure
    health = stack.session().get(stack.https + "/healthz", timeout=10)
    assert health.json() == {"status": "ok", "database": "ok"}


def test_app_headers_pass_through_unchanged(stack: Stack) -> None:
    """nginx adds HSTS only; a page's own stricter headers (the drop API's) survive."""
    page = stack.session().get(stack.https + "/login", timeout=10)
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert page.headers.get("Strict-Transport-Security", "").count("max-age") == 1
    api = stack.session().get(stack.https + "/drop/msg/" + "A" * 22, timeout=10)
    assert api.status_code == 404
    assert api.headers["Referrer-Policy"] == "no-referrer"
    assert api.headers["X-Content-Type-Options"] == "nosniff"


def test_http_redirects_to_https(stack: Stack) -> None:
    response = stack.session().get(
        stack.http + "/account?tab=tokens", allow_redirects=False, timeout=10
    )
    assert response.status_code == 301
    assert response.headers["Location"] == "https://127.0.0.1/account?tab=tokens"


def test_static_files_come_from_nginx(stack: Stack) -> None:
    response = stack.session().get(stack.https + "/static/clubstack.css", timeout=10)
    assert response.status_code == 200
    assert response.content == (STATIC / "clubstack.css").read_bytes()
    assert response.headers["Content-Type"].startswith("text/css")
    assert response.headers["Cache-Control"] == "max-age=604800"
    assert "X-Request-ID" not in response.headers  # gunicorn never saw it
    assert "Strict-Transport-Security" in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    missing = stack.session().get(stack.https + "/static/nope.css", timeout=10)
    assert missing.status_code == 404
    assert "X-Request-ID" not in missing.headers


def _raw_post(stack: Stack, length: int) -> bytes:
    """A POST announcing `length` bytes; nginx must answer before the body is sent."""
    context = ssl.create_default_context(cafile=str(stack.cert))
    raw = socket.create_connection(("127.0.0.1", stack.https_port), timeout=10)
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(
            b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/octet-stream\r\n"
            + f"Content-Length: {length}\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    return answer


def _nginx_body_limit(stack: Stack) -> int:
    match = re.search(r"^client_max_body_size (\d+)k;$", stack.limits.read_text(), re.M)
    assert match, stack.limits.read_text()
    return int(match.group(1)) * 1024


def test_oversized_body_is_refused_by_nginx(stack: Stack) -> None:
    answer = _raw_post(stack, _nginx_body_limit(stack) + 1)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"413", answer[:300]
    assert b"X-Request-ID" not in rest.partition(b"\r\n\r\n")[0]  # the app was not bothered
    assert b"nginx/" not in answer  # no version in the error page either


def test_body_over_app_limit_gets_the_apps_413_page(stack: Stack) -> None:
    body = b"x" * (2 * 1024 * 1024)  # over the app's 1 MiB, under nginx's limit
    assert len(body) < _nginx_body_limit(stack)
    response = stack.session().post(
        stack.https + "/login",
        data=body,
        headers={"Content-Type": "application/octet-stream", "Accept": "text/html"},
        timeout=30,
    )
    assert response.status_code == 413
    assert "X-Request-ID" in response.headers
    assert "Traceback" not in response.text


def test_a_contest_source_over_the_old_16_mib_reaches_the_app(stack: Stack) -> None:
    """The contest takes sources up to CLUBSTACK_CONTEST_SOURCE_BYTES (50 MB by default): nginx
    lets such a body through to the app, which answers it itself (here: not logged in)."""
    body = b"x" * (20 * 1024 * 1024)
    response = stack.session().post(
        stack.https + "/contest/api/submit",
        data=body,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        timeout=60,
    )
    assert "X-Request-ID" in response.headers, (response.status_code, response.text[:200])
    assert response.headers["Content-Type"].startswith("application/json")


def test_no_web_node_answering_gets_a_page_in_words(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """nginx alone, its upstream a port where nothing listens: what a member sees when every
    web node is down, or the one holding their request died."""
    if NGINX is None:
        backend_missing("nginx", "the nginx binary is not installed")
    folder = tmp_path_factory.mktemp("nginx-down")
    folder.chmod(0o755)
    cert, key = make_certificate(folder)
    limits = folder / "clubstack-limits.conf"
    limits.write_text("client_max_body_size 1m;\n")
    https_port, http_port = free_port(), free_port()
    site = render_site(https_port, http_port, free_port(), cert, key, limits)
    (folder / "site.conf").write_text(site)
    nginx = start_nginx(folder)
    try:
        wait_for_port(https_port, nginx)
        response = requests.get(
            f"https://127.0.0.1:{https_port}/drop/", verify=str(cert), timeout=10
        )
        assert response.status_code == 502
        assert "The site did not answer" in response.text
        assert "may or may not have been" in response.text
        assert response.headers["Content-Type"].startswith("text/html")
    finally:
        nginx.terminate()
        nginx.wait(timeout=20)
