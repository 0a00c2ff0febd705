"""Objects a member owns, written straight to the database: the attack suite is about who may
reach them over HTTP, not about how they came to be (each service's own tests cover that),
and a real capsul or judged submission would cost a VM or a sandbox run per test."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

from sqlalchemy import select

from clubstack.core.accounts.models import User
from clubstack.core.db import db


def user_id(app: Any, address: str) -> int:
    with app.app_context():
        found = db.session().scalar(select(User.id).where(User.email == address))
        assert found is not None, address
        return int(found)


def capsul(app: Any, owner: str, name: str = "web1") -> str:
    """A running capsul of OWNER (no host behind it: refusals happen before any libvirt call)."""
    from clubstack.compute.models import Capsul, Image, Plan

    owner_id = user_id(app, owner)  # before the session below: each app context ends its own
    with app.app_context():
        session = db.session()
        plan = session.scalar(select(Plan).where(Plan.name == "sec-plan"))
        if plan is None:
            plan = Plan(name="sec-plan", vcpus=1, memory_mib=128, disk_gib=1, price_month_cents=730)
            session.add(plan)
        image = session.scalar(select(Image).where(Image.name == "sec-image"))
        if image is None:
            image = Image(name="sec-image", title="image", path="/nonexistent.qcow2")
            session.add(image)
        session.flush()
        made = Capsul(
            user_id=owner_id,
            plan_id=plan.id,
            image_id=image.id,
            name=name,
            domain_name="sec-" + secrets.token_hex(8),
            uuid=str(uuid.uuid4()),
            status="active",
            state="running",
            progress="running",
        )
        session.add(made)
        session.commit()
        return str(made.id)


def capsul_status(app: Any, capsul_id: str) -> str:
    from clubstack.compute.models import Capsul

    with app.app_context():
        found = db.session().get(Capsul, capsul_id)
        return "gone" if found is None else found.status


def ssh_key(app: Any, owner: str, name: str = "laptop") -> int:
    from clubstack.compute.models import SshKey

    owner_id = user_id(app, owner)
    with app.app_context():
        session = db.session()
        key = SshKey(
            user_id=owner_id,
            name=name,
            public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + secrets.token_hex(16),
            fingerprint="SHA256:" + secrets.token_hex(16),
        )
        session.add(key)
        session.commit()
        return int(key.id)


def ssh_key_exists(app: Any, key_id: int) -> bool:
    from clubstack.compute.models import SshKey

    with app.app_context():
        return db.session().get(SshKey, key_id) is not None


def payment(app: Any, owner: str) -> str:
    from clubstack.billing.models import Payment

    owner_id = user_id(app, owner)
    with app.app_context():
        session = db.session()
        made = Payment(
            user_id=owner_id,
            provider="stripe",
            external_id="cs_test_" + secrets.token_hex(8),
            amount_cents=2000,
            currency="EUR",
            status="new",
        )
        session.add(made)
        session.commit()
        return str(made.id)


def challenge(
    app: Any, owner: str, name: str, *, published: bool = False, public_key: str | None = None
) -> str:
    """A submission of OWNER; unpublished ones are private to the owner and the admins."""
    from clubstack.contest.models import Challenge
    from clubstack.core.clock import utcnow

    owner_id = user_id(app, owner)
    with app.app_context():
        session = db.session()
        made = Challenge(
            name=name,
            owner_id=owner_id,
            kind="ecdsa",
            status="published" if published else "submitted",
            source="/* the secret design of " + name + " */\nint x;\n",
            public_key=public_key,
            proof=None,
            vectors=json.dumps({"inputs": []}),
            published_at=utcnow() if published else None,
            performance=1.0 if published else None,
        )
        session.add(made)
        session.commit()
        return str(made.public_id)


def lookup_batch(app: Any, owner: str, value: str = "198.51.100.7", kind: str = "ipv4") -> str:
    """A finished look-up of OWNER with one indicator."""
    from clubstack.core.clock import utcnow
    from clubstack.lookup.models import LookupBatch, LookupItem

    owner_id = user_id(app, owner)
    with app.app_context():
        session = db.session()
        made = LookupBatch(
            user_id=owner_id, status="done", total=1, done=1, checks="rdap", finished_at=utcnow()
        )
        made.items.append(
            LookupItem(position=0, kind=kind, value=value, verdict=0, results=json.dumps({}))
        )
        session.add(made)
        session.commit()
        return str(made.id)
