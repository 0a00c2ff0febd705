"""`clubstack billing ...`: the same ledger and rules as the web, for operators."""

from __future__ import annotations

import csv
import sys

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from clubstack.core.accounts.models import User
from clubstack.core.errors import ClubError

EXIT_NOT_FOUND = 2
EXIT_BAD_INPUT = 3


def _open() -> None:
    from clubstack.core.migrate import open_database
    from clubstack.settings import SettingsError, get_settings

    try:
        open_database(get_settings().sqlalchemy_url)
    except SettingsError as error:
        raise click.ClickException(str(error)) from None


def _member(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        click.echo(f"no member with address {email}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    return user


@click.group("billing")
def billing_cli() -> None:
    """Prepaid credits: balances, manual credits and debits, ledgers."""


@billing_cli.command("balance")
@click.argument("email")
def balance_cmd(email: str) -> None:
    """Show the balance (and runway at the current burn) of the member EMAIL."""
    _open()
    from clubstack.billing import ledger
    from clubstack.billing.burn import hourly_burn
    from clubstack.billing.money import format_money
    from clubstack.core.db import session_scope

    with session_scope() as session:
        user = _member(session, email)
        cents = ledger.balance(session, user.id)
        burn = hourly_burn(session, user.id)
        runway = ledger.runway(session, user.id, burn)
    click.echo(f"{email}: {format_money(cents)} ({cents} cents)")
    if runway is not None:
        click.echo(f"burn {format_money(burn)}/hour, runway {runway}")


@billing_cli.command(
    "credit",
    context_settings={"ignore_unknown_options": True},
    short_help="Credit (or, negative, debit) an amount with a note.",
)
@click.argument("email")
@click.argument("amount")
@click.option("--note", required=True, help="Why (shown to the member in the ledger).")
@click.option(
    "--key",
    default=None,
    help="Idempotency key; running the command again with it books nothing twice.",
)
def credit_cmd(email: str, amount: str, note: str, key: str | None) -> None:
    """Credit AMOUNT (e.g. 20.00; negative such as -5.00 for a debit) to the member EMAIL."""
    _open()
    from clubstack.billing import ledger
    from clubstack.billing.money import format_money, parse_amount
    from clubstack.core.db import random_id, session_scope

    try:
        cents = parse_amount(amount)
    except ClubError as error:
        click.echo(f"bad AMOUNT: {'; '.join(getattr(error, 'fields', {}).values())}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    try:
        with session_scope() as session:
            user = _member(session, email)
            entry = ledger.adjust(
                session,
                user.id,
                cents,
                note=note,
                by_user_id=None,
                idempotency_key=f"cli:{key or random_id()}",
            )
            after = entry.balance_after_cents
    except ClubError as error:
        details = "; ".join(getattr(error, "fields", {}).values()) or error.message
        click.echo(f"refused: {details}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    click.echo(f"booked {format_money(cents)} for {email}; balance {format_money(after)}")


@billing_cli.command("ledger")
@click.argument("email")
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV (same columns as the web export).")
def ledger_cmd(email: str, as_csv: bool) -> None:
    """Print the ledger of the member EMAIL, oldest entry first."""
    _open()
    from clubstack.billing import reports
    from clubstack.billing.ledger import EntryFilter, iter_entries
    from clubstack.billing.money import format_money
    from clubstack.core.db import session_scope

    with session_scope() as session:
        user = _member(session, email)
        flt = EntryFilter(user_id=user.id)
        if as_csv:
            writer = csv.writer(sys.stdout)
            for row in reports.csv_rows(session, flt):
                writer.writerow([reports.safe_cell(c) for c in row])
            return
        for e in iter_entries(session, flt):
            click.echo(
                f"{e.created_at:%Y-%m-%d %H:%M} {e.kind:<10} "
                f"{format_money(e.amount_cents):>14} "
                f"{format_money(e.balance_after_cents):>14}  {e.reason}"
            )


@billing_cli.command("check")
@click.option("--fix", is_flag=True, help="Rebuild wrong cached balances from the ledger.")
def check_cmd(fix: bool) -> None:
    """Compare every cached balance with the sum of its ledger (exit 1 if any differ)."""
    _open()
    from clubstack.billing import ledger
    from clubstack.core.db import session_scope

    with session_scope() as session:
        wrong = ledger.check_balances(session)
        for user_id, cached, real in wrong:
            click.echo(f"user {user_id}: cached {cached}, ledger {real}")
            if fix:
                ledger.rebuild_balance(session, user_id)
    if not wrong:
        click.echo("all balances match the ledger")
    elif not fix:
        sys.exit(1)
