"""Mail security check: SPF, DMARC, MX, MTA-STS, TLS-RPT, DNSSEC, BIMI, DKIM.

checkdmarc does the parsing where it fits: SPF (resolving include/a/mx/redirect and
counting against the 10-lookup limit), DMARC (tags, report URI checks), the MTA-STS
record and policy text, TLS-RPT. It is always given our resolver, so the configured
nameservers are used. The top-level TXT records are read by us, through the same
resolver cache as the DNS check: checkdmarc's query_* helpers add SPF-type and CNAME
queries per record, a quarter of all queries in a batch, for warnings we do not show.
checkdmarc's module-level DNS cache (keyed by name only, not by nameserver, with its own
lifetime) is switched off by checkdmarc_cache.py, which is why checkdmarc is imported from
there: caching is done per (indicator, check) by clubstack.lookup.cache, and within a batch
by the resolver's TTL-honouring cache.

Written here instead of checkdmarc:
- MTA-STS policy *fetch*: checkdmarc fetches with its own requests session; every fetch
  must go through the core HTTP client (SSRF guard), so we fetch and let checkdmarc parse.
- BIMI: checkdmarc's parser downloads the logo and certificate; we only read the tags.
- DNSSEC: checkdmarc validates the chain by querying nameservers on port 53 directly,
  which ignores a ``host:port`` resolver setting; we report DS + DNSKEY presence as seen
  through the configured resolver (and the AD bit when the resolver validates).
- DKIM: checkdmarc has no DKIM check; we read ``<selector>._domainkey`` and the key size.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
from collections.abc import Callable
from typing import Any

import dns.exception
import dns.flags
import dns.resolver
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from clubstack.lookup.checkdmarc_cache import checkdmarc
from clubstack.lookup.dnsrecords import lookup
from clubstack.lookup.findings import CheckResult, Level, Status, not_applicable
from clubstack.lookup.indicators import Indicator, Kind, is_public_name, registered_domain

log = logging.getLogger("clubstack.lookup.mailsec")


# A policy fetcher: url -> policy text. Raises on refusal or failure (the message is shown).
PolicyFetcher = Callable[[str], str]


MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 policies are a few hundred bytes


def policy_fetcher(http: Any) -> PolicyFetcher:
    """Fetch MTA-STS policies through the core HTTP client (SSRF guard, timeouts)."""

    def fetch(url: str) -> str:
        response = http.get(url, allow_redirects=False, stream=True)
        try:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code} from {url}")
            body = response.raw.read(MAX_POLICY_BYTES + 1, decode_content=True)
        finally:
            response.close()
        if len(body) > MAX_POLICY_BYTES:
            raise ValueError("policy larger than 64 KiB")
        return body.decode("utf-8", "replace")

    return fetch


def _tags(record: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = value.strip()
    return tags


def dkim_key_bits(p: str) -> tuple[str, int | None]:
    """Key type and size of a DKIM ``p=`` value."""
    key = load_der_public_key(base64.b64decode("".join(p.split())))
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519", 256
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ec", key.key_size
    return type(key).__name__, None


class MailSecurityCheck:
    name = "mail"
    title = "Mail security"
    kinds = frozenset({Kind.DOMAIN, Kind.EMAIL, Kind.URL})

    def __init__(
        self,
        resolver: dns.resolver.Resolver,
        *,
        fetch_policy: PolicyFetcher | None = None,
        dkim_selectors: tuple[str, ...] | list[str] = (),
        timeout: float = 3.0,
    ) -> None:
        self.resolver = resolver
        self.fetch_policy = fetch_policy
        self.dkim_selectors = tuple(dkim_selectors)
        self.timeout = timeout

    def run(self, indicator: Indicator) -> CheckResult:
        host = indicator.host
        if host is None or indicator.host_is_ip:
            return not_applicable(self.name, "mail security applies to domain names")
        try:
            return self._run(host)
        except dns.exception.DNSException as exc:
            return CheckResult(self.name, Status.ERROR, summary=f"DNS failed: {exc}")

    def _kw(self) -> dict[str, Any]:
        return {"resolver": self.resolver, "timeout": self.timeout, "retries": 0}

    def _run(self, domain: str) -> CheckResult:
        result = CheckResult(self.name)
        mx = lookup(self.resolver, domain, "MX")
        if mx is None:
            result.summary = "domain does not exist"
            result.data = {"nxdomain": True}
            return result
        data: dict[str, Any] = {"domain": domain}
        self._mx(result, data, mx)
        self._spf(result, data, domain)
        self._dmarc(result, data, domain)
        self._mta_sts(result, data, domain)
        self._tls_rpt(result, data, domain)
        self._dnssec(result, data, domain)
        self._bimi(result, data, domain)
        self._dkim(result, data, domain)
        result.data = data
        if not is_public_name(domain):
            # An internal name receives no mail from the internet: nobody can be fooled by
            # spoofing it there, so gaps are information, not a reason to distrust the host.
            for finding in result.findings:
                if finding.level >= Level.SUSPICIOUS:
                    finding.level = Level.NONE
            data["internal"] = True
        problems = [f.text for f in result.findings if f.level >= Level.SUSPICIOUS]
        if problems:
            result.summary = "; ".join(problems[:2]) + (" …" if len(problems) > 2 else "")
        elif data.get("internal"):
            notes = [f.text for f in result.findings][:2]
            result.summary = "internal name" + ("".join(f"; {n}" for n in notes))
        else:
            result.summary = "SPF and DMARC enforced"
        return result

    # --- parts ---------------------------------------------------------------------

    def _mx(self, result: CheckResult, data: dict[str, Any], mx: list[str]) -> None:
        hosts = sorted(mx, key=lambda r: int(r.split()[0]) if r.split()[0].isdigit() else 0)
        data["mx"] = hosts
        if any(r.split()[-1] == "." for r in hosts):
            result.add(Level.NONE, "null MX: the domain accepts no mail")
        elif not hosts:
            result.add(Level.NONE, "no MX records")

    def _records(self, name: str, prefix: str) -> list[str]:
        """TXT records at ``name`` that start with ``prefix`` (case-insensitive)."""
        prefix = prefix.lower()
        return [r for r in lookup(self.resolver, name, "TXT") or [] if r.lower().startswith(prefix)]

    def _spf(self, result: CheckResult, data: dict[str, Any], domain: str) -> None:
        records = [r for r in self._records(domain, "v=spf1") if r[6:7] in ("", " ")]
        spf: dict[str, Any] = {"record": records[0] if records else None}
        data["spf"] = spf
        if not records:
            result.add(Level.SUSPICIOUS, "SPF missing: anyone may send as this domain")
            return
        if len(records) > 1:
            spf["records"] = records
            result.add(Level.SUSPICIOUS, "several SPF records: receivers treat that as an error")
            return
        try:
            parsed = checkdmarc.spf.parse_spf_record(
                records[0], domain, ignore_too_many_lookups=True, **self._kw()
            )
        except checkdmarc.spf.SPFError as exc:
            spf["error"] = str(exc.args[0]) if exc.args else str(exc)
            result.add(Level.SUSPICIOUS, f"SPF invalid: {spf['error']}")
            return
        lookups = int(parsed.get("dns_lookups") or 0)
        all_action = (parsed.get("parsed") or {}).get("all")
        spf.update(
            dns_lookups=lookups,
            void_dns_lookups=parsed.get("void_dns_lookups"),
            all=all_action,
            error=parsed.get("error"),
            warnings=[str(w) for w in parsed.get("warnings", [])],
        )
        if lookups > 10:
            result.add(Level.SUSPICIOUS, f"SPF needs {lookups} DNS lookups (limit 10): permerror")
        elif parsed.get("error"):
            result.add(Level.SUSPICIOUS, f"SPF invalid: {parsed['error']}")
        if all_action == "pass":
            result.add(Level.SUSPICIOUS, "SPF ends in +all: anyone may send as this domain")
        elif all_action == "neutral":
            result.add(Level.SUSPICIOUS, "SPF ends in ?all: no protection")
        elif all_action is None:
            result.add(Level.SUSPICIOUS, "SPF has no all mechanism")
        elif lookups <= 10 and not parsed.get("error"):
            result.add(Level.HARMLESS, f"SPF ok ({all_action} for others, {lookups} lookups)")

    def _dmarc(self, result: CheckResult, data: dict[str, Any], domain: str) -> None:
        location = domain
        records = self._records(f"_dmarc.{domain}", "v=DMARC1")
        org = registered_domain(domain)
        if not records and org and org != domain:
            location = org
            records = self._records(f"_dmarc.{org}", "v=DMARC1")
        dmarc: dict[str, Any] = {"record": records[0] if records else None, "location": location}
        data["dmarc"] = dmarc
        if not records:
            result.add(Level.SUSPICIOUS, "DMARC missing")
            return
        if len(records) > 1:
            result.add(Level.SUSPICIOUS, "several DMARC records: receivers ignore them all")
            return
        try:
            parsed = checkdmarc.dmarc.parse_dmarc_record(records[0], location, **self._kw())
        except checkdmarc.dmarc.DMARCError as exc:
            dmarc["error"] = str(exc)
            result.add(Level.SUSPICIOUS, f"DMARC invalid: {exc}")
            return
        tags = parsed.get("tags") or {}

        def tag(name: str) -> Any:
            return (tags.get(name) or {}).get("value")

        rua = [
            f"{u.get('scheme')}:{u.get('address')}"
            for u in (tag("rua") or [])
            if isinstance(u, dict)
        ]
        policy = tag("p")
        # checkdmarc follows RFC 9989, which dropped pct; receivers still honour it.
        raw_pct = tag("pct") or _tags(records[0]).get("pct")
        pct = int(str(raw_pct)) if str(raw_pct or "").isdigit() else None
        dmarc.update(
            p=policy,
            sp=tag("sp"),
            pct=pct,
            rua=rua,
            warnings=[str(w) for w in parsed.get("warnings", [])],
        )
        if policy == "none":
            result.add(Level.SUSPICIOUS, "DMARC p=none: not enforced")
        elif pct is not None and pct < 100:
            result.add(Level.SUSPICIOUS, f"DMARC p={policy} applies to only {pct}% of mail")
        else:
            result.add(Level.HARMLESS, f"DMARC p={policy}")
        if not rua:
            result.add(Level.NONE, "DMARC has no rua: no aggregate reports")

    def _mta_sts(self, result: CheckResult, data: dict[str, Any], domain: str) -> None:
        records = self._records(f"_mta-sts.{domain}", "v=STSv1")
        if not records:
            data["mta_sts"] = {"record": None}
            return
        sts: dict[str, Any] = {"record": records[0]}
        data["mta_sts"] = sts
        try:
            checkdmarc.mta_sts.parse_mta_sts_record(records[0])
        except checkdmarc.mta_sts.MTASTSError as exc:
            sts["error"] = str(exc)
            result.add(Level.SUSPICIOUS, f"MTA-STS record invalid: {exc}")
            return
        if self.fetch_policy is None:
            result.add(Level.NONE, "MTA-STS record present (policy not fetched)")
            return
        url = f"https://mta-sts.{domain}/.well-known/mta-sts.txt"
        sts["policy_url"] = url
        try:
            self._refuse_private(f"mta-sts.{domain}")
            text = self.fetch_policy(url)
            policy = checkdmarc.mta_sts.parse_mta_sts_policy(text)
        except Exception as exc:  # refused, unreachable or unparsable: all are findings
            message = getattr(exc, "message", None) or str(exc)
            sts["error"] = message
            result.add(Level.SUSPICIOUS, f"MTA-STS policy unavailable: {message}")
            return
        sts["policy"] = policy["policy"]
        mode = policy["policy"].get("mode")
        level = Level.HARMLESS if mode == "enforce" else Level.NONE
        result.add(level, f"MTA-STS mode={mode}")

    def _refuse_private(self, host: str) -> None:
        """Refuse a fetch when *our* resolver says the host is on a private network.

        The core HTTP client checks again with the system resolver and the connected
        socket; this covers the case where the configured resolver answers differently.
        """
        from clubstack.core.net import SSRFBlocked, address_refused

        for rtype in ("A", "AAAA"):
            for address in lookup(self.resolver, host, rtype) or []:
                if address_refused(address):
                    raise SSRFBlocked(
                        f"{host} resolves to {ipaddress.ip_address(address)}, "
                        "an address this server may not reach"
                    )

    def _tls_rpt(self, result: CheckResult, data: dict[str, Any], domain: str) -> None:
        records = self._records(f"_smtp._tls.{domain}", "v=TLSRPTv1")
        rpt: dict[str, Any] = {"record": records[0] if records else None}
        data["tls_rpt"] = rpt
        if not records:
            return
        try:
            parsed = checkdmarc.smtp_tls_reporting.parse_smtp_tls_reporting_record(records[0])
            rpt["rua"] = ((parsed.get("tags") or {}).get("rua") or {}).get("value")
        except checkdmarc.smtp_tls_reporting.SMTPTLSReportingError as exc:
            rpt["error"] = str(exc)

    def _dnssec(self, result: CheckResult, data: dict[str, Any], domain: str) -> None:
        # The zone apex is the name itself or its registered domain (one of the two for
        # nearly every name analysts look up; a full apex walk costs a query per label).
        org = registered_domain(domain)
        answer = None
        zone = domain
        for zone in dict.fromkeys(z for z in (domain, org) if z):
            try:
                answer = self.resolver.resolve(
                    zone, "DNSKEY", raise_on_no_answer=False, search=False
                )
            except dns.resolver.NXDOMAIN:
                answer = None
            if answer is not None and answer.rrset is not None:
                break
        keys = answer is not None and answer.rrset is not None
        # DS lives in the parent zone; only worth a query when the zone publishes keys.
        ds = bool(lookup(self.resolver, zone, "DS")) if keys else False
        validated = bool(answer is not None and answer.response.flags & dns.flags.AD)
        data["dnssec"] = {"zone": zone, "dnskey": keys, "ds": ds, "validated": validated}
        if keys and ds:
            result.add(Level.NONE, "DNSSEC signed" + (" and validated" if validated else ""))
        elif keys:
            result.add(Level.NONE, "DNSSEC keys published but no DS at the parent")

    def _bimi(self, result: CheckResult, data: dict[str, Any], domain: str) -> None:
        records = self._records(f"default._bimi.{domain}", "v=BIMI1")
        tags = _tags(records[0]) if records else {}
        data["bimi"] = {
            "record": records[0] if records else None,
            "logo": tags.get("l"),
            "vmc": tags.get("a"),
        }

    def _dkim(self, result: CheckResult, data: dict[str, Any], domain: str) -> None:
        keys: dict[str, Any] = {}
        for selector in self.dkim_selectors:
            records = lookup(self.resolver, f"{selector}._domainkey.{domain}", "TXT") or []
            records = [r for r in records if "p=" in r]
            if not records:
                keys[selector] = {"found": False}
                result.add(Level.NONE, f"DKIM selector {selector}: no key")
                continue
            tags = _tags(records[0])
            if not tags.get("p"):
                keys[selector] = {"found": True, "revoked": True}
                result.add(Level.NONE, f"DKIM selector {selector}: key revoked")
                continue
            try:
                key_type, bits = dkim_key_bits(tags["p"])
            except (ValueError, TypeError) as exc:
                keys[selector] = {"found": True, "error": str(exc)}
                result.add(Level.SUSPICIOUS, f"DKIM selector {selector}: unreadable key")
                continue
            keys[selector] = {"found": True, "type": key_type, "bits": bits}
            if key_type == "rsa" and bits is not None and bits < 2048:
                result.add(Level.SUSPICIOUS, f"DKIM selector {selector}: weak {bits}-bit RSA key")
            else:
                result.add(Level.HARMLESS, f"DKIM selector {selector}: {key_type} {bits} bits")
        data["dkim"] = keys
