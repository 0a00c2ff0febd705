"""Rate limits: one Flask-Limiter for every service, on its public API only.

The default limit guards every state-changing request and exempts safe methods
(`default_limits_exempt_when`). Reads that cost something carry their own limits
(`limiter.limit(rate, methods=READS)` or `shared_limit`), or count them in the view with
`count_hit` (the drop's hot reads, the contest's submissions); floods of plain page views are
nginx's job (limit_req in deploy/). X-RateLimit-* headers are off: they cost a second storage
round trip per request, and a 429 still says when to come back (Retry-After). With a Redis URL
the counts live in Redis (shared by every worker and machine); without one, in this process's
memory (`CountsInMemory`, a storage on limits' documented extension point).

Flask-Limiter works out which limits apply to a request in a before-request hook, on every
request, and again in the decorator of a view that has limits of its own; most of a plain GET's
limiter cost is that resolution, although nothing applies to it. `ClubLimiter` lets through, by
a request filter (the documented way to exempt a request), the passes that have nothing to do:

* a safe-method request to a view whose own limits do not count that method (the default limit
  exempts safe methods, so nothing applies);
* the before-request pass for a view with limits of its own: Flask-Limiter checks those (and the
  default limit, where the view's limits leave the method out) in the view's decorator.

To know which views count which methods, `limit` and `shared_limit` mark the view they decorate;
the views they return mark the request as their pass begins (no hook of our own is needed to
tell the passes apart). Both passes hold only while no application-wide or meta limits exist
(Flask-Limiter checks those in the before-request pass too); init_limits refuses them.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, current_app, request
from flask_limiter import Limiter, RouteLimit
from limits import RateLimitItem, parse_many
from limits.storage import Storage

from clubstack.core.errors import RateLimited

log = logging.getLogger("flask-limiter")  # the limiter's own logger, with its filter

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
READS = ["GET", "HEAD"]  # what a view's read limit counts: `limiter.limit(rate, methods=READS)`
KEY_PREFIX = "clubstack"  # RATELIMIT_KEY_PREFIX: the first part of every counter's key
REDIS_KEY_PREFIX = "LIMITS"  # limits' RedisStorage puts its key_prefix (default) before that
COUNTED = "clubstack_limited_methods"  # on a view: the methods its own limits count ("*": all)
IN_VIEW = "clubstack.limiter_in_view"  # in the WSGI environ: a limit decorator's pass is running


class MarkingRouteLimit(RouteLimit):
    """A route limit that writes on the view it decorates which methods it counts, and marks
    the request when its decorator's pass begins (the before-request pass has then been)."""

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, Blueprint):  # the filter looks for marks on views only
            raise TypeError("limit the views of a blueprint one by one (see ratelimits.py)")
        checked = super().__call__(obj)

        @functools.wraps(checked)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            request.environ[IN_VIEW] = True
            return checked(*args, **kwargs)

        counted = {m.upper() for m in self.methods} if self.methods else {"*"}
        setattr(wrapped, COUNTED, frozenset(counted | getattr(checked, COUNTED, frozenset())))
        return wrapped


def _marking(route_limit: RouteLimit, limiter: Limiter) -> MarkingRouteLimit:
    fields = {f.name: getattr(route_limit, f.name) for f in dataclasses.fields(route_limit)}
    return MarkingRouteLimit(limiter=limiter, **fields)


class ClubLimiter(Limiter):
    """Flask-Limiter whose limit decorators mark their views, for `nothing_to_check`."""

    def limit(self, limit_value: str | Callable[[], str], **options: Any) -> RouteLimit:
        return _marking(super().limit(limit_value, **options), self)

    def shared_limit(
        self, limit_value: str | Callable[[], str], scope: Any, **options: Any
    ) -> RouteLimit:
        return _marking(super().shared_limit(limit_value, scope, **options), self)


def client_ip() -> str:
    """The client address (ProxyFix has already applied trusted X-Forwarded-For, if configured)."""
    return request.remote_addr or "unknown"


def _default_rate() -> str:
    return str(current_app.config["CLUBSTACK"].default_rate)


def _safe_method() -> bool:
    return request.method in SAFE_METHODS


# One limiter for the process; the default limit is read per app (tests build many apps).
limiter = ClubLimiter(
    key_func=client_ip,
    default_limits=[_default_rate],
    default_limits_exempt_when=_safe_method,
    headers_enabled=False,
    swallow_errors=True,
)


@limiter.request_filter
def nothing_to_check() -> bool:
    """True when no limit can apply in this pass of Flask-Limiter (see the module's doc)."""
    view = current_app.view_functions.get(request.endpoint or "")
    counted: frozenset[str] | None = getattr(view, COUNTED, None)
    if counted is None:
        return request.method in SAFE_METHODS
    if IN_VIEW not in request.environ:
        return True  # the before-request pass: the view's decorator checks
    return request.method in SAFE_METHODS and not counted & {request.method, "*"}


@functools.lru_cache(maxsize=64)
def rate_items(rate: str) -> tuple[RateLimitItem, ...]:
    """The limits of a rate string ("10/minute;100/day"), parsed once per distinct string."""
    return tuple(parse_many(rate))


def count_hit(rate: str, scope: str, key: str | None = None) -> None:
    """Count one hit of `rate` for this client (or `key`) in `scope`, from inside a view, on the
    limiter's own strategy and storage (Flask-Limiter's public `Limiter.limiter`); RateLimited
    when over. For the limits a decorator cannot express: one the view must answer itself (the
    contest keeps a refused source in its form), or a hot read that a decorator's per-request
    limit resolution would make several times dearer (the drop's reads). The counter is the one
    `shared_limit(rate, scope)` would keep."""
    identifiers = (KEY_PREFIX, key or client_ip(), scope)
    strategy = limiter.limiter
    for item in rate_items(rate):
        try:
            allowed = strategy.hit(item, *identifiers)
            reset = 0.0 if allowed else strategy.get_window_stats(item, *identifiers).reset_time
        except Exception as error:
            log.warning("rate limit storage failed (%s); this request is not limited", error)
            return
        if not allowed:
            raise RateLimited(retry_after=max(1, int(reset - time.time()) + 1))


def shared_counter_key(item: RateLimitItem, scope: str) -> str:
    """The Redis key under which Flask-Limiter counts this client's hits of the shared limit
    `item` of `scope` (fixed window). A store that counts hits together with its own work (one
    round trip) uses it, so the count is the one the limiter would keep, and reset clears it."""
    return f"{REDIS_KEY_PREFIX}:{item.key_for(KEY_PREFIX, client_ip(), scope)}"


class OneLineStorageErrors(logging.Filter):
    """While the limits' store is down, Flask-Limiter lets every request through
    (swallow_errors) and logs the failure with its traceback, once per request. One line with
    the error's type says the same without filling the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = "rate limit storage failed (%s); this request is not limited"
            record.args = (type(error).__name__,)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


logging.getLogger("flask-limiter").addFilter(OneLineStorageErrors())


class CountsInMemory(Storage):
    """Fixed-window counts in this process's memory, expired when next read.

    limits' own MemoryStorage also expires counts from a timer thread, which it starts again on
    a hit whenever the last one has finished: on a busy process, a thread start for most
    requests. Counts here are dropped when read after their window (and all stale ones once
    the table grows), so no thread is needed. Registered by subclassing (limits' documented
    way to add a storage) under the scheme `clubstack-memory://`. Fixed windows only: the
    limiter's strategy."""

    STORAGE_SCHEME = ["clubstack-memory"]
    SWEEP_AT = 10_000  # counts kept before the stale ones are swept

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any):
        self.window_counts: dict[str, tuple[int, float]] = {}  # key -> (count, expires at)
        self.counts_lock = threading.Lock()
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self.counts_lock:
            count, expires = self.window_counts.get(key, (0, 0.0))
            if expires <= now:
                if len(self.window_counts) >= self.SWEEP_AT:
                    self.sweep(now)
                count, expires = 0, now + expiry
            self.window_counts[key] = (count + amount, expires)
            return count + amount

    def get(self, key: str) -> int:
        count, expires = self.window_counts.get(key, (0, 0.0))
        return count if expires > time.time() else 0

    def get_expiry(self, key: str) -> float:
        expires = self.window_counts.get(key, (0, 0.0))[1]
        return expires if expires > time.time() else time.time()

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self.counts_lock:
            cleared = len(self.window_counts)
            self.window_counts.clear()
        return cleared

    def clear(self, key: str) -> None:
        with self.counts_lock:
            self.window_counts.pop(key, None)

    def sweep(self, now: float) -> None:
        for key in [k for k, (_, expires) in self.window_counts.items() if expires <= now]:
            del self.window_counts[key]


MEMORY_STORAGE_URI = "clubstack-memory://"


def init_limits(app: Flask, storage_uri: str) -> None:
    if app.config.get("RATELIMIT_APPLICATION") or app.config.get("RATELIMIT_META"):
        raise RuntimeError("application-wide and meta limits need nothing_to_check revisited")
    app.config.update(RATELIMIT_STORAGE_URI=storage_uri, RATELIMIT_KEY_PREFIX=KEY_PREFIX)
    limiter.init_app(app)
