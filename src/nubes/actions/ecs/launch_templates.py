"""ECS launch templates: CreateLaunchTemplate, CreateLaunchTemplateVersion,
DescribeLaunchTemplates, DescribeLaunchTemplateVersions, ModifyLaunchTemplateDefaultVersion,
DeleteLaunchTemplate, DeleteLaunchTemplateVersion.

A version holds what RunInstances takes: its parameters are RunInstances' own declarations
(the ones a template may hold), checked for form when the version is made and kept as sent.
Their values are checked when an instance is launched from it (as ECS does), where
RunInstances takes the version's parameters under its own (instances.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from nubes import errors
from nubes.actions.common import REGION_ID, tag_set
from nubes.actions.ecs.instances import RUN_INSTANCES_PARAMS
from nubes.actions.paging import number_paged, page_params
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, Integer, Param, String, StringList, StructList, wire_names
from nubes.api.registry import ActionTable
from nubes.catalog.official_api import official_actions
from nubes.clock import iso8601
from nubes.domain.launch_templates import TAG_TYPE, TemplateRef, version_data
from nubes.domain.tags import tag_matches
from nubes.store.models import LaunchTemplate, LaunchTemplateVersion

actions = ActionTable("ecs")

TEMPLATE_ID = String("LaunchTemplateId", max_length=64)
TEMPLATE_NAME = String("LaunchTemplateName", max_length=128)
VERSION_DESCRIPTION = String("VersionDescription", max_length=256)
TEMPLATE_TAGS = StructList(
    "TemplateTag", [String("Key", max_length=128), String("Value", max_length=128)], max_items=20
)


def _template_form(param: Param) -> Param:
    """A launch parameter as a template holds it: optional, and without a default (a template
    holds what it was given, nothing more)."""
    return dataclasses.replace(param, required=False, default=None)


# What only a template holds: the VPC of its vSwitch, for whoever reads it; its network type
# (VPC only, as every nubes instance); the protection period of a spot instance, held and shown
# but not handed to a launch (nubes launches no spot instance: domain.launch_templates).
TEMPLATE_ONLY = [
    String("VpcId", max_length=64),
    String(
        "NetworkType",
        choices=("classic", "vpc"),
        unsupported_values=("classic",),
        unsupported_because="every nubes instance is in a VPC; the classic network does not exist",
    ),
    Integer("SpotDuration", minimum=0, maximum=6),
]
# Whether the system disk goes with the instance: a template's own field (RunInstances has none),
# and in nubes it always does.
SYSTEM_DISK_DELETE_WITH_INSTANCE = Boolean(
    "DeleteWithInstance",
    unsupported_values=(False,),
    unsupported_because="an instance's system disk is released with the instance",
)


def _data_params() -> list[Param]:
    """RunInstances' parameters that a template may hold (by the official CreateLaunchTemplate),
    and those only a template has."""
    allowed = set(official_actions("ecs")["CreateLaunchTemplate"]["request"])
    held = [
        _template_form(p)
        for p in RUN_INSTANCES_PARAMS
        if p.name != "RegionId" and any(w.name in allowed for w in wire_names(p))
    ]
    held = [
        dataclasses.replace(p, fields=(*p.fields, SYSTEM_DISK_DELETE_WITH_INSTANCE))
        if p.name == "SystemDisk"
        else p
        for p in held
    ]
    return [*held, *TEMPLATE_ONLY]


DATA_PARAMS = _data_params()
DATA_NAMES = frozenset(p.name for p in DATA_PARAMS)


def template_data(wire: Mapping[str, str]) -> dict[str, str]:
    """The wire parameters of a request that a version keeps (empty ones are not given)."""
    return {k: v for k, v in wire.items() if v != "" and k.split(".", 1)[0] in DATA_NAMES}


def _ref(p: dict[str, Any]) -> TemplateRef:
    return TemplateRef(p["LaunchTemplateId"], p["LaunchTemplateName"])


@actions.define(
    "CreateLaunchTemplate",
    [
        REGION_ID,
        String("LaunchTemplateName", required=True, max_length=128),
        VERSION_DESCRIPTION,
        String("TemplateResourceGroupId", max_length=64, default=""),
        TEMPLATE_TAGS,
        *DATA_PARAMS,
    ],
)
def create_launch_template(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """A template and its version 1, the default one. ECS's quota: 30 templates per region."""
    template = ctx.services.launch_templates.create(
        ctx.scope(p["RegionId"]),
        p["LaunchTemplateName"],
        template_data(ctx.wire),
        p["VersionDescription"] or "",
        p["TemplateResourceGroupId"],
        [(t["Key"], t.get("Value") or "") for t in p["TemplateTag"] or [] if t.get("Key")],
        str(ctx.principal.account_id),
    )
    return {"LaunchTemplateId": template.id, "LaunchTemplateVersionNumber": 1}


@actions.define(
    "CreateLaunchTemplateVersion",
    [REGION_ID, TEMPLATE_ID, TEMPLATE_NAME, VERSION_DESCRIPTION, *DATA_PARAMS],
)
def create_launch_template_version(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """A new version, numbered after the latest; the default version stays. 30 per template."""
    template_id, number = ctx.services.launch_templates.create_version(
        ctx.scope(p["RegionId"]),
        _ref(p),
        template_data(ctx.wire),
        p["VersionDescription"] or "",
        str(ctx.principal.account_id),
    )
    return {"LaunchTemplateId": template_id, "LaunchTemplateVersionNumber": number}


def _render_template(template: LaunchTemplate, tags: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "CreateTime": iso8601(template.created_at),
        "CreatedBy": template.created_by,
        "DefaultVersionNumber": template.default_version,
        "LatestVersionNumber": template.latest_version,
        "LaunchTemplateId": template.id,
        "LaunchTemplateName": template.name,
        "ModifiedTime": iso8601(template.modified_at),
        "ResourceGroupId": template.resource_group_id,
        "Tags": tag_set(tags),
    }


@actions.define(
    "DescribeLaunchTemplates",
    [
        REGION_ID,
        StringList("LaunchTemplateId", max_items=100, item_max_length=64),
        StringList("LaunchTemplateName", max_items=100, item_max_length=128),
        String("TemplateResourceGroupId", max_length=64),
        TEMPLATE_TAGS,
        *page_params(max_size=50),
    ],
)
def describe_launch_templates(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The caller's templates in a region, oldest first."""
    scope = ctx.scope(p["RegionId"])
    wanted_tags = tag_matches((t.get("Key") or "", t.get("Value") or None) for t in p["TemplateTag"] or [])
    rows = ctx.services.launch_templates.describe(
        scope,
        p["LaunchTemplateId"] or [],
        p["LaunchTemplateName"] or [],
        p["TemplateResourceGroupId"],
        wanted_tags,
    )
    tags = ctx.services.tags.of(scope, TAG_TYPE, (r.id for r in rows))
    return number_paged(
        rows, p, "LaunchTemplateSets", "LaunchTemplateSet", lambda r: _render_template(r, tags.get(r.id, []))
    )


# ---- a version's LaunchTemplateData, from the wire parameters it keeps -------------------------

_DISK_FIELDS = {
    "AutoSnapshotPolicyId": str,
    "BurstingEnabled": bool,
    "Category": str,
    "DeleteWithInstance": bool,
    "Description": str,
    "DiskName": str,
    "Encrypted": str,
    "KMSKeyId": str,
    "PerformanceLevel": str,
    "ProvisionedIops": int,
    "Size": int,
}
_SYSTEM_DISK_FIELDS = {**_DISK_FIELDS, "Iops": int}
_DATA_DISK_FIELDS = {**_DISK_FIELDS, "Device": str, "SnapshotId": str}
_FIELDS: dict[str, Any] = {
    "AutoReleaseTime": str,
    "AutoRenew": bool,
    "AutoRenewPeriod": int,
    "CreditSpecification": str,
    "DeletionProtection": bool,
    "DeploymentSetId": str,
    "Description": str,
    "EnableVmOsConfig": bool,
    "HostName": str,
    "HttpEndpoint": str,
    "HttpPutResponseHopLimit": int,
    "HttpTokens": str,
    "ImageId": str,
    "ImageOwnerAlias": str,
    "InstanceChargeType": str,
    "InstanceName": str,
    "InstanceType": str,
    "InternetChargeType": str,
    "InternetMaxBandwidthIn": int,
    "InternetMaxBandwidthOut": int,
    "IoOptimized": str,
    "Ipv6AddressCount": int,
    "KeyPairName": str,
    "NetworkType": str,
    "PasswordInherit": bool,
    "Period": int,
    "PeriodUnit": str,
    "PrivateIpAddress": str,
    "RamRoleName": str,
    "ResourceGroupId": str,
    "SecurityEnhancementStrategy": str,
    "SecurityGroupId": str,
    "SpotDuration": int,
    "SpotPriceLimit": float,
    "SpotStrategy": str,
    "UserData": str,
    "VSwitchId": str,
    "VpcId": str,
    "ZoneId": str,
}


def _typed(kind: Any, text: str | None) -> Any:
    """A kept wire value as the answer types it; an absent one as ECS's empty value."""
    if kind is bool:
        return text == "true"
    if kind in (int, float):
        try:
            return kind(text) if text else 0
        except ValueError:
            return 0
    return text or ""


def _fields(wire: Mapping[str, str], prefix: str, kinds: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _typed(kind, wire.get(prefix + name)) for name, kind in kinds.items()}


def _items(wire: Mapping[str, str], name: str) -> list[int]:
    """The item numbers of a list parameter (`DataDisk.2.Size` -> 2), in order."""
    numbers = {int(k.split(".")[1]) for k in wire if k.startswith(name + ".") and k.split(".")[1].isdigit()}
    return sorted(numbers)


def _flat_system_disk(wire: Mapping[str, str], disk: Mapping[str, Any]) -> dict[str, Any]:
    """The system disk again as flat `SystemDisk.Category` keys, as ECS answers it beside the
    object (its older SDKs model only these, and Terraform's alicloud provider reads them). An
    IOPS the version does not hold is absent: a 0 would be read back and sent as SystemDisk.Iops."""
    return {
        f"SystemDisk.{name}": value
        for name, value in disk.items()
        if name != "Iops" or wire.get("SystemDisk.Iops")
    }


def launch_template_data(wire: Mapping[str, str]) -> dict[str, Any]:
    """A version's LaunchTemplateData, every field of the official model present."""
    system_disk = _fields(wire, "SystemDisk.", _SYSTEM_DISK_FIELDS)
    return {
        "SystemDisk": system_disk,
        **_flat_system_disk(wire, system_disk),
        **_fields(wire, "", _FIELDS),
        "DataDisks": {
            "DataDisk": [_fields(wire, f"DataDisk.{n}.", _DATA_DISK_FIELDS) for n in _items(wire, "DataDisk")]
        },
        "ImageOptions": {"LoginAsNonRoot": False},
        "NetworkInterfaces": {"NetworkInterface": []},
        "SecurityGroupIds": {
            "SecurityGroupId": [wire[f"SecurityGroupIds.{n}"] for n in _items(wire, "SecurityGroupIds")]
        },
        "SecurityOptions": {"TrustedSystemMode": ""},
        "Tags": {
            "InstanceTag": [
                {"Key": wire.get(f"Tag.{n}.Key", ""), "Value": wire.get(f"Tag.{n}.Value", "")}
                for n in _items(wire, "Tag")
            ]
        },
    }


def _render_version(
    template: LaunchTemplate, version: LaunchTemplateVersion, detailed: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "CreateTime": iso8601(version.created_at),
        "CreatedBy": version.created_by,
        "DefaultVersion": version.number == template.default_version,
        "LaunchTemplateId": template.id,
        "LaunchTemplateName": template.name,
        "ModifiedTime": iso8601(version.modified_at),
        "VersionDescription": version.description,
        "VersionNumber": version.number,
    }
    if detailed:
        body["LaunchTemplateData"] = launch_template_data(version_data(version))
    return body


@actions.define(
    "DescribeLaunchTemplateVersions",
    [
        REGION_ID,
        TEMPLATE_ID,
        TEMPLATE_NAME,
        StringList("LaunchTemplateVersion", max_items=100, item_max_length=10),
        Integer("MinVersion", minimum=1),
        Integer("MaxVersion", minimum=1),
        Boolean("DefaultVersion"),
        Boolean("DetailFlag", default=True),
        *page_params(max_size=50),
    ],
)
def describe_launch_template_versions(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """A template's versions, with their launch data unless DetailFlag is false."""
    numbers = []
    for text in p["LaunchTemplateVersion"] or []:
        if not text.isdigit():
            raise errors.invalid_parameter("LaunchTemplateVersion", f"{text!r} is not a version number.")
        numbers.append(int(text))
    template, versions = ctx.services.launch_templates.versions(
        ctx.scope(p["RegionId"]), _ref(p), numbers, p["MinVersion"], p["MaxVersion"], p["DefaultVersion"]
    )
    return number_paged(
        versions,
        p,
        "LaunchTemplateVersionSets",
        "LaunchTemplateVersionSet",
        lambda v: _render_version(template, v, p["DetailFlag"]),
    )


@actions.define(
    "ModifyLaunchTemplateDefaultVersion",
    [REGION_ID, TEMPLATE_ID, TEMPLATE_NAME, Integer("DefaultVersionNumber", required=True, minimum=1)],
)
def modify_launch_template_default_version(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The version RunInstances takes when it names none."""
    template_id = ctx.services.launch_templates.modify_default(
        ctx.scope(p["RegionId"]), _ref(p), p["DefaultVersionNumber"]
    )
    return {"LaunchTemplateId": template_id}


@actions.define("DeleteLaunchTemplate", [REGION_ID, TEMPLATE_ID, TEMPLATE_NAME])
def delete_launch_template(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """A template and all its versions."""
    template_id, numbers = ctx.services.launch_templates.delete(ctx.scope(p["RegionId"]), _ref(p))
    return {"LaunchTemplateId": template_id, "LaunchTemplateVersionNumbers": {"versionNumbers": numbers}}


@actions.define(
    "DeleteLaunchTemplateVersion",
    [
        REGION_ID,
        TEMPLATE_ID,
        TEMPLATE_NAME,
        StringList("DeleteVersion", required=True, max_items=100, item_max_length=10),
    ],
)
def delete_launch_template_version(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Versions other than the default one."""
    numbers = [int(v) for v in p["DeleteVersion"] if v.isdigit()]
    if len(numbers) != len(p["DeleteVersion"]):
        raise errors.invalid_parameter("DeleteVersion", "Each value must be a version number.")
    template_id, deleted = ctx.services.launch_templates.delete_versions(
        ctx.scope(p["RegionId"]), _ref(p), numbers
    )
    return {
        "LaunchTemplateVersions": {
            "LaunchTemplateVersion": [
                {"LaunchTemplateId": template_id, "LaunchTemplateVersionNumber": n} for n in deleted
            ]
        }
    }
