"""The interactive serial console: one-time tickets, the origin check, the relay, the audit.

A member opens a capsul's console from its page: a CSRF-protected POST issues a one-time
ticket (a random id, good for ``console_ticket_seconds``); the page opens a WebSocket with it.
The WebSocket is accepted only for a logged-in owner, from this site's origin, with an unused
fresh ticket of that member for that capsul; then :func:`relay` passes bytes both ways until
the member leaves, the guest stops or the time limit is reached. Each session is a row of
``compute_console_sessions`` and two log lines (who, which capsul, start and end, bytes);
what was typed or printed is never kept. No Flask here: the view adapts its WebSocket to
:class:`Peer`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from clubstack.compute.errors import ConsoleBusy, ConsoleRefused, ConsolesFull, WrongState
from clubstack.compute.models import ACTIVE, Capsul, ConsoleSession

log = logging.getLogger("clubstack.compute.console")

# What one WebSocket message from the member may carry (keystrokes or a pasted line).
MAX_INPUT = 4096


class PeerGone(Exception):
    """The member's end of the console went away."""


class Peer(Protocol):
    """The member's end: a WebSocket, as the view adapts it."""

    def receive(self, timeout: float) -> bytes | None: ...  # None: nothing yet; PeerGone

    def send(self, data: bytes) -> None: ...  # PeerGone


class Console(Protocol):
    """The guest's end: hypervisor.ConsoleStream."""

    def read(self, timeout: float = 0.0) -> bytes | None: ...  # None: the guest's end closed

    def write(self, data: bytes) -> None: ...


@dataclass(frozen=True)
class Outcome:
    bytes_in: int
    bytes_out: int
    reason: str  # left | guest-ended | time-limit | error


def issue_ticket(session: Session, capsul: Capsul, user_id: int) -> ConsoleSession:
    """A one-time ticket for the member's own running capsul."""
    if capsul.user_id != user_id:  # callers look the capsul up by owner; this is a backstop
        raise ConsoleRefused()
    if capsul.status != ACTIVE or capsul.state != "running":
        raise WrongState("Start the capsul to use its console.")
    ticket = ConsoleSession(capsul_id=capsul.id, user_id=user_id)
    session.add(ticket)
    session.flush()
    return ticket


def origin_allowed(origin: str | None, base_url: str, host: str) -> bool:
    """A browser's WebSocket carries the page's Origin: it must be this site's.

    This site is the configured base URL, or the host the request came to (what nginx
    passes on as Host), so a page of any other site cannot open a member's console.
    """
    if not origin or origin == "null":
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    base = urlsplit(base_url)
    if (parts.scheme, parts.netloc.lower()) == (base.scheme, base.netloc.lower()):
        return True
    return parts.netloc.lower() == host.lower()


def claim(
    session: Session,
    ticket: str,
    capsul_id: str,
    user_id: int,
    now: datetime,
    *,
    ticket_seconds: float,
    time_limit: float,
    max_open: int,
    max_per_member: int = 2,
) -> ConsoleSession:
    """Use a ticket: it must be this member's, for this capsul, fresh and unused.

    The ticket is marked used in one conditional UPDATE, so two connections racing with the
    same ticket get one console between them. Consoles open on the site (each holds a web
    server thread) and per member are capped; a row left open by a crashed worker stops
    counting once the time limit has passed.
    """
    if not ticket or len(ticket) > 64:
        raise ConsoleRefused()
    open_since = now - timedelta(seconds=time_limit + 60)
    open_by_user = dict(
        session.execute(
            select(ConsoleSession.user_id, func.count())
            .where(
                ConsoleSession.ended_at.is_(None),
                ConsoleSession.started_at.is_not(None),
                ConsoleSession.started_at > open_since,
            )
            .group_by(ConsoleSession.user_id)
        ).all()
    )
    if sum(open_by_user.values()) >= max_open:
        raise ConsolesFull()
    if open_by_user.get(user_id, 0) >= max_per_member:
        raise ConsoleBusy(f"You have {max_per_member} consoles open; close one first.")
    used = session.execute(
        update(ConsoleSession)
        .where(
            ConsoleSession.id == ticket,
            ConsoleSession.capsul_id == capsul_id,
            ConsoleSession.user_id == user_id,
            ConsoleSession.started_at.is_(None),
            ConsoleSession.issued_at >= now - timedelta(seconds=ticket_seconds),
        )
        .values(started_at=now)
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's CursorResult
        raise ConsoleRefused(
            "This console link was used already or expired; open the console "
            "again from the capsul's page."
        )
    row = session.get(ConsoleSession, ticket)
    assert row is not None
    session.refresh(row)
    log.info("console open: session=%s capsul=%s user=%s", row.id, capsul_id, user_id)
    return row


def relay(
    console: Console,
    peer: Peer,
    time_limit: float,
    clock: Callable[[], float] = time.monotonic,
    poll: float = 0.05,
) -> Outcome:
    """Pass the guest's output to the member and the member's keystrokes to the guest."""
    deadline = clock() + time_limit
    bytes_in = bytes_out = 0
    try:
        while True:
            if clock() >= deadline:
                return Outcome(bytes_in, bytes_out, "time-limit")
            out = console.read()
            if out is None:
                return Outcome(bytes_in, bytes_out, "guest-ended")
            if out:
                peer.send(out)
                bytes_out += len(out)
            data = peer.receive(timeout=poll)
            if data:
                data = data[:MAX_INPUT]
                console.write(data)
                bytes_in += len(data)
    except PeerGone:
        return Outcome(bytes_in, bytes_out, "left")


def finish(session: Session, row: ConsoleSession, outcome: Outcome, now: datetime) -> None:
    row.ended_at = now
    row.bytes_in, row.bytes_out, row.end_reason = (
        outcome.bytes_in,
        outcome.bytes_out,
        outcome.reason,
    )
    session.flush()
    started = row.started_at or now
    log.info(
        "console closed: session=%s capsul=%s user=%s seconds=%d bytes_in=%d "
        "bytes_out=%d reason=%s",
        row.id,
        row.capsul_id,
        row.user_id,
        (now - started).total_seconds(),
        outcome.bytes_in,
        outcome.bytes_out,
        outcome.reason,
    )
