"""The gate around checkdmarc_cache.py's replacement of checkdmarc's module-level DNS cache: only
on tested versions; elsewhere checkdmarc's own settings switch the cache off, and two resolvers
pointing at different servers still get their own answers.

checkdmarc reads those settings when first imported, so the fallback runs in a fresh
interpreter, with the version check told that checkdmarc is a later, untested one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lookup_dns import LocalDNS, ZoneResolver

from clubstack.lookup import checkdmarc_cache

SRC = Path(__file__).parents[2] / "src"

FORCED_FALLBACK = """
import json, sys
from importlib import metadata
real = metadata.version
metadata.version = lambda name: "7.0.0" if name == "checkdmarc" else real(name)
if sys.argv[1] == "imported-first":
    import checkdmarc.utils
from clubstack.lookup.checkdmarc_cache import CACHE
from clubstack.lookup.indicators import parse_one
from clubstack.lookup.mailsec import MailSecurityCheck
from clubstack.lookup.resolver import make_resolver
answers = [
    MailSecurityCheck(make_resolver([server], timeout=1.0, lifetime=1.5))
    .run(parse_one("gate.example.com")).data["spf"]["dns_lookups"]
    for server in sys.argv[2:]
]
print(json.dumps({"cache": CACHE, "answers": answers}))
"""


def test_the_private_path_runs_only_on_tested_versions() -> None:
    assert checkdmarc_cache.CACHE == "replaced"  # this environment is inside the tested range
    assert checkdmarc_cache.checkdmarc_fits("6.0.4")
    assert not checkdmarc_cache.checkdmarc_fits("6.1.0")
    assert not checkdmarc_cache.checkdmarc_fits("5.9.0")


# The same name's SPF record includes a name whose own record differs between the two servers:
# one DNS lookup behind the first, two behind the second. checkdmarc resolves the include
# itself, so a cache keyed by name alone gives the second resolver the first one's answer.
ZONES = [
    'gate.example.com. IN TXT "v=spf1 include:inc.example.com -all"\n' + inc
    for inc in (
        'inc.example.com. IN TXT "v=spf1 -all"',
        'inc.example.com. IN TXT "v=spf1 include:leaf.example.com -all"\n'
        'leaf.example.com. IN TXT "v=spf1 -all"',
    )
]


def test_two_resolvers_get_their_own_answers_on_the_private_path() -> None:
    from clubstack.lookup.indicators import parse_one
    from clubstack.lookup.mailsec import MailSecurityCheck
    from clubstack.lookup.resolver import make_resolver

    servers = [LocalDNS(ZoneResolver(zone)).start() for zone in ZONES]
    try:
        answers = [
            MailSecurityCheck(make_resolver([server.nameserver], timeout=1.0, lifetime=1.5))
            .run(parse_one("gate.example.com"))
            .data["spf"]["dns_lookups"]
            for server in servers
        ]
    finally:
        for server in servers:
            server.stop()
    assert answers == [1, 2]


def _forced_fallback(mode: str) -> dict:
    servers = [LocalDNS(ZoneResolver(zone)).start() for zone in ZONES]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DNS_CACHE")}
    env["PYTHONPATH"] = str(SRC)
    try:
        done = subprocess.run(
            [sys.executable, "-c", FORCED_FALLBACK, mode, *(s.nameserver for s in servers)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=True,
        )
    finally:
        for server in servers:
            server.stop()
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"log": done.stderr}


def test_forced_fallback_still_keeps_resolvers_apart() -> None:
    result = _forced_fallback("clean")
    assert result["cache"] == "settings"
    assert result["answers"] == [1, 2]  # a shared cache would answer 1 twice


def test_fallback_after_an_earlier_import_says_so() -> None:
    result = _forced_fallback("imported-first")
    assert result["cache"] == "checkdmarc's own"
    assert "imported before clubstack could switch its DNS cache off" in result["log"]
    assert result["answers"] == [1, 1]  # what the warning is about
