"""The servers a fleet shares: a PostgreSQL database of the run's own, Redis, and stand-ins
for the outside world on loopback (DNS, SMTP)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import BACKEND_URLS, SMTPSink, backend_missing, redis_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lookup"))
from lookup_dns import FIXTURE_ZONE, LocalDNS, ZoneResolver

# --- the shared servers ------------------------------------------------------------------------


@pytest.fixture
def fleet_database() -> Iterator[str]:
    """A PostgreSQL database of this run's own, dropped afterwards."""
    base = make_url(BACKEND_URLS["postgres"])
    name = f"clubstack_fleet_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(
            base, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        backend_missing("postgres", str(error).splitlines()[0])
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def fleet_redis() -> str:
    return redis_url()  # flushed: the fleet's processes use the tests' Redis database


@pytest.fixture
def dns() -> Iterator[LocalDNS]:
    """The look-up tests' fixture zones; slow.example.com answers after 3 s (a job in flight)."""
    server = LocalDNS(ZoneResolver(FIXTURE_ZONE, delays={"slow.example.com": 3.0})).start()
    yield server
    server.stop()


@pytest.fixture
def smtp() -> Iterator[SMTPSink]:
    sink = SMTPSink()
    yield sink
    sink.stop()


@pytest.fixture
def work() -> Iterator[Path]:
    # Under /var/tmp and world-traversable: QEMU runs as libvirt-qemu, not as us.
    path = Path(tempfile.mkdtemp(prefix="clubstack-fleet-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
