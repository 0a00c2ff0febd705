"""Member and admin pages: balance, runway, chart, ledger filters, receipts, manual adjustments
with who made them, and CSV exports that match the ledger."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from clubstack.billing import ledger
from clubstack.billing.burn import register_burn_source, unregister_burn_source
from clubstack.billing.models import LedgerEntry, Payment
from clubstack.core import clock
from clubstack.core.accounts.models import User
from clubstack.core.db import db
from tests.billing.conftest import login_as
from tests.conftest import csrf_token


def _uid(app: Any, email: str = "member@example.org") -> int:
    with app.app_context():
        return db.session().scalar(select(User.id).where(User.email == email))


def _book(
    app: Any, uid: int, cents: int, key: str, kind: str = "payment", reason: str = "x"
) -> None:
    with app.app_context():
        session = db.session()
        ledger.record(
            session, uid, cents, kind=kind, reason=reason, reference="test", idempotency_key=key
        )
        session.commit()


@pytest.fixture
def burn_10() -> Any:
    def source(session: Any, user_id: int) -> int:
        return 10

    register_burn_source(source)
    yield
    unregister_burn_source(source)


def test_dashboard_shows_balance_runway_and_chart(app: Any, member: Any, burn_10: Any) -> None:
    uid = _uid(app)
    _book(app, uid, 2400, "p1", reason="Card payment")
    with clock.moved(timedelta(days=2)):
        _book(app, uid, -400, "u1", kind="usage", reason="capsul hour")
        page = member.get("/billing/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="balance">€20.00<' in html
    assert "8 days, 8 h" in html  # 2000 cents at 10 cents/hour = 200 hours
    assert "<svg" in html and 'role="img"' in html and "balance-line" in html
    assert "From €0.00" in html and "to €20.00" in html  # the chart's text alternative
    assert "capsul hour" in html and "Card payment" in html


def test_pages_need_login_and_admin_pages_need_admin(app: Any, client: Any, member: Any) -> None:
    anonymous = app.test_client()
    assert anonymous.get("/billing/").status_code == 302
    assert anonymous.get("/billing/api/v1/balance").status_code == 401
    for path in (
        "/billing/admin/",
        "/billing/admin/payments",
        "/billing/admin/adjustments",
        "/billing/admin/ledger.csv",
        "/billing/admin/invoices",
    ):
        assert member.get(path).status_code == 403, path


def test_ledger_filters_and_bad_filters(app: Any, member: Any) -> None:
    uid = _uid(app)
    _book(app, uid, 1000, "p1", reason="Card payment one")
    _book(app, uid, -100, "u1", kind="usage", reason="capsul alpha")
    _book(app, uid, -200, "u2", kind="usage", reason="capsul beta")
    usage = member.get("/billing/ledger?kind=usage").get_data(as_text=True)
    assert "capsul alpha" in usage and "capsul beta" in usage and "Card payment one" not in usage
    found = member.get("/billing/ledger?q=beta").get_data(as_text=True)
    assert "capsul beta" in found and "capsul alpha" not in found
    today = clock.utcnow().date()
    future = member.get(f"/billing/ledger?from={today + timedelta(days=1)}").get_data(as_text=True)
    assert "No entries." in future
    bad = member.get("/billing/ledger?from=yesterday&kind=nonsense")
    assert bad.status_code == 400 and "aria-invalid" in bad.get_data(as_text=True)
    assert member.get("/billing/ledger.csv?from=notadate").status_code == 400


def _csv(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_csv_exports_match_the_ledger(app: Any, member: Any, admin: Any) -> None:
    uid = _uid(app)
    _book(app, uid, 1999, "p1", reason="Card payment")
    _book(app, uid, -250, "u1", kind="usage", reason='=HYPERLINK("x")')
    _book(app, _uid(app, "admin@example.org"), 500, "p2")
    mine = _csv(member.get("/billing/ledger.csv"))
    everything = _csv(admin.get("/billing/admin/ledger.csv"))
    with app.app_context():
        entries = db.session().scalars(select(LedgerEntry).order_by(LedgerEntry.id)).all()
        rows = [
            (str(e.id), str(e.amount_cents), str(e.balance_after_cents), e.kind, e.idempotency_key)
            for e in entries
        ]
        balance = ledger.balance(db.session(), uid)
    assert [
        (r["id"], r["amount_cents"], r["balance_after_cents"], r["kind"], r["idempotency_key"])
        for r in everything
    ] == rows
    assert [r["id"] for r in mine] == [r[0] for r in rows if r[0] != rows[-1][0]]
    assert sum(int(r["amount_cents"]) for r in mine) == balance == 1749
    assert mine[0]["amount"] == "19.99" and mine[1]["amount"] == "-2.50"
    assert mine[1]["reason"].startswith("'=")  # no formula injection into spreadsheets
    assert all(r["email"] == "member@example.org" for r in mine)


def test_receipts_are_private(app: Any, member: Any) -> None:
    uid = _uid(app)
    with app.app_context():
        session = db.session()
        payment = Payment(
            user_id=uid,
            provider="stripe",
            amount_cents=1500,
            currency="EUR",
            status="paid",
            external_id="cs_x",
            credited_cents=1500,
        )
        session.add(payment)
        session.flush()
        ledger.credit(
            session, uid, 100, reason="Unrelated credit", reference="x", idempotency_key="other"
        )
        ledger.credit(
            session,
            uid,
            1500,
            reason="Card payment",
            reference="stripe:cs_x",
            idempotency_key="stripe:checkout:cs_x",
            payment_id=payment.id,
        )
        session.commit()
        payment_id = payment.id
    receipt = member.get(f"/billing/payments/{payment_id}").get_data(as_text=True)
    assert "Receipt" in receipt and "€15.00" in receipt and "cs_x" in receipt
    assert "Card payment" in receipt  # the ledger entry this payment made ...
    assert "Unrelated credit" not in receipt  # ... and no other
    assert payment_id in member.get("/billing/payments").get_data(as_text=True)
    stranger = app.test_client()
    login_as(stranger, app, "stranger@example.org")
    assert stranger.get(f"/billing/payments/{payment_id}").status_code == 404
    assert member.get("/billing/payments/doesnotexist").status_code == 404


def test_admin_adjustments_record_who_and_refuse_bad_input(
    app: Any, member: Any, admin: Any
) -> None:
    uid = _uid(app)
    token = csrf_token(admin, "/billing/admin/adjustments")
    form = {
        "email": "member@example.org",
        "amount": "12.50",
        "note": "paid by bank transfer",
        "key": "form-key-123",
        "csrf_token": token,
    }
    assert admin.post("/billing/admin/adjustments", data=form).status_code == 303
    assert admin.post("/billing/admin/adjustments", data=form).status_code == 303  # resubmitted
    debit = dict(form, amount="-2.50", note="duplicate transfer", key="form-key-456")
    assert admin.post("/billing/admin/adjustments", data=debit).status_code == 303
    for bad, field_text in (
        (dict(form, key="k-bad-key-1", note=""), 'aria-describedby="e-note"'),
        (dict(form, key="k-bad-key-2", amount="ten"), "Enter an amount"),
        (dict(form, key="k-bad-key-3", amount="0"), "cannot be zero"),
        (dict(form, key="k-bad-key-4", email="nobody@example.org"), "No member has this address"),
    ):
        response = admin.post("/billing/admin/adjustments", data=bad)
        assert response.status_code == 400, bad
        assert field_text in response.get_data(as_text=True)
    with app.app_context():
        assert ledger.balance(db.session(), uid) == 1000
        assert ledger.check_balances(db.session()) == []
    page = admin.get("/billing/admin/adjustments").get_data(as_text=True)
    assert "paid by bank transfer" in page and "admin@example.org" in page
    member_view = member.get("/billing/ledger").get_data(as_text=True)
    assert "paid by bank transfer" in member_view and "€10.00" in member_view


def test_admin_overview_and_payments(app: Any, member: Any, admin: Any) -> None:
    uid = _uid(app)
    _book(app, uid, -300, "u1", kind="usage")
    with app.app_context():
        session = db.session()
        session.add(
            Payment(
                user_id=uid,
                provider="btcpay",
                amount_cents=700,
                currency="EUR",
                status="new",
                external_id="inv-1",
            )
        )
        session.commit()
    overview = admin.get("/billing/admin/").get_data(as_text=True)
    assert "member@example.org" in overview and "-€3.00" in overview
    assert "Owed" in overview and "€3.00 by 1 account" in overview
    assert "btcpay" in overview
    payments = admin.get("/billing/admin/payments?provider=btcpay&status=new")
    assert "inv-1" in payments.get_data(as_text=True)
    assert "inv-1" not in admin.get("/billing/admin/payments?status=paid").get_data(as_text=True)
    account = admin.get(f"/billing/admin/accounts/{uid}")
    assert account.status_code == 200 and "Ledger of member@example.org" in account.get_data(
        as_text=True
    )
    assert admin.get("/billing/admin/accounts/999999").status_code == 404
    found = admin.get("/billing/admin/?q=member").get_data(as_text=True)
    assert "member@example.org" in found


def test_balance_api(app: Any, member: Any, burn_10: Any) -> None:
    _book(app, _uid(app), 1000, "p1")
    answer = member.get("/billing/api/v1/balance")
    assert answer.status_code == 200
    assert answer.json == {
        "balance_cents": 1000,
        "currency": "EUR",
        "balance": "€10.00",
        "hourly_burn_cents": 10,
        "runway_seconds": 360000,
        "state": "LOW_WEEK",
    }  # 100 hours left


def test_no_providers_means_no_buying(app: Any, member: Any) -> None:
    page = member.get("/billing/buy").get_data(as_text=True)
    assert "No payment method is enabled" in page
    token = csrf_token(member, "/billing/")
    response = member.post(
        "/billing/buy", data={"amount": "20", "provider": "stripe", "csrf_token": token}
    )
    assert response.status_code == 400


def test_currency_and_locale_are_settings(make_app: Any) -> None:
    from clubstack.billing.money import format_money, parse_amount

    app = make_app(billing_currency="jpy", billing_locale="ja_JP")
    with app.app_context():
        assert format_money(1500) == "￥1,500"
        assert parse_amount("1500") == 1500
    app = make_app(billing_currency="EUR", billing_locale="de_DE")
    with app.app_context():
        assert format_money(123456) == "1.234,56\xa0€"
        assert parse_amount("-5.5") == -550


def test_dashboard_chart_labels_the_latest_balance_on_its_scale(app: Any, member: Any) -> None:
    import xml.etree.ElementTree as ET

    uid = _uid(app)
    _book(app, uid, 5000, "p1", reason="Card payment")
    with clock.moved(timedelta(days=3)):
        _book(app, uid, -3766, "u1", kind="usage", reason="capsul hours")
        html = member.get("/billing/").get_data(as_text=True)
    svg = ET.fromstring(html[html.index("<svg") : html.index("</svg>") + 6])
    ns = "{http://www.w3.org/2000/svg}"
    labels = {t.text: t for t in svg.iter(f"{ns}text")}
    assert "€12.34" in labels, sorted(labels)  # the balance now, on the axis
    assert "latest" in labels["€12.34"].get("class", "").split()
    # and the line ends at that label's height: the scale holds the latest balance
    line = next(p for p in svg.iter(f"{ns}polyline") if p.get("class") == "balance-line")
    last_y = float(line.get("points").split()[-1].split(",")[1])
    assert abs(float(labels["€12.34"].get("y")) - 6 - last_y) < 0.2
