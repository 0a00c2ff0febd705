"""contest: a WhibOx-style submission server (C programs judged in a sandbox)."""

from __future__ import annotations

from flask import Blueprint

from clubstack.contest.cli import contest_cli
from clubstack.contest.settings import ContestSettings
from clubstack.core.service import Service


def _blueprint() -> Blueprint:
    from clubstack.contest import api  # noqa: F401 - adds the /api/ routes to bp
    from clubstack.contest.views import bp

    return bp


service = Service(
    name="contest",
    title="Contest",
    summary="Submit white-box C programs, break others' challenges, climb the scoreboard.",
    blueprint=_blueprint,
    cli=contest_cli,
    settings=ContestSettings,
    tasks="clubstack.contest.tasks",
)
