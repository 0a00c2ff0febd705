"""The comments service's JSON API, which the embed script on the static blog calls: list,
post, edit and delete comments. CORS for the blog's own origin only; writes are authorised by
signed tokens, not the session (so CSRF-exempt). clubstack.blog's __init__ adds `routes` to the
blog's blueprint."""

from __future__ import annotations

from flask import Response, jsonify, request

from clubstack.blog import comments as logic
from clubstack.blog.views import (
    after_post,
    blog_settings,
    comment_rate,
    create_comment,
    site_secret,
)
from clubstack.core.db import db
from clubstack.core.errors import InputError
from clubstack.core.service import Routes
from clubstack.core.validation import form_to_dict, validate
from clubstack.core.web import API_CSP, csrf, limiter, set_csp

routes = Routes()


@routes.after_request
def _cors(response: Response) -> Response:
    """CORS for the static blog's origin, on the JSON API only."""
    origin = request.headers.get("Origin")
    allowed = blog_settings().origin.rstrip("/")
    if "/api/" in request.path and origin and allowed and origin == allowed:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PATCH, DELETE"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, X-Edit-Token"
        response.headers["Access-Control-Max-Age"] = "600"
    if "/api/" in request.path:
        response.headers.add("Vary", "Origin")
    return response


@routes.get("/api/comments")
def api_list() -> Response:
    set_csp(API_CSP)
    path = request.args.get("path", "")
    if not path.startswith("/"):
        raise InputError(fields={"path": "must be the post's URL path"})
    settings = blog_settings()
    items = logic.approved_comments(db.session(), path)
    return jsonify(
        {
            "path": path,
            "comments": [logic.to_json(c, settings) for c in items],
            "form_token": logic.form_token(site_secret()),
            "max_length": settings.max_length,
            "premoderate": settings.premoderate,
        }
    )


@routes.post("/api/comments")
@csrf.exempt
@limiter.limit(comment_rate, methods=["POST"])
def api_post() -> tuple[Response, int]:
    set_csp(API_CSP)
    data = request.get_json(silent=True)
    if data is None:
        data = form_to_dict(request.form)
    posted = create_comment(data)
    payload = logic.to_json(posted.comment, blog_settings())
    after_post(posted)
    # the token just sent is spent; the embed posts its next comment with this one
    return jsonify(
        {
            "comment": payload,
            "edit_token": posted.token,
            "form_token": logic.form_token(site_secret()),
        }
    ), 201


@routes.route("/api/comments/<public_id>", methods=["PATCH", "DELETE"])
@csrf.exempt
@limiter.limit("60/minute")  # edits need the signed token; posting has its own limit
def api_change(public_id: str) -> Response | tuple[str, int]:
    set_csp(API_CSP)
    token = request.headers.get("X-Edit-Token", "")
    if request.method == "DELETE":
        logic.delete_own_comment(
            db.session(), public_id, token, secret=site_secret(), settings=blog_settings()
        )
        db.session.commit()
        return "", 204
    change = validate(logic.CommentEdit, request.get_json(silent=True))
    comment = logic.edit_comment(
        db.session(), public_id, token, change.body, secret=site_secret(), settings=blog_settings()
    )
    db.session.commit()
    return jsonify({"comment": logic.to_json(comment, blog_settings())})
