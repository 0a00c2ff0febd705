"""Batches: create them, run them (as a job), read their results. No Flask here."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from clubstack.core.accounts.models import User
from clubstack.core.db import session_scope, utcnow
from clubstack.core.errors import InputError, NotFound, TooLarge
from clubstack.core.net import HttpClient, Quota, http
from clubstack.lookup.blocklist import BlocklistCheck
from clubstack.lookup.cache import CACHEABLE
from clubstack.lookup.dnsrecords import DnsCheck
from clubstack.lookup.findings import Check, CheckResult, Level, Status
from clubstack.lookup.indicators import Indicator, IndicatorError, Kind, extract, parse_one
from clubstack.lookup.mailsec import MailSecurityCheck, policy_fetcher
from clubstack.lookup.models import LookupBatch, LookupCacheEntry, LookupItem
from clubstack.lookup.registration import AsnCheck, RdapCheck
from clubstack.lookup.reputation import AbuseIPDBCheck, URLhausCheck, VirusTotalCheck
from clubstack.lookup.resolver import make_resolver
from clubstack.lookup.runner import run_lookups
from clubstack.lookup.settings import KNOWN_CHECKS, LookupSettings
from clubstack.lookup.tlscert import TlsCheck
from clubstack.lookup.whoisquery import WhoisClient
from clubstack.settings import service_settings

log = logging.getLogger("clubstack.lookup")

CHECK_ORDER = KNOWN_CHECKS
CHECK_TITLES = {
    "dns": "DNS",
    "mail": "Mail security",
    "rdap": "Registration",
    "asn": "ASN",
    "tls": "TLS certificate",
    "virustotal": "VirusTotal",
    "abuseipdb": "AbuseIPDB",
    "urlhaus": "URLhaus",
    "blocklist": "Blocklist",
}


class TooManyIndicators(TooLarge):
    code = "too_many_indicators"


class NothingRecognised(InputError):
    code = "no_indicators"
    message = "No URL, domain, IP address, e-mail address or hash was recognised."


def settings() -> LookupSettings:
    return service_settings(LookupSettings)


# --- checks ----------------------------------------------------------------------------


def build_checks(
    config: LookupSettings | None = None, client: HttpClient | None = None
) -> list[Check]:
    """The configured checks, sharing one resolver (and its cache) and the core client."""
    config = config or settings()
    client = client or http()
    resolver = make_resolver(
        config.nameservers, timeout=config.dns_timeout, lifetime=config.dns_lifetime
    )
    vt_quota = Quota(
        "virustotal", [(config.virustotal_per_minute, 60), (config.virustotal_per_day, 86400)]
    )
    abuse_quota = Quota("abuseipdb", [(config.abuseipdb_per_day, 86400)])
    urlhaus_quota = Quota(
        "urlhaus", [(config.urlhaus_per_minute, 60), (config.urlhaus_per_day, 86400)]
    )
    whois = (
        WhoisClient(
            client,
            iana_server=config.whois_iana_server,
            servers=config.whois_servers,
            timeout=config.whois_timeout,
        )
        if config.whois_fallback
        else None
    )
    return [
        DnsCheck(resolver),
        MailSecurityCheck(
            resolver,
            fetch_policy=policy_fetcher(client),
            dkim_selectors=config.dkim_selectors,
            timeout=config.dns_lifetime,
        ),
        RdapCheck(
            client, base_url=config.rdap_url, new_domain_days=config.new_domain_days, whois=whois
        ),
        AsnCheck(resolver),
        TlsCheck(
            client,
            ca_file=config.tls_ca_file,
            timeout=config.tls_timeout,
            expiry_warning_days=config.tls_expiry_warning_days,
            ports=config.tls_ports,
        ),
        VirusTotalCheck(
            client,
            config.virustotal_key(),
            base_url=config.virustotal_url,
            quota=vt_quota,
            max_wait=config.quota_max_wait,
        ),
        AbuseIPDBCheck(
            client,
            config.abuseipdb_key(),
            base_url=config.abuseipdb_url,
            quota=abuse_quota,
            max_wait=config.quota_max_wait,
        ),
        URLhausCheck(
            client,
            config.urlhaus_key(),
            base_url=config.urlhaus_url,
            quota=urlhaus_quota,
            max_wait=config.quota_max_wait,
        ),
        BlocklistCheck(config.blocklist_files),
    ]


def make_checks() -> list[Check]:
    """Picklable check factory for worker processes (reads settings in the child).

    The child needs its own database connection: quotas are counted there (or in Redis).
    """
    from clubstack.core.db import db
    from clubstack.core.net import reset_http
    from clubstack.settings import clear_settings_cache, get_settings

    clear_settings_cache()
    reset_http()
    db.init(get_settings().sqlalchemy_url)
    return build_checks()


# --- cache -----------------------------------------------------------------------------


def _cache_key(indicator_key: str, check: str) -> str:
    return hashlib.sha256(f"{indicator_key}|{check}".encode()).hexdigest()


class DatabaseCache:
    """The result cache in the database, shared by every worker and the web app.

    Writes are buffered and written by ``flush()`` in one short transaction: on SQLite a
    long-held write lock would stall the quota counters that check threads update.
    """

    def __init__(self, session: Session, ttl: timedelta) -> None:
        self.session = session
        self.ttl = ttl
        self.pending: dict[str, CheckResult] = {}

    def get(self, indicator_key: str, check: str) -> CheckResult | None:
        if self.ttl <= timedelta(0):
            return None
        entry = self.session.get(LookupCacheEntry, _cache_key(indicator_key, check))
        if entry is None or entry.expires_at <= utcnow():
            return None
        result = CheckResult.from_dict(json.loads(entry.result))
        result.cached = True
        return result

    def put(self, indicator_key: str, result: CheckResult) -> None:
        if result.status in CACHEABLE and self.ttl > timedelta(0):
            self.pending[_cache_key(indicator_key, result.check)] = result

    def flush(self) -> None:
        for key, result in self.pending.items():
            entry = self.session.get(LookupCacheEntry, key)
            if entry is None:
                entry = LookupCacheEntry(key=key, check=result.check)
                self.session.add(entry)
            entry.result = json.dumps(result.to_dict())
            entry.as_of = result.as_of
            entry.expires_at = result.as_of + self.ttl
        self.pending.clear()


def purge_cache(session: Session) -> int:
    outcome = session.execute(
        delete(LookupCacheEntry).where(LookupCacheEntry.expires_at <= utcnow())
    )
    return int(outcome.rowcount or 0)  # type: ignore[attr-defined]


# --- input -----------------------------------------------------------------------------


def recognise(text: str | None = None, indicators: list[str] | None = None) -> list[Indicator]:
    """Indicators from free text or from a list (each item must be one indicator)."""
    found: list[Indicator] = []
    if indicators is not None:
        errors: dict[str, str] = {}
        for position, raw in enumerate(indicators):
            try:
                found.append(parse_one(str(raw)))
            except IndicatorError as exc:
                errors[f"indicators.{position}"] = str(exc)
            if len(errors) >= 20:
                break
        if errors:
            raise InputError("Some indicators are not valid.", fields=errors)
    if text:
        found.extend(extract(text))
    unique: dict[str, Indicator] = {}
    for indicator in found:
        unique.setdefault(indicator.key, indicator)
    result = list(unique.values())
    if not result:
        raise NothingRecognised(fields={"text": NothingRecognised.message})
    limit = settings().max_indicators
    if len(result) > limit:
        raise TooManyIndicators(
            f"{len(result)} indicators found; at most {limit} fit in one batch.",
            found=len(result),
            limit=limit,
        )
    return result


class UnreadableUpload(InputError):
    code = "unreadable_upload"


def decode_upload(data: bytes, filename: str = "") -> str:
    """Text of an uploaded .txt or .csv: UTF-8 (with or without BOM), UTF-16 with BOM, or
    Latin-1/Windows-1252 only when the bytes are plainly text; anything else is refused."""
    limit = settings().max_upload_bytes
    if len(data) > limit:
        raise TooLarge(f"The file is larger than {limit} bytes.")
    if not data.strip():
        raise UnreadableUpload("The file is empty.", fields={"file": "The file is empty."})
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")
    else:
        if b"\x00" in data:
            raise UnreadableUpload(
                "This looks like a binary file, not text or CSV.",
                fields={"file": "binary file"},
            )
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                raise UnreadableUpload(
                    "The file is neither UTF-8 nor Windows-1252 text.",
                    fields={"file": "unknown encoding"},
                ) from None
    if filename.lower().endswith(".csv"):
        # Cells joined by spaces: extraction finds indicators in any column.
        rows = csv.reader(io.StringIO(text))
        text = "\n".join(" ".join(cell for cell in row) for row in rows)
    return text


# --- batches ---------------------------------------------------------------------------


def create_batch(
    session: Session, user_id: int, indicators: list[Indicator], source: str = "web"
) -> LookupBatch:
    checks = settings().checks
    batch = LookupBatch(
        user_id=user_id,
        source=source,
        status="queued",
        total=len(indicators) * len(checks),
        done=0,
        checks=",".join(checks),
    )
    batch.items = [
        LookupItem(position=i, kind=str(ind.kind), value=ind.value, verdict=0, results="{}")
        for i, ind in enumerate(indicators)
    ]
    session.add(batch)
    session.flush()
    return batch


def get_batch(session: Session, batch_id: str, user_id: int) -> LookupBatch:
    batch = session.get(LookupBatch, batch_id)
    if batch is None or batch.user_id != user_id:
        raise NotFound("No such look-up.")
    return batch


def history(session: Session, user_id: int, limit: int = 50) -> list[LookupBatch]:
    return list(
        session.scalars(
            select(LookupBatch)
            .where(LookupBatch.user_id == user_id)
            .order_by(LookupBatch.created_at.desc())
            .limit(limit)
        )
    )


def execute_batch(batch_id: str, checks: list[Check] | None = None) -> None:
    """Run a batch (the job body). Progress is committed as results come in."""
    config = settings()
    with session_scope() as session:
        batch = session.get(LookupBatch, batch_id)
        if batch is None or batch.status not in ("queued", "running"):
            return
        batch.status = "running"
        items = {
            Indicator(Kind(item.kind), item.value).key: (
                item.id,
                Indicator(Kind(item.kind), item.value),
            )
            for item in batch.items
        }
        names = batch.checks.split(",")
    checks = checks if checks is not None else build_checks(config)
    checks = [c for c in checks if c.name in names]
    pending: dict[int, dict[str, Any]] = {}
    state = {"count": 0, "at": time.monotonic()}
    try:
        with session_scope() as session:
            session.commit()  # end the read transaction; each flush is its own
            cache = DatabaseCache(session, timedelta(seconds=config.cache_ttl_seconds))

            def flush() -> None:
                cache.flush()
                _flush(session, batch_id, pending, int(state["count"]))
                state["count"], state["at"] = 0, time.monotonic()

            def on_result(indicator: Indicator, result: CheckResult) -> None:
                pending.setdefault(items[indicator.key][0], {})[result.check] = result.to_dict()
                state["count"] += 1
                if state["count"] >= 50 or time.monotonic() - state["at"] > 0.5:
                    flush()

            run_lookups(
                [ind for _, ind in items.values()],
                checks,
                cache=cache,
                workers=config.workers,
                on_result=on_result,
                processes=config.processes,
                make_checks=make_checks,
            )
            flush()
            session.execute(
                update(LookupBatch)
                .where(LookupBatch.id == batch_id)
                .values(status="done", finished_at=utcnow())
            )
    except Exception:
        log.exception("lookup batch %s failed", batch_id)
        with session_scope() as session:
            session.execute(
                update(LookupBatch)
                .where(LookupBatch.id == batch_id)
                .values(status="failed", finished_at=utcnow())
            )
        raise


def _flush(session: Session, batch_id: str, pending: dict[int, dict[str, Any]], count: int) -> None:
    for item_id, new in pending.items():
        item = session.get(LookupItem, item_id)
        if item is None:
            continue
        results = json.loads(item.results or "{}")
        results.update(new)
        item.results = json.dumps(results)
        item.verdict = max(
            (Level[r["level"].upper()] for r in results.values()), default=Level.NONE
        )
    pending.clear()
    session.execute(
        update(LookupBatch).where(LookupBatch.id == batch_id).values(done=LookupBatch.done + count)
    )
    session.commit()


# --- output ----------------------------------------------------------------------------


def item_row(item: LookupItem) -> dict[str, Any]:
    indicator = Indicator(Kind(item.kind), item.value)
    level = Level(item.verdict)
    results = json.loads(item.results or "{}")
    return {
        "indicator": indicator.value,
        "display": indicator.defanged() if level is Level.MALICIOUS else indicator.display,
        "kind": item.kind,
        "verdict": level.name.lower(),
        "verdict_label": level.label,
        "verdict_rank": int(level),
        "results": results,
    }


SORTS = ("verdict", "indicator", "kind", *CHECK_ORDER)


def rows(
    batch: LookupBatch, sort: str = "verdict", descending: bool = True
) -> list[dict[str, Any]]:
    out = [item_row(item) for item in batch.items]
    if sort == "verdict":
        out.sort(key=lambda r: (r["verdict_rank"], r["indicator"]), reverse=descending)
    elif sort in ("indicator", "kind"):
        out.sort(key=lambda r: r[sort], reverse=descending)
    elif sort in CHECK_ORDER:
        rank = {lvl.name.lower(): int(lvl) for lvl in Level}
        out.sort(
            key=lambda r: rank.get((r["results"].get(sort) or {}).get("level", "none"), 0),
            reverse=descending,
        )
    return out


def batch_json(batch: LookupBatch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "status": batch.status,
        "created_at": batch.created_at.isoformat(),
        "finished_at": batch.finished_at.isoformat() if batch.finished_at else None,
        "progress": {"done": batch.done, "total": batch.total, "percent": batch.progress},
        "checks": batch.checks.split(","),
        "results": [
            {k: v for k, v in row.items() if k not in ("display", "verdict_rank", "verdict_label")}
            for row in rows(batch)
        ],
    }


def batch_csv(batch: LookupBatch) -> str:
    """One row per indicator; malicious ones defanged so a spreadsheet will not link them."""
    out = io.StringIO()
    writer = csv.writer(out)
    checks = batch.checks.split(",")
    writer.writerow(
        ["indicator", "kind", "verdict"]
        + [f"{c}_{part}" for c in checks for part in ("level", "summary")]
    )
    for row in rows(batch):
        cells = [_csv_safe(row["display"]), row["kind"], row["verdict"]]
        for check in checks:
            result = row["results"].get(check) or {}
            level = result.get("level", "")
            if result.get("status") in (Status.QUOTA_EXHAUSTED, Status.ERROR):
                level = result["status"]
            cells += [level, _csv_safe(result.get("summary", ""))]
        writer.writerow(cells)
    return out.getvalue()


def _csv_safe(value: str) -> str:
    """Keep spreadsheets from treating a cell as a formula (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def forget_member(session: Session, user: User) -> None:
    """Deleting an account deletes its look-ups (batches and their results); not committed.

    The shared result cache is keyed by indicator, not by who asked, and stays."""
    batch_ids = select(LookupBatch.id).where(LookupBatch.user_id == user.id)
    session.execute(delete(LookupItem).where(LookupItem.batch_id.in_(batch_ids)))
    session.execute(delete(LookupBatch).where(LookupBatch.user_id == user.id))
