"""Source filter cases, P-256 / EC-Schnorr, declared keys and break checks."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from clubstack.contest import p256, sourcefilter
from clubstack.contest.errors import InvalidKey, SourceRejected
from clubstack.contest.kinds import KINDS

AES_RULES = sourcefilter.FilterRules(None, 50_000)
ECDSA_RULES = sourcefilter.FilterRules("#include <gmp.h>", 50_000)
BODY = "void AES_128_encrypt(unsigned char c[16], unsigned char p[16]) { c[0] = p[0]; }\n"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("#include <stdio.h>\n" + BODY, "#include is not allowed"),
        ("  #  include <stdlib.h>\n" + BODY, "#include is not allowed"),
        ("%:include <stdio.h>\n" + BODY, "digraph"),
        ("extern int x;\n" + BODY, "'extern' is not allowed"),
        ("ext\\\nern int x;\n" + BODY, "'extern' is not allowed"),
        ("const char *f = __FILE__;\n" + BODY, "'_FILE__'"),
        ("const char *d = __DATE__;\n" + BODY, "'__DATE__'"),
        ("const char *t = __TIME__;\n" + BODY, "'__TIME'"),
        ("int v = __STDC_VERSION__;\n" + BODY, "__STDC_"),
        ('void f(void) { __asm__("nop"); }\n' + BODY, "inline assembly"),
        ('void f(void) { asm("nop"); }\n' + BODY, "inline assembly"),
        ("long syscall(long, ...);\n" + BODY, "no system calls"),
        ("__attribute__((constructor)) void f(void) {}\n" + BODY, "before main"),
        ('__attribute__((section(".text"))) int x;\n' + BODY, "section"),
        ('static const char *s = ".init_array";\n' + BODY, "before main"),
        ('static const char *s = ".ctors";\n' + BODY, "before main"),
        ('static const char *s = ".fini";\n' + BODY, "after main"),
        ('#pragma GCC optimize("O3")\n' + BODY, "#pragma"),
        ('#line 1 "/etc/passwd"\n' + BODY, "#line"),
        ('_Pragma("once")\n' + BODY, "_Pragma"),
        ("int x = 1 ??' 2;\n" + BODY, "trigraph"),
        ("__attribute__((__constructor__)) void f(void) {}\n" + BODY, "before main"),
        ('__attribute__((__section__("x"))) int x;\n' + BODY, "section"),
        ("static int external_table[4];\n" + BODY, "'extern'"),
        ("// see #include <stdio.h>\n" + BODY, "'#include'"),
        ("int b = s.initial;\n" + BODY, "'.init'"),
        ('void f(void) { __asm ("nop"); }\n' + BODY, "inline assembly"),
    ],
)
def test_filter_rejects_with_reason(source, reason):
    with pytest.raises(SourceRejected) as info:
        sourcefilter.check_source(source.encode(), AES_RULES)
    assert reason in info.value.message


def test_filter_accepts_plain_code_and_the_one_allowed_include():
    assert sourcefilter.check_source(BODY.encode(), AES_RULES)
    keywords = "static _Bool f(void) { return __builtin_expect(1, 1); }\n" + BODY
    assert sourcefilter.check_source(keywords.encode(), AES_RULES)
    ok = "/* sample */\n#include <gmp.h>\n" + BODY
    assert sourcefilter.check_source(ok.encode(), ECDSA_RULES)
    with pytest.raises(SourceRejected, match=r"only '#include <gmp\.h>' once"):
        sourcefilter.check_source(("#include <gmp.h>\n" * 2 + BODY).encode(), ECDSA_RULES)
    with pytest.raises(SourceRejected, match="#include is not allowed"):
        sourcefilter.check_source(ok.encode(), AES_RULES)
    assert sourcefilter.check_source((BODY + "#include <gmp.h>\n").encode(), ECDSA_RULES)


# What the reference server refuses (commands.py): every string and pattern, anywhere.
REFERENCE_REFUSED = [
    "#include",
    "extern",
    "_FILE__",
    "__DATE__",
    "__TIME",
    "__STDC_",
    "__asm__",
    "syscall",
    ".init",
    ".fini",
    ".init_array",
    ".fini_array",
    ".ctors",
    ".dtors",
]


@pytest.mark.parametrize("needle", REFERENCE_REFUSED)
def test_everything_the_reference_refuses_is_refused(needle):
    for where in (f"/* {needle} */\n", f'static const char *s = "x{needle}y";\n'):
        with pytest.raises(SourceRejected, match="is not allowed"):
            sourcefilter.check_source((where + BODY).encode(), AES_RULES)
        with pytest.raises(SourceRejected, match="is not allowed"):
            sourcefilter.check_source(("#include <gmp.h>\n" + where + BODY).encode(), ECDSA_RULES)


@pytest.mark.parametrize(
    "source", ['int x = 1; asm ("nop");', "#  include <x.h>", "/* # include */"]
)
def test_the_reference_patterns_are_refused(source):
    with pytest.raises(SourceRejected, match="is not allowed"):
        sourcefilter.check_source((source + "\n" + BODY).encode(), AES_RULES)


REAL_WHITE_BOX = """#include <gmp.h>
typedef unsigned __int128 u128;
typedef __uint128_t v128;
static __int128 acc;
static unsigned char __FILE[16] __attribute__((aligned(16)));
static const unsigned long asm_rounds[2] = {1, 2};
static inline int likely_one(int x) { return __builtin_expect(x, 1); }
static _Bool _flag;
static int __counter;
void ECDSA_256_sign(unsigned char sig[64], const unsigned char hash[32]) {
    u128 t = (u128)asm_rounds[0] * 3 + (v128)hash[0];
    acc += (__int128)t;
    __FILE[0] = (unsigned char)likely_one(hash[1]);
    sig[0] = (unsigned char)(acc + __FILE[0] + _flag + __counter);
}
"""


def test_real_white_box_identifiers_are_accepted():
    assert sourcefilter.check_source(REAL_WHITE_BOX.encode(), ECDSA_RULES)


def test_filter_size_and_encoding():
    with pytest.raises(SourceRejected, match="larger than"):
        sourcefilter.check_source(b"x" * 50_001, AES_RULES)
    with pytest.raises(SourceRejected, match="UTF-8"):
        sourcefilter.check_source(b"\xff\xfe", AES_RULES)


def test_preprocessed_check_ignores_header_lines_and_reports_source_lines():
    text = (
        '# 1 "/usr/include/gmp.h" 1\nextern int __gmpz_add;\n'
        '# 3 "submission.c"\nint a;\nextern int b;\n'
    )
    with pytest.raises(SourceRejected, match="line 4: 'extern'"):
        sourcefilter.check_preprocessed(text)
    sourcefilter.check_preprocessed('# 1 "/usr/include/gmp.h"\nextern int x;\n')


def test_implicit_declaration_in_compiler_output():
    with pytest.raises(SourceRejected):
        sourcefilter.check_compiler_output(
            "submission.c:1:3: warning: implicit declaration of function 'memcpy'"
        )
    sourcefilter.check_compiler_output("submission.c:1:3: warning: unused variable 'x'")


# The reference server's proof (BSI EC-Schnorr), computed here with plain integer arithmetic on
# the curve, independently of clubstack.contest.p256.
_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)


def _add(p1: tuple[int, int] | None, p2: tuple[int, int] | None) -> tuple[int, int] | None:
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    if p1[0] == p2[0] and (p1[1] + p2[1]) % _P == 0:
        return None
    if p1 == p2:
        lam = (3 * p1[0] * p1[0] - 3) * pow(2 * p1[1], -1, _P) % _P
    else:
        lam = (p2[1] - p1[1]) * pow(p2[0] - p1[0], -1, _P) % _P
    x3 = (lam * lam - p1[0] - p2[0]) % _P
    return x3, (lam * (p1[0] - x3) - p1[1]) % _P


def _mul(k: int, point: tuple[int, int]) -> tuple[int, int] | None:
    result = None
    addend: tuple[int, int] | None = point
    while k:
        if k & 1:
            result = _add(result, addend)
        addend = _add(addend, addend)
        k >>= 1
    return result


def reference_proof(d: int, k: int) -> tuple[str, str]:
    """commands.py's prover: r = SHA-256(x(kG)), s = k - r*d mod n; (public key, proof) hex."""
    q = _mul(d, _G)
    kg = _mul(k, _G)
    assert q is not None and kg is not None
    r = int.from_bytes(hashlib.sha256(kg[0].to_bytes(32, "big")).digest(), "big")
    assert 1 <= r < _N
    s = (k - r * d) % _N
    public = q[0].to_bytes(32, "big") + q[1].to_bytes(32, "big")
    return public.hex(), (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()


def test_a_proof_made_with_the_reference_equations_is_accepted():
    ecdsa = KINDS["ecdsa"]
    d = 0x1F2E3D4C5B6A798897A6B5C4D3E2F1000112233445566778899AABBCCDDEEFF0
    public, proof = reference_proof(d, k=0x5EED5EED5EED5EED1234)
    assert ecdsa.check_public_key(public, proof) == bytes.fromhex(public)
    # and what `clubstack contest prove` makes follows the same equations
    ours = p256.schnorr_prove(d)
    r = int.from_bytes(ours[:32], "big")
    s = int.from_bytes(ours[32:], "big")
    q = _mul(d, _G)
    assert q is not None
    kg = _add(_mul(s, _G), _mul(r, q))
    assert kg is not None
    assert r == int.from_bytes(hashlib.sha256(kg[0].to_bytes(32, "big")).digest(), "big")


def test_proofs_the_reference_refuses_are_refused():
    ecdsa = KINDS["ecdsa"]
    d = 0xABCDEF0123456789
    public, proof = reference_proof(d, k=0x77)
    r, s = int(proof[:64], 16), int(proof[64:], 16)
    refused = [
        proof[:64] + "00" * 32,  # s = 0
        "00" * 32 + proof[64:],  # r = 0
        proof[:64] + f"{_N:064x}",  # s = n
        f"{r:064x}" + f"{(s + 1) % _N:064x}",  # tampered s
        f"{(r ^ 1):064x}" + proof[64:],  # tampered r
    ]
    for bad in refused:
        with pytest.raises(InvalidKey, match="does not verify"):
            ecdsa.check_public_key(public, bad)
    # the old EC-SDSA form (r = H(x||y), s = k + r*d) is not the contest's any more
    kg = _mul(0x77, _G)
    assert kg is not None
    r_sdsa = int.from_bytes(
        hashlib.sha256(kg[0].to_bytes(32, "big") + kg[1].to_bytes(32, "big")).digest(), "big"
    )
    sdsa = f"{r_sdsa:064x}{(0x77 + r_sdsa * d) % _N:064x}"
    with pytest.raises(InvalidKey, match="does not verify"):
        ecdsa.check_public_key(public, sdsa)
    # another key's proof
    other_public, _ = reference_proof(d + 1, k=0x77)
    with pytest.raises(InvalidKey, match="does not verify"):
        ecdsa.check_public_key(other_public, proof)


def test_public_key_derivation_matches_cryptography():
    d = 0x1234567890ABCDEF
    numbers = ec.derive_private_key(d, ec.SECP256R1()).public_key().public_numbers()
    assert p256.public_key(d) == (numbers.x, numbers.y) == _mul(d, _G)
    assert p256.valid_public_key(p256.public_key(d))
    assert not p256.valid_public_key((numbers.x, numbers.y ^ 1))


def test_declared_ecdsa_key_checks():
    ecdsa = KINDS["ecdsa"]
    d = 0xABCDEF
    pub = p256.encode_point(p256.public_key(d))
    proof = p256.schnorr_prove(d)
    assert ecdsa.check_public_key(pub.hex(), proof.hex()) == pub
    off_curve = pub[:63] + bytes([pub[63] ^ 1])
    with pytest.raises(InvalidKey, match="not a point"):
        ecdsa.check_public_key(off_curve.hex(), proof.hex())
    with pytest.raises(InvalidKey, match="does not verify"):
        ecdsa.check_public_key(pub.hex(), p256.schnorr_prove(d + 1).hex())
    with pytest.raises(InvalidKey, match="128 hexadecimal"):
        ecdsa.check_public_key("abcd", proof.hex())
    assert ecdsa.check_break(hex(d)[2:].rjust(64, "0"), pub)
    assert not ecdsa.check_break("00" * 31 + "05", pub)


def test_aes_break_check():
    aes = KINDS["aes"]
    key = bytes(range(16))
    vectors = aes.make_vectors(key, 3)
    pairs = list(zip(vectors.inputs, vectors.expected, strict=True))
    assert aes.check_break(key.hex(), pairs)
    assert not aes.check_break("00" * 16, pairs)
    with pytest.raises(InvalidKey):
        aes.check_break("zz" * 16, pairs)
