"""The API client's commands: any ECS/VPC action by name, configure, ssh.

They speak the HTTP API only (nubes.client): nothing here, nor anything it imports, reaches the
domain, the store, the drivers, the action declarations or the server. What they know of the
actions (which exist, their parameters) comes from the shipped catalog, data/api/implemented.json."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console

from nubes.catalog.official_api import implemented_actions
from nubes.cli import profiles
from nubes.cli.output import print_result
from nubes.client import ClientError, call

console = Console()
err_console = Console(stderr=True)


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("-i", "identity", type=click.Path(exists=True, dir_okay=False), help="Private key file.")
@click.option("--user", default="root", show_default=True)
@click.option("--endpoint", help="host:port of the API (env NUBES_ENDPOINT).")
@click.option("--region", help="The instance's region (env NUBES_REGION).")
@click.option("--profile", "profile_name", help="Profile saved by nubes configure.")
@click.argument("instance_id")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(
    identity: str | None,
    user: str,
    endpoint: str | None,
    region: str | None,
    profile_name: str | None,
    instance_id: str,
    command: tuple[str, ...],
) -> None:
    """Open a shell on a Running instance, or run COMMAND there (exit status passed on).

    Runs on the host of the instance, as root: the connection starts in the instance's VPC
    and its security groups decide, as for any other client."""
    from nubes.cli.ssh import SshError, exec_ssh, locate, vpc_namespace

    creds = profiles.resolve(endpoint, region, profile_name)
    try:
        vpc_id, address = locate(creds, instance_id)
        exec_ssh(vpc_namespace(vpc_id), user, address, identity, list(command))
    except ClientError as exc:
        err_console.print(f"[bold red]ERROR[/] {exc.code}: {exc.message}", highlight=False)
        sys.exit(1)
    except SshError as exc:
        raise click.ClickException(str(exc)) from None


# ---- configure -----------------------------------------------------------------------------


@click.command()
@click.option("--profile", "profile_name", default="default", show_default=True)
@click.option("--endpoint", prompt="Endpoint", default=profiles.DEFAULT_ENDPOINT)
@click.option("--region", prompt="Default region", default=profiles.DEFAULT_REGION)
@click.option("--access-key-id", prompt="AccessKeyId")
@click.option("--access-key-secret", prompt="AccessKeySecret", hide_input=True)
def configure(
    profile_name: str, endpoint: str, region: str, access_key_id: str, access_key_secret: str
) -> None:
    """Save an endpoint and credentials as a profile (mode 0600)."""
    path = profiles.save_profile(
        profiles.Profile(profile_name, endpoint, region, access_key_id, access_key_secret)
    )
    click.echo(f"profile {profile_name!r} saved to {path}")


# ---- generic API caller --------------------------------------------------------------------


def _parse_action_args(args: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) < 3:
            raise click.UsageError(f"expected --Name value, got {arg!r}")
        name, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise click.UsageError(f"--{name} needs a value")
            value = args[i + 1]
            i += 1
        params[name] = value
        i += 1
    return params


def _describe_param(p: dict[str, Any]) -> str:
    """One help line for a catalog parameter entry (a flat wire name, see implemented_actions)."""
    name = p["name"]
    if p["kind"] == "list":
        return f"  --{name}  (list{', JSON array accepted' if p.get('json_array') else ''})"
    notes = [p["kind"]]
    if p.get("required"):
        notes.append("required")
    if p.get("default") is not None:
        notes.append(f"default {p['default']}")
    if p.get("choices"):
        notes.append("one of " + "|".join(p["choices"]))
    minimum, maximum = p.get("minimum"), p.get("maximum")
    if minimum is not None or maximum is not None:
        notes.append(
            f"range {minimum if minimum is not None else ''}..{maximum if maximum is not None else ''}"
        )
    return f"  --{name}  ({', '.join(notes)})"


def _api_group(product: str) -> click.Command:
    @click.command(
        product,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
        help=f"Call any {product.upper()} action: nubes {product} ActionName --Param value ...",
    )
    @click.argument("action", required=False)
    @click.option("--endpoint", help="host:port of the API (env NUBES_ENDPOINT).")
    @click.option("--region", help="Region sent as RegionId when the action takes one (env NUBES_REGION).")
    @click.option("--profile", "profile_name", help="Profile saved by nubes configure.")
    @click.option("--output", help="Table instead of JSON: 'cols=A,B rows=Path.To.List[]'.")
    @click.option(
        "--wait",
        "wait_for",
        is_flag=True,
        help="After Run/Create/Start/Stop/Reboot/DeleteInstance(s): wait for the end status.",
    )
    @click.option("--help", "show_help", is_flag=True, help="Show the action's parameters.")
    @click.pass_context
    def command(
        ctx: click.Context,
        action: str | None,
        endpoint: str | None,
        region: str | None,
        profile_name: str | None,
        output: str | None,
        wait_for: bool,
        show_help: bool,
    ) -> None:
        specs = implemented_actions(product)
        if not action or (show_help and action not in specs):
            click.echo(ctx.get_help())
            click.echo(f"\n{product.upper()} actions:")
            for name in sorted(specs):
                click.echo(f"  {name:36} {specs[name]['summary']}")
            return
        if show_help:
            spec = specs[action]
            click.echo(f"{action}: {spec['summary']}\n")
            for p in spec["params"]:
                click.echo(_describe_param(p))
            return
        params = _parse_action_args(list(ctx.args))
        creds = profiles.resolve(endpoint, region, profile_name)
        found = specs.get(action)
        takes_region = found is not None and any(p["name"] == "RegionId" for p in found["params"])
        if takes_region and "RegionId" not in params:
            params["RegionId"] = creds.region_id
        if not creds.access_key_id:
            raise click.ClickException(
                "no credentials: set NUBES_ACCESS_KEY_ID/NUBES_ACCESS_KEY_SECRET or run nubes configure"
            )
        try:
            body = call(creds, product, action, params)
        except ClientError as exc:
            err_console.print(f"[bold red]ERROR[/] {exc.code}: {exc.message}", highlight=False)
            if exc.request_id:
                err_console.print(f"RequestId: {exc.request_id}", highlight=False)
            sys.exit(1)
        try:
            print_result(body, output, console)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        if wait_for:
            from nubes.cli.wait import TARGETS, wait

            if action not in TARGETS:
                raise click.UsageError(f"--wait works with {', '.join(sorted(TARGETS))}")
            if not wait(creds, action, params, body, err_console):
                err_console.print("[bold red]ERROR[/] timed out waiting", highlight=False)
                sys.exit(1)

    return command


COMMANDS: tuple[click.Command, ...] = (_api_group("ecs"), _api_group("vpc"), configure, ssh)
