"""One validator for HTML forms and JSON bodies: a pydantic model in, the same error shape out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ValidationError

from clubstack.core.errors import InputError

M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Any) -> M:
    """Validate `data` (a dict from JSON or a form) against `model`, or raise InputError."""
    if not isinstance(data, dict):
        raise InputError("Expected a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        fields: dict[str, str] = {}
        for item in error.errors(include_url=False, include_input=False):
            name = ".".join(str(part) for part in item["loc"]) or "body"
            message = item["msg"].removeprefix("Value error, ")
            fields.setdefault(name, message)
        raise InputError(fields=fields) from None


class _Transaction(Protocol):
    def rollback(self) -> None: ...


@dataclass
class FormErrors:
    """What went wrong with a submitted form: field name -> message (empty when it went well)."""

    fields: dict[str, str] = field(default_factory=dict)
    message: str = ""  # the error's summary, for a page that shows one above the form

    @property
    def ok(self) -> bool:
        return not self.fields


@contextmanager
def form_errors(
    session: _Transaction | None = None, *, field: str = "form"
) -> Iterator[FormErrors]:
    """Run a form's work; an InputError inside is caught, `session` rolled back, and the error
    kept as field messages for the page to show next to its inputs.

        with form_errors(session) as result:
            key = capsuls.add_ssh_key(session, user_id, form["name"], form["public_key"])
            session.commit()
        if result.ok:
            return redirect(...)
        return render_template(..., errors=result.fields), 400

    An error that names no field is shown under `field`. Other errors pass through to the
    one error-to-HTTP mapping (core.web).
    """
    result = FormErrors()
    try:
        yield result
    except InputError as error:
        if session is not None:
            session.rollback()
        result.fields = dict(error.fields) or {field: error.message}
        result.message = error.message


def form_to_dict(form: Any) -> dict[str, Any]:
    """A werkzeug MultiDict as a plain dict (repeated keys become lists); empty fields dropped."""
    data: dict[str, Any] = {}
    for key in form:
        values = [v for v in form.getlist(key) if v != ""]
        if key in ("csrf_token",) or not values:
            continue
        data[key] = values if len(values) > 1 else values[0]
    return data


# Characters a browser's URL parser drops or treats as separators (WHATWG URL: C0 controls,
# DEL; tabs and newlines anywhere), plus the Unicode line/paragraph separators and C1 controls
# some tools treat as line ends. A redirect target holding any of them is malformed, not merely
# foreign.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def local_path(raw: str | None, *, field: str = "next") -> str | None:
    """`raw` if it is a path on this site (to redirect to), None if it is anything else.

    A path on this site starts with a single "/", has no scheme and no host, no backslash
    (browsers read it as "/"), and does not start with "//" once percent-decoded (some
    front ends decode before routing). Control characters are refused with InputError:
    browsers strip them, so "/\\t/evil.example" would become "//evil.example".
    """
    if not raw:
        return None
    if _CONTROL_RE.search(raw):
        reason = "must be a path on this site, without control characters"
        raise InputError(f"{field} {reason}.", fields={field: reason})
    if "\\" in raw or not raw.startswith("/") or raw.startswith("//"):
        return None
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        return None
    decoded = unquote(parts.path)
    if decoded.startswith("//") or "\\" in decoded or _CONTROL_RE.search(decoded):
        return None
    return raw


# One address, as a person types it: a local part without spaces, quotes, brackets or list
# separators, and a host name. Deliberately narrower than RFC 5322: no quoted local parts,
# no comments, no address literals.
EMAIL_RE = re.compile(
    r"^[^@\s<>\"'(),;:\\\[\]]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$"
)
# An RFC 2047 encoded word ("=?utf-8?q?...?="): a mail library decodes it inside a header, so
# "=?utf-8?q?a=40x.org=2C_b=40y.org?=@z.org" would put more (or other) recipients in To.
_ENCODED_WORD_RE = re.compile(r"=\?[^?]*\?[bBqQ]\?", re.ASCII)


def email_address(raw: str, *, field: str = "email") -> str:
    """The one check for an e-mail address anyone gives us (login, address change, invitations,
    blog comments): stripped, domain lowercased; InputError with a reason otherwise."""
    email = raw.strip()
    if _CONTROL_RE.search(email):
        raise InputError(fields={field: "An e-mail address cannot contain control characters."})
    if _ENCODED_WORD_RE.search(email):
        raise InputError(fields={field: "Enter the address itself, not an encoded word."})
    if not email.isascii():
        # The mailer speaks plain SMTP (no SMTPUTF8): such an address would leave as an
        # encoded word in To and not arrive.
        raise InputError(fields={field: "Enter the address in plain ASCII characters."})
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise InputError(fields={field: "Enter a valid e-mail address."})
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"
