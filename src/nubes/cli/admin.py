"""The operator's commands: the server, and the admin and images commands that work on its store
(accounts, AccessKeys, test hosts, system images) by opening it and building the services directly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console

from nubes.config import Settings

if TYPE_CHECKING:
    from nubes.domain.accounts import Accounts

console = Console()
err_console = Console(stderr=True)


# ---- server --------------------------------------------------------------------------------


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int)
@click.option(
    "--data-dir", type=click.Path(path_type=Path), help="Default: $NUBES_HOME or ~/.local/share/nubes."
)
@click.option(
    "--database-url", help="Default: SQLite in the data dir. postgresql://user@host/db for several hosts."
)
@click.option(
    "--throttle-rate",
    type=float,
    default=500.0,
    show_default=True,
    help="Requests per second per account and action; 0 switches throttling off.",
)
@click.option("--throttle-burst", type=float, default=1000.0, show_default=True)
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option(
    "--driver",
    default="real",
    show_default=True,
    type=click.Choice(["real", "fake"]),
    help="real: QEMU VMs and Linux networking (needs root); fake: the emulator mode.",
)
@click.option(
    "--netns-prefix",
    default="nubes",
    show_default=True,
    help="Prefix of the network namespaces this server owns (one per server on a host).",
)
@click.option(
    "--max-rules-per-group",
    default=200,
    show_default=True,
    type=click.IntRange(1, 100000),
    help="Security group rule quota (ECS: 200).",
)
@click.option(
    "--max-instance-vcpus",
    default=500,
    show_default=True,
    type=click.IntRange(1, 10_000_000),
    help="vCPUs of pay-as-you-go instances an account may hold in a region (ECS: 500).",
)
@click.option(
    "--accel",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "kvm", "tcg"]),
    help="VM accelerator; auto uses KVM only when a trial boot proves it works.",
)
@click.option(
    "--host-id", default="", help="This host's name in the store (default: the machine's host name)."
)
@click.option(
    "--build-images/--no-build-images",
    default=True,
    show_default=True,
    help="Build missing system images in the background (NUBES_IMAGES_DIR shares them).",
)
@click.option(
    "--fake-image-build-seconds",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="With --driver fake: emulate a first build of each system image this long, one after "
    "the other (they are listed as Creating meanwhile, as on a fresh real server).",
)
@click.option(
    "--uplink",
    default="",
    help="Host interface or bridge on the network that stands for the internet (public IPs, EIPs).",
)
@click.option(
    "--public-cidr",
    "public_cidrs",
    multiple=True,
    help="A public IPv4 range public IPs and EIPs are taken from (repeat for several); "
    "without one, public features answer an error.",
)
@click.option("--public-gateway", default="", help="The next hop on the uplink, inside a --public-cidr.")
@click.option(
    "--monitor-interval",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0.2, 3600),
    help="Seconds between two monitoring samples of this host's instances "
    "(the monitoring API answers 60, 600 and 3600 s periods whatever it is).",
)
@click.option(
    "--console-idle-timeout",
    "console_idle_seconds",
    default=1800.0,
    show_default=True,
    type=click.FloatRange(1, 8 * 3600),
    help="Seconds without a request after which a web console session ends.",
)
def server(
    host: str,
    port: int,
    data_dir: Path | None,
    database_url: str | None,
    throttle_rate: float,
    throttle_burst: float,
    log_level: str,
    driver: str,
    netns_prefix: str,
    max_rules_per_group: int,
    max_instance_vcpus: int,
    accel: str,
    host_id: str,
    build_images: bool,
    fake_image_build_seconds: float,
    uplink: str,
    public_cidrs: tuple[str, ...],
    public_gateway: str,
    monitor_interval: float,
    console_idle_seconds: float,
) -> None:
    """Run the API, its store and the local host agent in the foreground until SIGINT or SIGTERM."""
    from nubes.server import serve

    serve(
        Settings(
            host,
            port,
            data_dir,
            database_url,
            throttle_rate,
            throttle_burst,
            log_level,
            driver,
            netns_prefix,
            max_rules_per_group,
            accel,
            host_id,
            build_images,
            fake_image_build_seconds,
            uplink,
            public_cidrs,
            public_gateway,
            monitor_interval=monitor_interval,
            max_instance_vcpus=max_instance_vcpus,
            console_idle_seconds=console_idle_seconds,
        )
    )


# ---- admin ---------------------------------------------------------------------------------


def _accounts(data_dir: Path | None, database_url: str | None) -> Accounts:
    from nubes.services import open_services

    return open_services(Settings(data_dir=data_dir, database_url=database_url)).accounts


F = TypeVar("F", bound=Callable[..., Any])


def with_store(f: F) -> F:
    """The options that locate the store, for commands that work on it directly."""
    f = click.option("--database-url", help="Default: SQLite in the data dir.")(f)
    return click.option("--data-dir", type=click.Path(path_type=Path), help="Default: $NUBES_HOME.")(f)


@click.group()
def admin() -> None:
    """Operator commands: accounts and AccessKeys (work on the store directly)."""


@admin.group()
def account() -> None:
    """Accounts: every resource belongs to one."""


@account.command("create")
@click.argument("name")
@with_store
def account_create(name: str, data_dir: Path | None, database_url: str | None) -> None:
    """Create an account and its first AccessKey (printed once)."""
    from nubes.domain.accounts import AccountError

    accounts = _accounts(data_dir, database_url)
    try:
        created = accounts.create(name)
        key = accounts.create_key(name)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"account {created.name} (uid {created.uid})")
    click.echo(f"AccessKeyId:     {key.access_key_id}\nAccessKeySecret: {key.secret}")


@account.command("list")
@with_store
def account_list(data_dir: Path | None, database_url: str | None) -> None:
    """List accounts."""
    from rich.table import Table

    table = Table("Name", "Uid", "Status", "Keys")
    for a in _accounts(data_dir, database_url).all():
        table.add_row(a.name, a.uid, a.status, str(a.keys))
    console.print(table)


@admin.group()
def key() -> None:
    """AccessKeys of an account."""


def _key_command(name: str, help_text: str) -> Callable[[F], click.Command]:
    def decorate(f: F) -> click.Command:
        f = click.option("--account", "account_name", required=True, help="Account name.")(f)
        return key.command(name, help=help_text)(with_store(f))

    return decorate


@_key_command("create", "Create an AccessKey; its secret is printed once.")
def key_create(account_name: str, data_dir: Path | None, database_url: str | None) -> None:
    from nubes.domain.accounts import AccountError

    try:
        created = _accounts(data_dir, database_url).create_key(account_name)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"AccessKeyId:     {created.access_key_id}\nAccessKeySecret: {created.secret}")


@_key_command("list", "List AccessKeys (secrets are not shown).")
def key_list(account_name: str, data_dir: Path | None, database_url: str | None) -> None:
    from rich.table import Table

    from nubes.domain.accounts import AccountError

    try:
        keys = _accounts(data_dir, database_url).list_keys(account_name)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    table = Table("AccessKeyId", "Status")
    for k in keys:
        table.add_row(k.access_key_id, k.status)
    console.print(table)


def _set_status(
    account_name: str, access_key_id: str, status: str, data_dir: Path | None, database_url: str | None
) -> None:
    from nubes.domain.accounts import AccountError

    try:
        _accounts(data_dir, database_url).set_key_status(account_name, access_key_id, status)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{access_key_id}: {status}")


@_key_command("disable", "Disable an AccessKey: requests signed with it are refused.")
@click.argument("access_key_id")
def key_disable(
    account_name: str, access_key_id: str, data_dir: Path | None, database_url: str | None
) -> None:
    _set_status(account_name, access_key_id, "Inactive", data_dir, database_url)


@_key_command("enable", "Enable a disabled AccessKey again.")
@click.argument("access_key_id")
def key_enable(
    account_name: str, access_key_id: str, data_dir: Path | None, database_url: str | None
) -> None:
    _set_status(account_name, access_key_id, "Active", data_dir, database_url)


@_key_command("delete", "Delete an AccessKey.")
@click.argument("access_key_id")
def key_delete(
    account_name: str, access_key_id: str, data_dir: Path | None, database_url: str | None
) -> None:
    from nubes.domain.accounts import AccountError

    try:
        _accounts(data_dir, database_url).delete_key(account_name, access_key_id)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{access_key_id}: deleted")


@admin.group("test-host")
def test_host() -> None:
    """Test hosts: network namespaces plugged into a VPC as a network interface, for reaching
    guests and testing security groups with ordinary tools (`ip netns exec NS ...`)."""


def _set_test_host(eni_id: str, attached: bool, data_dir: Path | None, database_url: str | None) -> None:
    from nubes.errors import ApiError
    from nubes.services import open_services

    services = open_services(Settings(data_dir=data_dir, database_url=database_url))
    try:
        services.network_interfaces.set_test_host(eni_id, attached)
    except ApiError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None


@test_host.command("attach")
@click.argument("network_interface_id")
@click.option("--netns-prefix", default="nubes", show_default=True, help="The server's --netns-prefix.")
@with_store
def test_host_attach(
    network_interface_id: str, netns_prefix: str, data_dir: Path | None, database_url: str | None
) -> None:
    """Plug an Available interface into a new test host; prints the host's namespace."""
    from nubes.domain.netstate import test_host_netns

    _set_test_host(network_interface_id, True, data_dir, database_url)
    click.echo(test_host_netns(netns_prefix, network_interface_id))


@test_host.command("detach")
@click.argument("network_interface_id")
@with_store
def test_host_detach(network_interface_id: str, data_dir: Path | None, database_url: str | None) -> None:
    """Unplug an interface from its test host (the namespace is removed)."""
    _set_test_host(network_interface_id, False, data_dir, database_url)
    click.echo(f"{network_interface_id}: detached")


@click.group()
def images() -> None:
    """System images, built by nubes from Debian packages."""


@images.command("build")
@click.argument("names", nargs=-1)
@with_store
def images_build(names: tuple[str, ...], data_dir: Path | None, database_url: str | None) -> None:
    """Build (or reuse) the system images and register them: tiny, debian-12 (default: all)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from nubes.guest.images import IMAGE_NAMES, build_image
    from nubes.services import images_dir, open_services

    services = open_services(Settings(data_dir=data_dir, database_url=database_url))
    from nubes.agent.images import ImageService

    service = ImageService(services.images, images_dir(services.data_dir), fake=False)
    wanted = list(names) or list(IMAGE_NAMES)
    unknown = [n for n in wanted if n not in IMAGE_NAMES]
    if unknown:
        raise click.UsageError(f"unknown image {unknown[0]!r}; known: {', '.join(IMAGE_NAMES)}")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err_console,
    ) as progress:
        for name in wanted:
            task = progress.add_task(name, total=1.0)

            def report(step: str, fraction: float, task: object = task, name: str = name) -> None:
                progress.update(task, completed=fraction, description=f"{name}: {step}")  # type: ignore[arg-type]

            manifest = build_image(name, service.images_dir, report)
            progress.update(task, completed=1.0, description=f"{name}: {manifest.image_id}")
    service.register(plan=False)
    click.echo("registered: " + ", ".join(wanted))


COMMANDS: tuple[click.Command, ...] = (server, admin, images)
