"""What a service package exposes to the app and the CLI; the core never imports a service."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import click
from flask import Blueprint

from clubstack.settings import ServiceSettings, service_settings


@dataclass(frozen=True)
class Service:
    name: str
    title: str
    summary: str
    blueprint: Callable[[], Blueprint] | None = None
    cli: click.Command | None = None  # a group, or one command (`clubstack lookup X`)
    settings: type[ServiceSettings] | None = None
    tasks: str | None = None  # module whose import registers the service's jobs
    nav: bool = True  # listed in the navigation bar
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        configured = service_settings(self.settings).prefix if self.settings else None
        prefix = f"/{self.name}" if configured is None else configured
        return prefix.rstrip("/")

    def load_tasks(self) -> None:
        if self.tasks:
            importlib.import_module(self.tasks)


def load_service(name: str) -> Service | None:
    """The service object of package clubstack.<name>, or None if it is not built yet."""
    try:
        module = importlib.import_module(f"clubstack.{name}")
    except ModuleNotFoundError as error:
        if error.name == f"clubstack.{name}":
            return None
        raise
    service = getattr(module, "service", None)
    return service if isinstance(service, Service) else None
