"""`clubstack contest ...`: judge a file locally, run a sandbox worker, recompute scores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from clubstack.contest.errors import ContestError
from clubstack.contest.kinds import KINDS, AesKind, ContestLimits, EcdsaKind


@click.group(name="contest")
def contest_cli() -> None:
    """The white-box contest: judge C submissions, run sandbox workers."""


def _limits(random_vectors: int) -> ContestLimits:
    try:
        from clubstack.contest.settings import ContestSettings
        from clubstack.settings import service_settings

        limits = service_settings(ContestSettings).limits()
    except Exception:  # no instance configured: the edition 3 defaults
        limits = ContestLimits()
    from dataclasses import replace

    return replace(limits, random_vectors=random_vectors)


@contest_cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(sorted(KINDS)), required=True, help="Challenge kind.")
@click.option("--key", help="aes: the embedded AES-128 key (32 hex digits).")
@click.option("--pubkey", help="ecdsa: the public key x || y (128 hex digits).")
@click.option("--proof", help="ecdsa: the EC-Schnorr proof r || s (128 hex digits).")
@click.option(
    "--vectors",
    "random_vectors",
    default=100,
    show_default=True,
    help="Random test vectors (edge cases come on top).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def judge(
    file: Path,
    kind: str,
    key: str | None,
    pubkey: str | None,
    proof: str | None,
    random_vectors: int,
    as_json: bool,
) -> None:
    """Filter, compile and test FILE in the sandbox, as the server would.

    Exit status: 0 accepted, 1 rejected, 2 bad usage or bad key.
    """
    from clubstack.contest import judge as judging

    challenge_kind = KINDS[kind]
    limits = _limits(random_vectors)
    try:
        if isinstance(challenge_kind, AesKind):
            if not key:
                raise click.UsageError("--key is required for aes")
            vectors = challenge_kind.make_vectors(challenge_kind.parse_key(key), random_vectors)
        else:
            assert isinstance(challenge_kind, EcdsaKind)
            if not pubkey or not proof:
                raise click.UsageError("--pubkey and --proof are required for ecdsa")
            raw = challenge_kind.check_public_key(pubkey, proof)
            vectors = challenge_kind.make_vectors(raw, random_vectors)
    except ContestError as error:
        raise click.UsageError(error.message) from None
    from clubstack.contest.sandbox import SandboxError

    try:
        if as_json:
            verdict, answer = judging.judge_locally(
                challenge_kind, file.read_bytes(), vectors, limits
            )
        else:
            from rich.console import Console

            with Console(stderr=True).status(
                f"judging {file.name} ({len(vectors.inputs)} vectors)"
            ):
                verdict, answer = judging.judge_locally(
                    challenge_kind, file.read_bytes(), vectors, limits
                )
    except SandboxError as error:
        raise click.ClickException(f"the sandbox could not run: {error}") from None
    result = {
        "accepted": verdict.accepted,
        "stage": verdict.stage,
        "reason": verdict.reason,
        "vectors": len(vectors.inputs),
        "object_size": verdict.object_size,
        "mean_ram_bytes": round(verdict.mean_ram_bytes),
        "mean_cpu_seconds": verdict.mean_cpu_seconds,
        "performance": verdict.performance,
        "compiler_message": verdict.compiler_message,
        "wall_seconds": answer.get("wall_seconds"),
    }
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(
            f"{'ACCEPTED' if verdict.accepted else 'REJECTED'} ({verdict.stage}): {verdict.reason}"
        )
        if verdict.compiler_message:
            click.echo(verdict.compiler_message)
        if verdict.accepted:
            click.echo(f"object size     {verdict.object_size} bytes (limit {limits.object_bytes})")
            click.echo(
                f"RAM per call    {verdict.mean_ram_bytes:.0f} bytes "
                f"(limit {limits.run_memory_bytes})"
            )
            click.echo(
                f"CPU per call    {verdict.mean_cpu_seconds * 1e6:.1f} us "
                f"(limit {limits.call_cpu_seconds:g} s)"
            )
            click.echo(f"performance     {verdict.performance:.3f}")
    sys.exit(0 if verdict.accepted else 1)


@contest_cli.command()
@click.argument("private_key")
def prove(private_key: str) -> None:
    """Print the public key and the EC-Schnorr proof for an ECDSA PRIVATE_KEY (64 hex digits).

    What a designer gives with an ecdsa submission. Runs locally; nothing is sent.
    """
    from clubstack.contest import p256

    try:
        d = int(private_key.strip().removeprefix("0x"), 16)
    except ValueError:
        raise click.UsageError("the private key must be hexadecimal") from None
    if not 0 < d < p256.N:
        raise click.UsageError("the private key must be in [1, n-1]")
    click.echo(f"public_key {p256.encode_point(p256.public_key(d)).hex()}")
    click.echo(f"proof {p256.schnorr_prove(d).hex()}")


@contest_cli.command()
@click.option(
    "--workers",
    default=None,
    type=int,
    help="Submissions judged at once (default: the sandbox_slots setting; 0 there "
    "means one per CPU core).",
)
def worker(workers: int | None) -> None:
    """Run a sandbox worker: judge queued submissions. Needs the job store, not the database."""
    import os

    from clubstack.contest.settings import ContestSettings
    from clubstack.contest.tasks import sandbox_queue
    from clubstack.core.jobs import configure_jobs, requeue_lost_tasks
    from clubstack.core.logs import setup_logging
    from clubstack.settings import get_settings, service_settings

    settings = get_settings()
    if workers is None:
        workers = service_settings(ContestSettings).sandbox_slots or os.cpu_count() or 1
    setup_logging(settings, "contest-worker")
    configure_jobs(settings)  # answers go back on the main queue
    queue = sandbox_queue(settings)
    # A node killed mid-run (power, OOM killer) left its job leased: take it back now, not
    # after the site's reaper gives up on it (CLUBSTACK_CONTEST_JOB_TIMEOUT_MINUTES).
    lost = requeue_lost_tasks(queue)
    if lost:
        click.echo(f"contest sandbox worker: requeued {lost} job(s) of a dead worker", err=True)
    consumer = queue.create_consumer(
        workers=workers, worker_type="thread", periodic=False, check_worker_health=True
    )
    click.echo(f"contest sandbox worker: {workers} thread(s) on queue {queue.name}", err=True)
    consumer.run()


@contest_cli.command()
def rescore() -> None:
    """Recompute every challenge's strawberries now (the periodic job does it every 5 min)."""
    from clubstack.contest import challenges
    from clubstack.contest.settings import ContestSettings
    from clubstack.core.db import session_scope
    from clubstack.core.migrate import open_database
    from clubstack.settings import get_settings, service_settings

    open_database(get_settings().sqlalchemy_url)
    with session_scope() as session:
        count = challenges.recompute_scores(session, service_settings(ContestSettings))
    click.echo(f"{count} challenge(s) scored")


@contest_cli.command()
@click.option("--challenge", "name", help="Rejudge this one challenge (its name).")
@click.option(
    "--kind", type=click.Choice(sorted(KINDS)), help="Rejudge every judged challenge of this kind."
)
@click.option("--reason", default="", help="Why (kept in the rejudge log).")
@click.option("--json", "as_json", is_flag=True, help="Print the per-challenge changes as JSON.")
def rejudge(name: str | None, kind: str | None, reason: str, as_json: bool) -> None:
    """Compile and test challenges again in the sandbox with the present harness and limits.

    Verdicts, performance, strawberries and bananas are updated and each change is logged
    (see the organiser's desk, Rejudge). Runs here, one challenge after another.

    Exit status: 0 done and no verdict changed, 1 done and at least one verdict changed,
    2 bad usage or nothing to rejudge, 3 the sandbox failed on at least one challenge.
    """
    from rich.progress import Progress

    from clubstack.contest import desk
    from clubstack.contest.settings import ContestSettings
    from clubstack.core.db import db
    from clubstack.core.errors import ClubError
    from clubstack.core.migrate import open_database
    from clubstack.settings import get_settings, service_settings

    if (name is None) == (kind is None):
        raise click.UsageError("give either --challenge NAME or --kind KIND")
    open_database(get_settings().sqlalchemy_url)
    settings = service_settings(ContestSettings)
    session = db.session()
    try:
        scope, targets = desk.select_for_rejudge(session, name=name, kind=kind)
        run = desk.start_rejudge(session, targets, scope, reason, None, "cli")
        session.commit()
    except ClubError as error:
        session.rollback()
        raise click.UsageError(error.message) from None
    with Progress(disable=as_json, transient=True) as progress:
        bar = progress.add_task(f"rejudging {scope}", total=len(run.items))
        desk.rejudge_now(session, run, settings, on_item=lambda _: progress.advance(bar))
    items = run.items
    rows = [
        {
            "challenge": i.challenge_name,
            "old_status": i.old_status,
            "new_status": i.new_status,
            "old_performance": i.old_performance,
            "new_performance": i.new_performance,
            "changed": i.changed,
            "verdict_changed": i.verdict_changed,
            "reason": i.new_reason,
        }
        for i in items
    ]
    if as_json:
        click.echo(json.dumps({"rejudge": run.public_id, "scope": scope, "items": rows}, indent=2))
    else:
        for row in rows:
            perf = f"{row['old_performance'] or 0:.3f} -> {row['new_performance'] or 0:.3f}"
            mark = "VERDICT" if row["verdict_changed"] else "PERF" if row["changed"] else "same"
            click.echo(
                f"{mark:8} {row['challenge']}: {row['old_status']} -> "
                f"{row['new_status']} (performance {perf})"
                + (f": {row['reason']}" if row["reason"] else "")
            )
        changed = sum(1 for r in rows if r["changed"])
        verdicts = sum(1 for r in rows if r["verdict_changed"])
        click.echo(f"{changed} of {len(rows)} changed, {verdicts} verdict(s)")
    db.session.remove()
    if any((i.new_reason or "").startswith("the judge failed") for i in items):
        sys.exit(3)
    sys.exit(1 if any(i.verdict_changed for i in items) else 0)
