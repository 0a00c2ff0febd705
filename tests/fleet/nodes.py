"""A clubstack fleet on one machine: each "node" is its own processes, instance folder and
settings, started the way docs/operations.md ("Node settings") tells an operator to start it.

Plain Python, so tests/fleet and bench/fleet.py share it:

    with Fleet(folder, database_url, redis_url) as fleet:
        a, b = fleet.start_web_node("web-a"), fleet.start_web_node("web-b")
        fleet.start_nginx([a, b])          # deploy/nginx/clubstack.conf, upstream a + b
        worker = fleet.start_worker("worker")
        sandbox = fleet.start_sandbox_node("sandbox")
        http = fleet.session()             # requests.Session for fleet.base_url (TLS)
        fleet.kill(worker); fleet.restart(worker)

- web node: gunicorn with deploy/gunicorn.conf.py (what the systemd unit runs, and the
  options `clubstack serve` uses), CLUBSTACK_BIND on its own port;
- nginx: the project's site file rendered by tests/deploy/stack.py, one `server` line per web
  node in the upstream block;
- site worker: `clubstack worker`;
- sandbox node: `clubstack contest worker` with only an instance folder and the job store's
  address (no database URL, no secret key), as root like its systemd unit (every run drops to
  uid 65534 inside its own cgroup); ``user=SANDBOX_USER`` runs it as another Unix user, which
  cannot judge here (see start_sandbox_node).

Every node runs in a session (process group) of its own, so ``kill`` takes the whole node
down at once with SIGKILL, as a machine that loses power would: no graceful shutdown.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import requests

from tests.deploy.stack import (
    GUNICORN_CONF,
    ROOT,
    free_port,
    make_certificate,
    render_site,
    start_nginx,
    wait_for_port,
)

SANDBOX_USER = "clubstack-sandbox"
SRC = ROOT / "src"


@dataclass
class Node:
    """One node: how to start it, and its current process (None when stopped)."""

    name: str
    kind: str  # "web", "nginx", "worker" or "sandbox"
    argv: list[str]
    env: dict[str, str]
    folder: Path
    ready: str  # words in its log that say it is ready (for nodes without a port)
    port: int | None = None
    user: str | None = None
    process: subprocess.Popen | None = None
    starts: int = 0
    extra_ports: list[int] = field(default_factory=list)

    @property
    def instance(self) -> Path:
        return Path(self.env["CLUBSTACK_INSTANCE"])

    @property
    def log(self) -> Path:
        return self.folder / f"{self.name}.log"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def ready_log(self) -> Path:
        """Where ``ready`` appears: a production worker logs info lines only to its file."""
        return self.instance / "logs" / "worker.log" if self.kind == "worker" else self.log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _first_closed_folder(path: Path, user: str) -> Path | None:
    """The first folder on the way to ``path`` that ``user`` may not search, if any."""
    entry = pwd.getpwnam(user)
    for folder in [*reversed(path.parents)]:
        info = folder.stat()
        if info.st_uid != entry.pw_uid and not info.st_mode & stat.S_IXOTH:
            return folder
    return None


def ensure_user(name: str) -> str | None:
    """The system user a node runs as; made if missing. None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", name],
            check=True, capture_output=True,
        )  # fmt: skip
    return name


def command_as(user: str | None, home: Path) -> list[str]:
    """The words before ``python -m clubstack ...`` that run it as ``user``, or [].

    The venv's interpreter may live where another user cannot go (a pyenv build under /root,
    0700). Changing /root's mode would change this machine for everyone, so the node gets a
    private mount namespace instead, in which that folder is an empty tmpfs holding only the
    interpreter's tree (bound back in, read-only): the node's user can run Python and still
    sees nothing else of root's home. Then setpriv drops to the user (no capabilities left)."""
    if user is None:
        return []
    drop = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups",
            "--inh-caps=-all", "--"]  # fmt: skip
    interpreter = Path(os.path.realpath(sys.executable))
    closed = _first_closed_folder(interpreter, user)
    if closed is None:
        return drop
    inner = closed / interpreter.relative_to(closed).parts[0]
    holder = home / "interpreter"
    holder.mkdir(exist_ok=True)
    script = (
        'set -e; mount --bind "$1" "$2"; mount -t tmpfs -o mode=0755,size=1m tmpfs "$3"; '
        'mkdir "$4"; mount --bind -o ro "$2" "$4"; shift 4; exec "$@"'
    )
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script,
            "sh", str(inner), str(holder), str(closed), str(inner), *drop]  # fmt: skip


class Fleet:
    """Nodes on this machine sharing one PostgreSQL database and one Redis; a context manager
    that stops every node (and removes the folders made for other users) on exit."""

    def __init__(
        self,
        folder: Path,
        database_url: str,
        redis_url: str,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.folder = folder
        self.database_url = database_url
        self.redis_url = redis_url
        self.settings = dict(settings or {})  # extra CLUBSTACK_* for web nodes and workers
        self.secret_key = "fleet-" + secrets.token_urlsafe(40)
        self.https_port, self.http_port = free_port(), free_port()
        self.nodes: list[Node] = []
        self._own_dirs: list[Path] = []
        self.cert, self.key = make_certificate(folder)
        self._migrated = False

    # -- settings -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @staticmethod
    def _clean_environment() -> dict[str, str]:
        """The test's environment without any CLUBSTACK_* (each node gets only its own)."""
        return {k: v for k, v in os.environ.items() if not k.startswith("CLUBSTACK_")}

    def site_env(self, instance: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """What a web node and a site worker need: the database, Redis, the secret key."""
        env = self._clean_environment()
        env.update(
            PYTHONPATH=str(SRC),
            CLUBSTACK_ENV="production",
            CLUBSTACK_INSTANCE=str(instance),
            CLUBSTACK_SECRET_KEY=self.secret_key,
            CLUBSTACK_DATABASE_URL=self.database_url,
            CLUBSTACK_REDIS_URL=self.redis_url,
            CLUBSTACK_BASE_URL=self.base_url,
            CLUBSTACK_PROXY_FIX="1",
        )
        env.update(self.settings)
        env.update(extra or {})
        return env

    def _instance(self, name: str) -> Path:
        instance = self.folder / name / "instance"
        instance.mkdir(parents=True, exist_ok=True)
        return instance

    def migrate(self) -> None:
        """`clubstack db upgrade` once for the shared database (the web unit runs it too)."""
        if self._migrated:
            return
        env = self.site_env(self._instance("migrate"))
        subprocess.run(
            [sys.executable, "-m", "clubstack", "db", "upgrade"],
            env=env, check=True, capture_output=True, timeout=180,
        )  # fmt: skip
        self._migrated = True

    # -- nodes ----------------------------------------------------------------------------------

    def start_web_node(
        self,
        name: str,
        settings: Mapping[str, str] | None = None,
        workers: int = 1,
        threads: int = 4,
    ) -> Node:
        """gunicorn with deploy/gunicorn.conf.py on a port of its own."""
        self.migrate()
        port = free_port()
        env = self.site_env(self._instance(name), settings)
        env.update(
            CLUBSTACK_BIND=f"127.0.0.1:{port}",
            CLUBSTACK_WEB_WORKERS=str(workers),
            CLUBSTACK_WEB_THREADS=str(threads),
        )
        argv = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)]
        node = Node(name, "web", argv, env, self.folder / name, ready="", port=port)
        return self._start(node)

    def start_nginx(self, upstreams: Sequence[Node], name: str = "nginx") -> Node:
        """The project's nginx site in front of ``upstreams`` (web nodes), TLS on base_url."""
        assert upstreams and all(n.kind == "web" and n.port for n in upstreams)
        folder = self.folder / name
        folder.mkdir(parents=True, exist_ok=True)
        limits = folder / "clubstack-limits.conf"
        snippet = subprocess.run(
            [sys.executable, "-m", "clubstack", "deploy", "nginx-limits"],
            env=upstreams[0].env, check=True, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        limits.write_text(snippet.stdout)
        ports = [n.port for n in upstreams if n.port is not None]
        (folder / "site.conf").write_text(
            render_site(self.https_port, self.http_port, ports, self.cert, self.key, limits)
        )
        node = Node(name, "nginx", [], {}, folder, ready="", port=self.https_port)
        node.extra_ports = [self.http_port]
        return self._start(node)

    def start_worker(
        self, name: str = "worker", settings: Mapping[str, str] | None = None, periodic: bool = True
    ) -> Node:
        """`clubstack worker`: the site's jobs (and periodic jobs unless periodic=False)."""
        self.migrate()
        argv = [sys.executable, "-m", "clubstack", "worker"]
        if not periodic:
            argv.append("--no-periodic")
        env = self.site_env(self._instance(name), settings)
        node = Node(name, "worker", argv, env, self.folder / name, ready="worker started")
        return self._start(node)

    def start_sandbox_node(
        self,
        name: str = "sandbox",
        settings: Mapping[str, str] | None = None,
        slots: int = 1,
        user: str | None = None,
    ) -> Node:
        """`clubstack contest worker` with only the job store's address.

        Its settings hold no database URL and no secret key. It runs as root by default, as
        deploy/systemd/clubstack-sandbox.service does: each run gets its own cgroup and drops
        to uid 65534 itself. As another ``user`` (say SANDBOX_USER; made if missing) there
        are no cgroups, and RLIMIT_NPROC, counted per uid, then counts the worker's own
        threads too, so bubblewrap fails to clone ("Resource temporarily unavailable").
        """
        runas = ensure_user(user) if user else None
        home = Path(tempfile.mkdtemp(prefix=f"clubstack-{name}-"))
        self._own_dirs.append(home)
        instance = home / "instance"
        instance.mkdir(mode=0o700)
        (home / "cache").mkdir(mode=0o700)
        if runas is not None:
            entry = pwd.getpwnam(runas)
            for folder in (home, instance, home / "cache"):
                os.chown(folder, entry.pw_uid, entry.pw_gid)
            home.chmod(0o700)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(home),
            "PYTHONPATH": str(SRC),
            "CLUBSTACK_INSTANCE": str(instance),
            "CLUBSTACK_REDIS_URL": self.redis_url,
            "CLUBSTACK_SANDBOX_CACHE": str(home / "cache"),
        }
        env.update(settings or {})
        forbidden = {"CLUBSTACK_DATABASE_URL", "CLUBSTACK_SECRET_KEY"} & set(env)
        assert not forbidden, f"a sandbox node must not have {sorted(forbidden)}"
        argv = [*command_as(runas, home), sys.executable, "-m", "clubstack", "contest", "worker",
                "--workers", str(slots)]  # fmt: skip
        node = Node(
            name, "sandbox", argv, env, self.folder / name, ready="contest sandbox worker:",
            user=runas,
        )  # fmt: skip
        return self._start(node)

    # -- life and death -------------------------------------------------------------------------

    def _start(self, node: Node, timeout: float = 60) -> Node:
        node.folder.mkdir(parents=True, exist_ok=True)
        if node not in self.nodes:
            self.nodes.append(node)
        node.starts += 1
        if node.kind == "nginx":
            node.process = start_nginx(node.folder)
        else:
            log = node.log.open("ab")
            log.write(f"--- start {node.starts} ---\n".encode())
            log.flush()
            node.process = subprocess.Popen(
                node.argv, env=node.env, stdout=log, stderr=subprocess.STDOUT,
                cwd=node.env.get("HOME", str(node.folder)) if node.user else node.folder,
                start_new_session=True,
            )  # fmt: skip
            log.close()
        if node.port is not None:
            wait_for_port(node.port, node.process, timeout)
            for port in node.extra_ports:
                wait_for_port(port, node.process, timeout)
        else:
            self.wait_for_log(node, node.ready, timeout, times=node.starts)
        return node

    def wait_for_log(self, node: Node, text: str, timeout: float = 60, times: int = 1) -> None:
        """Until ``text`` is in the node's ready log ``times`` times (once per start)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            path = node.ready_log
            if path.exists() and path.read_text(errors="replace").count(text) >= times:
                return
            if node.process is not None and node.process.poll() is not None:
                raise RuntimeError(
                    f"{node.name} exited with {node.process.returncode}:\n{node.log_text()}"
                )
            time.sleep(0.1)
        raise TimeoutError(f"{node.name} did not say {text!r} in {timeout}s:\n{node.log_text()}")

    def kill(self, node: Node, sig: int = signal.SIGKILL) -> None:
        """Take the whole node down at once (its process group); SIGKILL by default."""
        if node.process is None:
            return
        self._signal(node, sig)
        try:
            node.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._signal(node, signal.SIGKILL)
            node.process.wait()
        if node.kind == "nginx":
            if node.process.stderr is not None:
                node.process.stderr.close()
        else:
            # gunicorn's workers notice a dead master only at their next loop: nothing of
            # the node may outlive it.
            self._signal(node, signal.SIGKILL)

    @staticmethod
    def _signal(node: Node, sig: int) -> None:
        assert node.process is not None
        try:
            if node.kind == "nginx":  # nginx's master stops its own workers
                node.process.send_signal(sig)
            else:
                os.killpg(node.process.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, node: Node) -> None:
        """A graceful stop (SIGTERM), as systemctl stop does."""
        self.kill(node, signal.SIGTERM)

    def restart(self, node: Node, timeout: float = 60) -> Node:
        if node.alive:
            self.kill(node)
        return self._start(node, timeout)

    def session(self) -> requests.Session:
        """An HTTP client for base_url (nginx's TLS certificate trusted, no proxy)."""
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.cert)
        return session

    # -- the context manager --------------------------------------------------------------------

    def close(self) -> None:
        """Stop every node, each even if stopping another failed, then raise the first error."""
        errors: list[Exception] = []
        for node in reversed(self.nodes):
            try:
                self.stop(node)
            except Exception as error:  # the other nodes must stop too
                errors.append(error)
        for folder in self._own_dirs:
            shutil.rmtree(folder, ignore_errors=True)
        self._own_dirs.clear()
        if errors:
            raise errors[0]

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
