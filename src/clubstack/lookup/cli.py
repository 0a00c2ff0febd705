"""`clubstack lookup INDICATOR... [--json|--csv]`: the checks from a terminal."""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.console import Console

    from clubstack.lookup.models import LookupBatch

EXIT_MALICIOUS = 3


@click.command("lookup")
@click.argument("indicators", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the results as CSV.")
@click.option(
    "--text", "from_stdin", is_flag=True, help="Read free text from stdin and extract indicators."
)
@click.option(
    "--checks",
    "only",
    default=None,
    help="Comma-separated checks to run instead of the configured set (e.g. rdap,tls,urlhaus).",
)
def lookup_command(
    indicators: tuple[str, ...], as_json: bool, as_csv: bool, from_stdin: bool, only: str | None
) -> None:
    """Look up URLs, domains, IPs, e-mail addresses and hashes.

    Exit status: 0 when done and nothing is malicious, 3 when something is, 2 on bad input.
    """
    from clubstack.core.db import db, session_scope
    from clubstack.core.errors import ClubError
    from clubstack.core.migrate import upgrade
    from clubstack.lookup import batches
    from clubstack.lookup.findings import Level
    from clubstack.lookup.models import LookupBatch, LookupItem
    from clubstack.lookup.runner import run_lookups
    from clubstack.settings import get_settings

    if as_json and as_csv:
        raise click.UsageError("--json and --csv exclude each other")
    text = sys.stdin.read() if from_stdin else None
    if not indicators and not text:
        raise click.UsageError("give at least one indicator (or --text with text on stdin)")
    try:
        found = batches.recognise(text=text, indicators=list(indicators) or None)
    except ClubError as error:
        details = "; ".join(f"{k}: {v}" for k, v in getattr(error, "fields", {}).items())
        raise click.UsageError(f"{error.message} {details}".strip()) from None

    settings = get_settings()
    upgrade(settings.sqlalchemy_url)
    db.init(settings.sqlalchemy_url)
    config = batches.settings()
    names = config.checks
    if only is not None:
        names = [name.strip() for name in only.split(",") if name.strip()]
        unknown = sorted(set(names) - set(batches.CHECK_ORDER))
        if unknown or not names:
            known = ", ".join(batches.CHECK_ORDER)
            raise click.UsageError(f"unknown checks: {', '.join(unknown)} (known: {known})")
        names = [name for name in batches.CHECK_ORDER if name in names]
    checks = [check for check in batches.build_checks(config) if check.name in names]
    results: dict[str, dict[str, dict]] = {i.key: {} for i in found}
    from rich.progress import Progress

    with (
        session_scope() as session,
        Progress(transient=True, disable=not sys.stderr.isatty(), console=None) as progress,
    ):
        task = progress.add_task("Looking up", total=len(found) * len(checks))
        cache = batches.DatabaseCache(session, timedelta(seconds=config.cache_ttl_seconds))

        def on_result(indicator, result) -> None:  # noqa: ANN001
            results[indicator.key][result.check] = result.to_dict()
            progress.advance(task)

        run_lookups(found, checks, cache=cache, workers=config.workers, on_result=on_result)

    batch = LookupBatch(id="cli", checks=",".join(names), status="done")
    batch.total = batch.done = len(found) * len(checks)
    from clubstack.core.db import utcnow

    batch.created_at = utcnow()
    batch.items = []
    worst = Level.NONE
    for position, indicator in enumerate(found):
        row = results[indicator.key]
        verdict = max((Level[r["level"].upper()] for r in row.values()), default=Level.NONE)
        worst = max(worst, verdict)
        batch.items.append(
            LookupItem(
                position=position,
                kind=str(indicator.kind),
                value=indicator.value,
                verdict=int(verdict),
                results=json.dumps(row),
            )
        )
    if as_json:
        click.echo(json.dumps(batches.batch_json(batch), indent=2))
    elif as_csv:
        click.echo(batches.batch_csv(batch), nl=False)
    else:
        _table(batch)
    if worst is Level.MALICIOUS:
        sys.exit(EXIT_MALICIOUS)


STYLES = {
    "none": "",
    "harmless": "green",
    "suspicious": "yellow",
    "malicious": "bold red",
    "error": "magenta",
    "n/a": "dim",
}


def _cell(result: dict | None) -> tuple[str, str]:
    """(label, summary) of one check's result: the level word, or why there is none."""
    from clubstack.lookup.findings import Level

    if not result:
        return "pending", ""
    status = result.get("status", "ok")
    if status in ("error", "quota_exhausted"):
        return "error", result.get("summary", "")
    if status == "not_applicable":
        return "n/a", ""
    if status != "ok":
        return status.replace("_", " "), result.get("summary", "")
    return Level[result["level"].upper()].label, result.get("summary", "")


def _style(label: str) -> str:
    return STYLES.get(label.replace("no data", "none"), "dim")


def _console() -> Console:
    """The terminal's width (or COLUMNS when set); a pipe or file without COLUMNS gets wide
    lines, so that indicators are not broken across rows."""
    from rich.console import Console

    columns = os.environ.get("COLUMNS", "")
    if sys.stdout.isatty() or columns.isdigit():
        return Console()
    return Console(width=240)


def _table(batch: LookupBatch) -> None:
    """A table when the console is wide enough for every check and the longest indicator;
    otherwise one block per indicator (its verdict, the indicator on a line of its own, then
    a line per check), which reads in 80 columns. Every result carries its level as a word,
    not only a colour."""
    from rich.table import Table
    from rich.text import Text

    from clubstack.lookup import batches

    console = _console()
    names = batch.checks.split(",")
    rows = batches.rows(batch)
    longest = max((len(row["display"]) for row in rows), default=0)
    if console.width >= 15 + longest + 18 * len(names):
        table = Table(show_lines=False)
        table.add_column("verdict", no_wrap=True)
        table.add_column("indicator", no_wrap=True)
        for check in names:
            table.add_column(batches.CHECK_TITLES[check], overflow="fold")
        for row in rows:
            cells = [Text(row["verdict_label"], style=_style(row["verdict"])), row["display"]]
            for check in names:
                label, summary = _cell(row["results"].get(check))
                words = summary if label == "no data" else f"{label}: {summary}".rstrip(": ")
                cells.append(Text(words, style=_style(label)))
            table.add_row(*cells)
        console.print(table)
        return
    for number, row in enumerate(rows):
        if number:
            console.print()
        heading = Text.assemble((row["verdict_label"], _style(row["verdict"])), f" · {row['kind']}")
        console.print(heading)
        # on a line of its own and never broken by us, so it can be copied whole
        console.print(Text(row["display"]), soft_wrap=True)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for check in names:
            label, summary = _cell(row["results"].get(check))
            grid.add_row(
                "  " + batches.CHECK_TITLES[check], Text(label, style=_style(label)), summary
            )
        console.print(grid)
