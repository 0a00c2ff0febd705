"""Benchmark of the drop under gunicorn with the deployment settings.

Starts four servers on this machine with the same gunicorn options
(clubstack.server.gunicorn_options, as `clubstack serve` uses them):
  redis     the real app, drop store in Redis (rate limits in Redis too, as deployed)
  sql       the real app, drop store in the SQL database (SQLite in a temporary instance)
  baseline  Flask + redis-py doing what the original Flask + Redis message API does per read:
            one PING, one GET, one log line written synchronously to a file, JSON out
  bare      a bare Flask app answering the same URLs with the same bytes, no store, no middleware
and drives them in turn, in interleaved rounds (so the machine's changing load hits all alike),
with 32 keep-alive connections for a fixed number of seconds per phase, from wrk (one thread,
Lua scripts; a C load generator leaves the cores to the servers) or, where wrk is missing,
2 processes x 16 Python threads:
  round trip  POST a message, then GET it back (the drop's real use)
  get         GET messages created before (the read path alone)
It prints requests/s and p99 latency, the GET throughput as a ratio to the baseline and to the
bare app, and the targets: GET >= 1.0x the baseline with each store and GET p99 below the
baseline's (issue #16); GET >= 60% of bare and p99 < 25 ms at 32 connections (issue #5).
Always exits 0. BENCH_REDIS_URL picks the Redis (default db 14); CLUBSTACK_BENCH_SRC another
checkout's src/ to measure (bench/compare.py).

--diagnose adds servers with core parts taken out (Flask-Limiter's hooks; the access log; all of
the core's per-request parts: those two, the CSRF and body-limit hooks and the drop's headers)
and a cProfile breakdown of one GET, to show where the time goes.

The load generator runs on the same machine as the servers, so absolute numbers are modest;
ratios are measured in the same run on the same machine. Latency is measured closed-loop (each
connection sends its next request when the last is answered), so p99 is the latency at the
server's full throughput.

    python bench/drop.py [--seconds 3] [--rounds 5] [--connections 32] [--diagnose] [--json F]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The code under test: this checkout's, or another's (bench/compare.py runs old and new alike).
SRC = Path(os.environ.get("CLUBSTACK_BENCH_SRC") or ROOT / "src")
sys.path.insert(0, str(SRC))

from procstat import server_cpu  # noqa: E402 - bench/, beside this script

MESSAGE = "The benchmark's message: " + "lorem ipsum dolor sit amet " * 8
# Issue #16: the drop's GET against the baseline (what the original Flask + Redis API does).
TARGET_BASELINE_RATIO = 1.0
# Issue #5, against bare Flask answering the same bytes.
TARGET_GET_RATIO = 0.60
TARGET_P99_MS = 25.0
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
PROCESSES = 2


# --- the servers -------------------------------------------------------------------------------


def bare_app() -> Any:
    """Flask with nothing added, answering the drop's URLs with the bytes the real app sends."""
    from flask import Flask, Response, request

    app = Flask("bare")
    created = json.dumps(
        {
            "burn_after_reading": False,
            "delete_token": "x" * 22,
            "expires_at": "2026-11-29T00:00:00Z",
            "message_id": "x" * 22,
            "raw_url": "http://127.0.0.1/drop/msg/" + "x" * 22 + "/raw",
            "url": "http://127.0.0.1/drop/msg/" + "x" * 22,
        }
    ).encode()
    shown = json.dumps(
        {
            "burn_after_reading": False,
            "created_at": "2026-11-22T00:00:00Z",
            "expires_at": "2026-11-29T00:00:00Z",
            "message": MESSAGE,
            "message_id": "x" * 22,
        }
    ).encode()

    @app.post("/drop/")
    def create() -> Response:
        request.get_data()
        response = Response(created, status=201, mimetype="application/json")
        response.headers["Location"] = "http://127.0.0.1/drop/msg/" + "x" * 22
        return response

    @app.get("/drop/msg/<message_id>")
    def read(message_id: str) -> Response:
        return Response(shown, mimetype="application/json")

    return app


def baseline_app() -> Any:
    """The drop's target should have been measured against this: what the original Flask + Redis
    message API (meglyne/REST_API_Python) does per request. A read is one Redis PING, one GET,
    one log line written synchronously (a FileHandler to a file) and JSON out; a creation is a
    PING, a SET with a TTL and a log line. Same URLs and JSON shapes as the drop."""
    import logging
    import secrets
    from datetime import UTC, datetime, timedelta

    import redis
    from flask import Flask, Response, jsonify, request

    app = Flask("baseline")
    client = redis.Redis.from_url(os.environ["BENCH_BASELINE_REDIS_URL"])
    log = logging.getLogger("baseline")
    log.addHandler(logging.FileHandler(os.environ["BENCH_BASELINE_LOG"]))
    log.setLevel(logging.INFO)
    log.propagate = False
    base = os.environ["CLUBSTACK_BASE_URL"]

    def iso(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    @app.post("/drop/")
    def create() -> Response:
        client.ping()
        data = request.get_json()
        message_id = secrets.token_urlsafe(16)
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=int(data.get("expires_in", 604800)))
        stored = {"message": data["message"], "created_at": iso(now), "expires_at": iso(expires)}
        client.set(f"baseline:{message_id}", json.dumps(stored), ex=int(data["expires_in"]))
        log.info("POST /drop/ %s 201", message_id[:4])
        url = f"{base}/drop/msg/{message_id}"
        response = jsonify(
            {
                "burn_after_reading": False,
                "delete_token": secrets.token_urlsafe(16),
                "expires_at": stored["expires_at"],
                "message_id": message_id,
                "raw_url": url + "/raw",
                "url": url,
            }
        )
        response.status_code = 201
        response.headers["Location"] = url
        return response

    @app.get("/drop/msg/<message_id>")
    def read(message_id: str) -> Any:
        client.ping()
        raw = client.get(f"baseline:{message_id}")
        log.info("GET /drop/msg/%s %s", message_id[:4], 200 if raw else 404)
        if raw is None:
            return jsonify({"error": "not_found", "message": "No such message."}), 404
        stored = json.loads(raw)
        return jsonify(
            {
                "burn_after_reading": False,
                "created_at": stored["created_at"],
                "expires_at": stored["expires_at"],
                "message": stored["message"],
                "message_id": message_id,
            }
        )

    return app


def serve(kind: str, port: int) -> None:
    """Run one server in this process (called as `python bench/drop.py --serve KIND PORT`)."""
    from gunicorn.app.base import BaseApplication

    try:
        from clubstack.server import gunicorn_options
    except ImportError:  # a checkout from before the move out of core (bench/compare.py)
        from clubstack.core.server import gunicorn_options  # type: ignore[no-redef]

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_options("127.0.0.1", port, None, 4).items():
                self.cfg.set(key, value)
            self.cfg.set("errorlog", os.environ.get("BENCH_ERRORLOG", "-"))

        def load(self) -> Any:
            if kind == "bare":
                return bare_app()
            if kind == "baseline":
                return baseline_app()
            from clubstack.app import create_app

            app = create_app()
            disable_core_parts(app, os.environ.get("BENCH_DISABLE", ""))
            return app

    Server().run()


def disable_core_parts(app: Any, parts: str) -> None:
    """Diagnostics only (--diagnose): take core parts out to measure what they cost.

    Hooks are taken out of the app's hook lists (Flask calls them internal; the app never does
    this): Flask-Limiter's own switch, `enabled`, still leaves its three hooks running on every
    request, and what they cost is the question."""
    import logging

    from clubstack.core.web import limiter

    def bound_to(hook: Any) -> Any:
        return getattr(hook, "__self__", None) or (getattr(hook, "args", None) or [None])[0]

    hooks_of = {
        "limiter": lambda hook: bound_to(hook) is limiter,  # Flask-Limiter's three hooks
        "csrf": lambda hook: getattr(hook, "__name__", "") == "csrf_protect",  # Flask-WTF's
        "body-limit": lambda hook: getattr(hook, "__name__", "") == "_before",  # core.web
        "drop-headers": lambda hook: getattr(hook, "__name__", "") == "_security_headers",
    }
    for part in filter(None, parts.split(",")):
        if part == "access-log":
            logging.getLogger("clubstack.access").disabled = True
        elif part in hooks_of:
            for hooks in (app.before_request_funcs, app.after_request_funcs,
                          app.teardown_request_funcs):  # fmt: skip
                for scope, funcs in hooks.items():
                    hooks[scope] = [hook for hook in funcs if not hooks_of[part](hook)]
        else:
            raise SystemExit(f"unknown part {part}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(kind: str, instance: Path, port: int, disable: str = "") -> dict[str, str]:
    from clubstack.core.migrate import upgrade

    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "CLUBSTACK_INSTANCE": str(instance / kind),
        "CLUBSTACK_ENV": "production",
        "CLUBSTACK_SECRET_KEY": "bench-" + "k" * 40,
        "CLUBSTACK_DEFAULT_RATE": "10000000/minute",
        "CLUBSTACK_DROP_CREATE_RATE": "10000000/minute",
        "CLUBSTACK_DROP_READ_RATE": "10000000/minute",
        "CLUBSTACK_BASE_URL": f"http://127.0.0.1:{port}",
        "BENCH_ERRORLOG": str(instance / f"{kind}-gunicorn.log"),
        "BENCH_DISABLE": disable,
    }
    env.pop("CLUBSTACK_REDIS_URL", None)
    if kind == "redis":
        env["CLUBSTACK_REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
        env["CLUBSTACK_DROP_STORE"] = "redis"
    elif kind == "baseline":
        env["BENCH_BASELINE_REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
        env["BENCH_BASELINE_LOG"] = str(instance / "baseline.log")
    elif kind == "sql":
        env["CLUBSTACK_DROP_STORE"] = "sql"
    if kind in ("redis", "sql"):
        (instance / kind).mkdir(parents=True, exist_ok=True)
        upgrade(f"sqlite:///{instance / kind / 'clubstack.db'}")
    return env


def start(kind: str, instance: Path, disable: str = "") -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    instance.mkdir(parents=True, exist_ok=True)
    env = server_env(kind, instance, port, disable)
    log = (instance / f"{kind}-stderr.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, str(port)],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/drop/msg/" + "y" * 22, headers={"Accept": "application/json"})
            conn.getresponse().read()
            conn.close()
            return process, port
        except OSError:
            time.sleep(0.2)
    stop(process)
    raise SystemExit(f"{kind} server did not start; see {instance}/{kind}-stderr.log")


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# --- the load generator ------------------------------------------------------------------------

HEADERS_JSON = {"Accept": "application/json"}
POST_HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}


def _request(conn: http.client.HTTPConnection, method: str, path: str, **kw: Any) -> Any:
    conn.request(method, path, **kw)
    response = conn.getresponse()
    body = response.read()
    return response.status, response.getheader("Location"), body


def load_process(port: int, phase: str, seconds: float, threads: int, ids: list[str]) -> dict:
    """One client process: `threads` keep-alive connections for `seconds` (after 1 s warm-up)."""
    start_at = time.monotonic() + 1.0
    stop_at = start_at + seconds
    lock = threading.Lock()
    out: dict[str, Any] = {"get": [], "post": [], "errors": 0, "ids": [], "bad": []}
    payload = json.dumps({"message": MESSAGE, "expires_in": 3600}).encode()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        gets: list[float] = []
        posts: list[float] = []
        made: list[str] = []
        errors = 0
        rng = random.Random()
        while True:
            now = time.monotonic()
            if now >= stop_at:
                break
            measuring = now >= start_at
            try:
                if phase == "roundtrip":
                    t0 = time.perf_counter()
                    status, location, _ = _request(
                        conn, "POST", "/drop/", body=payload, headers=POST_HEADERS
                    )
                    t1 = time.perf_counter()
                    if status != 201:
                        errors += 1
                        continue
                    path = "/drop/" + location.split("/drop/", 1)[1]
                    made.append(path)
                    status, _, _ = _request(conn, "GET", path, headers=HEADERS_JSON)
                    t2 = time.perf_counter()
                    if measuring:
                        posts.append(t1 - t0)
                        gets.append(t2 - t1)
                else:
                    path = rng.choice(ids)
                    t0 = time.perf_counter()
                    status, _, _ = _request(conn, "GET", path, headers=HEADERS_JSON)
                    if measuring:
                        gets.append(time.perf_counter() - t0)
                if status != 200:
                    errors += 1
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.close()
        with lock:
            out["get"].extend(gets)
            out["post"].extend(posts)
            out["errors"] += errors
            out["ids"].extend(made[:50])

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return out


def run_phase(
    port: int, phase: str, seconds: float, connections: int, ids: list[str]
) -> dict[str, Any]:
    per_process = connections // PROCESSES
    with ProcessPoolExecutor(PROCESSES) as executor:
        parts = list(
            executor.map(
                load_process,
                [port] * PROCESSES,
                [phase] * PROCESSES,
                [seconds] * PROCESSES,
                [per_process] * PROCESSES,
                [ids] * PROCESSES,
            )
        )
    merged: dict[str, Any] = {"get": [], "post": [], "errors": 0, "ids": []}
    for part in parts:
        for key in ("get", "post", "ids"):
            merged[key].extend(part[key])
        merged["errors"] += part["errors"]
    requests_done = len(merged["get"]) + len(merged["post"])
    merged["rps"] = requests_done / seconds
    merged["get_rps"] = len(merged["get"]) / seconds
    return merged


# wrk: POST then GET of the returned Location per connection slot, or GETs of seeded messages.
# done() prints one JSON line; latencies are in microseconds.
WRK_COMMON = """
wrk.headers["Accept"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %%d, "duration_us": %%d, "p99_us": %%d, "errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""
WRK_ROUNDTRIP = (
    WRK_COMMON
    + """
local body = %(body)s
local created = {}
request = function()
  local path = table.remove(created)
  if path then return wrk.format("GET", path) end
  return wrk.format("POST", "/drop/", {["Content-Type"] = "application/json"}, body)
end
response = function(status, headers, body)
  local location = headers["Location"]
  if status == 201 and location then
    created[#created + 1] = location:match("^https?://[^/]+(/.*)$") or location
  end
end
"""
)
WRK_GET = (
    WRK_COMMON
    + """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
"""
)


def wrk_phase(
    port: int, pid: int, phase: str, seconds: float, connections: int, ids: list[str], workdir: Path
) -> dict[str, Any]:
    """One phase under wrk (after a 1 s warm-up run that is not counted); `pid` is the server's
    (gunicorn master), whose CPU time per request is measured too."""
    paths = workdir / "paths.txt"
    paths.write_text("\n".join(ids) + "\n")
    payload = json.dumps({"message": MESSAGE, "expires_in": 3600})
    script = workdir / f"{phase}.lua"
    template = WRK_ROUNDTRIP if phase == "roundtrip" else WRK_GET
    script.write_text(template % {"body": json.dumps(payload), "paths": paths})
    url = f"http://127.0.0.1:{port}"

    def run(duration: float) -> dict[str, Any]:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
             "-s", str(script), url],
            capture_output=True, text=True, check=True, timeout=duration + 30,
        ).stdout  # fmt: skip
        return json.loads(next(line for line in out.splitlines() if line.startswith("{")))

    run(1)
    cpu = server_cpu(pid)
    result = run(seconds)
    cpu = server_cpu(pid) - cpu
    rps = result["requests"] / (result["duration_us"] / 1e6)
    p99 = result["p99_us"] / 1000
    # A round trip is a POST and a GET: half of the requests are GETs.
    get_rps = rps / 2 if phase == "roundtrip" else rps
    cpu_us = cpu / max(result["requests"], 1) * 1e6
    errors = result["errors"]
    return {"rps": rps, "get_rps": get_rps, "p99": p99, "errors": errors, "cpu_us": cpu_us}


def python_phase(
    port: int, pid: int, phase: str, seconds: float, connections: int, ids: list[str], workdir: Path
) -> dict[str, Any]:
    merged = run_phase(port, phase, seconds, connections, ids)
    merged["p99"] = pct(merged["get"] + merged["post"], 0.99)
    merged["cpu_us"] = float("nan")  # warm-up and measured requests are not told apart here
    return merged


def seed_messages(port: int, count: int) -> list[str]:
    """Messages for the GET phase (the bare app answers any id)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    payload = json.dumps({"message": MESSAGE, "expires_in": 3600}).encode()
    paths = []
    for _ in range(count):
        status, location, _ = _request(conn, "POST", "/drop/", body=payload, headers=POST_HEADERS)
        if status != 201 or not location:
            raise SystemExit(f"seeding messages failed with HTTP {status}")
        paths.append("/drop/" + location.split("/drop/", 1)[1])
    conn.close()
    return paths


# What the in-process profile attributes time to: cumulative time of (file suffix, function).
COMPONENTS = {
    "Flask-Limiter (its passes, with the request filter)": [
        ("flask_limiter/_extension.py", "_check_request_limit"),
        ("flask_limiter/_extension.py", "__inject_headers"),
        ("flask_limiter/_extension.py", "__release_context"),
    ],
    "core access log": [("clubstack/app.py", "_access_log")],
    "core security headers + request id": [("clubstack/core/web.py", "__call__")],
    "session cookie open/save": [
        ("flask/sessions.py", "open_session"),
        ("flask/sessions.py", "save_session"),
        ("clubstack/core/web.py", "open_session"),
    ],
    "drop store read": [("clubstack/drop/store.py", "read")],
    "drop view, outside the store": [("clubstack/drop/api.py", "message")],
}


def profile_components(kind: str, requests_count: int = 2000) -> None:
    """Run in a child process with the server's environment: where does a GET spend its time?"""
    import cProfile
    import pstats

    from clubstack.app import create_app

    app = create_app()
    client = app.test_client()
    made = client.post("/drop/", json={"message": MESSAGE}, headers=HEADERS_JSON)
    path = "/drop/msg/" + made.get_json()["message_id"]
    for _ in range(200):
        client.get(path, headers=HEADERS_JSON)
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(requests_count):
        client.get(path, headers=HEADERS_JSON)
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]

    def cumulative(file_suffix: str, name: str) -> float:
        return sum(
            cum
            for (file, _, fn), (_, _, _, cum, _) in stats.items()
            if fn == name and file.endswith(file_suffix)
        )

    total = cumulative("flask/app.py", "wsgi_app")
    print(f"  {kind}: {total / requests_count * 1000:.2f} ms per GET inside Flask (profiled)")
    for label, places in COMPONENTS.items():
        spent = sum(cumulative(*place) for place in places)
        if label == "core security headers + request id":
            spent -= total  # the middleware's own time, without the app it wraps
        if label == "drop view, outside the store":
            spent -= cumulative("clubstack/drop/store.py", "read")
        print(f"    {label:58} {spent / total:6.1%}")


def profile_where(instance: Path) -> None:
    print("\nwhere a GET spends its time (cProfile of the real app, in-process):")
    for kind in ("redis", "sql"):
        env = server_env(kind, instance / f"profile-{kind}", free_port())
        subprocess.run(
            [sys.executable, __file__, "--profile", kind],
            env=env,
            check=False,
            timeout=300,
            stderr=subprocess.DEVNULL,
        )


def pct(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# (name, store kind, core parts switched off)
TARGETS = [
    ("bare", "bare", ""),
    ("baseline", "baseline", ""),
    ("redis", "redis", ""),
    ("sql", "sql", ""),
]
CORE_PARTS = "limiter,csrf,body-limit,drop-headers,access-log"
DIAGNOSTIC_TARGETS = [
    ("redis, no limiter hooks", "redis", "limiter"),
    ("redis, no access log", "redis", "access-log"),
    ("redis, none of the core's parts", "redis", CORE_PARTS),
    ("sql, no limiter hooks", "sql", "limiter"),
    ("sql, no access log", "sql", "access-log"),
    ("sql, none of the core's parts", "sql", CORE_PARTS),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="Length of each phase.")
    parser.add_argument("--rounds", type=int, default=5, help="Interleaved rounds per server.")
    parser.add_argument("--connections", type=int, default=32, help="Concurrent connections.")
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="Also profile a GET and measure the app with core middleware parts switched off.",
    )
    parser.add_argument(
        "--python-load", action="store_true", help="Use the Python load generator even with wrk."
    )
    parser.add_argument("--json", metavar="FILE", help="Also write the medians to FILE as JSON.")
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--profile", metavar="KIND", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0
    if args.profile:
        profile_components(args.profile)
        return 0

    targets = TARGETS + (DIAGNOSTIC_TARGETS if args.diagnose else [])
    instance = Path(tempfile.mkdtemp(prefix="drop-bench-"))
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    results = {
        name: {"trip_rps": [], "get_rps": [], "trip": [], "get": [], "get_cpu": [], "errors": 0}
        for name, _, _ in targets
    }
    phase = wrk_phase if shutil.which("wrk") and not args.python_load else python_phase
    tool = (
        "wrk (1 thread, Lua)"
        if phase is wrk_phase
        else f"{PROCESSES} processes x {args.connections // PROCESSES} Python threads"
    )
    print(
        f"drop benchmark: {args.connections} connections from {tool}, {args.rounds} "
        f"interleaved rounds of {args.seconds:.0f} s per phase and server (load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
        flush=True,
    )
    try:
        pools: dict[str, list[str]] = {}
        for index, (name, kind, disable) in enumerate(targets):
            servers[name] = start(kind, instance / f"t{index}", disable)
            pools[name] = seed_messages(servers[name][1], 200)
        # Idle servers cost nothing; interleaving rounds spreads the machine's load drift evenly.
        for round_ in range(args.rounds):
            for name, _kind, _ in targets:
                process, port = servers[name]
                pid = process.pid
                trip = phase(port, pid, "roundtrip", args.seconds, args.connections, [], instance)
                reads = phase(
                    port, pid, "get", args.seconds, args.connections, pools[name], instance
                )
                result = results[name]
                result["trip_rps"].append(trip["rps"])
                result["get_rps"].append(reads["get_rps"])
                result["trip"].append(trip["p99"])
                result["get"].append(reads["p99"])
                result["get_cpu"].append(reads["cpu_us"])
                result["errors"] += trip["errors"] + reads["errors"]
            print(f"  round {round_ + 1}/{args.rounds} done", flush=True)
    finally:
        for process, _ in servers.values():
            stop(process)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(instance, ignore_errors=True)

    bare_get = statistics.median(results["bare"]["get_rps"])
    base_get = statistics.median(results["baseline"]["get_rps"])
    base_p99 = statistics.median(results["baseline"]["get"])
    print(
        f"\n{'server':32}{'trip req/s':>11}{'trip p99':>10}{'GET req/s':>10}{'GET p99':>9}"
        f"{'GET/base':>9}{'GET/bare':>9}{'CPU/GET':>9}{'errors':>7}  (p99: median of the rounds)"
    )
    summary: dict[str, dict[str, float]] = {}
    for name, _, _ in targets:
        result = results[name]
        row = summary[name] = {
            "trip_rps": statistics.median(result["trip_rps"]),
            "get_rps": statistics.median(result["get_rps"]),
            "trip_p99": statistics.median(result["trip"]),
            "get_p99": statistics.median(result["get"]),
            "get_cpu_us": statistics.median(result["get_cpu"]),
            "errors": result["errors"],
        }
        row["get_vs_baseline"] = row["get_rps"] / base_get if base_get else float("nan")
        row["get_vs_bare"] = row["get_rps"] / bare_get if bare_get else float("nan")
        print(
            f"{name:32}{row['trip_rps']:11.0f}{row['trip_p99']:8.1f}ms{row['get_rps']:10.0f}"
            f"{row['get_p99']:7.1f}ms{row['get_vs_baseline']:9.2f}{row['get_vs_bare']:9.2f}"
            f"{row['get_cpu_us']:7.0f}µs{result['errors']:7}"
        )
    print("\ntargets:")
    for name in ("redis", "sql"):
        row = summary[name]
        checks = [
            (
                f"GET >= {TARGET_BASELINE_RATIO:.1f}x baseline (issue #16)",
                row["get_vs_baseline"] >= TARGET_BASELINE_RATIO,
            ),
            (
                f"GET p99 {row['get_p99']:.1f} < baseline's {base_p99:.1f} ms (issue #16)",
                row["get_p99"] < base_p99,
            ),
            (f"GET >= {TARGET_GET_RATIO:.0%} of bare (issue #5)", row["get_vs_bare"] >= 0.6),
            (
                f"p99 < {TARGET_P99_MS:.0f} ms (issue #5)",
                max(row["trip_p99"], row["get_p99"]) < TARGET_P99_MS,
            ),
        ]
        print(f"  {name:6} " + "; ".join(f"{t}: {'PASS' if ok else 'FAIL'}" for t, ok in checks))
    print(
        "\nworst p99 of the rounds (trip / GET): "
        + ", ".join(
            f"{name} {max(results[name]['trip']):.1f} / {max(results[name]['get']):.1f} ms"
            for name, _, _ in targets
        )
    )
    load_now = os.getloadavg()
    print(
        f"round trip = POST then GET of the new message; GET = reads of existing messages; "
        f"req/s are medians of the rounds; CPU/GET = server CPU (gunicorn master and workers) "
        f"per GET.\nbaseline = Flask + redis-py doing what the original "
        f"message API does per read (PING, GET, a log line written synchronously, JSON).\n"
        f"load generator: {tool}, on the same cores as the servers; load average now "
        f"{' '.join(f'{x:.1f}' for x in load_now)}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"servers": summary, "load": load_now}))
    if args.diagnose:
        instance = Path(tempfile.mkdtemp(prefix="drop-bench-"))
        try:
            profile_where(instance)
        finally:
            shutil.rmtree(instance, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
