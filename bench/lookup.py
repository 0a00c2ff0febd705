"""Benchmark: 1,000 distinct domains, full DNS + mail-security checks, against a local
authoritative DNS server that adds 20 ms to every answer.

Target (issue #4): the batch completes in <= 10 s on the 2-core machine. The baseline is
the same checks run one indicator after another; running 1,000 of them that way takes
minutes, so the baseline is measured on a sample of distinct domains in the same run and
scaled to 1,000 (printed as such).

Run: python bench/lookup.py [--domains 1000] [--workers 96] [--sample 40]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "lookup")]

from clubstack.lookup.dnsrecords import DnsCheck  # noqa: E402
from clubstack.lookup.indicators import Indicator, Kind  # noqa: E402
from clubstack.lookup.mailsec import MailSecurityCheck  # noqa: E402
from clubstack.lookup.resolver import make_resolver  # noqa: E402
from clubstack.lookup.runner import run_lookups  # noqa: E402

TARGET_SECONDS = 10.0
LATENCY = float(os.environ.get("BENCH_DNS_LATENCY", "0.020"))


def zone_for(count: int) -> str:
    lines = ["$TTL 300"]
    for i in range(count):
        d = f"bench{i:05d}.example"
        spf = "v=spf1 ip4:192.0.2.0/24 -all" if i % 3 else f"v=spf1 include:_spf.{d} ~all"
        lines += [
            f"{d}. IN SOA ns1.{d}. hostmaster.{d}. 1 7200 3600 1209600 300",
            f"{d}. IN NS ns1.{d}.",
            f"{d}. IN A 192.0.2.{i % 250 + 1}",
            f"{d}. IN AAAA 2001:db8::{i % 65000 + 1:x}",
            f"{d}. IN MX 10 mx.{d}.",
            f'{d}. IN TXT "{spf}"',
            f'_spf.{d}. IN TXT "v=spf1 ip4:198.51.100.0/24 -all"',
            f"mx.{d}. IN A 192.0.2.25",
        ]
        if i % 4:
            lines.append(f'_dmarc.{d}. IN TXT "v=DMARC1; p=reject; rua=mailto:d@{d}"')
        if i % 10 == 0:
            lines.append(f'_smtp._tls.{d}. IN TXT "v=TLSRPTv1; rua=mailto:t@{d}"')
    return "\n".join(lines)


class _FastDNS(asyncio.DatagramProtocol):
    """Answers from the fixture ZoneResolver, each answer sent LATENCY seconds late.

    dnslib's own server starts a thread per query and re-encodes every answer; at 1,000+
    queries a second that server, not the code under test, would be what we measure. So
    answers are built once per question with the same ZoneResolver the tests use, cached
    as wire bytes, and sent with the query id patched in, after a timer instead of a
    sleeping thread.
    """

    def __init__(self, resolver: object) -> None:
        self.resolver = resolver
        self.answers: dict[bytes, bytes] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        from dnslib import DNSRecord

        end = 12
        while end < len(data) and data[end]:
            end += data[end] + 1
        key = data[12 : end + 5].lower()
        answer = self.answers.get(key)
        if answer is None:
            answer = self.resolver.resolve(DNSRecord.parse(data), None).pack()
            self.answers[key] = answer
        reply = data[:2] + answer[2:]
        asyncio.get_running_loop().call_later(LATENCY, self.transport.sendto, reply, addr)


def serve(count: int, ready: multiprocessing.synchronize.Event, port_box: object) -> None:
    from lookup_dns import ZoneResolver

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _FastDNS(ZoneResolver(zone_for(count))), local_addr=("127.0.0.1", 0)
        )
        port_box.value = transport.get_extra_info("sockname")[1]  # type: ignore[attr-defined]
        ready.set()
        await asyncio.sleep(3600)

    asyncio.run(main())


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def checks_for(nameserver: str) -> list:
    # A fresh resolver (and so a cold resolver cache) for every measured run.
    resolver = make_resolver([nameserver], timeout=2.0, lifetime=4.0)
    return [DnsCheck(resolver), MailSecurityCheck(resolver, fetch_policy=None)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--sample", type=int, default=40)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()

    total = args.domains + args.sample
    ready = multiprocessing.Event()
    port_box = multiprocessing.Value("i", 0)
    # The DNS server runs in its own process so it has its own core and GIL, like a real one.
    server = multiprocessing.Process(target=serve, args=(total, ready, port_box), daemon=True)
    server.start()
    if not ready.wait(30):
        print("DNS server did not start", file=sys.stderr)
        return 1
    nameserver = f"127.0.0.1:{port_box.value}"
    domains = [Indicator(Kind.DOMAIN, f"bench{i:05d}.example") for i in range(total)]
    batch, sample = domains[: args.domains], domains[args.domains :]
    try:
        start, cpu = time.perf_counter(), time.process_time()
        results = run_lookups(sample, checks_for(nameserver), workers=1)
        sequential = time.perf_counter() - start
        sequential_cpu = (time.process_time() - cpu) / len(sample)
        per_domain = sequential / len(sample)

        server_cpu_before = _cpu_seconds(server.pid)
        start, cpu = time.perf_counter(), time.process_time()
        results = run_lookups(
            batch,
            checks_for(nameserver),
            workers=args.workers,
            processes=args.processes,
            make_checks=functools.partial(checks_for, nameserver),
        )
        parallel = time.perf_counter() - start
        client_cpu = time.process_time() - cpu
        server_cpu = _cpu_seconds(server.pid) - server_cpu_before
    finally:
        server.terminate()

    errors = sum(1 for row in results.values() for r in row.values() if r.status.value == "error")
    estimated = per_domain * args.domains
    print(f"domains: {args.domains}, checks: DNS + mail security, latency {LATENCY * 1000:.0f} ms")
    print(
        f"sequential (sample of {len(sample)}): {per_domain * 1000:.0f} ms/domain "
        f"-> {estimated:.1f} s for {args.domains} (CPU {sequential_cpu * 1000:.1f} ms/domain)"
    )
    print(
        f"batch with {args.processes} processes x {args.workers} threads: {parallel:.2f} s "
        f"(errors: {errors}, CPU of the coordinating process {client_cpu:.1f} s, "
        f"DNS server {server_cpu:.1f} s)"
    )
    print(f"speed-up vs sequential: {estimated / parallel:.1f}x")
    load = os.getloadavg()[0]
    print(f"machine load average (1 min) at the end: {load:.1f} on {os.cpu_count()} cores")
    verdict = "MET" if parallel <= TARGET_SECONDS else "MISSED"
    print(f"target <= {TARGET_SECONDS:.0f} s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
