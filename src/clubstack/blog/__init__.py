"""blog: a static blog generator (Markdown, Pygments, Jinja2, feeds, WordPress import) and
the comments service the generated pages embed.

The generator (content, render, build, feeds, wordpress, preview) needs no web app:
`python -m clubstack.blog build SRC OUT`. The comments service is the blueprint of views, with
the JSON API's routes from api. `service` is created on first access (PEP 562), so the
generator's command line does not pay for importing Flask and the settings machinery.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache  # a blueprint takes no more routes once an app has it; tests make many apps
def _blueprint() -> Any:
    from clubstack.blog import api
    from clubstack.blog.views import bp

    api.routes.add_to(bp)
    return bp


def _forget(session: Any, user: Any) -> None:
    from clubstack.blog.comments import anonymise_author

    anonymise_author(session, user.email)


def __getattr__(name: str) -> Any:
    if name != "service":
        raise AttributeError(name)
    from clubstack.blog.cli import blog as cli
    from clubstack.blog.settings import BlogSettings
    from clubstack.core.service import AccountClosing, Service

    service = Service(
        name="blog",
        title="Blog",
        summary="A static blog generator with WordPress import, and comments for its posts.",
        blueprint=_blueprint,
        cli=cli,
        settings=BlogSettings,
        tasks="clubstack.blog.tasks",
        account_closing=AccountClosing(forget=_forget),
        admin_endpoint="blog.admin_queue",
    )
    globals()["service"] = service
    return service
