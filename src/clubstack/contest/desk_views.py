"""The organiser's desk pages (/contest/admin/..., administrators only) and the members' side
of it (questions, announcements, decisions). Thin views over desk.py, on the contest blueprint.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from pydantic import BaseModel, Field
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from clubstack.contest import challenges, desk
from clubstack.contest.desk_tasks import enqueue_rejudge
from clubstack.contest.kinds import KINDS
from clubstack.contest.models import Challenge
from clubstack.contest.views import rate_key, settings
from clubstack.core.accounts.auth import admin_required, current_user, login_required
from clubstack.core.accounts.models import User
from clubstack.core.clock import utcnow
from clubstack.core.db import db
from clubstack.core.errors import ClubError, InputError
from clubstack.core.service import Routes
from clubstack.core.validation import form_to_dict, validate
from clubstack.core.web import limiter

routes = Routes()  # added to the service's blueprint by its __init__

Page = str | BaseResponse | tuple[str, int]


def public_board() -> desk.Board:
    """The board this request's viewer sees: frozen for the public, live for organisers."""
    return desk.board(db.session(), settings(), current_user(), utcnow())


def _admin() -> User:
    user = current_user()
    assert user is not None and user.is_admin
    return user


def _failed(error: ClubError) -> tuple[dict[str, str], str]:
    db.session().rollback()
    fields = getattr(error, "fields", None) or {}
    return fields, error.message if not fields else "Please correct the fields marked below."


def _done(message: str, endpoint: str, **values: Any) -> BaseResponse:
    db.session().commit()
    flash(message, "success")
    return redirect(url_for(endpoint, **values), code=303)


# ---- members: questions, announcements, decisions -------------------------------------------


class QuestionForm(BaseModel):
    question: str = Field(min_length=1, max_length=5000)
    challenge: str | None = Field(default=None, max_length=64)


def _questions_page(
    errors: dict[str, str] | None = None, values: dict | None = None, status: int = 200
) -> tuple[str, int]:
    session = db.session()
    user = current_user()
    return render_template(
        "contest/desk/questions.html",
        rows=desk.questions_for(session, user),
        user=user,
        errors=errors or {},
        values=values or {},
        challenge=request.args.get("challenge", ""),
        conf=settings(),
    ), status


@routes.get("/questions")
def questions() -> Page:
    return _questions_page()


def question_rate() -> str:
    return settings().question_rate


@routes.post("/questions")
@login_required
@limiter.limit(question_rate, key_func=rate_key)
def ask_question() -> Page:
    values = form_to_dict(request.form)
    user = current_user()
    assert user is not None
    try:
        form = validate(QuestionForm, values)
        desk.ask(db.session(), user, form.question, form.challenge)
    except ClubError as error:
        fields, _ = _failed(error)
        return _questions_page(fields or {"question": error.message}, values, error.status)
    return _done(
        "Your question was sent to the organisers; the answer appears here.", "contest.questions"
    )


@routes.get("/announcements")
def announcement_list() -> str:
    return render_template(
        "contest/desk/announcements.html", conf=settings(), rows=desk.announcements(db.session())
    )


@routes.get("/decisions")
def decisions() -> str:
    return render_template(
        "contest/desk/decisions.html",
        conf=settings(),
        rows=desk.actions(db.session(), public_only=True),
    )


# ---- the desk --------------------------------------------------------------------------------


def _desk_page(
    errors: dict[str, str] | None = None, message: str | None = None, status: int = 200
) -> tuple[str, int]:
    session = db.session()
    conf = settings()
    now = utcnow()
    rows = list(session.scalars(select(Challenge).order_by(Challenge.created_at.desc())))
    return render_template(
        "contest/desk/index.html",
        conf=conf,
        now=now,
        rows=rows,
        rulings=desk.rulings(session),
        freeze=desk.freeze_state(session, conf),
        unanswered=desk.unanswered_count(session),
        errors=errors or {},
        message=message,
        log=desk.actions(session, public_only=False, limit=20),
    ), status


@routes.get("/admin/")
@admin_required
def desk_index() -> Page:
    return _desk_page()


class FreezeForm(BaseModel):
    freeze_at: datetime | None = None
    action: str = Field(pattern="^(set|now|clear)$")


@routes.post("/admin/freeze")
@admin_required
def desk_freeze() -> Page:
    values = form_to_dict(request.form)
    try:
        form = validate(FreezeForm, values)
        at = form.freeze_at
        if form.action == "now":
            at = utcnow()
        elif form.action == "clear":
            at = None
        elif at is None:
            raise InputError(fields={"freeze_at": "Give the freeze time (UTC)."})
        elif at.tzinfo is None:
            at = at.replace(tzinfo=UTC)  # the form's datetime-local field is in UTC
        desk.set_freeze(db.session(), at, _admin(), settings())
    except ClubError as error:
        fields, message = _failed(error)
        return _desk_page(fields, message, error.status)
    return _done(
        "The scoreboard freeze is set." if at else "No freeze: the board is live.",
        "contest.desk_index",
    )


@routes.post("/admin/freeze/lift")
@admin_required
def desk_lift() -> Page:
    try:
        desk.lift_freeze(db.session(), _admin(), settings())
    except ClubError as error:
        fields, message = _failed(error)
        return _desk_page(fields, message, error.status)
    return _done("The freeze is lifted: everyone sees the final board.", "contest.desk_index")


def _challenge_page(
    name: str, errors: dict[str, str] | None = None, message: str | None = None, status: int = 200
) -> tuple[str, int]:
    session = db.session()
    found = challenges.get_challenge(session, name)
    return render_template(
        "contest/desk/challenge.html",
        c=found,
        ruling=desk.ruling_of(session, found.id),
        log=desk.actions(session, public_only=False, challenge_id=found.id),
        errors=errors or {},
        message=message,
        conf=settings(),
    ), status


@routes.get("/admin/challenges/<name>")
@admin_required
def desk_challenge(name: str) -> Page:
    return _challenge_page(name)


class RulingForm(BaseModel):
    ruling: str = Field(pattern="^(hidden|disqualified|reinstate)$")
    reason: str = Field(min_length=1, max_length=500)


@routes.post("/admin/challenges/<name>/ruling")
@admin_required
def desk_ruling(name: str) -> Page:
    session = db.session()
    found = challenges.get_challenge(session, name)
    try:
        form = validate(RulingForm, form_to_dict(request.form))
        if form.ruling == "reinstate":
            desk.reinstate(session, found, form.reason, _admin(), settings())
        else:
            desk.rule(session, found, form.ruling, form.reason, _admin(), settings())
    except ClubError as error:
        fields, message = _failed(error)
        return _challenge_page(name, fields, message, error.status)
    return _done(f"{name}: ruling recorded.", "contest.desk_challenge", name=name)


class WithdrawForm(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


@routes.post("/admin/breaks/<int:break_id>/withdraw")
@admin_required
def desk_withdraw(break_id: int) -> Page:
    session = db.session()
    found = desk.get_break(session, break_id)
    name = found.challenge.name
    try:
        form = validate(WithdrawForm, form_to_dict(request.form))
        desk.withdraw_break(session, found, form.reason, _admin(), settings())
    except ClubError as error:
        fields, message = _failed(error)
        return _challenge_page(name, fields, message, error.status)
    return _done(f"The break on {name} is withdrawn.", "contest.desk_challenge", name=name)


class AnnouncementForm(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=20_000)


@routes.route("/admin/announcements", methods=["GET", "POST"])
@admin_required
def desk_announcements() -> Page:
    session = db.session()
    errors: dict[str, str] = {}
    values: dict = {}
    status = 200
    if request.method == "POST":
        values = form_to_dict(request.form)
        try:
            form = validate(AnnouncementForm, values)
            desk.announce(session, form.title, form.body, _admin())
        except ClubError as error:
            errors, _ = _failed(error)
            status = error.status
        else:
            return _done("Announced.", "contest.desk_announcements")
    return render_template(
        "contest/desk/admin_announcements.html",
        conf=settings(),
        rows=desk.announcements(session),
        errors=errors,
        values=values,
    ), status


@routes.get("/admin/questions")
@admin_required
def desk_questions() -> str:
    return render_template(
        "contest/desk/admin_questions.html",
        conf=settings(),
        rows=desk.all_questions(db.session()),
        errors={},
        failed=None,
    )


class AnswerForm(BaseModel):
    answer: str = Field(min_length=1, max_length=20_000)
    public: bool = False


@routes.post("/admin/questions/<public_id>/answer")
@admin_required
def desk_answer(public_id: str) -> Page:
    session = db.session()
    item = desk.get_question(session, public_id)
    try:
        form = validate(AnswerForm, form_to_dict(request.form))
        desk.answer(session, item, form.answer, form.public, _admin())
    except ClubError as error:
        fields, _ = _failed(error)
        return render_template(
            "contest/desk/admin_questions.html",
            conf=settings(),
            rows=desk.all_questions(session),
            errors=fields,
            failed=public_id,
        ), error.status
    return _done(
        "Answered." + (" Everyone sees it." if form.public else ""), "contest.desk_questions"
    )


class RejudgeForm(BaseModel):
    name: str | None = Field(default=None, max_length=64)
    kind: str | None = Field(default=None, max_length=16)
    reason: str = Field(default="", max_length=500)


def _rejudge_page(
    errors: dict[str, str] | None = None, values: dict | None = None, status: int = 200
) -> tuple[str, int]:
    return render_template(
        "contest/desk/rejudge.html",
        conf=settings(),
        kinds=sorted(KINDS),
        rows=desk.rejudges(db.session()),
        errors=errors or {},
        values=values or {},
    ), status


@routes.route("/admin/rejudge", methods=["GET", "POST"])
@admin_required
def desk_rejudge() -> Page:
    if request.method == "GET":
        return _rejudge_page(values={"name": request.args.get("name", "")})
    session = db.session()
    values = form_to_dict(request.form)
    user = _admin()
    try:
        form = validate(RejudgeForm, values)
        scope, targets = desk.select_for_rejudge(session, name=form.name, kind=form.kind)
        run = desk.start_rejudge(session, targets, scope, form.reason, user, user.display_name)
        jobs = desk.payloads(session, run, settings())
        public_id = run.public_id
        session.commit()
    except ClubError as error:
        fields, _ = _failed(error)
        return _rejudge_page(fields or {"scope": error.message}, values, error.status)
    enqueue_rejudge(jobs)
    return redirect(url_for("contest.desk_rejudge_run", public_id=public_id), code=303)


@routes.get("/admin/rejudge/<public_id>")
@admin_required
def desk_rejudge_run(public_id: str) -> str:
    return render_template(
        "contest/desk/rejudge_run.html",
        conf=settings(),
        run=desk.get_rejudge(db.session(), public_id),
    )


@routes.post("/admin/rejudge/<public_id>/requeue")
@admin_required
def desk_rejudge_requeue(public_id: str) -> BaseResponse:
    """Queue again the jobs still without an answer (their sandbox node died)."""
    session = db.session()
    run = desk.get_rejudge(session, public_id)
    jobs = desk.payloads(session, run, settings(), pending_only=True)
    desk.log_action(
        session, "rejudge_requeued", _admin(), subject=run.scope[:64], reason=f"{len(jobs)} job(s)"
    )
    session.commit()
    enqueue_rejudge(jobs)
    flash(f"{len(jobs)} job(s) queued again.", "success")
    return redirect(url_for("contest.desk_rejudge_run", public_id=public_id), code=303)


@routes.get("/admin/log")
@admin_required
def desk_log() -> str:
    return render_template(
        "contest/desk/log.html",
        conf=settings(),
        rows=desk.actions(db.session(), public_only=False, limit=1000),
    )
