"""A request that fails inside a database transaction (a constraint violated, the connection
killed) still gets the app's own 500 answer with its security headers, and the next request
works: on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event, select, text

from clubstack.core.accounts.models import User
from clubstack.core.db import db
from tests.conftest import login

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
JSON = {"Accept": "application/json"}
ADDRESS = "fails@example.org"


def _kill_own_connection(kind: str) -> None:
    """Break the connection the request's session is using, the way each server loses one."""
    session = db.session()
    if kind == "sqlite":
        # SQLite has no server to kill the connection: close it under the session's feet.
        session.connection().connection.dbapi_connection.close()  # type: ignore[union-attr]
        return
    assert db.engine is not None
    if kind == "postgres":
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with db.engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    else:
        pid = session.execute(text("SELECT CONNECTION_ID()")).scalar_one()
        with db.engine.connect() as other:
            other.execute(text("KILL :pid"), {"pid": int(pid)})


def _failing_app(make_app: Callable[..., Any], kind: str) -> Any:
    app = make_app(db_kind=kind)

    @app.post("/test/duplicate-user")
    def duplicate_user() -> str:
        session = db.session()
        session.add(User(email=ADDRESS))  # already taken: the flush violates the unique index
        session.flush()
        return "unreachable"

    @app.post("/test/lost-connection")
    def lost_connection() -> str:
        _kill_own_connection(kind)
        db.session().scalar(select(User.id).limit(1))
        return "unreachable"

    app.config["WTF_CSRF_ENABLED"] = False  # the test views take no form
    return app


def _assert_own_500(response: Any) -> None:
    assert response.status_code == 500
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Request-ID"]


@pytest.mark.parametrize("path", ["/test/duplicate-user", "/test/lost-connection"])
def test_a_request_failing_in_the_database_gets_the_apps_500_and_the_next_one_works(
    make_app: Callable[..., Any], db_kind: str, path: str
) -> None:
    app = _failing_app(make_app, db_kind)
    client = app.test_client()
    login(client, app, ADDRESS, nickname="failing")

    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        page = client.post(path, headers=BROWSER)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    _assert_own_500(page)
    # The page was made without the database: it did not look up who is logged in.
    assert not [s for s in statements if "login_sessions" in s]
    html = page.get_data(as_text=True)
    assert "Something went wrong on our side" in html and "<html" in html
    assert "Traceback" not in html

    answer = client.post(path, headers=JSON)
    _assert_own_500(answer)
    assert answer.get_json()["error"] == "server_error"

    account = client.get("/account", headers=BROWSER)  # the database works again, logged in
    assert account.status_code == 200
    assert "failing" in account.get_data(as_text=True)
    with app.app_context():
        assert db.session().scalar(select(User).where(User.email == ADDRESS)) is not None
