"""Challenge kinds: what a submission implements, its test vectors, verifier and break check.

A kind is pluggable: the harness (harness/harness.c compiled with ``-D<macro>``), the one
allowed ``#include`` line, the libraries to link, the vectors and the verification. Nothing
here runs code: judge.py does that in the sandbox.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from clubstack.contest import p256
from clubstack.contest.errors import InvalidKey, UnknownKind


@dataclass(frozen=True)
class ContestLimits:
    """Defaults from WhibOx edition 3 (2021)."""

    source_bytes: int = 50_000_000
    compile_memory_bytes: int = 500_000_000
    compile_seconds: float = 100.0
    object_bytes: int = 20_000_000
    run_memory_bytes: int = 20_000_000
    call_cpu_seconds: float = 3.0
    random_vectors: int = 100


@dataclass
class Vectors:
    """Inputs for the harness, and what the web side needs to verify the outputs."""

    inputs: list[bytes]
    expected: list[bytes] | None = None  # aes: reference ciphertexts
    public_key: bytes | None = None  # ecdsa: x || y


def _parse_hex(value: str, length: int, what: str) -> bytes:
    cleaned = value.strip().lower()
    if cleaned.startswith("0x"):
        cleaned = cleaned[2:]
    if len(cleaned) != 2 * length:
        raise InvalidKey(f"{what} must be {2 * length} hexadecimal digits")
    try:
        return bytes.fromhex(cleaned)
    except ValueError as exc:
        raise InvalidKey(f"{what} must be hexadecimal") from exc


class Kind:
    name: ClassVar[str]
    title: ClassVar[str]
    function: ClassVar[str]  # the C prototype a submission defines
    entry: ClassVar[str]  # its symbol: the only global the submission's object keeps
    macro: ClassVar[str]  # harness compile flag
    allowed_include: ClassVar[str | None] = None
    libraries: ClassVar[tuple[str, ...]] = ()
    input_len: ClassVar[int]
    output_len: ClassVar[int]

    def edge_inputs(self) -> list[bytes]:
        raise NotImplementedError

    def random_inputs(self, count: int) -> list[bytes]:
        return [secrets.token_bytes(self.input_len) for _ in range(count)]

    def all_inputs(self, count: int) -> list[bytes]:
        return self.random_inputs(count) + self.edge_inputs()

    def verify(self, vectors: Vectors, outputs: list[bytes]) -> str | None:
        """None when every output is right, else the reason for the first wrong one."""
        raise NotImplementedError


class AesKind(Kind):
    name = "aes"
    title = "AES-128 encryption (WhibOx editions 1-2)"
    function = "void AES_128_encrypt(unsigned char ciphertext[16], unsigned char plaintext[16]);"
    entry = "AES_128_encrypt"
    macro = "KIND_AES"
    input_len = 16
    output_len = 16

    def edge_inputs(self) -> list[bytes]:
        return [bytes(16), b"\xff" * 16, b"\x80" + bytes(15)]

    @staticmethod
    def parse_key(value: str) -> bytes:
        return _parse_hex(value, 16, "the AES key")

    @staticmethod
    def encrypt(key: bytes, block: bytes) -> bytes:
        # one block: ECB here is the bare AES permutation the challenge implements
        enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
        return enc.update(block) + enc.finalize()

    def make_vectors(self, key: bytes, count: int) -> Vectors:
        """Reference ciphertexts; the caller keeps these and forgets the key."""
        inputs = self.all_inputs(count)
        return Vectors(inputs=inputs, expected=[self.encrypt(key, pt) for pt in inputs])

    def verify(self, vectors: Vectors, outputs: list[bytes]) -> str | None:
        assert vectors.expected is not None
        if len(outputs) != len(vectors.inputs):
            return f"{len(outputs)} outputs for {len(vectors.inputs)} inputs"
        for i, (got, want) in enumerate(zip(outputs, vectors.expected, strict=True)):
            if not hmac.compare_digest(got, want):
                return f"vector {i + 1}: wrong ciphertext for plaintext {vectors.inputs[i].hex()}"
        return None

    def check_break(self, key_hex: str, pairs: list[tuple[bytes, bytes]]) -> bool:
        key = self.parse_key(key_hex)
        return all(self.encrypt(key, pt) == ct for pt, ct in pairs)


class EcdsaKind(Kind):
    name = "ecdsa"
    title = "ECDSA P-256 signatures (WhibOx edition 3)"
    function = "void ECDSA_256_sign(unsigned char sig[64], const unsigned char hash[32]);"
    entry = "ECDSA_256_sign"
    macro = "KIND_ECDSA"
    allowed_include = "#include <gmp.h>"
    libraries = ("gmp",)
    input_len = 32
    output_len = 64

    def edge_inputs(self) -> list[bytes]:
        return [bytes(32), b"\xff" * 32, p256.N.to_bytes(32, "big")]

    @staticmethod
    def check_public_key(pubkey_hex: str, proof_hex: str) -> bytes:
        """Validate the declared key and its proof of knowledge; return the 64-byte key."""
        raw = _parse_hex(pubkey_hex, 64, "the public key (x || y)")
        proof = _parse_hex(proof_hex, 64, "the proof of knowledge (r || s)")
        point = p256.decode_point(raw)
        if not p256.valid_public_key(point):
            raise InvalidKey("the public key is not a point of P-256 of order n")
        if not p256.schnorr_verify(point, proof):
            raise InvalidKey("the proof of knowledge of the private key does not verify")
        return raw

    def make_vectors(self, public_key: bytes, count: int) -> Vectors:
        return Vectors(inputs=self.all_inputs(count), public_key=public_key)

    def verify(self, vectors: Vectors, outputs: list[bytes]) -> str | None:
        assert vectors.public_key is not None
        if len(outputs) != len(vectors.inputs):
            return f"{len(outputs)} outputs for {len(vectors.inputs)} inputs"
        x, y = p256.decode_point(vectors.public_key)
        key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        algorithm = ec.ECDSA(Prehashed(hashes.SHA256()))
        for i, (digest, sig) in enumerate(zip(vectors.inputs, outputs, strict=True)):
            r = int.from_bytes(sig[:32], "big")
            s = int.from_bytes(sig[32:], "big")
            if not (0 < r < p256.N and 0 < s < p256.N):
                return f"vector {i + 1}: r or s out of range for hash {digest.hex()}"
            try:
                key.verify(encode_dss_signature(r, s), digest, algorithm)
            except InvalidSignature:
                return f"vector {i + 1}: the signature of hash {digest.hex()} does not verify"
        return None

    @staticmethod
    def check_break(private_hex: str, public_key: bytes) -> bool:
        d = int.from_bytes(_parse_hex(private_hex, 32, "the private key"), "big")
        if not 0 < d < p256.N:
            return False
        return p256.encode_point(p256.public_key(d)) == public_key


KINDS: dict[str, Kind] = {"aes": AesKind(), "ecdsa": EcdsaKind()}


def get_kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownKind(f"unknown challenge kind {name!r}") from None
