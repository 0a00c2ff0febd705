"""Local HTTP servers speaking the documented VirusTotal v3, AbuseIPDB v2, URLhaus v1 and RDAP
APIs.

One stub server (tests/httpstub.py) on loopback answers all of them (the adapters only know
base URLs).
Behaviour per indicator is data: ``provider.vt[...]``, ``provider.abuse[...]``,
``provider.rdap_domains[...]``; special values make it answer 429 or malformed bodies.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from tests.httpstub import Request, StubServer

VT_KEY = "vt-test-key-0123456789abcdef"
ABUSE_KEY = "abuse-test-key-fedcba9876543210"
URLHAUS_KEY = "urlhaus-test-key-0011223344556677"

QUOTA = "quota"  # answer 429 like the provider does when its own quota is used up
MALFORMED = "malformed"  # answer 200 with a body that is not what the docs promise
NOT_JSON = "not-json"


def vt_object(kind: str, ident: str, malicious: int, suspicious: int = 0) -> dict[str, Any]:
    return {
        "data": {
            "id": ident,
            "type": kind,
            "links": {"self": f"https://www.virustotal.com/api/v3/{kind}s/{ident}"},
            "attributes": {
                "last_analysis_stats": {
                    "harmless": 60 - malicious - suspicious,
                    "malicious": malicious,
                    "suspicious": suspicious,
                    "undetected": 10,
                    "timeout": 0,
                },
                "reputation": -malicious,
                "last_analysis_date": 1763700000,
            },
        }
    }


def rdap_domain(name: str, created: datetime, registrar: str = "Example Registrar, Inc.") -> dict:
    return {
        "objectClassName": "domain",
        "ldhName": name.upper(),
        "handle": f"D-{name}",
        "status": ["client transfer prohibited"],
        "events": [
            {"eventAction": "registration", "eventDate": created.isoformat()},
            {
                "eventAction": "expiration",
                "eventDate": (datetime.now(UTC) + timedelta(days=200)).isoformat(),
            },
        ],
        "entities": [
            {
                "objectClassName": "entity",
                "handle": "292",
                "roles": ["registrar"],
                "vcardArray": [
                    "vcard",
                    [["version", {}, "text", "4.0"], ["fn", {}, "text", registrar]],
                ],
            }
        ],
        "nameservers": [{"objectClassName": "nameserver", "ldhName": f"NS1.{name.upper()}"}],
    }


def rdap_network(start: str, end: str, cidr: str, name: str, owner: str, country: str) -> dict:
    return {
        "objectClassName": "ip network",
        "handle": f"NET-{name}",
        "startAddress": start,
        "endAddress": end,
        "ipVersion": "v4",
        "name": name,
        "type": "ASSIGNED PA",
        "country": country,
        "cidr0_cidrs": [{"v4prefix": cidr.split("/")[0], "length": int(cidr.split("/")[1])}],
        "entities": [
            {
                "objectClassName": "entity",
                "handle": "ORG-1",
                "roles": ["registrant"],
                "vcardArray": [
                    "vcard",
                    [["version", {}, "text", "4.0"], ["fn", {}, "text", owner]],
                ],
            }
        ],
    }


def urlhaus_url(url: str, status: str) -> dict[str, Any]:
    return {
        "query_status": "ok",
        "id": "3001",
        "urlhaus_reference": "https://urlhaus.abuse.ch/url/3001/",
        "url": url,
        "url_status": status,
        "host": urlsplit(url).hostname,
        "date_added": "2026-11-20 08:00:00 UTC",
        "threat": "malware_download",
        "blacklists": {"spamhaus_dbl": "not listed", "surbl": "not listed"},
        "reporter": "tester",
        "larted": "true",
        "takedown_time_seconds": None,
        "tags": ["exe", "Emotet"],
        "payloads": [
            {
                "firstseen": "2026-11-20",
                "filename": "payload.exe",
                "file_type": "exe",
                "response_size": "1024",
                "response_md5": "44d88612fea8a8f36de82e1278abb02f",
                "response_sha256": "ab" * 32,
                "urlhaus_download": "https://urlhaus-api.abuse.ch/v1/download/abab/",
                "signature": "Emotet",
                "virustotal": None,
                "imphash": None,
                "ssdeep": None,
                "tlsh": None,
            }
        ],
    }


def urlhaus_host(host: str, statuses: list[str]) -> dict[str, Any]:
    return {
        "query_status": "ok",
        "urlhaus_reference": f"https://urlhaus.abuse.ch/host/{host}/",
        "host": host,
        "firstseen": "2026-10-01 12:00:00 UTC",
        "url_count": str(len(statuses)),
        "blacklists": {"spamhaus_dbl": "abused_legit_malware", "surbl": "not listed"},
        "urls": [
            {
                "id": str(4000 + i),
                "urlhaus_reference": f"https://urlhaus.abuse.ch/url/{4000 + i}/",
                "url": f"http://{host}/bin/{i}.exe",
                "url_status": status,
                "date_added": "2026-11-01 09:00:00 UTC",
                "threat": "malware_download",
                "reporter": "tester",
                "larted": "true",
                "takedown_time_seconds": None,
                "tags": ["exe"],
            }
            for i, status in enumerate(statuses)
        ],
    }


class ProviderServer:
    def __init__(self) -> None:
        now = datetime.now(UTC)
        # VirusTotal: key -> malicious count or a special value; unknown keys -> 404
        self.vt: dict[str, Any] = {
            "domains/evil.example.com": 12,
            "domains/good.example.com": 0,
            "domains/new.example.net": 1,
            "ip_addresses/185.220.101.4": 5,
            "files/44d88612fea8a8f36de82e1278abb02f": 60,
            "domains/quota.example.com": QUOTA,
            "domains/broken.example.com": MALFORMED,
        }
        self.abuse: dict[str, Any] = {
            "185.220.101.4": {"score": 100, "reports": 812, "tor": True},
            "192.0.2.10": {"score": 0, "reports": 0, "tor": False},
            "198.51.100.7": QUOTA,
            "198.51.100.8": NOT_JSON,
        }
        # RDAP covers registered domains (the name below the public suffix)
        self.rdap_domains: dict[str, Any] = {
            "oldshop.com": rdap_domain("oldshop.com", now - timedelta(days=4000)),
            "fresh-login.net": rdap_domain("fresh-login.net", now - timedelta(days=3)),
            "example.com": rdap_domain("example.com", now - timedelta(days=11000)),
            "broken-rdap.org": MALFORMED,
            "limited-rdap.org": QUOTA,
        }
        self.rdap_ips: dict[str, Any] = {
            "185.220.101.4": rdap_network(
                "185.220.101.0",
                "185.220.101.255",
                "185.220.101.0/24",
                "ZWIEBELFREUNDE",
                "Zwiebelfreunde e.V.",
                "DE",
            )
        }
        self.mta_sts: dict[str, str] = {}
        # URLhaus: "host:<name>", "url:<url>", "md5:<hash>" -> answer body or a special value
        self.urlhaus: dict[str, Any] = {
            "host:evil.example.com": urlhaus_host("evil.example.com", ["online", "offline"]),
            "host:185.220.101.4": urlhaus_host("185.220.101.4", ["offline"]),
            "url:http://evil.example.com/payload.exe": urlhaus_url(
                "http://evil.example.com/payload.exe", "online"
            ),
            "md5:44d88612fea8a8f36de82e1278abb02f": {
                "query_status": "ok",
                "md5_hash": "44d88612fea8a8f36de82e1278abb02f",
                "file_type": "exe",
                "signature": "Emotet",
                "firstseen": "2026-11-01 10:00:00",
                "url_count": "3",
                "urls": [],
            },
            "host:quota.example.com": QUOTA,
            "host:broken.example.com": MALFORMED,
        }
        self.stub = StubServer(self._serve)
        self.requests = self.stub.requests
        self.port = self.stub.port
        self.host, self.url = self.stub.host, self.stub.url
        self.stop, self.count = self.stub.stop, self.stub.count

    def _serve(self, request: Request) -> tuple:
        if request.method == "POST":
            status, body, ctype = self.answer_post(request.path, request.form, request.headers)
        else:
            status, body, ctype = self.answer(request.path, request.query, request.headers)
        headers = {"Content-Type": ctype}
        if status == 429:
            headers["Retry-After"] = "60"
        return status, body, headers

    # --- the APIs ------------------------------------------------------------------

    def answer(self, path: str, query: dict[str, list[str]], headers: Any) -> tuple:
        if path.startswith("/vt/api/v3/"):
            return self._vt(path.removeprefix("/vt/api/v3/"), headers)
        if path == "/abuseipdb/api/v2/check":
            return self._abuse(query, headers)
        if path.startswith("/rdap/"):
            return self._rdap(path.removeprefix("/rdap/"))
        if path.startswith("/mta-sts/"):
            text = self.mta_sts.get(path.removeprefix("/mta-sts/"))
            if text is None:
                return 404, b"not found", "text/plain"
            return 200, text.encode(), "text/plain"
        return 404, b"not found", "text/plain"

    def answer_post(self, path: str, form: dict[str, list[str]], headers: Any) -> tuple:
        if path.startswith("/urlhaus/v1/"):
            return self._urlhaus(path.removeprefix("/urlhaus/v1/").strip("/"), form, headers)
        return 404, b"not found", "text/plain"

    def _urlhaus(self, endpoint: str, form: dict[str, list[str]], headers: Any) -> tuple:
        json_type = "application/json"
        if headers.get("Auth-Key") != URLHAUS_KEY:
            return 401, {"query_status": "unknown_auth_key"}, json_type
        field = {"host": "host", "url": "url", "payload": "md5_hash"}.get(endpoint)
        if field is None:
            return 404, b"not found", "text/plain"
        if endpoint == "payload" and "sha256_hash" in form:
            field = "sha256_hash"
        value = (form.get(field) or [""])[0]
        if not value:
            return 200, {"query_status": f"invalid_{endpoint}"}, json_type
        prefix = {"md5_hash": "md5", "sha256_hash": "sha256"}.get(field, endpoint)
        answer = self.urlhaus.get(f"{prefix}:{value}")
        if answer is None:
            return 200, {"query_status": "no_results"}, json_type
        if answer == QUOTA:
            return 429, b"Too Many Requests", "text/plain"
        if answer == MALFORMED:
            return 200, {"query_status": "ok", "urls": "many"}, json_type
        return 200, answer, json_type

    def _vt(self, rest: str, headers: Any) -> tuple:
        json_type = "application/json"
        if headers.get("x-apikey") != VT_KEY:
            return (
                401,
                {"error": {"code": "WrongCredentialsError", "message": "bad key"}},
                json_type,
            )
        kind, _, ident = rest.partition("/")
        if kind == "urls":
            padded = ident + "=" * (-len(ident) % 4)
            ident = base64.urlsafe_b64decode(padded).decode()
        value = self.vt.get(f"{kind}/{ident}")
        if value is None:
            return (
                404,
                {"error": {"code": "NotFoundError", "message": f"{ident} not found"}},
                json_type,
            )
        if value == QUOTA:
            return 429, {"error": {"code": "QuotaExceededError", "message": "quota"}}, json_type
        if value == MALFORMED:
            return 200, {"data": {"attributes": {"last_analysis_stats": "lots"}}}, json_type
        return 200, vt_object(kind.rstrip("s"), ident, int(value)), json_type

    def _abuse(self, query: dict[str, list[str]], headers: Any) -> tuple:
        json_type = "application/json"
        if headers.get("Key") != ABUSE_KEY:
            return 401, {"errors": [{"detail": "Authentication failed.", "status": 401}]}, json_type
        ip = (query.get("ipAddress") or [""])[0]
        value = self.abuse.get(ip, {"score": 0, "reports": 0, "tor": False})
        if value == QUOTA:
            detail = "Daily rate limit of 1000 requests exceeded for this endpoint."
            return 429, {"errors": [{"detail": detail, "status": 429}]}, json_type
        if value == NOT_JSON:
            return 200, b"<html>maintenance</html>", "text/html"
        return (
            200,
            {
                "data": {
                    "ipAddress": ip,
                    "isPublic": True,
                    "ipVersion": 6 if ":" in ip else 4,
                    "isWhitelisted": False,
                    "abuseConfidenceScore": value["score"],
                    "countryCode": "DE",
                    "usageType": "Data Center/Web Hosting/Transit",
                    "isp": "Example ISP",
                    "domain": "example.net",
                    "hostnames": [],
                    "isTor": value["tor"],
                    "totalReports": value["reports"],
                    "numDistinctUsers": value["reports"] // 2,
                    "lastReportedAt": "2026-11-21T10:00:00+00:00",
                }
            },
            json_type,
        )

    def _rdap(self, rest: str) -> tuple:
        rdap_type = "application/rdap+json"
        kind, _, value = rest.partition("/")
        table = self.rdap_domains if kind == "domain" else self.rdap_ips
        answer = table.get(value)
        if answer is None:
            return 404, {"errorCode": 404, "title": "Not Found"}, rdap_type
        if answer == QUOTA:
            return 429, {"errorCode": 429, "title": "Too Many Requests"}, rdap_type
        if answer == MALFORMED:
            return 200, b'{"objectClassName": "domain", "events": ', rdap_type
        return 200, answer, rdap_type
