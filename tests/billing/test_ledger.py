"""The ledger: integer cents, idempotent charges (also under real concurrency), cached balances
that always equal the sum of the ledger, runway."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clubstack.billing import ledger
from clubstack.billing.errors import IdempotencyConflict, UnknownAccount
from clubstack.billing.models import BillingAccount, LedgerEntry
from clubstack.core.db import db
from clubstack.core.errors import InputError
from tests.billing.conftest import make_user


@pytest.fixture
def dbapp(make_app: Any, db_kind: str) -> Any:
    app = make_app(db_kind=db_kind)
    with app.app_context():
        yield app


def test_charge_once_per_key_and_balance_matches_ledger(dbapp: Any) -> None:
    session = db.session()
    uid = make_user(session, "a@example.org")
    assert ledger.balance(session, uid) == 0
    ledger.credit(session, uid, 2000, reason="card", reference="t", idempotency_key="pay-1")
    first = ledger.charge(
        session, uid, 150, reason="hour 1", reference="capsul:x", idempotency_key="compute:x:1"
    )
    session.commit()
    again = ledger.charge(
        session, uid, 150, reason="hour 1", reference="capsul:x", idempotency_key="compute:x:1"
    )
    session.commit()
    assert again.id == first.id
    assert ledger.balance(session, uid) == 1850
    assert ledger.ledger_sum(session, uid) == 1850
    assert first.amount_cents == -150 and first.balance_after_cents == 1850
    assert session.scalar(select(func.count(LedgerEntry.id))) == 2


def test_balance_may_go_negative_and_runway(dbapp: Any) -> None:
    session = db.session()
    uid = make_user(session, "b@example.org")
    ledger.credit(session, uid, 1000, reason="card", reference="t", idempotency_key="p")
    assert ledger.runway(session, uid, 10) == timedelta(hours=100)
    assert ledger.runway(session, uid, 0) is None
    ledger.charge(session, uid, 1500, reason="usage", reference="r", idempotency_key="c")
    session.commit()
    assert ledger.balance(session, uid) == -500
    assert ledger.runway(session, uid, 10) == timedelta(0)
    assert session.get(BillingAccount, uid).empty_since is not None


def test_bad_charges_are_refused_without_writing(dbapp: Any) -> None:
    session = db.session()
    uid = make_user(session, "c@example.org")
    with pytest.raises(InputError):
        ledger.charge(session, uid, -5, reason="x", reference="r", idempotency_key="k1")
    with pytest.raises(InputError):
        ledger.charge(session, uid, 5, reason="x", reference="r", idempotency_key="")
    ledger.charge(session, uid, 5, reason="x", reference="r", idempotency_key="k2")
    with pytest.raises(IdempotencyConflict):
        ledger.charge(session, uid, 6, reason="x", reference="r", idempotency_key="k2")
    with pytest.raises(UnknownAccount):
        ledger.charge(session, 999_999, 5, reason="x", reference="r", idempotency_key="k3")
    session.commit()
    assert [e.idempotency_key for e in ledger.entries(session, ledger.EntryFilter())] == ["k2"]
    assert ledger.balance(session, uid) == -5


def test_caller_rollback_takes_the_entry_and_balance_back(dbapp: Any) -> None:
    session = db.session()
    uid = make_user(session, "d@example.org")
    ledger.credit(session, uid, 100, reason="card", reference="t", idempotency_key="p")
    session.commit()
    ledger.charge(session, uid, 40, reason="x", reference="r", idempotency_key="lost")
    session.rollback()  # the caller's job failed after charging: nothing of it stays
    assert ledger.balance(session, uid) == 100
    entry = ledger.charge(session, uid, 40, reason="x", reference="r", idempotency_key="lost")
    session.commit()
    assert entry.balance_after_cents == 60 and ledger.balance(session, uid) == 60


def test_check_balances_finds_and_fixes_a_wrong_cache(dbapp: Any) -> None:
    session = db.session()
    uid = make_user(session, "e@example.org")
    ledger.credit(session, uid, 700, reason="card", reference="t", idempotency_key="p")
    session.commit()
    session.get(BillingAccount, uid).balance_cents = 5
    session.commit()
    assert ledger.check_balances(session) == [(uid, 5, 700)]
    ledger.rebuild_balance(session, uid)
    session.commit()
    assert ledger.check_balances(session) == []
    assert ledger.balance(session, uid) == 700


# --- real concurrency on the server databases ---------------------------------------------------


@pytest.fixture(params=["postgres", "mariadb"])
def server_app(make_app: Any, request: pytest.FixtureRequest) -> Any:
    """Racing writers are a matter for the server databases (SQLite has a single writer)."""
    app = make_app(db_kind=request.param)
    with app.app_context():
        yield app


def _race(n: int, work: Any) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        with Session(db.engine) as own:
            barrier.wait()
            try:
                results[i] = work(own, i)
                own.commit()
            except Exception as error:
                own.rollback()
                results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_racing_workers_with_one_key_charge_once(server_app: Any) -> None:
    session = db.session()
    uid = make_user(session, "race@example.org")
    session.close()

    results = _race(
        8,
        lambda s, i: (
            ledger.charge(
                s, uid, 250, reason="hour", reference="capsul:r", idempotency_key="compute:r:2026"
            ).id
        ),
    )
    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 1
    session = db.session()
    assert session.scalar(select(func.count(LedgerEntry.id))) == 1
    assert ledger.balance(session, uid) == -250 == ledger.ledger_sum(session, uid)


def test_racing_workers_with_distinct_keys_all_count(server_app: Any) -> None:
    session = db.session()
    uid = make_user(session, "race2@example.org")
    session.close()

    results = _race(
        8,
        lambda s, i: (
            ledger.charge(s, uid, 10 + i, reason="hour", reference="r", idempotency_key=f"k-{i}").id
        ),
    )
    assert all(isinstance(r, int) for r in results), results
    session = db.session()
    assert ledger.balance(session, uid) == -sum(10 + i for i in range(8))
    running = 0
    for entry in ledger.entries(session, ledger.EntryFilter(user_id=uid), newest_first=False):
        running += entry.amount_cents
        assert entry.balance_after_cents == running  # each entry saw the one before it


def test_a_worker_that_loses_the_race_gets_the_winners_entry(server_app: Any) -> None:
    """Deterministic race: A has written the key but not committed when B charges it."""
    session = db.session()
    uid = make_user(session, "race3@example.org")
    session.close()
    with Session(db.engine) as a:
        winner = ledger.charge(a, uid, 99, reason="x", reference="r", idempotency_key="same").id
        box: dict[str, Any] = {}

        def b() -> None:
            with Session(db.engine) as own:
                try:
                    box["id"] = ledger.charge(
                        own, uid, 99, reason="x", reference="r", idempotency_key="same"
                    ).id
                    own.commit()
                except Exception as error:
                    box["error"] = error

        thread = threading.Thread(target=b)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive(), "B must wait for A's row lock, not write a second entry"
        a.commit()
        thread.join(30)
    assert box.get("id") == winner, box
    assert ledger.balance(db.session(), uid) == -99


def test_balance_history_steps_from_the_window_start_or_the_first_entry(dbapp: Any) -> None:
    from clubstack.core import clock

    session = db.session()
    old, new = make_user(session, "old@example.org"), make_user(session, "new@example.org")
    ledger.credit(session, old, 1000, reason="card", reference="t", idempotency_key="o1")
    session.commit()
    with clock.moved(timedelta(days=100)):
        ledger.credit(session, new, 500, reason="card", reference="t", idempotency_key="n1")
        ledger.charge(session, old, 300, reason="usage", reference="r", idempotency_key="o2")
        session.commit()
        now = clock.utcnow()
    later = now + timedelta(hours=2)
    # an old member: the balance before the window is where the line starts
    history = ledger.balance_history(session, old, later, days=90)
    assert history[0] == (later - timedelta(days=90), 1000)
    assert [v for _, v in history[1:]] == [700, 700] and history[-1][0] == later
    # a new member: from the first entry (a day at least), not a long flat zero before it
    history = ledger.balance_history(session, new, later, days=90)
    assert history[0] == (later - timedelta(days=1), 0)
    assert [v for _, v in history] == [0, 500, 500]
    # no entries at all: flat zero over the whole window
    nobody = make_user(session, "nobody@example.org")
    assert [v for _, v in ledger.balance_history(session, nobody, later)] == [0, 0]
