"""ECS DescribeAccountAttributes: the caller's quotas and usage in a region."""

from __future__ import annotations

from typing import Any

from nubes.actions.common import REGION_ID
from nubes.api.context import ActionContext
from nubes.api.params import String, StringList
from nubes.api.registry import ActionTable
from nubes.domain.quotas import Quotas, usage
from nubes.domain.regions import require_region, zones_of

actions = ActionTable("ecs")

ATTRIBUTES = (
    "instance-network-type",
    "max-security-groups",
    "max-elastic-network-interfaces",
    "max-postpaid-instance-vcpu-count",
    "max-spot-instance-vcpu-count",
    "used-postpaid-instance-vcpu-count",
    "used-spot-instance-vcpu-count",
    "max-postpaid-yundisk-capacity",
    "used-postpaid-yundisk-capacity",
    "max-dedicated-hosts",
    "supported-postpay-instance-types",
    "real-name-authentication",
    "max-axt-command-count",
    "max-axt-invocation-daily",
    "max-terminal-session-count",
)


def _values(name: str, quotas: Quotas, used: tuple[int, int]) -> list[dict[str, Any]]:
    simple: dict[str, Any] = {
        "instance-network-type": "vpc",
        "max-security-groups": quotas.max_security_groups,
        "max-elastic-network-interfaces": quotas.max_elastic_network_interfaces,
        "max-postpaid-instance-vcpu-count": quotas.max_postpaid_instance_vcpu_count,
        "max-spot-instance-vcpu-count": quotas.max_spot_instance_vcpu_count,
        "used-postpaid-instance-vcpu-count": used[0],
        "used-spot-instance-vcpu-count": 0,  # spot instances are refused at launch
        "max-postpaid-yundisk-capacity": quotas.max_postpaid_yundisk_capacity_gib,
        "used-postpaid-yundisk-capacity": used[1],
        "max-dedicated-hosts": quotas.max_dedicated_hosts,
        "real-name-authentication": "yes",
        "max-axt-command-count": quotas.max_axt_command_count,
        "max-axt-invocation-daily": quotas.max_axt_invocation_daily,
        "max-terminal-session-count": quotas.max_terminal_session_count,
    }
    if name == "supported-postpay-instance-types":
        return []
    # The other fields narrow a value to a zone, charge type, instance type or disk category;
    # nubes' quotas hold for the whole region.
    unscoped = {
        "ZoneId": "",
        "InstanceChargeType": "",
        "InstanceType": "",
        "DiskCategory": "",
        "ExpiredTime": "",
    }
    return [{"Value": str(simple[name]), "Count": 1, **unscoped}]


@actions.define(
    "DescribeAccountAttributes",
    [
        REGION_ID,
        StringList("AttributeName", max_items=20, item_choices=ATTRIBUTES),
        String("ZoneId", max_length=64),
    ],
)
def describe_account_attributes(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The caller's quotas and usage in a region."""
    region = require_region(ctx.services.catalog, p["RegionId"])
    zones_of(region, p["ZoneId"])
    names = p["AttributeName"] or list(ATTRIBUTES)
    quotas = ctx.services.quotas
    used = usage(ctx.services.db, ctx.scope(region.region_id))
    items = [
        {"AttributeName": name, "AttributeValues": {"ValueItem": _values(name, quotas, used)}}
        for name in names
    ]
    return {"AccountAttributeItems": {"AccountAttributeItem": items}}
