"""The TLS certificate check against local TLS servers with certificates made by the test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lookup_tls import Pki, TlsServer

from clubstack.core.net import HttpClient
from clubstack.lookup.findings import Level, Status
from clubstack.lookup.indicators import parse_one
from clubstack.lookup.tlscert import TlsCheck, hostname_matches


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def servers(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    directory = tmp_path_factory.mktemp("tls")
    kinds = ("good", "expired", "self-signed", "wrong-name", "sha1", "expiring")
    running = {kind: TlsServer(pki.chain(kind), directory).start() for kind in kinds}
    yield {kind: server.port for kind, server in running.items()}
    for server in running.values():
        server.stop()


def check(pki: Pki, servers: dict[str, int], **kw: Any) -> TlsCheck:
    allow = [f"localhost:{port}" for port in servers.values()]
    return TlsCheck(HttpClient(allow_hosts=allow, retries=0), ca_file=pki.root_file, **kw)


def run(pki: Pki, servers: dict[str, int], kind: str) -> Any:
    return check(pki, servers).run(parse_one(f"https://localhost:{servers[kind]}/login"))


def texts(result: Any) -> list[str]:
    return [f.text for f in result.findings]


def test_good_chain_verifies_and_is_described(app, pki, servers) -> None:
    result = run(pki, servers, "good")
    assert result.status is Status.OK
    assert result.level is Level.HARMLESS
    data = result.data
    assert data["verified"] is True and data["hostname_match"] is True
    assert data["port"] == servers["good"]
    leaf, intermediate = data["chain"]
    assert "CN=localhost" in leaf["subject"]
    assert "CN=Test Intermediate CA" in leaf["issuer"]
    assert leaf["san"] == ["localhost"]
    assert leaf["key_type"] == "ec-secp256r1" and leaf["key_size"] == 256
    assert leaf["signature_algorithm"] == "ecdsa-with-sha256"
    assert 88 <= leaf["days_to_expiry"] <= 90
    assert "CN=Test Root CA" in intermediate["issuer"]
    assert "verifies; expires in 8" in result.summary
    json.dumps(result.to_dict())  # stored as JSON


def test_expired_certificate_is_a_warning(app, pki, servers) -> None:
    result = run(pki, servers, "expired")
    assert result.level is Level.SUSPICIOUS
    assert "expired 3 days ago" in texts(result)
    assert result.data["verified"] is False
    assert "expired" in result.data["verify_error"]


def test_self_signed_certificate_does_not_verify(app, pki, servers) -> None:
    result = run(pki, servers, "self-signed")
    assert result.level is Level.SUSPICIOUS
    assert result.data["verified"] is False
    assert any(t.startswith("chain does not verify (self-signed") for t in texts(result))
    assert result.data["hostname_match"] is True


def test_wrong_name_is_flagged_although_the_chain_verifies(app, pki, servers) -> None:
    result = run(pki, servers, "wrong-name")
    assert result.data["verified"] is True
    assert result.data["hostname_match"] is False
    assert "certificate does not name localhost" in texts(result)
    assert result.level is Level.SUSPICIOUS


def test_sha1_signed_intermediate_is_flagged(app, pki, servers) -> None:
    result = run(pki, servers, "sha1")
    assert result.level is Level.SUSPICIOUS
    intermediate = result.data["chain"][1]
    assert intermediate["signature_hash"] == "sha1"
    assert intermediate["signature_algorithm"] == "rsa-with-sha1"
    assert result.data["weak_signatures"] == [intermediate["subject"]]
    assert any("SHA-1" in t and "Test SHA-1 Intermediate" in t for t in texts(result))


def test_expiring_soon_is_a_warning(app, pki, servers) -> None:
    result = run(pki, servers, "expiring")
    assert result.data["verified"] is True
    assert any(t.startswith("expires in 4") or t.startswith("expires in 5") for t in texts(result))
    assert result.level is Level.SUSPICIOUS


def test_system_store_does_not_trust_the_test_ca(app, pki, servers) -> None:
    allow = [f"localhost:{servers['good']}"]
    system = TlsCheck(HttpClient(allow_hosts=allow, retries=0))
    result = system.run(parse_one(f"https://localhost:{servers['good']}/"))
    assert result.data["verified"] is False
    assert result.level is Level.SUSPICIOUS


def test_loopback_is_refused_unless_allowed(app, pki, servers) -> None:
    guarded = TlsCheck(HttpClient(allow_hosts=[], retries=0), ca_file=pki.root_file)
    result = guarded.run(parse_one(f"https://localhost:{servers['good']}/"))
    assert result.status is Status.NOT_APPLICABLE
    assert "internal address" in result.summary


def test_no_tls_server_and_not_tls_at_all(app, pki, servers, providers) -> None:
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    client = HttpClient(allow_hosts=[f"localhost:{port}", f"localhost:{providers.port}"])
    tls = TlsCheck(client, ca_file=pki.root_file, timeout=2)
    nothing = tls.run(parse_one(f"https://localhost:{port}/"))
    assert nothing.status is Status.OK and nothing.summary == f"no TLS server at localhost:{port}"
    plain_http = tls.run(parse_one(f"https://localhost:{providers.port}/"))
    assert plain_http.status is Status.OK
    assert plain_http.summary.startswith("TLS handshake failed")


def test_silent_server_times_out(app, pki) -> None:
    import socket

    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    port = listener.getsockname()[1]
    try:
        tls = TlsCheck(HttpClient(allow_hosts=[f"localhost:{port}"]), timeout=0.5)
        result = tls.run(parse_one(f"https://localhost:{port}/"))
    finally:
        listener.close()
    assert result.status is Status.ERROR and "timed out" in result.summary


def test_domains_and_http_urls_are_checked_on_443(app) -> None:
    from clubstack.lookup.tlscert import target

    assert target(parse_one("example.com")) == ("example.com", 443)
    assert target(parse_one("http://example.com:8080/x")) == ("example.com", 443)
    assert target(parse_one("https://example.com:8443/x")) == ("example.com", 8443)
    assert TlsCheck.kinds == frozenset({parse_one("a.com").kind, parse_one("https://a.com").kind})


@pytest.mark.parametrize(
    ("host", "names", "expected"),
    [
        ("www.example.com", ["www.example.com"], True),
        ("WWW.Example.com.", ["www.example.com"], True),
        ("a.example.com", ["*.example.com"], True),
        ("example.com", ["*.example.com"], False),
        ("a.b.example.com", ["*.example.com"], False),
        ("a.com", ["*.com"], False),
        ("www.example.com", ["example.com"], False),
        ("192.0.2.1", ["192.0.2.1"], True),
        ("192.0.2.1", ["*.0.2.1"], False),
    ],
)
def test_hostname_matching(host: str, names: list[str], expected: bool) -> None:
    assert hostname_matches(host, names) is expected


def test_certificate_files_are_real_pem(pki: Pki, tmp_path: Path) -> None:
    assert pki.root_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


def test_only_configured_ports_are_connected_to(app, pki, servers) -> None:
    allow = [f"localhost:{servers['good']}"]
    limited = TlsCheck(HttpClient(allow_hosts=allow), ca_file=pki.root_file, ports=[443, 8443])
    result = limited.run(parse_one(f"https://localhost:{servers['good']}/"))
    assert result.status is Status.NOT_APPLICABLE
    assert result.summary == f"port {servers['good']} is not a TLS port this desk checks"
