"""Action modules, one per resource; `all_tables()` lists them for the registry."""

from __future__ import annotations

from nubes.api.registry import ActionTable


def all_tables() -> list[ActionTable]:
    from nubes.actions.ecs import account, instance_types, keypairs, regions, resources
    from nubes.actions.vpc import regions as vpc_regions

    return [
        regions.actions,
        instance_types.actions,
        resources.actions,
        account.actions,
        keypairs.actions,
        vpc_regions.actions,
    ]
