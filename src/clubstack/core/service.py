"""What a service package exposes to the app and the CLI; the core never imports a service
(clubstack.services lists them and loads each package's `service`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click
from flask import Blueprint
from sqlalchemy.orm import Session

from clubstack.settings import ServiceSettings, service_settings

if TYPE_CHECKING:
    from clubstack.core.accounts.models import User

AccountStep = Callable[[Session, "User"], None]
F = TypeVar("F", bound=Callable[..., Any])


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


class Routes:
    """Routes a module declares for a blueprint it does not own.

    A service's api.py (and the contest's desk) collect their routes here with the decorators
    a blueprint has; the service's __init__ adds them to the blueprint of views.py with
    `add_to`, once, before an app registers it. So the endpoints keep the service's name
    (`lookup.api_status`), and nothing is added by the mere import of a module.
    """

    def __init__(self) -> None:
        self._rules: list[tuple[str, Callable[..., Any], dict[str, Any]]] = []
        self._after: list[Callable[..., Any]] = []

    def route(self, rule: str, **options: Any) -> Callable[[F], F]:
        def decorate(view: F) -> F:
            self._rules.append((rule, view, options))
            return view

        return decorate

    def get(self, rule: str, **options: Any) -> Callable[[F], F]:
        return self.route(rule, methods=["GET"], **options)

    def post(self, rule: str, **options: Any) -> Callable[[F], F]:
        return self.route(rule, methods=["POST"], **options)

    def delete(self, rule: str, **options: Any) -> Callable[[F], F]:
        return self.route(rule, methods=["DELETE"], **options)

    def after_request(self, hook: F) -> F:
        self._after.append(hook)
        return hook

    def add_to(self, bp: Blueprint) -> None:
        for hook in self._after:
            bp.after_request(hook)
        for rule, view, options in self._rules:
            bp.add_url_rule(rule, view_func=view, **options)
