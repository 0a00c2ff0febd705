"""Settings of the blog's comments service: CLUBSTACK_BLOG_* or [blog] in clubstack.toml."""

from __future__ import annotations

from pydantic import Field, SecretStr

from clubstack.settings import ServiceSettings, service_config


class BlogSettings(ServiceSettings):
    model_config = service_config("blog")

    site_url: str = Field(
        default="", description="Public URL of the static blog (links in mails and feeds)."
    )
    origin: str = Field(
        default="",
        description="Origin of the static blog (https://blog.example.org) allowed "
        "to call the comments API from the browser (CORS); empty allows none.",
    )
    premoderate: bool = Field(
        default=False, description="Hold every new comment for an administrator's approval."
    )
    admin_email: str = Field(
        default="", description="Address told about every new comment (empty: nobody)."
    )
    max_length: int = Field(
        default=5000, ge=100, le=100_000, description="Longest comment accepted, in characters."
    )
    min_submit_seconds: float = Field(
        default=3.0,
        ge=0,
        le=600,
        description="A comment sent sooner after the form was loaded is treated as a bot's.",
    )
    edit_minutes: int = Field(
        default=15, ge=1, le=1440, description="How long a commenter may edit or delete."
    )
    rate: str = Field(default="5/minute;30/hour", description="Comments allowed per client IP.")
    akismet_key: SecretStr | None = Field(
        default=None, description="Akismet API key; when set every comment is checked."
    )
    akismet_api_url: str = Field(
        default="https://rest.akismet.com", description="Akismet API base URL."
    )
