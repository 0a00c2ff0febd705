"""The operator's own blocklists: local files, no network, no quota.

One entry per line, in any of the forms people keep such lists in:

    evil.example            a domain: matches itself and every name below it
    0.0.0.0 evil.example    hosts-file form (the address is ignored)
    ||evil.example^         adblock form
    203.0.113.7             an address
    198.51.100.0/24         a network
    http://evil.example/x   a URL (matched exactly, after the same normalisation as input)
    44d88612fea8...         an MD5, SHA-1 or SHA-256 hash

``#`` starts a comment. Entries are normalised like indicators (refanged, lower case, IDNA),
so ``evil[.]example`` in a list works. A file is read again when its modification time
changes, so an operator can update a list without a restart. Parsed lists are shared by every
batch in the process (a hosts-file list can have 100,000+ lines).
"""

from __future__ import annotations

import ipaddress
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from clubstack.lookup.findings import CheckResult, Level, Status
from clubstack.lookup.indicators import Indicator, IndicatorError, Kind, parse_one

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class _Entries:
    domains: dict[str, str] = field(default_factory=dict)  # name -> file it came from
    urls: dict[str, str] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    # prefix length -> {network: file}; an address is looked up once per prefix length
    networks: dict[tuple[int, int], dict[IPNetwork, str]] = field(default_factory=dict)

    def add_network(self, network: IPNetwork, source: str) -> None:
        key = (network.version, network.prefixlen)
        self.networks.setdefault(key, {})[network] = source


def _entry(line: str) -> str | None:
    line = line.split("#", 1)[0].strip()
    if not line or line.startswith("!"):  # "!" starts an adblock comment
        return None
    parts = line.split()
    if len(parts) >= 2:
        try:
            ipaddress.ip_address(parts[0])
        except ValueError:
            return parts[0]
        return parts[1]  # hosts-file form: "0.0.0.0 evil.example"
    entry = parts[0]
    if entry.startswith("||"):
        entry = entry[2:].split("^", 1)[0]
    return entry


# The common case, a plain ASCII name, skips the full indicator parser, which is far slower.
_PLAIN_NAME = re.compile(r"^(?=.*[a-z-])[a-z0-9-]+(?:\.[a-z0-9-]+)+\.?$")


def parse_lines(lines: list[str], source: str, into: _Entries) -> int:
    """Add the entries of `lines`; returns how many lines were not understood."""
    skipped = 0
    for line in lines:
        entry = _entry(line)
        if entry is None:
            continue
        if "/" in entry and "://" not in entry:
            try:
                into.add_network(ipaddress.ip_network(entry, strict=False), source)
                continue
            except ValueError:
                pass
        lowered = entry.lower()
        if _PLAIN_NAME.match(lowered) and not lowered.rstrip(".").rsplit(".", 1)[-1].isdigit():
            into.domains[lowered.rstrip(".")] = source
            continue
        try:
            indicator = parse_one(entry)
        except IndicatorError:
            skipped += 1
            continue
        if indicator.kind is Kind.DOMAIN:
            into.domains[indicator.value] = source
        elif indicator.kind is Kind.URL:
            into.urls[indicator.value] = source
        elif indicator.kind.is_hash:
            into.hashes[indicator.value] = source
        elif indicator.kind.is_ip:
            into.add_network(ipaddress.ip_network(indicator.value), source)
        else:
            skipped += 1
    return skipped


Stamp = tuple[tuple[str, float, int], ...]
_loaded: dict[tuple[Path, ...], tuple[Stamp, _Entries]] = {}
_load_lock = threading.Lock()


def _load(files: tuple[Path, ...]) -> _Entries:
    stamp = tuple((str(p), p.stat().st_mtime, p.stat().st_size) for p in files)
    with _load_lock:
        known = _loaded.get(files)
        if known is not None and known[0] == stamp:
            return known[1]
        entries = _Entries()
        for path in files:
            text = path.read_text(encoding="utf-8", errors="replace")
            parse_lines(text.splitlines(), path.name, entries)
        _loaded[files] = (stamp, entries)
        return entries


class BlocklistCheck:
    name = "blocklist"
    title = "Blocklist"
    kinds = frozenset(Kind)

    def __init__(self, files: list[Path]) -> None:
        self.files = list(files)

    def _load(self) -> _Entries:
        return _load(tuple(self.files))

    def run(self, indicator: Indicator) -> CheckResult:
        if not self.files:
            return CheckResult(self.name, Status.NOT_CONFIGURED, summary="no blocklist file")
        try:
            entries = self._load()
        except OSError as exc:
            return CheckResult(
                self.name, Status.ERROR, summary=f"blocklist unreadable: {exc.strerror}"
            )
        hit = self._match(indicator, entries)
        result = CheckResult(self.name)
        if hit is None:
            result.summary = "not on the blocklists"
            result.add(Level.NONE, result.summary)
            return result
        entry, source = hit
        result.data = {"entry": entry, "list": source}
        result.summary = f"on {source}: {entry}"
        result.add(Level.MALICIOUS, f"listed in {source} as {entry}")
        return result

    def _match(self, indicator: Indicator, entries: _Entries) -> tuple[str, str] | None:
        if indicator.kind.is_hash:
            source = entries.hashes.get(indicator.value)
            return (indicator.value, source) if source else None
        if indicator.kind is Kind.URL and indicator.value in entries.urls:
            return indicator.value, entries.urls[indicator.value]
        host = indicator.host
        if host is None:
            return None
        if indicator.host_is_ip:
            address = ipaddress.ip_address(host.strip("[]"))
            for (version, prefix), networks in entries.networks.items():
                if version != address.version:
                    continue
                network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
                if network in networks:
                    return str(network if prefix < address.max_prefixlen else address), networks[
                        network
                    ]
            return None
        labels = host.split(".")
        for start in range(len(labels)):
            name = ".".join(labels[start:])
            if name in entries.domains:
                return name, entries.domains[name]
        return None
