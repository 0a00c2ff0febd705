"""Amounts: integer cents inside, the installation's currency and locale outside (Babel)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency, get_currency_precision

from clubstack.billing.settings import billing_settings
from clubstack.core.errors import InputError


def precision(currency: str | None = None) -> int:
    """Digits after the decimal point of the currency (2 for EUR, 0 for JPY)."""
    return int(get_currency_precision(currency or billing_settings().currency))


def to_units(cents: int, currency: str | None = None) -> Decimal:
    return Decimal(cents).scaleb(-precision(currency))


def format_money(cents: int, currency: str | None = None, locale: str | None = None) -> str:
    """20.5 EUR as the locale writes it: "€20.50" (en_US), "20,50 €" (de_DE)."""
    settings = billing_settings()
    code = currency or settings.currency
    return str(format_currency(to_units(cents, code), code, locale=locale or settings.locale))


def plain_amount(cents: int, currency: str | None = None) -> str:
    """Machine-readable amount, "20.50" (CSV, provider APIs)."""
    return f"{to_units(cents, currency):.{precision(currency)}f}"


def parse_amount(text: str, field: str = "amount", currency: str | None = None) -> int:
    """ "20", "20.00", "-5.5" -> cents; refuses more decimals than the currency has."""
    raw = (text or "").strip().replace(" ", "")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise InputError(fields={field: "Enter an amount such as 20.00."}) from None
    if not value.is_finite():
        raise InputError(fields={field: "Enter an amount such as 20.00."})
    digits = precision(currency)
    cents = value.scaleb(digits)
    if cents != cents.to_integral_value():
        raise InputError(fields={field: f"At most {digits} digits after the decimal point."})
    if abs(cents) >= 10**13:
        raise InputError(fields={field: "That amount is too large."})
    return int(cents)
