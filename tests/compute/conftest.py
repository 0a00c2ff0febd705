"""Real libvirtd + QEMU for the compute tests: one storage pool and one tiny guest per run."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

try:
    import libvirt
except ModuleNotFoundError:  # pragma: no cover - a dev machine without the bindings
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise
    pytest.skip("libvirt-python is not installed", allow_module_level=True)

from clubstack.billing import ledger as billing_ledger
from clubstack.billing.models import LedgerEntry
from clubstack.compute import hypervisor as hvmod
from clubstack.compute import tinyguest
from clubstack.compute.models import Host, Image, Plan
from clubstack.core import clock
from clubstack.core.accounts.models import User
from clubstack.core.db import db

RUN = f"t{os.getpid() % 100000}"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
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
    with hvmod.Hypervisor(
        libvirt_uri, pool_name=conf["pool_name"], pool_path=conf["pool_path"]
    ) as hv:
        for dom in hv.conn.listAllDomains(0):
            with contextlib.suppress(libvirt.libvirtError):
                if str(pool_dir) in dom.XMLDesc(0):
                    if dom.isActive():
                        dom.destroy()
                    dom.undefine()
        hv.remove_pool()


@pytest.fixture(scope="session")
def hv(test_host: dict[str, str]) -> Iterator[hvmod.Hypervisor]:
    with hvmod.Hypervisor(
        test_host["uri"], pool_name=test_host["pool_name"], pool_path=test_host["pool_path"]
    ) as conn:
        conn.pool()
        yield conn


@pytest.fixture(scope="session")
def domain_type(hv: hvmod.Hypervisor, guest: tinyguest.TinyGuest) -> str:
    return hv.detect_domain_type(str(guest.kernel), str(guest.initrd))


# --- billing -------------------------------------------------------------------------------


class Ledger:
    """The real billing ledger (clubstack.billing), with test conveniences: credit a member
    and read the usage entries compute wrote. Uses its own session, so call it when the
    test's session has committed (SQLite allows one writer)."""

    def __init__(self) -> None:
        self.app: Any = None
        self.n = 0

    def _write(self, fn: Any) -> None:
        with Session(db.engine) as session:
            fn(session)
            session.commit()

    def credit(self, user_id: int, cents: int) -> None:
        self.n += 1
        key = f"test-credit-{user_id}-{self.n}-{os.getpid()}"
        self._write(
            lambda s: billing_ledger.credit(
                s, user_id, cents, reason="test credit", reference="test", idempotency_key=key
            )
        )

    def set_balance(self, user_id: int, cents: int) -> None:
        with Session(db.engine) as session:
            diff = cents - billing_ledger.balance(session, user_id)
        if diff:
            self.n += 1
            key = f"test-adjust-{user_id}-{self.n}-{os.getpid()}"
            self._write(
                lambda s: billing_ledger.adjust(
                    s, user_id, diff, note="test", by_user_id=None, idempotency_key=key
                )
            )

    def balance(self, session: Any, user_id: int) -> int:
        return billing_ledger.balance(session, user_id)

    @property
    def entries(self) -> list[dict[str, Any]]:
        """Usage charged by compute, oldest first."""
        with Session(db.engine) as session:
            rows = session.scalars(
                select(LedgerEntry).where(LedgerEntry.kind == "usage").order_by(LedgerEntry.id)
            )
            return [
                {
                    "user": e.user_id,
                    "amount": -e.amount_cents,
                    "key": e.idempotency_key,
                    "reason": e.reason,
                }
                for e in rows
            ]


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


# --- an app with a host, an image (the tiny guest) and plans -------------------------------


def add_host_and_image(
    session: Any,
    name: str,
    host: dict[str, str],
    guest: tinyguest.TinyGuest,
    domain_type: str,
) -> None:
    """A host (``host``: its uri, pool_name and pool_path) and the tiny guest as image "tiny"."""
    session.add(
        Host(
            name=name,
            uri=host["uri"],
            pool_name=host["pool_name"],
            pool_path=host["pool_path"],
            network="none",
            domain_type=domain_type,
            vcpus=2,
            memory_mib=4096,
            disk_gib=100,
            up=True,
            last_seen_at=clock.utcnow(),
        )
    )
    session.add(
        Image(
            name="tiny",
            title="Tiny busybox guest",
            path=str(guest.disk),
            kernel=str(guest.kernel),
            initrd=str(guest.initrd),
            cmdline=guest.cmdline,
        )
    )


def setup_compute(
    app: Any,
    test_host: dict[str, str],
    guest: tinyguest.TinyGuest,
    domain_type: str,
    ledger: Ledger,
) -> Any:
    """The test host, the tiny guest as an image, and a few plans."""
    with app.app_context():
        session = db.session()
        add_host_and_image(session, "test", test_host, guest, domain_type)
        session.add(
            Plan(name="f1-xs", vcpus=1, memory_mib=128, disk_gib=1, price_month_cents=730)
        )  # 1 cent per hour
        session.add(
            Plan(name="f1-s", vcpus=1, memory_mib=256, disk_gib=2, price_month_cents=7300)
        )  # 10 cents per hour
        session.add(
            Plan(name="huge", vcpus=1, memory_mib=1 << 19, disk_gib=1, price_month_cents=100)
        )
        session.commit()
    if ledger is not None:
        ledger.app = app
    return app


@pytest.fixture
def compute_app(
    make_app: Any,
    test_host: dict[str, str],
    guest: tinyguest.TinyGuest,
    domain_type: str,
    ledger: Ledger,
) -> Any:
    app = make_app(compute_stop_timeout="20", compute_min_credit_hours="24")
    return setup_compute(app, test_host, guest, domain_type, ledger)


@pytest.fixture
def compute_app_any_db(
    make_app: Any,
    db_kind: str,
    test_host: dict[str, str],
    guest: tinyguest.TinyGuest,
    domain_type: str,
    ledger: Ledger,
) -> Any:
    """The same, on SQLite, PostgreSQL and MariaDB."""
    app = make_app(db_kind, compute_stop_timeout="20", compute_min_credit_hours="24")
    return setup_compute(app, test_host, guest, domain_type, ledger)


def user_id(app: Any, address: str) -> int:
    with app.app_context():
        return db.session().scalar(select(User.id).where(User.email == address))


def make_user(app: Any, address: str) -> int:
    with app.app_context():
        session = db.session()
        user = User(email=address)
        session.add(user)
        session.commit()
        return user.id


def wait_until(predicate: Any, timeout: float = 30.0, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)
