"""Where messages live: one small interface, a Redis and a SQL implementation.

Both answer only with live messages (expiry checked on the movable clock as well as by the
backend), and both make burn-after-reading exactly-once: Redis by GETDEL, SQL by a single
DELETE whose affected-row count tells which reader won.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, cast

from sqlalchemy import Engine, Table, bindparam, delete, insert, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from clubstack.core.clock import utcnow
from clubstack.core.errors import RateLimited
from clubstack.drop.errors import StoreUnavailable
from clubstack.drop.models import DropMessage

if TYPE_CHECKING:
    import redis

log = logging.getLogger("clubstack.drop")


@dataclass(frozen=True)
class StoredMessage:
    id: str
    body: str
    burn: bool
    created_at: datetime
    expires_at: datetime
    delete_hash: str


@dataclass(frozen=True)
class ReadLimit:
    """A client's fixed-window count of reads, for a store that counts them itself."""

    key: str
    amount: int
    seconds: int


class MessageStore(Protocol):
    # True when read() takes a ReadLimit: the store counts the read in the same round trip.
    counts_reads: bool

    def put(self, message: StoredMessage) -> None: ...

    def read(self, message_id: str, limit: ReadLimit | None = None) -> StoredMessage | None:
        """The live message, or None. A burn-after-reading message is removed by this read,
        and of concurrent readers exactly one gets it. With a `limit` (stores that count
        reads), the read is counted first and RateLimited raised when over it."""

    def delete(self, message_id: str, delete_hash: str) -> bool:
        """Remove the message if the hash matches; True when something was removed."""

    def purge(self) -> int:
        """Remove expired messages the backend does not expire on its own; how many."""

    def ping(self) -> None: ...


# --- Redis ------------------------------------------------------------------------------------


# Count the read (fixed window, as limits' incr_expire does), then GET the normal key or GETDEL
# the burn key. Answers {0, seconds to wait} over the limit, {1, value} or {2, burnt value},
# or {3} when there is no such message. GETDEL needs Redis 6.2.
READ_COUNTED = """
local count = redis.call("INCR", KEYS[1])
if count == 1 then redis.call("EXPIRE", KEYS[1], ARGV[2]) end
if count > tonumber(ARGV[1]) then return {0, redis.call("TTL", KEYS[1])} end
local plain = redis.call("GET", KEYS[2])
if plain then return {1, plain} end
local burnt = redis.call("GETDEL", KEYS[3])
if burnt then return {2, burnt} end
return {3}
"""


class RedisStore:
    """Each message is one JSON value with a TTL. Burn messages live under their own key prefix,
    so a read asks for both keys in one round trip: GET the normal key, GETDEL the burn key.
    The read limit is counted in the same round trip (a registered Lua script)."""

    counts_reads = True

    def __init__(self, client: redis.Redis, prefix: str = "clubstack:drop:") -> None:
        import redis  # the optional [redis] extra: only needed when Redis holds the messages

        self.client = client
        self.prefix = prefix
        self._down: tuple[type[Exception], ...] = (redis.RedisError,)
        self._read_counted = client.register_script(READ_COUNTED)

    @classmethod
    def from_url(cls, url: str, timeout: float = 2.0) -> RedisStore:
        import redis

        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
        )
        return cls(client)

    def _key(self, message_id: str, burn: bool) -> str:
        return f"{self.prefix}{'b' if burn else 'm'}:{message_id}"

    def put(self, message: StoredMessage) -> None:
        value = json.dumps(
            {
                "body": message.body,
                "created_at": message.created_at.timestamp(),
                "expires_at": message.expires_at.timestamp(),
                "delete_hash": message.delete_hash,
            }
        )
        ttl = max(1, int((message.expires_at - utcnow()).total_seconds()))
        try:
            stored = self.client.set(self._key(message.id, message.burn), value, ex=ttl, nx=True)
        except self._down as error:
            raise _redis_down(error) from None
        if not stored:  # 128 random bits never collide; if they did, never overwrite a message
            raise RuntimeError("drop id collision in Redis")

    def read(self, message_id: str, limit: ReadLimit | None = None) -> StoredMessage | None:
        keys = [self._key(message_id, False), self._key(message_id, True)]
        try:
            if limit is None:
                pipe = self.client.pipeline(transaction=False)
                pipe.get(keys[0])
                pipe.getdel(keys[1])
                plain, burnt = pipe.execute()
                raw, burn = (plain, False) if plain is not None else (burnt, True)
            else:
                counter = [limit.key, *keys]
                answer = self._read_counted(keys=counter, args=[limit.amount, limit.seconds])
                if answer[0] == 0:
                    raise RateLimited(retry_after=max(1, int(answer[1])))
                raw, burn = (answer[1], answer[0] == 2) if answer[0] != 3 else (None, False)
        except self._down as error:
            raise _redis_down(error) from None
        if raw is None:
            return None
        message = _decode(message_id, raw, burn)
        if message.expires_at <= utcnow():
            return None
        return message

    def delete(self, message_id: str, delete_hash: str) -> bool:
        try:
            for burn in (False, True):
                key = self._key(message_id, burn)
                raw = self.client.get(key)
                stored = _decode(message_id, raw, burn) if raw is not None else None
                if stored is not None and hmac.compare_digest(stored.delete_hash, delete_hash):
                    return bool(self.client.delete(key))
        except self._down as error:
            raise _redis_down(error) from None
        return False

    def purge(self) -> int:
        return 0  # Redis expires keys itself (TTL)

    def ping(self) -> None:
        try:
            self.client.ping()
        except self._down as error:
            raise _redis_down(error) from None


def _decode(message_id: str, raw: bytes | str, burn: bool) -> StoredMessage:
    data = json.loads(raw)
    return StoredMessage(
        id=message_id,
        body=data["body"],
        burn=burn,
        created_at=datetime.fromtimestamp(data["created_at"], UTC),
        expires_at=datetime.fromtimestamp(data["expires_at"], UTC),
        delete_hash=data["delete_hash"],
    )


def _redis_down(error: Exception) -> StoreUnavailable:
    log.warning("drop store (redis) unavailable: %s", type(error).__name__)
    return StoreUnavailable()


# --- SQL --------------------------------------------------------------------------------------

_table = cast(Table, DropMessage.__table__)
# Errors that mean the database cannot be reached; anything else is a bug and surfaces as one.
_SQL_DOWN = (OperationalError, InterfaceError, PoolTimeout)
# Built once: the read path is the hot one, and building statements costs more than running them.
_READ = select(_table).where(_table.c.id == bindparam("id"), _table.c.expires_at > bindparam("now"))
_BURN = delete(_table).where(_table.c.id == bindparam("id"), _table.c.burn.is_(True))
_DELETE = delete(_table).where(
    _table.c.id == bindparam("id"), _table.c.delete_hash == bindparam("h")
)
_PURGE = delete(_table).where(_table.c.expires_at <= bindparam("now"))
_INSERT = insert(_table)


class SqlStore:
    """Messages as rows of drop_messages. Each operation is its own short transaction, so a
    SQLite reader never has to upgrade a stale snapshot to a write lock."""

    counts_reads = False  # reads are counted by the limiter, in its own store

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(self, message: StoredMessage) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    _INSERT,
                    {
                        "id": message.id,
                        "body": message.body,
                        "burn": message.burn,
                        "created_at": message.created_at,
                        "expires_at": message.expires_at,
                        "delete_hash": message.delete_hash,
                    },
                )
        except _SQL_DOWN as error:
            raise _sql_down(error) from None

    def read(self, message_id: str, limit: ReadLimit | None = None) -> StoredMessage | None:
        assert limit is None, "the SQL store does not count reads"
        try:
            with self.engine.begin() as conn:
                row = conn.execute(_READ, {"id": message_id, "now": utcnow()}).first()
            if row is None:
                return None
            if row.burn:
                # The burn itself is this one statement: of concurrent readers, exactly one
                # deletes the row (affected rows == 1) and may show the message.
                with self.engine.begin() as conn:
                    gone = conn.execute(_BURN, {"id": message_id})
                if gone.rowcount != 1:
                    return None
        except _SQL_DOWN as error:
            raise _sql_down(error) from None
        return StoredMessage(
            id=row.id,
            body=row.body,
            burn=bool(row.burn),
            created_at=row.created_at,
            expires_at=row.expires_at,
            delete_hash=row.delete_hash,
        )

    def delete(self, message_id: str, delete_hash: str) -> bool:
        try:
            with self.engine.begin() as conn:
                result = conn.execute(_DELETE, {"id": message_id, "h": delete_hash})
        except _SQL_DOWN as error:
            raise _sql_down(error) from None
        return result.rowcount == 1

    def purge(self) -> int:
        try:
            with self.engine.begin() as conn:
                result = conn.execute(_PURGE, {"now": utcnow()})
        except _SQL_DOWN as error:
            raise _sql_down(error) from None
        return int(result.rowcount or 0)

    def ping(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
        except _SQL_DOWN as error:
            raise _sql_down(error) from None


def _sql_down(error: Exception) -> StoreUnavailable:
    log.warning("drop store (sql) unavailable: %s", type(error).__name__)
    return StoreUnavailable()
