"""One schema on SQLite, PostgreSQL and MariaDB: migrations match the models, and the core
flows work on each real server."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from clubstack.core.accounts import login as accounts
from clubstack.core.db import db
from clubstack.services import all_metadata
from tests.conftest import login


def test_migrations_match_the_models(make_app: Any, db_kind: str) -> None:
    app = make_app(db_kind=db_kind)
    engine = create_engine(app.config["CLUBSTACK"].sqlalchemy_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        diff = compare_metadata(context, all_metadata())
    engine.dispose()
    assert diff == []


def test_login_flow_on_each_database(make_app: Any, db_kind: str) -> None:
    app = make_app(db_kind=db_kind)
    client = app.test_client()
    login(client, app, "ada@example.org", nickname="ada")
    assert "ada" in client.get("/account").get_data(as_text=True)


def test_two_racing_clicks_log_in_once(make_app: Any, db_kind: str) -> None:
    app = make_app(db_kind=db_kind)
    with app.app_context():
        issued = accounts.issue_login_link(
            db.session(), "ada@example.org", lifetime=timedelta(minutes=15), open_signup=True
        )
        assert issued is not None
    results: list[object] = []
    barrier = threading.Barrier(8)

    def click() -> None:
        with app.app_context():
            barrier.wait()
            results.append(accounts.login_with_link(db.session(), issued.token))

    threads = [threading.Thread(target=click) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(1 for r in results if r is not None) == 1
