"""Fixtures every service's tests share: apps on real databases, a real SMTP server, a live
server and a real browser. With CI=true a missing backend fails instead of skipping."""

from __future__ import annotations

import contextlib
import email
import hashlib
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from clubstack.core import clock
from clubstack.core.db import Base, db
from clubstack.core.migrate import upgrade
from clubstack.core.net import reset_http
from clubstack.services import all_metadata
from clubstack.settings import clear_settings_cache
from tests.httpstub import Handler, StubServer

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKEND_URLS = {
    "postgres": os.environ.get(
        "CLUBSTACK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    ),
    "mariadb": os.environ.get(
        "CLUBSTACK_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
    ),
    "redis": os.environ.get("CLUBSTACK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
}
# Per checkout and per xdist worker, so parallel test runs never drop each other's database.
WORKER = (
    os.environ.get("PYTEST_XDIST_WORKER", "main")
    + hashlib.sha1(str(Path(__file__).resolve()).encode()).hexdigest()[:6]
)


def backend_missing(name: str, why: str) -> None:
    """Skip on a developer's machine; fail in CI, where every backend must be there."""
    if CI:
        pytest.fail(f"{name} is required in CI but unreachable: {why}")
    pytest.skip(f"{name} unreachable: {why}")


# --- databases --------------------------------------------------------------------------------

_migrated: dict[str, str] = {}


def _server_database(kind: str) -> str:
    """A fresh database on the real server for this test session, migrated once."""
    if kind in _migrated:
        return _migrated[kind]
    base = make_url(BACKEND_URLS[kind])
    name = f"clubstack_test_{WORKER}"
    try:
        admin = create_engine(
            base, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )
        with admin.connect() as conn:
            if kind == "postgres":
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
                conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        admin.dispose()
    except Exception as error:
        backend_missing(kind, str(error).splitlines()[0])
    url = base.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    _migrated[kind] = url
    return url


_sqlite_template: dict[str, Path] = {}


def _sqlite_database(folder: Path, tmp_factory: pytest.TempPathFactory) -> str:
    """Migrate one SQLite file per session and copy it for each test: fast and isolated."""
    if "file" not in _sqlite_template:
        template = tmp_factory.mktemp("sqlite-template") / "clubstack.db"
        upgrade(f"sqlite:///{template}")
        _sqlite_template["file"] = template
    target = folder / "clubstack.db"
    shutil.copy(_sqlite_template["file"], target)
    return f"sqlite:///{target}"


def _empty_tables(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "mysql":
            conn.execute(text("SET FOREIGN_KEY_CHECKS=0"))
        for table in reversed(all_metadata().sorted_tables):
            conn.execute(table.delete())
        if engine.dialect.name == "mysql":
            conn.execute(text("SET FOREIGN_KEY_CHECKS=1"))
    engine.dispose()


def database_url(kind: str, folder: Path, tmp_factory: pytest.TempPathFactory) -> str:
    if kind == "sqlite":
        return _sqlite_database(folder, tmp_factory)
    url = _server_database(kind)
    _empty_tables(url)
    return url


def redis_url() -> str:
    import redis

    url = BACKEND_URLS["redis"]
    try:
        client = redis.Redis.from_url(url, socket_timeout=3)
        client.flushdb()
        client.close()
    except Exception as error:
        backend_missing("redis", str(error))
    return url


# --- apps -------------------------------------------------------------------------------------


@pytest.fixture
def make_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Any]]:
    """Build an app: make_app(db="sqlite"|"postgres"|"mariadb", redis=False, **settings).

    Settings are passed as CLUBSTACK_* environment variables, exactly as an operator sets them.
    """

    def build(
        db_kind: str = "sqlite", redis: bool = False, csrf: bool = True, **settings: Any
    ) -> Any:
        instance = tmp_path / "instance"
        instance.mkdir(exist_ok=True)
        monkeypatch.setenv("CLUBSTACK_INSTANCE", str(instance))
        monkeypatch.setenv(
            "CLUBSTACK_DATABASE_URL", database_url(db_kind, instance, tmp_path_factory)
        )
        monkeypatch.setenv("CLUBSTACK_JOBS_IMMEDIATE", "true")
        monkeypatch.setenv("CLUBSTACK_SECRET_KEY", "test-secret-key-" + "x" * 32)
        if redis:
            monkeypatch.setenv("CLUBSTACK_REDIS_URL", redis_url())
        # A port of its own, free now, so a LiveServer of this app serves at its base URL and
        # the absolute links the app builds from it (mails, API answers) lead back to it.
        monkeypatch.setenv("CLUBSTACK_BASE_URL", f"http://127.0.0.1:{free_port()}")
        for key, value in settings.items():
            monkeypatch.setenv(f"CLUBSTACK_{key.upper()}", str(value))
        clear_settings_cache()
        reset_http()
        from clubstack.app import create_app
        from clubstack.core.web import limiter

        app = create_app()
        app.config["TESTING"] = True
        app.config["WTF_CSRF_ENABLED"] = csrf
        if limiter.storage.check():  # a test may point the limits at a Redis that is down
            limiter.reset()
        return app

    yield build
    db.dispose()
    clock.reset()
    clear_settings_cache()
    reset_http()


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def db_kind(request: pytest.FixtureRequest) -> str:
    """Parametrise a test over the three databases."""
    return request.param


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def session(app: Any) -> Iterator[Any]:
    """A database session on the app's database (outside any request)."""
    with app.app_context():
        yield db.session()


# --- mail -------------------------------------------------------------------------------------


def outbox_messages(app: Any) -> list[Message]:
    folder = Path(app.config["CLUBSTACK"].instance) / "outbox"
    return [email.message_from_bytes(p.read_bytes()) for p in sorted(folder.glob("*.eml"))]


def message_text(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()  # type: ignore[union-attr]
    return ""


def link_in(message: Message, pattern: str = r"https?://\S+") -> str:
    match = re.search(pattern, message_text(message))
    assert match, f"no link in mail {message['Subject']!r}"
    return match.group(0)


def csrf_token(client: Any, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client: Any, app: Any, address: str, nickname: str | None = None) -> None:
    """Log in through the real magic-link flow (request, mail in the outbox, confirm)."""
    before = len(outbox_messages(app))
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"email": address, "csrf_token": token})
    assert response.status_code == 200, response.get_data(as_text=True)
    mail = outbox_messages(app)[before]
    url = link_in(mail)
    path = url.split("://", 1)[1].split("/", 1)[1]
    confirm_page = client.get("/" + path)
    assert confirm_page.status_code == 200
    html = confirm_page.get_data(as_text=True)
    link_token = re.search(r'name="token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    response = client.post("/login/confirm", data={"token": link_token, "csrf_token": csrf})
    assert response.status_code == 302
    if nickname:
        csrf = csrf_token(client, "/account")
        response = client.post("/account/nickname", data={"nickname": nickname, "csrf_token": csrf})
        assert response.status_code == 302, response.get_data(as_text=True)


def make_admin(app: Any, address: str) -> None:
    from sqlalchemy import select

    from clubstack.core.accounts.models import User

    with app.app_context():
        session = db.session()
        user = session.scalar(select(User).where(User.email == address))
        if user is None:
            user = User(email=address)
            session.add(user)
        user.role = "admin"
        session.commit()


def api_token(client: Any, name: str = "test") -> str:
    csrf = csrf_token(client, "/account")
    page = client.post("/account/tokens", data={"name": name, "csrf_token": csrf})
    match = re.search(r'id="new-token">([^<]+)<', page.get_data(as_text=True))
    assert match, "token not shown"
    return match.group(1)


@pytest.fixture
def member(app: Any, client: Any) -> Any:
    """A logged-in member (with a nickname) on the default app; returns the client."""
    login(client, app, "member@example.org", nickname="member1")
    return client


@pytest.fixture
def admin(app: Any) -> Any:
    """A logged-in admin client on the default app."""
    client = app.test_client()
    make_admin(app, "admin@example.org")
    login(client, app, "admin@example.org", nickname="admin1")
    return client


# --- real servers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def http_stub() -> Iterator[Callable[..., StubServer]]:
    """Start local HTTP stand-ins: ``http_stub(handler)`` (see tests/httpstub.py); each is
    stopped after the test."""
    started: list[StubServer] = []

    def start(handler: Handler, **options: Any) -> StubServer:
        server = StubServer(handler, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class SMTPSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages.append(email.message_from_bytes(envelope.content))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def wait_for(self, count: int, timeout: float = 10) -> list[Message]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def smtp() -> Iterator[SMTPSink]:
    sink = SMTPSink()
    yield sink
    sink.stop()


class LiveServer:
    """The app served by werkzeug in a thread on a free loopback port."""

    def __init__(self, app: Any) -> None:
        from werkzeug.serving import make_server

        base = urlsplit(app.config["CLUBSTACK"].base_url)
        server = None
        if base.hostname == "127.0.0.1" and base.port:  # serve where the app's links point
            with contextlib.suppress(OSError):  # taken meanwhile: any free port will do
                server = make_server("127.0.0.1", base.port, app, threaded=True)
        self.server = server or make_server("127.0.0.1", free_port(), app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def live_server(app: Any) -> Iterator[LiveServer]:
    server = LiveServer(app)
    yield server
    server.stop()


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright, headless."""
    if not Path("/usr/bin/chromium").exists():
        backend_missing("chromium", "/usr/bin/chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


__all__ = ["Base"]
