"""Large request bodies are for members only. The contest's submit routes accept a source of
up to 50 MB; a stranger who sends that much must be turned away before the server reads (and
parses, and holds in memory) any of it."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import LiveServer
from tests.security.conftest import Visitor

BIG = 50_000_000


def _status_without_sending_the_body(site: LiveServer, path: str, content_type: str) -> int:
    """Announce a 50 MB body, send 100 bytes of it, and read the answer. A server that waits
    for the rest of the body never answers (the socket times out)."""
    port = urlsplit(site.url).port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {BIG}\r\n"
            "Accept: text/html\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode() + b"source=" + b"A" * 93)
        try:
            first = sock.recv(4096)
        except TimeoutError:
            return 0  # no answer: the server is reading the body
    return int(first.split(b" ", 2)[1])


def test_anonymous_form_upload_is_refused_before_the_body_is_read(site: LiveServer) -> None:
    status = _status_without_sending_the_body(
        site, "/contest/submit", "application/x-www-form-urlencoded"
    )
    assert status in (302, 401, 413), f"answered {status or 'nothing'}"


def test_anonymous_multipart_upload_is_refused_before_the_body_is_read(site: LiveServer) -> None:
    status = _status_without_sending_the_body(
        site, "/contest/submit", "multipart/form-data; boundary=x"
    )
    assert status in (302, 401, 413), f"answered {status or 'nothing'}"


def test_anonymous_api_upload_is_refused_before_the_body_is_read(site: LiveServer) -> None:
    status = _status_without_sending_the_body(site, "/contest/api/submit", "application/json")
    assert status in (401, 413), f"answered {status or 'nothing'}"


def test_a_member_may_still_send_a_large_source(member_a: Visitor, app: Any) -> None:
    source = "int main(void) { return 0; }\n" + "/* padding */\n" * 150_000  # about 2 MB
    answer = member_a.post(
        "/contest/submit",
        data={"source": source, "csrf_token": member_a.csrf("/contest/submit")},
    )
    assert len(source) > app.config["CLUBSTACK"].max_request_bytes
    assert answer.status_code != 413, answer.text[:300]
    assert answer.status_code < 500, answer.text[:300]
