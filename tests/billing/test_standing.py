"""Account standing and the low-credit warnings: each sent once, at the right moment of a
descent measured with the movable clock; a top-up makes the next descent announced again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from clubstack.billing import ledger
from clubstack.billing.burn import register_burn_source, unregister_burn_source
from clubstack.billing.standing import AccountState, account_state, send_warnings
from clubstack.core import clock
from clubstack.core.db import db
from tests.billing.conftest import make_user
from tests.conftest import message_text, outbox_messages

BURN = 10  # cents per hour


@pytest.fixture
def burning() -> Iterator[dict[int, int]]:
    """A stand-in for compute's registration: user id -> cents per hour."""
    rates: dict[int, int] = {}

    def source(session: Any, user_id: int) -> int:
        return rates.get(user_id, 0)

    register_burn_source(source)
    yield rates
    unregister_burn_source(source)


@pytest.fixture
def japp(make_app: Any) -> Iterator[Any]:
    app = make_app(billing_grace_period_hours=72)
    with app.app_context():
        yield app


def test_states_follow_balance_burn_and_grace(japp: Any) -> None:
    session = db.session()
    uid = make_user(session, "s@example.org")
    now = clock.utcnow()
    assert account_state(session, uid, 0, now) == AccountState.OK  # nothing, nothing running
    assert account_state(session, uid, BURN, now) == AccountState.EMPTY
    ledger.credit(session, uid, 1700, reason="p", reference="r", idempotency_key="p1")
    session.commit()
    assert account_state(session, uid, BURN, now) == AccountState.OK  # 170 h
    assert account_state(session, uid, 11, now) == AccountState.LOW_WEEK  # 154 h
    assert account_state(session, uid, 71, now) == AccountState.LOW_DAY  # 23 h
    assert account_state(session, uid, 0, now) == AccountState.OK
    ledger.charge(session, uid, 1800, reason="u", reference="r", idempotency_key="u1")
    session.commit()
    empty_at = clock.utcnow()
    assert account_state(session, uid, BURN, empty_at) == AccountState.EMPTY
    assert account_state(session, uid, 0, empty_at) == AccountState.EMPTY  # owes money
    assert account_state(session, uid, BURN, empty_at + timedelta(hours=71)) == AccountState.EMPTY
    assert (
        account_state(session, uid, BURN, empty_at + timedelta(hours=72))
        == AccountState.GRACE_EXPIRED
    )
    ledger.credit(session, uid, 5000, reason="p", reference="r", idempotency_key="p2")
    session.commit()
    assert account_state(session, uid, BURN, empty_at + timedelta(hours=100)) == AccountState.OK


def _descend(app: Any, uid: int, hours: int, start_hour: int = 0) -> list[tuple[int, str]]:
    """Meter BURN each hour as compute does, run billing's job; (hour, subject) of each mail."""
    session = db.session()
    sent = []
    for hour in range(start_hour, start_hour + hours):
        clock.travel(timedelta(hours=1))
        if ledger.balance(session, uid) > 0:  # compute stops capsuls at zero: no more usage
            ledger.charge(
                session,
                uid,
                BURN,
                reason="hour",
                reference="capsul:t",
                idempotency_key=f"capsul:t:{hour}",
            )
            session.commit()
        before = len(outbox_messages(app))
        if send_warnings(session, clock.utcnow()):
            for message in outbox_messages(app)[before:]:
                sent.append((hour, message["Subject"]))
    return sent


def test_warnings_go_out_once_each_at_the_right_time(japp: Any, burning: dict[int, int]) -> None:
    session = db.session()
    uid = make_user(session, "w@example.org")
    other = make_user(session, "idle@example.org")  # has credit, runs nothing: never mailed
    ledger.credit(session, uid, 2000, reason="p", reference="r", idempotency_key="p1")
    ledger.credit(session, other, 100, reason="p", reference="r", idempotency_key="p2")
    session.commit()
    burning[uid] = BURN
    sent = _descend(japp, uid, 290)
    hours = [h for h, _ in sent]
    # 2000 cents at 10/h: a week (1680 left) after 32 charges, a day (240) after 176,
    # zero after 200; the 72-hour grace period ends 72 hours after that.
    assert hours == [31, 175, 199, 271], sent
    subjects = [s for _, s in sent]
    assert "runs out in about 7 days" in subjects[0]
    assert "runs out in about 24 hours" in subjects[1]
    assert "used up" in subjects[2] and "grace period over" in subjects[3]
    messages = {m["Subject"]: m for m in outbox_messages(japp)}
    assert all(messages[s]["To"] == "w@example.org" for s in subjects)
    zero = message_text(messages[subjects[2]])
    assert "stopped" in zero and "72-hour grace period" in zero and "/billing/buy" in zero
    # Nothing more however often the job runs.
    assert send_warnings(session, clock.utcnow()) == 0


def test_a_top_up_resets_the_warnings(japp: Any, burning: dict[int, int]) -> None:
    session = db.session()
    uid = make_user(session, "t@example.org")
    ledger.credit(session, uid, 1000, reason="p", reference="r", idempotency_key="p1")
    session.commit()
    burning[uid] = BURN
    first = _descend(japp, uid, 80)  # 1000 -> 200: LOW_WEEK at once, LOW_DAY at hour 75
    assert [h for h, _ in first] == [0, 75]
    ledger.credit(session, uid, 2000, reason="p", reference="r", idempotency_key="p2")
    session.commit()
    assert _descend(japp, uid, 1, start_hour=80) == []  # back to OK: silent
    again = _descend(japp, uid, 60, start_hour=81)  # 2190 -> ... a week left again at 1680
    assert [h for h, _ in again] == [131]


@pytest.fixture(params=["postgres", "mariadb"])
def server_app(make_app: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    app = make_app(db_kind=request.param)
    with app.app_context():
        yield app


def test_two_workers_running_the_job_at_once_send_one_mail(
    server_app: Any, burning: dict[int, int]
) -> None:
    import threading

    from sqlalchemy.orm import Session

    session = db.session()
    uid = make_user(session, "twice@example.org")
    ledger.credit(session, uid, 100, reason="p", reference="r", idempotency_key="p1")
    session.commit()
    session.close()
    burning[uid] = BURN  # 10 hours left: LOW_DAY
    barrier = threading.Barrier(4)
    sent: list[int] = []

    def worker() -> None:
        with Session(db.engine) as own:
            barrier.wait()
            sent.append(send_warnings(own, clock.utcnow()))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(sent) == [0, 0, 0, 1]
    assert [m["To"] for m in outbox_messages(server_app)] == ["twice@example.org"]


def test_bad_currency_or_locale_is_a_clear_settings_error(make_app: Any) -> None:
    from clubstack.settings import SettingsError

    with pytest.raises(SettingsError, match=r"CLUBSTACK_BILLING_CURRENCY: .*unknown currency"):
        make_app(billing_currency="XXY")
    with pytest.raises(SettingsError, match=r"CLUBSTACK_BILLING_LOCALE: .*unknown locale"):
        make_app(billing_currency="EUR", billing_locale="zz_QQ")
