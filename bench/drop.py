"""Benchmark of the drop under gunicorn with the deployment settings.

Starts, one after the other, three servers on this machine with the same gunicorn options
(clubstack.core.server.gunicorn_options, as `clubstack serve` uses them):
  redis  the real app, drop store in Redis (rate limits in Redis too, as deployed)
  sql    the real app, drop store in the SQL database (SQLite in a temporary instance)
  bare   a bare Flask app answering the same URLs with the same bytes, no store, no middleware
and drives each with a bounded load generator: 32 keep-alive connections (2 processes x 16
threads, http.client) for a fixed number of seconds, in two phases:
  round trip  POST a message, then GET it back (the drop's real use)
  get         GET messages created before (the read path alone)
It prints requests/s and latency percentiles, the GET throughput ratio to the bare app, and the
issue's targets (GET >= 60% of bare; p99 < 25 ms at 32 connections). Always exits 0.

The load generator runs on the same 2 cores as the server, so absolute numbers are modest;
ratios are measured in the same run on the same machine.

    python bench/drop.py [--seconds 8] [--connections 32]
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
sys.path.insert(0, str(ROOT / "src"))

MESSAGE = "The benchmark's message: " + "lorem ipsum dolor sit amet " * 8
TARGET_GET_RATIO = 0.60
TARGET_P99_MS = 25.0
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


def serve(kind: str, port: int) -> None:
    """Run one server in this process (called as `python bench/drop.py --serve KIND PORT`)."""
    from gunicorn.app.base import BaseApplication

    from clubstack.core.server import gunicorn_options

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_options("127.0.0.1", port, None, 4).items():
                self.cfg.set(key, value)
            self.cfg.set("errorlog", os.environ.get("BENCH_ERRORLOG", "-"))

        def load(self) -> Any:
            if kind == "bare":
                return bare_app()
            from clubstack.app import create_app

            return create_app()

    Server().run()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(kind: str, instance: Path) -> tuple[subprocess.Popen[bytes], int]:
    from clubstack.core.migrate import upgrade

    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "CLUBSTACK_INSTANCE": str(instance / kind),
        "CLUBSTACK_ENV": "production",
        "CLUBSTACK_SECRET_KEY": "bench-" + "k" * 40,
        "CLUBSTACK_DEFAULT_RATE": "10000000/minute",
        "CLUBSTACK_DROP_CREATE_RATE": "10000000/minute",
        "CLUBSTACK_DROP_READ_RATE": "10000000/minute",
        "CLUBSTACK_BASE_URL": f"http://127.0.0.1:{port}",
        "BENCH_ERRORLOG": str(instance / f"{kind}-gunicorn.log"),
    }
    env.pop("CLUBSTACK_REDIS_URL", None)
    if kind == "redis":
        env["CLUBSTACK_REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
        env["CLUBSTACK_DROP_STORE"] = "redis"
    elif kind == "sql":
        env["CLUBSTACK_DROP_STORE"] = "sql"
    if kind != "bare":
        (instance / kind).mkdir(parents=True, exist_ok=True)
        upgrade(f"sqlite:///{instance / kind / 'clubstack.db'}")
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


def pct(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="Length of each phase.")
    parser.add_argument("--connections", type=int, default=32, help="Concurrent connections.")
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0

    results: dict[str, dict[str, Any]] = {}
    instance = Path(tempfile.mkdtemp(prefix="drop-bench-"))
    try:
        for kind in ("bare", "redis", "sql"):
            process, port = start(kind, instance)
            try:
                trip = run_phase(port, "roundtrip", args.seconds, args.connections, [])
                ids = trip["ids"] if kind != "bare" else ["/drop/msg/" + "x" * 22]
                if not ids:
                    raise SystemExit(f"{kind}: no message was created; see {instance}")
                reads = run_phase(port, "get", args.seconds, args.connections, ids)
            finally:
                stop(process)
            results[kind] = {"trip": trip, "get": reads}
    finally:
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(instance, ignore_errors=True)
            print(
                f"  {kind:5}  round trip {trip['rps']:7.0f} req/s "
                f"(POST p99 {pct(trip['post'], 0.99):5.1f} ms, GET p99 "
                f"{pct(trip['get'], 0.99):5.1f} ms) | GET only {reads['get_rps']:7.0f} req/s "
                f"p50 {pct(reads['get'], 0.50):5.1f} ms p99 {pct(reads['get'], 0.99):5.1f} ms"
                f" | errors {trip['errors'] + reads['errors']}",
                flush=True,
            )

    bare_get = results["bare"]["get"]["get_rps"]
    print(f"\ndrop benchmark: {args.connections} connections, {args.seconds:.0f} s per phase")
    print(f"{'server':8}{'trip req/s':>12}{'trip p99':>10}{'GET req/s':>11}{'GET p99':>9}"
          f"{'GET/bare':>10}  targets")
    for kind in ("redis", "sql", "bare"):
        trip, reads = results[kind]["trip"], results[kind]["get"]
        trip_p99 = max(pct(trip["post"], 0.99), pct(trip["get"], 0.99))
        get_p99 = pct(reads["get"], 0.99)
        ratio = reads["get_rps"] / bare_get if bare_get else float("nan")
        verdict = ""
        if kind != "bare":
            ok_ratio = ratio >= TARGET_GET_RATIO
            ok_p99 = trip_p99 < TARGET_P99_MS and get_p99 < TARGET_P99_MS
            verdict = (
                f"GET>={TARGET_GET_RATIO:.0%} of bare: {'PASS' if ok_ratio else 'FAIL'}; "
                f"p99<{TARGET_P99_MS:.0f} ms: {'PASS' if ok_p99 else 'FAIL'}"
            )
        print(
            f"{kind:8}{trip['rps']:12.0f}{trip_p99:8.1f}ms{reads['get_rps']:11.0f}"
            f"{get_p99:7.1f}ms{ratio:10.2f}  {verdict}"
        )
    print(f"\nload generator: {PROCESSES} processes x {args.connections // PROCESSES} threads "
          f"(http.client keep-alive) on the same {os.cpu_count()} cores as the server")
    print(f"load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    spread = statistics.mean(len(r['get']['get']) for r in results.values())
    print(f"mean GET samples per server: {spread:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
