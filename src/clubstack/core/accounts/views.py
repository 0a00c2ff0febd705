"""Login, account and admin pages. Thin: parse, call accounts logic, render."""

from __future__ import annotations

from datetime import timedelta

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import func, select
from werkzeug.wrappers import Response as BaseResponse

from clubstack.core.accounts import login as accounts
from clubstack.core.accounts.auth import admin_required, api_auth, current_user, login_required
from clubstack.core.accounts.closing import close_account
from clubstack.core.accounts.models import User
from clubstack.core.accounts.roles import set_role
from clubstack.core.accounts.tokens import create_token, list_tokens, revoke_token
from clubstack.core.db import db
from clubstack.core.errors import ClubError, InputError
from clubstack.core.logs import email_hash
from clubstack.core.mail import send_mail
from clubstack.core.validation import form_errors, local_path
from clubstack.core.web import limiter
from clubstack.settings import get_settings

bp = Blueprint("accounts", __name__)


def _safe_next(target: str | None) -> str:
    """A path on this site, else the account page: never an open redirect (InputError, a 400,
    for control characters)."""
    return local_path(target) or url_for("accounts.account")


def _address_key() -> str:
    try:
        return "login-address:" + email_hash(
            accounts.normalise_email(request.form.get("email", ""))
        )
    except InputError:
        return "login-address:invalid"


def _login_mail(link_url: str | None, new_account: bool) -> tuple[str, str]:
    """The login mail; without a link (invite-only, unknown address) it says so instead."""
    settings = get_settings()
    minutes = settings.login_link_minutes
    greeting = "Welcome! Confirm your address" if new_account else "Log in"
    if link_url is None:
        text = (
            f"Someone asked to log in to {settings.site_name} with this address, but it has no "
            "account there, and accounts are by invitation only. If it was you, ask an "
            "administrator to invite you.\n\nIf you did not ask, ignore this mail; nothing "
            "happens.\n"
        )
    else:
        text = (
            f"{greeting} to {settings.site_name} by opening this link within {minutes} "
            f"minutes:\n\n{link_url}\n\nIf you did not ask for it, ignore this mail; "
            "nothing happens.\n"
        )
    html = render_template(
        "accounts/mail_login.html", url=link_url, minutes=minutes, greeting=greeting
    )
    return text, html


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: get_settings().login_rate_ip, methods=["POST"])
@limiter.limit(lambda: get_settings().login_rate_address, methods=["POST"], key_func=_address_key)
def login() -> str | BaseResponse | tuple[str, int]:
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_user() is not None:
            return redirect(next_url)
        return render_template("accounts/login.html", next=next_url, errors={}, email="")
    settings = get_settings()
    raw = request.form.get("email", "")
    with form_errors(db.session()) as result:
        issued = accounts.issue_login_link(
            db.session(),
            raw,
            lifetime=timedelta(minutes=settings.login_link_minutes),
            open_signup=settings.signup == "open",
        )
    if not result.ok:
        return render_template(
            "accounts/login.html", next=next_url, errors=result.fields, email=raw
        ), 400
    url = None
    if issued.token is not None:
        url = settings.base_url.rstrip("/") + url_for(
            "accounts.confirm", token=issued.token, next=next_url
        )
    text, html = _login_mail(url, issued.new_account)
    send_mail(issued.email, f"Your {settings.site_name} login link", text, html)
    # The same answer, and the same work, whether or not the address may log in.
    return render_template("accounts/check_mail.html", email=raw.strip())


@bp.route("/login/confirm", methods=["GET", "POST"])
def confirm() -> str | BaseResponse | tuple[str, int]:
    token = request.values.get("token", "")
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        # Mail scanners follow links; only the POST from this page uses the token up.
        valid = bool(token) and accounts.peek_link(db.session(), token, "login") is not None
        return render_template("accounts/confirm.html", token=token, next=next_url, valid=valid), (
            200 if valid else 410
        )
    user = accounts.login_with_link(db.session(), token) if token else None
    if user is None:
        return render_template("accounts/confirm.html", token="", next=next_url, valid=False), 410
    session.clear()  # rotate: nothing of the anonymous session survives the login
    session["sid"] = accounts.start_session(
        db.session(), user, lifetime=timedelta(days=get_settings().session_days)
    )
    session.permanent = True
    flash("You are logged in.", "success")
    if user.nickname is None:
        return redirect(url_for("accounts.account", next=next_url))
    return redirect(next_url)


@bp.post("/logout")
def logout() -> BaseResponse:
    if "sid" in session:
        accounts.end_session(db.session(), session["sid"])
    session.clear()
    flash("You are logged out.", "success")
    return redirect(url_for("accounts.login"))


def _account_page(status: int = 200, **extra: object) -> tuple[str, int]:
    user = current_user()
    assert user is not None
    context: dict[str, object] = {
        "tokens": list_tokens(db.session(), user),
        "errors": {},
        "new_token": None,
    }
    context.update(extra)
    return render_template("accounts/account.html", user=user, **context), status


@bp.get("/account")
@login_required
def account() -> tuple[str, int]:
    return _account_page()


@bp.post("/account/nickname")
@login_required
def nickname() -> tuple[str, int] | BaseResponse:
    user = current_user()
    assert user is not None
    with form_errors(db.session()) as result:
        accounts.set_nickname(db.session(), user, request.form.get("nickname", ""))
    if not result.ok:
        return _account_page(400, errors=result.fields)
    flash("Nickname saved.", "success")
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/account/email")
@login_required
@limiter.limit("5/hour")
def change_email() -> tuple[str, int] | BaseResponse:
    user = current_user()
    assert user is not None
    settings = get_settings()
    with form_errors(db.session()) as result:
        issued = accounts.issue_email_change_link(
            db.session(),
            user,
            request.form.get("email", ""),
            lifetime=timedelta(minutes=settings.login_link_minutes),
        )
    if not result.ok:
        return _account_page(400, errors=result.fields)
    if issued.token is not None:
        url = settings.base_url.rstrip("/") + url_for("accounts.confirm_email", token=issued.token)
        subject = f"Confirm your new {settings.site_name} address"
        text = (
            f"Open this link within {settings.login_link_minutes} minutes to make this address "
            f"the one of your {settings.site_name} account:\n\n{url}\n\nIf you did not ask "
            "for it, ignore this mail; nothing changes.\n"
        )
    else:
        # Another account has this address: the page answers as always (it must not tell who
        # has an account); the owner of the address learns that someone tried.
        subject = f"Someone tried to use your {settings.site_name} address"
        text = (
            f"Someone tried to make this address the one of another {settings.site_name} "
            "account. It is already the address of an account here, so nothing changed.\n\n"
            "If it was you, log in with this address instead. Otherwise ignore this mail.\n"
        )
    send_mail(issued.email, subject, text)
    flash(f"We sent a mail to {issued.email}; open the link in it to confirm.", "success")
    return redirect(url_for("accounts.account"))


@bp.route("/account/email/confirm", methods=["GET", "POST"])
@login_required
def confirm_email() -> str | BaseResponse | tuple[str, int]:
    token = request.values.get("token", "")
    if request.method == "GET":
        return render_template("accounts/confirm_email.html", token=token)
    user = current_user()
    assert user is not None
    try:
        accounts.confirm_email_change(db.session(), token, user)
    except ClubError as error:
        flash(error.message, "error")
        return redirect(url_for("accounts.account"))
    flash("Your address is changed.", "success")
    return redirect(url_for("accounts.account"))


@bp.post("/account/tokens")
@login_required
def new_token() -> tuple[str, int]:
    user = current_user()
    assert user is not None
    with form_errors(db.session()) as result:
        token = create_token(db.session(), user, request.form.get("name", ""))
    if not result.ok:
        return _account_page(400, errors=result.fields)
    return _account_page(201, new_token=token)


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke(token_id: int) -> BaseResponse:
    user = current_user()
    assert user is not None
    if not revoke_token(db.session(), user, token_id):
        abort(404)
    flash("Token revoked.", "success")
    return redirect(url_for("accounts.account"))


@bp.post("/account/delete")
@login_required
def delete() -> BaseResponse | tuple[str, int]:
    user = current_user()
    assert user is not None
    if request.form.get("confirm_email", "").strip().lower() != user.email.lower():
        return _account_page(400, errors={"confirm_email": "Type your address to confirm."})
    close_account(db.session(), user, current_app.extensions["clubstack.services"])
    session.clear()
    flash("Your account is deleted.", "success")
    return redirect(url_for("accounts.login"))


@bp.get("/api/me")
@api_auth
def api_me() -> Response:
    user = current_user()
    assert user is not None
    return jsonify(id=user.id, email=user.email, nickname=user.nickname, role=user.role)


@bp.get("/admin")
@admin_required
def admin_index() -> str:
    """One page that leads to every admin page of the suite."""
    services = [
        s for s in current_app.extensions["clubstack.services"] if s.admin_endpoint is not None
    ]
    session_ = db.session()
    rows = session_.execute(select(User.role, func.count(User.id)).group_by(User.role))
    counts = {role: count for role, count in rows}
    return render_template("accounts/admin_index.html", services=services, counts=counts)


@bp.post("/admin/users/<int:user_id>/role")
@admin_required
def admin_set_role(user_id: int) -> BaseResponse:
    session_ = db.session()
    # a refusal (the last administrator, a deleted account, no such role) is a ClubError:
    # the core answers it with its status and message
    user = set_role(session_, user_id, request.form.get("role", ""))
    session_.commit()
    flash(f"{user.email} is now {'an administrator' if user.is_admin else 'a member'}.", "success")
    return redirect(url_for("accounts.admin_users"))


@bp.route("/admin/users", methods=["GET", "POST"])
@admin_required
def admin_users() -> str | BaseResponse | tuple[str, int]:
    session_ = db.session()
    errors: dict[str, str] = {}
    if request.method == "POST":
        with form_errors(session_) as result:
            email = accounts.normalise_email(request.form.get("email", ""))
            if session_.scalar(select(User.id).where(User.email == email)) is None:
                session_.add(
                    User(
                        email=email,
                        role=(request.form.get("role") == "admin" and "admin") or "member",
                    )
                )
                session_.commit()
            flash(f"{email} may now log in.", "success")
            return redirect(url_for("accounts.admin_users"))
        errors = result.fields
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    users = list(
        session_.scalars(select(User).order_by(User.id).limit(100).offset((page - 1) * 100))
    )
    total = session_.scalar(select(func.count(User.id))) or 0
    return render_template(
        "accounts/admin_users.html", users=users, total=total, page=page, errors=errors
    ), (400 if errors else 200)
