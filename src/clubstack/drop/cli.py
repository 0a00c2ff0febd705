"""`clubstack drop post` and `clubstack drop get`: a client of a drop server's HTTP API.

The CLI talks to the API like any user's client would, so it uses requests directly rather than
the server-side outbound client (whose SSRF guard exists to protect the server, not the user).
An URL with a #fragment key (from the page's end-to-end encryption) is decrypted locally.
"""

from __future__ import annotations

import base64
import sys
from typing import Any
from urllib.parse import urldefrag

import click
import requests

E2E_PREFIX = "clubstack-e2e:v1:"  # same marker as clubstack.drop.messages (kept import-light)


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decrypt(body: str, key_text: str) -> str:
    """Undo the page's AES-GCM encryption: body is E2E_PREFIX + base64url(iv || ciphertext)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    blob = _b64decode(body.removeprefix(E2E_PREFIX))
    return AESGCM(_b64decode(key_text)).decrypt(blob[:12], blob[12:], None).decode("utf-8")


def encrypt_text(text: str) -> tuple[str, str]:
    """Encrypt like the page does; returns (body, key for the URL fragment)."""
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = AESGCM.generate_key(bit_length=256)
    iv = os.urandom(12)
    blob = iv + AESGCM(key).encrypt(iv, text.encode("utf-8"), None)
    return E2E_PREFIX + _b64encode(blob), _b64encode(key)


def _default_server() -> str:
    from clubstack.services import load
    from clubstack.settings import get_settings

    service = load("drop")
    prefix = service.prefix if service is not None else "/drop"
    return get_settings().base_url.rstrip("/") + prefix


def _fail(response: requests.Response) -> None:
    try:
        reason = response.json().get("message", response.reason)
    except ValueError:
        reason = response.reason
    raise click.ClickException(f"{response.status_code}: {reason}")


@click.group()
def cli() -> None:
    """Leave and read messages at unguessable URLs."""


@cli.command("post")
@click.argument("file", type=click.File("rb"), default="-")
@click.option("--expires", default=None, help="Lifetime, e.g. 10m, 1h, 7d (default: server's).")
@click.option("--burn", is_flag=True, help="Delete the message when it is first read.")
@click.option("--encrypt", is_flag=True, help="Encrypt here; the key goes in the URL fragment.")
@click.option("--server", default=None, help="Drop URL (default: base_url + the drop prefix).")
@click.option("--timeout", default=15.0, show_default=True, help="Seconds to wait for the server.")
def post(
    file: Any, expires: str | None, burn: bool, encrypt: bool, server: str | None, timeout: float
) -> None:
    """Leave FILE (or standard input, '-') as a message and print its URL.

    The delete token goes to standard error, so `URL=$(clubstack drop post f.txt)` works.
    """
    from clubstack.drop.messages import parse_lifetime

    raw = file.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise click.ClickException("the input is not UTF-8 text") from None
    payload: dict[str, Any] = {"message": text, "burn_after_reading": burn}
    if expires:
        try:
            payload["expires_in"] = parse_lifetime(expires)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--expires") from None
    key = None
    if encrypt:
        payload["message"], key = encrypt_text(text)
    base = (server or _default_server()).rstrip("/")
    try:
        response = requests.post(
            base + "/", json=payload, headers={"Accept": "application/json"}, timeout=timeout
        )
    except requests.RequestException as error:
        raise click.ClickException(f"cannot reach {base}: {type(error).__name__}") from None
    if response.status_code != 201:
        _fail(response)
    created = response.json()
    click.echo(created["url"] + (f"#{key}" if key else ""))
    click.echo(f"delete token: {created['delete_token']}", err=True)


@cli.command("get")
@click.argument("url")
@click.option("--timeout", default=15.0, show_default=True, help="Seconds to wait for the server.")
def get(url: str, timeout: float) -> None:
    """Print the message at URL (decrypting it when the URL carries a #key)."""
    address, fragment = urldefrag(url)
    try:
        response = requests.get(address, headers={"Accept": "application/json"}, timeout=timeout)
    except requests.RequestException as error:
        raise click.ClickException(f"cannot reach {address}: {type(error).__name__}") from None
    if response.status_code != 200:
        _fail(response)
    body = response.json()["message"]
    if body.startswith(E2E_PREFIX):
        if not fragment:
            raise click.ClickException("the message is encrypted and the URL has no #key")
        try:
            body = decrypt(body, fragment)
        except Exception:  # any failure means a wrong key or damaged text
            raise click.ClickException("cannot decrypt: wrong key or damaged message") from None
    sys.stdout.write(body)
    if not body.endswith("\n"):
        sys.stdout.write("\n")
