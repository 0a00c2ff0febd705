"""Settings of the lookup desk: CLUBSTACK_LOOKUP_* or the [lookup] table of clubstack.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from clubstack.settings import ServiceSettings, service_config

KNOWN_CHECKS = (
    "dns",
    "mail",
    "rdap",
    "asn",
    "tls",
    "virustotal",
    "abuseipdb",
    "urlhaus",
    "blocklist",
)


class LookupSettings(ServiceSettings):
    model_config = service_config("lookup")

    nameservers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="DNS resolvers the checks use, comma-separated; host:port allowed "
        "(127.0.0.1:5353, [::1]:53). Empty: the system resolvers.",
    )
    dns_timeout: float = Field(default=3.0, gt=0, description="Seconds per DNS query attempt.")
    dns_lifetime: float = Field(default=6.0, gt=0, description="Seconds per DNS question, total.")
    max_indicators: int = Field(
        default=1000, ge=1, description="Most indicators in one batch (more is refused, 413)."
    )
    max_upload_bytes: int = Field(
        default=1_000_000, ge=1024, description="Largest text/CSV upload accepted."
    )
    workers: int = Field(
        default=32, ge=1, le=512, description="Concurrent checks per batch (threads)."
    )
    processes: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Worker processes per batch (each with `workers` threads); 2 uses both "
        "cores of a small machine for big DNS-heavy batches.",
    )
    cache_ttl_seconds: int = Field(
        default=6 * 3600, ge=0, description="How long a result per (indicator, check) is reused."
    )
    dkim_selectors: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["default", "selector1", "selector2", "google"],
        description="DKIM selectors looked up for every domain, comma-separated.",
    )
    new_domain_days: int = Field(
        default=30, ge=1, description="A domain registered more recently than this is suspicious."
    )
    rdap_url: str = Field(
        default="https://rdap.org",
        description="RDAP base URL (a bootstrap redirector; /domain/<name> and /ip/<addr>).",
    )
    checks: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(KNOWN_CHECKS),
        description="Checks a new look-up runs, comma-separated, in column order: dns, mail, "
        "rdap, asn, tls, virustotal, abuseipdb, urlhaus, blocklist.",
    )
    whois_fallback: bool = Field(
        default=True,
        description="Ask port-43 WHOIS for domains RDAP does not know (TLDs without RDAP).",
    )
    whois_iana_server: str = Field(
        default="whois.iana.org",
        description="Where the WHOIS referral chain starts (host or host:port).",
    )
    whois_servers: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="WHOIS servers by name or TLD, comma-separated name=host[:port] "
        "(de=whois.denic.de, whois.example.net=10.0.0.5:4343): a TLD entry skips IANA, a "
        "server entry says where to connect for that server.",
    )
    whois_timeout: float = Field(
        default=10.0, gt=0, description="Seconds per WHOIS exchange (the whole answer)."
    )
    tls_timeout: float = Field(
        default=5.0, gt=0, description="Seconds for the TLS check's connect and handshake."
    )
    tls_ports: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [443, 465, 636, 853, 990, 993, 995, 2083, 4443, 8443, 9443],
        description="Ports the TLS check connects to (an https URL's own port must be one of "
        "them), comma-separated; empty: any port.",
    )
    tls_ca_file: Path | None = Field(
        default=None,
        description="PEM file of CAs the TLS check trusts; empty: the system trust store.",
    )
    tls_expiry_warning_days: int = Field(
        default=14, ge=0, description="A certificate expiring sooner than this is suspicious."
    )
    urlhaus_url: str = Field(
        default="https://urlhaus-api.abuse.ch/v1", description="URLhaus API base URL."
    )
    urlhaus_api_key: SecretStr | None = Field(
        default=None,
        description="abuse.ch Auth-Key for URLhaus (free; or use urlhaus_api_key_file).",
    )
    urlhaus_api_key_file: Path | None = Field(
        default=None, description="File holding the URLhaus Auth-Key."
    )
    urlhaus_per_minute: int = Field(
        default=60, ge=0, description="URLhaus requests per minute (0: no limit)."
    )
    urlhaus_per_day: int = Field(
        default=10000, ge=0, description="URLhaus requests per day (0: no limit)."
    )
    blocklist_files: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="The operator's blocklist files, comma-separated (domains, addresses, "
        "networks, URLs, hashes; hosts-file and adblock forms too); re-read when changed.",
    )
    virustotal_url: str = Field(
        default="https://www.virustotal.com/api/v3", description="VirusTotal API v3 base URL."
    )
    virustotal_api_key: SecretStr | None = Field(
        default=None, description="VirusTotal API key (or use virustotal_api_key_file)."
    )
    virustotal_api_key_file: Path | None = Field(
        default=None, description="File holding the VirusTotal API key (e.g. a Docker secret)."
    )
    virustotal_per_minute: int = Field(
        default=4, ge=0, description="VirusTotal requests per minute (0: no limit)."
    )
    virustotal_per_day: int = Field(
        default=500, ge=0, description="VirusTotal requests per day (0: no limit)."
    )
    abuseipdb_url: str = Field(
        default="https://api.abuseipdb.com/api/v2", description="AbuseIPDB API v2 base URL."
    )
    abuseipdb_api_key: SecretStr | None = Field(
        default=None, description="AbuseIPDB API key (or use abuseipdb_api_key_file)."
    )
    abuseipdb_api_key_file: Path | None = Field(
        default=None, description="File holding the AbuseIPDB API key."
    )
    abuseipdb_per_day: int = Field(
        default=1000, ge=0, description="AbuseIPDB check requests per day (0: no limit)."
    )
    quota_max_wait: float = Field(
        default=65.0,
        ge=0,
        description="Seconds a batch may wait for a provider's quota window to free up; "
        "beyond that the check is marked 'quota exhausted' and nothing is sent.",
    )
    rate_limit: str = Field(
        default="30/hour;5/minute", description="Batches a user may start (per user)."
    )

    @field_validator(
        "nameservers", "dkim_selectors", "checks", "blocklist_files", "tls_ports", mode="before"
    )
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("checks")
    @classmethod
    def _known_checks(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(KNOWN_CHECKS))
        if unknown:
            raise ValueError(f"unknown checks: {', '.join(unknown)}")
        return [name for name in KNOWN_CHECKS if name in value]

    @field_validator("whois_servers", mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        if isinstance(value, str):
            pairs = [item.strip() for item in value.split(",") if item.strip()]
            mapping: dict[str, str] = {}
            for pair in pairs:
                name, sep, target = pair.partition("=")
                if not sep or not name.strip() or not target.strip():
                    raise ValueError(f"expected name=host[:port], got {pair!r}")
                mapping[name.strip().lower()] = target.strip()
            return mapping
        return value

    def urlhaus_key(self) -> str | None:
        return _secret(self.urlhaus_api_key, self.urlhaus_api_key_file)

    def virustotal_key(self) -> str | None:
        return _secret(self.virustotal_api_key, self.virustotal_api_key_file)

    def abuseipdb_key(self) -> str | None:
        return _secret(self.abuseipdb_api_key, self.abuseipdb_api_key_file)


def _secret(value: SecretStr | None, path: Path | None) -> str | None:
    if value is not None and value.get_secret_value():
        return value.get_secret_value()
    if path is not None:
        return path.read_text().strip() or None
    return None
