"""gunicorn configuration for production: `gunicorn -c deploy/gunicorn.conf.py`.

It takes its options from clubstack.server.gunicorn_options, the function `clubstack serve`
uses, so a deployed server and `clubstack serve` never drift apart. Only the address and the
process counts come from the environment:

  CLUBSTACK_BIND         host:port or unix:/path (default 127.0.0.1:8000, where nginx proxies)
  CLUBSTACK_WEB_WORKERS  worker processes (default: number of CPUs, at least 2)
  CLUBSTACK_WEB_THREADS  threads per worker (default 4, as `clubstack serve`)

Run `clubstack db upgrade` before starting it (the systemd unit does).
"""

import os

from clubstack.server import gunicorn_options

_workers = os.environ.get("CLUBSTACK_WEB_WORKERS")
_options = gunicorn_options(
    host="127.0.0.1",
    port=8000,
    workers=int(_workers) if _workers else None,
    threads=int(os.environ.get("CLUBSTACK_WEB_THREADS", "4")),
)
_options["bind"] = os.environ.get("CLUBSTACK_BIND", _options["bind"])

bind = _options["bind"]
workers = _options["workers"]
threads = _options["threads"]
worker_class = _options["worker_class"]
timeout = _options["timeout"]
graceful_timeout = _options["graceful_timeout"]
keepalive = _options["keepalive"]
# A socket per worker spreads TCP connections; a unix socket path can only be bound once.
reuse_port = _options["reuse_port"] and not bind.startswith("unix:")
max_requests = _options["max_requests"]
max_requests_jitter = _options["max_requests_jitter"]
accesslog = _options["accesslog"]
errorlog = _options["errorlog"]
proc_name = _options["proc_name"]
preload_app = _options["preload_app"]
control_socket_disable = _options["control_socket_disable"]
when_ready = _options["when_ready"]

# The application factory; gunicorn calls it once per worker.
wsgi_app = "clubstack.app:create_app()"
# nginx on the same host is the only client; it sets X-Forwarded-* (CLUBSTACK_PROXY_FIX=1).
forwarded_allow_ips = "127.0.0.1,::1"
