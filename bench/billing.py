"""Billing benchmark: 100,000 ledger entries over 1,000 accounts on PostgreSQL.

Measures a member's balance and runway (the cached balance, one primary-key read) and the admin
overview page (rendered by the app), each against a naive baseline in the same run: the balance
as SUM over the member's ledger entries, the overview as a GROUP BY over the whole ledger.

    python bench/billing.py            # uses postgresql+psycopg://postgres@127.0.0.1:5432
    CLUBSTACK_BENCH_POSTGRES_URL=... python bench/billing.py

Targets (issue #7): balance < 5 ms, admin overview < 300 ms. Exit 0 unless the setup fails.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

ACCOUNTS = 1_000
ENTRIES = 100_000
LIVE_CHARGES = 1_000  # booked through ledger.charge (the real path), the rest in bulk
BASE_URL = os.environ.get(
    "CLUBSTACK_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
DB_NAME = "clubstack_bench_billing"


def timed(fn: Callable[[], object], runs: int) -> float:
    """Median wall time of `fn` in milliseconds (after one warm-up call)."""
    fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def scratch_database() -> str:
    admin = create_engine(BASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()
    return make_url(BASE_URL).set(database=DB_NAME).render_as_string(hide_password=False)


def drop_database() -> None:
    admin = create_engine(BASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
    admin.dispose()


def main() -> int:
    try:
        url = scratch_database()
    except Exception as error:
        print(f"PostgreSQL unreachable at {BASE_URL}: {str(error).splitlines()[0]}")
        return 1
    instance = tempfile.mkdtemp(prefix="clubstack-bench-")
    os.environ.update(
        {
            "CLUBSTACK_INSTANCE": instance,
            "CLUBSTACK_DATABASE_URL": url,
            "CLUBSTACK_SECRET_KEY": "bench-" + "x" * 40,
            "CLUBSTACK_JOBS_IMMEDIATE": "true",
            "CLUBSTACK_LOG_LEVEL": "WARNING",
        }
    )
    from clubstack.app import create_app
    from clubstack.billing import ledger
    from clubstack.billing.models import BillingAccount, LedgerEntry
    from clubstack.core.accounts.login import start_session
    from clubstack.core.accounts.models import User
    from clubstack.core.db import db
    from clubstack.core.migrate import upgrade

    try:
        upgrade(url)
        app = create_app()
        rng = random.Random(7)
        with app.app_context():
            session = db.session()
            print(f"setting up {ENTRIES:,} entries over {ACCOUNTS:,} accounts on PostgreSQL ...")
            session.execute(
                insert(User),
                [
                    {"email": f"member{i}@example.org", "nickname": f"member{i}", "role": "member"}
                    for i in range(ACCOUNTS)
                ],
            )
            admin = User(email="admin@example.org", nickname="admin", role="admin")
            session.add(admin)
            session.commit()
            ids = list(session.scalars(select(User.id).where(User.role == "member")))
            balances = dict.fromkeys(ids, 0)
            start = datetime(2026, 1, 1, tzinfo=UTC)
            rows = []
            for n in range(ENTRIES - LIVE_CHARGES):
                uid = ids[n % ACCOUNTS]
                amount = 2000 if balances[uid] < 500 else -rng.randint(5, 60)
                balances[uid] += amount
                rows.append(
                    {
                        "user_id": uid,
                        "amount_cents": amount,
                        "balance_after_cents": balances[uid],
                        "kind": "payment" if amount > 0 else "usage",
                        "reason": "Card payment" if amount > 0 else "capsul hour",
                        "reference": f"bench:{n}",
                        "idempotency_key": f"bench:{n}",
                        "created_at": start + timedelta(minutes=n),
                    }
                )
            for chunk in range(0, len(rows), 10_000):
                session.execute(insert(LedgerEntry), rows[chunk : chunk + 10_000])
            session.execute(
                insert(BillingAccount),
                [
                    {
                        "user_id": uid,
                        "balance_cents": cents,
                        "entry_count": ENTRIES // ACCOUNTS,
                        "notified_state": "OK",
                        "updated_at": start,
                    }
                    for uid, cents in balances.items()
                ],
            )
            session.commit()
            t0 = time.perf_counter()
            for n in range(LIVE_CHARGES):
                ledger.charge(
                    session,
                    ids[n % ACCOUNTS],
                    7,
                    reason="capsul hour",
                    reference="bench",
                    idempotency_key=f"live:{n}",
                )
                session.commit()
            charge_ms = (time.perf_counter() - t0) * 1000 / LIVE_CHARGES
            session.execute(text("ANALYZE"))
            session.commit()
            total = session.scalar(select(func.count(LedgerEntry.id)))
            assert total == ENTRIES, total
            assert ledger.check_balances(session) == [], "cached balances disagree with ledger"

            def pick() -> int:
                return ids[rng.randrange(ACCOUNTS)]

            balance_ms = timed(lambda: ledger.balance(session, pick()), 300)
            runway_ms = timed(lambda: ledger.runway(session, pick(), 12), 300)
            naive_ms = timed(lambda: ledger.ledger_sum(session, pick()), 300)
            sid = start_session(session, session.get(User, admin.id), lifetime=timedelta(hours=1))
            session.commit()
            naive_overview = timed(
                lambda: session.execute(
                    select(User.email, func.sum(LedgerEntry.amount_cents))
                    .join(LedgerEntry, LedgerEntry.user_id == User.id)
                    .group_by(User.email)
                    .order_by(func.sum(LedgerEntry.amount_cents))
                ).all(),
                10,
            )
        client = app.test_client()
        with client.session_transaction() as cookie:
            cookie["sid"] = sid

        def overview() -> None:
            response = client.get("/billing/admin/")
            assert response.status_code == 200 and "member" in response.get_data(as_text=True)

        overview_ms = timed(overview, 20)
    finally:
        db.dispose()
        drop_database()

    print()
    print(f"{'measure':<44}{'median':>10}{'target':>10}{'baseline':>11}{'speed-up':>10}")
    print(
        f"{'balance of one member (cached)':<44}{balance_ms:>8.3f}ms{'< 5 ms':>10}"
        f"{naive_ms:>9.3f}ms{naive_ms / balance_ms:>9.1f}x"
    )
    print(
        f"{'runway of one member':<44}{runway_ms:>8.3f}ms{'':>10}{naive_ms:>9.3f}ms"
        f"{naive_ms / runway_ms:>9.1f}x"
    )
    print(
        f"{'admin overview page (GET /billing/admin/)':<44}{overview_ms:>8.1f}ms{'< 300 ms':>10}"
        f"{naive_overview:>9.1f}ms{naive_overview / overview_ms:>9.1f}x"
    )
    print(f"{'one charge through ledger.charge (+commit)':<44}{charge_ms:>8.3f}ms")
    print()
    print("baselines: balance = SUM(amount_cents) over the member's entries (indexed);")
    print("           overview = GROUP BY SUM over the whole ledger (query only, no page).")
    ok = balance_ms < 5 and overview_ms < 300
    print("targets met" if ok else "TARGETS MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
