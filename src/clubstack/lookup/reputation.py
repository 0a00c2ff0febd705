"""Reputation checks: VirusTotal API v3, AbuseIPDB API v2 (``check``), URLhaus (abuse.ch, free
with an Auth-Key) and the operator's own blocklist files.

Plain HTTP through the core client (clubstack.core.net), not vt-py: vt-py brings its own
aiohttp session, which would bypass the SSRF guard, the timeouts and the shared quotas.
The operator's quotas are taken *before* a request is sent; past the quota a check either
waits (when the window frees up within ``max_wait`` seconds) or reports "quota exhausted"
without sending anything. API keys travel only in request headers and never appear in
results, errors or logs.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Callable
from typing import Any

from clubstack.core.net import HttpClient, Quota, QuotaExhausted, SSRFBlocked, UpstreamError
from clubstack.lookup.findings import CheckResult, Level, Status, not_applicable
from clubstack.lookup.indicators import Indicator, Kind, is_public_name

Sleeper = Callable[[float], None]


class MalformedAnswer(ValueError):
    """The provider answered something that is not what its documentation promises."""


class _ProviderCheck:
    """What both providers share: the key, the quota, and one guarded, quota-counted GET."""

    name = ""

    def __init__(
        self,
        http: HttpClient,
        api_key: str | None,
        *,
        base_url: str,
        quota: Quota | None,
        max_wait: float,
        sleep: Sleeper,
    ) -> None:
        self.http = http
        self._key = api_key
        self.base_url = base_url.rstrip("/")
        self.quota = quota
        self.max_wait = max_wait
        self.sleep = sleep

    def _interpret(self, response: Any) -> CheckResult:
        raise NotImplementedError

    def _fetch(self, url: str, method: str = "GET", **kwargs: Any) -> CheckResult:
        """Ask within the quota and interpret the answer; past the quota nothing is sent."""
        deadline = time.monotonic() + self.max_wait
        while True:
            try:
                response = self.http.request(method, url, quota=self.quota, **kwargs)
                break
            except QuotaExhausted as exc:
                wait = float(exc.retry_after or 0)
                if wait and time.monotonic() + wait <= deadline:
                    self.sleep(wait)
                    continue
                return CheckResult(
                    self.name,
                    Status.QUOTA_EXHAUSTED,
                    summary="quota exhausted: not sent",
                    data={"retry_after": exc.retry_after},
                )
            except (UpstreamError, SSRFBlocked) as exc:
                return CheckResult(self.name, Status.ERROR, summary=str(exc.message))
        try:
            return self._interpret(response)
        except MalformedAnswer as exc:
            return CheckResult(self.name, Status.ERROR, summary=f"malformed answer: {exc}")


def _json(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise MalformedAnswer("answer is not JSON") from exc
    if not isinstance(body, dict):
        raise MalformedAnswer("answer is not a JSON object")
    return body


def vt_url_id(url: str) -> str:
    """VirusTotal's identifier of a URL: unpadded URL-safe base64 of the URL."""
    return base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


class VirusTotalCheck(_ProviderCheck):
    name = "virustotal"
    title = "VirusTotal"
    kinds = frozenset(Kind)

    def __init__(
        self,
        http: HttpClient,
        api_key: str | None,
        *,
        base_url: str = "https://www.virustotal.com/api/v3",
        quota: Quota | None = None,
        max_wait: float = 0.0,
        sleep: Sleeper = time.sleep,
        malicious_at: int = 2,
    ) -> None:
        super().__init__(
            http, api_key, base_url=base_url, quota=quota, max_wait=max_wait, sleep=sleep
        )
        self.malicious_at = malicious_at

    def _path(self, indicator: Indicator) -> str | None:
        if indicator.kind.is_hash:
            return f"/files/{indicator.value}"
        if indicator.kind.is_ip:
            return f"/ip_addresses/{indicator.value}"
        if indicator.kind is Kind.URL:
            return f"/urls/{vt_url_id(indicator.value)}"
        host = indicator.host
        if host and is_public_name(host):
            return f"/domains/{host}"
        return None

    def run(self, indicator: Indicator) -> CheckResult:
        if not self._key:
            return CheckResult(self.name, Status.NOT_CONFIGURED, summary="no API key configured")
        path = self._path(indicator)
        if path is None:
            return not_applicable(self.name, "internal names are not known to VirusTotal")
        return self._fetch(
            self.base_url + path, headers={"x-apikey": self._key, "Accept": "application/json"}
        )

    def _interpret(self, response: Any) -> CheckResult:
        if response.status_code == 404:
            result = CheckResult(self.name, summary="not known to VirusTotal")
            result.add(Level.NONE, result.summary)
            return result
        if response.status_code == 429:
            return CheckResult(
                self.name, Status.QUOTA_EXHAUSTED, summary="VirusTotal says: quota exceeded"
            )
        if response.status_code != 200:
            code = ""
            with contextlib.suppress(MalformedAnswer, AttributeError):
                code = str(_json(response).get("error", {}).get("code", ""))
            return CheckResult(
                self.name, Status.ERROR, summary=f"VirusTotal HTTP {response.status_code} {code}"
            )
        body = _json(response)
        try:
            attributes = body["data"]["attributes"]
            stats = attributes["last_analysis_stats"]
            counts = {k: int(stats.get(k, 0)) for k in ("malicious", "suspicious", "harmless")}
            counts["undetected"] = int(stats.get("undetected", 0))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedAnswer("no data.attributes.last_analysis_stats") from exc
        result = CheckResult(self.name)
        result.data = {"last_analysis_stats": counts}
        for key in ("reputation", "last_analysis_date", "meaningful_name", "as_owner", "country"):
            if key in attributes:
                result.data[key] = attributes[key]
        malicious, suspicious = counts["malicious"], counts["suspicious"]
        engines = sum(counts.values())
        result.summary = f"{malicious}/{engines} engines malicious"
        if malicious >= self.malicious_at:
            result.add(Level.MALICIOUS, result.summary)
        elif malicious or suspicious:
            result.add(Level.SUSPICIOUS, f"{malicious} malicious, {suspicious} suspicious")
        elif engines:
            result.add(Level.HARMLESS, result.summary)
        else:
            result.add(Level.NONE, "no engine has analysed it")
        return result


class AbuseIPDBCheck(_ProviderCheck):
    name = "abuseipdb"
    title = "AbuseIPDB"
    kinds = frozenset({Kind.IPV4, Kind.IPV6})

    def __init__(
        self,
        http: HttpClient,
        api_key: str | None,
        *,
        base_url: str = "https://api.abuseipdb.com/api/v2",
        quota: Quota | None = None,
        max_wait: float = 0.0,
        sleep: Sleeper = time.sleep,
        max_age_days: int = 90,
        suspicious_at: int = 25,
        malicious_at: int = 75,
    ) -> None:
        super().__init__(
            http, api_key, base_url=base_url, quota=quota, max_wait=max_wait, sleep=sleep
        )
        self.max_age_days = max_age_days
        self.suspicious_at = suspicious_at
        self.malicious_at = malicious_at

    def run(self, indicator: Indicator) -> CheckResult:
        if not indicator.kind.is_ip:
            return not_applicable(self.name, "AbuseIPDB knows IP addresses only")
        if not self._key:
            return CheckResult(self.name, Status.NOT_CONFIGURED, summary="no API key configured")
        return self._fetch(
            f"{self.base_url}/check",
            params={"ipAddress": indicator.value, "maxAgeInDays": str(self.max_age_days)},
            headers={"Key": self._key, "Accept": "application/json"},
        )

    def _interpret(self, response: Any) -> CheckResult:
        if response.status_code == 429:
            return CheckResult(
                self.name, Status.QUOTA_EXHAUSTED, summary="AbuseIPDB says: rate limit exceeded"
            )
        if response.status_code != 200:
            detail = ""
            try:
                errors = _json(response).get("errors") or [{}]
                detail = str(errors[0].get("detail", ""))[:200]
            except (MalformedAnswer, AttributeError, IndexError, TypeError):
                pass
            return CheckResult(
                self.name, Status.ERROR, summary=f"AbuseIPDB HTTP {response.status_code} {detail}"
            )
        body = _json(response)
        try:
            data = body["data"]
            score = int(data["abuseConfidenceScore"])
            reports = int(data.get("totalReports") or 0)
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedAnswer("no data.abuseConfidenceScore") from exc
        result = CheckResult(self.name)
        result.data = {
            "abuseConfidenceScore": score,
            "totalReports": reports,
            "isTor": bool(data.get("isTor")),
            "usageType": data.get("usageType"),
            "countryCode": data.get("countryCode"),
            "isp": data.get("isp"),
            "lastReportedAt": data.get("lastReportedAt"),
        }
        result.summary = f"confidence {score}%, {reports} reports"
        if score >= self.malicious_at:
            result.add(Level.MALICIOUS, result.summary)
        elif score >= self.suspicious_at:
            result.add(Level.SUSPICIOUS, result.summary)
        else:
            result.add(Level.HARMLESS, result.summary)
        if data.get("isTor"):
            result.add(Level.SUSPICIOUS, "Tor exit node")
        return result


class URLhausCheck(_ProviderCheck):
    """URLhaus (abuse.ch): URLs, hosts and payloads used to distribute malware.

    Documented API: POST ``/v1/url/`` (form ``url``), ``/v1/host/`` (``host``) and
    ``/v1/payload/`` (``md5_hash`` or ``sha256_hash``), the key in the ``Auth-Key`` header; the
    outcome is in ``query_status`` (``ok``, ``no_results``, ``invalid_*``,
    ``unknown_auth_key``), not in the HTTP status.
    """

    name = "urlhaus"
    title = "URLhaus"
    kinds = frozenset(
        {Kind.URL, Kind.DOMAIN, Kind.IPV4, Kind.IPV6, Kind.EMAIL, Kind.MD5, Kind.SHA256}
    )

    def __init__(
        self,
        http: HttpClient,
        api_key: str | None,
        *,
        base_url: str = "https://urlhaus-api.abuse.ch/v1",
        quota: Quota | None = None,
        max_wait: float = 0.0,
        sleep: Sleeper = time.sleep,
    ) -> None:
        super().__init__(
            http, api_key, base_url=base_url, quota=quota, max_wait=max_wait, sleep=sleep
        )

    def _question(self, indicator: Indicator) -> tuple[str, dict[str, str]] | None:
        if indicator.kind is Kind.MD5:
            return "payload", {"md5_hash": indicator.value}
        if indicator.kind is Kind.SHA256:
            return "payload", {"sha256_hash": indicator.value}
        if indicator.kind is Kind.URL:
            return "url", {"url": indicator.value}
        host = indicator.host
        if host is None:
            return None
        if not indicator.host_is_ip and not is_public_name(host):
            return None
        return "host", {"host": host}

    def run(self, indicator: Indicator) -> CheckResult:
        if not self._key:
            return CheckResult(self.name, Status.NOT_CONFIGURED, summary="no Auth-Key configured")
        question = self._question(indicator)
        if question is None:
            return not_applicable(self.name, "internal names are not known to URLhaus")
        endpoint, form = question
        return self._fetch(
            f"{self.base_url}/{endpoint}/",
            "POST",
            data=form,
            headers={"Auth-Key": self._key, "Accept": "application/json"},
        )

    def _interpret(self, response: Any) -> CheckResult:
        if response.status_code == 429:
            return CheckResult(
                self.name, Status.QUOTA_EXHAUSTED, summary="URLhaus says: too many requests"
            )
        if response.status_code in (401, 403):
            return CheckResult(self.name, Status.ERROR, summary="URLhaus refused the Auth-Key")
        if response.status_code != 200:
            summary = f"URLhaus HTTP {response.status_code}"
            return CheckResult(self.name, Status.ERROR, summary=summary)
        body = _json(response)
        status = body.get("query_status")
        if not isinstance(status, str):
            raise MalformedAnswer("no query_status")
        if status == "no_results":
            result = CheckResult(self.name, summary="not listed in URLhaus")
            result.add(Level.NONE, result.summary)
            return result
        if status == "unknown_auth_key":
            return CheckResult(self.name, Status.ERROR, summary="URLhaus refused the Auth-Key")
        if status.startswith("invalid"):
            return not_applicable(self.name, f"URLhaus: {status.replace('_', ' ')}")
        if status != "ok":
            return CheckResult(self.name, Status.ERROR, summary=f"URLhaus: {status[:80]}")
        if "urls" in body and "url_count" in body and "host" in body:
            return self._host(body)
        if "url_status" in body:
            return self._url(body)
        if "signature" in body or "file_type" in body:
            return self._payload(body)
        raise MalformedAnswer("an ok answer without host, url or payload fields")

    def _blocklists(self, result: CheckResult, body: dict[str, Any]) -> None:
        listed = {
            str(name): str(state)
            for name, state in (body.get("blacklists") or {}).items()
            if state and str(state) != "not listed"
        }
        if listed:
            result.data["blacklists"] = listed
            result.add(
                Level.SUSPICIOUS,
                "also on " + ", ".join(f"{n} ({s})" for n, s in sorted(listed.items())),
            )

    def _host(self, body: dict[str, Any]) -> CheckResult:
        urls = body.get("urls") or []
        if not isinstance(urls, list):
            raise MalformedAnswer("urls is not a list")
        try:
            count = int(body.get("url_count") or len(urls))
        except (TypeError, ValueError) as exc:
            raise MalformedAnswer("url_count is not a number") from exc
        online = [u for u in urls if isinstance(u, dict) and u.get("url_status") == "online"]
        entries = [u for u in urls if isinstance(u, dict)]
        threats = sorted({str(u["threat"]) for u in entries if u.get("threat")})
        result = CheckResult(self.name)
        result.data = {
            "reference": body.get("urlhaus_reference"),
            "firstseen": body.get("firstseen"),
            "url_count": count,
            "online": len(online),
            "threats": threats,
            "recent_urls": [str(u.get("url")) for u in urls[:10] if isinstance(u, dict)],
        }
        result.summary = f"{count} malware URLs, {len(online)} online"
        if online:
            result.add(Level.MALICIOUS, f"hosts {len(online)} malware URLs online now")
        elif count:
            result.add(Level.SUSPICIOUS, f"hosted {count} malware URLs (all offline now)")
        else:
            result.add(Level.NONE, "listed without URLs")
        self._blocklists(result, body)
        return result

    def _url(self, body: dict[str, Any]) -> CheckResult:
        state = str(body.get("url_status") or "unknown")
        result = CheckResult(self.name)
        result.data = {
            "reference": body.get("urlhaus_reference"),
            "url_status": state,
            "threat": body.get("threat"),
            "tags": [str(t) for t in body.get("tags") or []],
            "date_added": body.get("date_added"),
            "payloads": [
                {"signature": p.get("signature"), "sha256": p.get("response_sha256")}
                for p in (body.get("payloads") or [])[:10]
                if isinstance(p, dict)
            ],
        }
        threat = str(body.get("threat") or "malware")
        result.summary = f"listed ({threat}), {state}"
        if state == "online":
            result.add(Level.MALICIOUS, f"serves {threat} now")
        else:
            result.add(Level.SUSPICIOUS, f"served {threat} ({state} now)")
        self._blocklists(result, body)
        return result

    def _payload(self, body: dict[str, Any]) -> CheckResult:
        signature = body.get("signature")
        result = CheckResult(self.name)
        result.data = {
            "signature": signature,
            "file_type": body.get("file_type"),
            "firstseen": body.get("firstseen"),
            "url_count": body.get("url_count"),
            "virustotal": body.get("virustotal"),
        }
        result.summary = f"malware payload{f': {signature}' if signature else ''}"
        result.add(Level.MALICIOUS, result.summary)
        return result
