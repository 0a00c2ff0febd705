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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from functools import partial

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

    pending: dict[str, tuple[Indicator, list[Check]]] = {}
    for indicator in indicators:
        for check in checks:
            cached = cache.get(indicator.key, check.name) if cache is not None else None
            if cached is not None:
                deliver(indicator, cached)
            else:
                pending.setdefault(indicator.key, (indicator, []))[1].append(check)

    if not pending:
        return results
    # With enough indicators to keep every thread busy, one task runs all checks of one
    # indicator in turn, so later checks find the DNS answers of earlier ones in the
    # resolver's cache (MX, TXT); with few indicators, each check is its own task.
    if len(pending) >= workers:
        units = [(indicator, group) for indicator, group in pending.values()]
    else:
        units = [(indicator, [check]) for indicator, group in pending.values() for check in group]

    def finish(indicator: Indicator, result: CheckResult) -> None:
        if cache is not None:
            cache.put(indicator.key, result)
        deliver(indicator, result)

    if processes > 1 and make_checks is not None and len(units) > workers:
        for indicator, result in _run_in_processes(units, make_checks, processes, workers):
            finish(indicator, result)
        return results
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="lookup") as pool:
        # Submit lazily so a huge batch does not queue thousands of futures at once.
        queue = iter(units)
        running: dict[Future[list[CheckResult]], Indicator] = {}

        def submit_next() -> bool:
            item = next(queue, None)
            if item is None:
                return False
            indicator, group = item
            running[pool.submit(run_checks, group, indicator)] = indicator
            return True

        for _ in range(workers * 2):
            if not submit_next():
                break
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                indicator = running.pop(future)
                for result in future.result():
                    finish(indicator, result)
                submit_next()
    return results


def run_checks(checks: Sequence[Check], indicator: Indicator) -> list[CheckResult]:
    return [run_check(check, indicator) for check in checks]


def _process_main(
    make_checks: MakeChecks,
    tasks: multiprocessing.Queue,
    done: multiprocessing.Queue,
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

    def finished(future: Future[list[CheckResult]], task: tuple[str, str, tuple[str, ...]]) -> None:
        done.put((task[0], task[1], [result.to_dict() for result in future.result()]))
        slots.release()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lookup") as pool:
        while True:
            task = tasks.get()
            if task is None:
                break
            kind, value, names = task
            slots.acquire()
            future = pool.submit(
                run_checks, [checks[name] for name in names], Indicator(Kind(kind), value)
            )
            future.add_done_callback(partial(finished, task=task))


def _run_in_processes(
    units: list[tuple[Indicator, list[Check]]],
    make_checks: MakeChecks,
    processes: int,
    workers: int,
) -> Iterator[tuple[Indicator, CheckResult]]:
    # forkserver: children start from a clean process, not a fork of a threaded web worker.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    tasks = context.Queue()
    done = context.Queue()
    environment = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    by_key = {(i.kind.value, i.value): i for i, _ in units}
    expected = 0
    for indicator, group in units:
        tasks.put((indicator.kind.value, indicator.value, tuple(c.name for c in group)))
        expected += 1
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
    received = 0
    try:
        while received < expected:
            try:
                kind, value, results = done.get(timeout=5)
            except queue.Empty:
                if not any(child.is_alive() for child in children):
                    raise RuntimeError("lookup worker processes died") from None
                continue
            received += 1
            for data in results:
                yield by_key[(kind, value)], CheckResult.from_dict(data)
    finally:
        for child in children:
            child.join(timeout=5)
            if child.is_alive():
                child.terminate()
