"""Magic-link login, address changes and server-side sessions. No Flask here."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clubstack.core.accounts.models import LoginLink, LoginSession, User
from clubstack.core.clock import utcnow
from clubstack.core.errors import ClubError, Conflict, Forbidden, InputError
from clubstack.core.validation import email_address

NICKNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,30}[A-Za-z0-9]$")
RESERVED_NICKNAMES = {"admin", "root", "system", "staff", "moderator", "clubstack", "anonymous"}


def hash_token(token: str) -> str:
    """Tokens are 256 random bits, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def normalise_email(raw: str) -> str:
    """An address as the accounts store it (see core.validation.email_address)."""
    return email_address(raw)


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
    """What to mail to `email`: a link with `token` (only ever in the mail, never stored), or,
    with token None, word that nothing can be done with this address (see the callers)."""

    token: str | None
    email: str
    new_account: bool


# The purpose of a link that is recorded but can never be used: invite-only login for an
# unknown address, an address change to an address another account has. Recording it costs
# the same as a real link, so the answer (and its timing) does not tell the two apart.
REFUSED = "refused"


def _record_link(
    session: Session, purpose: str, email: str, user: User | None, lifetime: timedelta
) -> str:
    token = new_token()
    session.add(
        LoginLink(
            token_hash=hash_token(token),
            purpose=purpose,
            email=email,
            user_id=user.id if user else None,
            expires_at=utcnow() + lifetime,
        )
    )
    session.commit()
    return token


def issue_login_link(
    session: Session, email: str, *, lifetime: timedelta, open_signup: bool
) -> IssuedLink:
    """A login link for `email`; with token None when the address may not log in (invite-only
    and unknown, or a closed account).

    Both cases do the same work (one look-up, one link row, one mail) and the caller answers
    the same way, so neither the page nor its timing reveals which addresses have accounts.
    """
    email = normalise_email(email)
    user = session.scalar(select(User).where(User.email == email))
    may_log_in = open_signup if user is None else not user.is_closed
    token = _record_link(session, "login" if may_log_in else REFUSED, email, user, lifetime)
    return IssuedLink(token=token if may_log_in else None, email=email, new_account=user is None)


def issue_email_change_link(
    session: Session, user: User, new_email: str, *, lifetime: timedelta
) -> IssuedLink:
    """A link to confirm `new_email` as the address of `user`; with token None when another
    account has that address (the caller answers the same way, and the mail to the address
    says someone tried to use it: the form does not reveal who has an account)."""
    new_email = normalise_email(new_email)
    if new_email.lower() == user.email.lower():
        raise InputError(fields={"email": "That is already your address."})
    taken = session.scalar(select(User.id).where(User.email == new_email)) is not None
    token = _record_link(session, REFUSED if taken else "change_email", new_email, user, lifetime)
    return IssuedLink(token=None if taken else token, email=new_email, new_account=False)


def peek_link(session: Session, token: str, purpose: str) -> LoginLink | None:
    """The link if it is still usable for `purpose` (for the confirmation pages); consumes
    nothing. A refused link is never usable."""
    link = session.scalar(
        select(LoginLink).where(
            LoginLink.token_hash == hash_token(token), LoginLink.purpose == purpose
        )
    )
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
    elif user.is_closed:
        return None
    user.last_login_at = utcnow()
    session.commit()
    return user


class LinkNotValid(ClubError):
    status = 410
    code = "link_not_valid"
    message = "That link is not valid any more; ask for a new one."


class NotYourLink(Forbidden):
    code = "not_your_link"
    message = (
        "This link changes the address of another account, not of the one you are logged in "
        "with. Nothing was changed. Log in with the account that asked for it to use it."
    )


def confirm_email_change(session: Session, token: str, user: User) -> User:
    """Make the link's address the address of `user`, who must be the account that asked.

    The link is used up in the same transaction as the change, and only after every check:
    a refused confirmation changes nothing and leaves the link to its owner.
    """
    link = peek_link(session, token, "change_email") if token else None
    if link is None or link.user_id is None:
        raise LinkNotValid()
    if link.user_id != user.id:
        raise NotYourLink()
    now = utcnow()
    claimed = session.execute(
        update(LoginLink)
        .where(
            LoginLink.id == link.id,
            LoginLink.user_id == user.id,
            LoginLink.used_at.is_(None),
            LoginLink.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise LinkNotValid()  # a concurrent click used it first
    if session.scalar(select(User.id).where(User.email == link.email)) is not None:
        session.rollback()
        raise Conflict("That address now belongs to another account; nothing was changed.")
    user.email = link.email
    try:
        session.commit()
    except IntegrityError:  # another account took the address in the meantime
        session.rollback()
        raise Conflict(
            "That address now belongs to another account; nothing was changed."
        ) from None
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
