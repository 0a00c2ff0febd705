"""Magic-link login, address changes and server-side sessions. No Flask here."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from clubstack.core.accounts.models import ApiToken, LoginLink, LoginSession, User
from clubstack.core.clock import utcnow
from clubstack.core.errors import Conflict, InputError

EMAIL_RE = re.compile(
    r"^[^@\s<>\"'(),;:\\\[\]]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$"
)
NICKNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,30}[A-Za-z0-9]$")
RESERVED_NICKNAMES = {"admin", "root", "system", "staff", "moderator", "clubstack", "anonymous"}


def hash_token(token: str) -> str:
    """Tokens are 256 random bits, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def normalise_email(raw: str) -> str:
    email = raw.strip()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise InputError(fields={"email": "Enter a valid e-mail address."})
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


def check_nickname(raw: str) -> str:
    nickname = raw.strip()
    if not NICKNAME_RE.match(nickname):
        raise InputError(
            fields={
                "nickname": "3-32 letters, digits, '.', '_' or '-', starting and ending "
                "with a letter or digit."
            }
        )
    if nickname.lower() in RESERVED_NICKNAMES:
        raise InputError(fields={"nickname": "That nickname is reserved."})
    return nickname


@dataclass(frozen=True)
class IssuedLink:
    token: str  # only ever in the mail, never stored
    email: str
    new_account: bool


def issue_login_link(
    session: Session, email: str, *, lifetime: timedelta, open_signup: bool
) -> IssuedLink | None:
    """Create a login link for `email`, or None when invite-only and the address is unknown.

    The caller answers the same way in both cases, so the page reveals nothing about accounts.
    """
    email = normalise_email(email)
    user = session.scalar(select(User).where(User.email == email))
    if user is None and not open_signup:
        return None
    token = new_token()
    session.add(
        LoginLink(
            token_hash=hash_token(token),
            purpose="login",
            email=email,
            user_id=user.id if user else None,
            expires_at=utcnow() + lifetime,
        )
    )
    session.commit()
    return IssuedLink(token=token, email=email, new_account=user is None)


def issue_email_change_link(
    session: Session, user: User, new_email: str, *, lifetime: timedelta
) -> IssuedLink:
    new_email = normalise_email(new_email)
    if session.scalar(select(User.id).where(User.email == new_email)) is not None:
        raise Conflict("That address belongs to another account.")
    token = new_token()
    session.add(
        LoginLink(
            token_hash=hash_token(token),
            purpose="change_email",
            email=new_email,
            user_id=user.id,
            expires_at=utcnow() + lifetime,
        )
    )
    session.commit()
    return IssuedLink(token=token, email=new_email, new_account=False)


def peek_link(session: Session, token: str) -> LoginLink | None:
    """The link if it is still usable (for the confirmation page); consumes nothing."""
    link = session.scalar(select(LoginLink).where(LoginLink.token_hash == hash_token(token)))
    if link is None or link.used_at is not None or link.expires_at <= utcnow():
        return None
    return link


def consume_link(session: Session, token: str, purpose: str) -> LoginLink | None:
    """Use up a link atomically: of two concurrent clicks exactly one gets the link."""
    now = utcnow()
    token_hash = hash_token(token)
    result = session.execute(
        update(LoginLink)
        .where(
            LoginLink.token_hash == token_hash,
            LoginLink.purpose == purpose,
            LoginLink.used_at.is_(None),
            LoginLink.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.scalar(select(LoginLink).where(LoginLink.token_hash == token_hash))


def login_with_link(session: Session, token: str) -> User | None:
    """Consume a login link and return its user, creating the account on first login."""
    link = consume_link(session, token, "login")
    if link is None:
        return None
    user = session.scalar(select(User).where(User.email == link.email))
    if user is None:
        user = User(email=link.email)
        session.add(user)
    user.last_login_at = utcnow()
    session.commit()
    return user


def confirm_email_change(session: Session, token: str) -> User | None:
    link = consume_link(session, token, "change_email")
    if link is None or link.user_id is None:
        return None
    user = session.get(User, link.user_id)
    if user is None:
        return None
    if session.scalar(select(User.id).where(User.email == link.email)) is not None:
        raise Conflict("That address belongs to another account.")
    user.email = link.email
    session.commit()
    return user


def start_session(session: Session, user: User, *, lifetime: timedelta) -> str:
    """A new session id (the old one, if any, is simply not carried over: rotation)."""
    token = new_token()
    session.add(
        LoginSession(token_hash=hash_token(token), user_id=user.id, expires_at=utcnow() + lifetime)
    )
    session.commit()
    return token


def session_user(session: Session, token: str) -> User | None:
    row = session.scalar(
        select(LoginSession).where(
            LoginSession.token_hash == hash_token(token), LoginSession.expires_at > utcnow()
        )
    )
    return row.user if row else None


def end_session(session: Session, token: str) -> None:
    session.execute(delete(LoginSession).where(LoginSession.token_hash == hash_token(token)))
    session.commit()


def purge_expired(session: Session) -> int:
    """Remove expired links and sessions (a periodic job)."""
    now = utcnow()
    removed = session.execute(delete(LoginLink).where(LoginLink.expires_at <= now)).rowcount  # type: ignore[attr-defined]
    removed += session.execute(delete(LoginSession).where(LoginSession.expires_at <= now)).rowcount  # type: ignore[attr-defined]
    session.commit()
    return removed


def set_nickname(session: Session, user: User, raw: str) -> None:
    nickname = check_nickname(raw)
    taken = session.scalar(select(User.id).where(User.nickname == nickname, User.id != user.id))
    if taken is not None:
        raise InputError(fields={"nickname": "That nickname is taken."})
    user.nickname = nickname
    session.commit()


def delete_account(session: Session, user: User) -> None:
    session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    session.execute(delete(LoginLink).where(LoginLink.user_id == user.id))
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    session.delete(user)
    session.commit()
