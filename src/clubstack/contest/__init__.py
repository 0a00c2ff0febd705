"""contest: a WhibOx-style submission server (C programs judged in a sandbox)."""

from __future__ import annotations

from flask import Blueprint

from clubstack.contest.cli import contest_cli
from clubstack.contest.settings import ContestSettings
from clubstack.core.service import Service


def _blueprint() -> Blueprint:
    # each adds its routes to bp: the JSON API and the organiser's desk
    from clubstack.contest import api, desk_views  # noqa: F401
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
    admin_endpoint="contest.desk_index",
)
