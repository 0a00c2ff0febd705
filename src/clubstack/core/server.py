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
        "max_requests": 10000,
        "max_requests_jitter": 500,
        "accesslog": None,  # the app logs one line per request itself
        "errorlog": "-",
        "proc_name": "clubstack",
        "preload_app": False,
    }


def run_gunicorn(host: str, port: int, workers: int | None = None, threads: int = 4) -> None:
    _Gunicorn(gunicorn_options(host, port, workers, threads)).run()
