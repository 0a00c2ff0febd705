"""checkdmarc, with its module-level DNS cache switched off; mailsec.py imports checkdmarc from
here so that this runs before checkdmarc is first imported.

checkdmarc keeps DNS answers in one process-wide cache keyed by name only, not by nameserver,
for its own lifetime (30 minutes by default). The look-up desk caches per (indicator, check) in
clubstack.lookup.cache, and within a batch in the resolver's TTL-honouring cache; checkdmarc's
would hand one resolver's answers to another and keep them past their TTL.

The gate. This is the one module of clubstack that touches checkdmarc's internals: it replaces
``checkdmarc.utils.DNS_CACHE``, an undocumented module attribute, with a cache that never
remembers (the query helpers then skip caching altogether). Used only on CHECKDMARC_TESTED;
pyproject.toml bounds checkdmarc below its end (tested on 6.0.0 and 6.0.4).

Outside those versions the cache is switched off through checkdmarc's own settings instead: the
environment variables DNS_CACHE_MAX_LEN and DNS_CACHE_MAX_AGE_SECONDS, which checkdmarc reads
when it is first imported, set here to one entry that expires at once. That only works if
checkdmarc was not imported before this module (nothing in src/ does; a warning says so
otherwise). tests/lookup/test_checkdmarc_gate.py forces that path in a fresh interpreter and
checks that two resolvers still get their own answers. ``CACHE`` says which path this process
took.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from importlib import metadata

log = logging.getLogger("clubstack.lookup.checkdmarc_cache")

# [first, last) checkdmarc versions tested; see the module docstring.
CHECKDMARC_TESTED = ((6, 0), (6, 1))


def checkdmarc_fits(checkdmarc_version: str) -> bool:
    numbers = tuple(int(part) for part in re.findall(r"\d+", checkdmarc_version)[:2])
    return CHECKDMARC_TESTED[0] <= numbers < CHECKDMARC_TESTED[1]


class _NoCache:
    """Stands in for checkdmarc's module-level ExpiringDict: never remembers anything."""

    def get(self, key: object, default: object = None) -> object:
        return default

    def __setitem__(self, key: object, value: object) -> None:
        return None

    def __contains__(self, key: object) -> bool:
        return False


def _switch_off_before_import() -> str:
    if "checkdmarc" in sys.modules:
        log.warning(
            "checkdmarc was imported before clubstack could switch its DNS cache off; "
            "its answers may be shared between resolvers for DNS_CACHE_MAX_AGE_SECONDS"
        )
        return "checkdmarc's own"
    os.environ["DNS_CACHE_MAX_LEN"] = "1"  # ExpiringDict needs at least one entry
    os.environ["DNS_CACHE_MAX_AGE_SECONDS"] = "0"  # every entry has expired when read
    return "settings"


# "replaced" (the private path), "settings" (checkdmarc's environment variables) or
# "checkdmarc's own" (neither could be used: see the warning).
CACHE = (
    "replaced" if checkdmarc_fits(metadata.version("checkdmarc")) else _switch_off_before_import()
)

# After the environment is set: checkdmarc reads it when first imported.
import checkdmarc.dmarc  # noqa: E402
import checkdmarc.mta_sts  # noqa: E402
import checkdmarc.smtp_tls_reporting  # noqa: E402
import checkdmarc.spf  # noqa: E402
import checkdmarc.utils  # noqa: E402

if CACHE == "replaced":
    checkdmarc.utils.DNS_CACHE = _NoCache()

__all__ = ["CACHE", "checkdmarc"]
