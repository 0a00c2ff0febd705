"""A member creates a capsul from the web, watches it, acts on it and destroys it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from clubstack.compute import stats
from clubstack.compute.models import Capsul, CapsulSample
from clubstack.core import clock
from clubstack.core.db import db
from tests.compute.conftest import user_id, wait_until
from tests.conftest import csrf_token, login

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ann@laptop"


def test_create_from_the_web_runs_with_my_key_then_act_and_destroy(compute_app, hv, ledger):
    app = compute_app
    client = app.test_client()
    login(client, app, "ann@example.org", nickname="ann")
    ledger.credit(user_id(app, "ann@example.org"), 5000)

    page = client.get("/compute/create").get_data(as_text=True)
    assert "f1-xs" in page and "0.01/hour" in page
    response = client.post(
        "/compute/create",
        data={
            "csrf_token": csrf_token(client, "/compute/create"),
            "name": "web1",
            "plan": "f1-xs",
            "image": "tiny",
            "new_key": KEY,
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    capsul_path = response.headers["Location"]
    capsul_id = capsul_path.rsplit("/", 1)[1]
    with app.app_context():
        capsul = db.session().get(Capsul, capsul_id)
        name = capsul.domain_name
        assert capsul.status == "active" and capsul.progress == "running"

    # libvirt runs it, and the guest read the member's key and hostname from its seed
    assert hv.state(name) == "running"
    console = hv.wait_for_console(name, "CLUBSTACK-GUEST ready", 90)
    assert f"CLUBSTACK-GUEST ssh-key={KEY}" in console
    assert "CLUBSTACK-GUEST hostname=web1" in console
    # the pasted key is now kept on the account
    assert "ann@laptop" in client.get("/compute/keys").get_data(as_text=True)

    status = client.get(capsul_path)
    assert status.status_code == 200
    html = status.get_data(as_text=True)
    assert 'id="status">running<' in html
    assert "<svg" in html and "CPU" in html
    console_page = client.get(f"{capsul_path}/console").get_data(as_text=True)
    assert "CLUBSTACK-GUEST ready" in console_page

    # graphs come from deltas of samples taken by the periodic job
    with app.app_context():
        session = db.session()
        assert stats.sample(session, clock.utcnow() - timedelta(seconds=60)) == 1
        assert stats.sample(session, clock.utcnow()) == 1
        session.commit()
        samples = session.scalars(select(CapsulSample)).all()
        assert samples[1].cpu_ns > samples[0].cpu_ns
        points = stats.series(session, capsul_id, "hour", clock.utcnow())
        assert len(points) == 1 and 0 < points[0].cpu_percent <= 100
    html = client.get(capsul_path).get_data(as_text=True)
    assert html.count("<polyline") >= 2
    assert client.get(f"{capsul_path}?range=week").status_code == 200

    def act(action):
        response = client.post(
            f"{capsul_path}/action",
            data={"csrf_token": csrf_token(client, capsul_path), "action": action},
        )
        assert response.status_code == 302
        return client.get(capsul_path).get_data(as_text=True)

    html = act("stop")
    assert "Stop: the capsul is now stopped." in html
    assert hv.state(name) == "stopped"
    assert "shutting-down" in hv.console_log(name)  # graceful: the guest shut itself down
    act("start")
    assert hv.state(name) == "running"
    hv.wait_for_console(name, "CLUBSTACK-GUEST ready", 90)
    before = hv.console_log(name).count("CLUBSTACK-GUEST ready")
    html = act("reboot")
    assert "Reboot: the capsul is now running." in html
    assert wait_until(lambda: hv.console_log(name).count("CLUBSTACK-GUEST ready") > before, 90)
    act("force-off")
    assert hv.state(name) == "stopped"
    html = act("dance")
    assert hv.state(name) == "stopped"

    # destroy asks for confirmation; a wrong answer changes nothing
    destroy = f"{capsul_path}/destroy"
    response = client.post(
        destroy, data={"csrf_token": csrf_token(client, destroy), "confirm": "nope"}
    )
    assert response.status_code == 400 and hv.state(name) == "stopped"
    response = client.post(
        destroy, data={"csrf_token": csrf_token(client, destroy), "confirm": "web1"}
    )
    assert response.status_code == 302
    assert hv.state(name) == "missing"
    hv.pool().refresh(0)
    assert not [v for v in hv.pool().listVolumes() if v.startswith(name)]
    assert client.get(capsul_path).status_code == 404
    assert "web1" not in client.get("/compute/").get_data(as_text=True)
    # billed for the hour it started, once
    assert len(ledger.entries) == 1
    assert ledger.entries[0]["key"].startswith(f"compute:{capsul_id}:")
    assert ledger.entries[0]["amount"] == 1


def test_create_page_needs_login(compute_app):
    client = compute_app.test_client()
    assert client.get("/compute/create").status_code == 302
    assert client.get("/compute/").status_code == 200
