"""Operator quotas shared by worker processes; the batch runner, its cache and processes."""

from __future__ import annotations

import multiprocessing
import time
from datetime import timedelta
from typing import Any

import pytest
from lookup_http import VT_KEY

from clubstack.lookup.cache import MemoryCache
from clubstack.lookup.dnsrecords import DnsCheck
from clubstack.lookup.findings import CheckResult, Status
from clubstack.lookup.indicators import Kind, parse_one
from clubstack.lookup.resolver import make_resolver
from clubstack.lookup.runner import run_lookups


def _vt_worker(provider_host: str, names: list[str], start: Any, out: Any) -> None:
    """A worker process: its own settings, database connection and HTTP client."""
    from clubstack.core.db import db
    from clubstack.core.net import HttpClient, Quota
    from clubstack.lookup.reputation import VirusTotalCheck
    from clubstack.settings import clear_settings_cache, get_settings

    clear_settings_cache()
    db.init(get_settings().sqlalchemy_url)
    check = VirusTotalCheck(
        HttpClient(allow_hosts=[provider_host], retries=0),
        VT_KEY,
        base_url=f"http://{provider_host}/vt/api/v3",
        quota=Quota("virustotal", [(4, 60), (500, 86400)]),
    )
    start.wait()
    out.put([check.run(parse_one(name)).status.value for name in names])


@pytest.mark.parametrize("store", ["database", "redis"])
def test_quota_is_shared_between_two_worker_processes(make_app, providers, store) -> None:
    make_app(redis=store == "redis")
    if time.time() % 60 >= 55:  # do not straddle the per-minute window
        time.sleep(61 - time.time() % 60)
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(2), context.Queue()
    names = [[f"a{i}.example.com" for i in range(5)], [f"b{i}.example.com" for i in range(5)]]
    workers = [
        context.Process(target=_vt_worker, args=(providers.host, chunk, start, out))
        for chunk in names
    ]
    for worker in workers:
        worker.start()
    statuses = out.get(timeout=60) + out.get(timeout=60)
    for worker in workers:
        worker.join(timeout=10)
    assert statuses.count("ok") == 4  # VirusTotal's free 4/minute, across both processes
    assert statuses.count("quota_exhausted") == 6
    assert providers.count("/vt/") == 4  # past the quota nothing was sent


def test_runner_runs_every_applicable_check_and_uses_the_cache(resolver) -> None:
    calls: list[str] = []

    class Counting(DnsCheck):
        def run(self, indicator):
            calls.append(indicator.value)
            return super().run(indicator)

    cache = MemoryCache(timedelta(minutes=5))
    found = [parse_one(v) for v in ("good.example.com", "192.0.2.10", "nx.example.com")]
    seen: list[tuple[str, str]] = []
    first = run_lookups(
        found,
        [Counting(resolver)],
        cache=cache,
        workers=4,
        on_result=lambda i, r: seen.append((i.value, r.check)),
    )
    assert sorted(calls) == ["192.0.2.10", "good.example.com", "nx.example.com"]
    assert len(seen) == 3
    assert first["domain:good.example.com"]["dns"].data["records"]["A"] == ["192.0.2.10"]
    second = run_lookups(found, [Counting(resolver)], cache=cache, workers=4)
    assert len(calls) == 3  # all from the cache
    assert second["domain:good.example.com"]["dns"].cached


def test_cache_expires_and_keeps_no_errors() -> None:
    now = [time.time()]
    from datetime import UTC, datetime

    cache = MemoryCache(timedelta(seconds=60), clock=lambda: datetime.fromtimestamp(now[0], UTC))
    ok = CheckResult("dns", summary="fine")
    cache.put("domain:a.example", ok)
    cache.put("domain:b.example", CheckResult("dns", Status.ERROR, summary="timeout"))
    cache.put("domain:c.example", CheckResult("vt", Status.QUOTA_EXHAUSTED))
    assert cache.get("domain:a.example", "dns").summary == "fine"
    assert cache.get("domain:b.example", "dns") is None
    assert cache.get("domain:c.example", "vt") is None
    now[0] += 61
    assert cache.get("domain:a.example", "dns") is None


def test_a_crashing_check_becomes_an_error_result(resolver) -> None:
    class Broken:
        name, title, kinds = "broken", "Broken", frozenset(Kind)

        def run(self, indicator):
            raise RuntimeError("bug")

    results = run_lookups([parse_one("a.example.com")], [Broken()], workers=2)
    assert results["domain:a.example.com"]["broken"].status is Status.ERROR


def _dns_checks(nameserver: str) -> list:
    return [DnsCheck(make_resolver([nameserver], timeout=1.0, lifetime=1.5))]


def test_runner_in_two_processes_gives_the_same_results(dns_server) -> None:
    import functools

    found = [parse_one(v) for v in ("good.example.com", "192.0.2.10", "db01.internal")] + [
        parse_one(f"h{i}.example.com") for i in range(10)
    ]
    make = functools.partial(_dns_checks, dns_server.nameserver)
    threaded = run_lookups(found, make(), workers=2)
    spread = run_lookups(found, make(), workers=2, processes=2, make_checks=make)
    assert set(spread) == set(threaded)
    for key in threaded:
        assert spread[key]["dns"].data == threaded[key]["dns"].data
