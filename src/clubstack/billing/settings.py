"""Billing settings: CLUBSTACK_BILLING_* or the [billing] table of instance/clubstack.toml."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from clubstack.settings import ServiceSettings, service_config, service_settings


class BillingSettings(ServiceSettings):
    model_config = service_config("billing")

    currency: str = Field(
        default="EUR",
        description="ISO 4217 code of the one currency of this installation (EUR, USD, CHF ...).",
    )
    locale: str = Field(
        default="en_US", description="Locale used to format amounts (en_US, de_DE, fr_CH ...)."
    )
    min_payment_cents: int = Field(
        default=500, ge=1, description="Smallest amount a member may buy, in cents."
    )
    max_payment_cents: int = Field(
        default=100_000, ge=1, description="Largest amount a member may buy at once, in cents."
    )
    grace_period_hours: int = Field(
        default=72,
        ge=0,
        description="Hours an account may stay at or below zero (capsuls stopped) before "
        "the grace period expires and compute destroys its capsuls.",
    )
    stripe_secret_key: SecretStr | None = Field(
        default=None, description="Stripe secret API key; Stripe is offered when it is set."
    )
    stripe_webhook_secret: SecretStr | None = Field(
        default=None, description="Signing secret (whsec_...) of the Stripe webhook endpoint."
    )
    stripe_api_base: str = Field(
        default="https://api.stripe.com", description="Base URL of the Stripe API."
    )
    stripe_webhook_tolerance: int = Field(
        default=300,
        ge=1,
        description="Seconds a Stripe webhook signature stays valid (older ones are refused).",
    )
    btcpay_url: str | None = Field(
        default=None,
        description="Base URL of the BTCPay Server (https://btcpay.example.org); "
        "BTCPay is offered when it, the API key and the store id are set.",
    )
    btcpay_api_key: SecretStr | None = Field(
        default=None, description="Greenfield API key (permission: create and view invoices)."
    )
    btcpay_store_id: str | None = Field(default=None, description="BTCPay store id.")
    btcpay_webhook_secret: SecretStr | None = Field(
        default=None, description="Secret of the BTCPay webhook (HMAC of the BTCPay-Sig header)."
    )
    btcpay_expired_keep_days: int = Field(
        default=30,
        ge=0,
        description="Days an expired, unpaid BTCPay invoice is kept before cleanup deletes it.",
    )

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        from babel.numbers import list_currencies

        code = value.strip().upper()
        if code not in list_currencies():
            raise ValueError(f"unknown currency {value!r}")
        return code

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        from babel import Locale, UnknownLocaleError

        try:
            Locale.parse(value.strip())
        except (UnknownLocaleError, ValueError):
            raise ValueError(f"unknown locale {value!r}") from None
        return value.strip()

    @property
    def stripe_enabled(self) -> bool:
        return self.stripe_secret_key is not None and self.stripe_webhook_secret is not None

    @property
    def btcpay_enabled(self) -> bool:
        return bool(self.btcpay_url and self.btcpay_api_key and self.btcpay_store_id)


def billing_settings() -> BillingSettings:
    return service_settings(BillingSettings)
