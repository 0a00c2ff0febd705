"""Running the app under gunicorn from `clubstack serve` (the same settings as deploy/)."""

from __future__ import annotations

import os
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
    }


def run_gunicorn(host: str, port: int, workers: int | None = None, threads: int = 4) -> None:
    _Gunicorn(gunicorn_options(host, port, workers, threads)).run()
