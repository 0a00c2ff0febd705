"""contest: a WhibOx-style submission server (C programs judged in a sandbox)."""

from __future__ import annotations

from functools import cache

from flask import Blueprint

from clubstack.contest.cli import contest_cli
from clubstack.contest.settings import ContestSettings
from clubstack.core.service import Service


@cache  # a blueprint takes no more routes once an app has it; tests make many apps
def _blueprint() -> Blueprint:
    from clubstack.contest import api, desk_views
    from clubstack.contest.views import bp

    api.routes.add_to(bp)  # the JSON API
    desk_views.routes.add_to(bp)  # the organiser's desk and the questions pages
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
