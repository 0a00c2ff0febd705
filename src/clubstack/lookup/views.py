"""HTML pages of the lookup desk: paste or upload, confirm what was recognised, watch the
batch, read and export the results. Thin: the work is in batches.py."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from clubstack.core.accounts.auth import current_user, login_required
from clubstack.core.db import db
from clubstack.core.validation import form_errors
from clubstack.core.web import client_ip, limiter
from clubstack.lookup import batches

bp = Blueprint("lookup", __name__, template_folder="templates")


def user_key() -> str:
    """Rate limits per account (they spend the operator's quota), per IP when anonymous."""
    user = current_user()
    return f"user:{user.id}" if user is not None else f"ip:{client_ip()}"


def _rate() -> str:
    return batches.settings().rate_limit


def start(indicators: list[Any], source: str) -> batches.LookupBatch:
    from clubstack.lookup.tasks import run_lookup_batch

    user = current_user()
    assert user is not None  # login_required / api_auth ran first
    session = db.session()
    batch_id = batches.create_batch(session, user.id, indicators, source).id
    session.commit()
    run_lookup_batch(batch_id)  # queued; runs inline only when jobs_immediate is set
    return batches.get_batch(db.session(), batch_id, user.id)


@bp.get("/")
@login_required
def index() -> str:
    user = current_user()
    assert user is not None
    return render_template(
        "lookup/index.html",
        history=batches.history(db.session(), user.id),
        limit=batches.settings().max_indicators,
        max_upload=batches.settings().max_upload_bytes,
        errors={},
        text="",
    )


@bp.post("/preview")
@login_required
def preview() -> str | tuple[str, int]:
    text = request.form.get("text", "")
    upload = request.files.get("file")
    with form_errors(field="text") as result:
        if upload is not None and upload.filename:
            text = text + "\n" + batches.decode_upload(upload.read(), upload.filename)
        return render_template("lookup/preview.html", indicators=batches.recognise(text=text))
    user = current_user()
    assert user is not None
    page = render_template(
        "lookup/index.html",
        history=batches.history(db.session(), user.id),
        limit=batches.settings().max_indicators,
        max_upload=batches.settings().max_upload_bytes,
        errors=result.fields,
        message=result.message,
        text=text[:20000],
    )
    return page, 400


@bp.post("/batches")
@login_required
@limiter.limit(_rate, key_func=user_key)
def create() -> BaseResponse:
    values = [
        line.strip()
        for field in request.form.getlist("indicators")
        for line in field.splitlines()
        if line.strip()
    ]
    found = batches.recognise(indicators=values)
    batch = start(found, "web")
    return redirect(url_for("lookup.batch", batch_id=batch.id), code=303)


@bp.get("/batches/<batch_id>")
@login_required
def batch(batch_id: str) -> str:
    user = current_user()
    assert user is not None
    item = batches.get_batch(db.session(), batch_id, user.id)
    sort = request.args.get("sort", "verdict")
    if sort not in batches.SORTS:
        sort = "verdict"
    descending = request.args.get("dir", "desc") != "asc"
    return render_template(
        "lookup/batch.html",
        batch=item,
        rows=batches.rows(item, sort, descending),
        checks=[(c, batches.CHECK_TITLES[c]) for c in item.checks.split(",")],
        sort=sort,
        descending=descending,
    )


@bp.get("/batches/<batch_id>.<fmt>")
@login_required
def export(batch_id: str, fmt: str) -> Response:
    user = current_user()
    assert user is not None
    item = batches.get_batch(db.session(), batch_id, user.id)
    name = f"lookup-{item.created_at:%Y%m%d-%H%M%S}"
    if fmt == "csv":
        body, mimetype = batches.batch_csv(item), "text/csv"
    elif fmt == "json":
        import json

        body, mimetype = json.dumps(batches.batch_json(item), indent=2), "application/json"
    else:
        abort(404)
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response
