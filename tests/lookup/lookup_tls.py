"""Local TLS servers with certificates made here: a normal chain (root -> intermediate ->
leaf), an expired leaf, a self-signed leaf, a leaf for the wrong name, and a chain whose
intermediate is signed with SHA-1. Built with `cryptography` directly (trustme cannot make
SHA-1 signatures or expired leaves)."""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class Issued:
    cert: x509.Certificate
    key: Key


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "clubstack tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def issue(
    common_name: str,
    *,
    issuer: Issued | None = None,
    ca: bool = False,
    names: tuple[str, ...] = (),
    days: tuple[int, int] = (-1, 90),
    algorithm: hashes.HashAlgorithm | None = None,
    rsa_bits: int | None = None,
) -> Issued:
    """A certificate for `common_name`, signed by `issuer` (self-signed without one)."""
    key: Key = (
        rsa.generate_private_key(65537, rsa_bits)
        if rsa_bits
        else ec.generate_private_key(ec.SECP256R1())
    )
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.cert.subject if issuer else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + timedelta(days=days[0]))
        .not_valid_after(now + timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    signer = issuer.key if issuer else key
    cert = builder.sign(signer, hashes.SHA256())
    if isinstance(algorithm, hashes.SHA1):
        assert isinstance(signer, rsa.RSAPrivateKey)
        cert = resign_sha1(cert, signer)
    return Issued(cert, key)


_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")  # OID 1.2.840.113549.1.1.11
_SHA1_RSA = bytes.fromhex("06092a864886f70d010105")  # OID 1.2.840.113549.1.1.5


def resign_sha1(cert: x509.Certificate, signer: rsa.RSAPrivateKey) -> x509.Certificate:
    """The same certificate signed with sha1WithRSAEncryption.

    cryptography no longer signs certificates with SHA-1, but it still makes raw PKCS#1 v1.5
    SHA-1 signatures. Both algorithm OIDs have the same length and an RSA signature the size
    of the key, so swapping them in the DER changes no ASN.1 length field.
    """
    der = cert.public_bytes(serialization.Encoding.DER)
    tbs = cert.tbs_certificate_bytes
    new_tbs = tbs.replace(_SHA256_RSA, _SHA1_RSA, 1)
    signature = signer.sign(new_tbs, padding.PKCS1v15(), hashes.SHA1())
    start = der.index(tbs)
    rest = der[start + len(tbs) :].replace(_SHA256_RSA, _SHA1_RSA, 1)
    rest = rest.replace(cert.signature, signature, 1)
    return x509.load_der_x509_certificate(der[:start] + new_tbs + rest)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@dataclass
class TlsServer:
    """Serves one certificate chain on 127.0.0.1:<port>; handshakes only."""

    chain: list[Issued]
    directory: Path
    port: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> TlsServer:
        cert_file = self.directory / f"chain-{id(self)}.pem"
        key_file = self.directory / f"key-{id(self)}.pem"
        cert_file.write_bytes(pem(*(i.cert for i in self.chain)))
        key_file.write_bytes(
            self.chain[0].key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # Level 0 so OpenSSL agrees to present the SHA-1 signed chain at all.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.load_cert_chain(cert_file, key_file)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, args=(context,), daemon=True)
        self.thread.start()
        return self

    def _serve(self, context: ssl.SSLContext) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)  # until the client closes
            except OSError:
                conn.close()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.listener.close()


@dataclass
class Pki:
    root: Issued
    intermediate: Issued
    sha1_intermediate: Issued
    root_file: Path

    @classmethod
    def make(cls, directory: Path) -> Pki:
        root = issue("Test Root CA", ca=True, days=(-10, 3650), rsa_bits=2048)
        intermediate = issue("Test Intermediate CA", issuer=root, ca=True, days=(-10, 1000))
        sha1 = issue(
            "Test SHA-1 Intermediate",
            issuer=root,
            ca=True,
            days=(-10, 1000),
            algorithm=hashes.SHA1(),
            rsa_bits=2048,
        )
        root_file = directory / "root.pem"
        root_file.write_bytes(pem(root.cert))
        return cls(root, intermediate, sha1, root_file)

    def chain(self, kind: str, host: str = "localhost") -> list[Issued]:
        if kind == "good":
            return [issue(host, issuer=self.intermediate, names=(host,)), self.intermediate]
        if kind == "expired":
            leaf = issue(host, issuer=self.intermediate, names=(host,), days=(-100, -3))
            return [leaf, self.intermediate]
        if kind == "self-signed":
            return [issue(host, names=(host,))]
        if kind == "wrong-name":
            return [
                issue("other.example", issuer=self.intermediate, names=("other.example",)),
                self.intermediate,
            ]
        if kind == "sha1":
            sha1 = self.sha1_intermediate
            return [issue(host, issuer=sha1, names=(host,)), sha1]
        if kind == "expiring":
            leaf = issue(host, issuer=self.intermediate, names=(host,), days=(-80, 5))
            return [leaf, self.intermediate]
        raise ValueError(kind)
