"""A member who locked themselves out types into their capsul's serial console (a WebSocket
to libvirt's console stream, against a live server and the tiny guest) and finds how to SSH
in: the forwarded port of user networking, or the DHCP lease libvirt reports."""

from __future__ import annotations

import logging
import re
import socket
import time
from typing import Any

import pytest
from simple_websocket import Client, ConnectionClosed, ConnectionError
from sqlalchemy import select, update

from clubstack.compute import console as console_logic
from clubstack.compute import hypervisor as h
from clubstack.compute.errors import HypervisorError
from clubstack.compute.models import Capsul, ConsoleSession, Host
from clubstack.core.db import db
from clubstack.settings import clear_settings_cache
from tests.compute.conftest import setup_compute, user_id
from tests.conftest import LiveServer, csrf_token, login

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ann@laptop"
TIME_LIMIT = 15


@pytest.fixture
def console_app(
    make_app: Any, test_host: dict[str, str], guest: Any, domain_type: str, ledger: Any
) -> Any:
    """The compute test app on a host with user networking, and a short console limit."""
    app = make_app(
        compute_stop_timeout="20",
        compute_min_credit_hours="24",
        compute_console_time_limit=str(TIME_LIMIT),
        compute_console_ticket_seconds="60",
        compute_ssh_forward_ports="22400-22499",
    )
    setup_compute(app, test_host, guest, domain_type, ledger)
    with app.app_context():
        session = db.session()
        session.execute(update(Host).values(network="user"))
        session.commit()
    return app


def create_capsul(app: Any, client: Any, ledger: Any, address: str, name: str) -> str:
    login(client, app, address, nickname=name)
    ledger.credit(user_id(app, address), 5000)
    response = client.post(
        "/compute/create",
        data={
            "csrf_token": csrf_token(client, "/compute/create"),
            "name": name,
            "plan": "f1-xs",
            "image": "tiny",
            "new_key": KEY,
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"].rsplit("/", 1)[1]


def ticket(client: Any, capsul_id: str) -> str:
    token = csrf_token(client, f"/compute/capsuls/{capsul_id}/console")
    response = client.post(
        f"/compute/capsuls/{capsul_id}/console/ticket",
        data={"csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["url"]


def cookie(app: Any, client: Any) -> str:
    value = client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    return f"{app.config['SESSION_COOKIE_NAME']}={value}"


def connect(
    server: LiveServer, path: str, cookie_header: str | None, origin: str | None = ""
) -> Client:
    headers = {}
    if cookie_header:
        headers["Cookie"] = cookie_header
    if origin is not None:
        headers["Origin"] = origin or server.url
    return Client.connect(f"ws://127.0.0.1:{server.port}{path}", headers=headers)


def read_until(ws: Client, needle: bytes, timeout: float = 30.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} not in console output: {seen[-400:]!r}"
        data = ws.receive(timeout=left)
        if data:
            seen += data if isinstance(data, bytes) else data.encode()
    return seen


def refused(
    server: LiveServer, path: str, cookie_header: str | None, origin: str | None = ""
) -> int:
    with pytest.raises(ConnectionError) as caught:
        connect(server, path, cookie_header, origin)
    return caught.value.status_code


def serve(app: Any, monkeypatch: Any) -> LiveServer:
    """A live server, and the site's base URL set to it (the origin its pages have)."""
    server = LiveServer(app)
    monkeypatch.setenv("CLUBSTACK_BASE_URL", server.url)
    clear_settings_cache()
    return server


def test_owner_types_into_the_console_others_cannot(console_app, ledger, hv, caplog, monkeypatch):
    app = console_app
    ann = app.test_client()
    capsul_id = create_capsul(app, ann, ledger, "ann@example.org", "rescue1")
    with app.app_context():
        name = db.session().get(Capsul, capsul_id).domain_name
    hv.wait_for_console(name, "CLUBSTACK-GUEST ready", 90)
    server = serve(app, monkeypatch)
    caplog.set_level(logging.INFO, logger="clubstack.compute.console")
    try:
        # the status page says where SSH is: QEMU listens there, on loopback, for the guest
        html = ann.get(f"/compute/capsuls/{capsul_id}").get_data(as_text=True)
        match = re.search(r'id="ssh">host <code>127\.0\.0\.1</code> port <code>(\d+)</code>', html)
        assert match, html
        port = int(match.group(1))
        assert 22400 <= port <= 22499
        assert h.ssh_forward(hv.lookup(name).XMLDesc(0)) == ("127.0.0.1", port)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        api = ann.get(f"/compute/api/capsuls/{capsul_id}").get_json()
        assert api["ssh"] == {"host": "127.0.0.1", "port": port}

        # the owner opens the console and runs a command in the guest's shell
        ann_cookie = cookie(app, ann)
        path = ticket(ann, capsul_id)
        ws = connect(server, path, ann_cookie)
        ws.send("\r")
        read_until(ws, b"# ")
        ws.send("echo console-$((6*7))\r")
        assert b"console-42\r\n" in read_until(ws, b"console-42\r\n")

        # one console per capsul: a second one (a fresh ticket) is told the console is taken
        second = connect(server, ticket(ann, capsul_id), ann_cookie)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                second.receive(timeout=10)
        assert "already on this capsul's console" in (closed.value.message or "")

        # a used ticket, no ticket, another site's page, no login: refused before the upgrade
        assert refused(server, path, ann_cookie) == 403
        assert refused(server, path.split("?")[0], ann_cookie) == 403
        fresh = ticket(ann, capsul_id)
        assert refused(server, fresh, ann_cookie, origin="http://evil.example") == 403
        assert refused(server, fresh, ann_cookie, origin=None) == 403
        assert refused(server, fresh, None) == 403
        # ... and the ticket those refusals carried is still the owner's, unused
        ws.close()
        time.sleep(0.5)

        # another member gets neither a ticket nor the socket, even holding ann's ticket
        bob = app.test_client()
        login(bob, app, "bob@example.org", nickname="bob")
        page = bob.get(f"/compute/capsuls/{capsul_id}/console")
        assert page.status_code == 404
        token = csrf_token(bob, "/compute/keys")
        assert (
            bob.post(
                f"/compute/capsuls/{capsul_id}/console/ticket", data={"csrf_token": token}
            ).status_code
            == 404
        )
        assert refused(server, fresh, cookie(app, bob)) == 404
        # without the page's CSRF token there is no ticket
        assert ann.post(f"/compute/capsuls/{capsul_id}/console/ticket").status_code == 400

        # the time limit closes an idle console, saying why
        ws = connect(server, fresh, ann_cookie)
        opened = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.receive(timeout=TIME_LIMIT + 10)
        took = time.monotonic() - opened
        assert TIME_LIMIT - 1 < took < TIME_LIMIT + 8
        assert "closes after" in (closed.value.message or "")
    finally:
        server.stop()

    # the audit: who, which capsul, when, bytes; never what was typed or shown
    with app.app_context():
        rows = (
            db.session()
            .scalars(
                select(ConsoleSession)
                .where(ConsoleSession.started_at.is_not(None))
                .order_by(ConsoleSession.started_at)
            )
            .all()
        )
        assert [r.end_reason for r in rows] == ["left", "error", "time-limit"]
        assert all(r.ended_at and r.user_id == user_id(app, "ann@example.org") for r in rows)
        assert rows[0].bytes_in == len("\recho console-$((6*7))\r")
        assert rows[0].bytes_out > len("console-42")
    lines = [r.getMessage() for r in caplog.records if r.name == "clubstack.compute.console"]
    assert any(f"capsul={capsul_id}" in line and "reason=left" in line for line in lines)
    assert not any("console-" in line or "echo" in line for line in lines)


@pytest.mark.browser
def test_console_in_a_browser(console_app, ledger, hv, page, monkeypatch):
    app = console_app
    client = app.test_client()
    capsul_id = create_capsul(app, client, ledger, "ann@example.org", "rescue2")
    with app.app_context():
        name = db.session().get(Capsul, capsul_id).domain_name
    hv.wait_for_console(name, "CLUBSTACK-GUEST ready", 90)
    from playwright.sync_api import expect

    server = serve(app, monkeypatch)
    try:
        value = client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
        page.context.add_cookies(
            [
                {
                    "name": app.config["SESSION_COOKIE_NAME"],
                    "value": value,
                    "domain": "127.0.0.1",
                    "path": "/",
                }
            ]
        )
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "console",
            lambda m: errors.append(m.text) if m.type == "error" and "Refused" in m.text else None,
        )  # CSP violations
        page.goto(f"{server.url}/compute/capsuls/{capsul_id}/console")
        page.get_by_role("button", name="Open the console").click()
        page.wait_for_selector("text=Connected.")
        page.get_by_label("Send a line").fill("echo browser-$((6*7))")
        page.get_by_role("button", name="Send").click()
        expect(page.locator("#screen")).to_contain_text(re.compile(r"^browser-42$", re.M))
        # typing straight into the console works too
        page.locator("#screen").focus()
        page.keyboard.type("echo keys-$((2*3))")
        page.keyboard.press("Enter")
        expect(page.locator("#screen")).to_contain_text(re.compile(r"^keys-6$", re.M))
        assert not errors  # no CSP violation, no script error
        page.get_by_role("button", name="Close").click()
        page.wait_for_selector("text=Disconnected")
    finally:
        server.stop()


def test_lease_addresses_are_read_from_libvirt(make_app, ledger):
    """With a libvirt network, the address is the guest's DHCP lease as libvirt reports it.

    libvirt's test driver reports a lease for its built-in domain ``test``; a real libvirt
    network needs dnsmasq and a bridge in the host's network namespace (see docs/compute.md).
    """
    with h.Hypervisor("test:///default", pool_name="default-pool", pool_path="/x") as hv:
        assert hv.addresses("test") == ["192.168.122.3"]
        assert hv.ssh_forward("test") is None
    app = make_app()
    with app.app_context():
        session = db.session()
        from clubstack.compute.models import Image, Plan

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
        session.commit()
        ids = host.id, plan.id, image.id
    client = app.test_client()
    login(client, app, "ann@example.org", nickname="ann")
    with app.app_context():
        session = db.session()
        capsul = Capsul(
            user_id=user_id(app, "ann@example.org"),
            host_id=ids[0],
            plan_id=ids[1],
            image_id=ids[2],
            name="leased",
            domain_name="test",
            uuid="u-1",
            status="active",
        )
        session.add(capsul)
        session.commit()
        capsul_id = capsul.id
    html = client.get(f"/compute/capsuls/{capsul_id}").get_data(as_text=True)
    assert 'id="addresses">192.168.122.3<' in html
    assert 'id="ssh"' not in html
    # without JavaScript the console page says what the live console needs
    page = client.get(f"/compute/capsuls/{capsul_id}/console").get_data(as_text=True)
    assert "<noscript><p>The live console needs JavaScript" in page
    assert '<form id="console-open" method="post" hidden' in page


# --- the pieces, without servers ----------------------------------------------------------


def test_domain_xml_forwards_the_ssh_port_of_user_networking():
    spec = h.DomainSpec(
        name="capsul-a",
        uuid="00000000-0000-0000-0000-000000000001",
        capsul_id="c",
        owner_id="1",
        vcpus=1,
        memory_mib=128,
        disk_path="/d",
        seed_path="/s",
        console_log="/l",
        network="user",
        ssh_port=22001,
    )
    xml = h.domain_xml(spec)
    assert h.ssh_forward(xml) == ("127.0.0.1", 22001)
    assert "<interface" not in xml  # QEMU's own NIC carries the forward
    with pytest.raises(HypervisorError):
        h.domain_xml(h.DomainSpec(**{**spec.__dict__, "ssh_address": "127.0.0.1,hostfwd=x"}))
    assert h.ssh_forward(h.domain_xml(h.DomainSpec(**{**spec.__dict__, "ssh_port": None}))) is None


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        ("https://club.example", True),
        ("http://127.0.0.1:5000", True),
        ("https://evil.example", False),
        ("null", False),
        (None, False),
        ("", False),
        ("https://club.example.evil.example", False),
        ("file://", False),
    ],
)
def test_origin_must_be_this_site(origin, ok):
    assert console_logic.origin_allowed(origin, "https://club.example", "127.0.0.1:5000") is ok


class FakeConsole:
    def __init__(self, output: list[bytes | None]) -> None:
        self.output = output
        self.written = b""

    def read(self, timeout: float = 0.0) -> bytes | None:
        return self.output.pop(0) if self.output else b""

    def write(self, data: bytes) -> None:
        self.written += data


class FakePeer:
    def __init__(self, typed: list[bytes], leave_after: int = 10**9) -> None:
        self.typed, self.sent, self.calls, self.leave_after = typed, b"", 0, leave_after

    def receive(self, timeout: float) -> bytes | None:
        self.calls += 1
        if self.calls > self.leave_after:
            raise console_logic.PeerGone()
        return self.typed.pop(0) if self.typed else None

    def send(self, data: bytes) -> None:
        self.sent += data


def test_relay_counts_bytes_and_stops_at_the_limit():
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    console = FakeConsole([b"login: "])
    peer = FakePeer([b"x" * 5000, b"ls\r"])
    outcome = console_logic.relay(console, peer, time_limit=10, clock=clock)
    assert outcome.reason == "time-limit"
    assert console.written == b"x" * console_logic.MAX_INPUT + b"ls\r"
    assert peer.sent == b"login: "
    assert (outcome.bytes_in, outcome.bytes_out) == (console_logic.MAX_INPUT + 3, 7)
    assert console_logic.relay(FakeConsole([]), FakePeer([], leave_after=2), 10).reason == "left"
    assert console_logic.relay(FakeConsole([None]), FakePeer([]), 10).reason == "guest-ended"


def test_tickets_are_one_time_short_lived_and_consoles_are_capped(make_app):
    from datetime import timedelta

    from clubstack.compute.errors import ConsoleBusy, ConsoleRefused, ConsolesFull, WrongState
    from clubstack.compute.models import Image, Plan
    from clubstack.core.accounts.models import User
    from clubstack.core.clock import utcnow

    app = make_app()
    with app.app_context():
        session = db.session()
        ann, bob = User(email="ann@example.org"), User(email="bob@example.org")
        host = Host(name="t", uri="test:///default", pool_path="/x", network="none")
        image = Image(name="tiny", path="/x/base.qcow2")
        plan = Plan(name="p", vcpus=1, memory_mib=128, disk_gib=1, price_month_cents=730)
        session.add_all([ann, bob, host, image, plan])
        session.flush()
        made = [
            Capsul(user_id=ann.id, host_id=host.id, plan_id=plan.id, image_id=image.id,
                   name=f"c{i}", domain_name=f"capsul-{i}", uuid=f"u-{i}", status="active",
                   state="running")
            for i in range(4)
        ]  # fmt: skip
        session.add_all(made)
        session.flush()
        now = utcnow()
        limits = {"ticket_seconds": 30, "time_limit": 600, "max_open": 3, "max_per_member": 2}

        def claim(capsul: Capsul, ticket: str, user: User = ann, at: Any = now) -> Any:
            return console_logic.claim(session, ticket, capsul.id, user.id, at, **limits)

        def issue(capsul: Capsul) -> str:
            return console_logic.issue_ticket(session, capsul, ann.id).id

        t0 = issue(made[0])
        assert len(t0) >= 22  # 128 random bits
        with pytest.raises(ConsoleRefused):
            claim(made[0], t0, user=bob)  # another member's ticket
        with pytest.raises(ConsoleRefused):
            claim(made[1], t0)  # for another capsul
        with pytest.raises(ConsoleRefused):
            claim(made[0], t0, at=now + timedelta(seconds=31))  # expired
        with pytest.raises(ConsoleRefused):
            claim(made[0], "")
        first = claim(made[0], t0)
        assert first.started_at is not None
        with pytest.raises(ConsoleRefused):
            claim(made[0], t0)  # used
        claim(made[1], issue(made[1]))
        with pytest.raises(ConsoleBusy):  # two open for ann
            claim(made[2], issue(made[2]))
        with pytest.raises(WrongState):
            made[3].state = "stopped"
            issue(made[3])
        # a third console on the site (bob's) fits, a fourth does not
        bobs = Capsul(user_id=bob.id, host_id=host.id, plan_id=plan.id, image_id=image.id,
                      name="b", domain_name="capsul-b", uuid="u-b", status="active",
                      state="running")  # fmt: skip
        session.add(bobs)
        session.flush()

        def bob_ticket() -> str:
            return console_logic.issue_ticket(session, bobs, bob.id).id

        claim(bobs, bob_ticket(), user=bob)
        with pytest.raises(ConsolesFull):
            claim(bobs, bob_ticket(), user=bob)
        # ending one frees its place; a row a crashed worker left open stops counting later
        console_logic.finish(session, first, console_logic.Outcome(1, 2, "left"), now)
        claim(bobs, bob_ticket(), user=bob)
        later = now + timedelta(seconds=600 + 61)
        late = console_logic.issue_ticket(session, bobs, bob.id)
        late.issued_at = later
        session.flush()
        claim(bobs, late.id, user=bob, at=later)
