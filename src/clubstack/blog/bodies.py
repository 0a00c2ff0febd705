"""The build cache's rendered post bodies (HTML and excerpt), keyed by content, in one SQLite file.

One file rather than two small files per post: on ext4 a clean build spent a large part of its
parse time creating (and renaming) those files (docs/benchmarks.md). SQLite also makes each
batch of bodies one atomic write. Every process opens its own connection (a forked worker must
not use its parent's), and the parent closes its own before forking.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS bodies (key TEXT PRIMARY KEY, html TEXT NOT NULL, excerpt TEXT)"
)


class BodyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    def _db(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=60)
            # Workers write while others read. Switching needs the file to itself (and fails at
            # once, not after the timeout, when another process switches too): only when needed.
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a cache: a lost last batch is re-rendered
            conn.execute(_SCHEMA)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def hand_over(self) -> None:
        """Before forking workers: leave the file in WAL mode with its table, so no two
        workers race to set it up, and close this process's connection, which a forked
        worker must not use."""
        self._db()
        self.close()

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def put_many(self, rows: Iterable[tuple[str, str, str | None]]) -> None:
        """Store (key, html, excerpt) rows in one transaction."""
        db = self._db()
        with db:
            db.executemany("INSERT OR REPLACE INTO bodies VALUES (?, ?, ?)", rows)

    def html(self, key: str) -> str:
        return self._get("html", key)

    def excerpt(self, key: str) -> str:
        return self._get("excerpt", key)

    def _get(self, column: str, key: str) -> str:
        row = self._db().execute(f"SELECT {column} FROM bodies WHERE key = ?", (key,)).fetchone()  # noqa: S608 (column is ours)
        if row is None or row[0] is None:
            raise KeyError(f"no cached {column} for body {key}")
        return str(row[0])

    def keys(self) -> set[str]:
        return {key for (key,) in self._db().execute("SELECT key FROM bodies")}

    def keep_only(self, live: set[str]) -> None:
        """Delete the bodies no source refers to any more (keeps the cache bounded)."""
        dead = self.keys() - live
        if dead:
            db = self._db()
            with db:
                db.executemany("DELETE FROM bodies WHERE key = ?", ((key,) for key in dead))
