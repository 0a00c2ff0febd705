"""create_app(): settings -> core extensions -> enabled services."""

from __future__ import annotations

import logging
from email.utils import parseaddr

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.middleware.proxy_fix import ProxyFix

from clubstack.core.accounts.auth import current_user
from clubstack.core.accounts.views import bp as accounts_bp
from clubstack.core.db import db
from clubstack.core.files import private_dir
from clubstack.core.jobs import configure_jobs
from clubstack.core.logs import setup_logging
from clubstack.core.web import (
    ClubFlask,
    cache_anonymous_page,
    init_web,
    limiter,
    request_failed,
    request_id,
)
from clubstack.services import enabled
from clubstack.settings import Settings, get_settings

log = logging.getLogger("clubstack.app")
access_log = logging.getLogger("clubstack.access")


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    private_dir(settings.instance)
    setup_logging(settings, "web")
    app = ClubFlask(__name__, instance_path=str(settings.instance))
    app.config["CLUBSTACK"] = settings
    init_web(app, settings)
    db.init(settings.sqlalchemy_url)
    configure_jobs(settings)
    if settings.proxy_fix:
        n = settings.proxy_fix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)  # type: ignore[method-assign]

    services = enabled(settings)
    app.extensions["clubstack.services"] = services

    @app.teardown_appcontext
    def _remove_session(_exc: BaseException | None) -> None:
        db.session.remove()

    mail_sender = parseaddr(settings.mail_from)[1] or settings.mail_from

    @app.context_processor
    def _globals() -> dict[str, object]:
        return {
            "site_name": settings.site_name,
            "mail_sender": mail_sender,
            "base_url": settings.base_url.rstrip("/"),
            "services": [s for s in services if s.nav],
            # The 500 page is made without the database: it may be what failed.
            "current_user": None if request_failed() else current_user(),
            "request_id": request_id(),
        }

    app.register_blueprint(accounts_bp)
    for service in services:
        if service.blueprint is not None:
            app.register_blueprint(service.blueprint(), url_prefix=service.prefix or None)
        service.load_tasks()

    if not any(s.prefix == "" for s in services):

        @app.get("/")
        @cache_anonymous_page
        def landing() -> str:
            return render_template("landing.html")

    @app.get("/healthz")
    @limiter.exempt
    def healthz() -> Response:
        """Liveness and database reachability, for load balancers and monitoring."""
        try:
            assert db.engine is not None
            with db.engine.connect() as connection:  # no ORM session: this runs every few seconds
                connection.exec_driver_sql("SELECT 1")
            database = "ok"
        except Exception:
            log.warning("health check: database unreachable")
            database = "unreachable"
        response = jsonify(status="ok" if database == "ok" else "degraded", database=database)
        response.status_code = 200 if database == "ok" else 503
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.after_request
    def _access_log(response: Response) -> Response:
        # secrets in the path are masked by the log filter (core.web.secret_in_path)
        access_log.info("%s %s %s", request.method, request.path, response.status_code)
        return response

    return app
