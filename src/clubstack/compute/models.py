"""Tables of the compute service: hosts, images, plans, SSH keys, capsuls, samples, findings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clubstack.core.clock import utcnow
from clubstack.core.db import Base, UTCDateTime, random_id

HOURS_PER_MONTH = 730  # 365 * 24 / 12: how Capsul turns a monthly price into an hourly one

# Lifecycle of a capsul as the service sees it (the hypervisor state is `state`).
CREATING = "creating"
ACTIVE = "active"
SUSPENDED = "suspended"  # stopped because the member's credit ran out
FAILED = "failed"
DESTROYED = "destroyed"
LIVE_STATUSES = (CREATING, ACTIVE, SUSPENDED, FAILED)


class Host(Base):
    __tablename__ = "compute_hosts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    uri: Mapped[str] = mapped_column(String(255))
    pool_name: Mapped[str] = mapped_column(String(64), default="clubstack")
    pool_path: Mapped[str] = mapped_column(String(255))
    network: Mapped[str] = mapped_column(String(128), default="none")
    domain_type: Mapped[str] = mapped_column(String(8), default="qemu")  # kvm | qemu
    vcpus: Mapped[int] = mapped_column(Integer, default=0)
    memory_mib: Mapped[int] = mapped_column(Integer, default=0)
    disk_gib: Mapped[int] = mapped_column(Integer, default=0)
    up: Mapped[bool] = mapped_column(Boolean, default=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def connection_args(self) -> dict[str, str]:
        return {"pool_name": self.pool_name, "pool_path": self.pool_path}


class Image(Base):
    """An operating system template: a qcow2 base image (path on every host)."""

    __tablename__ = "compute_images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(128), default="")
    path: Mapped[str] = mapped_column(String(500))
    # Direct kernel boot, for images without a boot loader (the tiny test guest, netboot).
    kernel: Mapped[str | None] = mapped_column(String(500))
    initrd: Mapped[str | None] = mapped_column(String(500))
    cmdline: Mapped[str | None] = mapped_column(String(500))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Plan(Base):
    __tablename__ = "compute_plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mib: Mapped[int] = mapped_column(Integer)
    disk_gib: Mapped[int] = mapped_column(Integer)
    price_month_cents: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    @property
    def price_hour_cents(self) -> int:
        """Whole cents per hour, rounded up so a month never costs less than announced."""
        return -(-self.price_month_cents // HOURS_PER_MONTH)


class SshKey(Base):
    """A member's SSH public key, kept on the account and offered at every creation."""

    __tablename__ = "compute_ssh_keys"
    __table_args__ = (UniqueConstraint("user_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA256:base64, as ssh-keygen -l
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Capsul(Base):
    __tablename__ = "compute_capsuls"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=random_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    host_id: Mapped[int | None] = mapped_column(ForeignKey("compute_hosts.id"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("compute_plans.id"))
    image_id: Mapped[int] = mapped_column(ForeignKey("compute_images.id"))
    name: Mapped[str] = mapped_column(String(63))  # the guest's hostname
    domain_name: Mapped[str] = mapped_column(String(64), unique=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=CREATING, index=True)
    state: Mapped[str] = mapped_column(String(16), default="unknown")  # last seen in libvirt
    progress: Mapped[str] = mapped_column(String(200), default="queued")
    error: Mapped[str | None] = mapped_column(String(500))
    ssh_keys: Mapped[str] = mapped_column(Text, default="")  # the keys put in the seed
    addresses: Mapped[str] = mapped_column(String(500), default="")  # comma separated
    host_keys: Mapped[str] = mapped_column(Text, default="")  # SSH host key fingerprints
    # user networking: "address:port" of the host that QEMU forwards to the guest's port 22
    ssh_forward: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # for the uptime
    billed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    host: Mapped[Host | None] = relationship(lazy="joined")
    plan: Mapped[Plan] = relationship(lazy="joined")
    image: Mapped[Image] = relationship(lazy="joined")

    @property
    def address_list(self) -> list[str]:
        return [a for a in self.addresses.split(",") if a]

    @property
    def key_list(self) -> list[str]:
        return [k for k in self.ssh_keys.splitlines() if k]

    @property
    def host_key_list(self) -> list[str]:
        return [k for k in self.host_keys.splitlines() if k]


class ConsoleSession(Base):
    """One use of a capsul's interactive console: its one-time ticket, then the audit record
    (who, which capsul, when, how many bytes; never what was typed or printed)."""

    __tablename__ = "compute_console_sessions"
    __table_args__ = (Index("ix_compute_console_sessions_open", "ended_at", "started_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=random_id)  # ticket
    capsul_id: Mapped[str] = mapped_column(
        ForeignKey("compute_capsuls.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the ticket was used
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)  # typed by the member
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)  # printed by the guest
    end_reason: Mapped[str] = mapped_column(String(32), default="")


class CapsulSample(Base):
    """Cumulative libvirt counters of one capsul at one time; graphs use the deltas."""

    __tablename__ = "compute_samples"
    __table_args__ = (Index("ix_compute_samples_capsul_at", "capsul_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    capsul_id: Mapped[str] = mapped_column(ForeignKey("compute_capsuls.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    cpu_ns: Mapped[int] = mapped_column(BigInteger)
    vcpus: Mapped[int] = mapped_column(Integer)
    mem_kib: Mapped[int] = mapped_column(BigInteger)
    disk_rd: Mapped[int] = mapped_column(BigInteger)
    disk_wr: Mapped[int] = mapped_column(BigInteger)
    net_rx: Mapped[int] = mapped_column(BigInteger)
    net_tx: Mapped[int] = mapped_column(BigInteger)


class Finding(Base):
    """Something the reconcile job found that the database and a host disagree on."""

    __tablename__ = "compute_findings"
    __table_args__ = (UniqueConstraint("host_id", "kind", "domain_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("compute_hosts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # vanished | foreign | orphan | drift
    domain_name: Mapped[str] = mapped_column(String(128))
    capsul_id: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(500))
    fixed: Mapped[bool] = mapped_column(Boolean, default=False)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    mailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    host: Mapped[Host] = relationship(lazy="joined")
