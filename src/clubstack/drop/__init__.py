"""drop: leave a message at an unguessable URL (REST API and page; Redis or SQL store)."""

from __future__ import annotations

from functools import cache

from flask import Blueprint

from clubstack.core.service import Service
from clubstack.drop.cli import cli
from clubstack.drop.settings import DropSettings


@cache  # a blueprint takes no more routes once an app has it; tests make many apps
def _blueprint() -> Blueprint:
    from clubstack.drop import api
    from clubstack.drop.views import bp

    api.routes.add_to(bp)
    return bp


service = Service(
    name="drop",
    title="Drop",
    summary="Leave a message at an unguessable URL, optionally encrypted in your browser "
    "and burnt after reading.",
    blueprint=_blueprint,
    cli=cli,
    settings=DropSettings,
    tasks="clubstack.drop.tasks",
)
