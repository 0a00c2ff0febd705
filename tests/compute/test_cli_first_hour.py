"""An operator's first hour with `clubstack compute`: empty lists that say what to add, a
network that is not running, the demo image, old ids that begin with '-'."""

from __future__ import annotations

import contextlib
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
from click.testing import CliRunner
from sqlalchemy import select

from clubstack.cli import main
from clubstack.compute.models import DESTROYED, Capsul, Host, Image, Plan
from clubstack.core.db import db
from tests.compute.conftest import RUN, make_user


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["compute", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_empty_lists_have_no_header_and_say_what_to_add(make_app):
    make_app()
    code, out = run("host", "list")
    assert code == 0 and out.startswith("no hosts yet") and "compute host add" in out
    assert "--network user" in out
    code, out = run("image", "list")
    assert code == 0 and out.startswith("no images yet") and "image add-demo" in out
    code, out = run("plan", "list")
    assert code == 0 and out.startswith("no plans yet") and "compute plan add" in out
    code, out = run("list")
    assert code == 0 and out.startswith("no capsuls yet") and "compute create" in out


def test_lists_have_headers(compute_app):
    code, out = run("image", "list")
    assert code == 0
    assert out.splitlines()[0].split() == ["NAME", "BOOT", "PATH"]
    assert "tiny" in out
    owner = make_user(compute_app, "hd@example.org")
    with compute_app.app_context():
        session = db.session()
        plan = session.scalar(select(Plan).where(Plan.name == "f1-xs"))
        image = session.scalar(select(Image).where(Image.name == "tiny"))
        session.add(
            Capsul(
                id="hdr1",
                user_id=owner,
                plan_id=plan.id,
                image_id=image.id,
                name="headed",
                domain_name=f"capsul-hdr-{RUN}",
                uuid=str(uuid.uuid4()),
                status="error",
            )
        )
        session.commit()
    code, out = run("list")
    assert code == 0
    assert out.splitlines()[0].split() == ["ID", "NAME", "STATUS", "STATE", "PLAN", "HOST", "OWNER"]
    assert "headed" in out.splitlines()[1]


def test_plan_errors_name_what_the_operator_typed(make_app):
    make_app()
    code, out = run(
        "plan", "add", "p1", "--vcpus", "0", "--memory", "1", "--disk", "0", "--price", "-1"
    )
    assert code == 1
    for word in ("vCPUs:", "memory:", "disk:", "price:"):
        assert word in out, out
    for column in ("vcpus", "memory_mib", "disk_gib", "price_month_cents"):
        assert column not in out, out


def test_destroy_an_old_id_that_begins_with_a_dash(compute_app):
    owner = make_user(compute_app, "old@example.org")
    with compute_app.app_context():
        session = db.session()
        plan = session.scalar(select(Plan).where(Plan.name == "f1-xs"))
        image = session.scalar(select(Image).where(Image.name == "tiny"))
        for cid in ("-old1", "-old2"):
            session.add(
                Capsul(
                    id=cid,
                    user_id=owner,
                    plan_id=plan.id,
                    image_id=image.id,
                    name=cid.strip("-"),
                    domain_name=f"capsul-{cid.strip('-')}-{RUN}",
                    uuid=str(uuid.uuid4()),
                    status="error",
                )
            )
        session.commit()
    code, out = run("destroy", "--help")
    assert "-- -ID" in out
    code, out = run("destroy", "--yes", "--", "-old1")
    assert code == 0 and "capsul -old1 destroyed" in out, out
    code, out = run("destroy", "-old2", "--yes")
    assert code == 0 and "capsul -old2 destroyed" in out, out
    with compute_app.app_context():
        session = db.session()
        assert {
            c.status
            for c in session.scalars(select(Capsul).where(Capsul.id.in_(["-old1", "-old2"])))
        } == {DESTROYED}


def _network_xml(name: str) -> str:
    net = ET.Element("network")
    ET.SubElement(net, "name").text = name
    ET.SubElement(net, "bridge", name=f"cs{RUN}"[:15])
    return ET.tostring(net, encoding="unicode")


def _probe_files(pool: str) -> list[str]:
    return sorted(p.name for p in Path(pool).glob("clubstack-probe-*"))


def test_host_add_refuses_an_inactive_network_and_leaves_no_probe_logs(
    compute_app, test_host, guest, hv, tmp_path
):
    base = [
        "host",
        "add",
        "--pool-name",
        test_host["pool_name"],
        "--pool-path",
        test_host["pool_path"],
        "--probe-kernel",
        str(guest.kernel),
        "--probe-initrd",
        str(guest.initrd),
    ]
    name = f"clubstack-{RUN}-off"
    net = hv.conn.networkDefineXML(_network_xml(name))  # defined, never started
    try:
        code, out = run(*base, "--network", f"network:{name}", "n1", test_host["uri"])
        assert code == 1
        assert "not active" in out
        assert f"virsh -c {test_host['uri']} net-start {name}" in out
        assert "net-autostart" in out and "--network user" in out
        code, out = run(*base, "--network", "network:no-such-net", "n1", test_host["uri"])
        assert code == 1 and "does not exist" in out and "--network user" in out
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            net.undefine()
    code, out = run("host", "add", "--help")
    assert "--network user" in " ".join(out.split())
    with compute_app.app_context():
        assert db.session().scalar(select(Host).where(Host.name == "n1")) is None

    # a probe that QEMU cannot even start (no such kernel on the host) leaves no log behind
    # either; it refuses the host, saying so, rather than take a KVM host for TCG
    code, out = run(
        *base[:6],
        "--probe-kernel",
        str(tmp_path / "no-kernel"),
        "--network",
        "user",
        "n2",
        test_host["uri"],
    )
    if hv.supports("kvm"):  # else nothing is probed: no KVM to test
        assert code == 1 and "cannot read the probe kernel" in out, out
    else:
        assert code == 0, out
    assert _probe_files(test_host["pool_path"]) == []
    code, out = run(*base, "--network", "user", "n1", test_host["uri"])
    assert code == 0 and "host n1 added" in out, out
    assert _probe_files(test_host["pool_path"]) == []


def test_add_demo_gives_a_newcomer_a_running_capsul(make_app, test_host, guest, hv, tmp_path):
    from tests.compute.conftest import Ledger

    app = make_app()
    code, out = run("image", "add-demo")
    assert code == 0, out
    assert "image demo" in out and "plan demo added" in out
    code, out = run("image", "add-demo")  # again: nothing new
    assert code == 0 and "image demo" in out and "plan" not in out
    _, out = run("image", "list")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["demo"]
    _, out = run("plan", "list")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["demo"]

    code, out = run(
        "host",
        "add",
        "local",
        test_host["uri"],
        "--network",
        "user",
        "--pool-name",
        test_host["pool_name"],
        "--pool-path",
        test_host["pool_path"],
        "--probe-kernel",
        str(guest.kernel),
        "--probe-initrd",
        str(guest.initrd),
    )
    assert code == 0, out
    owner = make_user(app, "new@example.org")
    Ledger().credit(owner, 10_000)
    keyfile = tmp_path / "key.pub"
    keyfile.write_text(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl new\n"
    )
    code, out = run(
        "create",
        "--owner",
        "new@example.org",
        "--plan",
        "demo",
        "--image",
        "demo",
        "--name",
        "first",
        "--ssh-key",
        str(keyfile),
    )
    assert code == 0 and "is running" in out, out
    cid = out.split("capsul ", 1)[1].split()[0]
    with app.app_context():
        name = db.session().get(Capsul, cid).domain_name
    assert hv.state(name) == "running"
    hv.wait_for_console(name, "CLUBSTACK-GUEST ready", 90)
    code, out = run("destroy", cid, "--yes")
    assert code == 0 and hv.state(name) == "missing"
