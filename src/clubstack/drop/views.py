"""The drop's blueprint, its pages and how it answers.

Every drop address belongs to the JSON API (clubstack.drop.api, described by its OpenAPI
document) and also answers browsers with a page: this module holds the blueprint, renders those
pages, decides which of the two a request gets, and sets the headers every answer carries:
no-store and no-referrer; non-HTML answers carry the API CSP (default-src 'none'); pages keep the
page CSP. Errors go through the core's one mapping, negotiated by `errors_as_json`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request
from flask.blueprints import BlueprintSetupState

from clubstack.core.web import API_CSP, csrf, json_errors, set_csp
from clubstack.drop.messages import E2E_PREFIX
from clubstack.drop.settings import DropSettings
from clubstack.drop.store import MessageStore, RedisStore, SqlStore, StoredMessage
from clubstack.settings import Settings, service_settings

EXTENSION = "clubstack.drop"
LIFETIME_CHOICES = [
    (600, "10 minutes"),
    (3600, "1 hour"),
    (86_400, "1 day"),
    (7 * 86_400, "7 days"),
    (30 * 86_400, "30 days"),
]

bp = Blueprint(
    "drop",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)


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


def url_prefix() -> str:
    return current_app.extensions[EXTENSION]["prefix"]


# --- content negotiation -----------------------------------------------------------------------


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


def errors_as_json() -> bool:
    """How an error in a drop view is answered: as the answer it replaces would have been."""
    if request.endpoint == "drop.message" and request.method in ("GET", "HEAD"):
        return not page_preferred()
    return not html_explicitly_preferred()


# --- pages ---------------------------------------------------------------------------------------


def form_page(status: int = 200, **context: Any) -> Response:
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


def created_page(created: dict[str, Any], expires_at: datetime) -> Response:
    return Response(
        render_template("drop/created.html", created=created, expires_at=expires_at),
        status=201,
        mimetype="text/html",
    )


def message_page(message: StoredMessage) -> Response:
    return Response(
        render_template("drop/message.html", message=message, e2e_prefix=E2E_PREFIX),
        mimetype="text/html",
    )


# --- wiring --------------------------------------------------------------------------------------


@bp.after_request
def _security_headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if response.mimetype != "text/html":
        set_csp(API_CSP)
    return response


@bp.record_once
def _setup(state: BlueprintSetupState) -> None:
    app = state.app
    settings: Settings = app.config["CLUBSTACK"]
    app.extensions[EXTENSION] = {
        "store": make_store(settings, drop_settings()),
        "prefix": (state.url_prefix or "").rstrip("/"),
    }


json_errors(bp, errors_as_json)
csrf.exempt(bp)  # anonymous and token-based: no session authority for a forged post to use
