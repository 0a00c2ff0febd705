"""The one local HTTP server behind the tests' stand-ins of remote APIs (VirusTotal, AbuseIPDB,
URLhaus, RDAP, Stripe, BTCPay Server, Akismet) and of hostile servers (redirectors, canaries).

A stand-in is a function from the request to the answer; the server records every request and
answers on loopback (and on ::1, same port, when asked), so the adapter under test only ever
differs by its base URL. The ``http_stub`` fixture in tests/conftest.py starts one and stops it
after the test.

Why not pytest-httpserver: every stand-in here dispatches on its own data (per indicator, per
invoice) rather than on a list of expected requests, the canary must answer on both address
families at one port, and this is all the code they need, with no further dependency.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    target: str  # path and query as sent
    headers: Message  # case-insensitive .get()
    body: bytes = b""
    path: str = field(init=False)
    query: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        self.path, self.query = parts.path, parse_qs(parts.query)

    @property
    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())

    def json(self) -> Any:
        return json.loads(self.body)


# (status, body) or (status, body, headers). A dict or list body is sent as JSON, a str as
# text/plain, bytes as they are (with the Content-Type from `headers`, if any).
Answer = tuple[int, Any] | tuple[int, Any, dict[str, str]]
Handler = Callable[[Request], Answer]


def _encode(body: Any) -> tuple[bytes, str]:
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return json.dumps(body).encode(), "application/json"


class StubServer:
    def __init__(self, handler: Handler, *, ipv6: bool = False) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        stub = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path, self.headers, body)
                with stub._lock:
                    stub.requests.append(request)
                status, answer, *extra = stub.handler(request)
                headers = dict(extra[0]) if extra else {}
                data, content_type = _encode(answer)
                headers.setdefault("Content-Type", content_type)
                headers["Content-Length"] = str(len(data))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815

        class _V6(ThreadingHTTPServer):
            address_family = socket.AF_INET6

        self.servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Handler)]
        self.port: int = self.servers[0].server_address[1]
        if ipv6:  # without IPv6 loopback here, v6 spellings of loopback reach nothing anyway
            with contextlib.suppress(OSError):
                self.servers.append(_V6(("::1", self.port), _Handler))
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        """host:port, as CLUBSTACK_HTTP_ALLOW_HOSTS takes it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def count(self, prefix: str = "/") -> int:
        with self._lock:
            return sum(1 for request in self.requests if request.path.startswith(prefix))

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> StubServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
