"""`clubstack billing balance|credit|ledger|check`: the same ledger and rules as the web."""

from __future__ import annotations

import csv
import io
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from clubstack.billing import ledger
from clubstack.billing.models import LedgerEntry
from clubstack.cli import main
from clubstack.core.db import db
from tests.billing.conftest import make_user


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, ["billing", *args], catch_exceptions=False)


def test_credit_balance_ledger_and_csv(app: Any) -> None:
    with app.app_context():
        make_user(db.session(), "ops@example.org")
    first = _run("credit", "ops@example.org", "20.00", "--note", "paid in cash at the meeting")
    assert first.exit_code == 0, first.output
    assert "balance €20.00" in first.output
    debit = _run("credit", "ops@example.org", "-2.50", "--note", "cash miscounted")
    assert debit.exit_code == 0, debit.output
    balance = _run("balance", "OPS@example.org")
    assert balance.exit_code == 0 and "€17.50 (1750 cents)" in balance.output
    listing = _run("ledger", "ops@example.org")
    assert "paid in cash at the meeting" in listing.output and "-€2.50" in listing.output
    exported = _run("ledger", "ops@example.org", "--csv")
    rows = list(csv.DictReader(io.StringIO(exported.output)))
    with app.app_context():
        entries = db.session().scalars(select(LedgerEntry).order_by(LedgerEntry.id)).all()
        assert [(r["id"], r["amount_cents"]) for r in rows] == [
            (str(e.id), str(e.amount_cents)) for e in entries
        ]
        assert all(e.kind == "adjustment" and e.created_by_id is None for e in entries)
    assert _run("check").output.strip() == "all balances match the ledger"


def test_key_makes_a_rerun_harmless(app: Any) -> None:
    with app.app_context():
        uid = make_user(db.session(), "k@example.org")
    for _ in range(2):
        result = _run("credit", "k@example.org", "5", "--note", "n", "--key", "ticket-42")
        assert result.exit_code == 0
    with app.app_context():
        assert ledger.balance(db.session(), uid) == 500


def test_errors_have_exit_codes_and_write_nothing(app: Any) -> None:
    with app.app_context():
        make_user(db.session(), "e@example.org")
    assert _run("balance", "nobody@example.org").exit_code == 2
    assert _run("credit", "nobody@example.org", "5", "--note", "x").exit_code == 2
    bad = _run("credit", "e@example.org", "5.555", "--note", "x")
    assert bad.exit_code == 3 and "At most 2 digits" in bad.output
    assert _run("credit", "e@example.org", "0", "--note", "x").exit_code == 3
    assert _run("credit", "e@example.org", "5").exit_code == 2  # --note is required (usage)
    with app.app_context():
        assert db.session().scalars(select(LedgerEntry)).all() == []
    assert "Show the balance" in _run("--help").output
