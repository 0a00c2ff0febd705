"""compute: capsuls, small virtual machines on libvirt/QEMU hosts, billed by the hour."""

from __future__ import annotations

from functools import cache

from flask import Blueprint
from sqlalchemy.orm import Session

from clubstack.compute.cli import compute_cli
from clubstack.compute.settings import ComputeSettings
from clubstack.core.accounts.models import User
from clubstack.core.service import AccountClosing, Service


@cache  # a blueprint takes no more routes once an app has it; tests make many apps
def _blueprint() -> Blueprint:
    from clubstack.compute import api
    from clubstack.compute.views import bp

    api.routes.add_to(bp)
    return bp


def _destroy_capsuls(session: Session, user: User) -> None:
    from clubstack.compute.closing import destroy_member_capsuls

    destroy_member_capsuls(session, user)


def _forget(session: Session, user: User) -> None:
    from clubstack.compute.closing import forget_member

    forget_member(session, user)


service = Service(
    name="compute",
    title="Capsuls",
    summary="Rent a small virtual machine, billed by the hour from your credit.",
    blueprint=_blueprint,
    cli=compute_cli,
    settings=ComputeSettings,
    tasks="clubstack.compute.tasks",
    account_closing=AccountClosing(release=_destroy_capsuls, forget=_forget),
    admin_endpoint="compute.admin",
)
