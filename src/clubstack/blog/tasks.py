"""Mail about comments, sent from the job queue so posting stays fast."""

from __future__ import annotations

from clubstack.blog.comments import confirmed_subscriber, issue_confirmation, unsubscribe_token
from clubstack.blog.models import Comment
from clubstack.blog.settings import BlogSettings
from clubstack.core.db import session_scope
from clubstack.core.jobs import huey
from clubstack.core.mail import send_mail
from clubstack.settings import get_settings, service_settings


def _service_url() -> str:
    blog = service_settings(BlogSettings)
    prefix = blog.prefix if blog.prefix is not None else "/blog"
    return get_settings().base_url.rstrip("/") + prefix.rstrip("/")


def _urls(comment: Comment) -> tuple[str, str]:
    blog = service_settings(BlogSettings)
    service = _service_url()
    post = (
        (blog.site_url.rstrip("/") + comment.post_path)
        if blog.site_url
        else (f"{service}/comments?path={comment.post_path}")
    )
    return service, post


@huey.task()
def notify_admin(comment_id: int) -> None:
    blog = service_settings(BlogSettings)
    if not blog.admin_email:
        return
    with session_scope() as session:
        comment = session.get(Comment, comment_id)
        if comment is None:
            return
        service, post = _urls(comment)
        held = comment.status != "approved"
        text = (
            f"{comment.author} commented on {post}"
            f"{' (held for moderation: ' + comment.status + ')' if held else ''}:\n\n"
            f"{comment.body}\n\n"
            f"Moderate: {service}/admin/comments\n"
        )
        subject = f"{'[held] ' if held else ''}New comment on {comment.post_path}"
    send_mail(blog.admin_email, subject, text)


@huey.task()
def notify_reply(comment_id: int) -> None:
    """Tell the parent comment's author about an approved reply, if they asked for it."""
    with session_scope() as session:
        comment = session.get(Comment, comment_id)
        if comment is None or comment.status != "approved" or comment.parent is None:
            return
        parent = comment.parent
        if not (parent.notify and parent.email) or parent.email == comment.email:
            return
        subscriber = confirmed_subscriber(session, parent.email)
        if subscriber is None:  # the address's owner never confirmed they want these mails
            return
        service, post = _urls(comment)
        token = unsubscribe_token(get_settings().secret(), subscriber)
        to = parent.email
        text = (
            f"{comment.author} replied to your comment on {post}:\n\n{comment.body}\n\n"
            f"Read it: {post}#comment-{comment.public_id}\n\n"
            f"Stop these mails with one click: {service}/unsubscribe/{token}\n"
        )
    send_mail(to, f"New reply to your comment on {comment.post_path}", text)


@huey.task()
def confirm_notify(subscriber_id: int) -> None:
    """Ask the address's owner to confirm they want reply mails: nothing is sent to an address
    someone typed into the comment form until its owner follows this link."""
    with session_scope() as session:
        issued = issue_confirmation(session, subscriber_id)
        if issued is None:
            return
        to, token = issued
    service = _service_url()
    text = (
        "Someone (we hope you) asked for an e-mail when there are replies to their comment.\n\n"
        f"To confirm, open this link and press the button: {service}/notify/{token}\n\n"
        "If it was not you, ignore this mail: nothing more will be sent to you.\n"
    )
    send_mail(to, "Confirm reply notifications", text)
