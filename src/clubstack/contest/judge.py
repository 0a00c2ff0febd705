"""Filter, compile and test a submission in the sandbox.

Split along the line between the web side and a sandbox node:
- ``execute_job(payload)`` is all a sandbox node does: compile the source with the kind's
  harness and run it on the given inputs. It needs no database and no secret; it returns the
  raw outputs and measurements. Payload and answer are plain JSON-able dicts.
- the web side filters the source first, makes the vectors, and verifies the outputs with
  ``Kind.verify`` (it alone knows the expected ciphertexts / the public key).
``judge_locally`` chains both for the CLI.
"""

from __future__ import annotations

import math
import signal
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from clubstack.contest import scoring, sourcefilter
from clubstack.contest.errors import SourceRejected
from clubstack.contest.kinds import ContestLimits, Kind, Vectors, get_kind
from clubstack.contest.sandbox import (
    STARTUP,
    STRICT,
    InputFile,
    Limits,
    Verdict,
    build_seccomp,
    run,
)

COMPILER_MESSAGE_MAX = 4000
CFLAGS = [
    "-std=gnu11",
    "-O2",
    "-fno-asm",
    "-Wall",
    "-Werror=implicit-function-declaration",
    "-Werror=implicit-int",
    "-fno-common",
]
HARNESS_NAME = "harness.c"
STARTUP_SECTIONS = (
    ".preinit_array",
    ".init_array",
    ".fini_array",
    ".ctors",
    ".dtors",
    ".init",
    ".fini",
)
RUN_MEMORY_HEADROOM = 6 * 2**20  # bubblewrap's own two processes live in the run's cgroup


def harness_source() -> bytes:
    return resources.files("clubstack.contest.harness").joinpath(HARNESS_NAME).read_bytes()


def filter_rules(kind: Kind, limits: ContestLimits) -> sourcefilter.FilterRules:
    return sourcefilter.FilterRules(kind.allowed_include, limits.source_bytes)


def _truncate(text: str, limit: int = COMPILER_MESSAGE_MAX) -> str:
    return text if len(text) <= limit else text[:limit] + "\n[... truncated]"


def _compile_limits(limits: ContestLimits, file_bytes: int) -> Limits:
    return Limits(
        cpu_seconds=limits.compile_seconds,
        wall_seconds=limits.compile_seconds * 2,
        memory_bytes=limits.compile_memory_bytes,
        max_processes=32,
        output_bytes=256 * 1024,
        file_bytes=file_bytes,
        disk_bytes=min(limits.compile_memory_bytes, 4 * file_bytes + 2 * limits.source_bytes),
    )


@dataclass
class CompileOutput:
    binary: bytes
    object_size: int
    message: str  # compiler warnings, shown to the submitter


def compile_submission(kind: Kind, source: str, limits: ContestLimits) -> CompileOutput:
    """Preprocess (for the second filter pass), compile and link, each step in the sandbox."""
    src = {sourcefilter.SOURCE_NAME: source.encode()}
    pre = run(
        ["gcc", *CFLAGS, "-E", sourcefilter.SOURCE_NAME, "-o", "submission.i"],
        src,
        limits=_compile_limits(limits, 4 * limits.source_bytes + 2**20),
        collect=["submission.i"],
    )
    if not pre.ok or "submission.i" not in pre.files:
        raise SourceRejected("preprocessing failed: " + _describe(pre))
    sourcefilter.check_preprocessed(pre.files["submission.i"].decode("utf-8", "replace"))

    comp = run(
        ["gcc", *CFLAGS, "-pipe", "-c", sourcefilter.SOURCE_NAME, "-o", "submission.o"],
        src,
        limits=_compile_limits(limits, limits.object_bytes),
        collect=["submission.o"],
    )
    message = comp.stderr.decode("utf-8", "replace")
    sourcefilter.check_compiler_output(message)
    if not comp.ok or "submission.o" not in comp.files:
        if "signal 25" in message or "File size limit" in message or comp.signal == signal.SIGXFSZ:
            raise SourceRejected(f"the object file would exceed {limits.object_bytes} bytes")
        raise SourceRejected("compilation failed: " + _describe(comp))
    obj = comp.files["submission.o"]

    # Only the entry point stays global: every other symbol the submission defines (a memset,
    # getenv, strlen, __libc_start_main ... of its own) becomes local to its object, so libc's
    # start-up code and the harness can never call it, and no submitted code runs before the
    # strict filter. Start-up sections are dropped as well (the filter already refuses the
    # ways to make them). objcopy reads the untrusted object, so it runs in the sandbox too.
    strip = run(
        [
            "objcopy",
            f"--keep-global-symbol={kind.entry}",
            *(f"--remove-section={name}" for name in STARTUP_SECTIONS),
            "submission.o",
            "local.o",
        ],
        {"submission.o": obj},
        limits=_compile_limits(limits, limits.object_bytes),
        collect=["local.o"],
    )
    if not strip.ok or "local.o" not in strip.files:
        raise SourceRejected("the object file could not be read: " + _describe(strip))

    libs = [f"-l{name}" for name in kind.libraries]
    link = run(
        ["gcc", "-static", "-O2", f"-D{kind.macro}", HARNESS_NAME, "local.o", "-o", "prog", *libs],
        {HARNESS_NAME: harness_source(), "local.o": strip.files["local.o"]},
        limits=_compile_limits(limits, limits.object_bytes + 32 * 2**20),
        collect=["prog"],
    )
    if not link.ok or "prog" not in link.files:
        raise SourceRejected("linking failed: " + _describe(link))
    return CompileOutput(
        binary=link.files["prog"], object_size=len(obj), message=_truncate(message)
    )


def _describe(result: Any) -> str:
    text = result.stderr.decode("utf-8", "replace").strip()
    if result.verdict is not Verdict.OK:
        text = f"{result.reason}\n{text}".strip()
    return _truncate(text or f"exit status {result.exit_code}")


@dataclass
class TestRun:
    verdict: str  # ok, time_limit, memory_limit, output_limit, crashed, killed, bad_output
    reason: str
    outputs: list[bytes] = field(default_factory=list)
    cpu_ns: list[int] = field(default_factory=list)  # per call, wait4 rusage of its process
    rss_kib: list[int] = field(default_factory=list)  # per call, wait4 ru_maxrss
    total_cpu_seconds: float = 0.0  # the whole run, from its cgroup
    peak_memory: int = 0  # the whole run, from its cgroup
    wall_seconds: float = 0.0


def call_wall_seconds(call_cpu_seconds: float) -> float:
    """Wall-clock bound of one call: a call that sleeps or blocks is ended close to the CPU
    limit, so it cannot hold a sandbox slot much longer than an honest one."""
    return call_cpu_seconds * 1.25 + 0.25


_SIGNAL_VERDICTS = {
    signal.SIGPROF: (Verdict.TIME_LIMIT, "more than {cpu:g} s of CPU time"),
    signal.SIGALRM: (Verdict.TIME_LIMIT, "more than {wall:g} s of wall-clock time"),
    signal.SIGXCPU: (Verdict.TIME_LIMIT, "more than {cpu:g} s of CPU time"),
    signal.SIGSYS: (Verdict.KILLED, "forbidden system call"),
}


def run_tests(kind: Kind, binary: bytes, inputs: list[bytes], limits: ContestLimits) -> TestRun:
    """Run the harness binary on all inputs: one sandbox, one child process per call."""
    strict = build_seccomp(STRICT)
    per_call_ms = max(1, math.ceil(limits.call_cpu_seconds * 1000))
    wall = call_wall_seconds(limits.call_cpu_seconds)
    wall_ms = max(1, math.ceil(wall * 1000))
    stdin = (
        struct.pack("<I", len(strict))
        + strict
        + struct.pack("<III", len(inputs), per_call_ms, wall_ms)
        + b"".join(inputs)
    )
    total_cpu = limits.call_cpu_seconds * len(inputs) + 1.0
    line_len = 2 * kind.output_len + 48
    result = run(
        ["/work/prog"],
        {"prog": InputFile(binary, 0o755)},
        stdin,
        Limits(
            cpu_seconds=total_cpu,
            wall_seconds=wall * len(inputs) + 5,
            memory_bytes=limits.run_memory_bytes + RUN_MEMORY_HEADROOM,
            max_processes=8,
            output_bytes=line_len * (len(inputs) + 1) + 4096,
            file_bytes=1 << 20,
            disk_bytes=len(binary) + (1 << 20),
        ),
        toolchain=False,
        seccomp_profile=STARTUP,
    )
    report = TestRun(
        verdict=result.verdict.value,
        reason=result.reason,
        total_cpu_seconds=result.cpu_seconds,
        peak_memory=result.peak_memory,
        wall_seconds=result.wall_seconds,
    )
    finished = False
    failed: list[str] = []
    for line in result.stdout.decode("ascii", "replace").split("\n"):
        if line == "end":
            finished = True
            break
        parts = line.split(" ")
        if parts[0] == "fail" and len(parts) == 4:
            failed = parts
            continue
        if len(parts) != 3 or len(parts[0]) != 2 * kind.output_len:
            if line:
                report.verdict, report.reason = "bad_output", "unexpected harness output"
            break
        try:
            report.outputs.append(bytes.fromhex(parts[0]))
            report.cpu_ns.append(int(parts[1]))
            report.rss_kib.append(int(parts[2]))
        except ValueError:
            report.verdict, report.reason = "bad_output", "unexpected harness output"
            break
    call = len(report.outputs) + 1
    cpu, wall_text = limits.call_cpu_seconds, wall
    if result.verdict is not Verdict.OK:
        report.verdict = result.verdict.value
        report.reason = f"call {call}: {result.reason}"
    elif failed:
        what, value = failed[2], int(failed[3]) if failed[3].isdigit() else 0
        if what == "output":
            report.verdict = Verdict.OUTPUT_LIMIT.value
            report.reason = f"call {call}: wrote {value} bytes, not {kind.output_len}"
        elif what == "signal" and value in _SIGNAL_VERDICTS:
            verdict, text = _SIGNAL_VERDICTS[signal.Signals(value)]
            report.verdict = verdict.value
            report.reason = f"call {call}: " + text.format(cpu=cpu, wall=wall_text)
        elif (
            what == "signal"
            and value == signal.SIGKILL
            and result.cgroup_version
            and result.peak_memory >= limits.run_memory_bytes
        ):
            report.verdict = Verdict.MEMORY_LIMIT.value
            report.reason = f"call {call}: more than {limits.run_memory_bytes} bytes of memory"
        elif what == "signal" and value == signal.SIGKILL:
            report.verdict = Verdict.KILLED.value
            report.reason = f"call {call}: killed"
        elif what == "signal":
            report.verdict = Verdict.CRASHED.value
            report.reason = f"call {call}: killed by signal {_signal_name(value)}"
        else:
            report.verdict = Verdict.CRASHED.value
            report.reason = f"call {call}: exit status {value}"
    elif report.verdict == "ok" and (not finished or result.exit_code != 0):
        report.verdict = "crashed"
        err = result.stderr.decode("utf-8", "replace").strip()
        report.reason = f"call {call}: exit status {result.exit_code} {err}".strip()
    elif report.verdict == "ok" and len(report.outputs) != len(inputs):
        report.verdict, report.reason = "bad_output", "unexpected harness output"
    if report.verdict == "ok" and report.cpu_ns and max(report.cpu_ns) > cpu * 1e9:
        report.verdict = Verdict.TIME_LIMIT.value
        report.reason = f"a call took more than {cpu:g} s of CPU time"
    return report


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


# ---- the sandbox node's job --------------------------------------------------------------


def make_payload(kind: Kind, source: str, inputs: list[bytes], limits: ContestLimits) -> dict:
    return {
        "kind": kind.name,
        "source": source,
        "inputs": [i.hex() for i in inputs],
        "limits": asdict(limits),
    }


def execute_job(payload: dict, on_compiled: Callable[[], None] | None = None) -> dict:
    """Compile and test; return raw outputs and measurements. Never raises for bad code."""
    kind = get_kind(payload["kind"])
    limits = ContestLimits(**payload["limits"])
    inputs = [bytes.fromhex(h) for h in payload["inputs"]]
    try:
        compiled = compile_submission(kind, payload["source"], limits)
    except SourceRejected as exc:
        return {"stage": "compile_failed", "message": exc.message}
    if on_compiled is not None:
        on_compiled()
    test = run_tests(kind, compiled.binary, inputs, limits)
    return {
        "stage": "tested",
        "message": compiled.message,
        "object_size": compiled.object_size,
        "verdict": test.verdict,
        "reason": test.reason,
        "outputs": [o.hex() for o in test.outputs],
        "cpu_ns": test.cpu_ns,
        "rss_kib": test.rss_kib,
        "total_cpu_seconds": test.total_cpu_seconds,
        "peak_memory": test.peak_memory,
        "wall_seconds": test.wall_seconds,
    }


@dataclass
class Judgement:
    """The web side's conclusion about one executed job."""

    accepted: bool
    reason: str
    stage: str = "tested"  # filtered, compile_failed, tested
    object_size: int = 0
    mean_ram_bytes: float = 0.0
    mean_cpu_seconds: float = 0.0
    performance: float | None = None
    compiler_message: str = ""


def conclude(kind: Kind, vectors: Vectors, answer: dict, limits: ContestLimits) -> Judgement:
    """Verify a sandbox node's answer against what only the web side knows."""
    if answer.get("stage") != "tested":
        return Judgement(
            False,
            str(answer.get("message", "compilation failed")),
            stage="compile_failed",
            compiler_message=str(answer.get("message", "")),
        )
    message = str(answer.get("message", ""))
    if answer["verdict"] != "ok":
        return Judgement(
            False,
            f"{answer['verdict']}: {answer['reason']}",
            object_size=answer["object_size"],
            compiler_message=message,
        )
    outputs = [bytes.fromhex(h) for h in answer["outputs"]]
    wrong = kind.verify(vectors, outputs)
    if wrong is not None:
        return Judgement(
            False,
            f"wrong output: {wrong}",
            object_size=answer["object_size"],
            compiler_message=message,
        )
    # Per call, from wait4's rusage of the call's own process (the kernel's figures, read
    # by the harness's parent, in which no submitted code runs); trimmed as the reference.
    rams = [kib * 1024 for kib in answer["rss_kib"]]
    times = [ns / 1e9 for ns in answer["cpu_ns"]]
    mean_ram = scoring.trimmed_mean(rams)
    mean_time = scoring.trimmed_mean(times)
    perf = scoring.performance(
        answer["object_size"],
        limits.object_bytes,
        mean_ram,
        limits.run_memory_bytes,
        mean_time,
        limits.call_cpu_seconds,
    )
    return Judgement(
        True,
        "all vectors correct",
        object_size=answer["object_size"],
        mean_ram_bytes=mean_ram,
        mean_cpu_seconds=mean_time,
        performance=perf,
        compiler_message=message,
    )


def judge_locally(
    kind: Kind, source_bytes: bytes, vectors: Vectors, limits: ContestLimits
) -> tuple[Judgement, dict]:
    """Filter, compile, test and verify on this machine (the CLI's `judge`)."""
    try:
        source = sourcefilter.check_source(source_bytes, filter_rules(kind, limits))
    except SourceRejected as exc:
        return Judgement(False, exc.message, stage="filtered"), {"stage": "filtered"}
    answer = execute_job(make_payload(kind, source, vectors.inputs, limits))
    return conclude(kind, vectors, answer, limits), answer
