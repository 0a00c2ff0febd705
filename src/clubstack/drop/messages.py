"""What a drop does, in plain Python: make a message, read it, delete it. No Flask here."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from clubstack.core.clock import utcnow
from clubstack.core.db import random_id
from clubstack.core.errors import InputError
from clubstack.drop.errors import MessageNotFound, MessageTooLarge
from clubstack.drop.settings import DropSettings
from clubstack.drop.store import MessageStore, ReadLimit, StoredMessage

ID_BYTES = 16  # 128 random bits from `secrets`, 22 URL-safe characters
ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
# A message encrypted in the browser starts with this marker; the server treats it as text.
E2E_PREFIX = "clubstack-e2e:v1:"


class CreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1)
    expires_in: int | None = Field(default=None, ge=60)
    burn_after_reading: bool = False

    @field_validator("message")
    @classmethod
    def _text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("The message is empty.")
        if "\x00" in value:
            raise ValueError("The message contains a NUL character; send text.")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("The message is not valid Unicode text.") from None
        return value


@dataclass(frozen=True)
class Created:
    message: StoredMessage
    delete_token: str


def valid_id(message_id: str) -> bool:
    return bool(ID_RE.match(message_id))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create(store: MessageStore, request: CreateRequest, settings: DropSettings) -> Created:
    size = len(request.message.encode("utf-8"))
    if size > settings.max_bytes:
        raise MessageTooLarge(
            f"The message is {size} bytes; the limit is {settings.max_bytes}.",
            max_bytes=settings.max_bytes,
        )
    lifetime = request.expires_in or settings.default_lifetime
    if lifetime > settings.max_lifetime:
        raise InputError(
            fields={"expires_in": f"At most {settings.max_lifetime} seconds."},
        )
    now = utcnow().replace(microsecond=0)
    token = random_id(ID_BYTES)
    message = StoredMessage(
        id=random_id(ID_BYTES),
        body=request.message,
        burn=bool(request.burn_after_reading),
        created_at=now,
        expires_at=now + timedelta(seconds=lifetime),
        delete_hash=hash_token(token),
    )
    store.put(message)
    return Created(message=message, delete_token=token)


def read(store: MessageStore, message_id: str, limit: ReadLimit | None = None) -> StoredMessage:
    """The message; a malformed id is refused here and never reaches the store. `limit`: the
    reader's read limit, for a store that counts reads (store.counts_reads)."""
    if not valid_id(message_id):
        raise MessageNotFound()
    message = store.read(message_id, limit)
    if message is None:
        raise MessageNotFound()
    return message


def remove(store: MessageStore, message_id: str, token: str) -> None:
    if not valid_id(message_id) or not token:
        raise MessageNotFound()
    if not store.delete(message_id, hash_token(token)):
        raise MessageNotFound()


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


LIFETIME_RE = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_lifetime(text: str) -> int:
    """'90', '90s', '15m', '1h', '7d', '2w' -> seconds (for the CLI)."""
    match = LIFETIME_RE.match(text.lower())
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 10m, 1h, 7d)")
    return int(match.group(1)) * _UNITS[match.group(2)]
