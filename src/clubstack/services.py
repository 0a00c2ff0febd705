"""The one list of services: each name and the package that holds it.

Everything that enumerates services reads it: the settings (which names CLUBSTACK_SERVICES
accepts, and the default), the app (whose blueprints to mount), the CLI (whose command groups
exist), the worker (whose jobs to load), the migrations (whose tables exist) and the
configuration table. Adding a service is one line here and its package.

It lives beside app.py, outside core, because it names the services, and the core imports no
service: core functions that need services take them as arguments (`close_account`,
`settings_table`), or read the Service objects the app put in `app.extensions`. Importing this
module imports no service; `load` imports one package when asked, so `clubstack --help` stays fast
and a broken service cannot stop the core commands.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import MetaData

    from clubstack.core.service import Service
    from clubstack.settings import Settings

# name -> package; the order is the navigation bar's and the configuration table's.
REGISTRY: dict[str, str] = {
    "compute": "clubstack.compute",
    "billing": "clubstack.billing",
    "contest": "clubstack.contest",
    "lookup": "clubstack.lookup",
    "blog": "clubstack.blog",
    "drop": "clubstack.drop",
}


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def load(name: str) -> Service | None:
    """The `service` object of the named service's package; None when its package is absent
    (a slimmed-down install) or exposes no service yet."""
    from clubstack.core.service import Service

    package = REGISTRY[name]
    try:
        module = importlib.import_module(package)
    except ModuleNotFoundError as error:
        if error.name == package:
            return None
        raise
    service = getattr(module, "service", None)
    return service if isinstance(service, Service) else None


def available() -> list[Service]:
    """Every service whose package is installed, enabled or not."""
    return [s for s in (load(name) for name in REGISTRY) if s is not None]


def enabled(settings: Settings) -> list[Service]:
    """The services CLUBSTACK_SERVICES switches on, in its order."""
    return [s for s in (load(name) for name in settings.services) if s is not None]


def all_metadata() -> MetaData:
    """The table metadata of the core and of every service whose package exists (what the
    migrations and the schema tests compare against)."""
    from clubstack.core.db import Base

    importlib.import_module("clubstack.core.accounts.models")
    importlib.import_module("clubstack.core.net")
    for package in REGISTRY.values():
        models = f"{package}.models"
        try:
            importlib.import_module(models)
        except ModuleNotFoundError as error:
            if error.name not in (package, models):
                raise
    return Base.metadata
