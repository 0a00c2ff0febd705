"""Logging: one setup for web, worker and CLI; daily rotated files; request ids; redaction.

Secrets, tokens and message bodies are never passed to the logger; e-mail addresses appear only
as a keyed hash (`email_hash`), so logs can be correlated without holding addresses.
"""

from __future__ import annotations

import atexit
import calendar
import contextlib
import hashlib
import hmac
import json
import logging
import logging.handlers
import os
import queue
import re
import sys
import time
from pathlib import Path
from typing import Any

from flask import current_app, has_request_context, request

from clubstack.core.files import FILE_MODE, private_dir
from clubstack.settings import Settings, get_settings

REQUEST_ID_KEY = "clubstack.request_id"  # set in the WSGI environ by core.web.SecurityHeaders
PATH_SECRETS_KEY = "clubstack.path_secrets"
SECRET_PATH_ARGS = "secret_path_args"  # noqa: S105 - an attribute name, set by web.secret_in_path
_TOKENISH_RE = re.compile(r"^[A-Za-z0-9_.=~-]{20,}$")
_TOKEN_RE = re.compile(r"((?:token|sid|key|secret|password)=)[^&\s]+", re.IGNORECASE)
_BEARER_RE = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)


def email_hash(address: str) -> str:
    key = get_settings().secret().encode()
    digest = hmac.new(key, address.strip().lower().encode(), hashlib.sha256).hexdigest()
    return f"email:{digest[:16]}"


def redact(text: str) -> str:
    return _BEARER_RE.sub(r"\1[redacted]", _TOKEN_RE.sub(r"\1[redacted]", text))


def mask(secret: str) -> str:
    """What a log line keeps of a secret from a URL path: its first characters, to tell
    requests apart."""
    return f"{secret[:4]}…"


def _path_secrets() -> tuple[str, ...]:
    """The secrets in this request's path, worked out once per request: the parts a view
    declared with core.web.secret_in_path, or, for a path that routed nowhere (404, 405, a
    redirect to add a slash), every long token-like segment, since a mistyped or truncated
    link still carries its token."""
    found = request.environ.get(PATH_SECRETS_KEY)
    if found is None:
        rule = request.url_rule
        if rule is not None:
            view = current_app.view_functions.get(rule.endpoint)
            args = request.view_args or {}
            names = getattr(view, SECRET_PATH_ARGS, ())
            # a value too short to be a secret (a mangled link) would mask random letters
            found = tuple(str(args[n]) for n in names if len(str(args.get(n) or "")) >= 8)
        else:
            found = tuple(part for part in request.path.split("/") if _TOKENISH_RE.match(part))
        request.environ[PATH_SECRETS_KEY] = found
    return found


class _ContextFilter(logging.Filter):
    """Adds the request id (when inside a request) and redacts token-like values and the
    secrets in the request's path, in every line logged while the request runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        in_request = has_request_context()
        record.request_id = request.environ.get(REQUEST_ID_KEY, "-") if in_request else "-"
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        message = str(record.msg)
        if in_request:
            for secret in _path_secrets():
                message = message.replace(secret, mask(secret))
        if "=" in message or "bearer" in message.lower():  # only then can a token be in it
            message = redact(message)
        record.msg = message
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)


class _BatchingListener(logging.handlers.QueueListener):
    """Writes records in batches: after a record it waits 50 ms, then hands every record that
    came meanwhile to the handlers, and flushes them when the queue runs dry (a file handler
    writes its whole batch at once). Waking the writer thread for every access line (a GIL
    hand-over each time) cost a busy server more than the writing itself."""

    def __init__(
        self, records: queue.SimpleQueue[logging.LogRecord], *handlers: logging.Handler
    ) -> None:
        super().__init__(records, *handlers, respect_handler_level=True)
        self.records = records

    def dequeue(self, block: bool) -> logging.LogRecord:
        try:
            return self.records.get_nowait()
        except queue.Empty:
            self.flush()
            time.sleep(0.05)
            return self.records.get(block)

    def flush(self) -> None:
        # Only the file handler holds lines back; a stream handler flushes on every line (and
        # its stream may be closed already when this runs at exit).
        for handler in self.handlers:
            if isinstance(handler, DailyFileHandler):
                handler.flush()

    def stop(self) -> None:
        super().stop()
        self.flush()


class DailyFileHandler(logging.Handler):
    """Appends each record to `<name>.log.<YYYY-MM-DD>`, the file of the UTC day the record was
    made; `<name>.log` is a symbolic link to today's file.

    Several processes (gunicorn workers, several workers on one host) log to the same files, so
    no file is ever renamed: a handler that rotates by renaming races every other process that
    rotates the same file, and lines are lost or land in the wrong day's file. Here lines are
    written whole on a file opened with O_APPEND, which the kernel appends in one piece: the
    lines pending when `flush` is called (the writer thread calls it when its queue runs dry) go
    out in one `write` of at most about BATCH_BYTES. The file is chosen by the record's own
    time, so a line made at 23:59:59.99 and written a moment after midnight still goes into its
    day's file. Files older than `keep_days` days are deleted by whichever process first opens a
    new day's file.
    """

    BATCH_BYTES = 64 * 1024

    def __init__(self, path: Path, keep_days: int) -> None:
        super().__init__()
        self.path = path
        self.keep_days = keep_days
        self.day = ""
        self.fd = -1
        self.day_span = (0.0, 0.0)  # [start, end) of self.day, to skip formatting dates per line
        self.pending: list[bytes] = []  # formatted lines not yet written (see flush)
        self.pending_bytes = 0

    def day_file(self, day: str) -> Path:
        return self.path.with_name(f"{self.path.name}.{day}")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            start, end = self.day_span
            if not start <= record.created < end:
                self.flush()  # what is pending belongs to the open day's file
                self._open(time.strftime("%Y-%m-%d", time.gmtime(record.created)))
            self.pending.append(data)
            self.pending_bytes += len(data)
            if self.pending_bytes >= self.BATCH_BYTES:
                self.flush()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Write the pending lines with one `write` (looped only if the kernel took part)."""
        self.acquire()
        try:
            if self.pending and self.fd >= 0:
                view = memoryview(b"".join(self.pending))
                self.pending.clear()
                self.pending_bytes = 0
                while view:
                    view = view[os.write(self.fd, view) :]
        finally:
            self.release()

    def _open(self, day: str) -> None:
        fd = os.open(
            self.day_file(day), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE
        )
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, previous, self.day = fd, self.day, day
        start = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
        self.day_span = (float(start), float(start + 86400))
        today = time.strftime("%Y-%m-%d", time.gmtime(time.time()))
        if day == today and day > previous:  # a late line of yesterday leaves the link alone
            self._link_today(day)
            self._delete_old(day)

    def _link_today(self, day: str) -> None:
        if self.path.exists() and not self.path.is_symlink():
            # A plain file left by a version that rotated by renaming: keep it under a dated name.
            # The pid in the name: two processes doing this at once never overwrite each other.
            stamp = time.strftime("%Y-%m-%d", time.gmtime(self.path.stat().st_mtime))
            kept = f"{self.path.name}.{stamp}.before-upgrade-{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                self.path.rename(self.path.with_name(kept))
        if self.path.is_symlink() and os.readlink(self.path) == self.day_file(day).name:
            return
        # Replace the link in one step (other processes may be doing the same at midnight).
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.link")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        temporary.symlink_to(self.day_file(day).name)
        os.replace(temporary, self.path)

    def _delete_old(self, day: str) -> None:
        first_kept = time.strftime(
            "%Y-%m-%d",
            time.gmtime(calendar.timegm(time.strptime(day, "%Y-%m-%d")) - self.keep_days * 86400),
        )
        for old in self.path.parent.glob(f"{self.path.name}.????-??-??*"):
            if old.name[len(self.path.name) + 1 :][:10] < first_kept:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()

    def close(self) -> None:
        self.flush()
        self.acquire()
        try:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd, self.day, self.day_span = -1, "", (0.0, 0.0)
        finally:
            self.release()
        super().close()


class _ClubstackQueueHandler(logging.handlers.QueueHandler):
    """The root handler setup_logging installs (and replaces when called again).

    The records stay in this process, so they go on the queue as they are: the filter has
    already rendered the message, and the writer thread formats it. (QueueHandler's own
    `prepare` formats and copies every record so that it could be pickled.)"""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


_configured: tuple[str, str] | None = None
_listener: _BatchingListener | None = None


@atexit.register
def _stop_listener() -> None:
    """Flush and close the writer thread (at exit, or before reconfiguring)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        for handler in _listener.handlers:
            handler.close()
        _listener = None


def flush_logs() -> None:
    """Write every record logged so far before returning (before a process exits or forks, and
    in tests that read the files)."""
    if _listener is not None:
        _listener.stop()  # drains the queue and joins the writer thread
        _listener.start()


def setup_logging(settings: Settings, name: str = "web") -> None:
    """Configure the root logger once per process: instance/logs/<name>.log (one file per UTC
    day, see DailyFileHandler), plus stderr (every line in development; warnings and errors only
    in production, where writing each access line twice cost a fifth of a small request's
    throughput).

    Request threads only put records on a queue; one listener thread does the writing, so a
    slow disk or a busy journal never holds up a response.
    """
    global _configured, _listener
    if _configured == (str(settings.instance), name):
        return
    _configured = (str(settings.instance), name)
    private_dir(settings.instance)  # a worker or a CLI command may be the first to run
    log_dir = private_dir(settings.instance / "logs")
    formatter: logging.Formatter = (
        _JsonFormatter()
        if settings.log_json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    file_handler = DailyFileHandler(log_dir / f"{name}.log", keep_days=settings.log_keep_days)
    stream_handler: logging.Handler = logging.StreamHandler(sys.stderr)
    if settings.env == "production":
        stream_handler.setLevel(logging.WARNING)
    for handler in (file_handler, stream_handler):
        handler.setFormatter(formatter)
    _stop_listener()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = _BatchingListener(records, file_handler, stream_handler)
    _listener.start()
    queue_handler = _ClubstackQueueHandler(records)
    queue_handler.addFilter(_ContextFilter())  # in the caller's thread: it knows the request
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _ClubstackQueueHandler):
            root.removeHandler(handler)
    root.addHandler(queue_handler)
    root.setLevel(settings.log_level.upper())
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("huey").setLevel(logging.WARNING)
