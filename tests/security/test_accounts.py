"""Attacks on accounts: confirming someone else's address change, finding out who has an
account, deleting an account with data in every service, the debugger in production."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import event, func, select

from clubstack.core.accounts.models import ApiToken, LoginLink, LoginSession, User
from clubstack.core.db import db
from tests.conftest import LiveServer, message_text, outbox_messages
from tests.security.conftest import Visitor, http_login


def account_address(member: Visitor) -> str:
    found = re.search(r"You log in as <strong>([^<]+)</strong>", member.get("/account").text)
    assert found, "no address on the account page"
    return found.group(1)


def confirm_link_token(message: Any) -> str:
    found = re.search(r"token=([A-Za-z0-9_-]+)", message_text(message))
    assert found, "no confirmation link in the mail"
    return found.group(1)


def post_confirm(member: Visitor, token: str) -> Any:
    html = member.get(f"/account/email/confirm?token={token}").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert csrf
    return member.post(
        "/account/email/confirm", data={"token": token, "csrf_token": csrf.group(1)}, follow=True
    )


# --- address change ---------------------------------------------------------------------------


def test_another_member_cannot_confirm_my_address_change(app, member_a, member_b):
    answer = member_a.post(
        "/account/email",
        data={"email": "alice.new@example.org", "csrf_token": member_a.csrf("/account")},
    )
    assert answer.status_code == 302
    token = confirm_link_token(outbox_messages(app)[-1])

    page = post_confirm(member_b, token)
    # Nothing changed for anyone, and B is told so truthfully.
    assert "another account" in page.text and "Nothing was changed" in page.text
    assert account_address(member_a) == "alice@example.org"
    assert account_address(member_b) == "bob@example.org"

    # The link was not used up: its owner can still use it.
    page = post_confirm(member_a, token)
    assert "Your address is changed" in page.text
    assert account_address(member_a) == "alice.new@example.org"


CSRF_VALUE = re.compile(r'name="csrf_token" value="[^"]+"')


def test_an_address_change_to_a_taken_address_looks_like_any_other(app, member_a, member_b):
    answers = []
    for address in ("bob@example.org", "nobody.yet@example.org"):
        answer = member_a.post(
            "/account/email",
            data={"email": address, "csrf_token": member_a.csrf("/account")},
            follow=True,
        )
        # the CSRF token is signed with the time, so two pages a second apart differ there
        text = CSRF_VALUE.sub('name="csrf_token" value="TOKEN"', answer.text)
        answers.append((answer.status_code, text.replace(address, "ADDRESS")))
    assert answers[0] == answers[1]
    to_bob = [m for m in outbox_messages(app) if m["To"] == "bob@example.org"][-1]
    assert "Someone tried" in message_text(to_bob)
    assert "token=" not in message_text(to_bob)
    assert account_address(member_a) == "alice@example.org"
    assert account_address(member_b) == "bob@example.org"


# --- who has an account ------------------------------------------------------------------------


@pytest.fixture
def invite_site(make_app: Any) -> Iterator[tuple[Any, LiveServer]]:
    app = make_app(signup="invite")
    server = LiveServer(app)
    yield app, server
    server.stop()


def test_invite_only_login_answers_and_works_the_same_for_unknown_addresses(invite_site):
    from tests.conftest import make_admin

    app, server = invite_site
    make_admin(app, "known@example.org")
    engine = db.engine
    assert engine is not None
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.split()[0].upper())

    runs = {}
    for address in ("known@example.org", "unknown@example.org"):
        visitor = Visitor(server.url)
        csrf = visitor.csrf("/login")
        mails_before = len(outbox_messages(app))
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            answer = visitor.post("/login", data={"email": address, "csrf_token": csrf})
        finally:
            event.remove(engine, "before_cursor_execute", count)
        runs[address] = (
            answer.status_code,
            answer.text.replace(address, "ADDRESS"),
            sorted(statements),
            len(outbox_messages(app)) - mails_before,
        )
        visitor.close()
    known, unknown = runs["known@example.org"], runs["unknown@example.org"]
    assert known[0] == unknown[0] == 200
    assert known[1] == unknown[1]  # the same page
    assert known[2] == unknown[2]  # the same queries
    assert known[3] == unknown[3] == 1  # one mail each, sent the same way
    with app.app_context():
        assert db.session().scalar(select(User).where(User.email == "unknown@example.org")) is None


# --- deleting an account ------------------------------------------------------------------------


@pytest.fixture
def db_site(make_app: Any, db_kind: str) -> Iterator[tuple[Any, LiveServer]]:
    app = make_app(db_kind=db_kind)
    server = LiveServer(app)
    yield app, server
    server.stop()


def give_alice_data_everywhere(app: Any) -> int:
    """Data in every service that keeps per-member data: a ledger, a capsul running on a
    host, an SSH key, a contest entry broken by someone else, a blog comment, a look-up."""
    from clubstack.billing import ledger
    from clubstack.blog.models import Comment
    from clubstack.compute.models import Capsul, Image, Plan, SshKey
    from clubstack.contest.models import Break, Challenge
    from clubstack.core.clock import utcnow
    from clubstack.lookup.models import LookupBatch, LookupItem

    with app.app_context():
        session = db.session()
        alice = session.scalar(select(User).where(User.email == "alice@example.org"))
        assert alice is not None
        bob = User(email="bob@example.org", nickname="bob")
        session.add(bob)
        session.flush()
        ledger.credit(
            session,
            alice.id,
            1000,
            reason="test payment",
            reference="test:1",
            idempotency_key="test:1",
        )
        plan = Plan(name="f1-xs", vcpus=1, memory_mib=128, disk_gib=1, price_month_cents=730)
        image = Image(name="tiny", path="/nonexistent/tiny.qcow2")
        session.add_all([plan, image])
        session.flush()
        session.add(
            Capsul(
                user_id=alice.id,
                plan_id=plan.id,
                image_id=image.id,
                name="web1",
                domain_name="capsul-test-web1",
                uuid="0" * 36,
                status="active",
                billed_until=utcnow() - timedelta(minutes=90),
            )
        )
        session.add(
            SshKey(
                user_id=alice.id,
                name="laptop",
                public_key="ssh-ed25519 AAAA",
                fingerprint="SHA256:x",
            )
        )
        challenge = Challenge(
            name="alice-aes",
            owner_id=alice.id,
            kind="aes",
            status="published",
            source="int main(void){return 0;}",
            vectors="{}",
        )
        session.add(challenge)
        session.flush()
        session.add(Break(challenge_id=challenge.id, user_id=bob.id))
        session.add(
            Challenge(
                name="bob-aes",
                owner_id=bob.id,
                kind="aes",
                status="published",
                source="int main(void){return 1;}",
                vectors="{}",
            )
        )
        session.flush()
        session.add(Break(challenge_id=challenge.id + 1, user_id=alice.id))
        session.add(
            Comment(
                post_path="/2021/hello/",
                author="Alice Liddell",
                email="alice@example.org",
                ip="192.0.2.7",
                body="Hi",
                html="<p>Hi</p>",
                status="approved",
                notify=True,
            )
        )
        batch = LookupBatch(user_id=alice.id, total=1)
        session.add(batch)
        session.flush()
        session.add(LookupItem(batch_id=batch.id, position=0, kind="domain", value="example.org"))
        session.commit()
        return alice.id


def delete_account(member: Visitor, address: str) -> Any:
    return member.post(
        "/account/delete",
        data={"confirm_email": address, "csrf_token": member.csrf("/account")},
    )


def test_deleting_an_account_with_data_in_every_service(db_site, monkeypatch):
    from clubstack.billing.models import LedgerEntry
    from clubstack.blog.models import Comment
    from clubstack.compute import capsuls
    from clubstack.compute.errors import HostDownError
    from clubstack.compute.models import Capsul, SshKey
    from clubstack.contest.models import Break, Challenge
    from clubstack.lookup.models import LookupBatch, LookupItem

    app, server = db_site
    alice = Visitor(server.url)
    http_login(alice, app, "alice@example.org", nickname="alice")
    alice.post("/account/tokens", data={"name": "ci", "csrf_token": alice.csrf("/account")})
    alice_id = give_alice_data_everywhere(app)

    # The capsul's host is down: nothing of the account may go, and trying again must work.
    real_destroy = capsuls.destroy

    def host_down(session: Any, capsul: Any) -> None:
        raise HostDownError()

    monkeypatch.setattr(capsuls, "destroy", host_down)
    answer = delete_account(alice, "alice@example.org")
    assert answer.status_code == 503, answer.text
    assert "Nothing of your account was deleted" in answer.text
    assert account_address(alice) == "alice@example.org"  # still logged in, still there

    monkeypatch.setattr(capsuls, "destroy", real_destroy)
    answer = delete_account(alice, "alice@example.org")
    assert answer.status_code == 302, answer.text
    assert alice.get("/account").status_code == 302  # logged out

    with app.app_context():
        session = db.session()
        closed = session.get(User, alice_id)
        assert closed is not None and "alice" not in closed.email and closed.is_closed
        assert session.scalar(select(User).where(User.email == "alice@example.org")) is None
        for table in (LoginSession, ApiToken, SshKey, LookupBatch, LookupItem):
            assert session.scalar(select(func.count()).select_from(table)) == 0, table
        assert (
            session.scalar(
                select(func.count()).select_from(LoginLink).where(LoginLink.user_id == alice_id)
            )
            == 0
        )
        # The ledger stays for the accounting (with the last hours of the capsul charged).
        entries = session.scalars(select(LedgerEntry).where(LedgerEntry.user_id == alice_id))
        assert sorted(e.kind for e in entries) == ["payment", "usage", "usage"]
        capsul = session.scalar(select(Capsul))
        assert capsul is not None and capsul.status == "destroyed"
        # Contest entries stay under the nickname, with their breaks.
        mine = session.scalar(select(Challenge).where(Challenge.name == "alice-aes"))
        assert mine is not None and mine.owner.display_name == "alice" and len(mine.breaks) == 1
        assert session.scalar(select(func.count()).select_from(Break)) == 2
        comment = session.scalar(select(Comment))
        assert comment is not None and comment.body == "Hi"
        assert (comment.author, comment.email, comment.ip, comment.notify) == (
            "anonymous",
            "",
            "",
            False,
        )

    # The address is free again: logging in with it makes a new, empty account.
    again = Visitor(server.url)
    http_login(again, app, "alice@example.org")
    with app.app_context():
        fresh = db.session().scalar(select(User).where(User.email == "alice@example.org"))
        assert fresh is not None and fresh.id != alice_id and fresh.nickname is None
    again.close()
    alice.close()


def test_an_old_login_link_does_not_open_a_deleted_account(app, site, member_a, visitor):
    """Links asked for before the deletion are gone with the account."""
    before = len(outbox_messages(app))
    other = visitor()
    other.post("/login", data={"email": "alice@example.org", "csrf_token": other.csrf("/login")})
    stale = confirm_link_token(outbox_messages(app)[before])
    assert delete_account(member_a, "alice@example.org").status_code == 302
    html = other.get(f"/login/confirm?token={stale}")
    assert html.status_code == 410


# --- the debugger ----------------------------------------------------------------------------


def test_dev_server_refuses_to_start_in_production(tmp_path, monkeypatch):
    import flask

    from clubstack.cli import main
    from clubstack.settings import clear_settings_cache

    started: list[object] = []
    monkeypatch.setattr(flask.Flask, "run", lambda self, *a, **k: started.append(k))
    monkeypatch.setenv("CLUBSTACK_INSTANCE", str(tmp_path))
    monkeypatch.setenv("CLUBSTACK_DATABASE_URL", f"sqlite:///{tmp_path}/clubstack.db")
    monkeypatch.setenv("CLUBSTACK_SECRET_KEY", "k" * 48)
    monkeypatch.setenv("CLUBSTACK_ENV", "production")
    clear_settings_cache()
    try:
        result = CliRunner().invoke(main, ["serve", "--dev"])
    finally:
        clear_settings_cache()
    assert started == []
    assert result.exit_code != 0
    assert "--dev" in result.output and "production" in result.output
