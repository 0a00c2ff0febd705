"""A busy evening on a fleet: two web nodes behind nginx, a site worker, a sandbox node, one
PostgreSQL database, one Redis, a libvirt host reached as a remote one. Members log in, drop
messages, run look-ups, submit contest programs and rent a capsul while nodes die: every
request succeeds or gets a clear answer, every job finishes exactly once, limits are shared,
and the books balance. (Issue #17; the settings of each node kind: docs/operations.md.)"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import threading
import time
import uuid
from collections.abc import Callable
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tests.compute.conftest import _unavailable, add_host_and_image
from tests.conftest import SMTPSink, message_text
from tests.fleet.conftest import LocalDNS
from tests.fleet.nodes import SANDBOX_USER, Fleet, Node
from tests.fleet.remote_libvirt import RemoteHostUnavailable, remote_libvirt_host
from tests.lookup.lookup_http import VT_KEY, ProviderServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STARTERS = ROOT / "src" / "clubstack" / "contest" / "starters"
DROPS_PER_MINUTE = 6
VT_PER_DAY = 3  # VirusTotal requests the whole fleet may send (CLUBSTACK_LOOKUP_VIRUSTOTAL_PER_DAY)
QUOTA_BATCH = ["one.example.org", "two.example.org", "three.example.org"]
SSH_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ann@laptop"
)


# --- a member's browser ------------------------------------------------------------------------


class Member:
    """A member's HTTP client on the fleet (through nginx), with what they were answered."""

    def __init__(self, fleet: Fleet, address: str) -> None:
        self.fleet, self.address = fleet, address
        self.http = fleet.session()
        # As a browser does: forms over HTTPS must come from this site (WTF_CSRF_SSL_STRICT).
        self.http.headers["Referer"] = fleet.base_url + "/"
        self.answers: list[requests.Response] = []
        self.token = ""

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)  # a hang fails the test instead of stalling it
        kwargs.setdefault("allow_redirects", False)
        response = self.http.request(method, self.fleet.base_url + path, **kwargs)
        self.answers.append(response)
        return response

    def csrf(self, path: str) -> str:
        page = self.request("GET", path).text
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def login(self, smtp: SMTPSink, nickname: str) -> None:
        before = len(smtp.messages)
        response = self.request(
            "POST", "/login", data={"email": self.address, "csrf_token": self.csrf("/login")}
        )
        assert response.status_code == 200, response.text
        mail = _wait_for_mail(smtp, self.address, before)
        link = re.search(r"https?://\S+", message_text(mail))
        assert link, "no link in the login mail"
        path = "/" + link.group(0).split("://", 1)[1].split("/", 1)[1]
        html = self.request("GET", path).text
        token = re.search(r'name="token" value="([^"]+)"', html)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert token and csrf, html
        done = self.request(
            "POST", "/login/confirm", data={"token": token.group(1), "csrf_token": csrf.group(1)}
        )
        assert done.status_code == 302, done.text
        response = self.request(
            "POST",
            "/account/nickname",
            data={"nickname": nickname, "csrf_token": self.csrf("/account")},
        )
        assert response.status_code == 302, response.text
        page = self.request(
            "POST", "/account/tokens", data={"name": "fleet", "csrf_token": self.csrf("/account")}
        ).text
        match = re.search(r'id="new-token">([^<]+)<', page)
        assert match, "no API token shown"
        self.token = match.group(1)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        return self.request(method, path, headers=headers, **kwargs)


def _wait_for_mail(smtp: SMTPSink, address: str, after: int, timeout: float = 20) -> Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in smtp.messages[after:]:
            if address in str(message["To"]):
                return message
        time.sleep(0.05)
    raise AssertionError(f"no mail to {address}")


def served_by(fleet: Fleet, response: requests.Response) -> str:
    """The web node that answered: the one whose log has the request's id (nginx's
    $request_id, passed as X-Request-ID and logged by the app with every line)."""
    rid = response.headers.get("X-Request-ID", "")
    assert rid, "no request id"
    deadline = time.monotonic() + 5  # the app's writer thread logs just after the answer
    while time.monotonic() < deadline:
        for node in fleet.nodes:
            if node.kind == "web":
                log = node.instance / "logs" / "web.log"
                if log.exists() and rid in log.read_text(errors="replace"):
                    return node.name
        time.sleep(0.1)
    raise AssertionError(f"no web node logged request {rid}")


def sandbox_leases(fleet: Fleet) -> list[bytes]:
    """The leases of jobs running on sandbox nodes now (kept in the queue's Redis hash)."""
    client = redis.Redis.from_url(fleet.redis_url)
    try:
        return [
            field
            for key in client.scan_iter("huey.results.*sandbox*")
            for field in client.hkeys(key)
            if field.startswith(b"lease:")
        ]
    finally:
        client.close()


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def clear_answer(response: requests.Response) -> bool:
    """An error a member can act on: ours (JSON error or our error page), not a bare proxy
    page and not a hang (the client's timeout would have raised)."""
    if response.status_code < 400:
        return True
    if "application/json" in response.headers.get("Content-Type", ""):
        return "error" in response.json()
    return response.status_code in (409, 422, 429, 503) and "clubstack" in response.text


# --- the evening -------------------------------------------------------------------------------


def test_busy_evening(
    tmp_path: Path,
    fleet_database: str,
    fleet_redis: str,
    dns: LocalDNS,
    smtp: SMTPSink,
    work: Path,
) -> None:
    started = time.monotonic()
    providers = ProviderServer()
    settings = {
        "CLUBSTACK_SMTP_URL": smtp.url + "?starttls=off",
        "CLUBSTACK_DROP_CREATE_RATE": f"{DROPS_PER_MINUTE}/minute",
        # look-ups only on loopback: the fixture DNS server, nothing else
        "CLUBSTACK_LOOKUP_NAMESERVERS": dns.nameserver,
        # ... and VirusTotal's documented API, a stand-in on loopback, with a quota for the fleet
        "CLUBSTACK_LOOKUP_CHECKS": "dns,virustotal",
        "CLUBSTACK_LOOKUP_VIRUSTOTAL_URL": f"{providers.url}/vt/api/v3",
        "CLUBSTACK_LOOKUP_VIRUSTOTAL_API_KEY": VT_KEY,
        "CLUBSTACK_LOOKUP_VIRUSTOTAL_PER_MINUTE": "0",
        "CLUBSTACK_LOOKUP_VIRUSTOTAL_PER_DAY": str(VT_PER_DAY),
        "CLUBSTACK_HTTP_ALLOW_HOSTS": providers.host,
        "CLUBSTACK_LOOKUP_DNS_TIMEOUT": "5",
        "CLUBSTACK_LOOKUP_DNS_LIFETIME": "6",
        "CLUBSTACK_LOOKUP_DKIM_SELECTORS": "",
        "CLUBSTACK_LOOKUP_RDAP_URL": "http://127.0.0.1:9/rdap",
        "CLUBSTACK_LOOKUP_WHOIS_IANA_SERVER": "127.0.0.1:9",
        "CLUBSTACK_CONTEST_KIND": "aes",
        "CLUBSTACK_CONTEST_RANDOM_VECTORS": "10",
        "CLUBSTACK_CONTEST_CALL_CPU_SECONDS": "1",
        "CLUBSTACK_COMPUTE_STOP_TIMEOUT": "20",
    }
    with contextlib.ExitStack() as stack:
        stack.callback(providers.stop)
        try:
            libvirt_uri = stack.enter_context(remote_libvirt_host(work))
        except (RemoteHostUnavailable, OSError) as exc:
            _unavailable(f"remote libvirt host: {exc}")
        try:
            with Fleet(tmp_path, fleet_database, fleet_redis, settings) as fleet:
                web_a, web_b = fleet.start_web_node("web-a"), fleet.start_web_node("web-b")
                fleet.start_nginx([web_a, web_b])
                worker = fleet.start_worker("worker")
                sandbox = fleet.start_sandbox_node("sandbox")
                engine = create_engine(fleet_database)
                try:
                    _evening(
                        fleet, engine, smtp, web_a, worker, sandbox, libvirt_uri, work, providers
                    )
                finally:
                    engine.dispose()
        finally:  # once no node can create anything more on the host
            _remove_pool(libvirt_uri, work / "pool")
    # The whole fleet test must stay short on a 2-core machine.
    print(f"fleet test: {time.monotonic() - started:.1f} s")


def _evening(
    fleet: Fleet,
    engine: Engine,
    smtp: SMTPSink,
    web_a: Node,
    worker: Node,
    sandbox: Node,
    libvirt_uri: str,
    work: Path,
    providers: ProviderServer,
) -> None:
    from clubstack.billing import ledger
    from clubstack.billing.models import BillingAccount, LedgerEntry
    from clubstack.contest.models import Challenge
    from clubstack.core.accounts.models import User
    from clubstack.lookup.models import LookupBatch

    # The sandbox node holds neither secret nor database; its runs drop to uid 65534.
    assert "CLUBSTACK_SECRET_KEY" not in sandbox.env
    assert "CLUBSTACK_DATABASE_URL" not in sandbox.env
    assert not (sandbox.instance / "secret_key").exists()

    # -- members log in through nginx; a session works on whichever node answers --------------
    ann, bob = Member(fleet, "ann@example.org"), Member(fleet, "bob@example.org")
    ann.login(smtp, "ann")
    bob.login(smtp, "bob")
    nodes_seen = set()
    for _ in range(6):
        page = ann.request("GET", "/account")
        assert page.status_code == 200 and "ann@example.org" in page.text
        nodes_seen.add(served_by(fleet, page))
    assert nodes_seen == {"web-a", "web-b"}, "both web nodes served the logged-in member"

    # -- drops; the create limit is one budget for the whole fleet ----------------------------
    made = [
        ann.request(
            "POST", "/drop/", json={"message": f"drop {i}"}, headers={"Accept": "application/json"}
        )
        for i in range(DROPS_PER_MINUTE + 2)
    ]
    codes = [r.status_code for r in made]
    assert codes == [201] * DROPS_PER_MINUTE + [429, 429], codes
    assert {served_by(fleet, r) for r in made[:DROPS_PER_MINUTE]} == {"web-a", "web-b"}
    assert all(clear_answer(r) for r in made)
    drop_urls = [r.json()["url"] for r in made[:DROPS_PER_MINUTE]]
    read = bob.request(
        "GET",
        "/drop/" + drop_urls[0].rsplit("/drop/", 1)[1],
        headers={"Accept": "application/json"},
    )
    assert read.status_code == 200 and read.json()["message"] == "drop 0"

    # -- a look-up batch; the worker dies while it runs ---------------------------------------
    batch = ann.api(
        "POST",
        "/lookup/api/lookups",
        json={"indicators": ["slow.example.com", "good.example.com", "db01.internal"]},
    )
    assert batch.status_code == 202, batch.text
    batch_id = batch.json()["id"]
    with Session(engine) as session:
        wait_for(
            "the worker to start the batch",
            lambda: (
                session.scalar(select(LookupBatch.status).where(LookupBatch.id == batch_id))
                == "running"
                or session.expire_all()
            ),
            timeout=60,
        )
    fleet.kill(worker)  # mid-job: slow.example.com answers only after 3 s
    fleet.restart(worker)  # the batch comes back
    assert "requeued 1 task(s) whose worker died" in worker.log_text()
    worker_b = fleet.start_worker("worker-b")  # a second site worker from now on

    # -- contest programs; the sandbox node dies mid-run --------------------------------------
    aes = (STARTERS / "aes.c").read_text()
    submissions = []
    for member in (ann, bob):
        key = "2b7e151628aed2a6abf7158809cf4f3c"  # the starter's own key
        response = member.api(
            "POST",
            "/contest/api/submit",
            json={"source": aes + f"\n/* {member.address} */\n", "key": key},
        )
        assert response.status_code == 202, response.text
        submissions.append(response.json()["name"])
    wait_for("the sandbox node to hold a job", lambda: sandbox_leases(fleet), timeout=60)
    fleet.kill(sandbox)
    fleet.restart(sandbox)
    assert "requeued 1 job(s)" in sandbox.log_text()

    # -- a web node dies under traffic ----------------------------------------------------------
    during: list[requests.Response] = []
    stop = threading.Event()

    def browse() -> None:  # a member's pace, under nginx's flood limit (30/s per address)
        while not stop.wait(0.1):
            during.append(bob.request("GET", "/account"))
            during.append(
                bob.request(
                    "GET",
                    "/drop/" + drop_urls[1].rsplit("/drop/", 1)[1],
                    headers={"Accept": "application/json"},
                )
            )

    browser = threading.Thread(target=browse)
    browser.start()
    time.sleep(1)
    fleet.kill(web_a)
    time.sleep(2)
    stop.set()
    browser.join(60)
    assert during and all(r.status_code == 200 for r in during), [
        (r.status_code, r.text[:200]) for r in during if r.status_code != 200
    ]
    after_kill = [
        ann.request(
            "POST", "/drop/", json={"message": "late"}, headers={"Accept": "application/json"}
        )
    ]
    assert after_kill[0].status_code == 429  # the budget spent on both nodes still counts
    fleet.restart(web_a)

    # -- a capsul on the remote libvirt host ----------------------------------------------------
    capsul_ok = _capsul(fleet, engine, ann, libvirt_uri, work)

    # -- every job finished exactly once --------------------------------------------------------
    status = wait_for(
        "the batch to finish",
        lambda: (
            (r := ann.api("GET", f"/lookup/api/lookups/{batch_id}").json())["status"] == "done"
            and r
        ),
        timeout=60,
    )
    assert sorted(r["indicator"] for r in status["results"]) == sorted(
        ["slow.example.com", "good.example.com", "db01.internal"]
    )
    assert all(r["results"]["dns"]["status"] for r in status["results"])
    with Session(engine) as session:

        def judged() -> bool:
            session.expire_all()
            return set(
                session.scalars(select(Challenge.status).where(Challenge.name.in_(submissions)))
            ) == {"published"}

        wait_for("both submissions to be judged", judged, timeout=90)
    worker_logs = "".join(
        (node.instance / "logs" / "worker.log").read_text() for node in (worker, worker_b)
    )
    for name in submissions:
        assert worker_logs.count(f"challenge {name}: published") == 1, name  # judged once

    # -- one VirusTotal quota for every worker process -------------------------------------------
    # The first batch was sent by the killed worker, its restarted process or worker-b; a second
    # batch now runs on either worker. Quotas kept per process would let each send its own day's
    # worth; kept in Redis they stop the whole fleet at VT_PER_DAY requests.
    second = ann.api("POST", "/lookup/api/lookups", json={"indicators": QUOTA_BATCH})
    assert second.status_code == 202, second.text
    second_status = wait_for(
        "the second batch to finish",
        lambda: (
            (r := ann.api("GET", f"/lookup/api/lookups/{second.json()['id']}").json())["status"]
            == "done"
            and r
        ),
        timeout=60,
    )
    vt = [
        item["results"]["virustotal"]["status"]
        for item in status["results"] + second_status["results"]
    ]
    sent = [r for r in providers.requests if r.path.startswith("/vt/")]
    assert len(sent) == VT_PER_DAY, [r.path for r in sent]
    # Every applicable check was answered or marked exhausted (not an error). Fewer than
    # VT_PER_DAY may be answers: the killed worker spent quota on results it never saved.
    applicable = len(vt) - vt.count("not_applicable")
    assert vt.count("ok") + vt.count("quota_exhausted") == applicable > VT_PER_DAY, vt
    assert vt.count("ok") <= VT_PER_DAY, vt

    # -- every request succeeded or got a clear answer ------------------------------------------
    for member in (ann, bob):
        unclear = [
            (r.request.method, r.url, r.status_code) for r in member.answers if not clear_answer(r)
        ]
        assert not unclear, unclear

    # -- the books balance ------------------------------------------------------------------------
    with Session(engine) as session:
        for account in session.scalars(select(BillingAccount)):
            total = session.scalar(
                select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
                    LedgerEntry.user_id == account.user_id
                )
            )
            assert account.balance_cents == total == ledger.balance(session, account.user_id)
        assert capsul_ok
        ann_id = session.scalar(select(User.id).where(User.email == "ann@example.org"))
        assert (
            session.scalar(
                select(func.count())
                .select_from(LedgerEntry)
                .where(LedgerEntry.user_id == ann_id, LedgerEntry.kind == "usage")
            )
            >= 1
        )


def capsul_status(engine: Engine, capsul_id: str) -> str | None:
    from clubstack.compute.models import Capsul

    with Session(engine) as session:
        return session.scalar(select(Capsul.status).where(Capsul.id == capsul_id))


def _capsul(fleet: Fleet, engine: Engine, member: Member, uri: str, work: Path) -> bool:
    """Create and destroy a capsul through nginx on the host at ``uri``."""
    from clubstack.billing import ledger
    from clubstack.compute import hypervisor, tinyguest
    from clubstack.compute.models import Plan
    from clubstack.core.accounts.models import User

    guest = tinyguest.build()
    pool = work / "pool"
    pool.mkdir()
    pool.chmod(0o755)
    pool_name = _pool_name()
    with hypervisor.Hypervisor(uri, pool_name=pool_name, pool_path=str(pool)) as hv:
        domain_type = hv.detect_domain_type(str(guest.kernel), str(guest.initrd))
    with Session(engine) as session:
        host = {"uri": uri, "pool_name": pool_name, "pool_path": str(pool)}
        add_host_and_image(session, "remote", host, guest, domain_type)
        session.add(Plan(name="f1-xs", vcpus=1, memory_mib=128, disk_gib=1, price_month_cents=730))
        user_id = session.scalar(select(User.id).where(User.email == member.address))
        ledger.credit(
            session,
            user_id,
            5000,
            reason="fleet test",
            reference="test",
            idempotency_key=f"fleet-{uuid.uuid4().hex}",
        )
        session.commit()
    response = member.request(
        "POST",
        "/compute/create",
        data={
            "csrf_token": member.csrf("/compute/create"),
            "name": "evening",
            "plan": "f1-xs",
            "image": "tiny",
            "new_key": SSH_KEY,
        },
    )
    assert response.status_code == 302, response.text
    path = response.headers["Location"]
    capsul_id = path.rsplit("/", 1)[1]
    wait_for(
        "the site worker to create the capsul",
        lambda: capsul_status(engine, capsul_id) == "active",
        timeout=120,
    )
    gone = member.request(
        "POST",
        f"{path}/destroy",
        data={"csrf_token": member.csrf(f"{path}/destroy"), "confirm": "evening"},
    )
    assert gone.status_code == 302, gone.text
    wait_for(
        "the capsul to be destroyed",
        lambda: capsul_status(engine, capsul_id) == "destroyed",
        timeout=120,
    )
    return True


def _remove_pool(uri: str, pool: Path) -> None:
    """Every domain with a disk in ``pool``, and the pool, off the host."""
    from clubstack.compute import hypervisor

    if not pool.exists():
        return
    with (
        contextlib.suppress(Exception),
        hypervisor.Hypervisor(uri, pool_name=_pool_name(), pool_path=str(pool)) as hv,
    ):
        for dom in hv.conn.listAllDomains(0):
            if str(pool) in dom.XMLDesc(0):
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        hv.remove_pool()


def _pool_name() -> str:
    return f"clubstack-fleet-{os.getpid()}"


def test_sandbox_node_as_its_own_user_holds_nothing_of_the_site(
    tmp_path: Path, fleet_redis: str
) -> None:
    """The harness's other mode: the sandbox node as its own Unix user (made if missing). It
    starts with the queue's address only, no capability and no secret; it is not the
    default because without cgroups RLIMIT_NPROC stops bubblewrap (docs/operations.md)."""
    with Fleet(tmp_path, "postgresql+psycopg://unused@127.0.0.1:9/none", fleet_redis) as fleet:
        node = fleet.start_sandbox_node("sandbox", user=SANDBOX_USER)
        assert node.process is not None
        status = Path(f"/proc/{node.process.pid}/status").read_text()
        if os.geteuid() == 0:
            uid = pwd.getpwnam(SANDBOX_USER).pw_uid
            assert f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}" in status
            assert "CapEff:\t0000000000000000" in status
        assert not (node.instance / "secret_key").exists()
        environ = Path(f"/proc/{node.process.pid}/environ").read_bytes().split(b"\0")
        names = {item.split(b"=", 1)[0].decode() for item in environ if item}
        assert {n for n in names if n.startswith("CLUBSTACK_")} == {
            "CLUBSTACK_ENV",
            "CLUBSTACK_INSTANCE",
            "CLUBSTACK_REDIS_URL",
            "CLUBSTACK_SANDBOX_CACHE",
        }
