"""Compute on a libvirt host reached over qemu+ssh:// (tests/fleet/remote_libvirt.py).

An operator adds the host with the CLI, the health check finds it up, a member creates a
capsul on it from the web, the capsul runs there (seen through the remote URI and through the
host's own libvirtd), and destroying it removes the domain and its volumes on the host.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from clubstack.cli import main
from clubstack.compute import hosts
from clubstack.compute import hypervisor as hvmod
from clubstack.compute.models import Capsul, Image
from clubstack.core.db import db
from tests.compute.conftest import RUN, Ledger, _unavailable, user_id
from tests.conftest import csrf_token, login, make_admin
from tests.fleet.remote_libvirt import RemoteHostUnavailable, remote_libvirt_host

try:
    import libvirt
except ModuleNotFoundError:  # pragma: no cover - a dev machine without the bindings
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise
    pytest.skip("libvirt-python is not installed", allow_module_level=True)

pytestmark = pytest.mark.slow

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ann@laptop"
POOL = f"clubstack-remote-{RUN}"
LOCAL = "qemu:///system"


@contextlib.contextmanager
def remote_host(workdir: Path) -> Iterator[str]:
    """remote_libvirt_host, or a skip (a failure in CI) when this machine cannot run it."""
    with contextlib.ExitStack() as stack:
        try:
            uri = stack.enter_context(remote_libvirt_host(workdir))
        except (RemoteHostUnavailable, OSError) as exc:
            _unavailable(f"remote libvirt host: {exc}")
        yield uri


@pytest.fixture
def pool_dir() -> Iterator[Path]:
    """The host's storage pool folder; what the test left in the pool goes at the end."""
    path = Path(tempfile.mkdtemp(prefix=f"{POOL}-", dir="/var/tmp"))  # QEMU must enter it
    os.chmod(path, 0o755)
    yield path
    with contextlib.suppress(hvmod.HostDownError), hvmod.Hypervisor(LOCAL, pool_name=POOL) as hv:
        for dom in hv.conn.listAllDomains(0):
            with contextlib.suppress(libvirt.libvirtError):
                if str(path) in dom.XMLDesc(0):
                    if dom.isActive():
                        dom.destroy()
                    dom.undefine()
        hv.remove_pool()
    shutil.rmtree(path, ignore_errors=True)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["compute", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_a_capsul_on_a_host_reached_over_ssh(make_app: Any, tmp_path: Path, pool_dir: Path):
    app = make_app(compute_stop_timeout="20", compute_min_credit_hours="24")
    with remote_host(tmp_path / "remote") as remote_uri:
        assert remote_uri.startswith("qemu+ssh://") and "?" in remote_uri

        # the operator adds the host as the guide says; the network check runs on the host
        add = ("host", "add", "far1", remote_uri, "--pool-name", POOL, "--pool-path", str(pool_dir))
        code, out = run(*add, "--network", f"network:nosuch{RUN}")
        assert code == 1 and f"network 'nosuch{RUN}' does not exist" in out, out
        assert f"virsh -c {remote_uri} net-define" in out  # what to run names the remote host
        code, out = run("image", "add-demo")
        assert code == 0 and "plan demo added" in out, out
        with app.app_context():
            image = db.session().scalar(select(Image).where(Image.name == "demo"))
            kernel, initrd = image.kernel, image.initrd
        code, out = run(
            *add, "--network", "user", "--probe-kernel", kernel, "--probe-initrd", initrd
        )
        assert code == 0 and "host far1 added" in out, out
        code, out = run("host", "list")
        assert code == 0 and "far1" in out and " up " in out and remote_uri in out, out

        # the periodic health check reaches it over ssh and reads its capacity
        with app.app_context():
            session = db.session()
            (far1,) = hosts.check_hosts(session)
            assert far1.up and far1.last_error is None and far1.memory_mib > 0
            session.commit()

        # a member creates a capsul on it from the web
        client = app.test_client()
        login(client, app, "ann@example.org", nickname="ann")
        Ledger().credit(user_id(app, "ann@example.org"), 5000)
        response = client.post(
            "/compute/create",
            data={
                "csrf_token": csrf_token(client, "/compute/create"),
                "name": "far",
                "plan": "demo",
                "image": "demo",
                "new_key": KEY,
            },
        )
        assert response.status_code == 302, response.get_data(as_text=True)
        capsul_path = response.headers["Location"]
        with app.app_context():
            capsul = db.session().get(Capsul, capsul_path.rsplit("/", 1)[1])
            assert capsul.status == "active" and capsul.host.name == "far1", capsul.error
            name, forward = capsul.domain_name, capsul.ssh_forward

        # it runs on the host: through the remote URI, and in the host's own libvirtd
        with hvmod.Hypervisor(remote_uri, pool_name=POOL, pool_path=str(pool_dir)) as far:
            assert far.state(name) == "running"
            console = far.wait_for_console(name, "CLUBSTACK-GUEST ready", 60)
            assert f"CLUBSTACK-GUEST ssh-key={KEY}" in console and "hostname=far" in console
            assert far.ssh_forward(name) == ("127.0.0.1", int(forward.rpartition(":")[2]))
        with hvmod.Hypervisor(LOCAL, pool_name=POOL, pool_path=str(pool_dir)) as here:
            assert here.state(name) == "running"
            assert str(pool_dir) in here.lookup(name).XMLDesc(0)  # its disk is in the host's pool

        html = client.get(capsul_path).get_data(as_text=True)
        assert 'id="status">running<' in html and f"-p {forward.rpartition(':')[2]}" in html
        admin = app.test_client()
        make_admin(app, "root@example.org")
        login(admin, app, "root@example.org")
        html = admin.get("/compute/admin").get_data(as_text=True)
        assert "far1<br><code>qemu+ssh://root@127.0.0.1:" in html and 'level-ok">up<' in html
        assert "VMs and database are in sync." in html

        # destroyed from the web: gone from the host, disk and seed too
        destroy = f"{capsul_path}/destroy"
        response = client.post(
            destroy, data={"csrf_token": csrf_token(client, destroy), "confirm": "far"}
        )
        assert response.status_code == 302
        with hvmod.Hypervisor(LOCAL, pool_name=POOL, pool_path=str(pool_dir)) as here:
            assert here.state(name) == "missing"
            here.pool().refresh(0)
            assert not [v for v in here.pool().listVolumes() if v.startswith(name)]

    # the host stops answering (its sshd is gone): a member is told so, without the host's
    # URI (its login, address and key file); the operator sees why on the admin page
    port = remote_uri.split("@127.0.0.1:", 1)[1].split("/", 1)[0]
    response = client.post(
        "/compute/create",
        data={
            "csrf_token": csrf_token(client, "/compute/create"),
            "name": "far2",
            "plan": "demo",
            "image": "demo",
            "new_key": KEY,
        },
    )
    assert response.status_code == 302
    failed_path = response.headers["Location"]
    html = client.get(failed_path).get_data(as_text=True)
    assert "<dt>Problem</dt><dd>The virtual machine host does not answer.</dd>" in html
    response = client.post(
        f"{failed_path}/action",
        data={"csrf_token": csrf_token(client, failed_path), "action": "start"},
    )
    assert response.status_code == 302
    flashed = client.get(failed_path).get_data(as_text=True)
    assert '<p class="flash error">The virtual machine host does not answer.</p>' in flashed
    for page in (html, flashed):
        for secret in ("qemu+ssh", "keyfile", f":{port}"):
            assert secret not in page
    with app.app_context():
        session = db.session()
        (far1,) = hosts.check_hosts(session)
        assert not far1.up and far1.last_error.startswith(f"cannot connect to {remote_uri}")
        session.commit()
    html = admin.get("/compute/admin").get_data(as_text=True)
    assert 'level-bad">down<' in html and "cannot connect to qemu+ssh://root@127.0.0.1:" in html
    code, out = run("host", "list")
    assert code == 0 and "DOWN" in out, out
