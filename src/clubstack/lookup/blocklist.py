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
changes, so an operator can update a list without a restart.
"""

from __future__ import annotations

import ipaddress
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


class BlocklistCheck:
    name = "blocklist"
    title = "Blocklist"
    kinds = frozenset(Kind)

    def __init__(self, files: list[Path]) -> None:
        self.files = list(files)
        self._lock = threading.Lock()
        self._stamp: tuple[tuple[str, float, int], ...] | None = None
        self._entries = _Entries()
        self._skipped = 0

    def _load(self) -> _Entries:
        stamp = tuple((str(p), p.stat().st_mtime, p.stat().st_size) for p in self.files)
        with self._lock:
            if stamp != self._stamp:
                entries, skipped = _Entries(), 0
                for path in self.files:
                    text = path.read_text(encoding="utf-8", errors="replace")
                    skipped += parse_lines(text.splitlines(), path.name, entries)
                self._entries, self._skipped, self._stamp = entries, skipped, stamp
            return self._entries

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
