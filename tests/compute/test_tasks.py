"""The periodic jobs run end to end on the real database and host."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from clubstack.compute import capsuls, tasks
from clubstack.compute.models import Capsul, CapsulSample, Host
from clubstack.core import clock
from clubstack.core.db import db
from tests.compute.conftest import make_user

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ann@laptop"


def test_periodic_jobs(compute_app, hv, ledger):
    owner = make_user(compute_app, "hal@example.org")
    ledger.credit(owner, 10_000)
    with compute_app.app_context():
        session = db.session()
        capsul = capsuls.request_capsul(
            session,
            owner,
            plan="f1-xs",
            image="tiny",
            name="periodic",
            keys=[KEY],
            min_credit_hours=1,
            max_capsuls=5,
        )
        session.commit()
        cid = capsul.id
        tasks.provision_capsul.call_local(cid)
        tasks.sample_stats.call_local()
        tasks.meter_and_enforce.call_local()
        tasks.check_hosts.call_local()
        tasks.reconcile_hosts.call_local()
        with clock.moved(timedelta(days=9)):
            tasks.prune_samples.call_local()
        session = db.session()
        assert session.get(Capsul, cid).status == "active"
        assert session.scalar(select(func.count()).select_from(CapsulSample)) == 0  # pruned
        assert session.scalar(select(Host.up)) is True
        assert len(ledger.entries) == 1
        capsuls.destroy(session, session.get(Capsul, cid))
        session.commit()
