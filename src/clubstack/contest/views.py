"""Contest pages: thin views over challenges.py."""

from __future__ import annotations

from importlib import resources

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from pydantic import BaseModel, Field
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from clubstack.contest import challenges, chart, desk, feed
from clubstack.contest.judge import call_wall_seconds
from clubstack.contest.kinds import KINDS
from clubstack.contest.models import Challenge
from clubstack.contest.settings import ContestSettings
from clubstack.contest.tasks import enqueue
from clubstack.core.accounts.auth import current_user, login_required
from clubstack.core.accounts.models import User
from clubstack.core.clock import utcnow
from clubstack.core.db import db
from clubstack.core.errors import ClubError, InputError, RateLimited
from clubstack.core.ratelimits import count_hit
from clubstack.core.validation import form_to_dict, validate
from clubstack.core.web import body_limit, client_ip, limiter
from clubstack.settings import service_settings

bp = Blueprint(
    "contest",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static/contest",
)


def settings() -> ContestSettings:
    return service_settings(ContestSettings)


def rate_key() -> str:
    """Rate limits count per logged-in user (per address when anonymous)."""
    user = current_user()
    return f"user:{user.id}" if user is not None else f"ip:{client_ip()}"


def submit_rate() -> str:
    return settings().submit_rate


def check_submit_rate() -> None:
    """The submission rate limit, checked inside the view (not by a decorator in front of
    it) so a refused submission still gets its form back with the pasted source in it."""
    try:
        count_hit(submit_rate(), "contest-submit", key=rate_key())
    except RateLimited as error:
        wait = error.headers["Retry-After"]
        error.message = (
            f"Too many submissions: try again in {wait} s. Your source and key are kept below."
        )
        raise


def format_score(value: float | None) -> str:
    """Strawberries, bananas and performance for people: 1,234.57 / 0.42 / 0 / < 0.01."""
    if not value:
        return "0"
    if abs(value) < 0.01:
        return "< 0.01"
    return f"{value:,.2f}"


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


bp.add_app_template_filter(format_score, "contest_score")
bp.add_app_template_global(plural, "contest_plural")


def break_rate() -> str:
    return settings().break_rate


class SubmitForm(BaseModel):
    source: str | None = Field(default=None, max_length=60_000_000)
    key: str | None = Field(default=None, max_length=80)
    public_key: str | None = Field(default=None, max_length=200)
    proof: str | None = Field(default=None, max_length=200)


class BreakForm(BaseModel):
    key: str = Field(min_length=1, max_length=200)


def read_source(form: SubmitForm) -> bytes:
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        return upload.read()
    if form.source:
        return form.source.replace("\r\n", "\n").encode()
    raise InputError(fields={"file": "Choose a C file or paste the source."})


def keep_uploaded_source(values: dict) -> None:
    """A browser cannot refill a file input: put an uploaded file's text in the paste box,
    so a refused submission (bad key, rate limit ...) loses nothing."""
    upload = request.files.get("file")
    if upload is None or not upload.filename or values.get("source"):
        return
    upload.stream.seek(0)
    data = upload.stream.read(200_001)
    if len(data) <= 200_000:
        values["source"] = data.decode("utf-8", "replace")


def _chart_series() -> list[chart.Series]:
    return public_board().chart_series(db.session())


def public_board() -> desk.Board:
    """What this viewer may see (desk.py): hidden challenges left out; frozen for the public."""
    return desk.board(db.session(), settings(), current_user(), utcnow())


@bp.get("/")
def index() -> str:
    session = db.session()
    now = utcnow()
    conf = settings()
    board = public_board()
    svg = chart.render(_chart_series(), board.as_of, conf.final_deadline)
    return render_template(
        "contest/index.html",
        counters=board.counters(session),
        chart_svg=svg,
        top=board.published(session, limit=10),
        conf=conf,
        kind=KINDS[conf.kind],
        breaks=board.breaks(session, limit=10),
        now=now,
        board=board,
        announcements=desk.announcements(session, limit=5),
    )


@bp.get("/rules")
def rules() -> str:
    conf = settings()
    return render_template(
        "contest/rules.html",
        conf=conf,
        kind=KINDS[conf.kind],
        limits=conf.limits(),
        call_wall=call_wall_seconds(conf.call_cpu_seconds),
    )


@bp.get("/chart.svg")
def chart_svg() -> Response:
    svg = chart.render(_chart_series(), public_board().as_of, settings().final_deadline)
    return Response(svg, mimetype="image/svg+xml")


@bp.get("/challenges")
def challenge_list() -> str:
    board = public_board()
    return render_template(
        "contest/challenges.html", rows=board.published(db.session()), board=board
    )


@bp.get("/challenges/<name>")
def challenge(name: str) -> str:
    found = challenges.get_challenge(db.session(), name)
    user = current_user()
    if not challenges.can_see_source(found, user):
        abort(404)
    return render_template(
        "contest/challenge.html",
        c=found,
        user=user,
        conf=settings(),
        **desk_context(found, user),
    )


def desk_context(found: Challenge, user: User | None) -> dict:
    """The organisers' ruling on a challenge and what the (frozen) board shows of it."""
    board = public_board()
    return {
        "board": board,
        "ruling": desk.ruling_of(db.session(), found.id),
        "visible_breaks": board.breaks_of(found),
        "strawberries": board.strawberries(found),
        "hidden": desk.hidden_from(db.session(), found, user),
    }


@bp.get("/challenges/<name>/source.c")
def challenge_source(name: str) -> Response:
    found = challenges.get_challenge(db.session(), name)
    if not challenges.can_see_source(found, current_user()) or desk.hidden_from(
        db.session(), found, current_user()
    ):
        abort(404)
    return Response(
        found.source,
        mimetype="text/plain",
        headers={"Content-Disposition": f'attachment; filename="{found.name}.c"'},
    )


@bp.get("/challenges/<name>/public_key.txt")
def challenge_key(name: str) -> Response:
    found = challenges.get_challenge(db.session(), name)
    if (
        not challenges.can_see_source(found, current_user())
        or not found.public_key
        or desk.hidden_from(db.session(), found, current_user())
    ):
        abort(404)
    body = f"public_key {found.public_key}\nproof {found.proof}\n"
    return Response(body, mimetype="text/plain")


@bp.post("/challenges/<name>/break")
@login_required
@limiter.limit(break_rate, key_func=rate_key)
def break_challenge(name: str) -> str | BaseResponse | tuple[str, int]:
    session = db.session()
    found = challenges.get_challenge(session, name)
    user = current_user()
    assert user is not None
    if not challenges.can_see_source(found, user):
        abort(404)  # the error page below shows the challenge: none of an unpublished one
    try:
        form = validate(BreakForm, form_to_dict(request.form))
        challenges.attempt_break(session, user, found, form.key, settings())
    except ClubError as error:
        session.rollback()
        page = render_template(
            "contest/challenge.html",
            c=found,
            user=user,
            conf=settings(),
            break_error=error.message,
            **desk_context(found, user),
        )
        return page, error.status
    session.commit()
    return redirect(url_for("contest.challenge", name=name, broken=1))


@bp.get("/starter.c")
def starter() -> Response:
    """A starter program for the contest's kind: compiles, passes the filter, is accepted."""
    kind = KINDS[settings().kind]
    body = resources.files("clubstack.contest.starters").joinpath(f"{kind.name}.c").read_text()
    return Response(
        body,
        mimetype="text/plain",
        headers={"Content-Disposition": f'attachment; filename="{kind.name}_starter.c"'},
    )


@bp.route("/submit", methods=["GET", "POST"])
@body_limit(lambda: settings().source_bytes + 1_000_000)  # the source plus the form's fields
@login_required
def submit() -> str | BaseResponse | tuple[str, int, dict[str, str]]:
    conf = settings()
    if request.method == "GET":
        return render_template(
            "contest/submit.html", conf=conf, kind=KINDS[conf.kind], errors={}, values={}
        )
    session = db.session()
    user = current_user()
    assert user is not None
    values = form_to_dict(request.form)
    try:
        check_submit_rate()
        form = validate(SubmitForm, values)
        created = challenges.submit(
            session,
            user,
            conf,
            read_source(form),
            key=form.key,
            public_key=form.public_key,
            proof=form.proof,
        )
        session.commit()
    except ClubError as error:
        session.rollback()
        errors = getattr(error, "fields", {}) or {"form": error.message}
        keep_uploaded_source(values)
        if len(str(values.get("source", ""))) > 200_000:
            values.pop("source")  # do not echo a huge paste back
        page = render_template(
            "contest/submit.html", conf=conf, kind=KINDS[conf.kind], errors=errors, values=values
        )
        return page, error.status, getattr(error, "headers", {})
    public_id = created.public_id
    enqueue(created, conf)
    return redirect(url_for("contest.submission", public_id=public_id))


@bp.get("/submissions/<public_id>")
@login_required
def submission(public_id: str) -> str:
    session = db.session()
    found = session.scalar(select(Challenge).where(Challenge.public_id == public_id))
    user = current_user()
    if found is None or user is None or (found.owner_id != user.id and not user.is_admin):
        abort(404)
    return render_template(
        "contest/submission.html", c=found, position=challenges.queue_position(session, found)
    )


@bp.get("/mine")
@login_required
def mine() -> str:
    user = current_user()
    assert user is not None
    return render_template(
        "contest/mine.html", rows=challenges.user_challenges(db.session(), user, True)
    )


@bp.get("/breaks")
def breaks() -> str:
    return render_template("contest/breaks.html", rows=public_board().breaks(db.session()))


@bp.get("/bananas")
def bananas() -> str:
    return render_template("contest/bananas.html", rows=public_board().bananas(db.session()))


@bp.get("/u/<nickname>")
def user_page(nickname: str) -> str:
    session = db.session()
    person = challenges.user_by_nickname(session, nickname)
    board = public_board()
    return render_template(
        "contest/user.html",
        person=person,
        designed=board.published(session, owner=person),
        broke=board.breaks(session, user=person),
    )


@bp.get("/feed.atom")
def atom() -> Response:
    session = db.session()
    board = public_board()
    xml = feed.render(
        title=settings().title,
        site=url_for("contest.index", _external=True).rstrip("/"),
        index_url=url_for("contest.index", _external=True),
        self_url=url_for("contest.atom", _external=True),
        published=[c for c in challenges.published_challenges(session) if board.listed(c)],
        breaks=board.breaks(session, limit=100),
        link=lambda name: url_for("contest.challenge", name=name, _external=True),
        announcements=desk.announcements(session, limit=50),
        announcement_url=url_for("contest.announcement_list", _external=True),
    )
    return Response(xml, mimetype="application/atom+xml")
