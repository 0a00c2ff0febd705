"""Real libvirtd + QEMU for the compute tests: one storage pool and one tiny guest per run."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

libvirt = pytest.importorskip("libvirt")

from clubstack.compute import hypervisor as hvmod  # noqa: E402
from clubstack.compute import tinyguest  # noqa: E402

RUN = f"t{os.getpid() % 100000}"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"libvirt/QEMU required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def libvirt_uri() -> str:
    try:
        tinyguest.ensure_local_libvirtd()
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        _unavailable(f"libvirtd: {exc}")
    return "qemu:///system"


@pytest.fixture(scope="session")
def guest() -> tinyguest.TinyGuest:
    try:
        return tinyguest.build()
    except FileNotFoundError as exc:
        _unavailable(str(exc))
        raise


@pytest.fixture(scope="session")
def pool_dir() -> Iterator[Path]:
    # Under /var/tmp and world-traversable: QEMU runs as libvirt-qemu, not as us.
    path = Path(tempfile.mkdtemp(prefix=f"clubstack-{RUN}-", dir="/var/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def test_host(libvirt_uri: str, pool_dir: Path) -> Iterator[dict[str, str]]:
    """Connection settings of the test host; everything made on it is removed at the end."""
    conf = {"uri": libvirt_uri, "pool_name": f"clubstack-{RUN}", "pool_path": str(pool_dir)}
    yield conf
    with hvmod.Hypervisor(libvirt_uri, pool_name=conf["pool_name"],
                          pool_path=conf["pool_path"]) as hv:
        for dom in hv.conn.listAllDomains(0):
            with contextlib.suppress(libvirt.libvirtError):
                if str(pool_dir) in dom.XMLDesc(0):
                    if dom.isActive():
                        dom.destroy()
                    dom.undefine()
        hv.remove_pool()


@pytest.fixture(scope="session")
def hv(test_host: dict[str, str]) -> Iterator[hvmod.Hypervisor]:
    with hvmod.Hypervisor(test_host["uri"], pool_name=test_host["pool_name"],
                          pool_path=test_host["pool_path"]) as conn:
        conn.pool()
        yield conn


@pytest.fixture(scope="session")
def domain_type(hv: hvmod.Hypervisor, guest: tinyguest.TinyGuest) -> str:
    return hv.detect_domain_type(str(guest.kernel), str(guest.initrd))
