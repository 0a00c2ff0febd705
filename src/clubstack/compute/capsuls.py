"""Capsuls: request, provision (idempotent job), power actions, destroy, SSH keys.

Plain functions over a SQLAlchemy session; the views, the API, the CLI and the jobs all
call these, so every path goes through the same checks and the same billing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import struct
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clubstack.compute import billing_port, hypervisor
from clubstack.compute.errors import (
    CapsulNotFound,
    ComputeError,
    HostDownError,
    HypervisorError,
    InputError,
    InsufficientCredit,
    WrongState,
)
from clubstack.compute.hosts import open_host, place
from clubstack.compute.models import (
    ACTIVE,
    CREATING,
    DESTROYED,
    FAILED,
    HOURS_PER_MONTH,
    LIVE_STATUSES,
    SUSPENDED,
    Capsul,
    Image,
    Plan,
    SshKey,
)
from clubstack.core.clock import utcnow
from clubstack.core.errors import NotFound

HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
MAX_KEY_LENGTH = 8192
ACTIONS = ("start", "stop", "reboot", "force-off")


# --- SSH keys -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedKey:
    kind: str
    line: str  # normalised "type base64 [comment]"
    fingerprint: str


def parse_ssh_key(text: str) -> ParsedKey:
    """Check an OpenSSH public key line and compute its SHA256 fingerprint."""
    text = (text or "").strip()
    if not text:
        raise InputError(fields={"public_key": "Paste an SSH public key."})
    if len(text) > MAX_KEY_LENGTH or "\n" in text or "\r" in text:
        raise InputError(fields={"public_key": "Give exactly one key, on one line."})
    parts = text.split(None, 2)
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise InputError(fields={"public_key": "Not an OpenSSH public key (ssh-ed25519 AAAA...)."})
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        inner = blob[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise InputError(fields={"public_key": "The key data is not valid base64."}) from None
    if inner != parts[0]:
        raise InputError(fields={"public_key": "The key data does not match its type."})
    comment = parts[2] if len(parts) > 2 else ""
    if any(ord(c) < 32 for c in comment):
        raise InputError(fields={"public_key": "The comment has control characters."})
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    line = " ".join(p for p in (parts[0], parts[1], comment) if p)
    return ParsedKey(parts[0], line, f"SHA256:{digest}")


def add_ssh_key(session: Session, user_id: int, name: str, public_key: str) -> SshKey:
    parsed = parse_ssh_key(public_key)
    name = (name or "").strip() or parsed.line.split(None, 2)[-1][:64] or parsed.kind
    if len(name) > 64:
        raise InputError(fields={"name": "At most 64 characters."})
    if session.scalar(
        select(SshKey).where(SshKey.user_id == user_id, SshKey.fingerprint == parsed.fingerprint)
    ):
        raise InputError(fields={"public_key": "You added this key already."})
    key = SshKey(user_id=user_id, name=name, public_key=parsed.line, fingerprint=parsed.fingerprint)
    session.add(key)
    session.flush()
    return key


def ssh_keys(session: Session, user_id: int) -> list[SshKey]:
    return list(
        session.scalars(select(SshKey).where(SshKey.user_id == user_id).order_by(SshKey.id))
    )


def delete_ssh_key(session: Session, user_id: int, key_id: int) -> None:
    key = session.get(SshKey, key_id)
    if key is None or key.user_id != user_id:
        raise NotFound("No such SSH key.")
    session.delete(key)
    session.flush()


def _same_key(line: str) -> tuple[str, ...]:
    """A key's identity: its type and key material; the comment does not count."""
    return tuple(line.split()[:2])


def keys_for_capsul(
    session: Session, user_id: int, chosen_ids: Iterable[int], pasted: Iterable[str]
) -> list[str]:
    """The key lines for a new capsul: the member's own keys chosen by id, then those pasted;
    a key both chosen and pasted goes into cloud-init once. The pasted lines are checked
    by request_capsul."""
    saved = {k.id: k.public_key for k in ssh_keys(session, user_id)}
    chosen = list(chosen_ids)
    if any(i not in saved for i in chosen):
        raise InputError(fields={"ssh_key_ids": "Choose among your own keys."})
    keys: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for key in [saved[i] for i in chosen] + list(pasted):
        if _same_key(key) not in seen:
            seen.add(_same_key(key))
            keys.append(key)
    return keys


def keep_pasted_keys(session: Session, user_id: int, pasted: Iterable[str]) -> None:
    """Save keys pasted into the create form on the account (as Capsul does), unless the
    account holds them already (under any comment)."""
    known = {_same_key(k.public_key) for k in ssh_keys(session, user_id)}
    for text in pasted:
        parsed = parse_ssh_key(text)
        if _same_key(parsed.line) not in known:
            add_ssh_key(session, user_id, "", parsed.line)
            known.add(_same_key(parsed.line))


# --- lookups ------------------------------------------------------------------------------


def active_plans(session: Session) -> list[Plan]:
    """The plans a member can choose, cheapest first."""
    return list(
        session.scalars(select(Plan).where(Plan.active.is_(True)).order_by(Plan.price_month_cents))
    )


def active_images(session: Session) -> list[Image]:
    """The images a member can choose, by name."""
    return list(session.scalars(select(Image).where(Image.active.is_(True)).order_by(Image.name)))


def plan_by_name(session: Session, name: str) -> Plan:
    plan = session.scalar(select(Plan).where(Plan.name == str(name), Plan.active.is_(True)))
    if plan is None:
        raise InputError(fields={"plan": f"Unknown plan {str(name)[:40]!r}."})
    return plan


def image_by_name(session: Session, name: str) -> Image:
    image = session.scalar(select(Image).where(Image.name == str(name), Image.active.is_(True)))
    if image is None:
        raise InputError(fields={"image": f"Unknown image {str(name)[:40]!r}."})
    return image


def get_capsul(session: Session, capsul_id: str, user_id: int | None = None) -> Capsul:
    """A live capsul; with user_id, only one of that member's (others' look nonexistent)."""
    capsul = session.get(Capsul, str(capsul_id)[:32]) if capsul_id else None
    if (
        capsul is None
        or capsul.status == DESTROYED
        or (user_id is not None and capsul.user_id != user_id)
    ):
        raise CapsulNotFound()
    return capsul


def member_capsuls(session: Session, user_id: int) -> list[Capsul]:
    return list(
        session.scalars(
            select(Capsul)
            .where(Capsul.user_id == user_id, Capsul.status != DESTROYED)
            .order_by(Capsul.created_at, Capsul.id)
        )
    )


def hourly_burn(session: Session, user_id: int) -> int:
    """Cents per hour the member's billed capsuls cost (suspended and failed ones are not)."""
    prices = session.scalars(
        select(Plan.price_month_cents)
        .join(Capsul, Capsul.plan_id == Plan.id)
        .where(Capsul.user_id == user_id, Capsul.status.in_((CREATING, ACTIVE)))
    )
    return sum(-(-p // HOURS_PER_MONTH) for p in prices)


# --- creation -----------------------------------------------------------------------------


def check_hostname(name: str) -> str:
    name = (name or "").strip().lower()
    if not name:
        raise InputError(fields={"name": "Give the capsul a name."})
    if len(name) > 63:
        raise InputError(fields={"name": "At most 63 characters."})
    if not HOSTNAME_RE.match(name):
        raise InputError(fields={"name": "Use letters, digits and '-' (a hostname)."})
    return name


def request_capsul(
    session: Session,
    user_id: int,
    *,
    plan: str,
    image: str,
    name: str,
    keys: Iterable[str],
    min_credit_hours: int,
    max_capsuls: int,
) -> Capsul:
    """Check everything and place the capsul; the caller enqueues provision() after commit.

    Refuses unknown plans/images, bad names and keys, too little credit and full hosts.
    """
    problems: dict[str, str] = {}
    chosen_plan = chosen_image = None
    try:
        chosen_plan = plan_by_name(session, plan)
    except InputError as exc:
        problems.update(exc.fields)
    try:
        chosen_image = image_by_name(session, image)
    except InputError as exc:
        problems.update(exc.fields)
    try:
        name = check_hostname(name)
    except InputError as exc:
        problems.update(exc.fields)
    lines = []
    for text in keys:
        try:
            lines.append(parse_ssh_key(text).line)
        except InputError as exc:
            problems.update(exc.fields)
    if not lines and "public_key" not in problems:
        problems["ssh_keys"] = "Choose or add at least one SSH key."
    if problems:
        raise InputError(fields=problems)
    assert chosen_plan is not None and chosen_image is not None
    live = session.scalar(
        select(func.count())
        .select_from(Capsul)
        .where(Capsul.user_id == user_id, Capsul.status.in_(LIVE_STATUSES))
    )
    if (live or 0) >= max_capsuls:
        raise WrongState(f"You have {live} capsuls, the most one member may have.")
    burn = hourly_burn(session, user_id) + chosen_plan.price_hour_cents
    needed = burn * min_credit_hours
    have = billing_port.balance(session, user_id)
    if have < needed:
        raise InsufficientCredit(
            f"Your credit ({have / 100:.2f}) does not cover {min_credit_hours} hours of your "
            f"capsuls with this one ({needed / 100:.2f}); add credit first."
        )
    host = place(session, chosen_plan)
    capsul = Capsul(
        user_id=user_id,
        host_id=host.id,
        plan_id=chosen_plan.id,
        image_id=chosen_image.id,
        name=name,
        domain_name=f"capsul-{secrets.token_hex(5)}",
        uuid=str(uuid.uuid4()),
        status=CREATING,
        progress="queued",
        ssh_keys="\n".join(lines),
    )
    capsul.billed_until = capsul.created_at = utcnow()
    session.add(capsul)
    session.flush()
    return capsul


def _progress(
    session: Session, capsul: Capsul, text: str, commit: Callable[[], None] | None
) -> None:
    capsul.progress = text
    session.flush()
    if commit:
        commit()  # so a member watching the status page sees each step


@dataclass(frozen=True)
class SshForwarding:
    """Where hosts with user networking forward capsuls' SSH ports (compute settings)."""

    low: int = 22000
    high: int = 22999
    address: str = "127.0.0.1"

    @classmethod
    def parse(cls, ports: str, address: str) -> SshForwarding:
        low, _, high = ports.partition("-")
        return cls(int(low), int(high), address)


def domain_spec(
    capsul: Capsul,
    hv: hypervisor.Hypervisor,
    disk: str,
    seed: str,
    forwarding: SshForwarding | None = None,
) -> hypervisor.DomainSpec:
    assert capsul.host is not None
    ssh_port = None
    forwarding = forwarding or SshForwarding()
    if capsul.host.network == "user":
        ssh_port = hv.free_forward_port(forwarding.low, forwarding.high)
    return hypervisor.DomainSpec(
        ssh_port=ssh_port,
        ssh_address=forwarding.address,
        name=capsul.domain_name,
        uuid=capsul.uuid,
        capsul_id=capsul.id,
        owner_id=str(capsul.user_id),
        vcpus=capsul.plan.vcpus,
        memory_mib=capsul.plan.memory_mib,
        disk_path=disk,
        seed_path=seed,
        console_log=f"{hv.pool_path}/{hypervisor.console_volume(capsul.domain_name)}",
        domain_type=capsul.host.domain_type,
        network=capsul.host.network,
        kernel=capsul.image.kernel,
        initrd=capsul.image.initrd,
        cmdline=capsul.image.cmdline,
    )


def provision(
    session: Session,
    capsul_id: str,
    commit: Callable[[], None] | None = None,
    forwarding: SshForwarding | None = None,
) -> Capsul:
    """Create the disk and seed, define and start the domain. Safe to run again.

    Every step checks what exists first, so a retried job (worker killed, host hiccup)
    finishes the work instead of doing it twice.
    """
    capsul = session.get(Capsul, capsul_id)
    if capsul is None or capsul.status == DESTROYED:
        return capsul  # type: ignore[return-value]
    if capsul.host is None:
        raise ComputeError("capsul has no host")
    name = capsul.domain_name
    try:
        with open_host(capsul.host) as hv:
            _progress(session, capsul, "creating the disk", commit)
            disk = hv.create_overlay(
                hypervisor.disk_volume(name), capsul.image.path, capsul.plan.disk_gib
            )
            _progress(session, capsul, "writing the cloud-init seed", commit)
            seed = hv.create_seed(
                hypervisor.seed_volume(name),
                instance_id=capsul.id,
                hostname=capsul.name,
                ssh_keys=capsul.key_list,
            )
            _progress(session, capsul, "defining the virtual machine", commit)
            if hv.lookup(name) is None:
                hv.define(domain_spec(capsul, hv, disk, seed, forwarding))
            _progress(session, capsul, "starting", commit)
            hv.start(name)
            _read_network(hv, capsul)
    except (HypervisorError, HostDownError) as exc:
        capsul.status, capsul.error = FAILED, exc.message[:500]
        capsul.progress = "failed"
        session.flush()
        if commit:
            commit()  # keep the failure on record: the job's session is rolled back next
        raise
    if capsul.status == FAILED:  # billing starts when a retried creation succeeds
        capsul.billed_until = utcnow()
    capsul.status, capsul.error, capsul.progress = ACTIVE, None, "running"
    capsul.started_at = utcnow()
    session.flush()
    return capsul


# --- actions ------------------------------------------------------------------------------


def act(session: Session, capsul: Capsul, action: str, *, stop_timeout: float = 60.0) -> str:
    """start | stop | reboot | force-off; returns the state afterwards."""
    if action not in ACTIONS:
        raise InputError(fields={"action": f"One of {', '.join(ACTIONS)}."})
    if capsul.status == CREATING:
        raise WrongState("The capsul is still being created.")
    if capsul.status == SUSPENDED and action == "start":
        if billing_port.balance(session, capsul.user_id) <= 0:
            raise InsufficientCredit("Add credit before starting this capsul again.")
        capsul.status, capsul.suspended_at = ACTIVE, None
        capsul.billed_until = utcnow()
    assert capsul.host is not None
    with open_host(capsul.host) as hv:
        name = capsul.domain_name
        if hv.lookup(name) is None:
            raise WrongState(
                "The virtual machine is missing on its host; an administrator has been told."
            )
        if action == "start":
            hv.start(name)
            capsul.started_at = utcnow()
        elif action == "stop":
            hv.stop(name, timeout=stop_timeout)
        elif action == "reboot":
            if hv.state(name) != "running":
                raise WrongState("Only a running capsul can be rebooted.")
            hv.reboot(name)
            capsul.started_at = utcnow()
        else:
            hv.force_off(name)
        _read_network(hv, capsul)
    session.flush()
    return capsul.state


def request_stop(session: Session, capsul: Capsul) -> None:
    """Press the ACPI power button now; a job waits and forces the VM off if needed."""
    if capsul.status == CREATING:
        raise WrongState("The capsul is still being created.")
    assert capsul.host is not None
    with open_host(capsul.host) as hv:
        if hv.lookup(capsul.domain_name) is None:
            raise WrongState(
                "The virtual machine is missing on its host; an administrator has been told."
            )
        hv.request_shutdown(capsul.domain_name)
        capsul.state = hv.state(capsul.domain_name)
    session.flush()


def refresh(session: Session, capsul: Capsul) -> Capsul:
    """Read state, addresses and SSH host keys from the host (for the status page)."""
    if capsul.host is None or capsul.status in (CREATING, DESTROYED):
        return capsul
    try:
        with open_host(capsul.host) as hv:
            _read_network(hv, capsul)
            keys = hypervisor.host_key_fingerprints(hv.console_log(capsul.domain_name))
            if keys:
                capsul.host_keys = "\n".join(keys)
    except (HostDownError, HypervisorError):
        capsul.state = "unknown"
    session.flush()
    return capsul


def _read_network(hv: hypervisor.Hypervisor, capsul: Capsul) -> None:
    """State, IP addresses (DHCP lease, guest agent or ARP) and the SSH port forward."""
    capsul.state = hv.state(capsul.domain_name)
    capsul.addresses = ",".join(hv.addresses(capsul.domain_name))[:500]
    forward = hv.ssh_forward(capsul.domain_name)
    capsul.ssh_forward = f"{forward[0]}:{forward[1]}" if forward else ""


def ssh_endpoint(capsul: Capsul) -> tuple[str, int] | None:
    """(host, port) a member runs ssh against when the capsul's host forwards a port to it.

    A forward on all addresses (0.0.0.0) is reached at the host's own name from its URI.
    """
    if not capsul.ssh_forward or capsul.host is None:
        return None
    address, _, port = capsul.ssh_forward.rpartition(":")
    if address in ("0.0.0.0", "::"):  # noqa: S104 - naming what QEMU listens on
        address = urlsplit(capsul.host.uri).hostname or address
    return address, int(port)


def console(capsul: Capsul) -> str:
    if capsul.host is None:
        return ""
    with open_host(capsul.host) as hv:
        return hv.console_log(capsul.domain_name)


def destroy(session: Session, capsul: Capsul) -> None:
    """Delete the VM and its disk for good. Safe to repeat."""
    if capsul.host is not None:
        with open_host(capsul.host) as hv:
            hv.destroy(capsul.domain_name, hypervisor.capsul_volumes(capsul.domain_name))
    capsul.status, capsul.state, capsul.progress = DESTROYED, "destroyed", "destroyed"
    capsul.addresses = capsul.ssh_forward = ""
    capsul.destroyed_at = utcnow()
    session.flush()
