"""Judging end to end in the sandbox: samples, the hostile corpus, the verifiers."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import time

import pytest

from clubstack.contest import judge, p256, scoring
from clubstack.contest.errors import SourceRejected
from clubstack.contest.kinds import KINDS, ContestLimits, Vectors

from .conftest import SAMPLES

pytestmark = pytest.mark.usefixtures("sandbox_ready")

AES = KINDS["aes"]
ECDSA = KINDS["ecdsa"]
AES_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
ECDSA_D = 0xC477F9F65C22CCE20657FAA5B2D1D8122336F851A508A1ED04E479C34985BF96
LIMITS = ContestLimits(call_cpu_seconds=0.5, random_vectors=100)
FEW = dataclasses.replace(LIMITS, random_vectors=5)


def sandbox_pids() -> set[int]:
    out = subprocess.run(
        ["ps", "-e", "-o", "pid=,uid=,stat="], capture_output=True, text=True
    ).stdout
    rows = (line.split() for line in out.splitlines())
    return {int(p) for p, u, st in rows if int(u) == 65534 and not st.startswith("Z")}


def aes_vectors(count: int = 100) -> Vectors:
    return AES.make_vectors(AES_KEY, count)


def test_sample_aes_is_accepted_with_103_vectors():
    vectors = aes_vectors()
    assert len(vectors.inputs) == 103
    verdict, answer = judge.judge_locally(AES, (SAMPLES / "aes.c").read_bytes(), vectors, LIMITS)
    assert verdict.accepted, verdict.reason
    assert len(answer["outputs"]) == 103 and len(answer["cpu_ns"]) == 103
    assert 0 < verdict.object_size < LIMITS.object_bytes
    assert 0 < verdict.mean_ram_bytes < LIMITS.run_memory_bytes
    assert verdict.performance is not None and verdict.performance > 1


def test_sample_aes_with_wrong_declared_key_is_refused():
    vectors = AES.make_vectors(bytes(16), 5)
    verdict, _ = judge.judge_locally(AES, (SAMPLES / "aes.c").read_bytes(), vectors, FEW)
    assert not verdict.accepted and "wrong ciphertext" in verdict.reason


def test_sample_ecdsa_signatures_verify_including_edge_hashes():
    public = p256.encode_point(p256.public_key(ECDSA_D))
    proof = p256.schnorr_prove(ECDSA_D)
    key = ECDSA.check_public_key(public.hex(), proof.hex())
    vectors = ECDSA.make_vectors(key, 20)
    assert vectors.inputs[-3:] == [bytes(32), b"\xff" * 32, p256.N.to_bytes(32, "big")]
    verdict, answer = judge.judge_locally(
        ECDSA, (SAMPLES / "ecdsa.c").read_bytes(), vectors, LIMITS
    )
    assert verdict.accepted, verdict.reason
    # a different public key: the same signatures no longer verify
    other = ECDSA.make_vectors(p256.encode_point(p256.public_key(12345)), 20)
    other.inputs = vectors.inputs
    outputs = [bytes.fromhex(h) for h in answer["outputs"]]
    assert "does not verify" in (ECDSA.verify(other, outputs) or "")


AES_PROTO = "void AES_128_encrypt(unsigned char c[16], unsigned char p[16])"
HOSTILE = {
    "fork_bomb": ("int fork(void);\n" + AES_PROTO + " { for (;;) fork(); }\n", "killed"),
    "infinite_loop": (AES_PROTO + " { volatile int x = 0; for (;;) x++; }\n", "time_limit"),
    "sleep_forever": (
        "unsigned sleep(unsigned);\n" + AES_PROTO + " { sleep(100000); }\n",
        "killed",
    ),
    "memory_hog": (
        "void *malloc(unsigned long);\n"
        + AES_PROTO
        + " { for (;;) { volatile char *b = malloc(1 << 20);"
        " for (int i = 0; i < (1 << 20); i += 4096) b[i] = 1; } }\n",
        "memory_limit",
    ),
    "output_flood": (
        "long write(int, const void *, unsigned long);\nstatic char buf[65536];\n"
        + AES_PROTO
        + " { for (int i = 0; i < 1600; i++) write(1, buf, sizeof buf); }\n",
        "output_limit",
    ),
    "read_passwd": (
        "int open(const char *, int, ...);\nlong read(int, void *, unsigned long);\n"
        + AES_PROTO
        + ' { char b[16]; int fd = open("/etc/passwd", 0);'
        " if (fd >= 0) read(fd, b, 16); for (int i = 0; i < 16; i++) c[i] = b[i]; }\n",
        "killed",
    ),
    "open_socket": (
        "int socket(int, int, int);\n" + AES_PROTO + " { socket(2, 1, 0); }\n",
        "killed",
    ),
    "exec_shell": (
        "int execve(const char *, char *const[], char *const[]);\n"
        + AES_PROTO
        + ' { char *argv[] = {"/bin/sh", 0}; execve("/bin/sh", argv, 0); }\n',
        "killed",
    ),
    # one process per call: the crash is on an input, the all-ff edge case (call 62 of 63)
    "crash_on_the_ff_block": (
        AES_PROTO + " { int all = 1; for (int i = 0; i < 16; i++) all &= p[i] == 0xff;"
        " if (all) *(volatile int *)0 = 1; for (int i = 0; i < 16; i++) c[i] = p[i]; }\n",
        "crashed",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_corpus(name, tmp_path):
    source, expected = HOSTILE[name]
    before = sandbox_pids()
    marker = tmp_path / "untouched"
    marker.write_text("same")
    verdict, answer = judge.judge_locally(AES, source.encode(), aes_vectors(60), LIMITS)
    assert not verdict.accepted
    assert answer["stage"] == "tested", answer
    assert answer["verdict"] == expected, answer["reason"]
    if name == "crash_on_the_ff_block":
        assert len(answer["outputs"]) == 61 and answer["reason"].startswith("call 62:")
    if name == "read_passwd":
        assert "root" not in str(answer["outputs"])
    assert sandbox_pids() <= before
    assert marker.read_text() == "same"


def test_object_size_bomb_is_refused_at_compile_time():
    source = (
        "static unsigned char big[30000000] = {1};\n"
        + AES_PROTO
        + " { for (int i = 0; i < 16; i++) c[i] = p[i] ^ big[i]; }\n"
    )
    verdict, _ = judge.judge_locally(AES, source.encode(), aes_vectors(5), FEW)
    assert verdict.stage == "compile_failed"
    assert "object file would exceed" in verdict.reason


def test_worker_goes_on_after_hostile_runs():
    for name in ("fork_bomb", "memory_hog"):
        judge.judge_locally(AES, HOSTILE[name][0].encode(), aes_vectors(5), FEW)
    verdict, _ = judge.judge_locally(AES, (SAMPLES / "aes.c").read_bytes(), aes_vectors(5), FEW)
    assert verdict.accepted


def test_compile_error_is_reported_truncated_and_without_host_paths():
    verdict, _ = judge.judge_locally(AES, b"this is not C;\n" * 2000, aes_vectors(5), FEW)
    message = verdict.reason
    assert "compilation failed" in message and len(message) < judge.COMPILER_MESSAGE_MAX + 100
    assert "/work/wt" not in message and "/tmp/clubstack-sbx" not in message


def test_implicit_declaration_is_refused():
    source = AES_PROTO + " { memcpy(c, p, 16); }\n"
    verdict, _ = judge.judge_locally(AES, source.encode(), aes_vectors(5), FEW)
    assert verdict.stage == "compile_failed" and "implicit declaration" in verdict.reason


def test_token_pasting_extern_is_caught_after_preprocessing():
    source = "#define J(a, b) a##b\nJ(ext, ern) int x;\n" + AES_PROTO + " { c[0] = p[0]; }\n"
    verdict, _ = judge.judge_locally(AES, source.encode(), aes_vectors(5), FEW)
    assert verdict.stage == "compile_failed"
    assert "after preprocessing, line 2: 'extern'" in verdict.reason


def test_sandbox_node_answer_needs_no_secret():
    vectors = aes_vectors(5)
    payload = judge.make_payload(AES, (SAMPLES / "aes.c").read_text(), vectors.inputs, FEW)
    assert set(payload) == {"kind", "source", "inputs", "limits"}
    answer = judge.execute_job(payload)
    assert judge.conclude(AES, vectors, answer, FEW).accepted
    forged = dict(answer, outputs=["00" * 16] * len(answer["outputs"]))
    assert not judge.conclude(AES, vectors, forged, FEW).accepted


def test_compiler_sees_no_host_file_even_without_the_filter(tmp_path):
    secret = tmp_path / "secret.h"
    secret.write_text("#error SECRET-CONTENT\n")
    for target in ("/etc/hostname", str(secret)):
        source = f'#include "{target}"\n' + AES_PROTO + " { c[0] = p[0]; }\n"
        with pytest.raises(SourceRejected) as info:
            judge.compile_submission(AES, source, FEW)  # straight to the compiler
        assert "No such file" in info.value.message
        assert "SECRET-CONTENT" not in info.value.message


def kernel_score(answer: dict, limits: ContestLimits) -> float:
    """The performance from the figures the harness's parent got from wait4, trimmed."""
    ram = scoring.trimmed_mean([kib * 1024 for kib in answer["rss_kib"]])
    cpu = scoring.trimmed_mean([ns / 1e9 for ns in answer["cpu_ns"]])
    return scoring.performance(
        answer["object_size"],
        limits.object_bytes,
        ram,
        limits.run_memory_bytes,
        cpu,
        limits.call_cpu_seconds,
    )


# Runs before main under the old design (libc's start-up calls getenv/strlen/memset): reads
# the harness's input itself, encrypts every block honestly, prints its own result lines with
# "1 ns, 1 KiB" and exits before the harness ever runs.
LIAR = """
long read(int, void *, unsigned long);
long write(int, const void *, unsigned long);
void exit(int);
static unsigned char lie_in[1 << 20];
static void lie(void) {
    static const char hex[] = "0123456789abcdef";
    long got = 0, n;
    while ((n = read(0, lie_in + got, sizeof lie_in - got)) > 0) got += n;
    for (long i = 0; i < 103; i++) {
        unsigned char ct[16];
        char line[64];
        int k = 0;
        AES_128_encrypt(ct, lie_in + got - 16 * (103 - i));
        for (int j = 0; j < 16; j++) { line[k++] = hex[ct[j] >> 4]; line[k++] = hex[ct[j] & 15]; }
        line[k++] = ' '; line[k++] = '1'; line[k++] = ' '; line[k++] = '1'; line[k++] = 10;
        write(1, line, k);
    }
    write(1, "end\\n", 4);
    exit(0);
}
char *getenv(const char *name) { (void)name; lie(); return 0; }
unsigned long strlen(const char *s) { (void)s; lie(); return 0; }
void *memset(void *s, int c, unsigned long n) { (void)c; (void)n; lie(); return s; }
"""


def test_a_lying_submission_is_scored_from_kernel_figures():
    vectors = aes_vectors()
    sample = (SAMPLES / "aes.c").read_text()
    honest, honest_answer = judge.judge_locally(AES, sample.encode(), vectors, LIMITS)
    verdict, answer = judge.judge_locally(AES, (sample + LIAR).encode(), vectors, LIMITS)
    assert honest.accepted and verdict.accepted, verdict.reason
    # its own "1 ns, 1 KiB" lines never reach the judge: every call took real CPU and memory
    assert min(answer["cpu_ns"]) > 1000 and min(answer["rss_kib"]) > 16
    assert verdict.performance == pytest.approx(kernel_score(answer, LIMITS))
    # the per-call CPU times are the kernel's: their sum stays within the run's cgroup total
    assert sum(answer["cpu_ns"]) / 1e9 <= answer["total_cpu_seconds"] + 0.01
    # same AES code, same score give or take noise: no doubling by lying
    assert verdict.performance < honest.performance + 1.5
    assert kernel_score(honest_answer, LIMITS) == pytest.approx(honest.performance)


PREMAIN_OVERRIDES = """
void exit(int);
char *getenv(const char *name) { (void)name; exit(41); return 0; }
unsigned long strlen(const char *s) { (void)s; exit(42); return 0; }
void *memset(void *s, int c, unsigned long n) { (void)c; (void)n; exit(43); return s; }
void *memcpy(void *d, const void *s, unsigned long n) { (void)s; (void)n; exit(44); return d; }
char *strchr(const char *s, int c) { (void)c; exit(45); return (char *)s; }
int __libc_start_main(void *m, int c, char **v) { (void)m; (void)c; (void)v; exit(46); return 0; }
void __libc_setup_tls(void) { exit(47); }
void __libc_init_secure(void) { exit(48); }
void _dl_relocate_static_pie(void) { exit(49); }
int atexit(void (*f)(void)) { (void)f; exit(50); return 0; }
void *malloc(unsigned long n) { (void)n; exit(51); return 0; }
"""


def test_libc_functions_defined_by_a_submission_never_run_before_main():
    source = (SAMPLES / "aes.c").read_text() + PREMAIN_OVERRIDES
    verdict, answer = judge.judge_locally(AES, source.encode(), aes_vectors(5), FEW)
    assert verdict.accepted, (verdict.reason, answer.get("reason"))
    assert len(answer["outputs"]) == 8


SLEEPER = (
    """
int pthread_mutex_lock(void *mutex);
static long lock[8];
static void block_forever(void) { pthread_mutex_lock(lock); pthread_mutex_lock(lock); }
char *getenv(const char *name) { (void)name; block_forever(); return 0; }
unsigned long strlen(const char *s) { (void)s; block_forever(); return 0; }
"""
    + AES_PROTO
    + " { block_forever(); c[0] = p[0]; }\n"
)


def test_a_zero_cpu_sleeper_does_not_hold_the_sandbox():
    start = time.monotonic()
    verdict, answer = judge.judge_locally(AES, SLEEPER.encode(), aes_vectors(5), FEW)
    elapsed = time.monotonic() - start
    assert not verdict.accepted
    assert answer["verdict"] in ("killed", "time_limit"), answer["reason"]
    assert answer["reason"].startswith("call 1:")
    # compile and link take a few seconds here; the run itself ends within one call's bound
    assert answer["wall_seconds"] < judge.call_wall_seconds(FEW.call_cpu_seconds) + 1
    assert elapsed < 20


def test_call_wall_clock_bound_is_close_to_the_cpu_limit():
    assert 3.0 < judge.call_wall_seconds(3.0) <= 4.0


@pytest.mark.parametrize("kind", ["aes", "ecdsa"])
def test_the_starter_programs_are_accepted_as_they_are(kind):
    from importlib import resources

    source = resources.files("clubstack.contest.starters").joinpath(f"{kind}.c").read_bytes()
    if kind == "aes":
        vectors = aes_vectors(5)
    else:
        d = int(re.search(rb'D_HEX = "([0-9a-f]{64})"', source).group(1), 16)
        public = p256.encode_point(p256.public_key(d))
        vectors = ECDSA.make_vectors(
            ECDSA.check_public_key(public.hex(), p256.schnorr_prove(d).hex()), 5
        )
    verdict, _ = judge.judge_locally(KINDS[kind], source, vectors, FEW)
    assert verdict.accepted, verdict.reason


def test_a_reference_proof_and_an_ecdsa_program_signing_with_that_key_are_accepted():
    from .test_filter_and_keys import reference_proof

    public, proof = reference_proof(ECDSA_D, k=0x1234567890ABCDEF1234567890ABCDEF)
    key = ECDSA.check_public_key(public, proof)
    verdict, _ = judge.judge_locally(
        ECDSA, (SAMPLES / "ecdsa.c").read_bytes(), ECDSA.make_vectors(key, 10), LIMITS
    )
    assert verdict.accepted, verdict.reason
