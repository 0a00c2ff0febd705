"""DNS check: A, AAAA, MX, NS, TXT, CAA, SOA for names; PTR for IP addresses."""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.resolver
import dns.reversename

from clubstack.lookup.findings import CheckResult, Level, Status, not_applicable
from clubstack.lookup.indicators import Indicator, Kind, is_public_name

NAME_TYPES = ("A", "AAAA", "MX", "NS", "TXT", "CAA", "SOA")


def _txt(rdata: object) -> str:
    strings = getattr(rdata, "strings", None)
    if strings is not None:
        return b"".join(strings).decode("utf-8", "replace")
    return rdata.to_text()  # type: ignore[attr-defined]


def lookup(resolver: dns.resolver.Resolver, name: str, rtype: str) -> list[str] | None:
    """Records of one type as text; [] when the name exists without them; None = NXDOMAIN.

    Timeouts and SERVFAIL propagate as dns.exception.DNSException.
    """
    try:
        answer = resolver.resolve(name, rtype, raise_on_no_answer=False, search=False)
    except dns.resolver.NXDOMAIN:
        return None
    if answer.rrset is None:
        return []
    if rtype == "TXT":
        return [_txt(r) for r in answer.rrset]
    return [r.to_text() for r in answer.rrset]


_INTERNAL_NETWORKS = [
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
]


def _unusual_address(address: str) -> str | None:
    """Why a public name pointing here is odd (DNS rebinding, SSRF bait), or None.

    Documentation ranges (192.0.2.0/24, 2001:db8::/32) are not flagged: they reach nothing.
    """
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if any(ip in net for net in _INTERNAL_NETWORKS if net.version == ip.version):
        return "private"
    return None


class DnsCheck:
    name = "dns"
    title = "DNS"
    kinds = frozenset(Kind)

    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self.resolver = resolver

    def run(self, indicator: Indicator) -> CheckResult:
        host = indicator.host
        if host is None:
            return not_applicable(self.name, "file hashes have no DNS")
        try:
            if indicator.host_is_ip:
                return self._ptr(host)
            return self._name(host)
        except dns.exception.DNSException as exc:
            return CheckResult(self.name, Status.ERROR, summary=f"DNS failed: {exc}")

    def _ptr(self, address: str) -> CheckResult:
        result = CheckResult(self.name)
        names = lookup(self.resolver, dns.reversename.from_address(address).to_text(), "PTR")
        result.data = {"PTR": names or []}
        if names:
            result.summary = "PTR " + ", ".join(n.rstrip(".") for n in names)
            result.add(Level.HARMLESS, result.summary)
        else:
            result.summary = "no PTR record"
            result.add(Level.NONE, result.summary)
        return result

    def _name(self, name: str) -> CheckResult:
        result = CheckResult(self.name)
        records: dict[str, list[str]] = {}
        for rtype in NAME_TYPES:
            answer = lookup(self.resolver, name, rtype)
            if answer is None:
                result.summary = "does not exist (NXDOMAIN)"
                result.data = {"nxdomain": True}
                result.add(Level.NONE, result.summary)
                return result
            records[rtype] = answer
        result.data = {"records": records}
        addresses = records["A"] + records["AAAA"]
        if addresses:
            result.summary = ", ".join(addresses[:3]) + (" …" if len(addresses) > 3 else "")
            result.add(Level.HARMLESS, f"resolves to {len(addresses)} address(es)")
        elif records["MX"]:
            result.summary = "mail only (MX, no address)"
            result.add(Level.HARMLESS, result.summary)
        else:
            result.summary = "exists, no address"
            result.add(Level.NONE, result.summary)
        if is_public_name(name):
            for address in addresses:
                unusual = _unusual_address(address)
                if unusual:
                    result.add(
                        Level.SUSPICIOUS,
                        f"public name points to a {unusual} address {address}",
                    )
        return result
