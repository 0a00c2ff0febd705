"""The compute pages on a fresh site and for a member's first capsul: what is missing is said,
money has its currency, actions follow the state, a key goes into cloud-init once."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select

from clubstack.compute import charts
from clubstack.compute.models import Capsul, Host, Image, Plan
from clubstack.core.db import db
from tests.compute.conftest import Ledger, user_id
from tests.conftest import csrf_token, login, make_admin

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ann@laptop"
DOWN_URI = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"


def _site(app, *, host=True, image=True, plan=True) -> None:
    with app.app_context():
        session = db.session()
        if host:  # a host that does not answer: nothing here boots a VM
            session.add(
                Host(
                    name="down",
                    uri=DOWN_URI,
                    pool_path="/var/tmp/none",
                    vcpus=4,
                    memory_mib=8192,
                    disk_gib=100,
                    up=True,
                    network="none",
                )
            )
        if image:
            session.add(Image(name="debian", title="Debian 12", path="/var/tmp/none/d.qcow2"))
        if plan:
            session.add(
                Plan(name="small", vcpus=1, memory_mib=512, disk_gib=10, price_month_cents=730)
            )
        session.commit()


def test_a_fresh_site_tells_admins_what_to_add_and_members_to_wait(make_app):
    app = make_app()
    _site(app, host=False, image=False)
    make_admin(app, "root@example.org")
    admin, member = app.test_client(), app.test_client()
    login(admin, app, "root@example.org")
    login(member, app, "ann@example.org")
    for path in ("/compute/", "/compute/create"):
        html = admin.get(path).get_data(as_text=True)
        assert "clubstack compute host add" in html and "image add-demo" in html, path
        assert "compute plan add" not in html  # there is a plan already
        html = member.get(path).get_data(as_text=True)
        assert "Capsuls are not available yet" in html, path
        assert "clubstack compute" not in html
    assert 'name="plan"' not in member.get("/compute/create").get_data(as_text=True)
    html = admin.get("/compute/admin").get_data(as_text=True)
    assert "Capsuls cannot be created yet" in html and "image add-demo" in html


def test_money_has_its_currency(make_app):
    app = make_app()
    _site(app)
    client = app.test_client()
    login(client, app, "ann@example.org")
    Ledger().credit(user_id(app, "ann@example.org"), 1234)
    index = client.get("/compute/").get_data(as_text=True)
    assert "€7.30" in index and "€0.01" in index
    create = client.get("/compute/create").get_data(as_text=True)
    assert "Your credit: €12.34" in create and "€7.30/month (€0.01/hour)" in create
    assert "not available" not in create and 'name="plan"' in create


def _capsul(app, owner: int, state: str, **extra: str) -> str:
    with app.app_context():
        session = db.session()
        plan = session.scalar(select(Plan))
        image = session.scalar(select(Image))
        capsul = Capsul(
            user_id=owner,
            plan_id=plan.id,
            image_id=image.id,
            name=f"c-{state}",
            domain_name=f"capsul-page-{state}",
            uuid=str(uuid.uuid4()),
            status="active",
            state=state,
            **extra,
        )
        session.add(capsul)
        session.commit()
        return capsul.id


def _buttons(html: str) -> set[str]:
    return {
        v for v in ("start", "stop", "reboot", "force-off") if f'name="action" value="{v}"' in html
    }


def test_actions_follow_the_state_and_the_page_has_no_inline_style(make_app):
    app = make_app()
    _site(app, host=False)  # capsuls on no host: the page reads no libvirt
    client = app.test_client()
    login(client, app, "ann@example.org")
    owner = user_id(app, "ann@example.org")
    running = _capsul(app, owner, "running", host_keys="256 SHA256:" + "A" * 43 + " root (ED25519)")
    stopped = _capsul(app, owner, "stopped")
    html = client.get(f"/compute/capsuls/{running}").get_data(as_text=True)
    assert _buttons(html) == {"stop", "reboot", "force-off"}
    assert "<style" not in html and " style=" not in html  # the page's CSP allows neither
    assert '<code class="fingerprint">256 SHA256:' in html
    assert "€0.01 per hour" in html
    html = client.get(f"/compute/capsuls/{stopped}").get_data(as_text=True)
    assert _buttons(html) == {"start"}


def test_graph_axes_use_binary_byte_units_and_percent():
    start = datetime(2026, 1, 1)
    points = [(start + timedelta(minutes=i), 3 * 2**20) for i in range(1, 60)]
    svg = charts.line_chart("Disk", {"read": points}, "B/s", start, start + timedelta(hours=1))
    assert "3.3 MiB/s" in svg and "1.7 MiB/s" in svg  # top 1.1 x 3 MiB/s, and half of it
    assert "kB/s" not in svg and "MB/s" not in svg
    empty = charts.line_chart("Network", {"sent": []}, "B/s", start, start + timedelta(hours=1))
    assert ">512 B/s<" in empty and ">1.0 KiB/s<" in empty
    assert charts.human(1536, "B/s") == "1.5 KiB/s" and charts.human(512, "B/s") == "512 B/s"
    cpu = charts.line_chart(
        "CPU", {"used": [(start, 12.0)]}, "%", start, start + timedelta(hours=1), fixed_max=100.0
    )
    assert ">100%<" in cpu and ">50%<" in cpu


def test_a_key_chosen_and_pasted_goes_into_cloud_init_once(make_app):
    app = make_app()
    _site(app)
    client = app.test_client()
    login(client, app, "ann@example.org")
    owner = user_id(app, "ann@example.org")
    Ledger().credit(owner, 100_000)
    keys = client.post(
        "/compute/keys",
        data={
            "csrf_token": csrf_token(client, "/compute/keys"),
            "name": "laptop",
            "public_key": KEY,
        },
    )
    assert keys.status_code == 302
    with app.app_context():
        from clubstack.compute.models import SshKey

        key_id = db.session().scalar(select(SshKey.id))
    # the same key pasted again, with another comment
    pasted = KEY.rsplit(" ", 1)[0] + " ann@other"
    response = client.post(
        "/compute/create",
        data={
            "csrf_token": csrf_token(client, "/compute/create"),
            "name": "dup",
            "plan": "small",
            "image": "debian",
            "ssh_key_ids": str(key_id),
            "new_key": pasted,
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        capsul = db.session().scalar(select(Capsul).where(Capsul.name == "dup"))
        assert capsul.key_list == [KEY]
