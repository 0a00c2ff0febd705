"""Drop fixtures: the app on each store backend (SQL on three databases, and Redis)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

BACKENDS = ["sqlite", "postgres", "mariadb", "redis"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def drop_app(make_app: Callable[..., Any], backend: str) -> Any:
    """The app with its drop store on `backend` (Redis store when Redis is configured)."""
    app = make_app(redis=True) if backend == "redis" else make_app(db_kind=backend)
    kind = type(app.extensions["clubstack.drop"]["store"]).__name__
    assert kind == ("RedisStore" if backend == "redis" else "SqlStore")
    return app


@pytest.fixture
def drop_client(drop_app: Any) -> Any:
    return drop_app.test_client()


JSON = {"Accept": "application/json"}


def create(client: Any, message: str = "hello", **fields: Any) -> Any:
    response = client.post("/drop/", json={"message": message, **fields}, headers=JSON)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()
