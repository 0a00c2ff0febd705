"""The console's WebSocket through the deployed stack: nginx (deploy/nginx/clubstack.conf) in
front of gunicorn's gthread workers (deploy/gunicorn.conf.py), over TLS.

The capsul lives on libvirt's test driver, which has no console: the app accepts the upgrade
(so nginx and gunicorn carried it) and closes the socket saying why, which is what this checks.
The console itself, against a real guest, is tested in test_console.py.
"""

from __future__ import annotations

import email
import re
import ssl
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest
from simple_websocket import Client, ConnectionClosed, ConnectionError
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from clubstack.compute.models import Capsul, ConsoleSession, Host, Image, Plan
from clubstack.core.accounts.models import User
from tests.conftest import backend_missing, link_in
from tests.deploy.stack import NGINX, Stack

pytestmark = [pytest.mark.backend, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if NGINX is None:
        backend_missing("nginx", "the nginx binary is not installed")
    folder = tmp_path_factory.mktemp("nginx-console")
    folder.chmod(0o755)
    stack = Stack(folder)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def login(stack: Stack, address: str) -> object:
    web = stack.session()
    web.headers["Referer"] = stack.https + "/"  # Flask-WTF checks it on HTTPS, as browsers send
    outbox = stack.folder / "instance" / "outbox"
    before = set(outbox.glob("*.eml")) if outbox.exists() else set()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', web.get(stack.https + "/login").text)
    assert csrf
    assert web.post(stack.https + "/login", data={"email": address, "csrf_token": csrf.group(1)}).ok
    (mail,) = set(outbox.glob("*.eml")) - before
    link = link_in(email.message_from_bytes(Path(mail).read_bytes(), policy=policy.default))
    html = web.get(stack.https + "/" + link.split("://", 1)[1].split("/", 1)[1]).text
    token = re.search(r'name="token" value="([^"]+)"', html)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token and csrf
    answer = web.post(
        stack.https + "/login/confirm",
        allow_redirects=False,
        data={"token": token.group(1), "csrf_token": csrf.group(1)},
    )
    assert answer.status_code == 302
    return web


def test_console_socket_upgrades_through_nginx_and_gunicorn(stack: Stack) -> None:
    web = login(stack, "ann@example.org")
    engine = create_engine(f"sqlite:///{stack.folder / 'instance' / 'clubstack.db'}")
    with Session(engine) as session:
        ann = session.scalar(select(User).where(User.email == "ann@example.org"))
        host = Host(
            name="t",
            uri="test:///default",
            pool_name="default-pool",
            pool_path="/x",
            network="network:default",
            vcpus=2,
            memory_mib=4096,
            disk_gib=10,
            up=True,
        )
        image = Image(name="tiny", path="/x/base.qcow2")
        plan = Plan(name="p", vcpus=1, memory_mib=128, disk_gib=1, price_month_cents=730)
        session.add_all([host, image, plan])
        session.flush()
        capsul = Capsul(
            user_id=ann.id,
            host_id=host.id,
            plan_id=plan.id,
            image_id=image.id,
            name="deployed",
            domain_name="test",
            uuid="u-deploy",
            status="active",
            state="running",
        )
        session.add(capsul)
        session.commit()
        capsul_id = capsul.id

    page = web.get(f"{stack.https}/compute/capsuls/{capsul_id}/console")  # type: ignore[attr-defined]
    assert page.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    answer = web.post(
        f"{stack.https}/compute/capsuls/{capsul_id}/console/ticket",  # type: ignore[attr-defined]
        data={"csrf_token": csrf.group(1)},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 201, answer.text
    path = answer.json()["url"]
    cookies = "; ".join(f"{c.name}={c.value}" for c in web.cookies)  # type: ignore[attr-defined]
    tls = ssl.create_default_context(cafile=str(stack.cert))

    # another site's page is refused by the app, through nginx, before the upgrade
    with pytest.raises(ConnectionError) as refused:
        Client.connect(
            f"wss://127.0.0.1:{stack.https_port}{path}",
            ssl_context=tls,
            headers={"Cookie": cookies, "Origin": "https://evil.example"},
        )
    assert refused.value.status_code == 403

    ws = Client.connect(
        f"wss://127.0.0.1:{stack.https_port}{path}",
        ssl_context=tls,
        headers={"Cookie": cookies, "Origin": stack.https},
    )
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.receive(timeout=20)
    assert closed.value.reason == 4000
    assert "cannot open the console" in (closed.value.message or "")
    with Session(engine) as session:
        row = session.scalar(select(ConsoleSession).where(ConsoleSession.capsul_id == capsul_id))
        assert row is not None and row.ended_at is not None and row.end_reason == "error"
    # gunicorn's worker thread came back: the site still answers
    assert web.get(stack.https + "/").status_code == 200  # type: ignore[attr-defined]
