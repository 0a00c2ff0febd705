"""The hardened web layer every service shares: security headers, CSRF, rate limits, request
size, request ids, and the one mapping from errors to HTTP answers (JSON or an HTML page)."""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    current_app,
    g,
    jsonify,
    render_template,
    request,
)
from flask.blueprints import BlueprintSetupState
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_limiter import RateLimitExceeded
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import MapAdapter

from clubstack.core.db import abandon_session
from clubstack.core.errors import ClubError, InputError
from clubstack.core.logs import REQUEST_ID_KEY, SECRET_PATH_ARGS
from clubstack.core.ratelimits import MEMORY_STORAGE_URI, init_limits

# Re-exported: the services import the limiter and client_ip from core.web.
from clubstack.core.ratelimits import client_ip as client_ip
from clubstack.core.ratelimits import limiter as limiter
from clubstack.settings import Settings

log = logging.getLogger("clubstack.web")
F = TypeVar("F", bound=Callable[..., Any])

csrf = CSRFProtect()


PAGE_CSP_NONCE = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; object-src 'none'; base-uri 'none'"
)
# Most pages have no inline script: they get the same policy without a nonce, built once.
PAGE_CSP = PAGE_CSP_NONCE.replace(" 'nonce-{nonce}'", "")
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
STATIC_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
)
HSTS = ("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
CSP_KEY = "clubstack.csp"
_LOWER_STATIC = tuple((name.lower(), (name, value)) for name, value in STATIC_HEADERS)


class ClubFlask(Flask):
    """Flask, with absolute URLs taken from CLUBSTACK_BASE_URL and never from the request.

    url_for(..., _external=True) would otherwise build them from the Host header (and scheme)
    the client sent, so a forged Host puts an attacker's site into API answers, feeds and
    anything else built from it. Only building is changed: routing still matches any host.
    """

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        adapter = super().create_url_adapter(request)
        if adapter is not None and request is not None:
            base = urlsplit(self.config["CLUBSTACK"].base_url)
            adapter.url_scheme, adapter.server_name = base.scheme, base.netloc
        return adapter


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions (they hold only the server-side session id), minus the
    signing serializer Flask builds on every request: without a cookie (API calls, first
    visits) there is nothing to verify."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


class SecurityHeaders:
    """WSGI middleware: the request id, and the headers every response carries.

    It works on the plain list of header tuples at the WSGI level, which costs a fraction of
    werkzeug's Headers operations; a view's own value for a header (a Referrer-Policy, a CSP
    set with set_csp) is kept. Request ids need to be unique, not secret: a random per-process
    prefix and a counter, unless a trusted proxy sent a well-formed one.
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.prefix = secrets.token_hex(4)
        self.counter = itertools.count(1)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        if REQUEST_ID_RE.match(incoming):
            rid = incoming
        else:
            rid = f"{self.prefix}{next(self.counter):08x}"
        environ[REQUEST_ID_KEY] = rid

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            headers.extend(pair for lower, pair in _LOWER_STATIC if lower not in present)
            if "content-security-policy" not in present:
                headers.append(("Content-Security-Policy", environ.get(CSP_KEY, PAGE_CSP)))
            if environ.get("wsgi.url_scheme") == "https":
                headers.append(HSTS)
            headers.append(("X-Request-ID", rid))
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


MAX_JSON_DEPTH = 64  # far deeper than any body an API here takes; a bomb is thousands deep


def json_depth(data: Any) -> int:
    """How deeply lists and objects nest in parsed JSON (iterative: no recursion to exhaust)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item)
    return deepest


class BoundedJSON(DefaultJSONProvider):
    """Flask's JSON, with a bound on nesting for what requests send.

    Every `request.get_json()` of every service parses through the app's provider. A deeply
    nested body makes the json module raise RecursionError, which is not a ValueError, so it
    slipped past `silent=True` and became a 500 with a traceback; it is a 400 with a reason.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        too_deep = InputError(f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.")
        try:
            data = super().loads(s, **kwargs)
        except RecursionError:
            raise too_deep from None
        if json_depth(data) > MAX_JSON_DEPTH:
            raise too_deep
        return data


def csp_nonce() -> str:
    """A nonce for an inline script; only pages that ask for one get it in their policy."""
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(16)
        if "csp" not in g:
            request.environ[CSP_KEY] = PAGE_CSP_NONCE.format(nonce=nonce)
    return nonce


def set_csp(policy: str) -> None:
    """Let a view answer with its own Content-Security-Policy (an API: default-src 'none')."""
    g.csp = request.environ[CSP_KEY] = policy


def request_id() -> str:
    return str(request.environ.get(REQUEST_ID_KEY, "-"))


def with_csp(policy: str) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            set_csp(policy)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate


def cache_anonymous_page(view: F) -> F:
    """Serve a page that is the same for every anonymous visitor from memory.

    Only when there is no session cookie (so no user, no flash messages) and the page uses no
    per-request nonce; the rendered bytes are kept per app and endpoint.
    """

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if request.cookies.get(current_app.config["SESSION_COOKIE_NAME"]) or args or kwargs:
            return view(*args, **kwargs)
        cache = current_app.extensions.setdefault("clubstack.page_cache", {})
        body = cache.get(request.endpoint)
        if body is None:
            result = view()
            if not isinstance(result, str) or "csp_nonce" in g:
                return result
            body = cache[request.endpoint] = result.encode()
        return Response(body, mimetype="text/html")

    return wrapped  # type: ignore[return-value]


ERROR_FORMATS = "clubstack.error_formats"  # app.extensions: blueprint name -> its negotiation


def json_errors(bp: Blueprint, wanted: Callable[[], bool]) -> None:
    """Let a JSON-first blueprint negotiate its errors itself: an error raised in one of its
    views answers JSON when `wanted()` is true, the error page otherwise. The mapping from
    errors to statuses and bodies stays the one below. Routing errors (no such URL, a method no
    rule takes) reach no view and keep the core's rule. Call it where the blueprint is made."""

    def remember(state: BlueprintSetupState) -> None:
        state.app.extensions.setdefault(ERROR_FORMATS, {})[bp.name] = wanted

    bp.record_once(remember)


def wants_json() -> bool:
    """API paths and clients that prefer JSON get JSON errors; browsers get pages. A blueprint
    that registered its own negotiation (json_errors) decides for its views."""
    own = current_app.extensions.get(ERROR_FORMATS, {}).get(request.blueprint or "")
    if own is not None:
        return bool(own())
    if "/api/" in request.path or request.path.endswith(".json") or request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(status: int, code: str, message: str, **details: Any) -> Response:
    if wants_json():
        response = jsonify({"error": code, "message": message, **details})
    else:
        response = Response(
            render_template("error.html", status=status, code=code, message=message),
            mimetype="text/html",
        )
    response.status_code = status
    return response


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    messages = {
        404: "There is nothing at this address.",
        405: "This address does not accept that method.",
        413: "The request is too large.",
        429: "Too many requests; slow down and try again later.",
    }
    code = (error.name or "error").lower().replace(" ", "_")
    response = error_response(status, code, messages.get(status, error.description or ""))
    if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
        response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    return response


def _rate_limited(error: RateLimitExceeded) -> Response:
    response = error_response(429, "rate_limited", "Too many requests; try again later.")
    current = limiter.current_limit
    if current is not None:
        wait = int(current.reset_at - time.time()) + 1
    else:
        wait = int(error.limit.limit.get_expiry())
    response.headers["Retry-After"] = str(max(wait, 1))
    return response


def _club_error(error: ClubError) -> Response:
    response = error_response(error.status, error.code, error.message, **error.details)
    response.headers.update(error.headers)
    return response


def _csrf_error(error: CSRFError) -> Response:
    return error_response(
        400, "csrf_failed", "The form expired or did not come from this site; reload and retry."
    )


def _too_large(error: RequestEntityTooLarge) -> Response:
    return error_response(413, "too_large", "The request is too large.")


FAILED_KEY = "clubstack_failed"  # in g: the request failed; the database may be what failed


def request_failed() -> bool:
    """True while the 500 answer is made: nothing on it may touch the database (a template that
    would load the current user shows the page without one)."""
    return bool(g.get(FAILED_KEY, False))


def _unexpected(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    g.setdefault(FAILED_KEY, True)
    abandon_session()  # a failed transaction (or a dead connection) must not serve the page
    message = "Something went wrong on our side; it is logged."
    try:
        return error_response(500, "server_error", message)
    except Exception:
        # Still the app's answer, with its headers, rather than the server's bare 500.
        log.exception("the error page failed on %s %s", request.method, request.path)
        return Response(message, status=500, mimetype="text/plain")


def body_limit(nbytes: Callable[[], int]) -> Callable[[F], F]:
    """Let one view accept larger bodies than CLUBSTACK_MAX_REQUEST_BYTES (a source upload),
    from signed-in members only.

    Put it right under the route decorator; the limit is applied before anything reads the body
    (CSRF included), so every other route keeps the small default. Who is asking is settled
    from the session cookie or bearer token first, which needs no body: an anonymous request
    keeps the default limit and a large one is refused (413) before a byte of it is read.
    """

    def decorate(view: F) -> F:
        view.body_limit = nbytes  # type: ignore[attr-defined]
        return view

    return decorate


def largest_body(app: Flask) -> int:
    """The largest request body any route of `app` accepts: CLUBSTACK_MAX_REQUEST_BYTES, or a
    route's own `body_limit`, all read from the settings. A proxy in front must let this much
    through (`clubstack deploy nginx-limits`)."""
    limits = [int(app.config["MAX_CONTENT_LENGTH"])]
    for view in app.view_functions.values():
        limit = getattr(view, "body_limit", None)
        if limit is not None:
            limits.append(int(limit()))
    return max(limits)


def secret_in_path(*names: str) -> Callable[[F], F]:
    """Mark parts of a view's path as secrets (a token that is itself the credential, an
    unguessable id): every log line written during the request shows only their first
    characters. Put it right under the route decorator."""

    def decorate(view: F) -> F:
        setattr(view, SECRET_PATH_ARGS, names)
        return view

    return decorate


def _before() -> None:
    view = current_app.view_functions.get(request.endpoint or "")
    limit = getattr(view, "body_limit", None)
    if limit is not None and _signed_in():
        request.max_content_length = request.max_form_memory_size = limit()


def _signed_in() -> bool:
    from clubstack.core.accounts.auth import current_user  # accounts builds on this module

    return current_user() is not None


def init_web(app: Flask, settings: Settings) -> None:
    app.config.update(
        SECRET_KEY=settings.secret(),
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_request_bytes,
        SESSION_COOKIE_NAME="clubstack_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        PREFERRED_URL_SCHEME="https" if settings.base_url.startswith("https://") else "http",
        WTF_CSRF_TIME_LIMIT=None,  # bound to the session instead; sessions expire on their own
        WTF_CSRF_SSL_STRICT=True,
    )
    app.session_interface = CookieSessions()
    app.json = BoundedJSON(app)
    app.before_request(_before)  # first: a larger body limit must apply before CSRF reads it
    csrf.init_app(app)
    init_limits(app, settings.redis_url or MEMORY_STORAGE_URI)
    app.wsgi_app = SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]
    app.register_error_handler(ClubError, _club_error)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(RateLimitExceeded, _rate_limited)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
