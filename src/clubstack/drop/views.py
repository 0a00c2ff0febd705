"""The drop's HTTP face: one set of URLs that answers JSON to API clients and pages to browsers.

Views only parse, call clubstack.drop.messages and serialise. Every answer carries no-store and
no-referrer; non-HTML answers carry the API CSP (default-src 'none'); pages keep the page CSP.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    render_template,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask_limiter import RateLimitExceeded
from limits import RateLimitItem, parse_many
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from clubstack.core.errors import ClubError, InputError
from clubstack.core.ratelimits import READS, shared_counter_key
from clubstack.core.validation import form_to_dict, validate
from clubstack.core.web import API_CSP, csrf, limiter, secret_in_path, set_csp
from clubstack.drop import messages
from clubstack.drop.config import DropSettings
from clubstack.drop.messages import CreateRequest, MessageTooLarge
from clubstack.drop.openapi import openapi_document
from clubstack.drop.store import MessageStore, ReadLimit, RedisStore, SqlStore, StoredMessage
from clubstack.settings import Settings, service_settings

EXTENSION = "clubstack.drop"
READ_SCOPE = "drop-read"  # message and raw share one read limit
LIFETIME_CHOICES = [
    (600, "10 minutes"),
    (3600, "1 hour"),
    (86_400, "1 day"),
    (7 * 86_400, "7 days"),
    (30 * 86_400, "30 days"),
]
# Every method a route of ours answers itself, so even a wrong one gets our JSON 405.
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def drop_settings() -> DropSettings:
    return service_settings(DropSettings)


def make_store(settings: Settings, drop: DropSettings) -> MessageStore:
    from clubstack.core.db import db

    redis_url = drop.redis_url or settings.redis_url
    if drop.store == "redis" or (drop.store == "auto" and redis_url):
        if not redis_url:
            raise ValueError("CLUBSTACK_DROP_STORE=redis needs a Redis URL")
        return RedisStore.from_url(redis_url, timeout=drop.store_timeout)
    assert db.engine is not None, "the database is initialised before services"
    return SqlStore(db.engine)


def store() -> MessageStore:
    return current_app.extensions[EXTENSION]["store"]


# --- content negotiation and answers -----------------------------------------------------------


def page_preferred() -> bool:
    """GET of a message: a page unless the client asks for JSON."""
    if request.headers.get("Accept") == "application/json":  # API clients: no parsing needed
        return False
    if not request.accept_mimetypes:
        return True
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "text/html"


def html_explicitly_preferred() -> bool:
    """Everything else: JSON unless the client (a browser) prefers HTML."""
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def _html_errors() -> bool:
    if request.endpoint == "drop.message" and request.method in ("GET", "HEAD"):
        return page_preferred()
    return html_explicitly_preferred()


def error_answer(status: int, code: str, text: str, **details: Any) -> Response:
    if _html_errors():
        response = Response(
            render_template("error.html", status=status, code=code, message=text),
            status=status,
            mimetype="text/html",
        )
    else:
        response = jsonify({"error": code, "message": text, **details})
        response.status_code = status
    return response


def _club_error(error: ClubError) -> Response:
    response = error_answer(error.status, error.code, error.message, **error.details)
    response.headers.update(error.headers)
    return response


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if status == 413:
        return error_answer(413, "too_large", "The request is too large.")
    if status == 405:
        response = error_answer(405, "method_not_allowed", "This address does not accept that.")
        response.headers["Allow"] = ", ".join(error.valid_methods or [])  # type: ignore[attr-defined]
        return response
    code = (error.name or "error").lower().replace(" ", "_")
    return error_answer(status, code, error.description or code)


def _rate_limited(error: RateLimitExceeded) -> Response:
    response = error_answer(429, "rate_limited", "Too many requests; try again later.")
    response.headers["Retry-After"] = str(int(error.limit.limit.get_expiry()))
    return response


def _only(*allowed: str) -> None:
    method = "GET" if request.method == "HEAD" else request.method
    if method not in allowed:
        valid = list(allowed) + (["HEAD"] if "GET" in allowed else [])
        raise MethodNotAllowed(valid_methods=valid)


def message_json(message: StoredMessage) -> dict[str, Any]:
    return {
        "message_id": message.id,
        "message": message.body,
        "created_at": messages.iso(message.created_at),
        "expires_at": messages.iso(message.expires_at),
        "burn_after_reading": message.burn,
    }


# --- parsing a creation request ------------------------------------------------------------------


class BodyError(InputError):
    """The body is not something we can read (not JSON, not UTF-8, wrong content type)."""

    code = "invalid_body"


def _body_limit(drop: DropSettings) -> int:
    # JSON may escape every character as \uXXXX (6 bytes); anything beyond that is too large
    # whatever it holds, so refuse it before reading.
    return drop.max_bytes * 6 + 4096


def _raw_body(drop: DropSettings) -> bytes:
    length = request.content_length
    if length is not None and length > _body_limit(drop):
        raise MessageTooLarge(
            f"The request is {length} bytes; messages are limited to {drop.max_bytes} bytes.",
            max_bytes=drop.max_bytes,
        )
    data = request.get_data(cache=True)
    if len(data) > _body_limit(drop):
        raise MessageTooLarge(max_bytes=drop.max_bytes)
    return data


def _parse_create() -> dict[str, Any]:
    drop = drop_settings()
    mimetype = request.mimetype
    if mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        if request.content_length and request.content_length > _body_limit(drop):
            raise MessageTooLarge(max_bytes=drop.max_bytes)
        data = form_to_dict(request.form)
        data.pop("encrypt", None)  # the page's checkbox, handled in the browser
        return data  # a ticked checkbox sends "on", which the model reads as true
    raw = _raw_body(drop)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("The body is not UTF-8 text.") from None
    if mimetype == "application/json" or mimetype.endswith("+json"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            raise BodyError("The body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise BodyError('The body must be a JSON object with a "message".')
        return data
    if mimetype == "text/plain":
        query: dict[str, Any] = {"message": text}
        for name in ("expires_in", "burn_after_reading"):
            if name in request.args:
                query[name] = request.args[name]
        return query
    raise BodyError(
        "Send JSON (application/json), a form, or text/plain.",
        fields={"content_type": f"{mimetype or 'none'} is not accepted"},
    )


# --- views ---------------------------------------------------------------------------------------


def _create_rate() -> str:
    return drop_settings().create_rate


def _read_rate() -> str:
    return drop_settings().read_rate


@functools.lru_cache(maxsize=8)
def _single_rate(rate: str) -> RateLimitItem | None:
    items = parse_many(rate)
    return items[0] if len(items) == 1 else None


def _counted_by_store() -> bool:
    """The message store counts reads with the read itself (Redis: one round trip), so the
    limiter leaves the shared read limit to it."""
    return store().counts_reads and _single_rate(_read_rate()) is not None


def _read_limit() -> ReadLimit | None:
    item = _single_rate(_read_rate())
    if not store().counts_reads or item is None:
        return None
    key = shared_counter_key(item, READ_SCOPE)
    return ReadLimit(key=key, amount=item.amount, seconds=item.get_expiry())


def _form_page(status: int = 200, **context: Any) -> Response:
    drop = drop_settings()
    page = render_template(
        "drop/index.html",
        lifetimes=[c for c in LIFETIME_CHOICES if c[0] <= drop.max_lifetime],
        default_lifetime=drop.default_lifetime,
        max_bytes=drop.max_bytes,
        errors=context.pop("errors", {}),
        form=context.pop("form", {}),
        **context,
    )
    return Response(page, status=status, mimetype="text/html")


@limiter.limit(_create_rate, methods=["POST"])
@limiter.limit(_read_rate, methods=READS)
def index() -> Response:
    """GET: the page with the form. POST: create a message (JSON, form or text/plain)."""
    _only("GET", "POST")
    if request.method in ("GET", "HEAD"):
        return _form_page()
    browser = html_explicitly_preferred()
    try:
        request_ = validate(CreateRequest, _parse_create())
        created = messages.create(store(), request_, drop_settings())
    except (InputError, MessageTooLarge) as error:
        if not browser:
            raise
        fields = getattr(error, "fields", {}) or {"message": error.message}
        form = form_to_dict(request.form) if request.form else {}
        return _form_page(error.status, errors=fields, form=form)
    message = created.message
    url = url_for("drop.message", message_id=message.id, _external=True)
    body = {
        "message_id": message.id,
        "url": url,
        "raw_url": url_for("drop.raw", message_id=message.id, _external=True),
        "expires_at": messages.iso(message.expires_at),
        "burn_after_reading": message.burn,
        "delete_token": created.delete_token,
    }
    if browser:
        response = Response(
            render_template("drop/created.html", created=body, expires_at=message.expires_at),
            status=201,
            mimetype="text/html",
        )
    else:
        response = jsonify(body)
        response.status_code = 201
    response.headers["Location"] = url
    return response


@secret_in_path("message_id")  # the unguessable id is the reader's credential
@limiter.shared_limit(_read_rate, READ_SCOPE, methods=READS, exempt_when=_counted_by_store)
def message(message_id: str) -> Response:
    """GET: the message (JSON or a page); DELETE with X-Delete-Token: remove it."""
    _only("GET", "DELETE")
    if request.method == "DELETE":
        token = request.headers.get("X-Delete-Token", "")
        if not token:
            if not messages.valid_id(message_id):
                raise messages.MessageNotFound()
            raise InputError(
                "Send the delete token in the X-Delete-Token header.",
                fields={"X-Delete-Token": "required"},
            )
        messages.remove(store(), message_id, token)
        return Response(status=204)
    found = messages.read(store(), message_id, _read_limit())
    if page_preferred():
        return Response(
            render_template("drop/message.html", message=found, e2e_prefix=messages.E2E_PREFIX),
            mimetype="text/html",
        )
    return jsonify(message_json(found))


@secret_in_path("message_id")
@limiter.shared_limit(_read_rate, READ_SCOPE, methods=READS, exempt_when=_counted_by_store)
def raw(message_id: str) -> Response:
    """The message as text/plain; charset=utf-8."""
    _only("GET")
    found = messages.read(store(), message_id, _read_limit())
    return Response(found.body, mimetype="text/plain")


@limiter.exempt
def openapi() -> Response:
    _only("GET")
    prefix = current_app.extensions[EXTENSION]["prefix"]
    return jsonify(openapi_document(prefix, drop_settings()))


# --- wiring --------------------------------------------------------------------------------------


def _security_headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if response.mimetype != "text/html":
        set_csp(API_CSP)
    return response


def _setup(state: BlueprintSetupState) -> None:
    app = state.app
    settings: Settings = app.config["CLUBSTACK"]
    app.extensions[EXTENSION] = {
        "store": make_store(settings, drop_settings()),
        "prefix": (state.url_prefix or "").rstrip("/"),
    }


def make_blueprint() -> Blueprint:
    bp = Blueprint(
        "drop",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/assets",
    )
    bp.add_url_rule("/", view_func=index, methods=ANY_METHOD, provide_automatic_options=False)
    bp.add_url_rule(
        "/msg/<message_id>", view_func=message, methods=ANY_METHOD, provide_automatic_options=False
    )
    bp.add_url_rule(
        "/msg/<message_id>/raw", view_func=raw, methods=ANY_METHOD, provide_automatic_options=False
    )
    bp.add_url_rule(
        "/openapi.json", view_func=openapi, methods=ANY_METHOD, provide_automatic_options=False
    )
    bp.record_once(_setup)
    bp.after_request(_security_headers)
    bp.register_error_handler(ClubError, _club_error)
    bp.register_error_handler(RateLimitExceeded, _rate_limited)
    bp.register_error_handler(HTTPException, _http_error)
    csrf.exempt(bp)  # anonymous and token-based: no session authority for a forged post to use
    return bp
