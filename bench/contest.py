"""Contest benchmarks: sandbox overhead per run, and submission turnaround.

    python bench/contest.py [--runs N]

1. Sandbox overhead: an empty static program run in the sandbox (bubblewrap, cgroup, rlimits,
   seccomp, tmpfs work dir) vs a plain fork/exec of the same file, measured in the same run.
   Target: <= 10 ms added per run.
2. Turnaround: filter + compile + link + 103 vectors of the sample AES and ECDSA challenges,
   verified, with the kernel-side measurement in place (one process per call, CPU time and
   peak memory from wait4). Target: <= 5 s on this machine (WhibOx published challenges a
   median 296 s after submission). Also printed: the test run alone and the mean CPU per call.
Exit status 0 (it reports; it does not fail on a missed target).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from clubstack.contest import judge, p256  # noqa: E402
from clubstack.contest.kinds import KINDS, ContestLimits  # noqa: E402
from clubstack.contest.sandbox import STARTUP, InputFile, Limits, run  # noqa: E402

SAMPLES = ROOT / "src" / "clubstack" / "contest" / "starters"  # the starters members download
ECDSA_D = 0xC477F9F65C22CCE20657FAA5B2D1D8122336F851A508A1ED04E479C34985BF96
AES_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
OVERHEAD_TARGET_MS = 10.0
TURNAROUND_TARGET_S = 5.0


def empty_program(folder: Path) -> Path:
    src = folder / "empty.c"
    src.write_text("int main(void) { return 0; }\n")
    out = folder / "empty"
    subprocess.run(["gcc", "-static", "-O2", str(src), "-o", str(out)], check=True)
    return out


def cpu_now() -> float:
    """CPU seconds of this process and its reaped children (the sandbox's processes too)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bench_overhead(runs: int) -> tuple[float, float, float, float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        program = empty_program(Path(tmp))
        data = program.read_bytes()
        for _ in range(3):  # warm caches
            subprocess.run([str(program)], check=True)
            run(["/work/empty"], {"empty": InputFile(data, 0o755)}, toolchain=False)
        plain = []
        cpu0 = cpu_now()
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run([str(program)], check=True)
            plain.append(time.perf_counter() - start)
        plain_cpu = (cpu_now() - cpu0) / runs
        boxed = []
        cpu0 = cpu_now()
        limits = Limits(cpu_seconds=1, wall_seconds=5, memory_bytes=32 * 2**20)
        for _ in range(runs):
            start = time.perf_counter()
            result = run(
                ["/work/empty"],
                {"empty": InputFile(data, 0o755)},
                limits=limits,
                toolchain=False,
                seccomp_profile=STARTUP,
            )
            boxed.append(time.perf_counter() - start)
            assert result.ok, result
        boxed_cpu = (cpu_now() - cpu0) / runs
    return (
        statistics.median(plain) * 1000,
        statistics.median(boxed) * 1000,
        plain_cpu * 1000,
        boxed_cpu * 1000,
        min(plain) * 1000,
        min(boxed) * 1000,
    )


def bench_turnaround(kind_name: str, rounds: int) -> tuple[list[float], list[float], float]:
    """(turnarounds, test-run wall times, mean CPU seconds per call) over ``rounds``."""
    kind = KINDS[kind_name]
    limits = ContestLimits()
    source = (SAMPLES / f"{kind_name}.c").read_bytes()
    times, runs, per_call = [], [], []
    for _ in range(rounds):
        if kind_name == "aes":
            vectors = kind.make_vectors(AES_KEY, 100)  # type: ignore[attr-defined]
        else:
            public = p256.encode_point(p256.public_key(ECDSA_D)).hex()
            raw = kind.check_public_key(public, p256.schnorr_prove(ECDSA_D).hex())  # type: ignore[attr-defined]
            vectors = kind.make_vectors(raw, 100)  # type: ignore[attr-defined]
        start = time.perf_counter()
        verdict, answer = judge.judge_locally(kind, source, vectors, limits)
        times.append(time.perf_counter() - start)
        assert verdict.accepted and len(vectors.inputs) == 103, verdict
        runs.append(float(answer["wall_seconds"]))
        per_call.append(verdict.mean_cpu_seconds)
    return times, runs, statistics.median(per_call)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="runs per overhead measurement")
    parser.add_argument("--rounds", type=int, default=3, help="turnaround rounds")
    args = parser.parse_args()

    load = os.getloadavg()[0]
    print(f"load average {load:.2f} on {os.cpu_count()} CPUs (wall times grow with load)")
    plain_ms, boxed_ms, plain_cpu, boxed_cpu, plain_min, boxed_min = bench_overhead(args.runs)
    added = boxed_ms - plain_ms
    print(f"sandbox overhead (empty static program, median of {args.runs} runs)")
    print(f"  plain fork/exec     {plain_ms:8.2f} ms")
    print(f"  in the sandbox      {boxed_ms:8.2f} ms   ratio {boxed_ms / plain_ms:.1f}x")
    print(
        f"  added               {added:8.2f} ms   target <= {OVERHEAD_TARGET_MS:g} ms "
        f"-> {'OK' if added <= OVERHEAD_TARGET_MS else 'MISSED'}"
    )
    print(
        f"  fastest run         {plain_min:8.2f} ms plain, {boxed_min:.2f} ms sandboxed "
        f"(added {boxed_min - plain_min:.2f} ms: the least contended run)"
    )
    print(
        f"  CPU per run         {plain_cpu:8.2f} ms plain, {boxed_cpu:.2f} ms sandboxed "
        f"(added {boxed_cpu - plain_cpu:.2f} ms of CPU)"
    )

    for kind_name in ("aes", "ecdsa"):
        times, runs, per_call = bench_turnaround(kind_name, args.rounds)
        median = statistics.median(times)
        print(
            f"submission turnaround (sample {kind_name.upper()}, compile + 103 vectors, one "
            f"process per call, {args.rounds} rounds)"
        )
        print(
            f"  median              {median:8.2f} s    (min {min(times):.2f}, max {max(times):.2f})"
        )
        print(
            f"  of which test run   {statistics.median(runs):8.3f} s    "
            f"(mean CPU per call, kernel-measured: {per_call * 1e6:.0f} us)"
        )
        print(
            f"  target <= {TURNAROUND_TARGET_S:g} s -> "
            f"{'OK' if median <= TURNAROUND_TARGET_S else 'MISSED'}; "
            f"{296 / median:.0f}x faster than WhibOx's median 296 s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
