"""`clubstack compute ...`: the operators' commands; same logic, jobs and billing as the web."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from clubstack.core.errors import ClubError


@contextmanager
def _session() -> Iterator[Session]:
    """Database and job queue configured from settings, one committed session."""
    from clubstack.core.db import session_scope
    from clubstack.core.jobs import configure_jobs
    from clubstack.core.migrate import open_database
    from clubstack.services import all_metadata
    from clubstack.settings import SettingsError, get_settings

    try:
        settings = get_settings()
    except SettingsError as error:
        raise click.ClickException(str(error)) from None
    all_metadata()
    open_database(settings.sqlalchemy_url)
    configure_jobs(settings)
    import clubstack.compute.tasks  # noqa: F401 - registers the jobs

    try:
        with session_scope() as session:
            yield session
    except ClubError as error:
        fields = getattr(error, "fields", None) or {}
        detail = "; ".join(f"{k}: {v}" for k, v in fields.items())
        # an operator runs this: the host's URI and the transport's error say what to fix
        message = getattr(error, "detail", error.message)
        raise click.ClickException(f"{message} {detail}".strip()) from None


def _settings():
    from clubstack.compute.settings import ComputeSettings
    from clubstack.settings import service_settings

    return service_settings(ComputeSettings)


@click.group("compute")
def compute_cli() -> None:
    """Capsuls: hosts, images, plans and virtual machines."""


@compute_cli.group("host")
def host_group() -> None:
    """libvirt hosts capsuls run on."""


@host_group.command("add")
@click.argument("name")
@click.argument("uri")
@click.option("--pool-path", default=None, help="Folder for capsul disks on the host.")
@click.option("--pool-name", default="clubstack", show_default=True)
@click.option(
    "--network",
    default=None,
    help="none, user, network:NAME or bridge:NAME (default: the default_network "
    "setting, network:default). A libvirt network must be active (virsh "
    "net-start NAME); 'user' (QEMU's user networking, SSH through a forwarded "
    "port) needs nothing and suits a single machine.",
)
@click.option("--probe-kernel", default=None, help="Kernel on the host used to test KVM.")
@click.option("--probe-initrd", default=None)
def host_add(
    name: str,
    uri: str,
    pool_path: str | None,
    pool_name: str,
    network: str | None,
    probe_kernel: str | None,
    probe_initrd: str | None,
) -> None:
    """Add host NAME at libvirt URI (refused, saying why, if it cannot be reached or its
    network is not active).

    \b
    Example, one machine with no libvirt network:
      clubstack compute host add local qemu:///system --network user
    """
    from clubstack.compute import hosts

    settings = _settings()
    with _session() as session:
        host = hosts.add_host(
            session,
            name,
            uri,
            pool_path=pool_path or settings.default_pool_path,
            pool_name=pool_name,
            network=network or settings.default_network,
            kernel=probe_kernel or settings.probe_kernel,
            initrd=probe_initrd,
        )
        click.echo(
            f"host {host.name} added: {host.vcpus} vCPUs, {host.memory_mib} MiB, "
            f"{host.disk_gib} GiB, domain type {host.domain_type}"
        )


@host_group.command("list")
def host_list() -> None:
    """Hosts with capacity, free room and whether they answer."""
    from clubstack.compute import hosts

    with _session() as session:
        rooms = hosts.room(session)
        if not rooms:
            click.echo(
                "no hosts yet; add one with: clubstack compute host add NAME "
                "qemu:///system --network user"
            )
            return
        click.echo(
            f"{'NAME':16} {'STATUS':6} {'TYPE':5} {'vCPU':>9} {'MiB free':>10} {'GiB free':>9}  URI"
        )
        for r in rooms:
            h = r.host
            click.echo(
                f"{h.name:16} {'up' if h.up else 'DOWN':6} {h.domain_type:5} "
                f"{r.vcpus:>4}/{h.vcpus * 4:<4} {r.memory_mib:>10} {r.disk_gib:>9}  {h.uri}"
            )


@host_group.command("remove")
@click.argument("name")
def host_remove(name: str) -> None:
    """Forget host NAME (refused while capsuls live on it)."""
    from clubstack.compute import hosts

    with _session() as session:
        hosts.remove_host(session, name)
    click.echo(f"host {name} removed")


@compute_cli.group("image")
def image_group() -> None:
    """Operating system templates."""


@image_group.command("add")
@click.argument("name")
@click.argument("path")
@click.option("--title", default="")
@click.option("--kernel", default=None, help="Direct kernel boot: kernel path on the hosts.")
@click.option("--initrd", default=None)
@click.option("--cmdline", default=None)
def image_add(
    name: str, path: str, title: str, kernel: str | None, initrd: str | None, cmdline: str | None
) -> None:
    """Register the qcow2 base image PATH (same path on every host) as NAME."""
    from clubstack.compute import hosts

    with _session() as session:
        hosts.add_image(
            session, name, path, title=title, kernel=kernel, initrd=initrd, cmdline=cmdline
        )
    click.echo(f"image {name} added")


@image_group.command("add-demo")
@click.option("--name", default="demo", show_default=True)
def image_add_demo(name: str) -> None:
    """Build the tiny busybox guest here (no download) and register it as an image.

    Also adds a small plan `demo` when there is no plan yet. Running it again changes
    nothing. The guest's files are on this machine, so it suits a host on this machine
    (qemu:///system); it has no SSH server: members see its serial console.
    """
    from clubstack.compute import hosts, tinyguest

    try:
        guest = tinyguest.build()
    except (FileNotFoundError, OSError) as error:
        raise click.ClickException(f"cannot build the demo guest: {error}") from None
    with _session() as session:
        image, plan = hosts.add_demo(session, guest, name=name)
        click.echo(f"image {image.name}: {image.title} ({image.path})")
        if plan is not None:
            click.echo(
                f"plan {plan.name} added: {plan.vcpus} vCPU, {plan.memory_mib} MiB, "
                f"{plan.disk_gib} GiB"
            )


@image_group.command("list")
def image_list() -> None:
    """Registered images."""
    from clubstack.compute.models import Image

    with _session() as session:
        images = list(session.scalars(select(Image).order_by(Image.name)))
        if not images:
            click.echo(
                "no images yet; add one with: clubstack compute image add NAME "
                "/path/to/base.qcow2, or try: clubstack compute image add-demo"
            )
            return
        click.echo(f"{'NAME':16} {'BOOT':6} PATH")
        for image in images:
            click.echo(f"{image.name:16} {'kernel' if image.kernel else 'disk':6} {image.path}")


@compute_cli.group("plan")
def plan_group() -> None:
    """Sizes and prices."""


@plan_group.command("add")
@click.argument("name")
@click.option("--vcpus", type=int, required=True, help="Virtual CPUs.")
@click.option("--memory", "memory_mib", type=int, required=True, help="MiB of RAM.")
@click.option("--disk", "disk_gib", type=int, required=True, help="GiB of disk.")
@click.option(
    "--price", "price_month_cents", type=int, required=True, help="Price per month in cents."
)
def plan_add(name: str, vcpus: int, memory_mib: int, disk_gib: int, price_month_cents: int) -> None:
    """Add plan NAME."""
    from clubstack.compute import hosts

    with _session() as session:
        plan = hosts.add_plan(
            session,
            name,
            vcpus=vcpus,
            memory_mib=memory_mib,
            disk_gib=disk_gib,
            price_month_cents=price_month_cents,
        )
        click.echo(f"plan {plan.name} added: {plan.price_hour_cents} cents per hour")


@plan_group.command("list")
def plan_list() -> None:
    from clubstack.compute.models import Plan

    with _session() as session:
        plans = list(session.scalars(select(Plan).order_by(Plan.price_month_cents)))
        if not plans:
            click.echo(
                "no plans yet; add one with: clubstack compute plan add NAME --vcpus 1 "
                "--memory 512 --disk 10 --price 500"
            )
            return
        click.echo(
            f"{'NAME':12} {'vCPU':>4} {'MiB':>6} {'GiB':>5} {'per month':>10} {'per hour':>9}"
        )
        for p in plans:
            click.echo(
                f"{p.name:12} {p.vcpus:>4} {p.memory_mib:>6} {p.disk_gib:>5} "
                f"{p.price_month_cents / 100:>10.2f} {p.price_hour_cents / 100:>9.2f}"
            )


@compute_cli.command("list")
@click.option("--host", "host_name", default=None, help="Only capsuls on this host.")
def capsul_list(host_name: str | None) -> None:
    """Live capsuls."""
    from clubstack.compute.models import DESTROYED, Capsul, Host
    from clubstack.core.accounts.models import User

    with _session() as session:
        query = (
            select(Capsul, User.email)
            .join(User, User.id == Capsul.user_id)
            .where(Capsul.status != DESTROYED)
            .order_by(Capsul.created_at)
        )
        if host_name:
            host = session.scalar(select(Host).where(Host.name == host_name))
            if host is None:
                raise click.ClickException(f"no host named {host_name}")
            query = query.where(Capsul.host_id == host.id)
        rows = list(session.execute(query))
        if not rows:
            click.echo(
                ("no capsuls on that host; " if host_name else "no capsuls yet; ")
                + "create one with: clubstack compute create --owner EMAIL --plan PLAN "
                "--image IMAGE --ssh-key FILE"
            )
            return
        click.echo(f"{'ID':32}  {'NAME':20} {'STATUS':9} {'STATE':8} {'PLAN':8} {'HOST':10} OWNER")
        for capsul, email in rows:
            click.echo(
                f"{capsul.id}  {capsul.name:20} {capsul.status:9} {capsul.state:8} "
                f"{capsul.plan.name:8} {capsul.host.name if capsul.host else '-':10} "
                f"{email}"
            )


@compute_cli.command("create")
@click.option("--owner", required=True, help="E-mail address of the member.")
@click.option("--plan", required=True)
@click.option("--image", required=True)
@click.option("--name", default=None, help="Hostname (default: from the owner and a number).")
@click.option(
    "--ssh-key",
    "ssh_key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="File with the SSH public key(s), one per line.",
)
@click.option("--wait/--no-wait", default=True, help="Wait until it runs, with progress.")
def capsul_create(
    owner: str, plan: str, image: str, name: str | None, ssh_key: Path, wait: bool
) -> None:
    """Create a capsul for a member, billed to them, through the same job as the web."""
    from clubstack.compute import capsuls, tasks
    from clubstack.compute.models import Capsul
    from clubstack.core.accounts.models import User

    settings = _settings()
    keys = [line.strip() for line in ssh_key.read_text().splitlines() if line.strip()]
    with _session() as session:
        user = session.scalar(select(User).where(User.email == owner.strip().lower()))
        if user is None:
            raise click.ClickException(f"no member with address {owner}")
        capsul = capsuls.request_capsul(
            session,
            user.id,
            plan=plan,
            image=image,
            name=name or f"capsul-{len(capsuls.member_capsuls(session, user.id)) + 1}",
            keys=keys,
            min_credit_hours=settings.min_credit_hours,
            max_capsuls=settings.max_capsuls_per_member,
        )
        capsul_id = capsul.id
    click.echo(f"capsul {capsul_id} requested")
    tasks.enqueue_provision(capsul_id)
    if not wait:
        return
    steps = [
        "queued",
        "creating the disk",
        "writing the cloud-init seed",
        "defining the virtual machine",
        "starting",
        "running",
    ]
    with click.progressbar(length=len(steps) - 1, label="creating", file=sys.stderr) as bar:
        done = 0
        for _ in range(600):
            with _session() as session:
                c = session.get(Capsul, capsul_id)
                assert c is not None
                progress, status, error = c.progress, c.status, c.error
            step = steps.index(progress) if progress in steps else done
            bar.update(step - done)
            done = step
            if status != "creating":
                break
            time.sleep(0.5)
    if status == "active":
        click.echo(f"capsul {capsul_id} is running")
    else:
        raise click.ClickException(f"capsul {capsul_id}: {status}: {error or progress}")


# an unknown "option" is an old capsul id that begins with '-' (ids before random_id's
# leading alphanumeric); destroy has only --yes, so nothing else is lost by this
@compute_cli.command("destroy", context_settings={"ignore_unknown_options": True})
@click.argument("capsul_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def capsul_destroy(capsul_id: str, yes: bool) -> None:
    """Destroy capsul CAPSUL_ID and delete its disk.

    An old id that begins with '-' may go after '--': clubstack compute destroy --yes -- -ID
    """
    from clubstack.compute import capsuls, metering
    from clubstack.core.clock import utcnow

    if not yes:
        click.confirm(f"Destroy capsul {capsul_id} and delete its disk?", abort=True)
    with _session() as session:
        capsul = capsuls.get_capsul(session, capsul_id)
        metering.meter_capsul(session, capsul, utcnow())
        capsuls.destroy(session, capsul)
    click.echo(f"capsul {capsul_id} destroyed")


@compute_cli.command("reconcile")
def capsul_reconcile() -> None:
    """Compare the database with every host now and print what differs."""
    from clubstack.compute import reconcile

    with _session() as session:
        report = reconcile.reconcile(session, mail=False)
        for f in report.findings:
            click.echo(
                f"{f.kind:8} {f.host.name:12} {f.domain_name:24} "
                f"{'fixed' if f.fixed else 'open':5} {f.detail}"
            )
        for name in report.hosts_down:
            click.echo(f"down     {name}")
    sys.exit(1 if any(not f.fixed for f in report.findings) or report.hosts_down else 0)
