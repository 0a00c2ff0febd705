"""A stand-in until the remote libvirt host fixture lands (branch remotehost): this
machine's own libvirtd, reached the local way. The merger replaces this file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def remote_libvirt_host(work_dir: Path) -> Iterator[str]:
    from clubstack.compute import tinyguest

    tinyguest.ensure_local_libvirtd()
    yield "qemu:///system"
