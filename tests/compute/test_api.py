"""The JSON API with tokens; running out of credit stops, then destroys."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from clubstack.compute import hypervisor as h
from clubstack.compute import metering
from clubstack.compute.models import Capsul, Host, Image, Plan
from clubstack.core import clock
from clubstack.core.accounts.models import User
from clubstack.core.db import db
from tests.compute.conftest import user_id
from tests.conftest import api_token, login, message_text, outbox_messages

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBCp5ZydU0DFBBNlIZHwXyeqL2NdS1lC0Jx7xbpWWZEa bob@desk"


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def test_api_create_act_then_credit_runs_out(compute_app, hv, ledger):
    app = compute_app
    client = app.test_client()
    login(client, app, "bob@example.org", nickname="bob")
    token = api_token(client)
    bob = user_id(app, "bob@example.org")
    ledger.credit(bob, 300)  # 30 hours of f1-s at 10 cents
    api = app.test_client()  # no cookies: the token alone

    assert api.get("/compute/api/capsuls").status_code == 401
    plans = api.get("/compute/api/plans").get_json()["plans"]
    assert {
        "name": "f1-s",
        "vcpus": 1,
        "memory_mib": 256,
        "disk_gib": 2,
        "price_month_cents": 7300,
        "price_hour_cents": 10,
    } in plans

    response = api.post(
        "/compute/api/capsuls",
        headers=auth(token),
        json={"name": "api1", "plan": "f1-s", "image": "tiny", "ssh_keys": [KEY]},
    )
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    capsul_id = body["id"]
    assert body["status"] == "active" and body["state"] == "running"
    assert body["ssh_keys"] == [KEY]
    listed = api.get("/compute/api/capsuls", headers=auth(token)).get_json()["capsuls"]
    assert [c["id"] for c in listed] == [capsul_id]
    with app.app_context():
        name = db.session().get(Capsul, capsul_id).domain_name
    assert hv.state(name) == "running"
    # the member's key is in the NoCloud seed the VM boots with
    seed = hv.pool().storageVolLookupByName(h.seed_volume(name))
    assert seed.path() in hv.lookup(name).XMLDesc(0)
    assert KEY in hv.read_volume_text(h.seed_volume(name), limit=8 << 20)

    def action(name_):
        r = api.post(
            f"/compute/api/capsuls/{capsul_id}/actions", headers=auth(token), json={"action": name_}
        )
        return r.status_code, r.get_json()

    hv.wait_for_console(name, "CLUBSTACK-GUEST ready", 90)
    assert action("stop")[1]["state"] == "stopped"
    assert action("start")[1]["state"] == "running"
    code, body = action("explode")
    assert code == 400 and body["error"] == "invalid_input"
    got = api.get(f"/compute/api/capsuls/{capsul_id}/console", headers=auth(token))
    assert got.status_code == 200 and "console" in got.get_json()
    got = api.get(f"/compute/api/capsuls/{capsul_id}/stats?range=day", headers=auth(token))
    assert got.status_code == 200 and got.get_json()["range"] == "day"
    assert (
        api.get(
            f"/compute/api/capsuls/{capsul_id}/stats?range=year", headers=auth(token)
        ).status_code
        == 400
    )

    # metering eats the credit: 30 hours later it is gone, and the capsul stops
    with app.app_context():
        session = db.session()
        now = clock.utcnow()
        assert metering.meter(session, now) == 1
        session.commit()
        assert metering.enforce(session, now).suspended == []
        clock.travel(timedelta(hours=30))
        assert metering.meter(session, clock.utcnow()) == 30
        session.commit()
        assert ledger.balance(session, bob) == 300 - 31 * 10
        done = metering.enforce(session, clock.utcnow(), stop_timeout=3)
        session.commit()
        assert done.suspended == [capsul_id]
        assert session.get(Capsul, capsul_id).status == "suspended"
    assert hv.state(name) == "stopped"
    mails = [m for m in outbox_messages(app) if m["To"] == "bob@example.org"]
    assert "stopped" in mails[-1]["Subject"] and "api1" in message_text(mails[-1])
    # a suspended capsul is not billed and cannot be started without credit
    with app.app_context():
        session = db.session()
        assert metering.meter(session, clock.utcnow() + timedelta(hours=5)) == 0
    code, body = action("start")
    assert code == 402 and body["error"] == "insufficient_credit"

    # after the grace period it is destroyed, disk and all, and the member told
    clock.travel(timedelta(days=3, hours=1))
    with app.app_context():
        session = db.session()
        done = metering.enforce(session, clock.utcnow())
        session.commit()
        assert done.destroyed == [capsul_id]
    assert hv.state(name) == "missing"
    hv.pool().refresh(0)
    assert not [v for v in hv.pool().listVolumes() if v.startswith(name)]
    mails = [m for m in outbox_messages(app) if m["To"] == "bob@example.org"]
    assert "destroyed" in mails[-1]["Subject"]
    assert api.get(f"/compute/api/capsuls/{capsul_id}", headers=auth(token)).status_code == 404


def test_metering_over_a_moved_clock_charges_once_per_period(compute_app_any_db, ledger):
    app = compute_app_any_db
    with app.app_context():
        session = db.session()
        user = User(email="carol@example.org")
        session.add(user)
        session.commit()
        plan = session.scalar(select(Plan).where(Plan.name == "f1-s"))
        capsul = Capsul(
            user_id=user.id,
            plan_id=plan.id,
            host_id=session.scalar(select(Host.id)),
            image_id=session.scalar(select(Image.id)),
            name="m1",
            domain_name="capsul-meter1",
            uuid="00000000-0000-4000-8000-000000000001",
            status="active",
            billed_until=clock.utcnow(),
        )
        session.add(capsul)
        session.commit()
        ledger.credit(user.id, 10_000)

        assert metering.meter(session, clock.utcnow()) == 1
        assert metering.meter(session, clock.utcnow()) == 0  # same period: nothing more
        clock.travel(timedelta(minutes=59))
        assert metering.meter(session, clock.utcnow()) == 0
        clock.travel(timedelta(minutes=2))
        assert metering.meter(session, clock.utcnow()) == 1
        clock.travel(timedelta(hours=5))
        assert metering.meter(session, clock.utcnow()) == 5
        session.commit()
        keys = [e["key"] for e in ledger.entries]
        assert len(keys) == len(set(keys)) == 7
        assert ledger.balance(session, user.id) == 10_000 - 7 * 10

        # a crash after the charge but before billed_until was saved: the retry charges
        # the same period with the same key, and the ledger counts it once
        capsul.billed_until -= timedelta(hours=2)
        session.commit()
        assert metering.meter(session, clock.utcnow()) == 2
        assert len(ledger.entries) == 7
        assert ledger.balance(session, user.id) == 10_000 - 7 * 10
