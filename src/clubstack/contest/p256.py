"""NIST P-256 point arithmetic and the EC-Schnorr proof of knowledge of a private key.

`cryptography` verifies the ECDSA signatures (fast, constant-time C) and checks that a public
key is on the curve; it exposes no point addition, which the Schnorr verification needs, so
that (a handful of scalar multiplications per submission, public data only) is done here.

Proof of knowledge (EC-SDSA, ISO/IEC 14888-3, "normal" variant), over the empty message M:
    prover:   k random in [1, n-1];  R = k*G;
              r = SHA-256( x(R) || y(R) || M )   as a 256-bit big-endian integer;
              s = (k + r*d) mod n;   proof = r || s   (2 x 32 bytes, big-endian, 128 hex)
    verifier: 0 < r < 2^256, 0 < s < n;  R' = s*G - r*Q;  R' is not the point at infinity;
              accept iff SHA-256( x(R') || y(R') || M ) == r
x and y are 32-byte big-endian coordinates.
"""

# ruff: noqa: N803, N806 - upper-case names follow the curve formulas (X, Y, Z, R, Q)
from __future__ import annotations

import hashlib
import secrets

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5
G = (GX, GY)

Point = tuple[int, int] | None  # None is the point at infinity


def on_curve(pt: Point) -> bool:
    if pt is None:
        return False
    x, y = pt
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def add(p1: Point, p2: Point) -> Point:
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    x1, y1 = p1
    x2, y2 = p2
    if x1 == x2:
        if (y1 + y2) % P == 0:
            return None
        lam = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return x3, (lam * (x1 - x3) - y1) % P


def neg(pt: Point) -> Point:
    return None if pt is None else (pt[0], (-pt[1]) % P)


def mul(k: int, pt: Point) -> Point:
    """k * pt, with Jacobian coordinates inside (affine inversions are slow in Python)."""
    if k < 0:
        k %= N
    if pt is None or k == 0:
        return None
    X1, Y1, Z1 = 0, 1, 0  # infinity
    x2, y2 = pt
    for bit in bin(k)[2:]:
        X1, Y1, Z1 = _jdouble(X1, Y1, Z1)
        if bit == "1":
            X1, Y1, Z1 = _jadd_affine(X1, Y1, Z1, x2, y2)
    if Z1 == 0:
        return None
    zinv = pow(Z1, -1, P)
    z2 = zinv * zinv % P
    return X1 * z2 % P, Y1 * z2 * zinv % P


def _jdouble(X: int, Y: int, Z: int) -> tuple[int, int, int]:
    if Z == 0 or Y == 0:
        return 0, 1, 0
    YY = Y * Y % P
    S = 4 * X * YY % P
    ZZ = Z * Z % P
    M = 3 * (X - ZZ) * (X + ZZ) % P  # a = -3
    X3 = (M * M - 2 * S) % P
    Y3 = (M * (S - X3) - 8 * YY * YY) % P
    Z3 = 2 * Y * Z % P
    return X3, Y3, Z3


def _jadd_affine(X1: int, Y1: int, Z1: int, x2: int, y2: int) -> tuple[int, int, int]:
    if Z1 == 0:
        return x2, y2, 1
    Z1Z1 = Z1 * Z1 % P
    U2 = x2 * Z1Z1 % P
    S2 = y2 * Z1 * Z1Z1 % P
    H = (U2 - X1) % P
    R = (S2 - Y1) % P
    if H == 0:
        return _jdouble(X1, Y1, Z1) if R == 0 else (0, 1, 0)
    HH = H * H % P
    HHH = H * HH % P
    V = X1 * HH % P
    X3 = (R * R - HHH - 2 * V) % P
    Y3 = (R * (V - X3) - Y1 * HHH) % P
    Z3 = Z1 * H % P
    return X3, Y3, Z3


def encode_point(pt: Point) -> bytes:
    if pt is None:
        raise ValueError("the point at infinity has no encoding")
    return pt[0].to_bytes(32, "big") + pt[1].to_bytes(32, "big")


def decode_point(data: bytes) -> Point:
    if len(data) != 64:
        raise ValueError("a public key is 64 bytes: x || y")
    return int.from_bytes(data[:32], "big"), int.from_bytes(data[32:], "big")


def public_key(d: int) -> Point:
    return mul(d, G)


def valid_public_key(pt: Point) -> bool:
    """On the curve and of order n (P-256 has cofactor 1: every finite point qualifies)."""
    return on_curve(pt) and mul(N, pt) is None


def _challenge(R: Point, message: bytes) -> int:
    return int.from_bytes(hashlib.sha256(encode_point(R) + message).digest(), "big")


def schnorr_prove(d: int, message: bytes = b"", k: int | None = None) -> bytes:
    while True:
        nonce = k if k is not None else secrets.randbelow(N - 1) + 1
        R = mul(nonce, G)
        r = _challenge(R, message)
        s = (nonce + r * d) % N
        if r != 0 and s != 0:
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        k = None


def schnorr_verify(Q: Point, proof: bytes, message: bytes = b"") -> bool:
    if len(proof) != 64 or not on_curve(Q):
        return False
    r = int.from_bytes(proof[:32], "big")
    s = int.from_bytes(proof[32:], "big")
    if r == 0 or not 0 < s < N:
        return False
    R = add(mul(s, G), neg(mul(r, Q)))
    if R is None:
        return False
    return _challenge(R, message) == r
