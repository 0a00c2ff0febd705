"""Metering through the port against billing's ledger and standing, and the burn billing
uses for its warnings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from clubstack.billing import ledger
from clubstack.compute import metering
from clubstack.compute.billing_port import AccountState
from clubstack.compute.models import Capsul, Host, Image, Plan
from clubstack.core import clock
from clubstack.core.db import db
from tests.compute.conftest import make_user, setup_compute


@pytest.fixture
def real_billing_app(make_app, db_kind, test_host, guest, domain_type):
    app = make_app(db_kind, billing_grace_period_hours="72")
    return setup_compute(app, test_host, guest, domain_type, None)


def test_metering_and_standing_with_the_real_ledger(real_billing_app):
    from clubstack.compute import billing_port

    app = real_billing_app
    owner = make_user(app, "ivy@example.org")
    with app.app_context():
        session = db.session()
        ledger.credit(
            session,
            owner,
            25,
            reason="test credit",
            reference="test",
            idempotency_key="test-credit-ivy",
        )
        plan = session.scalar(select(Plan).where(Plan.name == "f1-s"))  # 10 cents an hour
        capsul = Capsul(
            user_id=owner,
            plan_id=plan.id,
            host_id=session.scalar(select(Host.id)),
            image_id=session.scalar(select(Image.id)),
            name="ivy1",
            domain_name="capsul-ivy1",
            uuid="00000000-0000-4000-8000-0000000000a1",
            status="active",
            billed_until=clock.utcnow(),
        )
        session.add(capsul)
        session.commit()

        assert metering.meter(session, clock.utcnow()) == 1
        assert metering.meter(session, clock.utcnow()) == 0
        session.commit()
        assert billing_port.balance(session, owner) == 15
        assert (
            billing_port.account_state(session, owner, 10, clock.utcnow()) == AccountState.LOW_DAY
        )
        clock.travel(timedelta(hours=2))
        assert metering.meter(session, clock.utcnow()) == 2
        session.commit()
        assert billing_port.balance(session, owner) == -5
        # a retry of the last period (billed_until not saved) is charged once
        capsul.billed_until -= timedelta(hours=1)
        assert metering.meter(session, clock.utcnow()) == 1
        session.commit()
        assert billing_port.balance(session, owner) == -5
        assert billing_port.account_state(session, owner, 10, clock.utcnow()) == AccountState.EMPTY
        clock.travel(timedelta(hours=73))
        assert (
            billing_port.account_state(session, owner, 10, clock.utcnow())
            == AccountState.GRACE_EXPIRED
        )


def test_billing_knows_what_capsuls_burn(real_billing_app):
    from clubstack.billing.burn import hourly_burn
    from clubstack.compute import billing_port

    assert billing_port.register_burn() is True
    app = real_billing_app
    owner = make_user(app, "jo@example.org")
    with app.app_context():
        session = db.session()
        plan = session.scalar(select(Plan).where(Plan.name == "f1-s"))
        for i, status in enumerate(("active", "suspended", "destroyed", "creating")):
            session.add(
                Capsul(
                    user_id=owner,
                    plan_id=plan.id,
                    host_id=session.scalar(select(Host.id)),
                    image_id=session.scalar(select(Image.id)),
                    name=f"jo{i}",
                    domain_name=f"capsul-jo{i}",
                    uuid=f"jo-{i}",
                    status=status,
                )
            )
        session.commit()
        assert hourly_burn(session, owner) == 20  # active and creating, 10 cents each
