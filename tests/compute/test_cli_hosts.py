"""Operators' CLI, placement and host health, on the real local libvirtd."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select

from clubstack.cli import main
from clubstack.compute import hosts
from clubstack.compute.models import Capsul, Host, Plan
from clubstack.core.db import db
from tests.compute.conftest import make_user

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ann@laptop"
BAD_URI = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"


def run(*args):
    result = CliRunner().invoke(main, ["compute", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_hosts_plans_images_create_destroy(compute_app, test_host, guest, hv, ledger, tmp_path):
    code, out = run("host", "add", "gone", BAD_URI)
    assert code == 1 and "cannot connect" in out
    code, out = run("host", "add", "long", f"{BAD_URI}/{'k' * 255}")
    assert code == 1 and "uri: At most 255 characters" in out  # not a database error
    code, out = run(
        "host",
        "add",
        "local2",
        test_host["uri"],
        "--pool-name",
        test_host["pool_name"],
        "--pool-path",
        test_host["pool_path"],
        "--network",
        "none",
        "--probe-kernel",
        str(guest.kernel),
        "--probe-initrd",
        str(guest.initrd),
    )
    assert code == 0, out
    assert "host local2 added" in out and "domain type" in out
    code, out = run("host", "list")
    assert code == 0 and "local2" in out and "test" in out and " up " in out

    code, out = run(
        "plan", "add", "p1", "--vcpus", "1", "--memory", "128", "--disk", "1", "--price", "1460"
    )
    assert code == 0 and "2 cents per hour" in out
    code, out = run(
        "plan", "add", "p1", "--vcpus", "0", "--memory", "128", "--disk", "1", "--price", "1"
    )
    assert code == 1 and "vCPUs" in out
    code, out = run("plan", "list")
    assert "p1" in out and "14.60" in out and "0.02" in out
    code, out = run(
        "image",
        "add",
        "tiny2",
        str(guest.disk),
        "--kernel",
        str(guest.kernel),
        "--initrd",
        str(guest.initrd),
        "--cmdline",
        guest.cmdline,
    )
    assert code == 0, out

    owner = make_user(compute_app, "op@example.org")
    ledger.credit(owner, 10_000)
    keyfile = tmp_path / "key.pub"
    keyfile.write_text(KEY + "\n")
    code, out = run(
        "create",
        "--owner",
        "nobody@example.org",
        "--plan",
        "p1",
        "--image",
        "tiny2",
        "--ssh-key",
        str(keyfile),
    )
    assert code == 1 and "no member" in out
    code, out = run(
        "create",
        "--owner",
        "op@example.org",
        "--plan",
        "p1",
        "--image",
        "tiny2",
        "--name",
        "cli1",
        "--ssh-key",
        str(keyfile),
    )
    assert code == 0, out
    assert "is running" in out
    with compute_app.app_context():
        capsul = db.session().scalar(select(Capsul).where(Capsul.name == "cli1"))
        # placed on the host with the most free memory: local2 reports the real machine's
        assert capsul.host.name == "local2"
        name, cid = capsul.domain_name, capsul.id
    assert hv.state(name) == "running"
    code, out = run("list", "--host", "local2")
    assert cid in out and "cli1" in out
    code, out = run("list", "--host", "test")
    assert cid not in out
    code, out = run("host", "remove", "local2")
    assert code == 1 and "still runs 1 capsul" in out

    code, out = run("destroy", cid, "--yes")
    assert code == 0 and "destroyed" in out
    assert hv.state(name) == "missing"
    code, out = run("destroy", cid, "--yes")
    assert code == 1 and "No such capsul" in out
    code, out = run("host", "remove", "local2")
    assert code == 0
    assert len(ledger.entries) == 1  # the started hour, billed once


def test_placement_and_host_down(compute_app):
    with compute_app.app_context():
        session = db.session()
        small = session.scalar(select(Plan).where(Plan.name == "f1-s"))
        session.add(
            Host(
                name="big",
                uri=BAD_URI,
                pool_path="/x",
                vcpus=8,
                memory_mib=65536,
                disk_gib=1000,
                up=True,
            )
        )
        session.flush()
        assert hosts.place(session, small).name == "big"  # most free room
        listed = hosts.check_hosts(session)
        big = next(h for h in listed if h.name == "big")
        test = next(h for h in listed if h.name == "test")
        assert big.up is False and "cannot connect" in big.last_error
        assert test.up is True and test.memory_mib > 0  # capacity read from the host
        assert hosts.place(session, small).name == "test"  # down hosts get nothing
        session.commit()
    admin = compute_app.test_client()
    from tests.conftest import login, make_admin

    make_admin(compute_app, "root@example.org")
    login(admin, compute_app, "root@example.org")
    html = admin.get("/compute/admin").get_data(as_text=True)
    assert "big" in html and "down" in html and "cannot connect" in html
