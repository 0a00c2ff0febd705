"""The one outbound HTTP client: timeouts, retries with backoff, per-provider quotas, and an SSRF
guard that refuses loopback, private, link-local, multicast and metadata addresses.

The same guard serves plain TCP (``HttpClient.connect`` and ``HttpClient.tcp_query``): WHOIS on
port 43 and TLS handshakes that inspect a server's certificates are not HTTP, but they must not
be a way around the guard either.

The guard checks twice: every address a name resolves to before connecting (a clear, early
refusal), for the URL asked for and for every redirect target before it is followed; and the
address the socket really connected to (so DNS rebinding between the check and the connection
cannot slip through). Hosts listed in CLUBSTACK_HTTP_ALLOW_HOSTS are let through,
which is how tests reach their local stand-ins of remote APIs.

The gate. This is the one module of clubstack that uses urllib3's internals: the check of the
connected peer overrides ``HTTPConnection._new_conn`` (the socket before any byte is sent on it,
TLS included) and sets the pool manager's ``pool_classes_by_scheme``, because requests and
urllib3 have no public hook between connecting and sending. Used only on URLLIB3_TESTED;
pyproject.toml bounds urllib3 below its end, so an upgrade past it is a deliberate change that
re-runs tests/core/test_net.py and tests/security (they passed on urllib3 2.6.3 and 2.8.0).

There is no public path that is as safe: checking the peer after ``connect()`` would already
have sent a TLS ClientHello to it. So outside those versions, or where the hooks are gone
(``peer_check_fits``), the HTTP client sends nothing at all: every request, and every user of
its requests session, fails with GuardUnavailable, which says why (tests/core/test_net_gate.py
forces that). Plain TCP (``guarded_connect``) does not use urllib3 and is not affected.
``PEER_CHECK`` says which way this process goes.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import time
from collections.abc import Iterable
from importlib.metadata import version as installed_version
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import Integer, String, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Mapped, mapped_column
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager
from urllib3.util.retry import Retry

from clubstack.core.db import Base, own_session
from clubstack.core.errors import ClubError
from clubstack.settings import get_settings

log = logging.getLogger("clubstack.net")
USER_AGENT = "clubstack/0.1 (+https://clubstack.invalid)"


class SSRFBlocked(ClubError):
    status = 400
    code = "address_refused"
    message = "That address is not reachable from this server."


class UpstreamError(ClubError):
    status = 502
    code = "upstream_error"
    message = "The remote service did not answer properly."


class GuardUnavailable(UpstreamError):
    status = 503
    code = "ssrf_guard_unavailable"
    message = "Outbound HTTP is switched off: the SSRF guard cannot run on this urllib3."


# [first, last) urllib3 versions the peer check's hooks were tested on (module docstring).
URLLIB3_TESTED = ((2, 6), (3, 0))


def peer_check_fits(urllib3_version: str) -> bool:
    """Whether the peer check may hook into this urllib3 (see the module docstring)."""
    numbers = tuple(int(part) for part in re.findall(r"\d+", urllib3_version)[:2])
    if not URLLIB3_TESTED[0] <= numbers < URLLIB3_TESTED[1]:
        return False
    return callable(getattr(HTTPConnection, "_new_conn", None)) and isinstance(
        getattr(PoolManager(), "pool_classes_by_scheme", None), dict
    )


URLLIB3_VERSION = installed_version("urllib3")
# True: requests go through the guarded connections; False: the client sends nothing.
PEER_CHECK = peer_check_fits(URLLIB3_VERSION)


class QuotaExhausted(ClubError):
    status = 429
    code = "quota_exhausted"
    message = "The quota for this provider is used up; the request was not sent."

    def __init__(self, provider: str, retry_after: int | None = None) -> None:
        super().__init__(f"The {provider} quota is used up; nothing was sent.", provider=provider)
        self.provider = provider
        self.retry_after = retry_after


# IPv6 ranges that tunnel to an IPv4 address written inside them: 6to4 (2002::/16) and Teredo
# (2001::/32). Relays may deliver them to that IPv4 address, a private one included, and no
# service a club talks to lives there (both are deprecated), so they are refused whole.
# (NAT64's 64:ff9b::/96 is refused as reserved, with the rest of ::/8.)
TUNNELS = (ipaddress.ip_network("2002::/16"), ipaddress.ip_network("2001::/32"))


def address_refused(ip: str) -> bool:
    """True for addresses a server must not be talked into reaching."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in tunnel for tunnel in TUNNELS):
            return True
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
    )


def _allowed(host: str, port: int | None, allow: Iterable[str]) -> bool:
    host = host.strip("[]").lower()
    for entry in allow:
        entry = entry.lower()
        if entry == host or (port is not None and entry in (f"{host}:{port}", f"[{host}]:{port}")):
            return True
    return False


def check_destination(host: str, port: int | None, allow: Iterable[str] = ()) -> None:
    """Refuse `host` unless every address it resolves to is public, or it is explicitly allowed."""
    if _allowed(host, port, allow):
        return
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        raise UpstreamError(f"Cannot resolve {host}.") from error
    for info in infos:
        if address_refused(str(info[4][0])):
            raise SSRFBlocked(f"{host} resolves to an address this server may not reach.")


def guarded_addresses(
    host: str, port: int, allow: Iterable[str] = ()
) -> list[tuple[int, tuple[Any, ...]]]:
    """(family, sockaddr) of every address of `host`, refused unless all of them are public or
    the host is explicitly allowed. Connecting to exactly these (not resolving again) leaves no
    room for DNS rebinding between the check and the connection."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UpstreamError(f"Cannot resolve {host}.") from error
    if not _allowed(host, port, allow):
        for info in infos:
            if address_refused(str(info[4][0])):
                raise SSRFBlocked(f"{host} resolves to an address this server may not reach.")
    return [(info[0], info[4]) for info in infos]


def guarded_connect(
    host: str, port: int, *, allow: Iterable[str] = (), timeout: float = 10.0
) -> socket.socket:
    """A TCP connection to `host`:`port` through the SSRF guard, with a timeout on connect and
    on every later read and write. The caller closes it."""
    last: OSError | None = None
    for family, sockaddr in guarded_addresses(host, port, allow):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
        except OSError as error:
            sock.close()
            last = error
            continue
        return sock
    if isinstance(last, TimeoutError):
        raise UpstreamError(f"{host}:{port} did not answer in time.") from last
    raise UpstreamError(f"Could not connect to {host}:{port}.") from last


class AnswerTooLarge(UpstreamError):
    code = "answer_too_large"
    message = "The remote service sent more than this server accepts."


def tcp_query(
    host: str,
    port: int,
    question: bytes,
    *,
    allow: Iterable[str] = (),
    timeout: float = 10.0,
    max_bytes: int = 256 * 1024,
) -> bytes:
    """Send `question`, read the answer until the server closes (WHOIS, RFC 3912).

    `timeout` bounds the whole exchange, not each read, so a server dripping one byte at a time
    cannot hold a worker; more than `max_bytes` is refused rather than truncated."""
    deadline = time.monotonic() + timeout
    sock = guarded_connect(host, port, allow=allow, timeout=timeout)
    chunks: list[bytes] = []
    size = 0
    try:
        sock.sendall(question)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UpstreamError(f"{host}:{port} did not finish its answer in time.")
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except TimeoutError as error:
                raise UpstreamError(f"{host}:{port} did not finish its answer in time.") from error
            except OSError as error:
                raise UpstreamError(f"Connection to {host}:{port} failed.") from error
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise AnswerTooLarge(f"{host}:{port} sent more than {max_bytes} bytes.")
            chunks.append(chunk)
    except OSError as error:
        raise UpstreamError(f"Connection to {host}:{port} failed.") from error
    finally:
        sock.close()
    return b"".join(chunks)


class _GuardMixin:
    allow: tuple[str, ...] = ()

    def _check_peer(self, sock: socket.socket, host: str, port: int | None) -> None:
        if _allowed(host, port, self.allow):
            return
        peer = sock.getpeername()[0]
        if address_refused(peer):
            sock.close()
            raise SSRFBlocked(f"{host} connected to an address this server may not reach.")


class _GuardedHTTPConnection(_GuardMixin, HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        self._check_peer(sock, self.host, self.port)
        return sock


class _GuardedHTTPSConnection(_GuardMixin, HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        self._check_peer(sock, self.host, self.port)
        return sock


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, allow: tuple[str, ...], **kwargs: Any) -> None:
        self._allow = allow
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        allow = self._allow
        http_conn = type("HTTPConn", (_GuardedHTTPConnection,), {"allow": allow})
        https_conn = type("HTTPSConn", (_GuardedHTTPSConnection,), {"allow": allow})
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("HTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("HTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }


class _RefusingAdapter(HTTPAdapter):
    """Mounted instead of the guarded adapter where the peer check cannot run: sends nothing,
    also for code handed the client's requests session (the Stripe gateway)."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        raise _guard_unavailable()


def _guard_unavailable() -> GuardUnavailable:
    low, high = (".".join(map(str, bound)) for bound in URLLIB3_TESTED)
    return GuardUnavailable(
        f"Outbound HTTP is switched off: urllib3 {URLLIB3_VERSION} is not one the SSRF guard's "
        f"peer check was tested on (>={low},<{high}, as pyproject.toml requires)."
    )


class HttpClient:
    """requests, with the guard, timeouts and retries every outbound call needs."""

    def __init__(
        self,
        *,
        allow_hosts: Iterable[str] | None = None,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> None:
        settings = get_settings()
        self.allow = tuple(settings.http_allow_hosts if allow_hosts is None else allow_hosts)
        self.timeout = settings.http_timeout if timeout is None else timeout
        retry = Retry(
            total=settings.http_retries if retries is None else retries,
            backoff_factor=0.2,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"GET", "HEAD", "OPTIONS"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        adapter: HTTPAdapter = (
            _GuardedAdapter(self.allow, max_retries=retry, pool_maxsize=32)
            if PEER_CHECK
            else _RefusingAdapter()
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def request(
        self,
        method: str,
        url: str,
        *,
        quota: Quota | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request. Raises SSRFBlocked, QuotaExhausted (nothing sent), UpstreamError
        (GuardUnavailable, nothing sent, where the guard cannot run)."""
        if not PEER_CHECK:
            raise _guard_unavailable()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SSRFBlocked("Only http and https URLs can be fetched.")
        check_destination(parts.hostname, parts.port, self.allow)
        if quota is not None:
            quota.take()
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("allow_redirects", True)
        if kwargs["allow_redirects"]:
            hooks = dict(kwargs.get("hooks") or {})
            chained = hooks.get("response", [])
            chained = [chained] if callable(chained) else list(chained)
            hooks["response"] = [self._check_redirect, *chained]
            kwargs["hooks"] = hooks
        try:
            return self.session.request(method, url, **kwargs)
        except SSRFBlocked:
            raise
        except requests.exceptions.ConnectionError as error:
            if isinstance(error.__context__, SSRFBlocked):
                raise error.__context__ from None
            cause = error.args[0] if error.args else None
            reason = getattr(cause, "reason", None)
            if isinstance(reason, SSRFBlocked):
                raise reason from None
            raise UpstreamError(f"Could not reach {parts.hostname}.") from error
        except requests.exceptions.RequestException as error:
            raise UpstreamError(
                f"Request to {parts.hostname} failed: {type(error).__name__}."
            ) from error

    def _check_redirect(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """A response hook: requests runs it on each answer before following its redirect, so
        the next address is checked like the first one, before any connection is made to it."""
        target = self.session.get_redirect_target(response)
        if target is None:
            return
        parts = urlsplit(urljoin(response.url, target))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SSRFBlocked("The server redirected to an address that cannot be fetched.")
        check_destination(parts.hostname, parts.port, self.allow)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", url, **kwargs)

    def connect(self, host: str, port: int, *, timeout: float | None = None) -> socket.socket:
        """A guarded plain TCP connection (for TLS inspection); the caller closes it."""
        return guarded_connect(
            host, port, allow=self.allow, timeout=self.timeout if timeout is None else timeout
        )

    def tcp_query(
        self,
        host: str,
        port: int,
        question: bytes,
        *,
        timeout: float | None = None,
        max_bytes: int = 256 * 1024,
    ) -> bytes:
        """One guarded question-and-answer exchange over TCP (WHOIS)."""
        return tcp_query(
            host,
            port,
            question,
            allow=self.allow,
            timeout=self.timeout if timeout is None else timeout,
            max_bytes=max_bytes,
        )

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", url, **kwargs)


_client: HttpClient | None = None


def http() -> HttpClient:
    """The process-wide client (built from settings on first use)."""
    global _client
    if _client is None:
        _client = HttpClient()
    return _client


def reset_http() -> None:
    global _client
    _client = None


# --- quotas -----------------------------------------------------------------------------------


class QuotaCounter(Base):
    """Used units per provider and window, when there is no Redis."""

    __tablename__ = "quota_counters"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    window: Mapped[str] = mapped_column(String(32), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)


class Quota:
    """An operator's allowance at a provider, e.g. Quota("virustotal", [(4, 60), (500, 86400)]).

    `take()` reserves one unit in every window or none at all, in Redis when configured (shared by
    all workers on all machines) or in the database. Windows are fixed (aligned to the epoch),
    which is what providers' per-minute and per-day limits are.
    """

    def __init__(self, provider: str, limits: Iterable[tuple[int, int]]) -> None:
        self.provider = provider
        self.limits = [(count, seconds) for count, seconds in limits if count > 0]

    def _windows(self, now: float) -> list[tuple[str, int, int]]:
        return [
            (f"{seconds}:{int(now // seconds)}", count, seconds - int(now % seconds))
            for count, seconds in self.limits
        ]

    def try_take(self, now: float | None = None) -> int | None:
        """Reserve one unit; None on success, else seconds until the full window frees up."""
        windows = self._windows(time.time() if now is None else now)
        redis_url = get_settings().redis_url
        if redis_url:
            return self._take_redis(redis_url, windows)
        return self._take_sql(windows)

    def take(self, now: float | None = None) -> None:
        wait = self.try_take(now)
        if wait is not None:
            raise QuotaExhausted(self.provider, retry_after=wait)

    def _take_redis(self, url: str, windows: list[tuple[str, int, int]]) -> int | None:
        client = _redis(url)
        taken: list[str] = []
        for window, count, remaining in windows:
            key = f"clubstack:quota:{self.provider}:{window}"
            pipe = client.pipeline()
            pipe.incr(key)
            pipe.expire(key, remaining + 5)
            used = pipe.execute()[0]
            if used > count:
                client.decr(key)
                for done in taken:
                    client.decr(done)
                return remaining
            taken.append(key)
        return None

    def _take_sql(self, windows: list[tuple[str, int, int]]) -> int | None:
        # Its own transactions, never the caller's session: a quota check in the middle of a
        # request must not commit or close what the request has pending.
        for window, _count, _remaining in windows:
            self._ensure_row(window)
        for attempt in range(5):
            try:
                with own_session() as session:
                    for window, count, remaining in windows:
                        result = session.execute(
                            update(QuotaCounter)
                            .where(
                                QuotaCounter.provider == self.provider,
                                QuotaCounter.window == window,
                                QuotaCounter.used < count,
                            )
                            .values(used=QuotaCounter.used + 1)
                        )
                        if result.rowcount != 1:  # type: ignore[attr-defined]
                            session.rollback()  # full: give back what earlier windows took
                            return remaining
                return None
            except OperationalError:  # chosen as a deadlock victim by the database: retry
                if attempt == 4:
                    raise
                time.sleep(0.01 * (attempt + 1))
        return None

    def _ensure_row(self, window: str) -> None:
        # Look, then insert, in separate transactions: on SQLite a transaction that read and then
        # writes cannot wait for another writer (SQLITE_BUSY at once); a plain insert can.
        with own_session() as session:
            if session.get(QuotaCounter, (self.provider, window)) is not None:
                return
        try:
            with own_session() as session:
                session.add(QuotaCounter(provider=self.provider, window=window, used=0))
        except IntegrityError:
            pass  # another worker created it first


_redis_clients: dict[str, Any] = {}


def _redis(url: str) -> Any:
    if url not in _redis_clients:
        import redis

        _redis_clients[url] = redis.Redis.from_url(url, socket_timeout=5)
    return _redis_clients[url]
