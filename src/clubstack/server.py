"""Running the app under gunicorn from `clubstack serve` (the same settings as deploy/)."""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from clubstack.app import create_app

        return create_app()


def say_where(server: Any) -> None:
    """gunicorn's when_ready hook: with a socket per worker its own "Listening at" line names
    no address, so name it here."""
    for address in server.cfg.bind:
        where = address if address.startswith("unix:") else f"http://{address}"
        server.log.info("clubstack is listening at %s", where)


def gunicorn_options(host: str, port: int, workers: int | None, threads: int) -> dict[str, Any]:
    return {
        "bind": f"{host}:{port}",
        "workers": workers or max(2, (os.cpu_count() or 1)),
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "timeout": 60,
        "graceful_timeout": 20,
        "keepalive": 5,
        # Each worker listens on its own SO_REUSEPORT socket, so the kernel spreads connections
        # over the workers. On one shared socket, the first worker to wake took every
        # connection of a burst, and kept-alive connections pinned the load on one core.
        "reuse_port": True,
        # A leak guard, set high: a worker takes ~2 s to boot the whole suite, and at 10,000
        # requests a loaded 2-worker server spent a fifth of its time with one worker booting.
        "max_requests": 200_000,
        "max_requests_jitter": 20_000,
        "accesslog": None,  # the app logs one line per request itself
        "errorlog": "-",
        "proc_name": "clubstack",
        "preload_app": False,
        # gunicorn's control socket sits at one path per user: a second server on the machine
        # (tests, a staging copy) would take it over. clubstack does not use it.
        "control_socket_disable": True,
        "when_ready": say_where,
    }


class AddressInUse(Exception):
    """Another program (or another clubstack) listens on the address already."""


def check_address_free(host: str, port: int) -> None:
    """Refuse an address someone already listens on, before gunicorn binds it.

    The workers bind with SO_REUSEPORT, which would let a second server share the port in
    silence; a plain bind here fails if any socket holds it, whatever its options."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise AddressInUse(f"cannot listen on {host}:{port}: {error.strerror}") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # SO_REUSEADDR still fails on a listening socket, but not on a just-closed one.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise AddressInUse(
                    f"{host}:{port} is in use by another program; stop it or pick another "
                    f"port (clubstack serve --port N, make run PORT=N)"
                ) from None
            raise AddressInUse(f"cannot listen on {host}:{port}: {error.strerror}") from None


def run_gunicorn(host: str, port: int, workers: int | None = None, threads: int = 4) -> None:
    _Gunicorn(gunicorn_options(host, port, workers, threads)).run()
