"""Billing pages, webhooks and the small JSON API. Thin: parse, call billing logic, render."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, url_for
from pydantic import BaseModel, Field
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from clubstack.billing import btcpay, ledger, reports, stripe_gateway
from clubstack.billing.burn import hourly_burn
from clubstack.billing.chart import balance_svg
from clubstack.billing.errors import ProviderDisabled, UnknownAccount
from clubstack.billing.ledger import EntryFilter
from clubstack.billing.models import KINDS, PAYMENT_STATUSES, Payment
from clubstack.billing.money import format_money, parse_amount, precision
from clubstack.billing.payments import PROVIDERS, check_purchase, enabled_providers, member_payment
from clubstack.billing.settings import billing_settings
from clubstack.billing.standing import standing
from clubstack.core.accounts.auth import admin_required, current_user, login_required
from clubstack.core.accounts.models import User
from clubstack.core.clock import utcnow
from clubstack.core.db import db, random_id
from clubstack.core.errors import ClubError, InputError
from clubstack.core.validation import form_errors, form_to_dict, validate
from clubstack.core.web import csrf, limiter
from clubstack.settings import get_settings

bp = Blueprint(
    "billing",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
PER_PAGE = 50


@bp.app_template_filter("money")
def _money(cents: int) -> str:
    return format_money(int(cents))


@bp.app_template_filter("duration")
def _duration(delta: timedelta | None) -> str:
    if delta is None:
        return "no end (nothing is running)"
    hours = int(delta.total_seconds() // 3600)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} day{'s' if days != 1 else ''}, {hours} h"
    minutes = int(delta.total_seconds() // 60) % 60
    return f"{hours} h {minutes} min"


def _user() -> User:
    user = current_user()
    assert user is not None
    return user


class LedgerQuery(BaseModel):
    kind: Literal["payment", "usage", "refund", "dispute", "rewind", "adjustment"] | None = None
    since: date | None = Field(default=None, alias="from")
    until: date | None = Field(default=None, alias="to")
    q: str | None = Field(default=None, max_length=100)
    page: int = Field(default=1, ge=1, le=100_000)

    def entry_filter(self, user_id: int | None) -> EntryFilter:
        def at(day: date | None, plus: int = 0) -> datetime | None:
            if day is None:
                return None
            return datetime.combine(day, time(), UTC) + timedelta(days=plus)

        return EntryFilter(
            user_id=user_id,
            kind=self.kind,
            since=at(self.since),
            until=at(self.until, 1),
            text=(self.q or "").strip() or None,
        )


def _ledger_query() -> tuple[LedgerQuery, dict[str, str]]:
    with form_errors() as result:
        return validate(LedgerQuery, form_to_dict(request.args)), {}
    return LedgerQuery(), result.fields


# --- member pages -----------------------------------------------------------------------------


@bp.get("/")
@login_required
def dashboard() -> str:
    user = _user()
    session = db.session()
    now = utcnow()
    info = standing(session, user.id, hourly_burn(session, user.id), now)
    chart = balance_svg(ledger.balance_history(session, user.id, now))
    recent = ledger.entries(session, EntryFilter(user_id=user.id), limit=10)
    return render_template(
        "billing/dashboard.html",
        info=info,
        chart=chart,
        recent=recent,
        providers=enabled_providers(),
        currency=billing_settings().currency,
        grace_hours=billing_settings().grace_period_hours,
    )


@bp.get("/ledger")
@login_required
def ledger_page() -> tuple[str, int]:
    user = _user()
    query, errors = _ledger_query()
    flt = query.entry_filter(user.id)
    session = db.session()
    rows = ledger.entries(session, flt, limit=PER_PAGE, offset=(query.page - 1) * PER_PAGE)
    total = ledger.count_entries(session, flt)
    return render_template(
        "billing/ledger.html",
        rows=rows,
        total=total,
        query=query,
        errors=errors,
        kinds=KINDS,
        args={k: v for k, v in request.args.items() if k != "page"},
        per_page=PER_PAGE,
        balance=ledger.balance(session, user.id),
        admin_view=None,
    ), 400 if errors else 200


def _csv_response(text: str, name: str) -> Response:
    response = Response(text, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/ledger.csv")
@login_required
def ledger_csv() -> Response:
    user = _user()
    query, errors = _ledger_query()
    if errors:
        raise InputError(fields=errors)
    return _csv_response(
        reports.csv_text(db.session(), query.entry_filter(user.id)), f"ledger-{utcnow():%Y%m%d}.csv"
    )


class BuyForm(BaseModel):
    amount: str = Field(min_length=1, max_length=20)
    provider: str = Field(min_length=1, max_length=16)


@bp.route("/buy", methods=["GET", "POST"])
@login_required
@limiter.limit("20/hour", methods=["POST"])
def buy() -> str | BaseResponse | tuple[str, int]:
    settings = billing_settings()
    providers = enabled_providers()
    context = {
        "providers": providers,
        "min_cents": settings.min_payment_cents,
        "max_cents": settings.max_payment_cents,
        "step": 10 ** -precision() if precision() else 1,
    }
    if request.method == "GET":
        return render_template("billing/buy.html", errors={}, form={}, **context)
    user = _user()
    session = db.session()
    form = form_to_dict(request.form)
    try:
        data = validate(BuyForm, form)
        cents = parse_amount(data.amount)
        if data.provider not in PROVIDERS:
            raise InputError(fields={"provider": "Choose a payment method."})
        check_purchase(data.provider, cents)
        back = get_settings().base_url.rstrip("/") + url_for("billing.payment", payment_id="X")
        back = back.removesuffix("X") + "{PAYMENT_ID}"
        if data.provider == "stripe":
            payment = stripe_gateway.start_checkout(
                session,
                user.id,
                user.email,
                cents,
                success_url=back + "?returned=1",
                cancel_url=back + "?cancelled=1",
            )
        else:
            payment = btcpay.start_invoice(
                session, user.id, user.email, cents, redirect_url=back + "?returned=1"
            )
        session.commit()
    except InputError as error:
        session.rollback()
        return render_template("billing/buy.html", errors=error.fields, form=form, **context), 400
    except ProviderDisabled:
        session.rollback()
        return render_template(
            "billing/buy.html",
            form=form,
            **context,
            errors={"provider": "That payment method is not offered."},
        ), 400
    except ClubError:
        session.rollback()
        raise
    return redirect(str(payment.checkout_url), code=303)


@bp.get("/payments/<payment_id>")
@login_required
def payment(payment_id: str) -> str:
    """Status page the provider returns to, and the receipt once paid. Never credits."""
    user = _user()
    session = db.session()
    item = member_payment(session, user.id, payment_id[:32])
    linked = ledger.entries(
        session, EntryFilter(user_id=user.id, payment_id=item.id), limit=None, newest_first=False
    )
    return render_template(
        "billing/payment.html",
        payment=item,
        entries=linked,
        provider_title=PROVIDERS.get(item.provider, item.provider),
        returned="returned" in request.args,
        cancelled="cancelled" in request.args,
    )


@bp.get("/payments")
@login_required
def payments() -> str:
    user = _user()
    rows = list(
        db.session().scalars(
            select(Payment)
            .where(Payment.user_id == user.id)
            .order_by(Payment.created_at.desc())
            .limit(200)
        )
    )
    return render_template("billing/payments.html", rows=rows, providers=PROVIDERS)


# --- webhooks ---------------------------------------------------------------------------------


def _webhook(handle: object, header: str) -> Response:
    session = db.session()
    try:
        outcome = handle(session, request.get_data(cache=False), request.headers.get(header))  # type: ignore[operator]
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return jsonify(received=True, outcome=outcome)


@bp.post("/webhooks/stripe")
@csrf.exempt
@limiter.exempt
def stripe_webhook() -> Response:
    return _webhook(stripe_gateway.handle_webhook, "Stripe-Signature")


@bp.post("/webhooks/btcpay")
@csrf.exempt
@limiter.exempt
def btcpay_webhook() -> Response:
    return _webhook(btcpay.handle_webhook, "BTCPay-Sig")


# --- admin ------------------------------------------------------------------------------------


@bp.get("/admin/")
@admin_required
def admin_overview() -> str:
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    sort = request.args.get("sort", "balance")
    search = (request.args.get("q") or "").strip()[:100] or None
    data = reports.overview(db.session(), sort=sort, page=page, search=search)
    return render_template(
        "billing/admin_overview.html",
        data=data,
        page=page,
        sort=sort,
        q=search or "",
        summary=reports.payment_summary(db.session()),
    )


@bp.get("/admin/accounts/<int:user_id>")
@admin_required
def admin_account(user_id: int) -> tuple[str, int]:
    session = db.session()
    member = session.get(User, user_id)
    if member is None:
        raise UnknownAccount()
    query, errors = _ledger_query()
    flt = query.entry_filter(user_id)
    rows = ledger.entries(session, flt, limit=PER_PAGE, offset=(query.page - 1) * PER_PAGE)
    return render_template(
        "billing/ledger.html",
        rows=rows,
        total=ledger.count_entries(session, flt),
        query=query,
        errors=errors,
        kinds=KINDS,
        args={k: v for k, v in request.args.items() if k != "page"},
        per_page=PER_PAGE,
        balance=ledger.balance(session, user_id),
        admin_view=member,
    ), 400 if errors else 200


@bp.get("/admin/payments")
@admin_required
def admin_payments() -> str:
    provider = request.args.get("provider") or None
    status = request.args.get("status") or None
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    rows = reports.payments(
        db.session(),
        provider=provider if provider in PROVIDERS else None,
        status=status if status in PAYMENT_STATUSES else None,
        page=page,
    )
    return render_template(
        "billing/admin_payments.html",
        rows=rows,
        providers=PROVIDERS,
        statuses=PAYMENT_STATUSES,
        provider=provider,
        status=status,
        page=page,
        summary=reports.payment_summary(db.session()),
        title="Payments",
        unresolved=False,
    )


@bp.route("/admin/invoices", methods=["GET", "POST"])
@admin_required
def admin_invoices() -> str | BaseResponse:
    if request.method == "POST":
        session = db.session()
        changed = btcpay.poll_unresolved(session, older_than=timedelta(0))
        session.commit()
        flash(f"Asked BTCPay Server about open invoices: {changed} changed.", "success")
        return redirect(url_for("billing.admin_invoices"), code=303)
    rows = reports.payments(db.session(), unresolved=True)
    return render_template(
        "billing/admin_payments.html",
        rows=rows,
        providers=PROVIDERS,
        statuses=PAYMENT_STATUSES,
        provider=None,
        status=None,
        page=1,
        summary=None,
        title="Unresolved payments",
        unresolved=True,
        btcpay_enabled=billing_settings().btcpay_enabled,
    )


class AdjustForm(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    amount: str = Field(min_length=1, max_length=20)
    note: str = Field(min_length=1, max_length=255)
    key: str = Field(default_factory=random_id, min_length=8, max_length=64)


@bp.route("/admin/adjustments", methods=["GET", "POST"])
@admin_required
def admin_adjustments() -> str | BaseResponse | tuple[str, int]:
    session = db.session()
    errors: dict[str, str] = {}
    form: dict[str, str] = {}
    if request.method == "POST":
        form = form_to_dict(request.form)
        with form_errors(session) as result:
            data = validate(AdjustForm, form)
            cents = parse_amount(data.amount)
            member = session.scalar(select(User).where(User.email == data.email.strip().lower()))
            if member is None:
                raise InputError(fields={"email": "No member has this address."})
            ledger.adjust(
                session,
                member.id,
                cents,
                note=data.note,
                by_user_id=_user().id,
                idempotency_key=f"admin:{data.key}",
            )
            session.commit()
            flash(f"{format_money(cents)} booked for {member.email}.", "success")
            return redirect(url_for("billing.admin_adjustments"), code=303)
        errors = result.fields
    return render_template(
        "billing/admin_adjustments.html",
        rows=reports.adjustments(session),
        errors=errors,
        form=form,
        key=random_id(),
    ), 400 if errors else 200


@bp.get("/admin/ledger.csv")
@admin_required
def admin_ledger_csv() -> Response:
    query, errors = _ledger_query()
    if errors:
        raise InputError(fields=errors)
    user_id = request.args.get("user", type=int)
    return _csv_response(
        reports.csv_text(db.session(), query.entry_filter(user_id)),
        f"ledger-all-{utcnow():%Y%m%d}.csv",
    )
