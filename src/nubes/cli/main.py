"""The nubes command: the API client's commands (client.py: ecs, vpc, configure, ssh) and the
operator's (admin.py: server, admin, images) under one name."""

from __future__ import annotations

import click

from nubes.cli import admin, client
from nubes.cli.admin import server


@click.group()
@click.version_option(package_name="nubes")
def main() -> None:
    """nubes: a self-hosted Elastic Compute Service speaking the ECS and VPC OpenAPI."""


for command in (*client.COMMANDS, *admin.COMMANDS):
    main.add_command(command)

__all__ = ["main", "server"]

if __name__ == "__main__":
    main()
