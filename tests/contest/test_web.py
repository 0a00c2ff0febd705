"""Contest pages, API, jobs and breaks through the real app (jobs run inline in tests)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from clubstack.contest import challenges, p256
from clubstack.contest.kinds import ContestLimits
from clubstack.contest.models import Break, Challenge
from clubstack.contest.settings import ContestSettings
from clubstack.core import clock
from clubstack.core.db import db
from clubstack.settings import service_settings
from tests.conftest import api_token, csrf_token, login

from .conftest import SAMPLES

pytestmark = pytest.mark.usefixtures("sandbox_ready")

AES_KEY = "2b7e151628aed2a6abf7158809cf4f3c"
ECDSA_D = 0xC477F9F65C22CCE20657FAA5B2D1D8122336F851A508A1ED04E479C34985BF96
FAST = {"contest_random_vectors": 10, "contest_call_cpu_seconds": 1}


@pytest.fixture
def aes_app(make_app):
    return make_app(contest_kind="aes", **FAST)


def submit_form(client, source: bytes, **fields):
    token = csrf_token(client, "/contest/submit")
    data = {"csrf_token": token, "file": (io.BytesIO(source), "challenge.c"), **fields}
    return client.post("/contest/submit", data=data, content_type="multipart/form-data")


def second_user(app, address="attacker@example.org", nickname="attacker"):
    client = app.test_client()
    login(client, app, address, nickname=nickname)
    return client


@pytest.mark.parametrize("database", ["sqlite", "postgres", "mariadb"])
def test_aes_submission_is_judged_published_and_broken(make_app, database):
    aes_app = make_app(database, contest_kind="aes", **FAST)
    owner = aes_app.test_client()
    login(owner, aes_app, "designer@example.org", nickname="designer")
    response = submit_form(owner, (SAMPLES / "aes.c").read_bytes(), key=AES_KEY)
    assert response.status_code == 302
    status_page = owner.get(response.headers["Location"]).get_data(as_text=True)
    assert re.search(r'id="status">published<', status_page)
    with aes_app.app_context():
        c = db.session().scalar(select(Challenge))
        name = c.name
        assert c.performance and c.performance > 1 and c.object_size > 0
        assert AES_KEY not in c.vectors  # the key itself is not kept

    # public pages: nickname, never the address; source downloadable by anyone
    anon = aes_app.test_client()
    page = anon.get(f"/contest/challenges/{name}").get_data(as_text=True)
    assert "designer" in page and "designer@example.org" not in page
    source = anon.get(f"/contest/challenges/{name}/source.c")
    assert source.status_code == 200 and b"AES_128_encrypt" in source.data

    # own challenge refused
    token = csrf_token(owner, f"/contest/challenges/{name}")
    refused = owner.post(
        f"/contest/challenges/{name}/break", data={"key": AES_KEY, "csrf_token": token}
    )
    assert refused.status_code == 403 and "own challenge" in refused.get_data(as_text=True)

    attacker = second_user(aes_app)
    token = csrf_token(attacker, f"/contest/challenges/{name}")
    wrong = attacker.post(
        f"/contest/challenges/{name}/break", data={"key": "00" * 16, "csrf_token": token}
    )
    assert wrong.status_code == 422 and "not the key" in wrong.get_data(as_text=True)
    with clock.moved(timedelta(days=1)):
        right = attacker.post(
            f"/contest/challenges/{name}/break", data={"key": AES_KEY.upper(), "csrf_token": token}
        )
    assert right.status_code == 302
    again = attacker.post(
        f"/contest/challenges/{name}/break", data={"key": AES_KEY, "csrf_token": token}
    )
    assert again.status_code == 409

    bananas = anon.get("/contest/bananas").get_data(as_text=True)
    assert "attacker" in bananas and "attacker@example.org" not in bananas
    with aes_app.app_context():
        found = db.session().scalar(select(Break))
        assert found.strawberries_at_break > 0  # a day after publication
    breaks_page = anon.get("/contest/breaks").get_data(as_text=True)
    assert name in breaks_page

    index = anon.get("/contest/").get_data(as_text=True)
    assert "<svg" in index and name in index
    feed = anon.get("/contest/feed.atom")
    assert feed.mimetype == "application/atom+xml"
    entries = ET.fromstring(feed.data).findall("{http://www.w3.org/2005/Atom}entry")
    titles = [e.findtext("{http://www.w3.org/2005/Atom}title") for e in entries]
    assert f"{name} published" in titles and f"{name} broken by attacker" in titles
    user_page = anon.get("/contest/u/designer").get_data(as_text=True)
    assert name in user_page


def test_failed_submission_stays_private_and_shows_escaped_compiler_message(aes_app):
    owner = aes_app.test_client()
    login(owner, aes_app, "designer@example.org", nickname="designer")
    bad = b"void AES_128_encrypt(unsigned char c[16], unsigned char p[16]) { <script> }\n"
    response = submit_form(owner, bad, key=AES_KEY)
    page = owner.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="status">failed<' in page
    assert "&lt;script&gt;" in page and "<script> }" not in page
    with aes_app.app_context():
        name = db.session().scalar(select(Challenge.name))
    other = second_user(aes_app)
    assert other.get(f"/contest/challenges/{name}").status_code == 404
    assert other.get(f"/contest/challenges/{name}/source.c").status_code == 404


def test_filter_rejection_is_shown_on_the_form(aes_app):
    owner = aes_app.test_client()
    login(owner, aes_app, "designer@example.org", nickname="designer")
    response = submit_form(owner, b"#include <stdio.h>\nint x;\n", key=AES_KEY)
    assert response.status_code == 422
    assert "#include is not allowed" in response.get_data(as_text=True)
    bad_key = submit_form(owner, (SAMPLES / "aes.c").read_bytes(), key="xyz")
    assert bad_key.status_code == 422 and "32 hexadecimal" in bad_key.get_data(as_text=True)
    with aes_app.app_context():
        assert db.session().scalar(select(func.count(Challenge.id))) == 0


@pytest.mark.parametrize("database", ["sqlite", "postgres", "mariadb"])
def test_ecdsa_api_submit_status_and_break(make_app, database):
    app = make_app(database, contest_kind="ecdsa", **FAST)
    client = app.test_client()
    login(client, app, "designer@example.org", nickname="designer")
    token = api_token(client)
    headers = {"Authorization": f"Bearer {token}"}
    api = app.test_client()
    public = p256.encode_point(p256.public_key(ECDSA_D)).hex()
    body = {
        "source": (SAMPLES / "ecdsa.c").read_text(),
        "public_key": public,
        "proof": p256.schnorr_prove(ECDSA_D).hex(),
    }

    bad = api.post(
        "/contest/api/submit", json=dict(body, proof=p256.schnorr_prove(5).hex()), headers=headers
    )
    assert bad.status_code == 422 and bad.json["error"] == "invalid_key"

    made = api.post("/contest/api/submit", json=body, headers=headers)
    assert made.status_code == 202, made.json
    assert made.json["status"] == "published"
    status = api.get(f"/contest/api/submissions/{made.json['id']}", headers=headers)
    assert status.json["performance"] > 1
    assert api.get(f"/contest/api/submissions/{made.json['id']}").status_code == 401

    dup = api.post("/contest/api/submit", json=body, headers=headers)
    assert dup.status_code == 409

    listing = api.get("/contest/api/challenges").json
    assert listing[0]["public_key"] == public and listing[0]["designer"] == "designer"
    assert "email" not in str(listing)
    key_file = api.get(f"/contest/challenges/{made.json['name']}/public_key.txt")
    assert public in key_file.get_data(as_text=True)

    attacker = second_user(app)
    attacker_headers = {"Authorization": f"Bearer {api_token(attacker)}"}
    name = made.json["name"]
    wrong = api.post(
        f"/contest/api/challenges/{name}/break", json={"key": "01" * 32}, headers=attacker_headers
    )
    assert wrong.status_code == 422
    right = api.post(
        f"/contest/api/challenges/{name}/break",
        json={"key": f"{ECDSA_D:064x}"},
        headers=attacker_headers,
    )
    assert right.status_code == 201 and right.json["broken"] is True
    own = api.post(
        f"/contest/api/challenges/{name}/break", json={"key": f"{ECDSA_D:064x}"}, headers=headers
    )
    assert own.status_code == 403


def test_break_after_final_deadline_and_submit_after_posting_deadline(make_app):
    now = datetime.now(UTC)
    app = make_app(
        contest_kind="aes",
        contest_final_deadline=(now + timedelta(days=2)).isoformat(),
        contest_posting_deadline=(now + timedelta(days=1)).isoformat(),
        **FAST,
    )
    owner = app.test_client()
    login(owner, app, "designer@example.org", nickname="designer")
    assert submit_form(owner, (SAMPLES / "aes.c").read_bytes(), key=AES_KEY).status_code == 302
    with app.app_context():
        name = db.session().scalar(select(Challenge.name))
    attacker = second_user(app)
    token = csrf_token(attacker, f"/contest/challenges/{name}")
    clock.travel(timedelta(days=1, hours=1))
    late = submit_form(owner, (SAMPLES / "aes.c").read_bytes(), key=AES_KEY)
    assert late.status_code == 403 and "posting deadline" in late.get_data(as_text=True)
    clock.travel(timedelta(days=1))
    refused = attacker.post(
        f"/contest/challenges/{name}/break", data={"key": AES_KEY, "csrf_token": token}
    )
    assert refused.status_code == 403 and "contest is over" in refused.get_data(as_text=True)
    with app.app_context():
        session = db.session()
        challenges.recompute_scores(session, service_settings(ContestSettings))
        c = session.scalar(select(Challenge))
        # frozen at the final deadline: two days after publication
        assert c.strawberries == pytest.approx(c.performance * 4, rel=0.01)


def test_submit_rate_limit(make_app):
    app = make_app(contest_kind="aes", contest_submit_rate="1/minute", **FAST)
    owner = app.test_client()
    login(owner, app, "designer@example.org", nickname="designer")
    bad = b"#include <stdio.h>\n"
    assert submit_form(owner, bad, key=AES_KEY).status_code == 422
    assert submit_form(owner, bad, key=AES_KEY).status_code == 429


def test_lost_job_is_retried_once_then_failed(aes_app):
    owner = aes_app.test_client()
    login(owner, aes_app, "designer@example.org", nickname="designer")
    conf = service_settings(ContestSettings)
    timeout = timedelta(minutes=conf.job_timeout_minutes + 1)
    with aes_app.app_context():
        session = db.session()
        from clubstack.core.accounts.models import User

        user = session.scalar(select(User))
        c = challenges.submit(session, user, conf, (SAMPLES / "aes.c").read_bytes(), key=AES_KEY)
        session.commit()  # stored and queued, but no worker ever answers
        requeued: list[str] = []
        now = clock.utcnow()
        # waiting in a long queue is not being lost
        assert challenges.reap_lost_jobs(session, conf, requeued.append, now=now + 3 * timeout) == (
            0,
            0,
        )
        challenges.record_progress(session, c.id, "started", now=now)  # a worker took it
        assert challenges.reap_lost_jobs(
            session, conf, lambda ch: requeued.append(ch.name), now=now + timeout
        ) == (1, 0)
        assert requeued == [c.name] and c.attempts == 2 and c.status == "filtered"
        challenges.record_progress(session, c.id, "started", now=now + timeout)
        assert challenges.reap_lost_jobs(
            session, conf, requeued.append, now=now + 2 * timeout + timedelta(minutes=1)
        ) == (0, 1)
        assert c.status == "failed" and "retried once" in c.failure


def test_queue_position_and_maintenance_job(aes_app):
    login(aes_app.test_client(), aes_app, "designer@example.org", nickname="designer")
    conf = service_settings(ContestSettings)
    with aes_app.app_context():
        session = db.session()
        from clubstack.core.accounts.models import User

        user = session.scalar(select(User))
        first = challenges.submit(
            session, user, conf, (SAMPLES / "aes.c").read_bytes(), key=AES_KEY
        )
        second = challenges.submit(
            session, user, conf, (SAMPLES / "aes.c").read_bytes(), key=AES_KEY
        )
        session.commit()
        assert challenges.queue_position(session, first) == 1
        assert challenges.queue_position(session, second) == 2
        first_id = first.id
    from clubstack.contest.tasks import maintenance

    lost_after = conf.job_timeout_minutes * challenges.UNSTARTED_FACTOR + 1
    with clock.moved(timedelta(minutes=lost_after)):
        maintenance.call_local()  # the store "lost" both jobs: retried, judged inline
    with aes_app.app_context():
        assert db.session().get(Challenge, first_id).status == "published"


def test_rules_page_follows_settings(make_app):
    app = make_app(
        contest_kind="ecdsa", contest_run_memory_bytes=12_345_678, contest_title="Test edition"
    )
    page = app.test_client().get("/contest/rules").get_data(as_text=True)
    assert "Test edition" in page and "12345678 bytes of RAM" in page
    assert "ECDSA_256_sign" in page and "gmp.h" in page


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_sandbox_job_runs_on_its_own_queue_without_the_database(make_app, monkeypatch, store):
    aes_app = make_app(contest_kind="aes", redis=store == "redis", **FAST)
    from clubstack.contest.tasks import answers_queue, sandbox_queue
    from clubstack.core.db import db as database
    from clubstack.core.jobs import configure_jobs, huey
    from clubstack.settings import clear_settings_cache, get_settings

    owner = aes_app.test_client()
    login(owner, aes_app, "designer@example.org", nickname="designer")
    monkeypatch.setenv("CLUBSTACK_JOBS_IMMEDIATE", "false")  # a real queue from here on
    clear_settings_cache()
    configure_jobs(get_settings())
    queue = sandbox_queue(get_settings())
    expected_store = "RedisStorage" if store == "redis" else "SqliteStorage"
    assert type(queue.storage).__name__ == expected_store and queue.name != huey.name
    response = submit_form(owner, (SAMPLES / "aes.c").read_bytes(), key=AES_KEY)
    page = owner.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="status">filtered<' in page and "position 1 in the queue" in page

    task = queue.dequeue()
    assert task is not None and task.name == "contest.execute"
    assert set(task.args[1]) == {"kind", "source", "inputs", "limits"}  # no key, no expected
    assert AES_KEY not in str(task.args)

    def no_database() -> None:
        raise AssertionError("a sandbox node touched the database")

    with monkeypatch.context() as patch:
        patch.setattr(database, "session", no_database)
        queue.execute(task)

    names = []
    answers = answers_queue()
    assert huey.dequeue() is None  # nothing of the contest goes through the pickled queue
    while (pending := answers.dequeue()) is not None:
        names.append(pending.name)
        answers.execute(pending)
    assert names == ["contest.progress", "contest.progress", "contest.conclude"]
    page = owner.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="status">published<' in page


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_the_sandbox_queues_carry_checked_json_only(make_app, monkeypatch, store):
    import pickle

    make_app(contest_kind="aes", redis=store == "redis", **FAST)
    from clubstack.contest.queue import InvalidMessage
    from clubstack.contest.tasks import answers_queue, drain_answers, sandbox_queue
    from clubstack.settings import clear_settings_cache, get_settings

    monkeypatch.setenv("CLUBSTACK_JOBS_IMMEDIATE", "false")
    clear_settings_cache()
    queue = sandbox_queue(get_settings())
    answers = answers_queue()
    from clubstack.contest.tasks import execute

    execute(
        7,
        {
            "kind": "aes",
            "source": "int x;",
            "inputs": ["00" * 16],
            "limits": dataclasses.asdict(ContestLimits()),
        },
    )
    raw = queue.storage.dequeue()
    assert raw.startswith(b"{") and b"contest.execute" in raw
    assert json.loads(raw)["message"]["args"][0] == 7

    # a compromised sandbox node writes a pickle that would run code when loaded
    class Boom:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))

    for bad in (
        pickle.dumps(Boom()),
        b'{"message": {"id": "x", "name": "core.anything", "args": [], "kwargs": {}}}',
        json.dumps(
            {
                "message": {
                    "id": "y",
                    "name": "contest.conclude",
                    "args": [1, {"stage": "tested", "cpu_ns": "1"}],
                    "kwargs": {},
                }
            }
        ).encode(),
    ):
        answers.storage.enqueue(bad, 0)
        with pytest.raises(InvalidMessage):
            answers.dequeue()
    for bad in (pickle.dumps(Boom()),):
        answers.storage.enqueue(bad, 0)
    assert drain_answers() == 1  # read, refused, dropped
    assert not os.path.exists("PWNED")
    with pytest.raises(InvalidMessage):
        execute(8, {"kind": "aes", "source": "x", "inputs": ["zz"], "limits": {}})


def test_one_member_cannot_starve_the_others(make_app, monkeypatch):
    app = make_app(contest_kind="aes", **FAST)
    from clubstack.contest.tasks import sandbox_queue
    from clubstack.settings import clear_settings_cache, get_settings

    busy = app.test_client()
    login(busy, app, "busy@example.org", nickname="busy")
    other = second_user(app, "other@example.org", "other")
    monkeypatch.setenv("CLUBSTACK_JOBS_IMMEDIATE", "false")
    clear_settings_cache()
    queue = sandbox_queue(get_settings())
    sample = (SAMPLES / "aes.c").read_bytes()
    for _ in range(3):
        assert submit_form(busy, sample, key=AES_KEY).status_code == 302
    assert submit_form(other, sample, key=AES_KEY).status_code == 302
    queued = []
    while (task := queue.dequeue()) is not None:
        queued.append(task.args[0])
    with app.app_context():
        rows = db.session().scalars(select(Challenge).order_by(Challenge.id)).all()
        owners = {c.id: c.owner.nickname for c in rows}
    # busy's first submission and other's: the second and third of busy wait their turn
    assert [owners[i] for i in queued] == ["busy", "other"]
    with app.app_context():
        session = db.session()
        first = session.get(Challenge, queued[0])
        challenges.record_answer(
            session,
            first.id,
            {"stage": "compile_failed", "message": "x"},
            service_settings(ContestSettings),
        )
        following = challenges.release_next(session, first.owner_id)
        assert following is not None and owners[following.id] == "busy"
        assert challenges.release_next(session, first.owner_id) is None


def test_submissions_wait_for_the_start(make_app):
    start = datetime.now(UTC) + timedelta(hours=2)
    app = make_app(contest_kind="aes", contest_start=start.isoformat(), **FAST)
    owner = app.test_client()
    login(owner, app, "designer@example.org", nickname="designer")
    early = submit_form(owner, (SAMPLES / "aes.c").read_bytes(), key=AES_KEY)
    assert early.status_code == 403 and "submissions open on" in early.get_data(as_text=True)
    clock.travel(timedelta(hours=3))
    assert submit_form(owner, (SAMPLES / "aes.c").read_bytes(), key=AES_KEY).status_code == 302


def test_the_site_worker_drains_the_answers_queue_in_its_own_thread(make_app, monkeypatch):
    import time as wall

    make_app(contest_kind="aes", redis=True, **FAST)
    from clubstack.contest import tasks
    from clubstack.core.jobs import configure_jobs
    from clubstack.settings import clear_settings_cache, get_settings

    monkeypatch.setenv("CLUBSTACK_JOBS_IMMEDIATE", "false")
    clear_settings_cache()
    configure_jobs(get_settings())
    answers = tasks.answers_queue(get_settings())
    tasks.progress(123456, "started")  # no such challenge: recorded as a no-op
    assert answers.pending_count() == 1
    tasks.start_answer_drain()  # what the main consumer's start-up hook does
    try:
        deadline = wall.monotonic() + 10
        while answers.pending_count() and wall.monotonic() < deadline:
            wall.sleep(0.1)
        assert answers.pending_count() == 0
    finally:
        tasks.stop_answer_drain()


def test_a_lying_submission_is_published_with_the_kernel_measured_score(make_app):
    from clubstack.contest import scoring

    from .test_judge import LIAR

    app = make_app(contest_kind="aes", contest_random_vectors=100, contest_call_cpu_seconds=1)
    owner = app.test_client()
    login(owner, app, "designer@example.org", nickname="designer")
    sample = (SAMPLES / "aes.c").read_bytes()
    for source in (sample, sample + LIAR.encode()):
        response = submit_form(owner, source, key=AES_KEY)
        page = owner.get(response.headers["Location"]).get_data(as_text=True)
        assert 'id="status">published<' in page
    conf = service_settings(ContestSettings)
    with app.app_context():
        honest, liar = db.session().scalars(select(Challenge).order_by(Challenge.id)).all()
        assert liar.mean_cpu_ns > 1000 and liar.mean_ram_bytes > 16 * 1024
        kernel = scoring.performance(
            liar.object_size,
            conf.object_bytes,
            liar.mean_ram_bytes,
            conf.run_memory_bytes,
            liar.mean_cpu_ns / 1e9,
            conf.call_cpu_seconds,
        )
        assert liar.performance == pytest.approx(kernel, abs=1e-3)  # stored as int ns, bytes
        assert liar.performance < honest.performance + 1.5  # not twice the honest score
