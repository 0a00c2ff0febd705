"""What a service package exposes to the app and the CLI; the core never imports a service
(clubstack.services lists them and loads each package's `service`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click
from flask import Blueprint
from sqlalchemy.orm import Session

from clubstack.settings import ServiceSettings, service_settings

if TYPE_CHECKING:
    from clubstack.core.accounts.models import User

AccountStep = Callable[[Session, "User"], None]


@dataclass(frozen=True)
class AccountClosing:
    """What deleting an account means for one service (docs/operations.md, "Deleting an
    account"); core.accounts.closing runs the steps of every enabled service.

    `release` runs first, outside the deletion's transaction, for what lives outside the
    database (a capsul on a libvirt host). It commits its own progress and must be safe to
    repeat: when it raises, nothing of the account is deleted yet and the member tries again.
    `forget` runs inside the one transaction that closes the account: delete, detach or
    anonymise the service's rows of that user. It must not commit.
    """

    release: AccountStep | None = None
    forget: AccountStep | None = None


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
    account_closing: AccountClosing | None = None  # what deleting an account does here
    admin_endpoint: str | None = None  # the service's admin page, linked from /admin
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        configured = service_settings(self.settings).prefix if self.settings else None
        prefix = f"/{self.name}" if configured is None else configured
        return prefix.rstrip("/")

    def load_tasks(self) -> None:
        if self.tasks:
            importlib.import_module(self.tasks)
