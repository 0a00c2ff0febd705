"""The organiser's desk through the real app and the real sandbox: rulings, withdrawn breaks,
announcements, clarifications, the scoreboard freeze and rejudges (page and CLI)."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from clubstack.cli import main
from clubstack.contest import scoring
from clubstack.contest.desk_models import DeskAction, RejudgeItem
from clubstack.contest.models import Break, Challenge
from clubstack.core import clock
from clubstack.core.db import db
from clubstack.settings import clear_settings_cache
from tests.conftest import csrf_token, login, make_admin

from .conftest import SAMPLES

pytestmark = pytest.mark.usefixtures("sandbox_ready")

AES_KEY = "2b7e151628aed2a6abf7158809cf4f3c"
FAST = {
    "contest_kind": "aes",
    "contest_random_vectors": 10,
    "contest_call_cpu_seconds": 1,
    "login_rate_ip": "100/minute",
}  # every test logs several members in from one address
ATOM = "{http://www.w3.org/2005/Atom}"


def member(app, address: str, nickname: str):
    client = app.test_client()
    login(client, app, address, nickname=nickname)
    return client


def organiser(app):
    make_admin(app, "boss@example.org")
    return member(app, "boss@example.org", "boss")


def publish(app, client) -> str:
    """Submit the AES sample through the form; the sandbox judges it (jobs run inline)."""
    token = csrf_token(client, "/contest/submit")
    response = client.post(
        "/contest/submit",
        content_type="multipart/form-data",
        data={
            "csrf_token": token,
            "key": AES_KEY,
            "file": (io.BytesIO((SAMPLES / "aes.c").read_bytes()), "a.c"),
        },
    )
    assert response.status_code == 302
    with app.app_context():
        found = db.session().scalars(select(Challenge).order_by(Challenge.id.desc())).first()
        assert found.status == "published", found.failure
        return found.name


def post(client, path: str, form_page: str, **data):
    return client.post(path, data={"csrf_token": csrf_token(client, form_page), **data})


def break_it(client, name: str):
    token = csrf_token(client, f"/contest/challenges/{name}")
    return client.post(
        f"/contest/challenges/{name}/break", data={"key": AES_KEY, "csrf_token": token}
    )


def text(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    return response.get_data(as_text=True)


def feed_titles(client) -> list[str]:
    root = ET.fromstring(client.get("/contest/feed.atom").data)
    return [e.findtext(f"{ATOM}title") or "" for e in root.findall(f"{ATOM}entry")]


def test_desk_is_for_organisers_only_and_every_form_needs_csrf(make_app):
    app = make_app(**FAST)
    anon = app.test_client()
    assert anon.get("/contest/admin/").status_code == 302  # to the login page
    someone = member(app, "someone@example.org", "someone")
    for path in (
        "/contest/admin/",
        "/contest/admin/rejudge",
        "/contest/admin/questions",
        "/contest/admin/announcements",
        "/contest/admin/log",
    ):
        assert someone.get(path).status_code == 403, path
    assert someone.post("/contest/admin/freeze", data={"action": "now"}).status_code in (400, 403)
    boss = organiser(app)
    assert "Organiser's desk" in text(boss, "/contest/")
    assert "Organiser's desk" not in text(someone, "/contest/")
    refused = boss.post("/contest/admin/announcements", data={"title": "t", "body": "b"})
    assert refused.status_code == 400 and "form expired" in refused.get_data(as_text=True)
    empty = post(
        boss, "/contest/admin/announcements", "/contest/admin/announcements", title="", body=""
    )
    assert empty.status_code == 400
    # bad input: a clear 4xx, never a 500
    bad = {
        "/contest/admin/freeze": {"action": "set", "freeze_at": "next tuesday"},
        "/contest/admin/breaks/999/withdraw": {"reason": "x"},
        "/contest/admin/challenges/nope/ruling": {"ruling": "hidden", "reason": "x"},
        "/contest/admin/questions/nope/answer": {"answer": "x"},
        "/contest/admin/rejudge": {"kind": "rsa"},
        "/contest/admin/rejudge/nope/requeue": {},
    }
    for path, data in bad.items():
        status = post(boss, path, "/contest/admin/", **data).status_code
        assert status in (400, 404), (path, status)
    assert boss.get("/contest/admin/rejudge/nope").status_code == 404


def test_disqualify_hide_and_reinstate_with_a_public_reason(make_app):
    app = make_app(**FAST)
    designer = member(app, "designer@example.org", "designer")
    name = publish(app, designer)
    boss = organiser(app)
    attacker = member(app, "mallory@example.org", "mallory")
    anon = app.test_client()
    desk_page = f"/contest/admin/challenges/{name}"

    no_reason = post(
        boss,
        f"/contest/admin/challenges/{name}/ruling",
        desk_page,
        ruling="disqualified",
        reason="   ",
    )
    assert no_reason.status_code == 400
    done = post(
        boss,
        f"/contest/admin/challenges/{name}/ruling",
        desk_page,
        ruling="disqualified",
        reason="The key is read from a file <b>outside</b>.",
    )
    assert done.status_code == 303
    page = text(anon, f"/contest/challenges/{name}")
    assert "Disqualified by the organisers" in page
    assert "read from a file &lt;b&gt;outside&lt;/b&gt;." in page
    assert name not in text(anon, "/contest/challenges")
    assert anon.get("/contest/api/challenges").get_json() == []
    assert "The key is read from a file" in text(anon, "/contest/decisions")
    refused = break_it(attacker, name)
    assert refused.status_code == 403 and "took this challenge out" in refused.text
    assert anon.get(f"/contest/challenges/{name}/source.c").status_code == 200

    post(
        boss,
        f"/contest/admin/challenges/{name}/ruling",
        desk_page,
        ruling="hidden",
        reason="Copied from another team.",
    )
    hidden = text(anon, f"/contest/challenges/{name}")
    assert "Hidden by the organisers" in hidden and "Copied from another team." in hidden
    assert "Download the source" not in hidden
    assert anon.get(f"/contest/challenges/{name}/source.c").status_code == 404
    assert designer.get(f"/contest/challenges/{name}/source.c").status_code == 200

    post(
        boss,
        f"/contest/admin/challenges/{name}/ruling",
        desk_page,
        ruling="reinstate",
        reason="Cleared after review.",
    )
    assert name in text(anon, "/contest/challenges")
    with clock.moved(timedelta(hours=6)):
        assert break_it(attacker, name).status_code == 302
    assert "mallory" in text(anon, "/contest/bananas")

    # a break already made counts for the attacker after a disqualification, not after hiding
    for ruling, counted in (("disqualified", True), ("hidden", False)):
        post(
            boss,
            f"/contest/admin/challenges/{name}/ruling",
            desk_page,
            ruling=ruling,
            reason="Second look.",
        )
        assert ("mallory" in text(anon, "/contest/bananas")) is counted
        assert (name in text(anon, "/contest/breaks")) is counted
    with app.app_context():
        actions = db.session().scalars(select(DeskAction.action).order_by(DeskAction.id)).all()
    assert actions == ["disqualified", "hidden", "reinstated", "disqualified", "hidden"]


def test_withdrawn_break_moves_the_first_break_and_the_bananas(make_app):
    app = make_app(**FAST)
    designer = member(app, "designer@example.org", "designer")
    name = publish(app, designer)
    first, second = (member(app, "a1@example.org", "zoe"), member(app, "a2@example.org", "yann"))
    with clock.moved(timedelta(hours=12)):
        assert break_it(first, name).status_code == 302
    with clock.moved(timedelta(hours=18)):
        assert break_it(second, name).status_code == 302
    with app.app_context():
        session = db.session()
        c = session.scalar(select(Challenge))
        published, perf = c.published_at, c.performance
        withdrawn = session.scalar(select(Break).where(Break.created_at == c.first_break_at))
        later = session.scalar(select(Break).where(Break.id != withdrawn.id))
        before = later.strawberries_at_break
        break_id, later_at = withdrawn.id, later.created_at
    boss = organiser(app)
    response = post(
        boss,
        f"/contest/admin/breaks/{break_id}/withdraw",
        f"/contest/admin/challenges/{name}",
        reason="Found by reading the logs.",
    )
    assert response.status_code == 303
    bananas = text(app.test_client(), "/contest/bananas")
    assert "zoe" not in bananas and "yann" in bananas
    with app.app_context():
        c = db.session().scalar(select(Challenge))
        assert c.first_break_at == later_at
        left = db.session().scalar(select(Break))
        # now the first break: worth the rising count at its moment, more than before
        assert left.strawberries_at_break == pytest.approx(
            scoring.strawberries(perf, published, later_at)
        )
        assert left.strawberries_at_break > before
    decisions = text(app.test_client(), "/contest/decisions")
    assert "break by zoe withdrawn" in decisions and "reading the logs" in decisions


def test_announcements_on_the_overview_and_in_the_feed(make_app):
    app = make_app(**FAST)
    boss = organiser(app)
    response = post(
        boss,
        "/contest/admin/announcements",
        "/contest/admin/announcements",
        title="Harness fixed",
        body="Rejudge at 14:00 <script>x</script>",
    )
    assert response.status_code == 303
    overview = text(app.test_client(), "/contest/")
    assert "Harness fixed" in overview and "&lt;script&gt;x&lt;/script&gt;" in overview
    assert "Announcement: Harness fixed" in feed_titles(app.test_client())


def test_clarifications_private_to_the_asker_until_made_public(make_app):
    app = make_app(**FAST)
    asker = member(app, "asker@example.org", "asker")
    other = member(app, "other@example.org", "other")
    missing = post(asker, "/contest/questions", "/contest/questions", question="", challenge="")
    assert missing.status_code == 400
    unknown = post(
        asker, "/contest/questions", "/contest/questions", question="Hm?", challenge="no_such_thing"
    )
    assert unknown.status_code == 400 and "no challenge of that name" in unknown.text
    assert (
        post(
            asker, "/contest/questions", "/contest/questions", question="May the table be 2 MB?"
        ).status_code
        == 303
    )
    assert "May the table be 2 MB?" in text(asker, "/contest/questions")
    assert "May the table be 2 MB?" not in text(other, "/contest/questions")

    boss = organiser(app)
    page = text(boss, "/contest/admin/questions")
    public_id = re.search(r'id="q-([^"]+)"', page).group(1)
    answer = f"/contest/admin/questions/{public_id}/answer"
    assert post(boss, answer, "/contest/admin/questions", answer="").status_code == 400
    assert (
        post(
            boss, answer, "/contest/admin/questions", answer="Yes, up to the object limit."
        ).status_code
        == 303
    )
    assert "Yes, up to the object limit." in text(asker, "/contest/questions")
    assert "Yes, up to the object limit." not in text(other, "/contest/questions")
    post(
        boss, answer, "/contest/admin/questions", answer="Yes, up to the object limit.", public="1"
    )
    assert "Yes, up to the object limit." in text(app.test_client(), "/contest/questions")


def test_questions_are_rate_limited_per_member(make_app):
    app = make_app(**FAST, contest_question_rate="2/hour")
    asker = member(app, "asker@example.org", "asker")
    codes = [
        post(
            asker, "/contest/questions", "/contest/questions", question=f"Question {n}"
        ).status_code
        for n in range(3)
    ]
    assert codes == [303, 303, 429]


@pytest.mark.parametrize("database", ["sqlite", "postgres", "mariadb"])
def test_freeze_stops_the_public_board_organisers_see_live_lift_after_the_end(make_app, database):
    start = clock.utcnow()
    app = make_app(database, **FAST, contest_final_deadline=(start + timedelta(days=2)).isoformat())
    designer = member(app, "designer@example.org", "designer")
    name = publish(app, designer)
    boss = organiser(app)
    attacker = member(app, "mallory@example.org", "mallory")
    anon = app.test_client()
    clock.travel(timedelta(hours=12))
    assert post(boss, "/contest/admin/freeze", "/contest/admin/", action="now").status_code == 303
    frozen_value = re.search(
        r"<td>([0-9.e+-]+)</td>\s*<td>[0-9.e+-]+</td>\s*<td><span",
        text(anon, "/contest/challenges"),
    ).group(1)
    clock.travel(timedelta(hours=6))
    assert break_it(attacker, name).status_code == 302

    board = text(anon, "/contest/challenges")
    assert "The scoreboard is frozen" in board and "unbroken" in board
    assert (
        re.search(r"<td>([0-9.e+-]+)</td>\s*<td>[0-9.e+-]+</td>\s*<td><span", board).group(1)
        == frozen_value
    )  # strawberries stopped moving
    assert "mallory" not in text(anon, "/contest/bananas")
    assert name not in text(anon, "/contest/breaks")
    assert "broken by mallory" not in text(anon, "/contest/")
    assert f"{name} broken by mallory" not in feed_titles(anon)
    assert "mallory" not in text(anon, f"/contest/challenges/{name}")
    listed = anon.get("/contest/api/challenges").get_json()
    assert [(c["name"], c["broken"]) for c in listed] == [(name, False)]
    # the organisers see it live
    assert "mallory" in text(boss, "/contest/bananas")
    assert "you see the live board" in text(boss, "/contest/challenges")

    early = post(boss, "/contest/admin/freeze/lift", "/contest/admin/")
    assert early.status_code == 409 and "only after the end" in early.text
    clock.travel(timedelta(days=2))
    assert post(boss, "/contest/admin/freeze/lift", "/contest/admin/").status_code == 303
    assert "mallory" in text(anon, "/contest/bananas")
    assert f"{name} broken by mallory" in feed_titles(anon)


def test_freeze_from_the_setting(make_app):
    freeze = clock.utcnow() + timedelta(hours=1)
    app = make_app(**FAST, contest_scoreboard_freeze=freeze.isoformat())
    designer = member(app, "designer@example.org", "designer")
    name = publish(app, designer)
    attacker = member(app, "mallory@example.org", "mallory")
    clock.travel(timedelta(hours=2))
    assert break_it(attacker, name).status_code == 302
    assert "mallory" not in text(app.test_client(), "/contest/bananas")
    assert "The scoreboard is frozen" in text(app.test_client(), "/contest/")


def _item(app, name: str) -> RejudgeItem:
    with app.app_context():
        item = (
            db.session()
            .scalars(
                select(RejudgeItem)
                .where(RejudgeItem.challenge_name == name)
                .order_by(RejudgeItem.id.desc())
            )
            .first()
        )
        db.session().expunge(item)
        return item


def test_rejudge_page_after_a_limit_change(make_app, monkeypatch):
    app = make_app(**FAST)
    designer = member(app, "designer@example.org", "designer")
    name = publish(app, designer)
    attacker = member(app, "mallory@example.org", "mallory")
    with clock.moved(timedelta(hours=12)):
        assert break_it(attacker, name).status_code == 302
    boss = organiser(app)
    bad = post(boss, "/contest/admin/rejudge", "/contest/admin/rejudge", name="nope")
    assert bad.status_code == 404
    neither = post(boss, "/contest/admin/rejudge", "/contest/admin/rejudge")
    assert neither.status_code == 400

    # the object limit drops under this challenge's size: it fails, off the board
    monkeypatch.setenv("CLUBSTACK_CONTEST_OBJECT_BYTES", "100")
    clear_settings_cache()
    response = post(
        boss,
        "/contest/admin/rejudge",
        "/contest/admin/rejudge",
        name=name,
        reason="object limit lowered",
    )
    assert response.status_code == 303
    run = text(boss, response.headers["Location"])
    assert "Finished" in run and "1 of 1 changed, 1 verdict changed" in run
    item = _item(app, name)
    assert (item.old_status, item.new_status, item.changed) == ("published", "failed", True)
    assert "exceed 100 bytes" in (item.new_reason or "")
    assert name not in text(app.test_client(), "/contest/challenges")
    assert "mallory" not in text(app.test_client(), "/contest/bananas")

    # twice the original limit: published again, performance one point higher (size factor)
    monkeypatch.setenv("CLUBSTACK_CONTEST_OBJECT_BYTES", "40000000")
    clear_settings_cache()
    response = post(boss, "/contest/admin/rejudge", "/contest/admin/rejudge", kind="aes")
    assert response.status_code == 303
    item = _item(app, name)
    assert (item.old_status, item.new_status) == ("failed", "published")
    with app.app_context():
        c = db.session().scalar(select(Challenge))
        assert c.status == "published" and c.strawberries > 0
        b = db.session().scalar(select(Break))
        assert b.strawberries_at_break == pytest.approx(
            scoring.strawberries(c.performance, c.published_at, b.created_at)
        )
    assert "mallory" in text(app.test_client(), "/contest/bananas")
    log = text(boss, "/contest/admin/log")
    assert "rejudge" in log and "object limit lowered" in log and "kind aes" in log


def test_rejudge_cli_progress_exit_codes_and_json(make_app, monkeypatch):
    app = make_app(**FAST)
    designer = member(app, "designer@example.org", "designer")
    name = publish(app, designer)
    runner = CliRunner()
    usage = runner.invoke(main, ["contest", "rejudge"])
    assert usage.exit_code == 2 and "--challenge NAME or --kind KIND" in usage.output
    unknown = runner.invoke(main, ["contest", "rejudge", "--challenge", "nope"])
    assert unknown.exit_code == 2 and "no challenge of that name" in unknown.output
    assert "Exit status" in runner.invoke(main, ["contest", "rejudge", "--help"]).output

    same = runner.invoke(main, ["contest", "rejudge", "--kind", "aes", "--json"])
    assert same.exit_code == 0, same.output
    report = json.loads(same.output)
    assert report["scope"] == "kind aes"
    assert [(r["challenge"], r["old_status"], r["new_status"]) for r in report["items"]] == [
        (name, "published", "published")
    ]

    monkeypatch.setenv("CLUBSTACK_CONTEST_OBJECT_BYTES", "100")
    clear_settings_cache()
    failed = runner.invoke(main, ["contest", "rejudge", "--challenge", name, "--reason", "limit"])
    assert failed.exit_code == 1, failed.output
    assert f"VERDICT  {name}: published -> failed" in failed.output
    assert "1 of 1 changed, 1 verdict(s)" in failed.output
    with app.app_context():
        assert db.session().scalar(select(Challenge.status)) == "failed"

    # a sandbox that cannot start: exit 3, the verdict stays as it was
    monkeypatch.setattr("clubstack.contest.sandbox.runner.BWRAP", "/nonexistent/bwrap")
    broken = runner.invoke(main, ["contest", "rejudge", "--challenge", name])
    assert broken.exit_code == 3, broken.output
    assert "the judge failed" in broken.output
    with app.app_context():
        assert db.session().scalar(select(Challenge.status)) == "failed"
        reasons = db.session().scalars(
            select(DeskAction.reason).where(DeskAction.action == "rejudge").order_by(DeskAction.id)
        )
        assert list(reasons) == ["", "limit", ""]  # the three runs, logged


def test_rescore_cli_brings_strawberries_up_to_date(make_app):
    app = make_app(**FAST)
    designer = member(app, "designer@example.org", "designer")
    publish(app, designer)
    with app.app_context():
        c = db.session().scalar(select(Challenge))
        assert c.strawberries == 0.0
        perf, published = c.performance, c.published_at
    clock.travel(timedelta(days=1))
    result = CliRunner().invoke(main, ["contest", "rescore"])
    assert result.exit_code == 0 and "1 challenge(s) scored" in result.output
    with app.app_context():
        c = db.session().scalar(select(Challenge))
        expected = scoring.strawberries(perf, published, clock.utcnow())
        assert c.strawberries == pytest.approx(expected, rel=1e-3)
        assert c.strawberries == pytest.approx(perf, rel=1e-2)  # a day: (1440/1440)^2


def test_freeze_time_must_be_before_the_end(make_app):
    end = datetime(2030, 1, 1, tzinfo=UTC)
    app = make_app(**FAST, contest_final_deadline=end.isoformat())
    boss = organiser(app)
    late = post(
        boss, "/contest/admin/freeze", "/contest/admin/", action="set", freeze_at="2030-01-02T00:00"
    )
    assert late.status_code == 400 and "before the end" in late.text
    ok = post(
        boss, "/contest/admin/freeze", "/contest/admin/", action="set", freeze_at="2029-12-31T20:00"
    )
    assert ok.status_code == 303
    assert "freezes on 2029-12-31 20:00 UTC" in text(boss, "/contest/admin/")


def test_rejudge_jobs_go_through_the_sandbox_queue_without_the_database(make_app, monkeypatch):
    app = make_app("postgres", redis=True, **FAST)
    from clubstack.contest.tasks import answers_queue, sandbox_queue
    from clubstack.core.jobs import configure_jobs, huey
    from clubstack.settings import get_settings

    designer = member(app, "designer@example.org", "designer")
    name = publish(app, designer)
    boss = organiser(app)
    monkeypatch.setenv("CLUBSTACK_JOBS_IMMEDIATE", "false")  # a real queue from here on
    clear_settings_cache()
    configure_jobs(get_settings())
    queue = sandbox_queue(get_settings())
    response = post(boss, "/contest/admin/rejudge", "/contest/admin/rejudge", name=name)
    assert response.status_code == 303
    waiting = text(boss, response.headers["Location"])
    assert "0 of 1 done" in waiting and "pending" in waiting

    # the node that took the job died: the organiser queues the pending job again
    lost = queue.dequeue()
    assert lost is not None and lost.name == "contest.rejudge_execute"
    requeued = post(boss, f"{response.headers['Location']}/requeue", response.headers["Location"])
    assert requeued.status_code == 303
    task = queue.dequeue()
    assert task is not None and task.name == "contest.rejudge_execute"
    assert task.args == lost.args
    assert set(task.args[1]) == {"kind", "source", "inputs", "limits"}  # no key, no expected
    assert AES_KEY not in str(task.args)

    def no_database() -> None:
        raise AssertionError("a sandbox node touched the database")

    with monkeypatch.context() as patch:
        patch.setattr(db, "session", no_database)
        queue.execute(task)
    answers = answers_queue()  # the answer comes back on the JSON answers queue
    assert huey.dequeue() is None
    pending = answers.dequeue()
    assert pending is not None and pending.name == "contest.rejudge_conclude"
    answers.execute(pending)
    page = text(boss, response.headers["Location"])
    assert "Finished" in page and "Queue the pending jobs again" not in page
    item = _item(app, name)
    assert (item.old_status, item.new_status) == ("published", "published")
    assert item.new_performance == pytest.approx(item.old_performance, abs=3.0)  # CPU noise
