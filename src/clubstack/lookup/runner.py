"""Run checks over a batch of indicators with bounded concurrency and the result cache.

Checks are I/O bound (DNS and HTTP round trips), so a thread pool is enough; each
(indicator, check) pair is one task. Results are handed to ``on_result`` in the calling
thread, which is where a job writes them to the database and updates the progress.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from clubstack.lookup.cache import ResultCache
from clubstack.lookup.findings import Check, CheckResult, Status, not_applicable
from clubstack.lookup.indicators import Indicator, Kind

log = logging.getLogger("clubstack.lookup.runner")

OnResult = Callable[[Indicator, CheckResult], None]
# Builds the checks inside a worker process; must be picklable (a module-level function
# or a functools.partial of one).
MakeChecks = Callable[[], Sequence[Check]]

ENV_PREFIX = "CLUBSTACK_"
_PRELOAD = [
    "clubstack.lookup.dnsrecords",
    "clubstack.lookup.mailsec",
    "clubstack.lookup.runner",
]


def run_check(check: Check, indicator: Indicator) -> CheckResult:
    """Run one check; a bug in a check becomes an error result, not a crashed batch."""
    if indicator.kind not in check.kinds:
        return not_applicable(check.name, f"not checked for {indicator.kind}")
    try:
        return check.run(indicator)
    except Exception:
        log.exception("check %s failed on %s", check.name, indicator.key)
        return CheckResult(check.name, Status.ERROR, summary="internal error in this check")


def run_lookups(
    indicators: Sequence[Indicator],
    checks: Sequence[Check],
    *,
    cache: ResultCache | None = None,
    workers: int = 32,
    on_result: OnResult | None = None,
    processes: int = 1,
    make_checks: MakeChecks | None = None,
) -> dict[str, dict[str, CheckResult]]:
    """All results as {indicator.key: {check.name: result}}.

    With ``processes > 1`` (and ``make_checks``) the work is spread over that many worker
    processes, each with ``workers`` threads: parsing DNS answers costs CPU, and one
    Python process cannot use more than one core for it.
    """
    results: dict[str, dict[str, CheckResult]] = {i.key: {} for i in indicators}

    def deliver(indicator: Indicator, result: CheckResult) -> None:
        results[indicator.key][result.check] = result
        if on_result is not None:
            on_result(indicator, result)

    pending: list[tuple[Indicator, Check]] = []
    for indicator in indicators:
        for check in checks:
            cached = cache.get(indicator.key, check.name) if cache is not None else None
            if cached is not None:
                deliver(indicator, cached)
            else:
                pending.append((indicator, check))

    if not pending:
        return results
    if processes > 1 and make_checks is not None and len(pending) > workers:
        for indicator, result in _run_in_processes(pending, make_checks, processes, workers):
            if cache is not None:
                cache.put(indicator.key, result)
            deliver(indicator, result)
        return results
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="lookup") as pool:
        # Submit lazily so a huge batch does not queue thousands of futures at once.
        queue = iter(pending)
        running: dict[Future[CheckResult], Indicator] = {}

        def submit_next() -> bool:
            item = next(queue, None)
            if item is None:
                return False
            indicator, check = item
            running[pool.submit(run_check, check, indicator)] = indicator
            return True

        for _ in range(workers * 2):
            if not submit_next():
                break
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                indicator = running.pop(future)
                result = future.result()
                if cache is not None:
                    cache.put(indicator.key, result)
                deliver(indicator, result)
                submit_next()
    return results


def _process_main(
    make_checks: MakeChecks,
    tasks: multiprocessing.Queue,  # type: ignore[type-arg]
    done: multiprocessing.Queue,  # type: ignore[type-arg]
    workers: int,
    environment: dict[str, str],
) -> None:
    """A worker process: pull (kind, value, check) tasks, run them on a thread pool."""
    # The fork server was started once, maybe with older settings: use the caller's.
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        del os.environ[key]
    os.environ.update(environment)
    checks = {check.name: check for check in make_checks()}
    slots = threading.BoundedSemaphore(workers * 2)

    def finished(future: Future[CheckResult], task: tuple[str, str, str]) -> None:
        done.put((task, future.result().to_dict()))
        slots.release()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lookup") as pool:
        while True:
            task = tasks.get()
            if task is None:
                break
            kind, value, name = task
            slots.acquire()
            future = pool.submit(run_check, checks[name], Indicator(Kind(kind), value))
            future.add_done_callback(lambda f, t=task: finished(f, t))


def _run_in_processes(
    pending: list[tuple[Indicator, Check]],
    make_checks: MakeChecks,
    processes: int,
    workers: int,
) -> list[tuple[Indicator, CheckResult]]:
    # forkserver: children start from a clean process, not a fork of a threaded web worker.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    tasks = context.Queue()
    done = context.Queue()
    environment = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    by_task = {(i.kind.value, i.value, c.name): i for i, c in pending}
    for kind, value, name in by_task:
        tasks.put((kind, value, name))
    children = [
        context.Process(
            target=_process_main,
            args=(make_checks, tasks, done, workers, environment),
        )
        for _ in range(processes)
    ]
    for child in children:
        tasks.put(None)
        child.start()
    out: list[tuple[Indicator, CheckResult]] = []
    try:
        while len(out) < len(by_task):
            try:
                task, data = done.get(timeout=5)
            except queue.Empty:
                if not any(child.is_alive() for child in children):
                    raise RuntimeError("lookup worker processes died") from None
                continue
            out.append((by_task[tuple(task)], CheckResult.from_dict(data)))
    finally:
        for child in children:
            child.join(timeout=5)
            if child.is_alive():
                child.terminate()
    return out
