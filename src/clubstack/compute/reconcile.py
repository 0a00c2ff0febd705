"""Keep the database and the hosts in sync, as Capsul's "VMs and DB are in sync" check.

For every host that answers: VMs the database knows but the host lost (vanished), VMs
nobody owns (foreign: not made by us; orphan: ours but not in the database or already
destroyed), and state drift. Safe fixes are made (record the real state, delete what a
destroyed capsul left behind, stop a suspended capsul that runs again); everything else
becomes a finding on the admin page and in one mail to the administrators.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from clubstack.compute import hypervisor
from clubstack.compute.errors import HostDownError, HypervisorError
from clubstack.compute.hosts import open_host
from clubstack.compute.models import (
    CREATING,
    DESTROYED,
    LIVE_STATUSES,
    SUSPENDED,
    Capsul,
    Finding,
    Host,
)
from clubstack.core.accounts.models import User
from clubstack.core.clock import utcnow
from clubstack.core.mail import send_mail

log = logging.getLogger("clubstack.compute.reconcile")


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    hosts_down: list[str] = field(default_factory=list)
    newly_down: list[str] = field(default_factory=list)

    def kinds(self) -> set[tuple[str, str]]:
        return {(f.kind, f.domain_name) for f in self.findings}


def _note(
    session: Session,
    report: Report,
    host: Host,
    kind: str,
    domain: str,
    detail: str,
    capsul_id: str | None = None,
    fixed: bool = False,
) -> None:
    finding = session.scalar(
        select(Finding).where(
            Finding.host_id == host.id, Finding.kind == kind, Finding.domain_name == domain
        )
    )
    now = utcnow()
    if finding is None or finding.resolved_at is not None:
        if finding is None:
            finding = Finding(
                host_id=host.id,
                kind=kind,
                domain_name=domain,
                first_seen_at=now,
                detail=detail[:500],
            )
            session.add(finding)
            session.flush()  # an id, so the resolve step below knows it was seen
        finding.first_seen_at, finding.resolved_at, finding.mailed_at = now, None, None
    finding.detail, finding.capsul_id, finding.fixed = detail[:500], capsul_id, fixed
    finding.last_seen_at = now
    report.findings.append(finding)
    if fixed:
        report.fixed.append(f"{kind} {domain}")


def reconcile(session: Session, *, mail: bool = True) -> Report:
    report = Report()
    seen: set[int] = set()
    for host in session.scalars(select(Host).order_by(Host.name)):
        try:
            with open_host(host) as hv:
                domains = {d.name: d for d in hv.list_domains()}
                _reconcile_host(session, report, host, hv, domains)
        except (HostDownError, HypervisorError) as exc:
            if host.up:  # mail once when it goes down, not on every run
                report.newly_down.append(host.name)
            host.up, host.last_error = False, exc.detail[:500]
            report.hosts_down.append(host.name)
            continue
        host.up, host.last_seen_at = True, utcnow()
        seen.add(host.id)
    # findings on hosts we looked at that were not seen again are resolved
    current = {f.id for f in report.findings}
    for finding in session.scalars(select(Finding).where(Finding.resolved_at.is_(None))):
        if finding.host_id in seen and finding.id not in current:
            finding.resolved_at = utcnow()
    session.flush()
    if mail:
        _mail_admins(session, report)
    return report


def _reconcile_host(
    session: Session,
    report: Report,
    host: Host,
    hv: hypervisor.Hypervisor,
    domains: dict[str, hypervisor.DomainInfo],
) -> None:
    capsuls = {
        c.domain_name: c for c in session.scalars(select(Capsul).where(Capsul.host_id == host.id))
    }
    session.flush()
    for name, capsul in capsuls.items():
        if capsul.status not in LIVE_STATUSES or capsul.status == CREATING:
            continue
        dom = domains.get(name)
        if dom is None:
            capsul.state = "missing"
            _note(
                session,
                report,
                host,
                "vanished",
                name,
                f"capsul {capsul.id} ({capsul.name}) of user {capsul.user_id} is in the "
                "database but its VM is gone from the host",
                capsul.id,
            )
            continue
        if capsul.status == SUSPENDED and dom.state == "running":
            hv.force_off(name)
            _note(
                session,
                report,
                host,
                "drift",
                name,
                f"suspended capsul {capsul.id} was running; forced off",
                capsul.id,
                fixed=True,
            )
            capsul.state = "stopped"
        elif capsul.state != dom.state:
            _note(
                session,
                report,
                host,
                "drift",
                name,
                f"database said {capsul.state}, host says {dom.state}; recorded",
                capsul.id,
                fixed=True,
            )
            capsul.state = dom.state
    for name, dom in domains.items():
        known = capsuls.get(name)
        if known is not None and known.status in LIVE_STATUSES:
            continue
        if dom.capsul_id is None:
            _note(
                session,
                report,
                host,
                "foreign",
                name,
                f"VM {name} ({dom.state}) was not made by clubstack; left alone",
            )
        elif known is not None and known.status == DESTROYED:
            hv.destroy(name, hypervisor.capsul_volumes(name))
            _note(
                session,
                report,
                host,
                "orphan",
                name,
                f"capsul {known.id} was destroyed but its VM remained; deleted it",
                known.id,
                fixed=True,
            )
        else:
            _note(
                session,
                report,
                host,
                "orphan",
                name,
                f"VM {name} carries capsul id {dom.capsul_id} (owner {dom.owner_id}) that the "
                "database does not know; left alone",
                dom.capsul_id,
            )


def _mail_admins(session: Session, report: Report) -> None:
    new = [f for f in report.findings if not f.fixed and f.mailed_at is None]
    if not new and not report.newly_down:
        return
    lines = [f"- [{f.kind}] {f.host.name}: {f.domain_name}: {f.detail}" for f in new]
    lines += [f"- host {name} does not answer" for name in report.newly_down]
    text = (
        "The compute reconcile job found differences between the database and the "
        "hosts that it did not fix:\n\n" + "\n".join(lines) + "\n"
    )
    for admin in session.scalars(select(User).where(User.role == "admin")):
        send_mail(admin.email, f"Compute: {len(lines)} problem(s) need a look", text)
    now = utcnow()
    for finding in new:
        finding.mailed_at = now
    session.flush()
