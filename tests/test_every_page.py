"""Every page of the suite in Chromium at desktop and phone width, as a visitor, a member and
an administrator: a screenshot of each (kept under CLUBSTACK_SCREENSHOTS, default
artifacts/screenshots/), no sideways scrolling at 360 px, no console error and no violation
of the page's own Content-Security-Policy."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer, make_admin
from tests.lookup.sample_batch import insert_finished_batch
from tests.security.conftest import Visitor, http_login

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = Path(
    os.environ.get(
        "CLUBSTACK_SCREENSHOTS", Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
    )
)
WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 360, "height": 740}}

# The pages each kind of visitor sees; {drop} is filled with a message the test leaves,
# {lookup} with a finished look-up batch of the member's.
PAGES = {
    "visitor": [
        "/",
        "/login",
        "/blog/",
        "/blog/comments?path=/2026/12/hello-world/",
        "/contest/",
        "/contest/challenges",
        "/contest/breaks",
        "/contest/bananas",
        "/contest/rules",
        "/contest/questions",
        "/contest/announcements",
        "/contest/decisions",
        "/drop/",
        "/drop/msg/{drop}",
    ],
    "member": [
        "/account",
        "/billing/",
        "/billing/buy",
        "/billing/ledger",
        "/billing/payments",
        "/compute/",
        "/compute/create",
        "/compute/keys",
        "/compute/capsuls/{capsul}",
        "/contest/submit",
        "/contest/mine",
        "/contest/u/member1",
        "/lookup/",
        "/lookup/batches/{lookup}",
    ],
    "admin": [
        "/admin",
        "/admin/users",
        "/billing/admin/",
        "/billing/admin/adjustments",
        "/billing/admin/invoices",
        "/billing/admin/payments",
        "/blog/admin/comments",
        "/compute/admin",
        "/contest/admin/",
        "/contest/admin/announcements",
        "/contest/admin/questions",
        "/contest/admin/rejudge",
        "/contest/admin/log",
    ],
}

# Listens before any page script runs, so a blocked inline style or script is counted too.
CSP_PROBE = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + (event.blockedURI || "inline"));
});
"""


def _running_capsul(app: Any) -> str:
    """A plan, an image and the member's capsul (on no host: its page reads no libvirt), with
    a long SSH host key fingerprint, so the capsul page and its graphs are checked too."""
    from sqlalchemy import select

    from clubstack.compute.capsuls import add_ssh_key
    from clubstack.compute.models import Capsul, Host, Image, Plan
    from clubstack.core.accounts.models import User
    from clubstack.core.db import db

    with app.app_context():
        session = db.session()
        plan = Plan(name="small", vcpus=1, memory_mib=512, disk_gib=10, price_month_cents=500)
        image = Image(name="debian", title="Debian 12", path="/var/lib/images/debian.qcow2")
        # a host that does not answer (nothing here reaches libvirt): the create form shows
        host = Host(
            name="kvm1",
            uri="qemu+unix:///system?socket=/nonexistent/sock",
            pool_path="/var/tmp/none",
            vcpus=4,
            memory_mib=8192,
            disk_gib=100,
            up=False,
        )
        session.add_all([plan, image, host])
        session.flush()
        owner = session.scalar(select(User.id).where(User.email == "member@example.org"))
        capsul = Capsul(
            user_id=owner,
            plan_id=plan.id,
            image_id=image.id,
            name="web1",
            domain_name="capsul-every-page",
            uuid="6f1c3b5e-0000-4000-8000-00000000e0e0",
            status="active",
            state="running",
            host_keys="256 SHA256:Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9v "
            "root@web1 (ED25519)",
        )
        session.add(capsul)
        # a saved key: its fingerprint is one long word on the keys and create pages
        add_ssh_key(
            session,
            owner,
            "laptop",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        )
        session.commit()
        return capsul.id


@pytest.fixture(scope="module")
def every_page_site(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, dict[str, str], dict[str, Any]]]:
    """One app for the whole module (with its own instance), a member and an admin logged in
    over HTTP, a drop message to read and a finished look-up with results."""
    monkeypatch = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("every-page")
    instance = tmp / "instance"
    instance.mkdir()
    from clubstack.core.db import db
    from clubstack.settings import clear_settings_cache

    for key, value in {
        "CLUBSTACK_INSTANCE": str(instance),
        "CLUBSTACK_DATABASE_URL": f"sqlite:///{instance / 'clubstack.db'}",
        "CLUBSTACK_JOBS_IMMEDIATE": "true",
        "CLUBSTACK_SECRET_KEY": "test-secret-key-" + "x" * 32,
    }.items():
        monkeypatch.setenv(key, value)
    clear_settings_cache()
    from clubstack.app import create_app
    from clubstack.core.migrate import upgrade

    upgrade(f"sqlite:///{instance / 'clubstack.db'}")
    app = create_app()
    server = LiveServer(app)
    cookies: dict[str, Any] = {}
    member = Visitor(server.url)
    http_login(member, app, "member@example.org", nickname="member1")
    cookies["member"] = member.cookies
    make_admin(app, "admin@example.org")
    admin = Visitor(server.url)
    http_login(admin, app, "admin@example.org", nickname="admin1")
    cookies["admin"] = admin.cookies
    dropped = Visitor(server.url).post(
        "/drop/", json={"message": "see you at the club", "expires_in": 3600}
    )
    assert dropped.status_code == 201, dropped.text
    fill = {
        "drop": dropped.json()["message_id"],
        "lookup": insert_finished_batch(app, "member@example.org"),
        "capsul": _running_capsul(app),
    }
    try:
        yield server, fill, cookies
    finally:
        server.stop()
        db.dispose()
        clear_settings_cache()
        monkeypatch.undo()


def _cases() -> list[tuple[str, str, str]]:
    return [
        (who, path, width) for who, paths in PAGES.items() for path in paths for width in WIDTHS
    ]


@pytest.mark.parametrize(("who", "path", "width"), _cases())
def test_page_fits_and_runs_clean(
    browser: Any,
    every_page_site: tuple[LiveServer, dict[str, str], dict[str, Any]],
    who: str,
    path: str,
    width: str,
) -> None:
    server, fill, cookies = every_page_site
    context = browser.new_context(viewport=WIDTHS[width])
    try:
        if who in cookies:
            context.add_cookies(
                [{"name": c.name, "value": c.value or "", "url": server.url} for c in cookies[who]]
            )
        context.add_init_script(CSP_PROBE)
        page = context.new_page()
        problems: list[str] = []
        page.on(
            "console",
            lambda message: problems.append(message.text) if message.type == "error" else None,
        )
        page.on("pageerror", lambda error: problems.append(str(error)))
        answer = page.goto(server.url + path.format(**fill))
        assert answer is not None and answer.status == 200, f"{path}: {answer and answer.status}"
        page.wait_for_load_state("networkidle")
        name = re.sub(r"[^a-z0-9]+", "-", f"{who}-{path}".lower()).strip("-")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        violations = page.evaluate("window.__cspViolations")
        assert not violations, f"{path}: CSP violations {violations}"
        assert not problems, f"{path}: console errors {problems}"
        if width == "phone":
            overflow = page.evaluate(
                "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
                " - window.innerWidth"
            )
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 360 px"
    finally:
        context.close()


def test_a_screenshot_exists_for_every_page_and_width() -> None:
    # runs after the parametrised cases above (file order), so a missing page is caught
    expected = {
        re.sub(r"[^a-z0-9]+", "-", f"{who}-{path}".lower()).strip("-") + f"-{width}.png"
        for who, path, width in _cases()
    }
    present = {p.name for p in SHOTS.glob("*.png")} if SHOTS.is_dir() else set()
    assert expected <= present, sorted(expected - present)[:5]
