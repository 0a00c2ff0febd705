"""Hosts, images and plans (the operator side), placement and host health."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from clubstack.compute import hypervisor
from clubstack.compute.errors import (
    ComputeError,
    HostDownError,
    HypervisorError,
    InputError,
    NoRoomError,
)
from clubstack.compute.models import LIVE_STATUSES, Capsul, Host, Image, Plan
from clubstack.compute.tinyguest import TinyGuest
from clubstack.core.clock import utcnow

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
NETWORK_RE = re.compile(r"^(none|user|network:[A-Za-z0-9_.-]{1,64}|bridge:[A-Za-z0-9_.-]{1,15})$")
URI_MAX = 255
URI_RE = re.compile(r"^(qemu|qemu\+ssh|qemu\+tcp|qemu\+tls|qemu\+unix|test)://[^\s<>\"']*$")


def _check_name(name: str, field: str = "name") -> str:
    if not NAME_RE.match(name or ""):
        raise InputError(fields={field: "Use 1-32 lowercase letters, digits, '.', '_' or '-'."})
    return name


def open_host(host: Host) -> hypervisor.Hypervisor:
    return hypervisor.Hypervisor(host.uri, **host.connection_args())


def probe_kernel(configured: str | None) -> str | None:
    if configured:
        return configured
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    return str(kernels[-1]) if kernels else None


def add_host(
    session: Session,
    name: str,
    uri: str,
    *,
    pool_path: str,
    network: str,
    pool_name: str = "clubstack",
    kernel: str | None = None,
    initrd: str | None = None,
) -> Host:
    """Register a host after connecting to it; refuses (saying why) when that fails."""
    _check_name(name)
    if not URI_RE.match(uri or ""):
        raise InputError(
            fields={
                "uri": "Use a libvirt URI such as qemu:///system or qemu+ssh://user@host/system."
            }
        )
    if len(uri) > URI_MAX:  # the column's size; PostgreSQL and MariaDB refuse longer ones
        raise InputError(
            fields={
                "uri": f"At most {URI_MAX} characters. Long SSH options (key file, port) can "
                "go in the clubstack user's ~/.ssh/config under a Host alias instead."
            }
        )
    if not NETWORK_RE.match(network):
        raise InputError(fields={"network": "none, user, network:NAME or bridge:NAME."})
    if session.scalar(select(Host).where(Host.name == name)):
        raise InputError(fields={"name": f"A host named {name} exists already."})
    host = Host(name=name, uri=uri, pool_name=pool_name, pool_path=pool_path, network=network)
    with open_host(host) as hv:  # raises HostDownError with libvirt's reason
        if not os.path.isabs(pool_path):
            raise InputError(fields={"pool_path": "Give an absolute path."})
        hv.check_network(network)
        hv.pool()
        cap = hv.capacity()
        kernel = probe_kernel(kernel)
        host.domain_type = (
            hv.detect_domain_type(kernel, initrd)
            if kernel
            else ("kvm" if hv.supports("kvm") else "qemu")
        )
    host.vcpus, host.memory_mib, host.disk_gib = cap.vcpus, cap.memory_mib, cap.disk_gib
    host.up, host.last_seen_at = True, utcnow()
    session.add(host)
    session.flush()
    return host


def remove_host(session: Session, name: str) -> None:
    host = session.scalar(select(Host).where(Host.name == name))
    if host is None:
        raise InputError(fields={"name": f"No host named {name}."})
    live = session.scalar(
        select(func.count())
        .select_from(Capsul)
        .where(Capsul.host_id == host.id, Capsul.status.in_(LIVE_STATUSES))
    )
    if live:
        raise ComputeError(f"Host {name} still runs {live} capsul(s); destroy or move them first.")
    session.execute(update(Capsul).where(Capsul.host_id == host.id).values(host_id=None))
    session.delete(host)
    session.flush()


def check_hosts(session: Session) -> list[Host]:
    """Mark hosts up or down (a host that stops answering is down) and refresh capacity."""
    for host in session.scalars(select(Host)):
        try:
            with open_host(host) as hv:
                if not hv.alive():
                    raise HostDownError(detail=f"{host.uri} stopped answering")
                cap = hv.capacity()
        except HypervisorError as exc:  # the detail: operators read this on the admin page
            host.up, host.last_error = False, exc.detail[:500]
            continue
        except Exception as exc:
            host.up, host.last_error = False, str(exc)[:500]
            continue
        host.vcpus, host.memory_mib, host.disk_gib = cap.vcpus, cap.memory_mib, cap.disk_gib
        host.up, host.last_error, host.last_seen_at = True, None, utcnow()
    session.flush()
    return list(session.scalars(select(Host).order_by(Host.name)))


@dataclass(frozen=True)
class Room:
    host: Host
    vcpus: int
    memory_mib: int
    disk_gib: int


def room(session: Session) -> list[Room]:
    """Free room on each host: its capacity minus what its live capsuls' plans take."""
    used = {
        host_id: (cpu or 0, mem or 0, disk or 0)
        for host_id, cpu, mem, disk in session.execute(
            select(
                Capsul.host_id,
                func.sum(Plan.vcpus),
                func.sum(Plan.memory_mib),
                func.sum(Plan.disk_gib),
            )
            .join(Plan, Plan.id == Capsul.plan_id)
            .where(Capsul.status.in_(LIVE_STATUSES), Capsul.host_id.is_not(None))
            .group_by(Capsul.host_id)
        )
    }
    out = []
    for host in session.scalars(select(Host).order_by(Host.name)):
        cpu, mem, disk = used.get(host.id, (0, 0, 0))
        # vCPUs may be overcommitted 4:1, as small VPS hosts do; memory and disk may not.
        out.append(Room(host, host.vcpus * 4 - cpu, host.memory_mib - mem, host.disk_gib - disk))
    return out


def place(session: Session, plan: Plan) -> Host:
    """The up host with the most free memory (then vCPUs) that fits the plan."""
    fits = [
        r
        for r in room(session)
        if r.host.up
        and r.vcpus >= plan.vcpus
        and r.memory_mib >= plan.memory_mib
        and r.disk_gib >= plan.disk_gib
    ]
    if not fits:
        raise NoRoomError()
    best = max(fits, key=lambda r: (r.memory_mib, r.vcpus, r.disk_gib, -r.host.id))
    return best.host


def add_image(
    session: Session,
    name: str,
    path: str,
    *,
    title: str = "",
    kernel: str | None = None,
    initrd: str | None = None,
    cmdline: str | None = None,
) -> Image:
    _check_name(name)
    if not os.path.isabs(path or ""):
        raise InputError(fields={"path": "Give the absolute path of a qcow2 image on the hosts."})
    if session.scalar(select(Image).where(Image.name == name)):
        raise InputError(fields={"name": f"An image named {name} exists already."})
    image = Image(
        name=name, path=path, title=title or name, kernel=kernel, initrd=initrd, cmdline=cmdline
    )
    session.add(image)
    session.flush()
    return image


def add_plan(
    session: Session,
    name: str,
    *,
    vcpus: int,
    memory_mib: int,
    disk_gib: int,
    price_month_cents: int,
) -> Plan:
    _check_name(name)
    problems = {}
    # the field names are what an operator typed (--vcpus, --memory ...), not column names
    for field, value, low, high, unit in (
        ("vCPUs", vcpus, 1, 64, ""),
        ("memory", memory_mib, 64, 2**20, " MiB"),
        ("disk", disk_gib, 1, 4096, " GiB"),
        ("price", price_month_cents, 0, 10**7, " cents a month"),
    ):
        if not isinstance(value, int) or not low <= value <= high:
            problems[field] = f"Must be a whole number from {low} to {high}{unit}."
    if problems:
        raise InputError(fields=problems)
    if session.scalar(select(Plan).where(Plan.name == name)):
        raise InputError(fields={"name": f"A plan named {name} exists already."})
    plan = Plan(
        name=name,
        vcpus=vcpus,
        memory_mib=memory_mib,
        disk_gib=disk_gib,
        price_month_cents=price_month_cents,
    )
    session.add(plan)
    session.flush()
    return plan


def add_demo(
    session: Session, guest: TinyGuest, *, name: str = "demo"
) -> tuple[Image, Plan | None]:
    """The tiny guest as image ``name`` and, when no plan exists, a small plan ``demo``.

    Idempotent: an image of that name is kept (its files are refreshed if the guest was
    rebuilt), a plan is added only on a site with none.
    """
    image = session.scalar(select(Image).where(Image.name == name))
    if image is None:
        image = add_image(
            session,
            name,
            str(guest.disk),
            title="Demo (tiny busybox guest)",
            kernel=str(guest.kernel),
            initrd=str(guest.initrd),
            cmdline=guest.cmdline,
        )
    elif image.kernel:
        image.path, image.kernel, image.initrd = (
            str(guest.disk),
            str(guest.kernel),
            str(guest.initrd),
        )
    plan = None
    if session.scalar(select(func.count()).select_from(Plan)) == 0:
        # the guest runs from its initramfs: 128 MiB and the smallest disk are plenty
        plan = add_plan(session, "demo", vcpus=1, memory_mib=128, disk_gib=1, price_month_cents=730)
    session.flush()
    return image, plan


@dataclass(frozen=True)
class Setup:
    """What a site has of what a capsul needs: a host, an active image, an active plan."""

    hosts: int
    images: int
    plans: int

    @property
    def ready(self) -> bool:
        return bool(self.hosts and self.images and self.plans)


def setup_status(session: Session) -> Setup:
    def count(model: type, *where: ColumnElement[bool]) -> int:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    return Setup(
        hosts=count(Host),
        images=count(Image, Image.active.is_(True)),
        plans=count(Plan, Plan.active.is_(True)),
    )
