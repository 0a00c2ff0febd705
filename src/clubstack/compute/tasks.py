"""Background jobs of the compute service (Huey)."""

from __future__ import annotations

import logging

from huey import crontab

from clubstack.compute import billing_port, capsuls, hosts, metering, reconcile, stats
from clubstack.compute.models import ACTIVE, SUSPENDED, Capsul
from clubstack.compute.settings import ComputeSettings
from clubstack.core.clock import utcnow
from clubstack.core.db import session_scope
from clubstack.core.jobs import huey
from clubstack.settings import service_settings

log = logging.getLogger("clubstack.compute.tasks")
billing_port.register_burn()  # this module is loaded by the web app and by the worker


def run_provision(capsul_id: str) -> None:
    settings = service_settings(ComputeSettings)
    forwarding = capsuls.SshForwarding.parse(
        settings.ssh_forward_ports, settings.ssh_forward_address
    )
    with session_scope() as session:
        capsuls.provision(session, capsul_id, commit=session.commit, forwarding=forwarding)


@huey.task(retries=3, retry_delay=15)
def provision_capsul(capsul_id: str) -> None:
    """Create and start a capsul's VM; idempotent, so Huey's retries are safe."""
    run_provision(capsul_id)


def enqueue_provision(capsul_id: str) -> None:
    provision_capsul(capsul_id)


@huey.task()
def stop_capsul(capsul_id: str) -> None:
    """Wait for the guest to shut down after the power button; force it off after the
    stop_timeout setting."""
    settings = service_settings(ComputeSettings)
    with session_scope() as session:
        capsul = session.get(Capsul, capsul_id)
        if capsul is None or capsul.status not in (ACTIVE, SUSPENDED):
            return
        capsuls.act(session, capsul, "stop", stop_timeout=settings.stop_timeout)


def enqueue_stop(capsul_id: str) -> None:
    stop_capsul(capsul_id)


@huey.periodic_task(crontab(minute="*"))
def sample_stats() -> None:
    with session_scope() as session:
        stats.sample(session, utcnow())


@huey.periodic_task(crontab(minute="*/5"))
def meter_and_enforce() -> None:
    settings = service_settings(ComputeSettings)
    with session_scope() as session:
        now = utcnow()
        metering.meter(session, now)
        session.commit()
        metering.enforce(session, now, stop_timeout=min(settings.stop_timeout, 30.0))


@huey.periodic_task(crontab(minute="*/5"))
def check_hosts() -> None:
    with session_scope() as session:
        hosts.check_hosts(session)


@huey.periodic_task(crontab(minute="3-59/10"))
def reconcile_hosts() -> None:
    settings = service_settings(ComputeSettings)
    with session_scope() as session:
        reconcile.reconcile(session, mail=settings.reconcile_mail)


@huey.periodic_task(crontab(minute="17"))
def prune_samples() -> None:
    settings = service_settings(ComputeSettings)
    with session_scope() as session:
        stats.prune(session, utcnow(), settings.sample_retention_days)
