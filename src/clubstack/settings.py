"""Every setting, typed, read from CLUBSTACK_* environment variables and instance/clubstack.toml.

Core settings live in `Settings`. Each service declares its own `ServiceSettings` subclass in its
package; both kinds read the same sources (environment first, then the TOML file: top level for
the core, a `[service]` table for a service), so an operator has one place to look.
docs/configuration.md is generated from these classes (`clubstack settings --markdown`).
"""

from __future__ import annotations

import os
import secrets
import tomllib
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from clubstack.services import REGISTRY


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it."""


def _default_instance() -> Path:
    """The project's instance/ when clubstack runs from a source checkout (as `make run` does),
    whatever the working directory; ./instance for an installed wheel."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "src" / "clubstack").is_dir():
        return checkout / "instance"
    return Path("instance").resolve()


def instance_dir() -> Path:
    """CLUBSTACK_INSTANCE if set, else the default above."""
    configured = os.environ.get("CLUBSTACK_INSTANCE")
    return Path(configured).resolve() if configured else _default_instance()


def _toml_table(table: str | None) -> dict[str, Any]:
    path = instance_dir() / "clubstack.toml"
    if not path.is_file():
        return {}
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    if table is None:
        return {k: v for k, v in data.items() if not isinstance(v, dict)}
    section = data.get(table, {})
    return section if isinstance(section, dict) else {}


class _TomlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], table: str | None) -> None:
        super().__init__(settings_cls)
        self.table = table

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return _toml_table(self.table)


class _Base(BaseSettings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        table = settings_cls.model_config.get("title")  # the service name, None for core
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            _TomlSource(settings_cls, table if table != "core" else None),
            file_secret_settings,
        )


def service_config(name: str) -> SettingsConfigDict:
    """The model_config of a service's settings class: env prefix CLUBSTACK_<NAME>_."""
    return SettingsConfigDict(
        env_prefix=f"CLUBSTACK_{name.upper()}_",
        env_file=str(instance_dir() / ".env"),
        extra="ignore",
        title=name,
    )


class ServiceSettings(_Base):
    """Base class of a service's own settings."""

    model_config = service_config("service")

    prefix: str | None = Field(
        default=None,
        description="URL prefix of the service (default /<service>; empty mounts it at /).",
    )


S = TypeVar("S", bound=ServiceSettings)


class Settings(_Base):
    model_config = SettingsConfigDict(
        env_prefix="CLUBSTACK_",
        env_file=str(instance_dir() / ".env"),
        extra="ignore",
        title="core",
    )

    env: Literal["development", "production"] = Field(
        default="development",
        description="production: the web app and the site worker refuse to start without a "
        "configured secret key.",
    )
    instance: Path = Field(
        default=Path("instance"),
        description="Folder for the SQLite database, job queue, dev outbox, logs and secret key. "
        "Default: instance/ of the source checkout clubstack runs from, else ./instance.",
    )
    site_name: str = Field(default="clubstack", description="Name shown in the page header.")
    base_url: str = Field(
        default="http://127.0.0.1:5000",
        description="Public URL of the site. Every absolute link (mails, API answers, feeds) "
        "is built from it, never from the request's Host header.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs sessions and tokens. Development generates instance/secret_key.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (postgresql+psycopg://, mysql+pymysql://). "
        "Default: SQLite in the instance folder.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL; when set, jobs, rate limits and quotas use Redis.",
    )
    services: Annotated[list[str], NoDecode] = Field(
        default=list(REGISTRY),
        description=f"Enabled services, comma-separated ({','.join(REGISTRY)}).",
    )
    signup: Literal["open", "invite"] = Field(
        default="open",
        description="open: anyone can sign up by e-mail; invite: only addresses an admin added.",
    )
    smtp_url: SecretStr | None = Field(
        default=None,
        description="smtp://user:pass@host:587 (STARTTLS) or smtps://host:465; "
        "unset writes mail to instance/outbox.",
    )
    mail_from: str = Field(
        default="clubstack <noreply@localhost>", description="From address of all mail."
    )
    login_link_minutes: int = Field(
        default=15, ge=1, le=1440, description="Lifetime of a login link."
    )
    session_days: int = Field(default=14, ge=1, le=365, description="Lifetime of a login session.")
    max_request_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body accepted (413 above)."
    )
    login_rate_ip: str = Field(
        default="10/hour;3/minute", description="Login-link requests allowed per client IP."
    )
    login_rate_address: str = Field(
        default="5/hour", description="Login-link requests allowed per e-mail address."
    )
    default_rate: str = Field(
        default="600/minute", description="Default rate limit per client IP on every route."
    )
    proxy_fix: int = Field(
        default=0,
        ge=0,
        le=5,
        description="Number of trusted reverse proxies in front (X-Forwarded-*); 0 trusts none.",
    )
    log_level: str = Field(default="INFO", description="Logging level.")
    log_json: bool = Field(default=False, description="Write logs as JSON lines.")
    log_keep_days: int = Field(default=14, ge=1, description="Days of daily log files to keep.")
    http_timeout: float = Field(
        default=10.0, gt=0, description="Timeout in seconds of every outbound HTTP request."
    )
    http_retries: int = Field(
        default=2, ge=0, le=10, description="Retries (with backoff) of idempotent requests out."
    )
    http_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts (host or host:port) the SSRF guard lets through although they are "
        "loopback or private; for tests and for operators' internal services.",
    )
    jobs_immediate: bool = Field(
        default=False, description="Run jobs inline instead of queueing them (tests)."
    )
    jobs_workers: int = Field(default=2, ge=1, description="Threads of `clubstack worker`.")

    @field_validator("services", "http_allow_hosts", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(REGISTRY))
        if unknown:
            raise ValueError(f"unknown service(s) {', '.join(unknown)}")
        return value

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        # A relative default means "the project's": see instance_dir().
        self.instance = (
            instance_dir() if self.instance == Path("instance") else self.instance.resolve()
        )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.instance / 'clubstack.db'}"

    def secret(self) -> str:
        """The configured secret key, or the generated one in instance/secret_key (0600).

        Production refuses a generated key here, where a key is first needed (the web app and
        the site worker ask at start), rather than when settings load: a contest sandbox node
        runs in production with no key at all, and must."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        if self.env == "production":
            raise SettingsError(
                "CLUBSTACK_SECRET_KEY must be set in production (refusing a generated key)"
            )
        path = self.instance / "secret_key"
        if path in _generated_secrets:  # read once per process: it is hashed into log lines
            return _generated_secrets[path]
        if not path.exists():
            # Written whole to a temporary file, then linked into place: a second gunicorn
            # worker starting at the same moment sees either no key or the complete one.
            self.instance.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_name(f".secret_key.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # the other process won; use its key
            finally:
                tmp.unlink()
        secret = path.read_text().strip()
        if not secret:
            raise SettingsError(f"{path} is empty; delete it to have a new key generated")
        _generated_secrets[path] = secret
        return secret


_generated_secrets: dict[Path, str] = {}


def _describe(error: ValidationError, prefix: str) -> str:
    lines = []
    for item in error.errors():
        name = "_".join(str(p) for p in item["loc"]).upper()
        where = f"{prefix}{name}" if name else prefix.rstrip("_")
        lines.append(f"setting {where}: {item['msg']}")
    return "; ".join(lines)


@cache
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(_describe(error, "CLUBSTACK_")) from None


@cache
def service_settings(cls: type[S]) -> S:
    try:
        return cls()
    except ValidationError as error:
        raise SettingsError(_describe(error, str(cls.model_config.get("env_prefix")))) from None


def clear_settings_cache() -> None:
    """Forget loaded settings (tests change the environment between apps)."""
    get_settings.cache_clear()
    service_settings.cache_clear()
