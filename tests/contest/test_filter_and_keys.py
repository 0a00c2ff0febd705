"""Source filter cases, P-256 / EC-Schnorr, declared keys and break checks."""

from __future__ import annotations

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
        ("const char *f = __FILE__;\n" + BODY, "'__FILE__'"),
        ("const char *d = __DATE__;\n" + BODY, "'__DATE__'"),
        ("const char *t = __TIME__;\n" + BODY, "'__TIME__'"),
        ("int v = __STDC_VERSION__;\n" + BODY, "__STDC_"),
        ("void f(void) { __asm__(\"nop\"); }\n" + BODY, "inline assembly"),
        ("void f(void) { asm(\"nop\"); }\n" + BODY, "inline assembly"),
        ("long syscall(long, ...);\n" + BODY, "no system calls"),
        ("__attribute__((constructor)) void f(void) {}\n" + BODY, "before main"),
        ("__attribute__((section(\".text\"))) int x;\n" + BODY, "section"),
        ("static const char *s = \".init_array\";\n" + BODY, "section tricks"),
        ("static const char *s = \".ctors\";\n" + BODY, "section tricks"),
        ("static const char *s = \".fini\";\n" + BODY, "section tricks"),
        ("#pragma GCC optimize(\"O3\")\n" + BODY, "#pragma"),
        ("#line 1 \"/etc/passwd\"\n" + BODY, "#line"),
        ("_Pragma(\"once\")\n" + BODY, "_Pragma"),
        ("int x = 1 ??' 2;\n" + BODY, "trigraph"),
        ("int __libc_start_main(void) { return 0; }\n" + BODY, "reserved to the implementation"),
        ("void _start(void) {}\n" + BODY, "reserved to the implementation"),
        ("static int _Secret;\n" + BODY, "reserved to the implementation"),
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
    with pytest.raises(SourceRejected, match="first line"):
        sourcefilter.check_source((BODY + "#include <gmp.h>\n").encode(), ECDSA_RULES)


def test_filter_size_and_encoding():
    with pytest.raises(SourceRejected, match="larger than"):
        sourcefilter.check_source(b"x" * 50_001, AES_RULES)
    with pytest.raises(SourceRejected, match="UTF-8"):
        sourcefilter.check_source(b"\xff\xfe", AES_RULES)


def test_preprocessed_check_ignores_header_lines_and_reports_source_lines():
    text = ('# 1 "/usr/include/gmp.h" 1\nextern int __gmpz_add;\n'
            '# 3 "submission.c"\nint a;\nextern int b;\n')
    with pytest.raises(SourceRejected, match="line 4: 'extern'"):
        sourcefilter.check_preprocessed(text)
    sourcefilter.check_preprocessed('# 1 "/usr/include/gmp.h"\nextern int x;\n')


def test_implicit_declaration_in_compiler_output():
    with pytest.raises(SourceRejected):
        sourcefilter.check_compiler_output(
            "submission.c:1:3: warning: implicit declaration of function 'memcpy'")
    sourcefilter.check_compiler_output("submission.c:1:3: warning: unused variable 'x'")


def test_p256_matches_cryptography_and_schnorr_roundtrip():
    d = 0x1234567890ABCDEF
    numbers = ec.derive_private_key(d, ec.SECP256R1()).public_key().public_numbers()
    assert p256.public_key(d) == (numbers.x, numbers.y)
    assert p256.mul(p256.N, p256.G) is None
    proof = p256.schnorr_prove(d)
    q = p256.public_key(d)
    assert p256.schnorr_verify(q, proof)
    assert not p256.schnorr_verify(p256.public_key(d + 1), proof)
    assert not p256.schnorr_verify(q, proof, b"other message")
    tampered = proof[:40] + bytes([proof[40] ^ 1]) + proof[41:]
    assert not p256.schnorr_verify(q, tampered)


def test_schnorr_equation_by_hand():
    # r = SHA-256(x(R) || y(R) || ""), s = k + r*d mod n, with fixed k: recompute R = s*G - r*Q
    import hashlib

    d, k = 7, 11
    proof = p256.schnorr_prove(d, k=k)
    r = int.from_bytes(proof[:32], "big")
    s = int.from_bytes(proof[32:], "big")
    point = p256.mul(k, p256.G)
    assert r == int.from_bytes(hashlib.sha256(p256.encode_point(point)).digest(), "big")
    assert s == (k + r * d) % p256.N


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
