"""lookup: the security look-up desk for SOC analysts (one indicator or a pasted thousand)."""

from __future__ import annotations

from functools import cache

from flask import Blueprint
from sqlalchemy.orm import Session

from clubstack.core.accounts.models import User
from clubstack.core.service import AccountClosing, Service
from clubstack.lookup.cli import lookup_command
from clubstack.lookup.settings import LookupSettings


@cache  # a blueprint takes no more routes once an app has it; tests make many apps
def _blueprint() -> Blueprint:
    from clubstack.lookup import api
    from clubstack.lookup.views import bp

    api.routes.add_to(bp)
    return bp


def _forget(session: Session, user: User) -> None:
    from clubstack.lookup.batches import forget_member

    forget_member(session, user)


service = Service(
    name="lookup",
    title="Look-up",
    summary="What the internet knows about a URL, domain, IP, e-mail address or hash.",
    blueprint=_blueprint,
    cli=lookup_command,
    settings=LookupSettings,
    tasks="clubstack.lookup.tasks",
    account_closing=AccountClosing(forget=_forget),
)
