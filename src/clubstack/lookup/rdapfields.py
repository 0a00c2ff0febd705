"""The fields the registration check reads from an RDAP answer (RFC 9083), read from the RFC's
JSON names.

whoisit's parser would read them too, but only when handed whoisit's private bootstrap object,
and its public API fetches by itself (its own HTTP session, the IANA bootstrap files from the
internet) where the core's client (SSRF guard, quotas) must fetch. The handful of fields the
check shows are read here instead; tests/lookup/test_rdap_fields.py pins them.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any

# Raised for an answer that is not what RFC 9083 describes.
MALFORMED = (ValueError, KeyError, TypeError, AttributeError)


# --- RFC 9083's JSON ------------------------------------------------------------------------


def _date(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text.strip():
        return None
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _vcard_name(entity: dict[str, Any]) -> str | None:
    card = entity.get("vcardArray")
    if not isinstance(card, list) or len(card) < 2 or not isinstance(card[1], list):
        return None
    for item in card[1]:
        if isinstance(item, list) and len(item) >= 4 and item[0] == "fn" and item[3]:
            return str(item[3]).strip()
    return None


def _entities(found: list[Any], into: dict[str, list[dict[str, Any]]]) -> None:
    for entity in found:
        if not isinstance(entity, dict):
            continue
        record = {"handle": str(entity.get("handle") or "").upper(), "name": _vcard_name(entity)}
        for role in entity.get("roles") or []:
            into.setdefault(str(role).lower(), []).append(record)
        _entities(entity.get("entities") or [], into)


def rdap_fields(kind: str, value: str, raw: dict[str, Any]) -> dict[str, Any]:
    """registration_date, expiration_date, status, nameservers, entities ({role: [{name}]}),
    and for IP networks name, handle, country, network and cidrs. Raises one of MALFORMED."""
    expected = "domain" if kind == "domain" else "ip network"
    if raw.get("objectClassName", expected) != expected:
        raise ValueError(f"expected a {expected!r} object, got {raw.get('objectClassName')!r}")
    fields: dict[str, Any] = {
        "handle": str(raw.get("handle") or "").upper(),
        "name": str(raw.get("ldhName" if kind == "domain" else "name") or ""),
        "status": [str(s) for s in raw.get("status") or [] if str(s).strip()],
        "registration_date": None,
        "expiration_date": None,
        "entities": {},
    }
    for event in raw.get("events") or []:
        action = str(event.get("eventAction", "")).strip().lower()
        if action in ("registration", "expiration"):
            fields[f"{action}_date"] = _date(event.get("eventDate"))
    _entities(raw.get("entities") or [], fields["entities"])
    if kind == "domain":
        fields["nameservers"] = [
            str(ns["ldhName"])
            for ns in raw.get("nameservers") or []
            if isinstance(ns, dict) and ns.get("ldhName")
        ]
        return fields
    cidrs = [
        ipaddress.ip_network(f"{c.get('v4prefix') or c.get('v6prefix')}/{c['length']}")
        for c in raw.get("cidr0_cidrs") or []
        if isinstance(c, dict) and (c.get("v4prefix") or c.get("v6prefix")) and "length" in c
    ]
    if not cidrs and raw.get("startAddress") and raw.get("endAddress"):
        cidrs = list(
            ipaddress.summarize_address_range(
                ipaddress.ip_address(raw["startAddress"]), ipaddress.ip_address(raw["endAddress"])
            )
        )
    query = ipaddress.ip_address(value) if value else None
    containing = [c for c in cidrs if query is not None and query in c]
    fields.update(
        country=str(raw.get("country") or ""),
        cidrs=cidrs,
        network=next(iter(containing or cidrs), None),
    )
    return fields
