"""The two stores over real connections: exactly-once burn under concurrent readers, expiry
(Redis TTL; SQL purge job), nothing but what was given is stored, and a clear error when down."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import redis
import requests
from sqlalchemy import create_engine, func, select

from clubstack.core import clock
from clubstack.core.db import db
from clubstack.drop import messages
from clubstack.drop.errors import StoreUnavailable
from clubstack.drop.messages import CreateRequest
from clubstack.drop.models import DropMessage
from clubstack.drop.settings import DropSettings
from clubstack.drop.store import RedisStore, SqlStore
from tests.conftest import LiveServer, free_port
from tests.drop.conftest import JSON, create

READERS = 16


def _store(app: Any) -> Any:
    return app.extensions["clubstack.drop"]["store"]


def _concurrent(count: int, work: Any) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work()
        except BaseException as error:  # collected and re-raised in the test thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


def test_burn_is_exactly_once_under_concurrent_store_reads(drop_app: Any) -> None:
    store = _store(drop_app)
    settings = DropSettings()
    for round_ in range(5):
        created = messages.create(
            store, CreateRequest(message=f"secret {round_}", burn_after_reading=True), settings
        )
        results = _concurrent(READERS, lambda c=created: store.read(c.message.id))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1, f"round {round_}: {len(winners)} readers got the message"
        assert winners[0].body == f"secret {round_}"
        assert store.read(created.message.id) is None


def test_burn_is_exactly_once_under_concurrent_http_reads(drop_app: Any) -> None:
    server = LiveServer(drop_app)
    try:
        created = create(drop_app.test_client(), "one reader only", burn_after_reading=True)
        url = f"{server.url}/drop/msg/{created['message_id']}"
        statuses = _concurrent(
            READERS, lambda: requests.get(url, headers=JSON, timeout=30).status_code
        )
    finally:
        server.stop()
    assert sorted(statuses) == [200] + [404] * (READERS - 1)


def test_redis_store_uses_ttl_and_keeps_only_what_was_given(make_app: Any) -> None:
    app = make_app(redis=True)
    store = _store(app)
    created = create(app.test_client(), "ttl message", expires_in=600, burn_after_reading=True)
    client = redis.Redis.from_url(app.config["CLUBSTACK"].redis_url)
    keys = [k.decode() for k in client.scan_iter(match="clubstack:drop:*")]
    assert len(keys) == 1 and keys[0].endswith(created["message_id"])
    assert 590 <= client.ttl(keys[0]) <= 600
    stored = client.get(keys[0]).decode()
    assert "ttl message" in stored and created["delete_token"] not in stored
    assert store.read(created["message_id"]) is not None
    assert list(client.scan_iter(match="clubstack:drop:*")) == []  # GETDEL took it


def test_sql_purge_job_removes_expired_rows(make_app: Any, db_kind: str) -> None:
    app = make_app(db_kind=db_kind)
    client = app.test_client()
    short = create(client, "short", expires_in=60)
    create(client, "long", expires_in=3600)
    from clubstack.drop.tasks import purge_drops

    with app.app_context():
        assert purge_drops.call_local() == 0
        with clock.moved(timedelta(seconds=120)):
            assert purge_drops.call_local() == 1
        ids = db.session.scalars(select(DropMessage.id)).all()
        assert short["message_id"] not in ids and len(ids) == 1
        stored = db.session.scalars(select(DropMessage)).one()
        assert stored.body == "long"
        assert len(stored.delete_hash) == 64  # a hash, never the token itself


def test_sql_store_keeps_large_and_unicode_messages(make_app: Any, db_kind: str) -> None:
    app = make_app(db_kind=db_kind)
    text = "ü✓🙂" * 5000 + "x" * 20_000  # about 65 KiB of UTF-8, with 4-byte characters
    size = len(text.encode())
    assert 60_000 < size <= 65_536
    created = create(app.test_client(), text)
    read = app.test_client().get(f"/drop/msg/{created['message_id']}/raw")
    assert read.get_data(as_text=True) == text
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(DropMessage)) == 1


def test_stores_report_unavailable_when_down() -> None:
    dead = free_port()
    redis_store = RedisStore.from_url(f"redis://127.0.0.1:{dead}/0", timeout=1)
    sql_store = SqlStore(
        create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{dead}/x", connect_args={"connect_timeout": 1}
        )
    )
    for store in (redis_store, sql_store):
        with pytest.raises(StoreUnavailable):
            store.read("x" * 22)
        with pytest.raises(StoreUnavailable):
            store.ping()
