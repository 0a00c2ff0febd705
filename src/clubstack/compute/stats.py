"""Sampling libvirt counters and turning them into rates for the graphs.

The sampler stores cumulative counters (CPU nanoseconds, bytes read/written/received/sent)
every minute; a graph point is the difference between two samples divided by the time
between them, as WebVirtCloud does. Samples older than a day are thinned to one per ten
minutes: the counters are cumulative, so deltas across the gaps stay exact averages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from clubstack.compute.errors import HostDownError, HypervisorError
from clubstack.compute.hosts import open_host
from clubstack.compute.models import ACTIVE, SUSPENDED, Capsul, CapsulSample, Host

RANGES = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}


def sample(session: Session, now: datetime) -> int:
    """Store one sample per running capsul on every host that answers."""
    stored = 0
    for host in session.scalars(select(Host).where(Host.up.is_(True))):
        try:
            with open_host(host) as hv:
                counters = hv.counters()
        except (HostDownError, HypervisorError):
            continue
        capsuls = {
            c.domain_name: c
            for c in session.scalars(
                select(Capsul).where(
                    Capsul.host_id == host.id, Capsul.status.in_((ACTIVE, SUSPENDED))
                )
            )
        }
        for name, c in counters.items():
            capsul = capsuls.get(name)
            if capsul is None:
                continue
            session.add(
                CapsulSample(
                    capsul_id=capsul.id,
                    at=now,
                    cpu_ns=c["cpu_ns"],
                    vcpus=c["vcpus"] or capsul.plan.vcpus,
                    mem_kib=c["mem_kib"],
                    disk_rd=c["disk_rd"],
                    disk_wr=c["disk_wr"],
                    net_rx=c["net_rx"],
                    net_tx=c["net_tx"],
                )
            )
            stored += 1
    session.flush()
    return stored


def prune(session: Session, now: datetime, keep_days: int) -> None:
    session.execute(delete(CapsulSample).where(CapsulSample.at < now - timedelta(days=keep_days)))
    # thin samples older than a day to one per 10 minutes
    old = session.scalars(
        select(CapsulSample).where(
            CapsulSample.at < now - timedelta(days=1), CapsulSample.at >= now - timedelta(days=2)
        )
    )
    for s in old:
        if s.at.minute % 10:
            session.delete(s)
    session.flush()


@dataclass(frozen=True)
class Point:
    at: datetime
    cpu_percent: float  # of the capsul's vCPUs
    mem_mib: float
    disk_read: float  # bytes per second
    disk_write: float
    net_rx: float
    net_tx: float


def _delta(cur: int, prev: int) -> int:
    # counters restart from zero when the QEMU process restarts (stop/start)
    return cur - prev if cur >= prev else cur


def rates(samples: list[CapsulSample]) -> list[Point]:
    points = []
    for prev, cur in pairwise(samples):
        seconds = (cur.at - prev.at).total_seconds()
        if seconds <= 0:
            continue
        cpu = _delta(cur.cpu_ns, prev.cpu_ns) / (seconds * 1e9 * max(cur.vcpus, 1)) * 100
        points.append(
            Point(
                at=cur.at,
                cpu_percent=min(cpu, 100.0),
                mem_mib=cur.mem_kib / 1024,
                disk_read=_delta(cur.disk_rd, prev.disk_rd) / seconds,
                disk_write=_delta(cur.disk_wr, prev.disk_wr) / seconds,
                net_rx=_delta(cur.net_rx, prev.net_rx) / seconds,
                net_tx=_delta(cur.net_tx, prev.net_tx) / seconds,
            )
        )
    return points


def series(session: Session, capsul_id: str, span: str, now: datetime) -> list[Point]:
    since = now - RANGES[span]
    samples = list(
        session.scalars(
            select(CapsulSample)
            .where(
                CapsulSample.capsul_id == capsul_id,
                CapsulSample.at >= since,
                CapsulSample.at <= now,
            )
            .order_by(CapsulSample.at)
        )
    )
    return rates(samples)
