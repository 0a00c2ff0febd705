"""The comments service on the web: a plain HTML comments page that works without JavaScript,
the embed script, a comments feed, unsubscribing, and the moderation queue. Thin: parse, call
clubstack.blog.comments, render. The JSON API the embed script calls is clubstack.blog.api."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from clubstack.blog import comments as logic
from clubstack.blog.settings import BlogSettings
from clubstack.core.accounts.auth import admin_required
from clubstack.core.db import db
from clubstack.core.errors import ClubError, InputError
from clubstack.core.validation import form_to_dict, validate
from clubstack.core.web import client_ip, csrf, limiter, secret_in_path
from clubstack.settings import get_settings, service_settings

STATIC = Path(__file__).parent / "static"


def blog_settings() -> BlogSettings:
    return service_settings(BlogSettings)


def site_secret() -> str:
    return get_settings().secret()


def comment_rate() -> str:
    return blog_settings().rate


def _spam_check() -> logic.SpamCheck | None:
    settings = blog_settings()
    if settings.akismet_key is None:
        return None
    from clubstack.blog.spam import AkismetCheck

    return AkismetCheck(
        settings.akismet_key.get_secret_value(),
        settings.site_url or get_settings().base_url,
        settings.akismet_api_url,
    )


def after_post(posted: logic.Posted) -> None:
    from clubstack.blog import tasks

    db.session.commit()
    tasks.notify_admin(posted.comment.id)
    if posted.confirm is not None:
        tasks.confirm_notify(posted.confirm)
    if posted.comment.status == "approved":
        tasks.notify_reply(posted.comment.id)


def create_comment(data: dict[str, Any]) -> logic.Posted:
    comment_in = validate(logic.CommentIn, data)
    return logic.post_comment(
        db.session(),
        comment_in,
        ip=client_ip(),
        secret=site_secret(),
        settings=blog_settings(),
        spam_check=_spam_check(),
    )


bp = Blueprint("blog", __name__, template_folder="templates")


@bp.get("/comments/feed.xml")
def feed() -> Response:
    from feedgen.feed import FeedGenerator

    path = request.args.get("path") or None
    settings = blog_settings()
    site = (settings.site_url or get_settings().base_url).rstrip("/")
    items = logic.approved_comments(db.session(), path, limit=50, newest_first=True)
    fg = FeedGenerator()
    self_url = url_for("blog.feed", path=path, _external=True)  # from CLUBSTACK_BASE_URL
    fg.id(self_url)
    fg.title(f"Comments on {path}" if path else "Latest comments")
    fg.link(href=self_url, rel="self")
    fg.link(href=site + (path or "/"), rel="alternate")
    fg.updated(items[0].created_at if items else logic.utcnow())
    for c in items:
        fe = fg.add_entry(order="append")
        link = f"{site}{c.post_path}#comment-{c.public_id}"
        fe.id(link)
        fe.link(href=link)
        fe.title(f"{c.author} on {c.post_path}")
        fe.author({"name": c.author})
        fe.published(c.created_at)
        fe.updated(c.edited_at or c.created_at)
        fe.content(c.html, type="html")
    return Response(fg.atom_str(pretty=True), mimetype="application/atom+xml")


@bp.get("/embed.js")
def embed() -> Response:
    response = send_from_directory(STATIC, "embed.js", mimetype="text/javascript", max_age=300)
    response.headers["Access-Control-Allow-Origin"] = "*"  # a public script
    return response


# ------------------------------------------------------------ pages without JavaScript


@bp.get("/")
def home() -> str:
    settings = blog_settings()
    return render_template(
        "blog/home.html", settings=settings, recent=logic.recent_comments(db.session(), 20)
    )


def _page(
    path: str,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
) -> tuple[str, int]:
    if not path.startswith("/"):
        abort(404)
    settings = blog_settings()
    items = logic.approved_comments(db.session(), path)
    reply_to = request.args.get("reply") or (form or {}).get("parent")
    return render_template(
        "blog/comments.html",
        path=path,
        threads=logic.thread(items),
        count=len(items),
        settings=settings,
        form_token=logic.form_token(site_secret()),
        errors=errors or {},
        form=form or {},
        reply_to=reply_to,
        post_url=(settings.site_url.rstrip("/") + path) if settings.site_url else None,
    ), status


@bp.get("/comments")
def comments_page() -> tuple[str, int]:
    return _page(request.args.get("path", ""))


@bp.post("/comments")
@limiter.limit(comment_rate)
def comments_post() -> BaseResponse | tuple[str, int]:
    data = form_to_dict(request.form)
    data["notify"] = "notify" in request.form
    path = str(data.get("path", ""))
    try:
        posted = create_comment(data)
    except InputError as exc:
        return _page(path, 400, exc.fields, data)
    except ClubError as exc:
        return _page(path, exc.status, {"form": exc.message}, data)
    after_post(posted)
    if posted.comment.status == "approved":
        flash("Thanks, your comment is published.", "success")
        anchor = f"#comment-{posted.comment.public_id}"
    else:
        flash("Thanks, your comment will appear once a moderator approves it.", "info")
        anchor = ""
    return redirect(url_for("blog.comments_page", path=path) + anchor)


# ------------------------------------------------------------ unsubscribe


@bp.get("/unsubscribe/<token>")
@secret_in_path("token")
def unsubscribe_page(token: str) -> str:
    email = logic.email_from_unsubscribe_token(db.session(), site_secret(), token)
    return render_template("blog/unsubscribe.html", token=token, email=email, done=False)


@bp.post("/unsubscribe/<token>")
@secret_in_path("token")
@csrf.exempt  # the signed token is the credential (RFC 8058 one-click POST)
def unsubscribe(token: str) -> str:
    email = logic.email_from_unsubscribe_token(db.session(), site_secret(), token)
    logic.unsubscribe(db.session(), email)
    db.session.commit()
    return render_template("blog/unsubscribe.html", token=token, email=email, done=True)


# ------------------------------------------------------------ confirming reply mails


@bp.get("/notify/<token>")
@secret_in_path("token")
def notify_confirm_page(token: str) -> str:
    # a button, not a confirmation on GET: mail scanners open links on their own
    return render_template("blog/notify_confirm.html", token=token, email=None)


@bp.post("/notify/<token>")
@secret_in_path("token")
def notify_confirm(token: str) -> str:
    email = logic.confirm_subscription(db.session(), token)
    db.session.commit()
    return render_template("blog/notify_confirm.html", token=token, email=email)


# ------------------------------------------------------------ moderation


@bp.get("/admin/comments")
@admin_required
def admin_queue() -> str:
    session = db.session()
    return render_template(
        "blog/admin_comments.html",
        queue=logic.moderation_queue(session),
        recent=logic.recent_comments(session),
    )


@bp.post("/admin/comments/<public_id>/<action>")
@admin_required
def admin_action(public_id: str, action: str) -> BaseResponse:
    if action not in logic.ACTIONS:
        abort(404)
    comment = logic.moderate(db.session(), public_id, action)
    db.session.commit()
    if action == "approve":
        from clubstack.blog import tasks

        tasks.notify_reply(comment.id)
    verbs = {
        "approve": "approved",
        "delete": "deleted",
        "spam": "marked as spam",
        "block": "marked as spam and its addresses blocked",
    }
    flash(f"Comment by {comment.author} {verbs[action]}.", "success")
    return redirect(url_for("blog.admin_queue"))
