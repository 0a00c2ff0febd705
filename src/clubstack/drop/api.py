"""The drop's REST API: create, read, delete, raw text, and its OpenAPI description.

Every address answers JSON to API clients and a page to browsers (rendered by
clubstack.drop.views); the views only parse, call clubstack.drop.messages and serialise.
clubstack.drop's __init__ adds `routes` to the drop's blueprint.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, jsonify, request, url_for

from clubstack.core.errors import InputError
from clubstack.core.ratelimits import READS, count_hit, rate_items, shared_counter_key
from clubstack.core.service import Routes
from clubstack.core.validation import form_to_dict, validate
from clubstack.core.web import limiter, secret_in_path
from clubstack.drop import messages
from clubstack.drop.errors import BodyError, MessageNotFound, MessageTooLarge, WrongMethod
from clubstack.drop.messages import CreateRequest
from clubstack.drop.openapi import openapi_document
from clubstack.drop.settings import DropSettings
from clubstack.drop.store import ReadLimit, StoredMessage
from clubstack.drop.views import (
    created_page,
    drop_settings,
    form_page,
    html_explicitly_preferred,
    message_page,
    page_preferred,
    store,
    url_prefix,
)

# Every method a route of ours answers itself, so even a wrong one gets our JSON 405.
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

routes = Routes()


def _only(*allowed: str) -> None:
    method = "GET" if request.method == "HEAD" else request.method
    if method not in allowed:
        raise WrongMethod(list(allowed) + (["HEAD"] if "GET" in allowed else []))


def message_json(message: StoredMessage) -> dict[str, Any]:
    return {
        "message_id": message.id,
        "message": message.body,
        "created_at": messages.iso(message.created_at),
        "expires_at": messages.iso(message.expires_at),
        "burn_after_reading": message.burn,
    }


# --- parsing a creation request ------------------------------------------------------------------


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


READ_SCOPE = "drop-read"  # message and raw share one read limit


def _read(message_id: str) -> StoredMessage:
    """Read a message, counting the read against the shared read limit: with the Redis store
    in the same round trip as the read (a single-rate limit), otherwise on the limiter's own
    strategy first. Counted in the view rather than by a limit decorator, whose per-request
    limit resolution would cost a read more than the read."""
    rate = _read_rate()
    items = rate_items(rate)
    if store().counts_reads and len(items) == 1:
        key = shared_counter_key(items[0], READ_SCOPE)
        limit = ReadLimit(key=key, amount=items[0].amount, seconds=items[0].get_expiry())
        return messages.read(store(), message_id, limit)
    count_hit(rate, READ_SCOPE)
    return messages.read(store(), message_id)


@routes.route("/", methods=ANY_METHOD, provide_automatic_options=False)
@limiter.limit(_create_rate, methods=["POST"])
@limiter.limit(_read_rate, methods=READS)
def index() -> Response:
    """GET: the page with the form. POST: create a message (JSON, form or text/plain)."""
    _only("GET", "POST")
    if request.method in ("GET", "HEAD"):
        return form_page()
    browser = html_explicitly_preferred()
    try:
        request_ = validate(CreateRequest, _parse_create())
        created = messages.create(store(), request_, drop_settings())
    except (InputError, MessageTooLarge) as error:
        if not browser:
            raise
        fields = getattr(error, "fields", {}) or {"message": error.message}
        form = form_to_dict(request.form) if request.form else {}
        return form_page(error.status, errors=fields, form=form)
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
        response = created_page(body, message.expires_at)
    else:
        response = jsonify(body)
        response.status_code = 201
    response.headers["Location"] = url
    return response


@routes.route("/msg/<message_id>", methods=ANY_METHOD, provide_automatic_options=False)
@secret_in_path("message_id")  # the unguessable id is the reader's credential
def message(message_id: str) -> Response:
    """GET: the message (JSON or a page); DELETE with X-Delete-Token: remove it."""
    _only("GET", "DELETE")
    if request.method == "DELETE":
        token = request.headers.get("X-Delete-Token", "")
        if not token:
            if not messages.valid_id(message_id):
                raise MessageNotFound()
            raise InputError(
                "Send the delete token in the X-Delete-Token header.",
                fields={"X-Delete-Token": "required"},
            )
        messages.remove(store(), message_id, token)
        return Response(status=204)
    found = _read(message_id)
    if page_preferred():
        return message_page(found)
    return jsonify(message_json(found))


@routes.route("/msg/<message_id>/raw", methods=ANY_METHOD, provide_automatic_options=False)
@secret_in_path("message_id")
def raw(message_id: str) -> Response:
    """The message as text/plain; charset=utf-8."""
    _only("GET")
    found = _read(message_id)
    return Response(found.body, mimetype="text/plain")


@routes.route("/openapi.json", methods=ANY_METHOD, provide_automatic_options=False)
@limiter.exempt
def openapi() -> Response:
    _only("GET")
    return jsonify(openapi_document(url_prefix(), drop_settings()))
