"""lookup: the security look-up desk for SOC analysts (one indicator or a pasted thousand)."""

from __future__ import annotations

from flask import Blueprint

from clubstack.core.service import Service
from clubstack.lookup.cli import lookup_command
from clubstack.lookup.settings import LookupSettings


def _blueprint() -> Blueprint:
    from clubstack.lookup import api  # noqa: F401 - registers the API routes on bp
    from clubstack.lookup.views import bp

    return bp


service = Service(
    name="lookup",
    title="Look-up",
    summary="What the internet knows about a URL, domain, IP, e-mail address or hash.",
    blueprint=_blueprint,
    cli=lookup_command,
    settings=LookupSettings,
    tasks="clubstack.lookup.tasks",
)
