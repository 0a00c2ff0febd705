"""The contest's JSON API (bearer token or session): submit, status, break, list.

Its routes join the contest blueprint under /api/ (the core maps errors to JSON there), added
by clubstack.contest's __init__."""

from __future__ import annotations

from flask import Response, jsonify, request, url_for
from pydantic import BaseModel, Field
from sqlalchemy import select

from clubstack.contest import challenges
from clubstack.contest.models import Challenge
from clubstack.contest.tasks import enqueue
from clubstack.contest.views import (
    BreakForm,
    break_rate,
    public_board,
    rate_key,
    settings,
    submit_rate,
)
from clubstack.core.accounts.auth import api_auth, current_user
from clubstack.core.db import db
from clubstack.core.errors import InputError, NotFound
from clubstack.core.service import Routes
from clubstack.core.validation import validate
from clubstack.core.web import API_CSP, body_limit, limiter, set_csp

routes = Routes()  # added to the service's blueprint by its __init__


class SubmitBody(BaseModel):
    source: str = Field(min_length=1, max_length=60_000_000)
    key: str | None = Field(default=None, max_length=80)
    public_key: str | None = Field(default=None, max_length=200)
    proof: str | None = Field(default=None, max_length=200)


def _status(c: Challenge) -> dict:
    session = db.session()
    return {
        "id": c.public_id,
        "name": c.name,
        "kind": c.kind,
        "status": c.status,
        "queue_position": challenges.queue_position(session, c),
        "failure": c.failure,
        "compiler_message": c.compiler_message,
        "object_size": c.object_size,
        "mean_ram_bytes": c.mean_ram_bytes,
        "mean_cpu_ns": c.mean_cpu_ns,
        "performance": c.performance,
        "published_at": c.published_at.isoformat() if c.published_at else None,
        "url": url_for("contest.challenge", name=c.name, _external=True),
    }


def _public(c: Challenge) -> dict:
    return {
        "name": c.name,
        "kind": c.kind,
        "designer": c.owner.display_name,
        "published_at": c.published_at.isoformat() if c.published_at else None,
        "performance": c.performance,
        "strawberries": c.strawberries,
        "peak_strawberries": c.peak_strawberries,
        "broken": c.is_broken,
        "public_key": c.public_key,
        "proof": c.proof,
        "source_url": url_for("contest.challenge_source", name=c.name, _external=True),
    }


@routes.post("/api/submit")
@body_limit(lambda: settings().source_bytes + 1_000_000)  # the source plus the JSON around it
@api_auth
@limiter.limit(submit_rate, key_func=rate_key)
def api_submit() -> tuple[Response, int]:
    set_csp(API_CSP)
    session = db.session()
    user = current_user()
    assert user is not None
    body = validate(SubmitBody, request.get_json(silent=True))
    conf = settings()
    try:
        created = challenges.submit(
            session,
            user,
            conf,
            body.source.encode(),
            key=body.key,
            public_key=body.public_key,
            proof=body.proof,
        )
        session.commit()
    except Exception:
        session.rollback()
        raise
    public_id = created.public_id
    enqueue(created, conf)
    found = db.session().scalar(select(Challenge).where(Challenge.public_id == public_id))
    assert found is not None
    return jsonify(_status(found)), 202


@routes.get("/api/submissions/<public_id>")
@api_auth
def api_status(public_id: str) -> Response:
    set_csp(API_CSP)
    found = db.session().scalar(select(Challenge).where(Challenge.public_id == public_id))
    user = current_user()
    if found is None or user is None or (found.owner_id != user.id and not user.is_admin):
        raise NotFound("There is no submission of yours with that id.")
    return jsonify(_status(found))


@routes.post("/api/challenges/<name>/break")
@api_auth
@limiter.limit(break_rate, key_func=rate_key)
def api_break(name: str) -> tuple[Response, int]:
    set_csp(API_CSP)
    session = db.session()
    user = current_user()
    assert user is not None
    data = request.get_json(silent=True)
    if data is None:
        raise InputError("Expected a JSON object.")
    body = validate(BreakForm, data)
    found = challenges.get_challenge(session, name)
    if not challenges.can_see_source(found, user):  # others' unpublished work does not exist
        raise NotFound("There is no challenge of that name.")
    try:
        made = challenges.attempt_break(session, user, found, body.key, settings())
        session.commit()
    except Exception:
        session.rollback()
        raise
    return jsonify(
        {"challenge": name, "broken": True, "strawberries_at_break": made.strawberries_at_break}
    ), 201


@routes.get("/api/challenges")
def api_challenges() -> Response:
    set_csp(API_CSP)
    board = public_board()  # hidden and disqualified left out; frozen for the public
    rows = []
    for c in challenges.published_challenges(db.session()):
        if board.listed(c):
            shown = board.row(c)
            rows.append(
                _public(c)
                | {
                    "strawberries": shown.strawberries,
                    "broken": shown.is_broken,
                    "peak_strawberries": shown.peak_strawberries,
                }
            )
    rows.sort(key=lambda row: -row["peak_strawberries"])
    return jsonify(rows)
