"""One way to send mail: SMTP when CLUBSTACK_SMTP_URL is set, else the dev outbox folder."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from clubstack.core.clock import utcnow
from clubstack.core.db import random_id
from clubstack.core.errors import InputError
from clubstack.core.files import private_dir, write_private
from clubstack.core.logs import email_hash
from clubstack.core.validation import email_address
from clubstack.settings import get_settings

log = logging.getLogger("clubstack.mail")


class MailError(Exception):
    """The mail could not be handed to the SMTP server."""


def build_message(to: str, subject: str, text: str, html: str | None = None) -> EmailMessage:
    try:  # every address was checked where it came in; this guards the header itself
        to = email_address(to)
    except InputError:
        raise MailError("refusing to send mail to a malformed address") from None
    settings = get_settings()
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="clubstack")
    message["Date"] = utcnow()
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def send_mail(to: str, subject: str, text: str, html: str | None = None) -> None:
    message = build_message(to, subject, text, html)
    settings = get_settings()
    if settings.smtp_url is None:
        outbox = settings.instance / "outbox"
        private_dir(outbox)  # the mails hold live login links
        path = outbox / f"{utcnow():%Y%m%dT%H%M%S.%f}-{random_id(6)}.eml"
        write_private(path, bytes(message))
        log.info("mail to %s written to %s: %s", email_hash(to), path, subject)
        return
    _send_smtp(settings.smtp_url.get_secret_value(), message)
    log.info("mail to %s sent: %s", email_hash(to), subject)


def _send_smtp(url: str, message: EmailMessage) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise MailError("CLUBSTACK_SMTP_URL must start with smtp:// or smtps://")
    options = parse_qs(parts.query)
    starttls = options.get("starttls", ["auto"])[0]  # auto | on | off
    host = parts.hostname or "localhost"
    timeout = get_settings().http_timeout
    context = ssl.create_default_context()
    try:
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host, parts.port or 465, timeout=timeout, context=context
            )
        else:
            client = smtplib.SMTP(host, parts.port or 587, timeout=timeout)
        with client:
            client.ehlo()
            if parts.scheme == "smtp" and (
                starttls == "on" or (starttls == "auto" and client.has_extn("starttls"))
            ):
                client.starttls(context=context)
                client.ehlo()
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        raise MailError(f"could not send mail via {host}: {error}") from error
