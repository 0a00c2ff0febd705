"""The gate around core/net.py's urllib3 hooks: the peer check runs only on tested urllib3
versions, and outside them the client sends nothing at all (never an unguarded request)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from clubstack.core import net
from clubstack.core.net import GuardUnavailable, HttpClient, SSRFBlocked


def test_the_hooks_run_only_on_tested_versions() -> None:
    assert net.PEER_CHECK  # this test environment is inside the tested range
    assert net.peer_check_fits("2.8.0") and net.peer_check_fits("2.6.3")
    assert not net.peer_check_fits("3.0.0")
    assert not net.peer_check_fits("2.5.0") and not net.peer_check_fits("1.26.20")


def test_without_the_hooks_nothing_is_sent(app: Any, http_stub: Any, monkeypatch: Any) -> None:
    server = http_stub(lambda request: (200, b"hello"))
    assert HttpClient(allow_hosts=[server.host]).get(f"{server.url}/").text == "hello"

    monkeypatch.setattr(net, "PEER_CHECK", False)
    client = HttpClient(allow_hosts=[])
    for url in (f"{server.url}/", "http://127.0.0.1/", "http://93.184.216.34/"):
        with pytest.raises(GuardUnavailable, match=r"urllib3 .* not one the SSRF guard"):
            client.get(url)
    with pytest.raises(GuardUnavailable):  # code handed the session (Stripe) is refused too
        client.session.get(f"{server.url}/", timeout=2)
    with pytest.raises(GuardUnavailable):
        requests.Session.request(client.session, "POST", f"{server.url}/", timeout=2)
    assert len(server.requests) == 1  # only the request made before the switch

    # Plain TCP does not use urllib3: still guarded, still refusing loopback.
    with pytest.raises(SSRFBlocked):
        client.tcp_query("127.0.0.1", server.port, b"q\r\n", timeout=1)
    allowed = HttpClient(allow_hosts=[server.host])
    with pytest.raises(GuardUnavailable):  # even an allow-listed host: the adapter is refusing
        allowed.get(f"{server.url}/")
