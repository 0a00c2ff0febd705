"""The comments service's logic: post, list, edit/delete with a signed token, moderate,
import from WordPress. Plain Python: takes a Session and plain values, no Flask."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import cmarkgfm
import nh3
from cmarkgfm.cmark import Options
from itsdangerous import BadSignature, URLSafeSerializer
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clubstack.blog.models import BlockedAddress, Comment, Subscriber, UsedFormToken
from clubstack.blog.settings import BlogSettings
from clubstack.core.accounts.login import hash_token
from clubstack.core.clock import utcnow
from clubstack.core.db import random_id
from clubstack.core.errors import ClubError, Forbidden, InputError, NotFound
from clubstack.core.validation import email_address

ALLOWED_TAGS = {
    "p",
    "br",
    "a",
    "em",
    "strong",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "del",
    "hr",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
LINK_REL = "nofollow ugc noopener"


class SpamSuspectedError(ClubError):
    status = 400
    code = "spam_suspected"
    message = "This comment looks automated; if you are a person, wait a moment and retry."


class AddressBlocked(Forbidden):
    code = "blocked"
    message = "Comments from this address are not accepted."


class EditWindowClosed(Forbidden):
    code = "edit_window_closed"
    message = "Comments can only be changed for a short while after posting."


class SpamCheckUnavailableError(Exception):
    """The spam checker did not answer; the comment is held for moderation."""


class CommentIn(BaseModel):
    path: str = Field(min_length=1, max_length=512)
    author: str = Field(min_length=1, max_length=80)
    body: str = Field(min_length=1)
    email: str = Field(default="", max_length=254)
    website: str = Field(default="", max_length=254)
    parent: str | None = Field(default=None, max_length=32)
    notify: bool = False
    form_token: str = Field(default="", max_length=200)
    homepage: str = ""  # the honeypot: hidden from people, filled in by bots

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or "//" in value or any(c in value for c in "?#<>\"' "):
            raise ValueError("must be the post's URL path, like /2021/02/my-post/")
        return value

    @field_validator("author", "body")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        try:  # the core's one address check: no control characters, no encoded words
            return email_address(value).lower()
        except InputError:
            raise ValueError("is not an e-mail address") from None

    @field_validator("website")
    @classmethod
    def _website(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"https?://[^\s<>\"']+", value, re.I):
            raise ValueError("must be an http:// or https:// address")
        return value


class CommentEdit(BaseModel):
    body: str = Field(min_length=1)


def render_comment(body: str) -> str:
    """Markdown (cmark's safe mode: no raw HTML) then nh3 with a short allow-list; links get
    rel="nofollow ugc noopener" and only http(s)/mailto schemes survive."""
    html = cmarkgfm.markdown_to_html_with_extensions(
        body,
        options=Options.CMARK_OPT_DEFAULT,
        extensions=["autolink", "strikethrough", "tagfilter"],
    )
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel=LINK_REL,
    )


# ---------------------------------------------------------------- signed tokens


def _signer(secret: str, purpose: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=f"clubstack-blog-{purpose}")


FORM_TOKEN_SECONDS = 86400


def form_token(secret: str, now: datetime | None = None) -> str:
    """Handed out with the form (the page, or the API's comment list for the embed); proves
    when it was loaded (for the minimum time to submit) and carries a random nonce, so that
    it posts one comment only (spend_form_token)."""
    return _signer(secret, "form").dumps(
        {"t": int((now or utcnow()).timestamp()), "n": random_id()}
    )


def check_form_token(
    secret: str, token: str, settings: BlogSettings, now: datetime | None = None
) -> str:
    """Check signature and age; return the token's nonce."""
    try:
        data = _signer(secret, "form").loads(token)
        issued, nonce = float(data["t"]), str(data["n"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise SpamSuspectedError("The form is missing its token; reload the page.") from None
    age = (now or utcnow()).timestamp() - issued
    if age < settings.min_submit_seconds:
        raise SpamSuspectedError()
    if age > FORM_TOKEN_SECONDS:
        raise SpamSuspectedError("The form is too old; reload the page.")
    return nonce


def spend_form_token(session: Session, nonce: str, now: datetime) -> None:
    """Record the nonce as spent, in the caller's transaction (a comment that is not saved
    leaves its token unspent). Spent nonces are kept as long as a token is valid."""
    refused = SpamSuspectedError("This form was already sent; reload the page to post again.")
    if session.get(UsedFormToken, nonce) is not None:
        raise refused
    session.execute(
        delete(UsedFormToken).where(
            UsedFormToken.used_at < now - timedelta(seconds=FORM_TOKEN_SECONDS + 60)
        )
    )
    session.add(UsedFormToken(nonce=nonce, used_at=now))
    try:
        session.flush()
    except IntegrityError:  # the same token sent twice at the same moment
        session.rollback()
        raise refused from None


def edit_token(secret: str, comment: Comment) -> str:
    return _signer(secret, "edit").dumps({"c": comment.public_id})


def unsubscribe_token(secret: str, subscriber: Subscriber) -> str:
    """Names the subscriber by its random id: the link (and any log of it) holds no address."""
    return _signer(secret, "unsubscribe").dumps({"s": subscriber.public_id})


def email_from_unsubscribe_token(session: Session, secret: str, token: str) -> str:
    invalid = NotFound("This unsubscribe link is not valid.")
    try:
        data = _signer(secret, "unsubscribe").loads(token)
    except BadSignature:
        raise invalid from None
    if not isinstance(data, dict):
        raise invalid
    if "e" in data:  # links mailed before subscribers had ids still work
        return str(data["e"])
    subscriber = session.scalar(
        select(Subscriber).where(Subscriber.public_id == str(data.get("s")))
    )
    if subscriber is None:
        raise invalid
    return subscriber.email


# ---------------------------------------------------------------- reply-mail subscriptions

CONFIRM_RESEND = timedelta(hours=1)
CONFIRM_VALID = timedelta(days=7)


def subscribe(session: Session, email: str, now: datetime) -> Subscriber | None:
    """The address asked for reply mails. Returns its subscriber when a confirmation mail is
    due (not yet confirmed, and none sent in the last hour: the comment form must not become
    a way to flood someone's inbox)."""
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == email))
    if subscriber is None:
        subscriber = Subscriber(email=email, created_at=now)
        session.add(subscriber)
        session.flush()
    if subscriber.confirmed_at is not None:
        return None
    if subscriber.confirm_sent_at is not None and now - subscriber.confirm_sent_at < CONFIRM_RESEND:
        return None
    subscriber.confirm_sent_at = now
    return subscriber


def issue_confirmation(session: Session, subscriber_id: int) -> tuple[str, str] | None:
    """A new confirmation token for the subscriber: (address, token); only its hash is kept,
    and it replaces any earlier one."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.confirmed_at is not None:
        return None
    token = secrets.token_urlsafe(32)
    subscriber.confirm_hash = hash_token(token)
    return subscriber.email, token


def confirm_subscription(session: Session, token: str, now: datetime | None = None) -> str:
    """Follow a confirmation link; returns the confirmed address."""
    now = now or utcnow()
    subscriber = session.scalar(
        select(Subscriber).where(Subscriber.confirm_hash == hash_token(token))
    )
    if (
        subscriber is None
        or subscriber.confirm_sent_at is None
        or now - subscriber.confirm_sent_at > CONFIRM_VALID
    ):
        raise NotFound("This confirmation link is not valid (or has expired).")
    subscriber.confirmed_at, subscriber.confirm_hash = now, None
    return subscriber.email


def confirmed_subscriber(session: Session, email: str) -> Subscriber | None:
    return session.scalar(
        select(Subscriber).where(Subscriber.email == email, Subscriber.confirmed_at.is_not(None))
    )


# ---------------------------------------------------------------- posting and reading

SpamCheck = Callable[[CommentIn, str], bool]


@dataclass
class Posted:
    comment: Comment
    token: str
    confirm: int | None = None  # a subscriber to send a confirmation mail to


def is_blocked(session: Session, ip: str, email: str) -> bool:
    wanted = [("ip", ip)] + ([("email", email)] if email else [])
    for kind, value in wanted:
        if session.scalar(
            select(BlockedAddress.id).where(
                BlockedAddress.kind == kind, BlockedAddress.value == value
            )
        ):
            return True
    return False


def post_comment(
    session: Session,
    data: CommentIn,
    *,
    ip: str,
    secret: str,
    settings: BlogSettings,
    spam_check: SpamCheck | None = None,
    now: datetime | None = None,
) -> Posted:
    now = now or utcnow()
    if data.homepage:
        raise SpamSuspectedError()
    nonce = check_form_token(secret, data.form_token, settings, now)
    if len(data.body) > settings.max_length:
        raise InputError(fields={"body": f"must be at most {settings.max_length} characters"})
    if is_blocked(session, ip, data.email):
        raise AddressBlocked()
    parent = None
    if data.parent:
        parent = session.scalar(select(Comment).where(Comment.public_id == data.parent))
        if parent is None or parent.post_path != data.path or parent.status != "approved":
            raise InputError(fields={"parent": "is not a comment on this post"})
    status = "pending" if settings.premoderate else "approved"
    if spam_check is not None:
        try:
            if spam_check(data, ip):
                status = "spam"
        except SpamCheckUnavailableError:
            status = "pending"
    comment = Comment(
        post_path=data.path,
        parent=parent,
        author=data.author,
        email=data.email,
        website=data.website,
        ip=ip,
        body=data.body,
        html=render_comment(data.body),
        status=status,
        notify=bool(data.notify and data.email),
        created_at=now,
    )
    spend_form_token(session, nonce, now)
    session.add(comment)
    session.flush()
    # no confirmation mail on behalf of a comment judged spam
    due = subscribe(session, data.email, now) if comment.notify and status != "spam" else None
    return Posted(comment, edit_token(secret, comment), due.id if due else None)


def approved_comments(
    session: Session, path: str | None = None, limit: int | None = None, newest_first: bool = False
) -> list[Comment]:
    query = select(Comment).where(Comment.status == "approved")
    if path is not None:
        query = query.where(Comment.post_path == path)
    order = Comment.created_at.desc() if newest_first else Comment.created_at
    query = query.order_by(order, Comment.id)
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))


@dataclass
class Node:
    comment: Comment
    replies: list[Node]


def thread(comments: list[Comment]) -> list[Node]:
    """Nest comments under their parents; a reply whose parent is hidden goes to the top."""
    nodes = {c.id: Node(c, []) for c in comments}
    roots: list[Node] = []
    for c in comments:
        parent = nodes.get(c.parent_id) if c.parent_id else None
        (parent.replies if parent else roots).append(nodes[c.id])
    return roots


def to_json(comment: Comment, settings: BlogSettings) -> dict[str, Any]:
    return {
        "id": comment.public_id,
        "parent": comment.parent.public_id if comment.parent else None,
        "author": comment.author,
        "website": comment.website or None,
        "html": comment.html,
        "created": comment.created_at.isoformat(),
        "edited": comment.edited_at.isoformat() if comment.edited_at else None,
        "editable_until": (
            comment.created_at + timedelta(minutes=settings.edit_minutes)
        ).isoformat(),
        "status": comment.status,
    }


def _own_comment(
    session: Session, public_id: str, token: str, secret: str, settings: BlogSettings, now: datetime
) -> Comment:
    comment = session.scalar(select(Comment).where(Comment.public_id == public_id))
    if comment is None or comment.status in ("deleted", "spam"):
        raise NotFound("No such comment.")
    try:
        claimed = _signer(secret, "edit").loads(token)["c"]
    except (BadSignature, KeyError, TypeError):
        claimed = None
    if claimed != comment.public_id:
        raise Forbidden("This is not your comment (or the edit token is missing).")
    if now > comment.created_at + timedelta(minutes=settings.edit_minutes):
        raise EditWindowClosed()
    return comment


def edit_comment(
    session: Session,
    public_id: str,
    token: str,
    body: str,
    *,
    secret: str,
    settings: BlogSettings,
    now: datetime | None = None,
) -> Comment:
    now = now or utcnow()
    comment = _own_comment(session, public_id, token, secret, settings, now)
    body = body.strip()
    if not body:
        raise InputError(fields={"body": "must not be empty"})
    if len(body) > settings.max_length:
        raise InputError(fields={"body": f"must be at most {settings.max_length} characters"})
    comment.body, comment.html, comment.edited_at = body, render_comment(body), now
    return comment


def delete_own_comment(
    session: Session,
    public_id: str,
    token: str,
    *,
    secret: str,
    settings: BlogSettings,
    now: datetime | None = None,
) -> None:
    comment = _own_comment(session, public_id, token, secret, settings, now or utcnow())
    comment.status = "deleted"


# ---------------------------------------------------------------- moderation

ACTIONS = ("approve", "delete", "spam", "block")


def moderation_queue(session: Session, limit: int = 200) -> list[Comment]:
    return list(
        session.scalars(
            select(Comment)
            .where(Comment.status.in_(("pending", "spam")))
            .order_by(Comment.created_at.desc())
            .limit(limit)
        )
    )


def recent_comments(session: Session, limit: int = 50) -> list[Comment]:
    return list(
        session.scalars(
            select(Comment)
            .where(Comment.status == "approved")
            .order_by(Comment.created_at.desc())
            .limit(limit)
        )
    )


def moderate(session: Session, public_id: str, action: str) -> Comment:
    comment = session.scalar(select(Comment).where(Comment.public_id == public_id))
    if comment is None:
        raise NotFound("No such comment.")
    if action == "approve":
        comment.status = "approved"
    elif action == "delete":
        comment.status = "deleted"
    elif action == "spam":
        comment.status = "spam"
    elif action == "block":
        for kind, value in (("ip", comment.ip), ("email", comment.email)):
            if value and not session.scalar(
                select(BlockedAddress.id).where(
                    BlockedAddress.kind == kind, BlockedAddress.value == value
                )
            ):
                session.add(BlockedAddress(kind=kind, value=value))
        comment.status = "spam"
    else:
        raise InputError(fields={"action": f"must be one of {', '.join(ACTIONS)}"})
    return comment


def unsubscribe(session: Session, email: str) -> int:
    """No more reply mails to EMAIL; a later request for them needs a new confirmation."""
    comments = list(
        session.scalars(select(Comment).where(Comment.email == email, Comment.notify.is_(True)))
    )
    for c in comments:
        c.notify = False
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == email))
    if subscriber is not None:
        subscriber.confirmed_at = subscriber.confirm_hash = subscriber.confirm_sent_at = None
    return len(comments)


# ---------------------------------------------------------------- WordPress comments


@dataclass
class CommentImport:
    imported: int = 0
    pending: int = 0
    skipped: int = 0


def import_wordpress_comments(session: Session, data: dict[str, Any]) -> CommentImport:
    """Load comments.json written by the WordPress importer. Approved ones are public,
    pending ones go to the moderation queue; threading is kept; running it twice is safe."""
    result = CommentImport()
    by_wp: dict[int, Comment] = {}
    items = sorted(data.get("comments", []), key=lambda c: (c.get("date") or "", c["wordpress_id"]))
    for item in items:
        wp_id = int(item["wordpress_id"])
        existing = session.scalar(select(Comment).where(Comment.wordpress_id == wp_id))
        if existing is not None:
            by_wp[wp_id] = existing
            result.skipped += 1
            continue
        status = "approved" if item.get("status") == "approved" else "pending"
        when = datetime.fromisoformat(item["date"]) if item.get("date") else utcnow()
        website = item.get("url") or ""
        if not re.fullmatch(r"https?://[^\s<>\"']{1,240}", website, re.I):
            website = ""
        # WordPress stored comment HTML; treat it as Markdown-with-no-HTML plus sanitising
        body = str(item.get("content") or "")
        comment = Comment(
            post_path=item["post_path"],
            author=(item.get("author") or "Anonymous")[:80],
            email=(item.get("email") or "")[:254],
            website=website,
            ip=(item.get("ip") or "")[:45],
            body=body,
            html=_render_imported(body),
            status=status,
            notify=False,
            created_at=when,
            wordpress_id=wp_id,
            parent=by_wp.get(int(item.get("parent_wordpress_id") or 0)),
        )
        session.add(comment)
        session.flush()
        by_wp[wp_id] = comment
        result.imported += 1
        result.pending += status == "pending"
    return result


def _render_imported(body: str) -> str:
    """WordPress comments are HTML with blank-line paragraphs: wrap, then sanitise."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body.replace("\r\n", "\n")) if p.strip()]
    wrapped = "".join(f"<p>{p}</p>" for p in paragraphs)
    return nh3.clean(
        wrapped.replace("\n", "<br>"),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel=LINK_REL,
    )


ANONYMOUS = "anonymous"


def anonymise_author(session: Session, email: str) -> None:
    """When a member deletes their account, the comments left with their address stay (a
    thread needs them) but lose who wrote them: name, address, IP address, reply mails.
    Not committed."""
    session.execute(
        update(Comment)
        .where(Comment.email == email.lower())
        .values(author=ANONYMOUS, email="", website="", ip="", notify=False)
        .execution_options(synchronize_session=False)
    )
