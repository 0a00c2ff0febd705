"""Local preview for `clubstack blog serve`: serves the built folder, rebuilds when a source
file changes (watchfiles) and tells open pages to reload over Server-Sent Events.

Development only: it binds to 127.0.0.1 by default and adds a reload script to HTML it
serves (the files on disk stay as the build wrote them).
"""

from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from watchfiles import watch

from clubstack.blog.build import BuildResult, build

RELOAD_SCRIPT = (
    b'<script>new EventSource("/__reload").onmessage = function () { location.reload(); };</script>'
)


class _State:
    def __init__(self) -> None:
        self.generation = 0
        self.changed = threading.Condition()
        self.stopping = threading.Event()
        self.last: BuildResult | None = None


class _Handler(SimpleHTTPRequestHandler):
    state: _State

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/__reload":
            self._events()
            return
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            if not self.path.split("?")[0].endswith("/"):
                super().do_GET()  # the stdlib redirects /dir to /dir/
                return
            path = path / "index.html"
        if path.suffix != ".html" or not path.is_file():
            super().do_GET()
            return
        body = path.read_bytes().replace(b"</body>", RELOAD_SCRIPT + b"</body>", 1)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Missing pages get the site's own 404.html, as a web server set up for it would."""
        page = Path(self.directory) / "404.html"
        if code != 404 or not page.is_file():
            super().send_error(code, message, explain)
            return
        body = page.read_bytes().replace(b"</body>", RELOAD_SCRIPT + b"</body>", 1)
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _events(self) -> None:
        state = self.state
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seen = state.generation
        try:
            self.wfile.write(b": connected\n\n")
            self.wfile.flush()
            while not state.stopping.is_set():
                with state.changed:
                    state.changed.wait(timeout=1.0)
                if state.generation != seen:
                    seen = state.generation
                    self.wfile.write(b"data: reload\n\n")
                    self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return


class PreviewServer:
    def __init__(
        self, src: Path, out: Path, host: str = "127.0.0.1", port: int = 8000, drafts: bool = True
    ) -> None:
        self.src, self.out, self.drafts = Path(src), Path(out), drafts
        self.state = _State()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer((host, port), partial(handler, directory=str(out)))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        cache = (self.src / ".cache").resolve()
        out = self.out.resolve()

        def relevant(_change: object, path: str) -> bool:
            p = Path(path).resolve()
            return not (p.is_relative_to(cache) or p.is_relative_to(out))

        for _changes in watch(
            self.src,
            watch_filter=relevant,
            stop_event=self.state.stopping,
            debounce=200,
            rust_timeout=500,
            yield_on_timeout=False,
        ):
            self.rebuild()

    def rebuild(self) -> BuildResult:
        result = build(self.src, self.out, drafts=self.drafts)
        for err in result.errors:
            print(f"{err.path}:{err.line}: {err.reason}", flush=True)
        with self.state.changed:
            self.state.last = result
            self.state.generation += 1
            self.state.changed.notify_all()
        return result

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def close(self) -> None:
        self.state.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
