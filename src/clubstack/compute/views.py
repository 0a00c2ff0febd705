"""Member and admin pages of the compute service. Thin: parse, call, render.

The request models, `create_capsul` and `power_action` are shared with the JSON API (api.py)."""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_sock import Sock
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, Field
from simple_websocket import ConnectionClosed
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from clubstack.compute import billing_port, capsuls, charts, hosts, hypervisor, metering, stats
from clubstack.compute import console as console_logic
from clubstack.compute.errors import ClubError, ConsoleRefused, InputError
from clubstack.compute.models import CREATING, Capsul, ConsoleSession, Finding
from clubstack.compute.settings import ComputeSettings
from clubstack.core.accounts.auth import admin_required, current_user, login_required
from clubstack.core.clock import utcnow
from clubstack.core.db import db
from clubstack.core.validation import form_errors, form_to_dict, validate
from clubstack.core.web import limiter
from clubstack.settings import get_settings, service_settings

bp = Blueprint(
    "compute",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)


@bp.context_processor
def _money() -> dict[str, Any]:
    return {"money": billing_port.format_money}


sock = Sock()  # WebSocket routes on this blueprint (the console); the app needs no init


@bp.record_once
def _socket_options(state: Any) -> None:
    # Keystrokes come in small messages; pings keep a quiet console open through nginx.
    state.app.config.setdefault(
        "SOCK_SERVER_OPTIONS", {"max_message_size": 4 * 4096, "ping_interval": 25}
    )


def _settings() -> ComputeSettings:
    return service_settings(ComputeSettings)


def member_id() -> int:
    user = current_user()
    assert user is not None
    return user.id


class CreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=63)
    plan: str = Field(min_length=1, max_length=32)
    image: str = Field(min_length=1, max_length=64)
    ssh_keys: list[str] = Field(default_factory=list, max_length=20)
    ssh_key_ids: list[int] = Field(default_factory=list, max_length=20)


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str = Field(max_length=16)


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(default="", max_length=64)
    public_key: str = Field(min_length=1, max_length=capsuls.MAX_KEY_LENGTH)


def create_capsul(data: Any) -> Capsul:
    """Shared by the form and the API: validate, check credit and room, enqueue the job."""
    from clubstack.compute.tasks import enqueue_provision

    req = validate(CreateRequest, data)
    session = db.session()
    user_id = member_id()
    settings = _settings()
    capsul = capsuls.request_capsul(
        session,
        user_id,
        plan=req.plan,
        image=req.image,
        name=req.name,
        keys=capsuls.keys_for_capsul(session, user_id, req.ssh_key_ids, req.ssh_keys),
        min_credit_hours=settings.min_credit_hours,
        max_capsuls=settings.max_capsuls_per_member,
    )
    capsuls.keep_pasted_keys(session, user_id, req.ssh_keys)
    session.commit()
    capsul_id = capsul.id
    # with immediate jobs (tests, small sites) the job runs here, on this thread's session
    enqueue_provision(capsul_id)
    return db.session().get(Capsul, capsul_id)  # type: ignore[return-value]


def capsul_json(c: Capsul) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "status": c.status,
        "state": c.state,
        "progress": c.progress,
        "error": c.error,
        "plan": c.plan.name,
        "image": c.image.name,
        "vcpus": c.plan.vcpus,
        "memory_mib": c.plan.memory_mib,
        "disk_gib": c.plan.disk_gib,
        "price_hour_cents": c.plan.price_hour_cents,
        "addresses": c.address_list,
        "ssh": _ssh_json(c),
        "ssh_keys": c.key_list,
        "ssh_host_keys": c.host_key_list,
        "created_at": c.created_at.isoformat(),
        "started_at": c.started_at.isoformat() if c.started_at else None,
        "uptime_seconds": _uptime(c),
    }


def _ssh_json(c: Capsul) -> dict[str, Any] | None:
    endpoint = capsuls.ssh_endpoint(c)
    return {"host": endpoint[0], "port": endpoint[1]} if endpoint else None


def _uptime(c: Capsul) -> int | None:
    if c.state != "running" or c.started_at is None:
        return None
    return int((utcnow() - c.started_at).total_seconds())


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m = rem // 60
    return f"{d}d {h}h {m}m" if d else f"{h}h {m}m"


# --- pages --------------------------------------------------------------------------------


@bp.get("/")
def index() -> str:
    session = db.session()
    plans = capsuls.active_plans(session)
    user = current_user()
    mine = capsuls.member_capsuls(session, user.id) if user else []
    return render_template(
        "compute/index.html", plans=plans, capsuls=mine, setup=hosts.setup_status(session)
    )


@bp.route("/create", methods=["GET", "POST"])
@login_required
@limiter.limit("20/hour", methods=["POST"])
def create() -> str | BaseResponse | tuple[str, int]:
    session = db.session()
    errors: dict[str, str] = {}
    form: dict[str, Any] = {}
    status = 200
    if request.method == "POST":
        form = form_to_dict(request.form)
        data: dict[str, Any] = {k: form[k] for k in ("name", "plan", "image") if k in form}
        ids = request.form.getlist("ssh_key_ids")
        try:
            data["ssh_key_ids"] = [int(i) for i in ids]
        except ValueError:
            data["ssh_key_ids"] = ["x"]
        new_key = request.form.get("new_key", "").strip()
        data["ssh_keys"] = [new_key] if new_key else []
        try:
            capsul = create_capsul(data)
        except InputError as exc:
            session.rollback()
            errors = {k.split(".")[0]: v for k, v in exc.fields.items()}
            if "public_key" in errors or "ssh_keys" in errors:
                errors["new_key"] = errors.pop("public_key", "") or errors.pop("ssh_keys")
            status = 400
        except ClubError as exc:
            session.rollback()
            errors = {"form": exc.message}
            status = exc.status
        else:
            flash("Your capsul is being created.", "success")
            return redirect(url_for("compute.status", capsul_id=capsul.id))
    plans = capsuls.active_plans(session)
    images = capsuls.active_images(session)
    keys = capsuls.ssh_keys(session, member_id())
    try:
        balance = billing_port.balance(session, member_id())
    except ClubError:
        balance = None
    return render_template(
        "compute/create.html",
        plans=plans,
        images=images,
        keys=keys,
        errors=errors,
        form=form,
        balance=balance,
        setup=hosts.setup_status(session),
        hours=_settings().min_credit_hours,
    ), status


@bp.route("/keys", methods=["GET", "POST"])
@login_required
def keys() -> str | BaseResponse | tuple[str, int]:
    session = db.session()
    errors: dict[str, str] = {}
    if request.method == "POST":
        with form_errors(session) as result:
            req = validate(KeyRequest, form_to_dict(request.form))
            capsuls.add_ssh_key(session, member_id(), req.name, req.public_key)
            session.commit()
        if result.ok:
            flash("Key added.", "success")
            return redirect(url_for("compute.keys"))
        errors = result.fields
    page = render_template(
        "compute/keys.html",
        keys=capsuls.ssh_keys(session, member_id()),
        errors=errors,
        form=form_to_dict(request.form),
    )
    return (page, 400) if errors else page


@bp.post("/keys/<int:key_id>/delete")
@login_required
def delete_key(key_id: int) -> BaseResponse:
    session = db.session()
    capsuls.delete_ssh_key(session, member_id(), key_id)
    session.commit()
    flash("Key removed.", "success")
    return redirect(url_for("compute.keys"))


@bp.get("/capsuls/<capsul_id>")
@login_required
def status(capsul_id: str) -> str:
    session = db.session()
    capsul = capsuls.get_capsul(session, capsul_id, member_id())
    capsuls.refresh(session, capsul)
    session.commit()
    span = request.args.get("range", "hour")
    if span not in stats.RANGES:
        span = "hour"
    now = utcnow()
    points = stats.series(session, capsul.id, span, now)
    svgs = charts.capsul_graphs(points, capsul.plan.memory_mib, now - stats.RANGES[span], now)
    graphs = [Markup(svg) for svg in svgs]  # noqa: S704 - ElementTree output, escaped
    return render_template(
        "compute/status.html",
        capsul=capsul,
        graphs=graphs,
        span=span,
        ssh=capsuls.ssh_endpoint(capsul),
        spans=list(stats.RANGES),
        uptime=_duration(_uptime(capsul)),
        refresh=capsul.status == CREATING,
    )


@bp.post("/capsuls/<capsul_id>/action")
@login_required
@limiter.limit("60/hour")
def action(capsul_id: str) -> BaseResponse:
    try:
        action_name, capsul = power_action(capsul_id, request.form.get("action", ""))
    except ClubError as exc:
        if exc.status == 404:
            raise
        db.session().rollback()
        flash(exc.message, "error")
    else:
        if action_name == "stop" and capsul.state != "stopped":
            flash(
                f"Stop: the guest was asked to shut down; it is forced off after "
                f"{_settings().stop_timeout:.0f} seconds if it does not.",
                "success",
            )
        else:
            flash(f"{action_name.capitalize()}: the capsul is now {capsul.state}.", "success")
    return redirect(url_for("compute.status", capsul_id=capsul_id))


def power_action(capsul_id: str, action: object) -> tuple[str, Capsul]:
    """Power actions for the page and the API. A stop waits for the guest, so it runs as a
    job (the ACPI button is pressed right away); the others are quick and run here."""
    from clubstack.compute.tasks import enqueue_stop

    session = db.session()
    user_id = member_id()
    capsul = capsuls.get_capsul(session, capsul_id, user_id)
    req = validate(ActionRequest, {"action": action})
    if req.action != "stop":
        capsuls.act(session, capsul, req.action, stop_timeout=_settings().stop_timeout)
        session.commit()
        return req.action, capsul
    capsuls.request_stop(session, capsul)
    session.commit()
    enqueue_stop(capsul_id)  # with immediate jobs it runs now, on this thread's session
    return req.action, capsuls.get_capsul(db.session(), capsul_id, user_id)


@bp.route("/capsuls/<capsul_id>/destroy", methods=["GET", "POST"])
@login_required
def destroy(capsul_id: str) -> str | BaseResponse | tuple[str, int]:
    session = db.session()
    capsul = capsuls.get_capsul(session, capsul_id, member_id())
    error = None
    if request.method == "POST":
        if request.form.get("confirm", "").strip() != capsul.name:
            error = f"Type {capsul.name} to confirm."
        else:
            metering.meter_capsul(session, capsul, utcnow())
            capsuls.destroy(session, capsul)
            session.commit()
            flash(f"Capsul {capsul.name} was destroyed and its disk deleted.", "success")
            return redirect(url_for("compute.index"))
    page = render_template("compute/destroy.html", capsul=capsul, error=error)
    return (page, 400) if error else page


@bp.get("/capsuls/<capsul_id>/console")
@login_required
def console(capsul_id: str) -> str:
    capsul = capsuls.get_capsul(db.session(), capsul_id, member_id())
    return render_template(
        "compute/console.html",
        capsul=capsul,
        log=capsuls.console(capsul),
        ssh=capsuls.ssh_endpoint(capsul),
        minutes=max(1, round(_settings().console_time_limit / 60)),
    )


@bp.post("/capsuls/<capsul_id>/console/ticket")
@login_required
@limiter.limit("60/hour")
def console_ticket(capsul_id: str) -> tuple[Response, int]:
    """A one-time ticket for the console's WebSocket (this POST carries the CSRF token)."""
    session = db.session()
    capsul = capsuls.get_capsul(session, capsul_id, member_id())
    capsuls.refresh(session, capsul)
    ticket = console_logic.issue_ticket(session, capsul, member_id())
    session.commit()
    # url_for gives a WebSocket rule an absolute ws:// URL; the page keeps its own scheme and
    # host (wss:// behind TLS), so it gets the path
    socket_url = urlsplit(url_for("compute.console_socket", capsul_id=capsul.id, ticket=ticket.id))
    return jsonify(
        ticket=ticket.id,
        expires_in=_settings().console_ticket_seconds,
        url=f"{socket_url.path}?{socket_url.query}",
    ), 201


@bp.before_request
def _check_console_socket() -> None:
    """Refuse a console WebSocket with a plain HTTP error, before the handshake: not logged
    in, another site's page, or no fresh unused ticket of this member for this capsul."""
    if request.endpoint != "compute.console_socket":
        return
    user = current_user()
    if user is None:
        raise ConsoleRefused("Log in to use the console.")
    if not console_logic.origin_allowed(
        request.headers.get("Origin"), get_settings().base_url, request.host
    ):
        raise ConsoleRefused("The console opens only from this site's pages.")
    session = db.session()
    view_args = request.view_args or {}
    capsul = capsuls.get_capsul(session, str(view_args.get("capsul_id", "")), user.id)
    settings = _settings()
    row = console_logic.claim(
        session,
        request.args.get("ticket", ""),
        capsul.id,
        user.id,
        utcnow(),
        ticket_seconds=settings.console_ticket_seconds,
        time_limit=settings.console_time_limit,
        max_open=settings.console_max_open,
        max_per_member=settings.console_max_per_member,
    )
    session.commit()
    g.console_session = row.id


class _Socket:
    """simple-websocket's connection as console.Peer."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    def receive(self, timeout: float) -> bytes | None:
        try:
            data = self.ws.receive(timeout=timeout)
        except ConnectionClosed:
            raise console_logic.PeerGone() from None
        return data.encode() if isinstance(data, str) else data

    def send(self, data: bytes) -> None:
        try:
            self.ws.send(data)
        except ConnectionClosed:
            raise console_logic.PeerGone() from None


@sock.route("/capsuls/<capsul_id>/console/socket", bp=bp)
def console_socket(ws: Any, capsul_id: str) -> None:
    """The live console: guest output as binary messages, keystrokes as text messages."""
    session = db.session()
    row = session.get(ConsoleSession, g.console_session)
    capsul = capsuls.get_capsul(session, capsul_id, member_id())
    assert row is not None and capsul.host is not None
    uri, args, name = capsul.host.uri, capsul.host.connection_args(), capsul.domain_name
    session.commit()
    session.close()  # hold no database transaction for the minutes the console is open
    limit = _settings().console_time_limit
    reason = ""
    try:
        with hypervisor.ConsoleStream(uri, name, **args) as stream:
            outcome = console_logic.relay(stream, _Socket(ws), limit)
    except ClubError as exc:  # busy, not running, host down: tell the page why
        outcome = console_logic.Outcome(0, 0, "error")
        reason = exc.message
    session = db.session()
    row = session.get(ConsoleSession, g.console_session)
    assert row is not None
    console_logic.finish(session, row, outcome, utcnow())
    session.commit()
    if outcome.reason == "time-limit":
        reason = f"The console closes after {max(1, round(limit / 60))} minutes; open it again."
    elif outcome.reason == "guest-ended":
        reason = "The capsul's console ended (it was stopped)."
    if outcome.reason != "left":
        with contextlib.suppress(ConnectionClosed):
            ws.close(reason=4000 if outcome.reason == "error" else 1000, message=reason[:120])


@bp.get("/admin")
@admin_required
def admin() -> str:
    session = db.session()
    findings = list(
        session.scalars(
            select(Finding)
            .where(Finding.resolved_at.is_(None))
            .order_by(Finding.last_seen_at.desc())
        )
    )
    all_capsuls = list(
        session.scalars(
            select(Capsul).where(Capsul.status != "destroyed").order_by(Capsul.created_at)
        )
    )
    return render_template(
        "compute/admin.html",
        rooms=hosts.room(session),
        findings=findings,
        capsuls=all_capsuls,
        setup=hosts.setup_status(session),
    )
