"""The drop's settings: CLUBSTACK_DROP_* or the [drop] table of instance/clubstack.toml."""

from __future__ import annotations

from pydantic import Field, model_validator

from clubstack.settings import ServiceSettings, service_config


class DropSettings(ServiceSettings):
    model_config = service_config("drop")

    max_bytes: int = Field(
        default=65_536,
        ge=16,
        le=1_000_000,
        description="Largest message accepted, in bytes of UTF-8 (413 above). Stays below the "
        "core's max_request_bytes.",
    )
    default_lifetime: int = Field(
        default=7 * 86_400,
        ge=60,
        description="Lifetime in seconds of a message whose creator did not choose one.",
    )
    max_lifetime: int = Field(
        default=30 * 86_400,
        ge=60,
        description="Longest lifetime in seconds a creator may choose (400 above).",
    )
    create_rate: str = Field(
        default="10/minute",
        description="Messages one client IP may create (Flask-Limiter syntax, e.g. 10/minute).",
    )
    read_rate: str = Field(
        default="300/minute",
        description="Reads one client IP may make (generous: it only slows guessing); deletes "
        "count against the default rate.",
    )
    store: str = Field(
        default="auto",
        pattern="^(auto|redis|sql)$",
        description="Where messages live: auto (Redis when CLUBSTACK_REDIS_URL is set, else the "
        "SQL database), redis or sql.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL for messages only (default: the core CLUBSTACK_REDIS_URL).",
    )
    store_timeout: float = Field(
        default=2.0,
        gt=0,
        description="Seconds to wait for the Redis store before answering 503.",
    )

    @model_validator(mode="after")
    def _lifetimes(self) -> DropSettings:
        if self.default_lifetime > self.max_lifetime:
            raise ValueError("default_lifetime is longer than max_lifetime")
        return self
