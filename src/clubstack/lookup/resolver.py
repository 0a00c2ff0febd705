"""The DNS resolver every check uses: nameservers from settings, ``host:port`` allowed."""

from __future__ import annotations

import ipaddress

import dns.nameserver
import dns.resolver


class NameserverError(ValueError):
    """A nameserver setting we cannot use."""


def parse_nameserver(entry: str) -> tuple[str, int]:
    """``9.9.9.9``, ``127.0.0.1:5353``, ``::1``, ``[::1]:5353`` -> (address, port)."""
    entry = entry.strip()
    host, port = entry, 53
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise NameserverError(f"bad nameserver {entry!r}")
            port = _port(rest[1:], entry)
    elif entry.count(":") == 1:
        host, _, port_text = entry.partition(":")
        port = _port(port_text, entry)
    try:
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise NameserverError(f"nameserver must be an IP address: {entry!r}") from exc
    return host, port


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise NameserverError(f"bad port in nameserver {entry!r}")
    return int(text)


def make_resolver(
    nameservers: list[str] | tuple[str, ...] = (),
    *,
    timeout: float = 3.0,
    lifetime: float = 6.0,
    cache: bool = True,
) -> dns.resolver.Resolver:
    """A dnspython resolver for the configured nameservers (system ones when empty).

    The resolver's own cache honours DNS TTLs and de-duplicates the queries that several
    checks of one batch make for the same name (TXT of a domain for DNS and SPF, say).
    dnspython's resolver and its cache are safe to share between threads.
    """
    if nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(*parse_nameserver(entry)) for entry in nameservers
        ]
    else:
        resolver = dns.resolver.Resolver()
    resolver.timeout = timeout
    resolver.lifetime = lifetime
    if cache:
        resolver.cache = dns.resolver.Cache()
    return resolver
