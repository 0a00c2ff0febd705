"""drop: leave a message at an unguessable URL (REST API and page; Redis or SQL store)."""

from __future__ import annotations

from flask import Blueprint

from clubstack.core.service import Service
from clubstack.drop.cli import cli
from clubstack.drop.settings import DropSettings


def _blueprint() -> Blueprint:
    from clubstack.drop.views import make_blueprint

    return make_blueprint()


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
