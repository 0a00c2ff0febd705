"""Rate limits on Flask-Limiter's public API: what the request filter lets through, what it
must not, and no private names of flask_limiter or limits anywhere under src/."""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

SRC = Path(__file__).resolve().parents[2] / "src"
LIBRARIES = ("flask_limiter", "limits")


def private_uses(source: str) -> list[str]:
    """Private names of flask_limiter/limits that `source` imports or reaches through objects
    that come from them: names imported from those packages, the core's `limiter`, and
    `self` in classes built on theirs."""
    tree = ast.parse(source)
    found: list[str] = []
    tracked = {"limiter"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
            if any(part.startswith("_") for part in (node.module or "").split(".")):
                found.append(f"from {node.module} import")
            for alias in node.names:
                if alias.name.startswith("_"):
                    found.append(f"import {alias.name}")
                tracked.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in LIBRARIES:
                    tracked.add((alias.asname or alias.name).split(".")[0])
    subclasses = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(isinstance(b, ast.Name) and b.id in tracked for b in node.bases)
    ]
    scopes: list[tuple[ast.AST, set[str]]] = [(tree, tracked)]
    scopes += [(cls, tracked | {"self", "cls"}) for cls in subclasses]
    for scope, names in scopes:
        for node in ast.walk(scope):
            if isinstance(node, ast.Attribute):
                root: ast.AST = node
                chain = []
                while isinstance(root, ast.Attribute):
                    chain.append(root.attr)
                    root = root.value
                private = [a for a in chain if a.startswith("_") and not a.endswith("__")]
                if isinstance(root, ast.Name) and root.id in names and private:
                    found.append(f"{root.id}.{'.'.join(reversed(chain))}")
    return sorted(set(found))


def test_the_scan_finds_what_web_py_did_before() -> None:
    before = """
from flask_limiter import Limiter
from limits.storage import MemoryStorage
limiter = Limiter(key_func=str)
class Quiet(MemoryStorage):
    def hook(self):
        self._MemoryStorage__expire_events()
def check():
    limiter._check_request_limit()
    assert not limiter._headers_enabled
    limiter.limiter.hit(1)
"""
    assert private_uses(before) == [
        "limiter._check_request_limit",
        "limiter._headers_enabled",
        "self._MemoryStorage__expire_events",
    ]


def test_no_module_under_src_uses_private_names_of_flask_limiter_or_limits() -> None:
    offenders = {
        str(path.relative_to(SRC)): uses
        for path in SRC.rglob("*.py")
        if (uses := private_uses(path.read_text()))
    }
    assert offenders == {}


def test_the_filter_lets_through_only_passes_with_nothing_to_check(make_app: Any) -> None:
    from clubstack.core.ratelimits import IN_VIEW, nothing_to_check

    app = make_app()
    page = "/drop/"  # the form page's read limit counts GET and HEAD, its create limit POST
    message = "/drop/msg/" + "a" * 22  # reads counted in the view (count_hit), no decorator
    cases = [
        ("/", "GET", False, True),  # no limit of its own; the default skips safe methods
        ("/", "OPTIONS", False, True),
        ("/account/login", "POST", False, False),  # a write: the default limit applies
        (page, "GET", False, True),  # the before-request pass: its decorator checks
        (page, "GET", True, False),  # the decorator's pass
        (page, "HEAD", True, False),
        (page, "OPTIONS", True, True),  # its limits do not count OPTIONS
        (page, "DELETE", True, False),  # the default limit, in the decorator's pass
        (message, "GET", False, True),
        (message, "DELETE", False, False),  # the default limit, in the before-request pass
    ]
    for url, method, in_view, expected in cases:
        with app.test_request_context(url, method=method):
            from flask import request

            if in_view:
                request.environ[IN_VIEW] = True
            assert nothing_to_check() is expected, (url, method, in_view)


def test_a_view_limit_without_methods_still_counts_reads(make_app: Any) -> None:
    from clubstack.core.web import limiter

    app = make_app(csrf=False)

    @app.route("/api/every-method", methods=["GET", "POST"])
    @limiter.limit("2/minute")
    def every_method() -> str:
        return "ok"

    @app.route("/api/posts-only", methods=["GET", "POST"])
    @limiter.limit("1/minute", methods=["POST"])
    def posts_only() -> str:
        return "ok"

    client = app.test_client()
    assert [client.get("/api/every-method").status_code for _ in range(3)] == [200, 200, 429]
    assert {client.get("/api/posts-only").status_code for _ in range(4)} == {200}
    assert [client.post("/api/posts-only").status_code for _ in range(2)] == [200, 429]


def test_limits_on_a_blueprint_are_refused() -> None:
    from flask import Blueprint

    from clubstack.core.web import limiter

    with pytest.raises(TypeError, match="one by one"):
        limiter.limit("1/minute")(Blueprint("whole", __name__))


def test_a_dead_limit_store_logs_one_line_per_request_not_a_traceback(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0", drop_store="sql", csrf=False)
    client = app.test_client()
    with caplog.at_level(logging.INFO, logger="flask-limiter"):
        created = client.post("/drop/", json={"message": "still accepted"})
    assert created.status_code == 201
    lines = [r for r in caplog.records if r.name == "flask-limiter"]
    assert lines, "the failure is logged"
    for record in lines:
        assert record.exc_info is None and record.levelno == logging.WARNING
        assert "rate limit storage failed" in record.getMessage()


def test_application_wide_limits_are_refused_while_the_filter_skips_passes() -> None:
    from flask import Flask

    from clubstack.core.ratelimits import init_limits

    app = Flask(__name__)
    app.config["RATELIMIT_APPLICATION"] = "100/second"
    with pytest.raises(RuntimeError, match="nothing_to_check"):
        init_limits(app, "clubstack-memory://")


def test_counts_in_memory_keep_fixed_windows_without_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    from limits import parse
    from limits.storage import storage_from_string
    from limits.strategies import FixedWindowRateLimiter

    from clubstack.core import ratelimits
    from clubstack.core.ratelimits import MEMORY_STORAGE_URI, CountsInMemory

    clock = [1000.0]
    monkeypatch.setattr(ratelimits.time, "time", lambda: clock[0])
    storage = storage_from_string(MEMORY_STORAGE_URI)
    assert isinstance(storage, CountsInMemory)
    threads = threading.active_count()
    window = FixedWindowRateLimiter(storage)
    two_a_minute = parse("2/minute")
    assert [window.hit(two_a_minute, "ip-a") for _ in range(3)] == [True, True, False]
    assert window.hit(two_a_minute, "ip-b")  # another client has a count of its own
    stats = window.get_window_stats(two_a_minute, "ip-a")
    assert stats.remaining == 0 and stats.reset_time == 1060.0
    assert threading.active_count() == threads  # no expiry thread, unlike limits' memory://
    clock[0] = 1060.5  # the window is over: counting starts again
    assert window.hit(two_a_minute, "ip-a")
    assert window.get_window_stats(two_a_minute, "ip-a").remaining == 1
    window.clear(two_a_minute, "ip-a")
    assert window.get_window_stats(two_a_minute, "ip-a").remaining == 2


def test_counts_in_memory_sweep_stale_counts_when_the_table_grows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from clubstack.core import ratelimits
    from clubstack.core.ratelimits import CountsInMemory

    clock = [0.0]
    monkeypatch.setattr(ratelimits.time, "time", lambda: clock[0])
    monkeypatch.setattr(CountsInMemory, "SWEEP_AT", 100)
    storage = CountsInMemory()
    for n in range(100):
        storage.incr(f"old-{n}", expiry=10)
    clock[0] = 11.0
    storage.incr("new", expiry=10)  # a new window on a full table sweeps the stale ones
    assert storage.get("new") == 1 and storage.get("old-1") == 0
    assert storage.reset() == 1
