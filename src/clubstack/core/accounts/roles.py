"""Who is an administrator: the one place roles change, with the rule that keeps a site
from locking itself out."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clubstack.core.accounts.models import User
from clubstack.core.errors import Conflict, InputError, NotFound

ROLES = ("member", "admin")


def set_role(session: Session, user_id: int, role: str) -> User:
    """Make user USER_ID a member or an administrator. The last administrator stays one, and
    a closed (deleted) account keeps its tombstone role. Flushes; the caller commits."""
    if role not in ROLES:
        raise InputError(fields={"role": "Choose member or admin."})
    user = session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound("No such user.")
    if user.is_closed:
        raise Conflict("That account was deleted; its role cannot change.")
    if user.role == "admin" and role != "admin":
        admins = session.scalar(select(func.count(User.id)).where(User.role == "admin")) or 0
        if admins <= 1:
            raise Conflict("This is the last administrator; make someone else one first.")
    user.role = role
    session.flush()
    return user
