"""The one outbound HTTP client: SSRF guard, allow-list, quotas shared between workers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from clubstack.core.net import (
    HttpClient,
    Quota,
    QuotaExhausted,
    SSRFBlocked,
    UpstreamError,
    address_refused,
)
from tests.httpstub import Request


@pytest.fixture
def local_http(http_stub: Any) -> str:
    """A real HTTP server on loopback: "hello", or a redirect to the metadata address."""

    def answer(request: Request) -> Any:
        if request.path == "/redirect":
            return 302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"}
        return 200, b"hello"

    return str(http_stub(answer).host)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://localhost/",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
    ],
)
def test_guard_refuses_internal_addresses_without_connecting(app: Any, url: str) -> None:
    with pytest.raises(SSRFBlocked):
        HttpClient(allow_hosts=[]).get(url)


def test_guard_refuses_non_http_schemes(app: Any) -> None:
    for url in ("file:///etc/passwd", "gopher://127.0.0.1/", "ftp://example.org/"):
        with pytest.raises(SSRFBlocked):
            HttpClient(allow_hosts=[]).get(url)


def test_allow_listed_test_host_is_reachable(app: Any, local_http: str) -> None:
    response = HttpClient(allow_hosts=[local_http]).get(f"http://{local_http}/")
    assert response.status_code == 200 and response.text == "hello"


def test_allow_list_is_per_port(app: Any, local_http: str) -> None:
    host, _, port = local_http.partition(":")
    with pytest.raises(SSRFBlocked):
        HttpClient(allow_hosts=[f"{host}:{int(port) + 1}"]).get(f"http://{local_http}/")


def test_redirect_to_metadata_address_is_refused(app: Any, local_http: str) -> None:
    with pytest.raises(SSRFBlocked):
        HttpClient(allow_hosts=[local_http]).get(f"http://{local_http}/redirect")


def test_connected_peer_is_checked_too(app: Any, local_http: str, monkeypatch: Any) -> None:
    """DNS rebinding: the name looked public at check time but the socket lands on loopback."""
    real = socket.getaddrinfo

    def first_public_then_loopback(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test" and not calls:
            calls.append(1)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80))]
        if host == "rebind.test":
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    calls: list[int] = []
    monkeypatch.setattr(socket, "getaddrinfo", first_public_then_loopback)
    port = local_http.split(":")[1]
    with pytest.raises(SSRFBlocked):
        HttpClient(allow_hosts=[], retries=0).get(f"http://rebind.test:{port}/")


def test_address_classification() -> None:
    assert address_refused("127.0.0.1") and address_refused("::1") and address_refused("fd00::1")
    assert not address_refused("93.184.216.34") and not address_refused("2606:4700::1111")


@pytest.mark.parametrize("use_redis", [False, True], ids=["sql", "redis"])
def test_quota_counts_across_windows_and_sends_nothing_past_it(
    make_app: Any, local_http: str, use_redis: bool
) -> None:
    make_app(redis=use_redis)
    quota = Quota("testprovider", [(3, 60), (5, 86400)])
    client = HttpClient(allow_hosts=[local_http])
    now = 1_000_000.0
    for _ in range(3):
        assert quota.try_take(now) is None
    assert quota.try_take(now) is not None  # minute full
    later = now + 60
    assert quota.try_take(later) is None and quota.try_take(later) is None
    assert quota.try_take(later + 60) is not None  # day full at 5
    one_call = Quota("testprovider2", [(1, 3600)])
    assert client.get(f"http://{local_http}/", quota=one_call).status_code == 200
    with pytest.raises(QuotaExhausted):
        client.get(f"http://{local_http}/", quota=one_call)


def test_quota_shared_between_processes(make_app: Any, db_kind: str) -> None:
    """Two worker processes draw from one allowance: together they never exceed it."""
    import multiprocessing
    import os

    make_app(db_kind=db_kind)
    env = {k: v for k, v in os.environ.items() if k.startswith("CLUBSTACK_")}
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap(_take_many, [(env, 15), (env, 15)])
    assert sum(results) == 10


def _take_many(env: dict[str, str], attempts: int) -> int:
    import os

    os.environ.update(env)
    from clubstack.core.db import db
    from clubstack.settings import get_settings

    db.init(get_settings().sqlalchemy_url)
    quota = Quota("shared", [(10, 3600)])
    return sum(1 for _ in range(attempts) if quota.try_take(7200.0 * 100) is None)


# --- plain TCP through the same guard (WHOIS, TLS inspection) -----------------------------


@pytest.fixture
def tcp_server() -> Iterator[tuple[int, dict[str, Any]]]:
    """A loopback TCP server; `behaviour["answer"]` is sent back, `["drip"]` slows it down."""
    behaviour: dict[str, Any] = {"answer": b"hello\r\n", "drip": 0.0, "asked": []}
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                behaviour["asked"].append(conn.recv(1024))
                if behaviour["drip"]:
                    for byte in behaviour["answer"]:
                        if stop.wait(behaviour["drip"]):
                            break
                        conn.sendall(bytes([byte]))
                else:
                    conn.sendall(behaviour["answer"])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], behaviour
    stop.set()
    thread.join(2)
    listener.close()


def test_tcp_query_refuses_loopback_without_connecting(app: Any, tcp_server: Any) -> None:
    port, behaviour = tcp_server
    with pytest.raises(SSRFBlocked):
        HttpClient(allow_hosts=[]).tcp_query("127.0.0.1", port, b"example.com\r\n")
    with pytest.raises(SSRFBlocked):
        HttpClient(allow_hosts=[]).connect("localhost", port)
    assert behaviour["asked"] == []


def test_tcp_query_reaches_an_allowed_host_and_reads_to_the_end(app: Any, tcp_server: Any) -> None:
    port, behaviour = tcp_server
    behaviour["answer"] = b"Domain Name: EXAMPLE.COM\r\n" * 100
    answer = HttpClient(allow_hosts=[f"127.0.0.1:{port}"]).tcp_query(
        "127.0.0.1", port, b"example.com\r\n"
    )
    assert answer == behaviour["answer"]
    assert behaviour["asked"] == [b"example.com\r\n"]


def test_tcp_query_caps_the_answer_size(app: Any, tcp_server: Any) -> None:
    port, behaviour = tcp_server
    behaviour["answer"] = b"x" * 5000
    client = HttpClient(allow_hosts=[f"127.0.0.1:{port}"])
    with pytest.raises(UpstreamError, match="more than 1000 bytes"):
        client.tcp_query("127.0.0.1", port, b"q\r\n", max_bytes=1000)


def test_tcp_query_timeout_bounds_the_whole_exchange(app: Any, tcp_server: Any) -> None:
    port, behaviour = tcp_server
    behaviour["answer"], behaviour["drip"] = b"slow answer " * 10, 0.05
    client = HttpClient(allow_hosts=[f"127.0.0.1:{port}"])
    started = time.monotonic()
    with pytest.raises(UpstreamError, match="in time"):
        client.tcp_query("127.0.0.1", port, b"q\r\n", timeout=0.5)
    assert time.monotonic() - started < 2
