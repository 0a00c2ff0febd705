"""Throughput of the full clubstack stack vs a bare Flask app, both under gunicorn.

Both servers use clubstack.server.gunicorn_options (what `clubstack serve` uses), the same
worker and thread counts, and answer with the same bytes: the bare app replays the landing page
and /healthz body the full app produced. Load comes from loopback only, bounded in time:
`wrk` (keep-alive) if installed, else Python threads with keep-alive connections. Rounds
alternate between the two servers so a busy machine hurts both alike; the median counts.

    python bench/core.py [--seconds 4] [--rounds 3] [--connections 8] [--profile] [--json FILE]

CLUBSTACK_BENCH_SRC measures another checkout's src/ (bench/compare.py).

Target (issue #2): the full stack keeps >= 70% of the bare app's requests per second.
--profile also runs the full app in-process under cProfile and prints where the time goes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The code under test: this checkout's, or another's (bench/compare.py runs old and new alike).
SRC = Path(os.environ.get("CLUBSTACK_BENCH_SRC") or ROOT / "src")
sys.path.insert(0, str(SRC))

from procstat import server_cpu  # noqa: E402 - bench/, beside this script

TARGET = 0.70
PATHS = {"landing": "/", "healthz": "/healthz"}
WORKERS, THREADS = 2, 4  # `clubstack serve` defaults on this 2-core machine


# --- the two servers (run as `python bench/core.py --serve full|bare PORT BODIES`) -------------


def _bare_app(bodies: dict[str, Any]) -> Any:
    from flask import Flask, Response

    app = Flask("bare")
    landing = bodies["landing"].encode()
    health = bodies["healthz"].encode()

    @app.get("/")
    def landing_page() -> Response:
        return Response(landing, mimetype="text/html")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(health, mimetype="application/json")

    return app


def serve(kind: str, port: int, bodies_file: str) -> None:
    from gunicorn.app.base import BaseApplication

    try:
        from clubstack.server import gunicorn_options
    except ImportError:  # a checkout from before the move out of core (bench/compare.py)
        from clubstack.core.server import gunicorn_options  # type: ignore[no-redef]

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_options("127.0.0.1", port, WORKERS, THREADS).items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            if kind == "full":
                from clubstack.app import create_app

                return create_app()
            return _bare_app(json.loads(Path(bodies_file).read_text()))

    Server().run()


# --- load ------------------------------------------------------------------------------------


def _wait(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server on {port} exited with {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server on {port} did not answer in {timeout}s")


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def _load_wrk(port: int, path: str, seconds: float, connections: int) -> tuple[float, int, int]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*?(\d+) timeout", out)
    return rate, count, (int(bad.group(1)) if bad else 0) + (int(errors.group(1)) if errors else 0)


def _load_threads(port: int, path: str, seconds: float, connections: int) -> tuple[float, int, int]:
    counts = [0] * connections
    bad = [0] * connections
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            counts[i] += 1
            bad[i] += response.status != 200
            if response.will_close:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started), sum(counts), sum(bad)


# --- profile ---------------------------------------------------------------------------------


def _environ(path: str) -> dict[str, Any]:
    import io

    return {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000", "HTTP_ACCEPT": "*/*",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }  # fmt: skip


def _us_per_request(app: Any, path: str, n: int = 100, repeats: int = 25) -> float:
    """Best of `repeats` short runs of n WSGI calls: CPU microseconds per request (no server).

    CPU time of this process (all threads), not wall time: other work on a shared machine
    barely moves it."""

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        assert status.startswith("200"), status

    for _ in range(100):
        b"".join(app(_environ(path), start_response))
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(n):
            result = app(_environ(path), start_response)
            b"".join(result)
            getattr(result, "close", lambda: None)()
        best = min(best, (time.process_time() - started) / n * 1e6)
    return best


def _layers(env: dict[str, str], bodies: dict[str, str]) -> tuple[Any, Any, dict[str, Any]]:
    """The full app, the bare app, and a switch (context manager) that turns off each layer."""
    import contextlib
    import logging

    os.environ.update(env)
    logging.raiseExceptions = False
    from clubstack.app import create_app
    from clubstack.core import web
    from clubstack.core.web import limiter

    app = create_app()
    bare = _bare_app(bodies)
    # stderr is the journal in production; here it would flood the terminal.
    from clubstack.core import logs

    listener = getattr(logs, "_listener", None)
    handlers = [*logging.getLogger().handlers, *(listener.handlers if listener else ())]
    for handler in handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115

    def without_hook(funcs: list, name: str) -> Any:
        @contextlib.contextmanager
        def switched_off() -> Any:
            found = [f for f in funcs if getattr(f, "__name__", "") == name]
            assert found, name
            for f in found:
                funcs.remove(f)
            try:
                yield
            finally:
                funcs.extend(found)

        return switched_off

    @contextlib.contextmanager
    def no_limiter() -> Any:
        limiter.enabled = False
        try:
            yield
        finally:
            limiter.enabled = True

    @contextlib.contextmanager
    def no_logging() -> Any:
        logging.disable(logging.CRITICAL)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)

    @contextlib.contextmanager
    def no_access_log() -> Any:
        logging.getLogger("clubstack.access").disabled = True
        try:
            yield
        finally:
            logging.getLogger("clubstack.access").disabled = False

    before, after = app.before_request_funcs[None], app.after_request_funcs[None]
    landing_bytes, health_bytes = bodies["landing"].encode(), bodies["healthz"].encode()

    @contextlib.contextmanager
    def cached_views() -> Any:
        from flask import Response

        saved = dict(app.view_functions)
        app.view_functions["landing"] = lambda: Response(landing_bytes, mimetype="text/html")
        app.view_functions["healthz"] = lambda: Response(health_bytes, mimetype="application/json")
        try:
            yield
        finally:
            app.view_functions.update(saved)

    @contextlib.contextmanager
    def all_middleware_off() -> Any:
        with contextlib.ExitStack() as stack:
            for switch in list(layers.values())[:-1]:  # every layer but this combination
                stack.enter_context(switch())
            yield

    layers = {
        "rate limiter (Flask-Limiter, memory)": no_limiter,
        "access log line (both handlers)": no_access_log,
        "all logging": no_logging,
        "security headers (web._after)": without_hook(after, web._after.__name__),
        "request id (web._before)": without_hook(before, web._before.__name__),
        "CSRF check (GET: early return)": without_hook(before, "csrf_protect"),
        "DB session removal (teardown)": without_hook(
            app.teardown_appcontext_funcs, "_remove_session"
        ),
        "the view (template / DB query)": cached_views,
    }
    layers["everything above at once"] = all_middleware_off
    return app, bare, layers


def _count_instructions(bodies_file: str, requests: int) -> None:
    """Under callgrind: run each phase between two os.getppid() calls (the dump markers)."""
    bodies = json.loads(Path(bodies_file).read_text())
    app, bare, layers = _layers(dict(os.environ), bodies)
    phases: list[tuple[str, str, Any, Any]] = []
    for path in PATHS.values():
        phases.append((path, "bare", bare.wsgi_app, None))
        phases.append((path, "full", app.wsgi_app, None))
        phases += [(path, layer, app.wsgi_app, switch) for layer, switch in layers.items()]
    for _path, _label, wsgi, switch in phases:  # warm up: templates compiled, caches filled
        for path in PATHS.values():
            with switch() if switch else _nothing():
                for _ in range(20):
                    b"".join(wsgi(_environ(path), lambda *a: None))
    for path, _label, wsgi, switch in phases:
        with switch() if switch else _nothing():
            _settle()
            os.getppid()  # marker: callgrind dumps the counts of the phase before
            for _ in range(requests):
                b"".join(wsgi(_environ(path), lambda *a: None))
            _settle()  # the phase's log records written, its expiry timers fired
    os.getppid()
    print(json.dumps([[path, label] for path, label, _w, _s in phases]))


def _settle() -> None:
    """Let background threads finish this phase's work (the log writer, limits' expiry
    timers), so callgrind counts it in this phase and not in the next one."""
    from clubstack.core import logs

    listener = getattr(logs, "_listener", None)
    deadline = time.monotonic() + 30
    while listener is not None and not listener.queue.empty() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)


class _nothing:  # noqa: N801 - used like contextlib.nullcontext, kept tiny for the child
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def instruction_profile(env: dict[str, str], bodies_file: Path, requests: int = 40) -> bool:
    """Instructions per request of each layer, counted by valgrind's callgrind: the same
    numbers on a busy machine as on an idle one. False if valgrind is not installed."""
    if shutil.which("valgrind") is None:
        return False
    out = bodies_file.parent / "callgrind"
    out.mkdir(exist_ok=True)
    print(f"\ncounting instructions under valgrind ({requests} requests per phase; a few minutes)")
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.out",
         "--dump-before=getppid", "--collect-systime=no",
         sys.executable, __file__, "--count-child", str(bodies_file), str(requests)],
        env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if result.returncode != 0:
        print(result.stderr[-3000:])
        return False
    phases = json.loads(result.stdout.strip().splitlines()[-1])
    dumps = sorted(out.glob("cg.out.*"), key=lambda p: int(p.suffix[1:]))
    counts = []
    for dump in dumps[-len(phases) :]:  # the last dumps are ours: one per phase, in order
        match = re.search(r"^summary:\s+(\d+)", dump.read_text(), re.MULTILINE)
        counts.append(int(match.group(1)) / requests if match else float("nan"))
    table: dict[str, dict[str, float]] = {}
    for (path, label), count in zip(phases, counts, strict=True):
        table.setdefault(path, {})[label] = count
    for path, row in table.items():
        full, bare = row.pop("full"), row.pop("bare")
        print(f"\n== {path}: instructions per request (callgrind, in-process, no server)")
        print(f"   bare Flask app, same bytes           {bare / 1e3:8.0f} k")
        print(f"   full clubstack stack                 {full / 1e3:8.0f} k  (x{full / bare:.1f})")
        for layer, without in row.items():
            saved = full - without
            print(f"   - {layer:<35} {saved / 1e3:6.0f} k ({saved / full:4.0%})")
    print(
        "\n   note: limits' memory storage starts a threading.Timer for expiry whenever none is"
        "\n   alive (every ~10 ms under load); valgrind's slowness makes that one per request,"
        "\n   so the limiter's count above is an upper bound. Time shares under real load: the"
        "\n   gunicorn table and `server CPU per request` above."
    )
    return True


def profile(env: dict[str, str], bodies: dict[str, str], bodies_file: Path) -> None:
    """Where the full stack's time goes: the app called in-process (no server, no network),
    once as it is and once with each layer switched off, against the bare app; then the
    hottest functions under cProfile."""
    import cProfile
    import pstats

    if not instruction_profile(env, bodies_file):
        _time_profile(env, bodies)
    app = _layers(env, bodies)[0]
    for path in PATHS.values():
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(1000):
            b"".join(app.wsgi_app(_environ(path), lambda *a: None))
        profiler.disable()
        print(f"\n   cProfile of 1000 requests to {path}, by own time:")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(15)


def _time_profile(env: dict[str, str], bodies: dict[str, str]) -> None:
    app, bare, layers = _layers(env, bodies)
    for path in PATHS.values():
        baseline = _us_per_request(bare.wsgi_app, path)
        fulls, savings = [], {}
        for layer, switch in layers.items():  # interleaved: a noisy moment hits both sides
            full = _us_per_request(app.wsgi_app, path)
            with switch():
                without = _us_per_request(app.wsgi_app, path)
            fulls.append(full)
            savings[layer] = full - without
        full = min(fulls)
        print(f"\n== {path}: in-process CPU per request (best of 25 x 100 calls)")
        print(f"   bare Flask app, same bytes           {baseline:8.0f} µs")
        print(f"   full clubstack stack                 {full:8.0f} µs  (+{full - baseline:.0f})")
        for layer, saved in savings.items():
            print(f"   - {layer:<35} {saved:6.0f} µs ({saved / full:4.0%})")


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", metavar="FILE", help="Also write the medians to FILE as JSON.")
    parser.add_argument("--count-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument(
        "--serve", nargs=3, metavar=("KIND", "PORT", "BODIES"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2])
        return 0
    if args.count_child:
        _count_instructions(args.count_child[0], int(args.count_child[1]))
        return 0

    folder = Path(tempfile.mkdtemp(prefix="clubstack-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBSTACK_")}
    env.update(
        PYTHONPATH=str(SRC),
        CLUBSTACK_INSTANCE=str(folder / "instance"),
        CLUBSTACK_SECRET_KEY="bench-secret-" + "z" * 40,
        # The limiter runs on every request, but must not turn the load into 429s.
        CLUBSTACK_DEFAULT_RATE="100000000/minute",
    )
    from clubstack.core.migrate import upgrade

    (folder / "instance").mkdir()
    upgrade(f"sqlite:///{folder / 'instance' / 'clubstack.db'}")
    bodies_file = folder / "bodies.json"
    processes: dict[str, subprocess.Popen] = {}
    bodies: dict[str, str] = {}
    ports: dict[str, int] = {}

    def start(kind: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports[kind] = sock.getsockname()[1]
        log = (folder / f"{kind}.log").open("wb")
        processes[kind] = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, str(ports[kind]), str(bodies_file)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        _wait(ports[kind], processes[kind])

    load = _load_wrk if shutil.which("wrk") else _load_threads
    tool = "wrk" if load is _load_wrk else "python threads"
    try:
        start("full")
        for name, path in PATHS.items():
            status, body = _get(ports["full"], path)
            assert status == 200, (path, status)
            bodies[name] = body.decode()
        bodies_file.write_text(json.dumps(bodies))
        start("bare")
        for name, path in PATHS.items():
            assert _get(ports["bare"], path)[1].decode() == bodies[name], f"bare {name} differs"

        print(f"clubstack core benchmark: gunicorn {WORKERS} workers x {THREADS} threads each, "
              f"load: {tool}, {args.connections} keep-alive connections, "
              f"{args.rounds} x {args.seconds:g}s per server and path")  # fmt: skip
        results: dict[str, dict[str, list[float]]] = {}
        cpu: dict[str, dict[str, list[float]]] = {}
        for name, path in PATHS.items():
            for kind in ("bare", "full"):  # warm up
                load(ports[kind], path, 1, args.connections)
            results[name] = {"bare": [], "full": []}
            cpu[name] = {"bare": [], "full": []}
            for _ in range(args.rounds):
                for kind in ("bare", "full"):
                    used = server_cpu(processes[kind].pid)
                    rate, count, bad = load(ports[kind], path, args.seconds, args.connections)
                    used = server_cpu(processes[kind].pid) - used
                    if bad:
                        print(f"warning: {bad} non-200 answers from {kind} {path}")
                    results[name][kind].append(rate)
                    cpu[name][kind].append(used / max(count, 1) * 1e6)

        print(f"\n{'path':<10} {'bare req/s':>11} {'full req/s':>11} {'ratio':>7} {'target':>7}")
        for name, path in PATHS.items():
            bare = statistics.median(results[name]["bare"])
            full = statistics.median(results[name]["full"])
            ratio = full / bare
            verdict = "ok" if ratio >= TARGET else "BELOW TARGET"
            print(f"{path:<10} {bare:>11.0f} {full:>11.0f} {ratio:>7.2f} {TARGET:>7.2f}  {verdict}")
        summary = {
            name: {
                f"{kind}_{measure}": statistics.median(table[name][kind])
                for measure, table in (("rps", results), ("cpu_us", cpu))
                for kind in ("bare", "full")
            }
            for name in PATHS
        }
        for row in summary.values():
            row["ratio"] = row["full_rps"] / row["bare_rps"]
        if args.json:
            Path(args.json).write_text(json.dumps({"paths": summary, "load": os.getloadavg()}))
        print("\nserver CPU per request (gunicorn master + workers; steadier on a busy machine):")
        print(f"{'path':<10} {'bare µs':>11} {'full µs':>11} {'bare/full':>10}")
        for name, path in PATHS.items():
            bare_cpu = statistics.median(cpu[name]["bare"])
            full_cpu = statistics.median(cpu[name]["full"])
            print(f"{path:<10} {bare_cpu:>11.0f} {full_cpu:>11.0f} {bare_cpu / full_cpu:>10.2f}")
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    if args.profile:
        profile(env, bodies, bodies_file)
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
