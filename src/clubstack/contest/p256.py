"""P-256 public keys and the proof of knowledge of a private key, as WhibOx edition 3 does it.

No curve arithmetic is written here: `cryptography` (OpenSSL) validates public keys and derives
them from private keys; python-ecdsa does the two point operations the proof needs (a sum of
scalar multiples), which `cryptography` does not expose.

The proof is the BSI TR-03111 EC-Schnorr form used by the reference submission server
(CryptoExperts' whibox_contest_submission_server, services/launcher-dev/dockerfile/commands.py),
so a proof made with the organisers' tools is accepted as is. With Q = d*G:
    prover:   k random in [1, n-1];  K = k*G;
              r = SHA-256( x(K) )   (x as 32 bytes big-endian; r read as a big-endian integer),
              retried until 1 <= r <= n-1;
              s = (k - r*d) mod n,  retried until s != 0;   proof = r || s  (128 hex digits)
    verifier: 1 <= r <= n-1 and 1 <= s <= n-1; Q on the curve, not infinity, n*Q = infinity;
              K' = s*G + r*Q, not infinity;  accept iff SHA-256( x(K') ) == r
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.hazmat.primitives.asymmetric import ec
from ecdsa import NIST256p
from ecdsa.ellipticcurve import INFINITY, PointJacobi

N: int = NIST256p.order
_CURVE = NIST256p.curve
_G = NIST256p.generator

Point = tuple[int, int]


def encode_point(pt: Point) -> bytes:
    return pt[0].to_bytes(32, "big") + pt[1].to_bytes(32, "big")


def decode_point(data: bytes) -> Point:
    if len(data) != 64:
        raise ValueError("a public key is 64 bytes: x || y")
    return int.from_bytes(data[:32], "big"), int.from_bytes(data[32:], "big")


def public_key(d: int) -> Point:
    """d*G for 1 <= d <= n-1 (computed by OpenSSL)."""
    numbers = ec.derive_private_key(d, ec.SECP256R1()).public_key().public_numbers()
    return numbers.x, numbers.y


def valid_public_key(pt: Point) -> bool:
    """On P-256 (OpenSSL's check), not the point at infinity, and n*Q = infinity."""
    x, y = pt
    try:
        ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    except ValueError:
        return False
    return _point(pt) * N == INFINITY


def _point(pt: Point) -> PointJacobi:
    return PointJacobi(_CURVE, pt[0], pt[1], 1)


def _challenge(x: int) -> int:
    return int.from_bytes(hashlib.sha256(x.to_bytes(32, "big")).digest(), "big")


def schnorr_prove(d: int, k: int | None = None) -> bytes:
    """The proof r || s for the private key d (``k`` fixes the nonce, for tests)."""
    while True:
        nonce = k if k is not None else secrets.randbelow(N - 1) + 1
        k = None
        point = _G * nonce
        r = _challenge(point.x())
        if not 1 <= r <= N - 1:
            continue
        s = (nonce - r * d) % N
        if s != 0:
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def schnorr_verify(q: Point, proof: bytes) -> bool:
    if len(proof) != 64:
        return False
    r = int.from_bytes(proof[:32], "big")
    s = int.from_bytes(proof[32:], "big")
    if not (1 <= r <= N - 1 and 1 <= s <= N - 1) or not valid_public_key(q):
        return False
    point = _G * s + _point(q) * r
    if point == INFINITY:
        return False
    return hmac.compare_digest(_challenge(point.x()).to_bytes(32, "big"), proof[:32])
