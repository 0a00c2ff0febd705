"""TLS check: the certificate chain a server presents, whether it verifies, whether it names
the host, when it expires and what it is signed with.

The handshake runs over a socket from the core client (SSRF guard, timeouts) with pyOpenSSL,
because Python 3.11's ssl module has no public way to read the whole presented chain
(``get_unverified_chain`` is public only from 3.13). The handshake itself does not verify:
we want to see the certificates of broken servers too. The chain is verified afterwards with
OpenSSL's store verification (``X509StoreContext``) against a configurable trust store (the
system store in production, the test's own CA in tests), and the host name is matched
against the leaf's subjectAltNames (RFC 6125: no common-name fallback, wildcard only as the
whole left-most label).
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import SignatureAlgorithmOID
from OpenSSL import SSL, crypto

from clubstack.core.clock import utcnow
from clubstack.core.net import HttpClient, SSRFBlocked, UpstreamError
from clubstack.lookup.findings import CheckResult, Level, Status, not_applicable
from clubstack.lookup.indicators import Indicator, Kind

Clock = Callable[[], datetime]

_SIGNATURE_NAMES = {
    getattr(SignatureAlgorithmOID, name): name.lower().replace("_", "-")
    for name in dir(SignatureAlgorithmOID)
    if name.isupper()
}
WEAK_HASHES = frozenset({"sha1", "md5"})


class HandshakeFailed(Exception):
    """The server does not speak TLS, or not in a way we can talk to."""


def key_description(cert: x509.Certificate) -> tuple[str, int | None]:
    """("rsa", 2048), ("ec-secp256r1", 256), ("ed25519", 256) ..."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ec-{key.curve.name}", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "dsa", key.key_size
    return type(key).__name__.lower(), None


def signature_hash(cert: x509.Certificate) -> str | None:
    algorithm = cert.signature_hash_algorithm
    return algorithm.name if algorithm is not None else None


def alt_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return names


def _is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def hostname_matches(host: str, names: list[str]) -> bool:
    """RFC 6125 matching of `host` against subjectAltName values (already IDNA/ASCII)."""
    host = host.lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    for name in names:
        name = name.lower().rstrip(".")
        if address is not None:
            try:
                if ipaddress.ip_address(name) == address:
                    return True
            except ValueError:
                pass
            continue
        if name == host:
            return True
        if name.startswith("*.") and "*" not in name[2:]:
            first, _, rest = host.partition(".")
            if first and rest == name[2:] and rest.count(".") >= 1:
                return True
    return False


def describe(cert: x509.Certificate, now: datetime) -> dict[str, Any]:
    key_type, key_size = key_description(cert)
    not_after = cert.not_valid_after_utc
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "san": alt_names(cert),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": not_after.isoformat(),
        "days_to_expiry": (not_after - now).days,
        "key_type": key_type,
        "key_size": key_size,
        "signature_algorithm": _SIGNATURE_NAMES.get(
            cert.signature_algorithm_oid, cert.signature_algorithm_oid.dotted_string
        ),
        "signature_hash": signature_hash(cert),
        "serial": format(cert.serial_number, "x"),
        "self_signed": _is_self_signed(cert),
    }


def load_trust_store(ca_file: Path | None) -> crypto.X509Store:
    """The CA file given, else the system's (what OpenSSL itself would use by default)."""
    store = crypto.X509Store()
    if ca_file is not None:
        store.load_locations(str(ca_file))
        return store
    paths = ssl.get_default_verify_paths()
    cafile = paths.cafile if paths.cafile and Path(paths.cafile).exists() else None
    capath = paths.capath if paths.capath and Path(paths.capath).is_dir() else None
    if cafile or capath:
        store.load_locations(cafile, capath)
    return store


def verify_chain(chain: list[x509.Certificate], store: crypto.X509Store) -> tuple[bool, str | None]:
    """(True, None) when the leaf chains to a trusted root through the presented intermediates,
    valid now."""
    leaf = crypto.X509.from_cryptography(chain[0])
    intermediates = [crypto.X509.from_cryptography(c) for c in chain[1:]]
    try:
        crypto.X509StoreContext(store, leaf, chain=intermediates).verify_certificate()
    except crypto.X509StoreContextError as exc:
        return False, str(exc.args[0] if exc.args else exc)
    return True, None


def _handshake(sock: socket.socket, host: str, deadline: float) -> list[x509.Certificate]:
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    # No verification during the handshake: the certificates of broken servers are what an
    # analyst wants to see; the chain is verified afterwards against the configured store.
    context.set_verify(SSL.VERIFY_NONE)
    connection = SSL.Connection(context, sock)
    if not _is_ip(host):
        connection.set_tlsext_host_name(host.encode("ascii"))
    connection.set_connect_state()
    # The socket has a timeout, so it is non-blocking underneath: OpenSSL asks to be called
    # again when it wants to read or write, and we wait for that with what is left of the time.
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("TLS handshake timed out")
        try:
            connection.do_handshake()
            break
        except SSL.WantReadError:
            if not select.select([sock], [], [], remaining)[0]:
                raise TimeoutError("TLS handshake timed out") from None
        except SSL.WantWriteError:
            if not select.select([], [sock], [], remaining)[1]:
                raise TimeoutError("TLS handshake timed out") from None
        except SSL.Error as exc:
            raise HandshakeFailed(_ssl_reason(exc)) from exc
    chain = connection.get_peer_cert_chain(as_cryptography=True) or []
    with contextlib.suppress(SSL.Error):
        connection.shutdown()
    return list(chain)


def _ssl_reason(exc: SSL.Error) -> str:
    if isinstance(exc, SSL.SysCallError):
        return "connection closed during the handshake"
    try:
        return str(exc.args[0][0][2])
    except (IndexError, TypeError):
        return "TLS handshake failed"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def target(indicator: Indicator) -> tuple[str, int] | None:
    """Host and port to check: the URL's own port for https URLs, else 443."""
    host = indicator.host
    if host is None:
        return None
    if indicator.kind is Kind.URL:
        parts = urlsplit(indicator.value)
        if parts.scheme == "https" and parts.port:
            return host, parts.port
    return host, 443


class TlsCheck:
    name = "tls"
    title = "TLS certificate"
    kinds = frozenset({Kind.DOMAIN, Kind.URL})

    def __init__(
        self,
        http: HttpClient,
        *,
        ca_file: Path | None = None,
        timeout: float = 5.0,
        expiry_warning_days: int = 14,
        clock: Clock = utcnow,
        ports: Iterable[int] = (),
    ) -> None:
        self.http = http
        self.ports = frozenset(ports)
        self.ca_file = ca_file
        self.timeout = timeout
        self.expiry_warning_days = expiry_warning_days
        self.clock = clock
        self._store: crypto.X509Store | None = None
        self._store_lock = threading.Lock()

    def trust_store(self) -> crypto.X509Store:
        # Loading the system bundle is costly; one store serves every check of a
        # batch (OpenSSL's store is safe to verify against from several threads).
        with self._store_lock:
            if self._store is None:
                self._store = load_trust_store(self.ca_file)
            return self._store

    def run(self, indicator: Indicator) -> CheckResult:
        where = target(indicator)
        if where is None:
            return not_applicable(self.name, "no host to connect to")
        host, port = where
        if self.ports and port not in self.ports:
            # Any port would make this check a port scanner of other people's hosts.
            return not_applicable(self.name, f"port {port} is not a TLS port this desk checks")
        deadline = time.monotonic() + self.timeout
        try:
            sock = self.http.connect(host, port, timeout=self.timeout)
        except SSRFBlocked:
            return not_applicable(self.name, f"{host} is an internal address: not connected")
        except UpstreamError as exc:
            if isinstance(exc.__cause__, TimeoutError):
                return CheckResult(self.name, Status.ERROR, summary=str(exc.message))
            result = CheckResult(self.name, summary=f"no TLS server at {host}:{port}")
            result.add(Level.NONE, str(exc.message))
            return result
        try:
            chain = _handshake(sock, host, deadline)
        except (TimeoutError, OSError):
            return CheckResult(self.name, Status.ERROR, summary=f"{host}:{port}: TLS timed out")
        except HandshakeFailed as exc:
            result = CheckResult(self.name, summary=f"TLS handshake failed: {exc}")
            result.add(Level.NONE, result.summary)
            return result
        finally:
            sock.close()
        if not chain:
            result = CheckResult(self.name, summary="the server presented no certificate")
            result.add(Level.SUSPICIOUS, result.summary)
            return result
        return self._judge(host, port, chain)

    def _judge(self, host: str, port: int, chain: list[x509.Certificate]) -> CheckResult:
        now = self.clock()
        leaf = chain[0]
        described = [describe(cert, now) for cert in chain]
        verified, error = verify_chain(chain, self.trust_store())
        matches = hostname_matches(host, alt_names(leaf))
        days = described[0]["days_to_expiry"]
        weak = [
            d["subject"]
            for d in described
            if d["signature_hash"] in WEAK_HASHES and not d["self_signed"]
        ]
        result = CheckResult(self.name)
        result.data = {
            "host": host,
            "port": port,
            "verified": verified,
            "verify_error": error,
            "hostname_match": matches,
            "days_to_expiry": days,
            "weak_signatures": weak,
            "chain": described,
        }
        issuer = leaf.issuer.rfc4514_string()
        expired_days = (now - leaf.not_valid_after_utc).days
        if leaf.not_valid_after_utc < now:
            result.add(Level.SUSPICIOUS, f"expired {expired_days} days ago")
        elif leaf.not_valid_before_utc > now:
            result.add(Level.SUSPICIOUS, "not valid yet")
        elif days < self.expiry_warning_days:
            result.add(Level.SUSPICIOUS, f"expires in {days} days")
        if not verified:
            if len(chain) == 1 and _is_self_signed(leaf):
                error = f"self-signed: {error}"
            result.add(Level.SUSPICIOUS, f"chain does not verify ({error})")
        if not matches:
            result.add(Level.SUSPICIOUS, f"certificate does not name {host}")
        for subject in weak:
            result.add(Level.SUSPICIOUS, f"SHA-1 or weaker signature on {subject}")
        if not result.findings:
            result.add(Level.HARMLESS, f"valid, trusted, names {host}")
        state = "verifies" if verified else "does not verify"
        result.summary = f"{state}; expires in {days} days; issuer {issuer}"
        if leaf.not_valid_after_utc < now:
            result.summary = f"{state}; expired {expired_days} days ago; issuer {issuer}"
        return result
