"""Shared helpers of the billing tests."""

from __future__ import annotations

from typing import Any

from clubstack.core.accounts.models import User


def make_user(session: Any, email: str, nickname: str | None = None) -> int:
    user = User(email=email, nickname=nickname)
    session.add(user)
    session.commit()
    return user.id
