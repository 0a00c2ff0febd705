"""Port-43 WHOIS (RFC 3912) for domains whose registry has no RDAP.

The question goes through the core client's guarded TCP exchange (SSRF guard, one timeout for
the whole exchange, a size cap). The server is found the way whois(1) finds it: ask
whois.iana.org about the TLD and follow its ``refer:`` (or ``whois:``) line to the registry;
a thin registry's answer names the registrar's server in ``Registrar WHOIS Server:``, which is
asked too, its answer being the fuller one. Answers are parsed with python-whois's per-TLD
parsers (``whois.WhoisEntry.load``); its own client (which shells out to whois(1) or opens
sockets itself) is not used.

Server names can be mapped to other addresses (setting ``whois_servers``): an operator pins
a TLD to a server or reaches one through a relay, and tests point the chain at loopback.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import whois
from whois.exceptions import WhoisDomainNotFoundError, WhoisError

from clubstack.core.net import HttpClient, SSRFBlocked, UpstreamError

WHOIS_PORT = 43
_HOSTNAME = re.compile(
    r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?)+$"
)
_REFER = re.compile(r"^\s*(?:refer|whois):\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)
_REGISTRAR_SERVER = re.compile(
    r"^\s*Registrar WHOIS Server:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE
)
# How registries say "no such domain" when python-whois has no parser that knows it.
_NOT_FOUND = re.compile(
    r"^\s*(?:%\s*)?(?:no match(?: for)?|not found|no entries found|no data found|"
    r"no object found|domain not found|status:\s*(?:free|available))\b",
    re.IGNORECASE | re.MULTILINE,
)


class WhoisFailed(Exception):
    """No server known, or no usable answer."""


@dataclass
class WhoisRecord:
    domain: str
    found: bool
    servers: list[str] = field(default_factory=list)  # the chain asked, registry first
    registrar: str | None = None
    created: datetime | None = None
    expires: datetime | None = None
    status: list[str] = field(default_factory=list)
    nameservers: list[str] = field(default_factory=list)


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _date(value: Any, pick: Any = min) -> datetime | None:
    values = value if isinstance(value, list) else [value]
    dates = [v for v in values if isinstance(v, datetime)]
    return pick(dates) if dates else None


def _strings(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [str(v).strip() for v in values if v and str(v).strip()]


def parse_answer(domain: str, text: str) -> dict[str, Any] | None:
    """The fields of one WHOIS answer, or None when it says the domain is not registered."""
    if _NOT_FOUND.search(text):
        return None
    try:
        entry = whois.WhoisEntry.load(domain, text)
    except WhoisDomainNotFoundError:
        return None
    except (WhoisError, ValueError, TypeError, OverflowError) as exc:
        raise WhoisFailed(f"unreadable WHOIS answer: {exc}") from exc
    statuses: list[str] = []
    for status in _strings(entry.get("status")):
        # "clientTransferProhibited https://icann.org/epp#clientTransferProhibited"
        word = status.split()[0]
        if word.lower() not in (s.lower() for s in statuses):
            statuses.append(word)
    nameservers: list[str] = []
    for server in _strings(entry.get("name_servers")):
        name = server.split()[0].lower().rstrip(".")
        if name not in nameservers:
            nameservers.append(name)
    registrar = _first(entry.get("registrar") or entry.get("registrar_name"))
    return {
        "registrar": str(registrar).strip() if registrar else None,
        "created": _date(entry.get("creation_date") or entry.get("created")),
        "expires": _date(entry.get("expiration_date") or entry.get("expires"), max),
        "status": statuses,
        "nameservers": nameservers,
        "has_data": bool(entry.get("domain_name") or entry.get("creation_date") or registrar),
    }


class WhoisClient:
    def __init__(
        self,
        http: HttpClient,
        *,
        iana_server: str = "whois.iana.org",
        servers: dict[str, str] | None = None,
        timeout: float = 10.0,
        max_bytes: int = 256 * 1024,
    ) -> None:
        self.http = http
        self.iana_server = iana_server
        self.servers = {k.lower().strip("."): v for k, v in (servers or {}).items()}
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._tld_servers: dict[str, str | None] = {}
        self._tld_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def _address(self, server: str) -> tuple[str, int]:
        target = self.servers.get(server.lower(), server)
        host, sep, port = target.rpartition(":")
        if sep and port.isdigit() and not host.endswith(":"):
            return host.strip("[]"), int(port)
        return target.strip("[]"), WHOIS_PORT

    def ask(self, server: str, question: str) -> str:
        host, port = self._address(server)
        answer = self.http.tcp_query(
            host,
            port,
            f"{question}\r\n".encode("ascii"),
            timeout=self.timeout,
            max_bytes=self.max_bytes,
        )
        return answer.decode("utf-8", "replace")

    def tld_server(self, tld: str) -> str | None:
        """The registry's WHOIS server for `tld`, from the settings or IANA (remembered)."""
        tld = tld.lower()
        if tld in self.servers:
            return self.servers[tld]
        with self._lock:
            tld_lock = self._tld_locks.setdefault(tld, threading.Lock())
        # One question to IANA per TLD, even when a batch's threads all want it at once.
        with tld_lock:
            if tld in self._tld_servers:
                return self._tld_servers[tld]
            text = self.ask(self.iana_server, tld)
            match = _REFER.search(text)
            server = match.group(1).lower().rstrip(".") if match else None
            if server is not None and not _HOSTNAME.match(server):
                server = None
            self._tld_servers[tld] = server
            return server

    def lookup(self, domain: str) -> WhoisRecord:
        """Registry, then (for thin registries) registrar. Raises WhoisFailed, UpstreamError."""
        tld = domain.rsplit(".", 1)[-1]
        registry = self.tld_server(tld)
        if registry is None:
            raise WhoisFailed(f"no WHOIS server is known for .{tld}")
        text = self.ask(registry, domain)
        fields = parse_answer(domain, text)
        chain = [registry]
        if fields is None:
            return WhoisRecord(domain, found=False, servers=chain)
        referral = _REGISTRAR_SERVER.search(text)
        if referral:
            registrar_server = referral.group(1).lower().rstrip(".")
            registrar_server = registrar_server.removeprefix("whois://")
            if _HOSTNAME.match(registrar_server) and registrar_server != registry:
                try:
                    fuller = parse_answer(domain, self.ask(registrar_server, domain))
                except (WhoisFailed, UpstreamError, SSRFBlocked):
                    fuller = None  # the registry's data stands on its own
                if fuller is not None and fuller["has_data"]:
                    chain.append(registrar_server)
                    for key, value in fuller.items():
                        if value:
                            fields[key] = value
        if not fields["has_data"]:
            raise WhoisFailed(f"{chain[-1]} answered nothing we could read")
        return WhoisRecord(
            domain,
            found=True,
            servers=chain,
            registrar=fields["registrar"],
            created=fields["created"],
            expires=fields["expires"],
            status=fields["status"],
            nameservers=fields["nameservers"],
        )
