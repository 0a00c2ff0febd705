"""The outbound HTTP client's SSRF guard, attacked the way a hostile URL does it: a public
(here: allow-listed) server that redirects to an internal one, and IPv6 addresses that tunnel
to private IPv4 ones. Nothing may so much as open a TCP connection to the internal side."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from clubstack.core.net import HttpClient, SSRFBlocked, address_refused


class Listener:
    """An internal service on loopback that records every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def stop(self) -> None:
        self.sock.close()


@pytest.fixture
def internal() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.stop()


@pytest.fixture
def redirector(internal: Listener, http_stub: Any) -> str:
    """The "public" server: it sends every visitor on to the internal service, by several
    spellings of the address."""
    targets = {
        "/plain": f"http://127.0.0.1:{internal.port}/",
        "/mapped": f"http://[::ffff:127.0.0.1]:{internal.port}/",
        "/relative-host": f"//127.0.0.1:{internal.port}/admin",
        "/hop": "/plain",
    }
    return str(http_stub(lambda request: (302, b"", {"Location": targets[request.path]})).host)


@pytest.mark.parametrize("path", ["/plain", "/mapped", "/relative-host", "/hop"])
def test_a_redirect_to_an_internal_address_opens_no_connection(
    app: Any, redirector: str, internal: Listener, path: str
) -> None:
    client = HttpClient(allow_hosts=[redirector], retries=0)
    with pytest.raises(SSRFBlocked):
        client.get(f"http://{redirector}{path}")
    time.sleep(0.3)  # a connection the kernel completed is accepted a moment later
    assert internal.accepted == 0, "the guard connected to the internal address before refusing"


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:808:808::1",  # 6to4 of a public address: the range is refused whole
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "2001:0:7f00:1::1",  # Teredo with a loopback server field
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    ],
)
def test_ipv6_tunnels_to_ipv4_are_refused(app: Any, address: str) -> None:
    assert address_refused(address)
    with pytest.raises(SSRFBlocked):
        HttpClient(retries=0).get(f"http://[{address}]/")


def test_public_addresses_stay_reachable_in_principle() -> None:
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"):
        assert not address_refused(address)
