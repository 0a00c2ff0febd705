"""Creation is a job that is safe to retry: a failure leaves a record that a retry finishes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from clubstack.compute import capsuls
from clubstack.compute import hypervisor as h
from clubstack.compute.errors import HypervisorError
from clubstack.compute.models import Capsul, Image
from clubstack.core.db import db
from tests.compute.conftest import make_user, wait_until
from tests.conftest import api_token, login

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ann@laptop"


def test_failed_creation_is_finished_by_a_retry_and_retries_do_nothing_twice(
    compute_app, hv, ledger, guest
):
    owner = make_user(compute_app, "fay@example.org")
    ledger.credit(owner, 10_000)
    with compute_app.app_context():
        session = db.session()
        image = session.scalar(select(Image).where(Image.name == "tiny"))
        image.path = "/nonexistent/base.qcow2"  # the base image is missing on the host
        capsul = capsuls.request_capsul(
            session,
            owner,
            plan="f1-xs",
            image="tiny",
            name="retry1",
            keys=[KEY],
            min_credit_hours=1,
            max_capsuls=5,
        )
        session.commit()
        with pytest.raises(HypervisorError):
            capsuls.provision(session, capsul.id)
        session.commit()
        assert capsul.status == "failed" and "cannot create disk" in capsul.error
        assert hv.lookup(capsul.domain_name) is None

        image.path = str(guest.disk)  # the operator fixes it; Huey retries the job
        session.commit()
        capsuls.provision(session, capsul.id)
        session.commit()
        assert capsul.status == "active" and capsul.error is None
        assert hv.state(capsul.domain_name) == "running"
        uuid_before = hv.lookup(capsul.domain_name).UUIDString()

        capsuls.provision(session, capsul.id)  # a duplicate delivery of the job
        session.commit()
        assert hv.lookup(capsul.domain_name).UUIDString() == uuid_before == capsul.uuid
        assert hv.state(capsul.domain_name) == "running"
        hv.pool().refresh(0)
        mine = sorted(v for v in hv.pool().listVolumes() if v.startswith(capsul.domain_name))
        assert mine == sorted(h.capsul_volumes(capsul.domain_name))

        # the page's Stop presses the power button and returns; the guest powers off itself
        hv.wait_for_console(capsul.domain_name, "CLUBSTACK-GUEST ready", 90)
        capsuls.request_stop(session, capsul)
        assert wait_until(lambda: hv.state(capsul.domain_name) == "stopped", 60)
        capsuls.destroy(session, capsul)
        session.commit()
    assert hv.state(capsul.domain_name) == "missing"


def test_api_create_that_fails_on_the_host_reports_it(compute_app, ledger):
    with compute_app.app_context():
        session = db.session()
        session.scalar(select(Image).where(Image.name == "tiny")).path = "/nonexistent.qcow2"
        session.commit()
    client = compute_app.test_client()
    login(client, compute_app, "gus@example.org")
    token = api_token(client)
    from tests.compute.conftest import user_id

    ledger.credit(user_id(compute_app, "gus@example.org"), 10_000)
    response = compute_app.test_client().post(
        "/compute/api/capsuls",
        headers={"Authorization": f"Bearer {token}"},
        json={"name": "bad", "plan": "f1-xs", "image": "tiny", "ssh_keys": [KEY]},
    )
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "failed" and "cannot create disk" in body["error"]
    with compute_app.app_context():
        assert db.session().get(Capsul, body["id"]).status == "failed"
