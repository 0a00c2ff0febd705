"""`clubstack blog ...`: new, build, serve, import-wordpress. Runs without the web app too:
`python -m clubstack.blog build SRC OUT`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from clubstack.blog.content import ContentError, init_site, new_post


@click.group("blog", help="The static blog generator and its comments service.")
def blog() -> None:
    pass


@blog.command("init", help="Make a new site in SRC: a working site.toml and a first post.")
@click.argument("src", type=click.Path(file_okay=False, path_type=Path))
@click.option("--title", default="My blog", show_default=True, help="The blog's title.")
@click.option(
    "--base-url",
    default="http://localhost:8000",
    show_default=True,
    help="Where the built site will be served.",
)
@click.option("--author", default="", help="Shown in feeds and pages.")
@click.option(
    "--comments-url",
    default="",
    help="The suite's comments service, e.g. https://club.example.org/blog.",
)
def init_command(src: Path, title: str, base_url: str, author: str, comments_url: str) -> None:
    try:
        post = init_site(src, title, base_url, author, comments_url, datetime.now(UTC))
    except ContentError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"made {src / 'site.toml'} and {post}")
    click.echo(f"next: clubstack blog serve {src}   (preview, rebuilds on change)")
    click.echo(f"      clubstack blog new 'A title' --src {src}")


@blog.command("new", help="Start a new draft post in SRC/posts/.")
@click.argument("title")
@click.option(
    "--src",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="The site folder (with site.toml).",
)
def new_command(title: str, src: Path) -> None:
    try:
        path = new_post(src, title, datetime.now(UTC))
    except ContentError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(path)


def run_build(src: Path, out: Path, drafts: bool, jobs: int | None, quiet: bool) -> int:
    """Build with a progress bar; print broken files as file:line: reason. Returns exit code."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    from clubstack.blog.build import build

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        disable=quiet or not sys.stderr.isatty(),
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = "Reading posts" if stage == "parse" else "Writing pages"
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done)

        try:
            result = build(src, out, drafts=drafts, workers=jobs, progress=progress)
        except ContentError as exc:
            click.echo(str(exc), err=True)
            return 2
    for err in result.errors:
        click.echo(f"{err.path}:{err.line}: {err.reason}", err=True)
    if not quiet:
        click.echo(
            f"{result.posts} posts; {len(result.written)} files written, "
            f"{result.skipped} unchanged, {len(result.deleted)} removed -> {out}"
        )
    return 1 if result.errors else 0


@blog.command("build", help="Build the site in SRC into OUT (incrementally).")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path), default="output")
@click.option("--drafts", is_flag=True, help="Include drafts and future-dated posts.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes (default: all cores).",
)
@click.option("--quiet", "-q", is_flag=True)
def build_command(src: Path, out: Path, drafts: bool, jobs: int | None, quiet: bool) -> None:
    sys.exit(run_build(src, out, drafts, jobs, quiet))


@blog.command("serve", help="Preview the site: rebuild on change, reload the browser.")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to build (default: SRC/.cache/preview).",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--drafts/--no-drafts", default=True, show_default=True)
def serve_command(src: Path, out: Path | None, port: int, host: str, drafts: bool) -> None:
    from clubstack.blog.preview import PreviewServer

    out = out or src / ".cache" / "preview"
    code = run_build(src, out, drafts, None, quiet=False)
    if code == 2:
        sys.exit(code)
    server = PreviewServer(src, out, host=host, port=port, drafts=drafts)
    click.echo(f"Serving {out} at http://{host}:{server.port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


@blog.command("import-wordpress", help="Turn a WordPress export (WXR) into a site in SRC.")
@click.argument("export", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("src", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--load-comments",
    is_flag=True,
    help="Also load the comments into the comments service's database "
    "(same as running import-comments afterwards).",
)
@click.pass_context
def import_command(ctx: click.Context, export: Path, src: Path, load_comments: bool) -> None:
    from clubstack.blog.wordpress import WxrError, import_wordpress

    if (src / "site.toml").exists():
        raise click.ClickException(f"{src} already holds a site (site.toml); pick a new folder")
    try:
        result = import_wordpress(export, src)
    except WxrError as exc:
        raise click.ClickException(str(exc)) from None
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"{result.posts} posts ({result.drafts} drafts), {result.pages} pages, "
        f"{result.aliases} old URLs redirected, {result.skipped} trashed items skipped"
    )
    click.echo(
        f"{result.comments} comments, {result.pending_comments} awaiting moderation, "
        f"{result.dropped_comments} spam/trash dropped -> {src / 'comments.json'}"
    )
    if result.attachments:
        click.echo(
            f"{len(result.attachments)} attachments listed in "
            f"{src / 'attachments.txt'} (download them into {src / 'static'})"
        )
    if load_comments:
        ctx.invoke(import_comments_command, comments_json=src / "comments.json")


@blog.command(
    "import-comments",
    help="Load SRC/comments.json (from import-wordpress) into the comments service's database.",
)
@click.argument("comments_json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_comments_command(comments_json: Path) -> None:
    import json

    from clubstack.blog.comments import import_wordpress_comments
    from clubstack.core.db import db, session_scope
    from clubstack.core.migrate import upgrade
    from clubstack.settings import SettingsError, get_settings

    try:
        settings = get_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        data = json.loads(comments_json.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{comments_json}: not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("comments"), list):
        raise click.ClickException(f"{comments_json}: no comments list")
    upgrade(settings.sqlalchemy_url)
    db.init(settings.sqlalchemy_url)
    with session_scope() as session:
        result = import_wordpress_comments(session, data)
    click.echo(
        f"{result.imported} comments imported ({result.pending} awaiting moderation), "
        f"{result.skipped} already there"
    )
