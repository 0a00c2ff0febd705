"""compute: capsuls, small virtual machines on libvirt/QEMU hosts, billed by the hour."""

from __future__ import annotations

from flask import Blueprint

from clubstack.compute.cli import compute_cli
from clubstack.compute.settings import ComputeSettings
from clubstack.core.service import Service


def _blueprint() -> Blueprint:
    from clubstack.compute.views import bp

    return bp


service = Service(
    name="compute",
    title="Capsuls",
    summary="Rent a small virtual machine, billed by the hour from your credit.",
    blueprint=_blueprint,
    cli=compute_cli,
    settings=ComputeSettings,
    tasks="clubstack.compute.tasks",
)
