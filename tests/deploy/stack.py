"""Run the deploy/ files for real: gunicorn with deploy/gunicorn.conf.py, nginx with
deploy/nginx/clubstack.conf rendered with test ports and paths, a throwaway certificate."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NGINX_SITE = DEPLOY / "nginx" / "clubstack.conf"
GUNICORN_CONF = DEPLOY / "gunicorn.conf.py"
STATIC = ROOT / "src" / "clubstack" / "static"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port} after {timeout}s")


def render_site(
    https_port: int,
    http_port: int,
    app_port: int | Sequence[int],
    cert: Path,
    key: Path,
    limits: Path,
) -> str:
    """The real site file with this machine's test values put in place of the production ones.

    ``app_port`` is one gunicorn's port, or several (an upstream of several web nodes, as
    docs/operations.md "Scaling out" tells an operator to list them).
    Every value must be found: if deploy/nginx/clubstack.conf changes shape, this fails loudly
    instead of testing something else."""
    ports = [app_port] if isinstance(app_port, int) else list(app_port)
    upstream = "\n    ".join(f"server 127.0.0.1:{port};" for port in ports)
    text = NGINX_SITE.read_text()
    replacements = {
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "/etc/ssl/clubstack/fullchain.pem": str(cert),
        "/etc/ssl/clubstack/privkey.pem": str(key),
        "/opt/clubstack/static/": f"{STATIC}/",
        "server 127.0.0.1:8000;": upstream,
        "/etc/nginx/snippets/clubstack-limits.conf": str(limits),
    }
    for old, new in replacements.items():
        assert old in text, f"{NGINX_SITE} no longer contains {old!r}"
        text = text.replace(old, new)
    return text


def make_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def start_nginx(folder: Path) -> subprocess.Popen:
    """nginx in the foreground with folder/site.conf as its only site, every path in folder.

    Checked with `nginx -t` first, so a refused config fails with nginx's own words."""
    assert NGINX is not None, "nginx is not installed (scripts/system-packages, role test)"
    main = folder / "nginx.conf"
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {folder}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main.write_text(
        f"{user}worker_processes 1;\npid {folder}/nginx.pid;\n"
        f"error_log {folder}/nginx-error.log warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n    include /etc/nginx/mime.types;\n"
        "    default_type application/octet-stream;\n"
        f"    access_log {folder}/nginx-access.log;\n{temp}\n"
        f"    include {folder}/site.conf;\n}}\n"
    )
    base = [NGINX, "-p", str(folder), "-e", str(folder / "nginx-error.log"), "-c", str(main)]
    check = subprocess.run([*base, "-t"], capture_output=True, text=True)
    assert check.returncode == 0, f"nginx -t refused the site config:\n{check.stderr}"
    return subprocess.Popen([*base, "-g", "daemon off;"], stderr=subprocess.PIPE)


class Stack:
    """gunicorn (deploy/gunicorn.conf.py) behind nginx (deploy/nginx/clubstack.conf)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.app_port, self.http_port, self.https_port = free_port(), free_port(), free_port()
        self.processes: list[subprocess.Popen] = []
        self.cert, self.key = make_certificate(folder)

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def app_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBSTACK_")}
        env.update(
            PYTHONPATH=str(ROOT / "src"),
            CLUBSTACK_INSTANCE=str(self.folder / "instance"),
            CLUBSTACK_SECRET_KEY="nginx-test-secret-" + "y" * 32,
            CLUBSTACK_BASE_URL=self.https,
            CLUBSTACK_PROXY_FIX="1",
            CLUBSTACK_BIND=f"127.0.0.1:{self.app_port}",
            CLUBSTACK_WEB_WORKERS="1",
            CLUBSTACK_WEB_THREADS="2",
        )
        return env

    def start(self) -> None:
        env = self.app_env()
        subprocess.run(
            [sys.executable, "-m", "clubstack", "db", "upgrade"],
            env=env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        log = (self.folder / "gunicorn.log").open("wb")
        gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder,
        )  # fmt: skip
        self.processes.append(gunicorn)
        wait_for_port(self.app_port, gunicorn)

        # The limits snippet, made from the app's settings as an operator makes it.
        self.limits = self.folder / "clubstack-limits.conf"
        snippet = subprocess.run(
            [sys.executable, "-m", "clubstack", "deploy", "nginx-limits"],
            env=env, check=True, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        self.limits.write_text(snippet.stdout)
        (self.folder / "site.conf").write_text(
            render_site(
                self.https_port, self.http_port, self.app_port, self.cert, self.key, self.limits
            )
        )
        nginx = start_nginx(self.folder)
        self.processes.append(nginx)
        wait_for_port(self.https_port, nginx)
        wait_for_port(self.http_port, nginx)

    def session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # never a proxy from the environment
        session.verify = str(self.cert)
        return session

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
