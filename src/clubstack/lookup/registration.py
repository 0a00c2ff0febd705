"""Registration checks: RDAP for domains and IP networks (port-43 WHOIS for domains RDAP does
not know, see whoisquery.py), ASN and country via Team Cymru DNS.

RDAP answers are fetched through the core HTTP client (SSRF guard, timeouts) from a
configurable base URL (a bootstrap redirector such as rdap.org in production, a local
stand-in in tests) and read by rdapfields.py from RFC 9083's field names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import dns.exception
import dns.resolver

from clubstack.core.clock import utcnow
from clubstack.core.net import HttpClient, SSRFBlocked, UpstreamError
from clubstack.lookup.dnsrecords import lookup
from clubstack.lookup.findings import CheckResult, Level, Status, not_applicable
from clubstack.lookup.indicators import Indicator, Kind, registered_domain
from clubstack.lookup.rdapfields import MALFORMED, rdap_fields
from clubstack.lookup.whoisquery import WhoisClient, WhoisFailed

Clock = Callable[[], datetime]


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _first_name(entities: dict[str, list[dict[str, Any]]], *roles: str) -> str | None:
    for role in roles:
        for entity in entities.get(role, []) or []:
            if entity.get("name"):
                return str(entity["name"])
    return None


class RdapCheck:
    name = "rdap"
    title = "Registration"
    kinds = frozenset({Kind.DOMAIN, Kind.URL, Kind.EMAIL, Kind.IPV4, Kind.IPV6})

    def __init__(
        self,
        http: HttpClient,
        *,
        base_url: str = "https://rdap.org",
        new_domain_days: int = 30,
        clock: Clock = utcnow,
        whois: WhoisClient | None = None,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.new_domain_days = new_domain_days
        self.clock = clock
        self.whois = whois

    def run(self, indicator: Indicator) -> CheckResult:
        host = indicator.host
        if host is None:
            return not_applicable(self.name, "file hashes are not registered")
        if indicator.host_is_ip:
            address = ipaddress.ip_address(host)
            if not address.is_global:
                return not_applicable(self.name, "private or reserved address")
            return self._fetch("ip", address.compressed)
        domain = registered_domain(host)
        if domain is None:
            return not_applicable(self.name, "internal name: no public registration")
        return self._fetch("domain", domain)

    def _fetch(self, kind: str, value: str) -> CheckResult:
        url = f"{self.base_url}/{kind}/{value}"
        try:
            response = self.http.get(url, headers={"Accept": "application/rdap+json"})
        except (UpstreamError, SSRFBlocked) as exc:
            return CheckResult(self.name, Status.ERROR, summary=str(exc.message))
        if response.status_code == 404 and kind == "domain" and self.whois is not None:
            # A bootstrap redirector answers 404 both for "no RDAP server for this TLD" and for
            # "no such domain"; WHOIS tells the two apart and covers the TLDs without RDAP.
            return self._from_whois(value)
        if response.status_code == 404:
            result = CheckResult(self.name, summary="not found in RDAP")
            result.add(Level.NONE, result.summary)
            return result
        if response.status_code == 429:
            return CheckResult(self.name, Status.ERROR, summary="RDAP server: too many requests")
        if response.status_code != 200:
            return CheckResult(self.name, Status.ERROR, summary=f"RDAP HTTP {response.status_code}")
        try:
            raw = response.json()
            if not isinstance(raw, dict):
                raise ValueError("not an object")
            parsed = rdap_fields(kind, value, raw)
        except MALFORMED as exc:
            return CheckResult(self.name, Status.ERROR, summary=f"malformed RDAP answer: {exc}")
        if kind == "domain":
            return self._domain(value, parsed)
        return self._ip(parsed)

    def _from_whois(self, domain: str) -> CheckResult:
        assert self.whois is not None
        try:
            record = self.whois.lookup(domain)
        except WhoisFailed as exc:
            result = CheckResult(self.name, summary=f"not found in RDAP; {exc}")
            result.add(Level.NONE, result.summary)
            return result
        except (UpstreamError, SSRFBlocked) as exc:
            return CheckResult(
                self.name, Status.ERROR, summary=f"not in RDAP; WHOIS: {exc.message}"
            )
        if not record.found:
            result = CheckResult(self.name, summary="not found in RDAP or WHOIS")
            result.data = {"domain": domain, "source": "whois", "whois_servers": record.servers}
            result.add(Level.NONE, f"{record.servers[-1]}: no such domain")
            return result
        return self._domain_fields(
            domain,
            registrar=record.registrar,
            created=record.created,
            expires=record.expires,
            status=record.status,
            nameservers=record.nameservers,
            source="whois",
            servers=record.servers,
        )

    def _domain(self, domain: str, parsed: dict[str, Any]) -> CheckResult:
        entities = parsed.get("entities") or {}
        return self._domain_fields(
            domain,
            registrar=_first_name(entities, "registrar"),
            created=parsed.get("registration_date"),
            expires=parsed.get("expiration_date"),
            status=[str(s) for s in parsed.get("status") or []],
            nameservers=[n.lower() for n in parsed.get("nameservers") or []],
            source="rdap",
        )

    def _domain_fields(
        self,
        domain: str,
        *,
        registrar: str | None,
        created: Any,
        expires: Any,
        status: list[str],
        nameservers: list[str],
        source: str,
        servers: list[str] | None = None,
    ) -> CheckResult:
        """The same fields and the same judgement whether they came from RDAP or WHOIS."""
        result = CheckResult(self.name)
        result.data = {
            "domain": domain,
            "registrar": registrar,
            "created": _iso(created),
            "expires": _iso(expires),
            "status": status,
            "nameservers": nameservers,
            "source": source,
        }
        if servers:
            result.data["whois_servers"] = servers
        now = self.clock()
        parts = [registrar or "registrar unknown"]
        if isinstance(created, datetime):
            age = now - created
            parts.append(f"created {created.date().isoformat()}")
            if age < timedelta(days=self.new_domain_days):
                result.add(
                    Level.SUSPICIOUS,
                    f"registered {max(age.days, 0)} days ago (newer than {self.new_domain_days})",
                )
            else:
                result.add(Level.HARMLESS, f"registered {age.days} days ago")
        else:
            result.add(Level.NONE, "creation date not published")
        if isinstance(expires, datetime) and expires < now:
            result.add(Level.SUSPICIOUS, f"expired on {expires.date().isoformat()}")
        if any("hold" in s.lower() for s in status):
            result.add(Level.SUSPICIOUS, "on hold: the registry or registrar suspended it")
        if source == "whois":
            parts.append("via WHOIS")
        result.summary = ", ".join(parts)
        return result

    def _ip(self, parsed: dict[str, Any]) -> CheckResult:
        entities = parsed.get("entities") or {}
        owner = _first_name(entities, "registrant", "administrative", "abuse") or parsed.get("name")
        network = str(parsed.get("network") or ", ".join(str(c) for c in parsed.get("cidrs") or []))
        country = parsed.get("country") or None
        result = CheckResult(self.name)
        result.data = {
            "network": network,
            "name": str(parsed.get("name") or "") or None,
            "handle": str(parsed.get("handle") or "") or None,
            "owner": owner,
            "country": country,
            "created": _iso(parsed.get("registration_date")),
        }
        result.summary = " ".join(str(p) for p in (network, owner, country) if p)
        result.add(Level.NONE, result.summary or "network without details")
        return result


def cymru_origin_name(address: str) -> str:
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return ".".join(reversed(ip.exploded.split("."))) + ".origin.asn.cymru.com"
    nibbles = ip.exploded.replace(":", "")
    return ".".join(reversed(nibbles)) + ".origin6.asn.cymru.com"


def _fields(txt: str) -> list[str]:
    return [part.strip() for part in txt.split("|")]


class AsnCheck:
    """Origin AS, prefix, country and AS name from Team Cymru's IP-to-ASN DNS service."""

    name = "asn"
    title = "ASN"
    kinds = frozenset({Kind.DOMAIN, Kind.URL, Kind.EMAIL, Kind.IPV4, Kind.IPV6})

    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self.resolver = resolver

    def run(self, indicator: Indicator) -> CheckResult:
        host = indicator.host
        if host is None:
            return not_applicable(self.name, "file hashes have no network")
        try:
            address = host if indicator.host_is_ip else self._first_address(host)
            if address is None:
                return not_applicable(self.name, "the name has no address")
            if not ipaddress.ip_address(address).is_global:
                return not_applicable(self.name, f"{address} is not a public address")
            return self._origin(address)
        except dns.exception.DNSException as exc:
            return CheckResult(self.name, Status.ERROR, summary=f"DNS failed: {exc}")

    def _first_address(self, host: str) -> str | None:
        for rtype in ("A", "AAAA"):
            answer = lookup(self.resolver, host, rtype)
            if answer:
                return answer[0]
        return None

    def _origin(self, address: str) -> CheckResult:
        result = CheckResult(self.name)
        origin = lookup(self.resolver, cymru_origin_name(address), "TXT") or []
        if not origin:
            result.summary = f"{address}: not announced"
            result.add(Level.NONE, result.summary)
            return result
        fields = _fields(origin[0])
        if len(fields) < 3 or not fields[0].split()[0].isdigit():
            return CheckResult(self.name, Status.ERROR, summary="malformed Team Cymru answer")
        asn = fields[0].split()[0]  # several origin ASes come space-separated
        data: dict[str, Any] = {
            "address": address,
            "asn": int(asn),
            "prefix": fields[1],
            "country": fields[2] or None,
            "registry": fields[3] if len(fields) > 3 else None,
        }
        names = lookup(self.resolver, f"AS{asn}.asn.cymru.com", "TXT") or []
        if names:
            as_fields = _fields(names[0])
            data["as_name"] = as_fields[4] if len(as_fields) > 4 else None
        result.data = data
        result.summary = " ".join(
            str(p) for p in (f"AS{asn}", data.get("as_name"), data["country"]) if p
        )
        result.add(Level.NONE, result.summary)
        return result
