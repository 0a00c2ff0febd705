"""Who is asking: the session cookie for pages, `Authorization: Bearer` for APIs."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, redirect, request, session, url_for

from clubstack.core.accounts.login import session_user
from clubstack.core.accounts.models import User
from clubstack.core.accounts.tokens import token_user
from clubstack.core.db import db
from clubstack.core.errors import Forbidden, Unauthorized
from clubstack.core.web import csrf, wants_json

F = TypeVar("F", bound=Callable[..., Any])
_UNSET = object()


def current_user() -> User | None:
    """The user of this request (session cookie or bearer token), looked up once."""
    user = g.get("user", _UNSET)
    if user is _UNSET:
        user = None
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            user = token_user(db.session(), header.removeprefix("Bearer ").strip())
            g.via_token = True
        elif "sid" in session:
            user = session_user(db.session(), session["sid"])
            if user is None:
                session.pop("sid", None)
        g.user = user
    return user


def login_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            if g.get("via_token") or wants_json():  # API clients get 401, browsers the login page
                raise Unauthorized()
            return redirect(url_for("accounts.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def admin_required(view: F) -> F:
    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        user = current_user()
        if user is None or not user.is_admin:
            raise Forbidden("Only administrators may see this.")
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def api_auth(view: F) -> F:
    """For JSON APIs: a bearer token (CSRF-exempt) or a logged-in browser session."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if request.headers.get("Authorization", "").startswith("Bearer "):
            if current_user() is None:
                raise Unauthorized("The API token is not valid.")
        else:
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                csrf.protect()
            if current_user() is None:
                raise Unauthorized()
        return view(*args, **kwargs)

    return csrf.exempt(wrapped)
