"""The `clubstack` command. Each enabled service adds its own group (`clubstack drop ...`)."""

from __future__ import annotations

import sys
from typing import Any

import click

from clubstack import services
from clubstack.settings import SettingsError, get_settings


class _ClubstackGroup(click.Group):
    """Adds the service groups lazily, so `clubstack --help` stays fast and a broken service
    cannot stop the core commands."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names.update(name for name in services.names() if self._service_cli(name) is not None)
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, name) or self._service_cli(name)

    def invoke(self, ctx: click.Context) -> Any:
        # An error a user can be told about (a missing schema, bad input) is a one-line
        # message and exit code 1, never a traceback.
        from clubstack.core.errors import ClubError

        try:
            return super().invoke(ctx)
        except ClubError as error:
            raise click.ClickException(error.message) from None

    @staticmethod
    def _service_cli(name: str) -> click.Command | None:
        if name not in services.REGISTRY:
            return None
        service = services.load(name)
        return service.cli if service is not None else None


@click.group(cls=_ClubstackGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="clubstack")
def main() -> None:
    """clubstack: the web services a computer club runs, behind one login."""


def _settings(signing: bool = False) -> Any:
    """The settings, or a clear error. `signing`: the command signs sessions or links (the web
    app, the site worker), so a missing production key stops it here, at start."""
    try:
        settings = get_settings()
        if signing:
            settings.secret()
        return settings
    except SettingsError as error:
        raise click.ClickException(str(error)) from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=5000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to listen on.",
)
@click.option("--workers", default=None, type=int, help="Gunicorn worker processes.")
@click.option("--threads", default=4, show_default=True, type=int, help="Threads per worker.")
@click.option("--dev", is_flag=True, help="Flask's development server with the reloader.")
def serve(host: str, port: int, workers: int | None, threads: int, dev: bool) -> None:
    """Run the web app (gunicorn; --dev for the reloading development server)."""
    settings = _settings(signing=True)
    if dev and settings.env == "production":
        # The development server runs the Werkzeug debugger: an interactive Python console
        # for whoever can make a page fail.
        raise click.ClickException(
            "--dev runs the Werkzeug debugger and must not serve a production site "
            "(CLUBSTACK_ENV=production); run `clubstack serve` without --dev."
        )
    from clubstack.core.migrate import upgrade
    from clubstack.server import AddressInUse, check_address_free

    try:
        check_address_free(host, port)
    except AddressInUse as error:
        raise click.ClickException(str(error)) from None
    upgrade(settings.sqlalchemy_url)
    if dev:
        from clubstack.app import create_app

        create_app(settings).run(host=host, port=port, debug=True, use_reloader=True)
        return
    from clubstack.server import run_gunicorn

    run_gunicorn(host=host, port=port, workers=workers, threads=threads)


@main.command()
@click.option("--workers", default=None, type=int, help="Job threads (default: setting).")
@click.option("--no-periodic", is_flag=True, help="Do not run periodic jobs on this worker.")
def worker(workers: int | None, no_periodic: bool) -> None:
    """Run the job worker (background and periodic jobs of all enabled services)."""
    settings = _settings(signing=True)
    from clubstack.worker import run_worker

    run_worker(settings, workers=workers or settings.jobs_workers, periodic=not no_periodic)


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the newest version."""
    settings = _settings()
    from clubstack.core.migrate import upgrade

    upgrade(settings.sqlalchemy_url)
    click.echo("database is up to date")


@main.group()
def admin() -> None:
    """Administrator accounts."""


@admin.command("add")
@click.argument("email")
def admin_add(email: str) -> None:
    """Make EMAIL an administrator (creating the account if needed)."""
    from sqlalchemy import select

    from clubstack.core.accounts.login import normalise_email
    from clubstack.core.accounts.models import User
    from clubstack.core.db import session_scope
    from clubstack.core.errors import InputError
    from clubstack.core.migrate import open_database

    settings = _settings()
    try:
        address = normalise_email(email)
    except InputError as error:
        raise click.BadParameter(error.fields["email"], param_hint="EMAIL") from None
    open_database(settings.sqlalchemy_url)
    with session_scope() as session:
        user = session.scalar(select(User).where(User.email == address))
        if user is None:
            user = User(email=address)
            session.add(user)
        user.role = "admin"
    click.echo(f"{address} is an administrator")


@main.group()
def deploy() -> None:
    """Files for the deployment that follow from the settings."""


# Room above the largest body the app accepts, so a body just over an app limit still reaches
# the app and gets its own 413 answer (JSON or page, with its headers) rather than nginx's.
NGINX_BODY_MARGIN = 1024 * 1024


@deploy.command("nginx-limits")
def deploy_nginx_limits() -> None:
    """Print the nginx snippet with the body size limit the settings call for.

    deploy/nginx/clubstack.conf includes it from /etc/nginx/snippets/clubstack-limits.conf:
    run this with the production settings whenever they change, then reload nginx.
    """
    settings = _settings()
    from clubstack.app import create_app
    from clubstack.core.web import largest_body

    largest = largest_body(create_app(settings))
    kib = -(-(largest + NGINX_BODY_MARGIN) // 1024)
    click.echo(
        "# Generated by `clubstack deploy nginx-limits` from the settings; do not edit.\n"
        f"# The largest body a route accepts is {largest} bytes; nginx allows 1 MiB more so\n"
        "# the app answers bodies just over its limits with its own 413.\n"
        f"client_max_body_size {kib}k;"
    )


@main.command("settings")
@click.option("--markdown", is_flag=True, help="Print the configuration table in Markdown.")
def settings_cmd(markdown: bool) -> None:
    """Show every setting (or the docs/configuration.md table with --markdown)."""
    from clubstack.core.settings_doc import settings_table

    click.echo(settings_table(services.available(), markdown=markdown))


def run() -> None:  # pragma: no cover - console entry for python -m
    sys.exit(main())
