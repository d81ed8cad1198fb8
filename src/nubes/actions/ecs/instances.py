"""ECS instances: RunInstances, CreateInstance and the queries (power actions and changes live in
instance_power.py and instance_changes.py)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from nubes import errors
from nubes.actions.common import (
    CLIENT_TOKEN,
    DRY_RUN,
    INSTANCE_CHARGE_TYPE,
    PASSWORD_INHERIT,
    REGION_ID,
    RESOURCE_GROUP_ID,
    SPOT_STRATEGY,
    TAGS,
    tag_pairs,
    tag_set,
)
from nubes.actions.paging import number_paged, page_of, page_params, token_params
from nubes.api.context import ActionContext
from nubes.api.order import in_order, orders_of
from nubes.api.params import Boolean, Integer, Param, String, StringList, Struct, StructList
from nubes.api.registry import ActionTable
from nubes.clock import as_utc, iso8601
from nubes.domain import instance_states as states
from nubes.domain import public_addresses as pa
from nubes.domain.common import Scope
from nubes.domain.instance_queries import EXPIRES_AT, InstanceFilter
from nubes.domain.launch import DiskRequest, LaunchRequest
from nubes.domain.launch_templates import TemplateRef, merge
from nubes.store.models import Image, Instance, NetworkInterface, PublicAddress

actions = ActionTable("ecs")

INSTANCE_ID = String("InstanceId", required=True, max_length=64)
DISK_FIELDS = [  # sizes are checked per category by the domain, with ECS's error codes
    Integer("Size", minimum=1),
    String("Category", max_length=32),
    String("PerformanceLevel", choices=("PL0", "PL1", "PL2", "PL3")),
    String("DiskName", max_length=128),
    String("Description", max_length=256),
    # RunInstances types it a string on the wire, CreateInstance a boolean: both send true/false.
    String("Encrypted", choices=("true", "false")),
    String("SnapshotId", max_length=64),
]


def _system_disk(*, encrypted: bool) -> Param:
    """SystemDisk.*: RunInstances documents SystemDisk.Encrypted, CreateInstance does not."""
    skipped = {"SnapshotId"} if encrypted else {"SnapshotId", "Encrypted"}
    return Struct(
        "SystemDisk", [String("Size", max_length=16)] + [f for f in DISK_FIELDS[1:] if f.name not in skipped]
    )


# The metadata service answers token requests to the guest itself only: one hop, ECS's default.
HOP_LIMIT = Integer(
    "HttpPutResponseHopLimit",
    minimum=1,
    maximum=64,
    unsupported_from=2,
    unsupported_because="the metadata token is given to the instance itself only (hop limit 1)",
)

LAUNCH_PARAMS: list[Param] = [
    REGION_ID,
    String("ZoneId", max_length=64),
    String("InstanceType", required=True, max_length=64),
    String("ImageId", max_length=128),
    String("ImageFamily", max_length=128),
    String("VSwitchId", max_length=64),
    String("SecurityGroupId", max_length=64),
    String("PrivateIpAddress", max_length=64),
    String("InstanceName", max_length=128),
    String("HostName", max_length=64),
    String("Description", max_length=256),
    String("KeyPairName", max_length=128),
    String("Password", max_length=64),
    PASSWORD_INHERIT,
    String("UserData", max_length=64 * 1024),
    # RunInstances and CreateInstance type SystemDisk.Size as a string on the wire; _disk reads it.
    _system_disk(encrypted=False),
    StructList("DataDisk", [*DISK_FIELDS, Boolean("DeleteWithInstance", default=True)], max_items=16),
    INSTANCE_CHARGE_TYPE,
    SPOT_STRATEGY,
    String("DeploymentSetId", max_length=64),
    Integer("DeploymentSetGroupNo", minimum=1, maximum=7),
    Boolean("DeletionProtection", default=False),
    # Hibernation needs no guest support here (the host saves the VM's memory), so any instance
    # may be configured for it; only such an instance may StopInstance Hibernate=true.
    Struct("HibernationOptions", [Boolean("Configured", default=False)]),
    String("HttpTokens", choices=("optional", "required"), default="optional"),
    String("HttpEndpoint", choices=("enabled", "disabled"), default="enabled"),
    HOP_LIMIT,
    # Public bandwidth: InternetMaxBandwidthOut > 0 gives each instance a public IP from the
    # operator's ranges (InsufficientPublicIp when there are none, or none is left).
    String("InternetChargeType", choices=("PayByBandwidth", "PayByTraffic")),
    Integer("InternetMaxBandwidthOut", minimum=0, maximum=100, default=0),
    Integer("InternetMaxBandwidthIn", minimum=1, maximum=10240),
    String(
        "IoOptimized",
        choices=("none", "optimized"),
        unsupported_values=("none",),
        unsupported_because="every nubes instance is I/O optimized",
    ),
    TAGS,
    RESOURCE_GROUP_ID,
    CLIENT_TOKEN,
    DRY_RUN,
]


def _disk(raw: dict[str, Any] | None) -> DiskRequest:
    raw = raw or {}
    size = raw.get("Size")
    if isinstance(size, str):
        if not size.isdigit():
            raise errors.invalid_system_disk_size(
                f"SystemDisk.Size must be a whole number of GiB; got {size!r}."
            )
        size = int(size)
    return DiskRequest(
        size_gib=size,
        category=raw.get("Category"),
        performance_level=raw.get("PerformanceLevel"),
        name=raw.get("DiskName"),
        description=raw.get("Description"),
        delete_with_instance=raw.get("DeleteWithInstance", True) is not False,
        snapshot_id=raw.get("SnapshotId"),
        encrypted=raw.get("Encrypted") == "true",
    )


def _launch(p: dict[str, Any], amount: int, start: bool) -> LaunchRequest:
    return LaunchRequest(
        instance_type=p["InstanceType"],
        image_id=p["ImageId"],
        image_family=p["ImageFamily"],
        vswitch_id=p["VSwitchId"],
        zone_id=p["ZoneId"],
        security_group_ids=([p["SecurityGroupId"]] if p["SecurityGroupId"] else [])
        + list(p.get("SecurityGroupIds") or []),
        private_ip=p["PrivateIpAddress"],
        amount=amount,
        min_amount=p.get("MinAmount"),
        instance_name=p["InstanceName"],
        host_name=p["HostName"],
        host_names=list(p.get("HostNames") or []),
        unique_suffix=bool(p.get("UniqueSuffix")),
        description=p["Description"],
        key_pair_name=p["KeyPairName"],
        password=p["Password"],
        user_data=p["UserData"],
        system_disk=_disk(p["SystemDisk"]),
        data_disks=[_disk(d) for d in p["DataDisk"] or []],
        charge_type=p["InstanceChargeType"],
        spot_strategy=p["SpotStrategy"],
        deployment_set_id=p["DeploymentSetId"],
        deployment_set_group_no=p["DeploymentSetGroupNo"],
        auto_release_time=p.get("AutoReleaseTime"),
        deletion_protection=p["DeletionProtection"],
        hibernation_configured=bool((p["HibernationOptions"] or {}).get("Configured")),
        tags=list(tag_pairs(p)),
        resource_group_id=p["ResourceGroupId"],
        http_tokens=p["HttpTokens"],
        http_endpoint=p["HttpEndpoint"],
        internet_charge_type=p["InternetChargeType"] or "PayByTraffic",
        internet_max_bandwidth_out=p["InternetMaxBandwidthOut"],
        internet_max_bandwidth_in=p["InternetMaxBandwidthIn"],
        start=start,
        dry_run=p["DryRun"],
    )


def _run_param(param: Param) -> Param:
    """RunInstances' form of a CreateInstance parameter."""
    if param.name == "SystemDisk":
        return _system_disk(encrypted=True)
    if param.name == "InstanceType":
        return String("InstanceType", max_length=64)
    return param


RUN_INSTANCES_PARAMS: list[Param] = [
    # RunInstances documents InstanceType optional (a launch template may give it); without one
    # from either, the handler asks for it, with ECS's MissingParameter.
    *(_run_param(p) for p in LAUNCH_PARAMS),
    Integer("Amount", minimum=1, maximum=100, default=1),
    Integer("MinAmount", minimum=1, maximum=100),
    StringList("SecurityGroupIds", max_items=5, item_max_length=64),
    StringList("HostNames", max_items=100, item_max_length=64),
    Boolean("UniqueSuffix", default=False),
    String("AutoReleaseTime", max_length=32),
]
LAUNCH_TEMPLATE_PARAMS = [
    String("LaunchTemplateId", max_length=64),
    String("LaunchTemplateName", max_length=128),
    Integer("LaunchTemplateVersion", minimum=1),
]


def _from_launch_template(ctx: ActionContext, wire: Mapping[str, str]) -> Mapping[str, str]:
    """RunInstances with LaunchTemplateId or LaunchTemplateName: the version's parameters (the
    default version unless LaunchTemplateVersion names one) under the request's own."""
    template_id, name = wire.get("LaunchTemplateId") or None, wire.get("LaunchTemplateName") or None
    if not (template_id or name):
        return wire
    version_text = wire.get("LaunchTemplateVersion") or ""
    if version_text and not version_text.isdigit():
        raise errors.invalid_parameter("LaunchTemplateVersion", "It must be a version number.")
    if not wire.get("RegionId"):
        raise errors.missing_parameter("RegionId")
    kept = ctx.services.launch_templates.launch_parameters(
        ctx.scope(wire["RegionId"]),
        TemplateRef(template_id, name),
        int(version_text) if version_text else None,
    )
    kept.pop("VpcId", None)  # the template's note of its vSwitch's VPC: RunInstances has none
    return merge(kept, wire)


@actions.define(
    "RunInstances",
    [*RUN_INSTANCES_PARAMS, *LAUNCH_TEMPLATE_PARAMS],
    idempotent=True,
    wire_defaults=_from_launch_template,
)
def run_instances(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Create and start 1 to 100 instances; they are Pending, then Starting, then Running."""
    if not p["InstanceType"]:
        raise errors.missing_parameter("InstanceType")
    created = ctx.services.instances.launch(ctx.scope(p["RegionId"]), _launch(p, p["Amount"], start=True))
    return {"InstanceIdSets": {"InstanceIdSet": created}, "TradePrice": 0.0, "OrderId": ""}


@actions.define("CreateInstance", LAUNCH_PARAMS, idempotent=True)
def create_instance(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Create one instance and leave it Stopped (StartInstance starts it)."""
    created = ctx.services.instances.launch(ctx.scope(p["RegionId"]), _launch(p, 1, start=False))
    return {"InstanceId": created[0], "TradePrice": 0.0, "OrderId": ""}


# ---- queries -------------------------------------------------------------------------------------


# An instance's fields in the order of the instances of a DescribeInstances answer recorded from ECS
# (nubes.api.order), also where one is rendered alone (DescribeInstanceAttribute).
_INSTANCE_ORDER = orders_of("ecs", "DescribeInstances", under="Instances.Instance")


def render_instance(
    ctx: ActionContext,
    i: Instance,
    image: Image | None,
    enis: list[NetworkInterface],
    groups: list[str],
    tags: list[tuple[str, str]],
    public: dict[str, PublicAddress] | None = None,
) -> dict[str, Any]:
    """`enis`: the instance's interfaces, the primary first."""
    itype = ctx.services.catalog.instance_type(i.instance_type)
    eni = next((e for e in enis if e.eni_type == "Primary"), None)
    ip = eni.primary_ip if eni else ""
    public_ip, eip = (public or {}).get(pa.PUBLIC_IP), (public or {}).get(pa.EIP)
    fields = {
        "InstanceId": i.id,
        "InstanceName": i.name,
        "Description": i.description,
        "HostName": i.hostname,
        "ImageId": i.image_id,
        "InstanceType": i.instance_type,
        "InstanceTypeFamily": itype.family if itype else "",
        "Cpu": i.cpu,
        "Memory": i.memory_mib,
        "GPUAmount": 0,
        "GPUSpec": "",
        "LocalStorageAmount": 0,
        "LocalStorageCapacity": 0,
        "OSName": image.os_name if image else "",
        "OSNameEn": image.os_name_en if image else "",
        "OSType": image.os_type if image else "linux",
        "Status": i.status,
        "SerialNumber": i.id,
        "RegionId": i.region_id,
        "ZoneId": i.zone_id,
        "CreationTime": iso8601(i.created_at),
        "StartTime": iso8601(i.started_at) if i.started_at else "",
        "ExpiredTime": iso8601(EXPIRES_AT),
        "AutoReleaseTime": iso8601(as_utc(i.auto_release_time)).replace("Z", ":00Z")
        if i.auto_release_time
        else "",
        "InstanceChargeType": i.charge_type,
        "InternetChargeType": i.internet_charge_type,
        "InternetMaxBandwidthIn": i.internet_max_bandwidth_in,
        "InternetMaxBandwidthOut": i.internet_max_bandwidth_out,
        "SpotStrategy": i.spot_strategy,
        "SpotPriceLimit": 0.0,
        "SpotDuration": 0,
        "SpotInterruptionBehavior": "Terminate",  # ECS's only behaviour when it reclaims a spot instance
        "StoppedMode": "Not-applicable" if i.status != states.STOPPED else i.stopped_mode,
        "DeletionProtection": i.deletion_protection,
        "DeploymentSetId": i.deployment_set_id,
        "DeploymentSetGroupNo": i.deployment_set_group_no,
        "KeyPairName": i.key_pair_name,
        "IoOptimized": True,
        "DeviceAvailable": True,
        "Recyclable": False,
        "SaleCycle": "",  # the billing cycle of a subscription; nubes bills nothing by cycle
        "CreditSpecification": "",
        "InstanceNetworkType": "vpc",
        "ResourceGroupId": i.resource_group_id,
        "HpcClusterId": "",
        "ClusterId": "",
        "VlanId": "",
        "ISP": "",  # Edge Node Service regions only
        "EnableNVS": False,
        "VpcAttributes": {
            "VpcId": i.vpc_id,
            "VSwitchId": i.vswitch_id,
            "NatIpAddress": "",
            "PrivateIpAddress": {"IpAddress": [ip] if ip else []},
        },
        "InnerIpAddress": {"IpAddress": []},
        "PublicIpAddress": {"IpAddress": [public_ip.ip_address] if public_ip else []},
        "RdmaIpAddress": {"IpAddress": []},
        "EipAddress": {
            "AllocationId": eip.id if eip else "",
            "IpAddress": eip.ip_address if eip else "",
            "InternetChargeType": eip.internet_charge_type if eip else "",
            "Bandwidth": eip.bandwidth_out if eip else 0,
            "IsSupportUnassociate": True,
        },
        "SecurityGroupIds": {"SecurityGroupId": groups},
        "NetworkInterfaces": {
            "NetworkInterface": [
                {
                    "NetworkInterfaceId": each.id,
                    "MacAddress": each.mac,
                    "PrimaryIpAddress": each.primary_ip,
                    "Type": each.eni_type,
                    "PrivateIpSets": {
                        "PrivateIpSet": [
                            {"PrivateIpAddress": each.primary_ip, "Primary": True},
                            *(
                                {"PrivateIpAddress": r.ip_address, "Primary": False}
                                for r in each.secondary_ips
                            ),
                        ]
                    },
                    "Ipv6Sets": {"Ipv6Set": []},
                    "Ipv4PrefixSets": {"Ipv4PrefixSet": []},
                    "Ipv6PrefixSets": {"Ipv6PrefixSet": []},
                }
                for each in enis
            ]
        },
        "MetadataOptions": {
            "HttpEndpoint": i.metadata_http_endpoint,
            "HttpTokens": i.metadata_http_tokens,
            "HttpPutResponseHopLimit": 1,
            "InstanceMetadataTags": "disabled",
        },
        "CpuOptions": _cpu_options(i.cpu),
        "OperationLocks": {"LockReason": []},
        "Tags": tag_set(tags),
        "DedicatedHostAttribute": {
            "DedicatedHostId": "",
            "DedicatedHostName": "",
            "DedicatedHostClusterId": "",
        },
        "DedicatedInstanceAttribute": {"Affinity": "", "Tenancy": ""},
        "EcsCapacityReservationAttr": {"CapacityReservationId": "", "CapacityReservationPreference": ""},
        "HibernationOptions": {"Configured": i.hibernation_configured},
        "ImageOptions": {"LoginAsNonRoot": False, "CurrentOSNVMeSupported": False},  # virtio disks, not NVMe
        "SecurityOptions": {"EnableSecureBoot": False},
        "PrivateDnsNameOptions": {
            "HostnameType": "",
            "EnableInstanceIdDnsARecord": False,
            "EnableInstanceIdDnsAAAARecord": False,
            "EnableIpDnsARecord": False,
            "EnableIpDnsPtrRecord": False,
        },
        "ClockOptions": {"PtpStatus": ""},
        "AdditionalInfo": {"EnableHighDensityMode": False, "ManagedHostId": "", "NodeSerialNumber": ""},
    }
    return dict(in_order(fields, _INSTANCE_ORDER))


def _cpu_options(cpu: int) -> dict[str, Any]:
    """Two threads per core where there is more than one vCPU, as ECS's x86 types have; the
    options nubes does not offer (topology, turbo, nested virtualisation) are empty."""
    return {
        "CoreCount": max(1, cpu // 2),
        "ThreadsPerCore": 2 if cpu > 1 else 1,
        "Numa": "",
        "TopologyType": "",
        "TurboMode": "",
        "NestedVirtualization": "",
        "EnableVISST": False,
        "EnableVRDT": False,
    }


def _instance_filter(p: dict[str, Any]) -> InstanceFilter:
    return InstanceFilter(
        instance_ids=p["InstanceIds"] or (),
        vpc_id=p["VpcId"],
        vswitch_id=p["VSwitchId"],
        zone_id=p["ZoneId"],
        instance_type=p["InstanceType"],
        type_family=p["InstanceTypeFamily"],
        name=p["InstanceName"],
        status=p["Status"],
        image_id=p["ImageId"],
        key_pair_name=p["KeyPairName"],
        charge_type=p["InstanceChargeType"],
        resource_group_id=p["ResourceGroupId"],
        security_group_id=p["SecurityGroupId"],
        private_ips=p["PrivateIpAddresses"] or (),
        inner_ips=p["InnerIpAddresses"] or (),
        http_tokens=p["HttpTokens"],
        http_endpoint=p["HttpEndpoint"],
        times=[(f.get("Key") or "", f.get("Value") or "") for f in p["Filter"] or []],
        tags=tag_pairs(p),
        lock_reason=p["LockReason"],
        rdma_ips=p["RdmaIpAddresses"] or (),
        ipv6_addresses=p["Ipv6Address"] or (),
        public_ips=p["PublicIpAddresses"] or (),
        eip_addresses=p["EipAddresses"] or (),
        network_type=p["InstanceNetworkType"],
        internet_charge_type=p["InternetChargeType"],
    )


def _may_match(p: dict[str, Any]) -> bool:
    """The filters on what every nubes instance has alike (I/O optimized, metadata hop limit 1,
    no HPC cluster): one that asks otherwise matches none."""
    return (
        p["IoOptimized"] in (None, True)
        and p["HttpPutResponseHopLimit"] in (None, 1)
        and p["HpcClusterId"] is None
    )


@actions.define(
    "DescribeInstances",
    [
        REGION_ID,
        StringList("InstanceIds", json_array=True, max_items=100, item_max_length=64),
        String("VpcId", max_length=64),
        String("VSwitchId", max_length=64),
        String("ZoneId", max_length=64),
        String("InstanceName", max_length=128),
        String("InstanceType", max_length=64),
        String("InstanceTypeFamily", max_length=64),
        String("Status", choices=states.STATUSES),
        String("ImageId", max_length=128),
        String("SecurityGroupId", max_length=64),
        String("KeyPairName", max_length=128),
        StringList("PrivateIpAddresses", json_array=True, max_items=100, item_max_length=64),
        StringList("InnerIpAddresses", json_array=True, max_items=100, item_max_length=64),
        StringList("PublicIpAddresses", json_array=True, max_items=100, item_max_length=64),
        StringList("EipAddresses", json_array=True, max_items=100, item_max_length=64),
        String("InstanceChargeType", choices=("PrePaid", "PostPaid")),
        String("InternetChargeType", choices=("PayByBandwidth", "PayByTraffic")),
        String("InstanceNetworkType", choices=("vpc", "classic")),
        String("ResourceGroupId", max_length=64),
        Boolean("IoOptimized"),
        String("HttpTokens", choices=("optional", "required")),
        String("HttpEndpoint", choices=("enabled", "disabled")),
        Integer("HttpPutResponseHopLimit", minimum=1, maximum=64),
        String("LockReason", max_length=32),
        String("HpcClusterId", max_length=64),
        StringList("RdmaIpAddresses", json_array=True, max_items=100, item_max_length=64),
        StringList("Ipv6Address", max_items=100, item_max_length=64),
        # The attributes (META_OPTIONS, NETWORK_PRIMARY_ENI_IP, CPU_OPTIONS_TOPOLOGY_TYPE, ...) ECS
        # adds to an instance on request: nubes renders every one of them always.
        StringList("AdditionalAttributes", max_items=20, item_max_length=64),
        StructList("Filter", [String("Key", max_length=64), String("Value", max_length=64)], max_items=10),
        TAGS,
        DRY_RUN,
        *page_params(max_size=100, default_size=None),
        *token_params(max_results=100),
    ],
)
def describe_instances(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The caller's instances in a region, filtered; PageNumber/PageSize or NextToken/MaxResults."""
    if p["DryRun"]:
        raise errors.dry_run_operation()
    where = _instance_filter(p)
    page = page_of(p)
    scope = ctx.scope(p["RegionId"])
    if not _may_match(p):
        return {"TotalCount": 0, "Instances": {"Instance": []}, **page.fields(0, 0)}
    total, found = ctx.services.instances.find(scope, where, page.offset, page.size)
    enis, groups, tags = ctx.services.instances.related(ctx.scope(p["RegionId"]), [i.id for i in found])
    public = ctx.services.instances.public_addresses([i.id for i in found])
    images = ctx.services.instances.images_of(found)
    items = [
        render_instance(
            ctx,
            i,
            images.get(i.image_id),
            enis.get(i.id, []),
            groups.get(i.id, []),
            tags.get(i.id, []),
            public.get(i.id),
        )
        for i in found
    ]
    return {"TotalCount": total, "Instances": {"Instance": items}, **page.fields(total, len(found))}


@actions.define(
    "DescribeInstanceStatus",
    [
        REGION_ID,
        StringList("InstanceId", max_items=100, item_max_length=64),
        String("ZoneId", max_length=64),
        *page_params(),
    ],
)
def describe_instance_status(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The status of each of the caller's instances."""
    rows = ctx.services.instances.statuses(ctx.scope(p["RegionId"]), p["InstanceId"] or [], p["ZoneId"])
    return number_paged(
        rows, p, "InstanceStatuses", "InstanceStatus", lambda row: {"InstanceId": row[0], "Status": row[1]}
    )


@actions.define("DescribeInstanceAttribute", [INSTANCE_ID])
def describe_instance_attribute(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """One instance in detail."""
    instance = ctx.services.instances.get(ctx.principal.account_id, p["InstanceId"])
    enis, groups, tags = ctx.services.instances.related(
        Scope(instance.account_id, instance.region_id), [instance.id]
    )
    item = render_instance(
        ctx,
        instance,
        ctx.services.instances.image_of(instance.image_id),
        enis.get(instance.id, []),
        groups[instance.id],
        tags[instance.id],
        ctx.services.instances.public_addresses([instance.id]).get(instance.id),
    )
    item["IoOptimized"] = "optimized"
    # DescribeInstanceAttribute's own fields: jumbo frames and network encryption are off in nubes
    item["EnableJumboFrame"] = False
    item["EnableNetworkEncryption"] = False
    item["NetworkOptions"] = {
        "BandwidthWeighting": "",
        "EnableJumboFrame": False,
        "EnableNetworkEncryption": False,
    }
    return item


@actions.define("DescribeUserData", [REGION_ID, INSTANCE_ID])
def describe_user_data(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The user data an instance was given (Base64)."""
    instance = ctx.services.instances.get(ctx.principal.account_id, p["InstanceId"], p["RegionId"])
    return {"InstanceId": instance.id, "RegionId": instance.region_id, "UserData": instance.user_data}


@actions.define("GetInstanceConsoleOutput", [REGION_ID, INSTANCE_ID, Boolean("RemoveSymbols", default=False)])
def get_instance_console_output(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The tail of the instance's serial console, Base64-encoded."""
    instance = ctx.services.instances.get(ctx.principal.account_id, p["InstanceId"], p["RegionId"])
    output = ctx.services.consoles.tail(instance.id)  # recorded by the agent of its host
    if p["RemoveSymbols"]:
        output = bytes(b for b in output if b in (9, 10, 13) or 32 <= b < 127)
    return {
        "InstanceId": instance.id,
        "ConsoleOutput": base64.b64encode(output).decode(),
        "LastUpdateTime": iso8601(ctx.services.clock.now()).replace("Z", ":00Z"),
    }
