"""API tokens: shown once, stored as a hash, revocable, sent as `Authorization: Bearer`."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from clubstack.core.accounts.login import hash_token, new_token
from clubstack.core.accounts.models import ApiToken, User
from clubstack.core.clock import utcnow
from clubstack.core.errors import InputError

TOKEN_PREFIX = "cs_"  # noqa: S105 - a public marker, not a secret


def create_token(session: Session, user: User, name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise InputError(fields={"name": "Give the token a name of 1-64 characters."})
    token = TOKEN_PREFIX + new_token()
    session.add(ApiToken(user_id=user.id, name=name, token_hash=hash_token(token), hint=token[:10]))
    session.commit()
    return token


def token_user(session: Session, token: str) -> User | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None:
        return None
    now = utcnow()
    # Writing on every call would make each API request a write; minute precision is plenty.
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        row.last_used_at = now
        session.commit()
    return row.user


def revoke_token(session: Session, user: User, token_id: int) -> bool:
    result = session.execute(
        delete(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id)
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(
        session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
    )
