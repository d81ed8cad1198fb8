"""Action modules, one per resource; `all_tables()` lists them for the registry."""

from __future__ import annotations

from nubes.api.registry import ActionTable


def all_tables() -> list[ActionTable]:
    from nubes.actions.ecs import (
        account,
        auto_snapshot_policies,
        deployment_sets,
        disks,
        events,
        images,
        instance_attributes,
        instance_changes,
        instance_power,
        instance_types,
        instances,
        keypairs,
        launch_templates,
        monitoring,
        network_interfaces,
        public_ips,
        regions,
        resource_groups,
        resources,
        security_groups,
        snapshots,
        tags,
        tasks,
        vnc,
    )
    from nubes.actions.vpc import eips, forward_entries, nat_gateways, routes, snat_entries, vpcs, vswitches
    from nubes.actions.vpc import regions as vpc_regions
    from nubes.actions.vpc import resource_groups as vpc_resource_groups
    from nubes.actions.vpc import tags as vpc_tags

    return [
        regions.actions,
        instance_types.actions,
        resources.actions,
        account.actions,
        keypairs.actions,
        launch_templates.actions,
        security_groups.actions,
        network_interfaces.actions,
        images.actions,
        instances.actions,
        instance_power.actions,
        instance_changes.actions,
        instance_attributes.actions,
        public_ips.actions,
        tags.actions,
        resource_groups.actions,
        deployment_sets.actions,
        disks.actions,
        snapshots.actions,
        auto_snapshot_policies.actions,
        tasks.actions,
        events.actions,
        monitoring.actions,
        vnc.actions,
        vpc_regions.actions,
        vpcs.actions,
        vswitches.actions,
        routes.actions,
        eips.actions,
        nat_gateways.actions,
        snat_entries.actions,
        forward_entries.actions,
        vpc_tags.actions,
        vpc_resource_groups.actions,
    ]
