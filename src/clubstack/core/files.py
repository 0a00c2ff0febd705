"""Files the service keeps for itself: the instance folder and what is in it (databases, the job
queue, logs, the dev outbox with live login links, the generated secret key).

They are private to the service's user whatever the umask of the shell, systemd unit or
container that started it: folders 0700, files 0600. SQLite creates a database's -wal, -shm and
-journal files with the database file's own permissions, so creating the database file private
is enough for those.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger("clubstack.files")

DIR_MODE = 0o700
FILE_MODE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def _restrict(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o777 != mode:
            os.chmod(path, mode)
    except PermissionError:  # owned by someone else (a shared folder): say so, go on
        log.warning("cannot make %s private (mode %o): not its owner", path, mode)


def private_dir(path: Path) -> Path:
    """Create PATH (and missing parents) and make PATH itself 0700."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _restrict(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create PATH empty if it is missing, and make it 0600 either way."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    _restrict(path, FILE_MODE)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write a new file that is 0600 from its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def private_sqlite(path: Path) -> None:
    """Before SQLite opens PATH: the file exists 0600 (its companions follow its mode), and
    companions left by an older version are made private too."""
    if not path.parent.exists():
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    private_file(path)
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            _restrict(companion, FILE_MODE)
