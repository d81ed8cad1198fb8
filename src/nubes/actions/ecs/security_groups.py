"""ECS security groups: the groups, their ingress and egress rules, and memberships."""

from __future__ import annotations

from typing import Any

from nubes import errors
from nubes.actions.common import (
    CLIENT_TOKEN,
    DRY_RUN,
    REGION_ID,
    RESOURCE_GROUP_ID,
    TAGS,
    tag_pairs,
    tag_set,
    tagged,
)
from nubes.actions.paging import either_page, page_params, token_page, token_params
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, Integer, Param, String, StringList, StructList
from nubes.api.registry import ActionTable, Handler
from nubes.clock import iso8601_seconds
from nubes.domain.accounts import Principal
from nubes.domain.security_groups import EGRESS, GROUP_TYPES, INGRESS, Permission, SecurityGroups
from nubes.store.models import SecurityGroupRule

actions = ActionTable("ecs")

GROUP_ID = String("SecurityGroupId", required=True, max_length=64)
AVAILABLE_INSTANCE_AMOUNT = 2000


def _rule_fields(direction: str, *, port_range_list: bool = True) -> list[Param]:
    """A rule's fields. ECS has PortRangeListId inside Permissions.N and on the Modify actions,
    not at the top level of Authorize/Revoke."""
    peer = "Source" if direction == INGRESS else "Dest"
    fields = [
        String("IpProtocol", max_length=16),
        String("PortRange", max_length=16),
        String(f"{peer}CidrIp", max_length=64),
        String(f"{peer}GroupId", max_length=64),
        String(f"{peer}GroupOwnerAccount", max_length=64),
        Integer(f"{peer}GroupOwnerId", minimum=0),
        String(f"{peer}PrefixListId", max_length=64),
        String("SourcePortRange", max_length=16),
        String("Policy", max_length=16),
        String("Priority", max_length=8),
        String("NicType", max_length=16),
        String("Description", max_length=1024),
        String("Ipv6SourceCidrIp", max_length=64),
        String("Ipv6DestCidrIp", max_length=64),
    ]
    if port_range_list:
        fields.append(String("PortRangeListId", max_length=64))
    if direction == INGRESS:
        fields.append(String("DestCidrIp", max_length=64))
    else:
        fields.append(String("SourceCidrIp", max_length=64))
    return fields


def _permission(direction: str, raw: dict[str, Any], caller: Principal) -> Permission:
    peer = "Source" if direction == INGRESS else "Dest"
    local = "DestCidrIp" if direction == INGRESS else "SourceCidrIp"
    if raw.get(local):
        raise errors.invalid_parameter_not_supported(
            local, "rules match the peer's addresses only, not the instance's own."
        )
    owner_id, owner_account = raw.get(f"{peer}GroupOwnerId"), raw.get(f"{peer}GroupOwnerAccount")
    if (owner_id is not None and str(owner_id) != caller.uid) or (
        owner_account and owner_account != caller.account_name
    ):
        raise errors.invalid_parameter_not_supported(
            f"{peer}GroupOwnerId" if owner_id is not None else f"{peer}GroupOwnerAccount",
            "a rule's peer group must be one of the caller's own.",
        )
    return Permission(
        ip_protocol=raw.get("IpProtocol"),
        port_range=raw.get("PortRange"),
        peer_cidr=raw.get(f"{peer}CidrIp"),
        peer_group_id=raw.get(f"{peer}GroupId"),
        policy=raw.get("Policy"),
        priority=raw.get("Priority"),
        nic_type=raw.get("NicType"),
        description=raw.get("Description"),
        source_port_range=raw.get("SourcePortRange"),
        ipv6_cidr=raw.get("Ipv6SourceCidrIp") or raw.get("Ipv6DestCidrIp"),
        prefix_list_id=raw.get(f"{peer}PrefixListId"),
        port_range_list_id=raw.get("PortRangeListId"),
    )


def _permissions(direction: str, p: dict[str, Any], caller: Principal) -> list[Permission]:
    """Permissions.N.* when given; else the single rule in the top-level fields, if any."""
    if p["Permissions"]:
        return [_permission(direction, item, caller) for item in p["Permissions"]]
    if any(p.get(f.name) for f in _rule_fields(direction, port_range_list=False)):
        return [_permission(direction, p, caller)]
    return []


def _rule_action_params(direction: str, extra: list[Param]) -> list[Param]:
    """Authorize and Revoke: one rule at the top level, or a batch in Permissions.N."""
    return [
        REGION_ID,
        GROUP_ID,
        CLIENT_TOKEN,
        *_rule_fields(direction, port_range_list=False),
        StructList("Permissions", _rule_fields(direction), max_items=100),
        *extra,
    ]


def _modify_rule_params(direction: str) -> list[Param]:
    return [
        REGION_ID,
        GROUP_ID,
        CLIENT_TOKEN,
        *_rule_fields(direction),
        String("SecurityGroupRuleId", max_length=64),
    ]


def _groups(ctx: ActionContext) -> SecurityGroups:
    return ctx.services.security_groups


@actions.define(
    "CreateSecurityGroup",
    [
        REGION_ID,
        String("VpcId", max_length=64),  # optional in ECS: without it, a classic-network group
        String("SecurityGroupName", max_length=128),
        String("Description", max_length=256),
        String("SecurityGroupType", choices=GROUP_TYPES, default="normal"),
        RESOURCE_GROUP_ID,
        CLIENT_TOKEN,
        Boolean(
            "ServiceManaged",
            default=False,
            unsupported_values=(True,),
            unsupported_because="managed security groups belong to Alibaba Cloud services, none of which runs in nubes",
        ),
        TAGS,
    ],
    idempotent=True,
)
def create_security_group(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Create a normal or enterprise security group in a VPC."""
    if not p["VpcId"]:
        raise errors.invalid_parameter_not_supported(
            "VpcId",
            "security groups of the classic network (no VpcId) do not exist in nubes; give a VPC's ID.",
        )
    scope = ctx.scope(p["RegionId"])
    group = _groups(ctx).create(
        scope,
        p["VpcId"],
        p["SecurityGroupName"],
        p["Description"],
        p["SecurityGroupType"],
        p["ResourceGroupId"],
    )
    tags = list(tag_pairs(p))
    if tags:
        ctx.services.tags.tag(scope, "securitygroup", [group.id], tags)
    return {"SecurityGroupId": group.id}


@actions.define("DeleteSecurityGroup", [REGION_ID, GROUP_ID])
def delete_security_group(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Delete a group that has no members and that no other group's rules name."""
    _groups(ctx).delete(ctx.scope(p["RegionId"]), p["SecurityGroupId"])
    return {}


@actions.define(
    "DescribeSecurityGroups",
    [
        REGION_ID,
        String("VpcId", max_length=64),
        String("SecurityGroupId", max_length=64),
        StringList("SecurityGroupIds", json_array=True, max_items=100, item_max_length=64),
        String("SecurityGroupName", max_length=128),
        String("SecurityGroupType", choices=GROUP_TYPES),
        Boolean("FuzzyQuery", default=False),
        String("NetworkType", choices=("vpc", "classic")),
        String("ResourceGroupId", max_length=64),
        Boolean("ServiceManaged"),
        Boolean("IsQueryEcsCount", default=False),
        TAGS,
        DRY_RUN,
        *page_params(default_size=None),
        *token_params(max_results=100, min_results=10),
    ],
)
def describe_security_groups(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The caller's security groups (Tag.N: carrying every tag), PageNumber/PageSize or
    NextToken/MaxResults paged."""
    ids = list(p["SecurityGroupIds"] or []) + ([p["SecurityGroupId"]] if p["SecurityGroupId"] else [])
    summaries = _groups(ctx).describe(
        ctx.scope(p["RegionId"]),
        p["VpcId"],
        ids or None,
        p["SecurityGroupName"],
        p["FuzzyQuery"],
        p["SecurityGroupType"],
        p["ResourceGroupId"],
    )
    if p["NetworkType"] == "classic" or p["ServiceManaged"]:
        summaries = []  # every group is a VPC group the caller manages (ServiceManaged false)
    scope = ctx.scope(p["RegionId"])
    summaries = tagged(ctx, scope, "securitygroup", summaries, lambda s: s.group.id, p)
    tags = ctx.services.tags.of(scope, "securitygroup", (s.group.id for s in summaries))
    items = [
        {
            "SecurityGroupId": s.group.id,
            "SecurityGroupName": s.group.name,
            "Description": s.group.description,
            "SecurityGroupType": s.group.group_type,
            "VpcId": s.group.vpc_id,
            "CreationTime": iso8601_seconds(s.group.created_at),
            "ResourceGroupId": s.group.resource_group_id,
            "ServiceManaged": False,
            "ServiceID": 0,  # the Alibaba Cloud service that manages a group; none does here
            "RuleCount": s.rule_count,
            "GroupToGroupRuleCount": s.group_to_group_rule_count,
            # The capacity, counted only when IsQueryEcsCount asks for it (ECS: the two values
            # are valid only then).
            "EcsCount": s.interface_count if p["IsQueryEcsCount"] else 0,
            "AvailableInstanceAmount": max(0, AVAILABLE_INSTANCE_AMOUNT - s.interface_count)
            if p["IsQueryEcsCount"]
            else 0,
            "Tags": tag_set(tags.get(s.group.id, [])),
        }
        for s in summaries
    ]
    body: dict[str, Any] = {"RegionId": p["RegionId"], "TotalCount": len(items)}
    body.update(either_page(items, p, "SecurityGroups", "SecurityGroup"))
    return body


def render_rule(rule: SecurityGroupRule, names: dict[str, str]) -> dict[str, Any]:
    ingress = rule.direction == INGRESS
    peer_cidr_key = "SourceCidrIp" if ingress else "DestCidrIp"
    peer_group_key = "SourceGroupId" if ingress else "DestGroupId"
    item: dict[str, Any] = {
        "SecurityGroupRuleId": rule.id,
        "Direction": rule.direction,
        "IpProtocol": rule.ip_protocol,
        "PortRange": rule.port_range,
        "SourcePortRange": rule.source_port_range,
        "Policy": rule.policy.capitalize(),
        "Priority": str(rule.priority),
        "NicType": rule.nic_type,
        "Description": rule.description,
        "CreateTime": iso8601_seconds(rule.created_at),
        "SourceCidrIp": "",
        "DestCidrIp": "",
        "SourceGroupId": "",
        "DestGroupId": "",
        "SourceGroupName": "",
        "DestGroupName": "",
        "SourceGroupOwnerAccount": "",
        "DestGroupOwnerAccount": "",
        "Ipv6SourceCidrIp": "",
        "Ipv6DestCidrIp": "",
        "SourcePrefixListId": "",
        "SourcePrefixListName": "",
        "DestPrefixListId": "",
        "DestPrefixListName": "",
        "PortRangeListId": "",
        "PortRangeListName": "",
    }
    item[peer_cidr_key] = rule.peer_cidr
    item[peer_group_key] = rule.peer_group_id
    if rule.peer_group_id:
        item["SourceGroupName" if ingress else "DestGroupName"] = names.get(rule.peer_group_id, "")
    return item


@actions.define(
    "DescribeSecurityGroupAttribute",
    [
        REGION_ID,
        GROUP_ID,
        String("Direction", choices=("ingress", "egress", "all"), default="all"),
        # ECS: for a VPC group (every nubes group) the only NicType is intranet; internet or
        # nothing is taken as intranet, so the value selects every rule.
        String("NicType", choices=("internet", "intranet")),
        String("Attribute", choices=("snapshotPolicyIds",)),
        *token_params(max_results=1000, min_results=10),
    ],
)
def describe_security_group_attribute(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """A group with its rules (Permissions), optionally of one direction; Attribute=snapshotPolicyIds
    adds the automatic snapshot policies associated with the group (none can be, in nubes)."""
    scope = ctx.scope(p["RegionId"])
    group = _groups(ctx).get(scope, p["SecurityGroupId"])
    rules = [r for r in group.rules if p["Direction"] in ("all", r.direction)]
    peer_ids = sorted({r.peer_group_id for r in rules if r.peer_group_id})
    names = (
        {s.group.id: s.group.name for s in _groups(ctx).describe(scope, group_ids=peer_ids)}
        if peer_ids
        else {}
    )
    items = [render_rule(r, names) for r in rules]
    body: dict[str, Any] = {
        "RegionId": p["RegionId"],
        "SecurityGroupId": group.id,
        "SecurityGroupName": group.name,
        "Description": group.description,
        "VpcId": group.vpc_id,
        "InnerAccessPolicy": group.inner_access_policy,
        # Asked for with Attribute=snapshotPolicyIds; nubes associates no policy with a group.
        "SnapshotPolicyIds": {"SnapshotPolicyId": []},
    }
    if p["MaxResults"] is not None or p["NextToken"]:
        page, next_token = token_page(items, p["NextToken"], p["MaxResults"] or 500)
        body.update({"NextToken": next_token, "Permissions": {"Permission": page}})
    else:
        body.update({"NextToken": "", "Permissions": {"Permission": items}})
    return body


@actions.define(
    "ModifySecurityGroupAttribute",
    [REGION_ID, GROUP_ID, String("SecurityGroupName", max_length=128), String("Description", max_length=256)],
)
def modify_security_group_attribute(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Rename a group or change its description."""
    _groups(ctx).modify_attribute(
        ctx.scope(p["RegionId"]), p["SecurityGroupId"], p["SecurityGroupName"], p["Description"]
    )
    return {}


@actions.define(
    "ModifySecurityGroupPolicy",
    [
        REGION_ID,
        GROUP_ID,
        CLIENT_TOKEN,
        String("InnerAccessPolicy", required=True, choices=("Accept", "Drop")),
    ],
    idempotent=True,
)
def modify_security_group_policy(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Let the members of a group reach each other (Accept) or not (Drop) when no rule decides."""
    _groups(ctx).modify_policy(ctx.scope(p["RegionId"]), p["SecurityGroupId"], p["InnerAccessPolicy"])
    return {}


def _authorize(direction: str) -> Handler:
    def handler(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
        "Add rules to a security group (Permissions.N.* or one rule in the top-level fields)."
        _groups(ctx).authorize(
            ctx.scope(p["RegionId"]),
            p["SecurityGroupId"],
            direction,
            _permissions(direction, p, ctx.principal),
        )
        return {}

    return handler


def _revoke(direction: str) -> Handler:
    def handler(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
        "Remove rules by SecurityGroupRuleId.N or by their fields; unknown fields match nothing."
        _groups(ctx).revoke(
            ctx.scope(p["RegionId"]),
            p["SecurityGroupId"],
            direction,
            list(p["SecurityGroupRuleId"] or []),
            _permissions(direction, p, ctx.principal),
        )
        return {}

    return handler


def _modify(direction: str) -> Handler:
    def handler(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
        "Change one rule, named by SecurityGroupRuleId, or its Description, named by its fields."
        change = _permission(direction, p, ctx.principal)
        scope = ctx.scope(p["RegionId"])
        if p["SecurityGroupRuleId"]:
            _groups(ctx).modify_rule(scope, p["SecurityGroupId"], direction, p["SecurityGroupRuleId"], change)
        else:
            _groups(ctx).modify_rule_by_match(scope, p["SecurityGroupId"], direction, change)
        return {}

    return handler


_RULE_IDS = StringList("SecurityGroupRuleId", max_items=100, item_max_length=64)

actions.define("AuthorizeSecurityGroup", _rule_action_params(INGRESS, []), idempotent=True)(
    _authorize(INGRESS)
)
actions.define("AuthorizeSecurityGroupEgress", _rule_action_params(EGRESS, []), idempotent=True)(
    _authorize(EGRESS)
)
# ClientToken makes each of these happen once, as it does the creations.
actions.define("RevokeSecurityGroup", _rule_action_params(INGRESS, [_RULE_IDS]), idempotent=True)(
    _revoke(INGRESS)
)
actions.define("RevokeSecurityGroupEgress", _rule_action_params(EGRESS, [_RULE_IDS]), idempotent=True)(
    _revoke(EGRESS)
)
actions.define("ModifySecurityGroupRule", _modify_rule_params(INGRESS), idempotent=True)(_modify(INGRESS))
actions.define("ModifySecurityGroupEgressRule", _modify_rule_params(EGRESS), idempotent=True)(_modify(EGRESS))


@actions.define(
    "DescribeSecurityGroupReferences",
    [REGION_ID, StringList("SecurityGroupId", required=True, max_items=10, item_max_length=64)],
)
def describe_security_group_references(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Which other groups' rules name each of these groups."""
    refs = _groups(ctx).references(ctx.scope(p["RegionId"]), p["SecurityGroupId"])
    items = [
        {
            "SecurityGroupId": group_id,
            "ReferencingSecurityGroups": {
                "ReferencingSecurityGroup": [
                    {"SecurityGroupId": r, "AliUid": ctx.principal.uid} for r in referencing
                ]
            },
        }
        for group_id, referencing in refs.items()
    ]
    return {"SecurityGroupReferences": {"SecurityGroupReference": items}}


def _membership(join: bool) -> Handler:
    action = "JoinSecurityGroup" if join else "LeaveSecurityGroup"

    def handler(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
        """Put an instance (its primary network interface) or a network interface into a
        security group, or take it out. Without RegionId, the group's region is meant."""
        if p["InstanceId"] and p["NetworkInterfaceId"]:
            raise errors.invalid_parameter_conflict(
                "InstanceId and NetworkInterfaceId cannot be given together; give one of them."
            )
        if not p["InstanceId"] and not p["NetworkInterfaceId"]:
            raise errors.missing_parameter(message="Give InstanceId or NetworkInterfaceId.")
        scope = ctx.scope(p["RegionId"]) if p["RegionId"] else ctx.principal.account_id
        eni_id = p["NetworkInterfaceId"] or ctx.services.instances.primary_interface(
            ctx.principal.account_id, p["InstanceId"], action, p["RegionId"]
        )
        enis = ctx.services.network_interfaces
        (enis.join if join else enis.leave)(scope, eni_id, p["SecurityGroupId"])
        return {}

    return handler


_MEMBERSHIP = [
    String("RegionId", max_length=64),  # optional here: the security group says the region
    GROUP_ID,
    String("InstanceId", max_length=64),
    String("NetworkInterfaceId", max_length=64),
]
actions.define("JoinSecurityGroup", _MEMBERSHIP)(_membership(True))
actions.define("LeaveSecurityGroup", _MEMBERSHIP)(_membership(False))
