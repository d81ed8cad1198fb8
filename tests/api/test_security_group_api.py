"""Security groups, rules and network interfaces through the official alibabacloud-ecs20140526 client."""

from __future__ import annotations

from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_vpc20160428 import models as vm

from ..conftest import LiveServer, tea_ecs, tea_vpc
from .test_vpc_api import REGION, ZONE, wait_available, wait_vswitch

P = em.AuthorizeSecurityGroupRequestPermissions


def error_of(call: Any) -> ClientException:
    with pytest.raises(ClientException) as info:
        call()
    return info.value


def make_network(
    live: LiveServer, key: tuple[str, str] | None = None, cidr: str = "10.30.0.0/16"
) -> tuple[str, str]:
    vpc_client = tea_vpc(live, key) if key else tea_vpc(live)
    vpc_id = vpc_client.create_vpc(vm.CreateVpcRequest(region_id=REGION, cidr_block=cidr)).body.vpc_id
    wait_available(vpc_client, vpc_id)
    vsw_cidr = cidr.replace("0.0/16", "1.0/24")
    vsw_id = vpc_client.create_vswitch(
        vm.CreateVSwitchRequest(region_id=REGION, vpc_id=vpc_id, zone_id=ZONE, cidr_block=vsw_cidr)
    ).body.v_switch_id
    assert wait_vswitch(vpc_client, vsw_id).status == "Available"
    return vpc_id, vsw_id


def rules_of(ecs: Any, group_id: str, direction: str = "all") -> list[Any]:
    body = ecs.describe_security_group_attribute(
        em.DescribeSecurityGroupAttributeRequest(
            region_id=REGION, security_group_id=group_id, direction=direction
        )
    ).body
    return list(body.permissions.permission)


def test_security_group_lifecycle_and_rules(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    ecs = tea_ecs(live, fresh_key)
    vpc_id, _ = make_network(live, fresh_key)
    group_id = ecs.create_security_group(
        em.CreateSecurityGroupRequest(
            region_id=REGION, vpc_id=vpc_id, security_group_name="web", description="d"
        )
    ).body.security_group_id
    assert group_id.startswith("sg-")

    ecs.authorize_security_group(
        em.AuthorizeSecurityGroupRequest(
            region_id=REGION,
            security_group_id=group_id,
            ip_protocol="tcp",
            port_range="22/22",
            source_cidr_ip="10.0.0.0/8",
            priority="1",
            policy="accept",
            description="ssh",
        )
    )
    ecs.authorize_security_group(
        em.AuthorizeSecurityGroupRequest(
            region_id=REGION,
            security_group_id=group_id,
            permissions=[
                P(ip_protocol="icmp", port_range="-1/-1", source_cidr_ip="0.0.0.0/0", priority="10"),
                P(
                    ip_protocol="all",
                    port_range="-1/-1",
                    source_cidr_ip="192.168.0.0/16",
                    policy="drop",
                    priority="100",
                ),
            ],
        )
    )
    ecs.authorize_security_group_egress(
        em.AuthorizeSecurityGroupEgressRequest(
            region_id=REGION,
            security_group_id=group_id,
            ip_protocol="udp",
            port_range="53/53",
            dest_cidr_ip="0.0.0.0/0",
        )
    )

    ingress = rules_of(ecs, group_id, "ingress")
    assert sorted((r.ip_protocol, r.port_range, r.source_cidr_ip, r.policy, r.priority) for r in ingress) == [
        ("ALL", "-1/-1", "192.168.0.0/16", "Drop", "100"),
        ("ICMP", "-1/-1", "0.0.0.0/0", "Accept", "10"),
        ("TCP", "22/22", "10.0.0.0/8", "Accept", "1"),
    ]
    assert all(r.security_group_rule_id.startswith("sgr-") for r in ingress)
    egress = rules_of(ecs, group_id, "egress")
    assert [(r.ip_protocol, r.port_range, r.dest_cidr_ip) for r in egress] == [("UDP", "53/53", "0.0.0.0/0")]

    listed = ecs.describe_security_groups(
        em.DescribeSecurityGroupsRequest(region_id=REGION, vpc_id=vpc_id)
    ).body
    summary = listed.security_groups.security_group[0]
    assert (summary.security_group_id, summary.rule_count, summary.security_group_type) == (
        group_id,
        4,
        "normal",
    )

    duplicate = error_of(
        lambda: ecs.authorize_security_group(
            em.AuthorizeSecurityGroupRequest(
                region_id=REGION,
                security_group_id=group_id,
                ip_protocol="TCP",
                port_range="22/22",
                source_cidr_ip="10.0.0.0/8",
                priority="1",
            )
        )
    )
    assert duplicate.code == "InvalidPermission.Duplicate"

    ssh = next(r for r in ingress if r.port_range == "22/22")
    ecs.modify_security_group_rule(
        em.ModifySecurityGroupRuleRequest(
            region_id=REGION,
            security_group_id=group_id,
            security_group_rule_id=ssh.security_group_rule_id,
            port_range="2222/2222",
            description="moved",
        )
    )
    moved = next(r for r in rules_of(ecs, group_id) if r.security_group_rule_id == ssh.security_group_rule_id)
    assert (moved.port_range, moved.description, moved.source_cidr_ip) == ("2222/2222", "moved", "10.0.0.0/8")

    ecs.revoke_security_group(
        em.RevokeSecurityGroupRequest(
            region_id=REGION, security_group_id=group_id, security_group_rule_id=[ssh.security_group_rule_id]
        )
    )
    ecs.revoke_security_group(
        em.RevokeSecurityGroupRequest(
            region_id=REGION,
            security_group_id=group_id,
            ip_protocol="icmp",
            port_range="-1/-1",
            source_cidr_ip="0.0.0.0/0",
            priority="10",
        )
    )
    assert [r.ip_protocol for r in rules_of(ecs, group_id, "ingress")] == ["ALL"]

    ecs.modify_security_group_policy(
        em.ModifySecurityGroupPolicyRequest(
            region_id=REGION, security_group_id=group_id, inner_access_policy="Drop"
        )
    )
    ecs.modify_security_group_attribute(
        em.ModifySecurityGroupAttributeRequest(
            region_id=REGION, security_group_id=group_id, security_group_name="web2"
        )
    )
    attribute = ecs.describe_security_group_attribute(
        em.DescribeSecurityGroupAttributeRequest(region_id=REGION, security_group_id=group_id)
    ).body
    assert (attribute.inner_access_policy, attribute.security_group_name) == ("Drop", "web2")

    ecs.delete_security_group(em.DeleteSecurityGroupRequest(region_id=REGION, security_group_id=group_id))
    gone = error_of(lambda: rules_of(ecs, group_id))
    assert (gone.code, gone.status_code) == ("InvalidSecurityGroupId.NotFound", 404)


@pytest.fixture(scope="module")
def validation_group(live: LiveServer) -> tuple[tuple[str, str], str]:
    key = live.create_account(f"sgval-{live.backend}")
    vpc_id, _ = make_network(live, key, cidr="10.31.0.0/16")
    group_id = (
        tea_ecs(live, key)
        .create_security_group(em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id))
        .body.security_group_id
    )
    return key, group_id


@pytest.mark.parametrize(
    "fields, code",
    [
        (
            {"ip_protocol": "tcp", "port_range": "0/22", "source_cidr_ip": "0.0.0.0/0"},
            "InvalidPortRange.Malformed",
        ),
        (
            {"ip_protocol": "tcp", "port_range": "30/20", "source_cidr_ip": "0.0.0.0/0"},
            "InvalidPortRange.Malformed",
        ),
        (
            {"ip_protocol": "icmp", "port_range": "1/2", "source_cidr_ip": "0.0.0.0/0"},
            "InvalidPortRange.Malformed",
        ),
        (
            {"ip_protocol": "sctp", "port_range": "1/2", "source_cidr_ip": "0.0.0.0/0"},
            "InvalidIpProtocol.Malformed",
        ),
        (
            {"ip_protocol": "tcp", "port_range": "1/2", "source_cidr_ip": "10.0.0.0/33"},
            "InvalidSourceCidrIp.Malformed",
        ),
        (
            {"ip_protocol": "tcp", "port_range": "1/2", "source_cidr_ip": "0.0.0.0/0", "priority": "101"},
            "InvalidPriority.Malformed",
        ),
        (
            {"ip_protocol": "tcp", "port_range": "1/2", "source_cidr_ip": "0.0.0.0/0", "policy": "maybe"},
            "InvalidPolicy.Malformed",
        ),
        ({"ip_protocol": "tcp", "port_range": "1/2"}, "MissingParameter.SourceCidrIp"),
        (
            {"ip_protocol": "tcp", "port_range": "1/2", "source_group_id": "sg-nothere"},
            "InvalidSourceGroupId.NotFound",
        ),
    ],
)
def test_rule_validation(
    live: LiveServer, validation_group: tuple[tuple[str, str], str], fields: dict[str, str], code: str
) -> None:
    key, group_id = validation_group
    ecs = tea_ecs(live, key)
    error = error_of(
        lambda: ecs.authorize_security_group(
            em.AuthorizeSecurityGroupRequest(region_id=REGION, security_group_id=group_id, **fields)
        )
    )
    assert error.code == code and error.status_code in (400, 404)


def test_rule_quota(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    ecs = tea_ecs(live, fresh_key)
    vpc_id, _ = make_network(live, fresh_key, cidr="10.32.0.0/16")
    group_id = ecs.create_security_group(
        em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id)
    ).body.security_group_id
    batch = [
        P(ip_protocol="tcp", port_range=f"{port}/{port}", source_cidr_ip="0.0.0.0/0")
        for port in range(1, 101)
    ]
    ecs.authorize_security_group(
        em.AuthorizeSecurityGroupRequest(region_id=REGION, security_group_id=group_id, permissions=batch)
    )
    batch = [
        P(ip_protocol="udp", port_range=f"{port}/{port}", source_cidr_ip="0.0.0.0/0")
        for port in range(1, 101)
    ]
    ecs.authorize_security_group(
        em.AuthorizeSecurityGroupRequest(region_id=REGION, security_group_id=group_id, permissions=batch)
    )
    error = error_of(
        lambda: ecs.authorize_security_group(
            em.AuthorizeSecurityGroupRequest(
                region_id=REGION,
                security_group_id=group_id,
                ip_protocol="gre",
                port_range="-1/-1",
                source_cidr_ip="0.0.0.0/0",
            )
        )
    )
    assert error.code == "AuthorizationLimitExceed"
    assert len(rules_of(ecs, group_id)) == 200


def test_group_references_interfaces_and_dependencies(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    ecs = tea_ecs(live, fresh_key)
    vpc_id, vsw_id = make_network(live, fresh_key, cidr="10.33.0.0/16")
    web = ecs.create_security_group(
        em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id)
    ).body.security_group_id
    db = ecs.create_security_group(
        em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id)
    ).body.security_group_id
    ecs.authorize_security_group(
        em.AuthorizeSecurityGroupRequest(
            region_id=REGION,
            security_group_id=db,
            ip_protocol="tcp",
            port_range="5432/5432",
            source_group_id=web,
        )
    )
    refs = ecs.describe_security_group_references(
        em.DescribeSecurityGroupReferencesRequest(region_id=REGION, security_group_id=[web])
    ).body.security_group_references.security_group_reference
    assert [r.security_group_id for r in refs[0].referencing_security_groups.referencing_security_group] == [
        db
    ]
    blocked = error_of(
        lambda: ecs.delete_security_group(
            em.DeleteSecurityGroupRequest(region_id=REGION, security_group_id=web)
        )
    )
    assert blocked.code == "DependencyViolation"

    eni = ecs.create_network_interface(
        em.CreateNetworkInterfaceRequest(
            region_id=REGION, v_switch_id=vsw_id, security_group_id=web, primary_ip_address="10.33.1.10"
        )
    ).body
    assert (eni.private_ip_address, eni.status) == ("10.33.1.10", "Available")
    assert eni.mac_address.startswith("00:16:3e:")
    taken = error_of(
        lambda: ecs.create_network_interface(
            em.CreateNetworkInterfaceRequest(
                region_id=REGION, v_switch_id=vsw_id, security_group_id=web, primary_ip_address="10.33.1.10"
            )
        )
    )
    assert taken.code == "InvalidPrivateIpAddress.Duplicated"
    reserved = error_of(
        lambda: ecs.create_network_interface(
            em.CreateNetworkInterfaceRequest(
                region_id=REGION, v_switch_id=vsw_id, security_group_id=web, primary_ip_address="10.33.1.253"
            )
        )
    )
    assert reserved.code == "InvalidPrivateIpAddress.Reserved"

    ecs.join_security_group(
        em.JoinSecurityGroupRequest(
            region_id=REGION, security_group_id=db, network_interface_id=eni.network_interface_id
        )
    )
    described = ecs.describe_network_interfaces(
        em.DescribeNetworkInterfacesRequest(region_id=REGION, network_interface_id=[eni.network_interface_id])
    ).body
    interface = described.network_interface_sets.network_interface_set[0]
    assert interface.security_group_ids.security_group_id == [web, db]
    in_use = error_of(
        lambda: ecs.delete_security_group(
            em.DeleteSecurityGroupRequest(region_id=REGION, security_group_id=db)
        )
    )
    assert in_use.code == "DependencyViolation"
    ecs.leave_security_group(
        em.LeaveSecurityGroupRequest(
            region_id=REGION, security_group_id=db, network_interface_id=eni.network_interface_id
        )
    )
    last = error_of(
        lambda: ecs.leave_security_group(
            em.LeaveSecurityGroupRequest(
                region_id=REGION, security_group_id=web, network_interface_id=eni.network_interface_id
            )
        )
    )
    assert last.code == "InvalidOperation.LastSecurityGroup"

    vpc_client = tea_vpc(live, fresh_key)
    busy = error_of(
        lambda: vpc_client.delete_vswitch(vm.DeleteVSwitchRequest(region_id=REGION, v_switch_id=vsw_id))
    )
    assert busy.code == "DependencyViolation.NetworkInterface"
    ecs.delete_network_interface(
        em.DeleteNetworkInterfaceRequest(region_id=REGION, network_interface_id=eni.network_interface_id)
    )
    ecs.revoke_security_group(
        em.RevokeSecurityGroupRequest(
            region_id=REGION,
            security_group_id=db,
            ip_protocol="tcp",
            port_range="5432/5432",
            source_group_id=web,
        )
    )
    ecs.delete_security_group(em.DeleteSecurityGroupRequest(region_id=REGION, security_group_id=web))


def test_enterprise_groups(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    ecs = tea_ecs(live, fresh_key)
    vpc_id, vsw_id = make_network(live, fresh_key, cidr="10.34.0.0/16")
    ent = ecs.create_security_group(
        em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id, security_group_type="enterprise")
    ).body.security_group_id
    normal = ecs.create_security_group(
        em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id)
    ).body.security_group_id
    attribute = ecs.describe_security_group_attribute(
        em.DescribeSecurityGroupAttributeRequest(region_id=REGION, security_group_id=ent)
    ).body
    assert attribute.inner_access_policy == "Drop"
    error = error_of(
        lambda: ecs.authorize_security_group(
            em.AuthorizeSecurityGroupRequest(
                region_id=REGION,
                security_group_id=ent,
                ip_protocol="tcp",
                port_range="1/2",
                source_group_id=normal,
            )
        )
    )
    assert error.code == "InvalidParameter.GroupNotSupported"
    mixed = error_of(
        lambda: ecs.create_network_interface(
            em.CreateNetworkInterfaceRequest(
                region_id=REGION, v_switch_id=vsw_id, security_group_ids=[ent, normal]
            )
        )
    )
    assert mixed.code == "InvalidSecurityGroupType.Mixed"


def test_security_groups_are_per_account(live: LiveServer) -> None:
    key_a = live.create_account(f"sg-a-{live.backend}")
    key_b = live.create_account(f"sg-b-{live.backend}")
    vpc_id, _ = make_network(live, key_a, cidr="10.35.0.0/16")
    mine, theirs = tea_ecs(live, key_a), tea_ecs(live, key_b)
    group_id = mine.create_security_group(
        em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id)
    ).body.security_group_id
    assert (
        theirs.describe_security_groups(em.DescribeSecurityGroupsRequest(region_id=REGION)).body.total_count
        == 0
    )
    for call in (
        lambda: theirs.authorize_security_group(
            em.AuthorizeSecurityGroupRequest(
                region_id=REGION,
                security_group_id=group_id,
                ip_protocol="tcp",
                port_range="1/2",
                source_cidr_ip="0.0.0.0/0",
            )
        ),
        lambda: theirs.delete_security_group(
            em.DeleteSecurityGroupRequest(region_id=REGION, security_group_id=group_id)
        ),
        lambda: theirs.create_security_group(em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id)),
    ):
        assert error_of(call).code in ("InvalidSecurityGroupId.NotFound", "InvalidVpcId.NotFound")
    assert len(rules_of(mine, group_id)) == 0


def test_declared_parameters_take_effect_or_are_refused(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    """Issue 11: what the security group and interface actions declare is honoured (filters filter,
    ClientToken makes a revoke happen once) or refused by name, changing nothing."""
    ecs = tea_ecs(live, fresh_key)
    vpc_id, vsw_id = make_network(live, fresh_key, cidr="10.72.0.0/16")

    def groups(**filters: Any) -> list[Any]:
        body = ecs.describe_security_groups(
            em.DescribeSecurityGroupsRequest(region_id=REGION, **filters)
        ).body
        return list(body.security_groups.security_group)

    # CreateSecurityGroup: no classic-network group (no VpcId), no service-managed group.
    for field, value, wire in (("vpc_id", None, "VpcId"), ("service_managed", True, "ServiceManaged")):
        request = em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id)
        setattr(request, field, value)
        error = error_of(lambda request=request: ecs.create_security_group(request))
        assert error.code == "InvalidParameter.NotSupported" and f'"{wire}"' in error.message, error.message
    assert groups() == []
    group_id = ecs.create_security_group(
        em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id, service_managed=False)
    ).body.security_group_id

    # CreateNetworkInterface: DeleteOnRelease=true is refused (nothing releases an interface here).
    refused = error_of(
        lambda: ecs.create_network_interface(
            em.CreateNetworkInterfaceRequest(
                region_id=REGION, v_switch_id=vsw_id, security_group_id=group_id, delete_on_release=True
            )
        )
    )
    assert refused.code == "InvalidParameter.NotSupported" and '"DeleteOnRelease"' in refused.message

    def enis(**filters: Any) -> list[Any]:
        body = ecs.describe_network_interfaces(
            em.DescribeNetworkInterfacesRequest(region_id=REGION, **filters)
        ).body
        return list(body.network_interface_sets.network_interface_set)

    assert enis() == []
    eni = ecs.create_network_interface(
        em.CreateNetworkInterfaceRequest(
            region_id=REGION,
            v_switch_id=vsw_id,
            security_group_id=group_id,
            delete_on_release=False,
            resource_group_id=live.create_resource_group(fresh_key, "eni"),
        )
    ).body
    ip = eni.private_ip_address
    only = [eni.network_interface_id]
    assert [e.network_interface_id for e in enis(private_ip_address=[ip, "10.72.1.250"])] == only
    assert enis(private_ip_address=["10.72.1.250"]) == []
    assert enis(ipv_6address=["2001:db8::1"]) == []
    assert enis(service_managed=True) == []
    assert [e.network_interface_id for e in enis(service_managed=False)] == only
    assert [e.network_interface_id for e in enis(resource_group_id=eni.resource_group_id)] == only
    assert enis(resource_group_id=live.create_resource_group(fresh_key, "other")) == []

    # DescribeSecurityGroups: ServiceManaged filters; the capacity is counted when asked for.
    assert groups(service_managed=True) == []
    [plain] = groups(service_managed=False)
    assert (plain.ecs_count, plain.available_instance_amount) == (0, 0)
    [counted] = groups(is_query_ecs_count=True)
    assert (counted.ecs_count, counted.available_instance_amount) == (1, 1999)

    # A VPC group's rules are intranet rules whatever NicType says, and NicType selects them all.
    ecs.authorize_security_group(
        em.AuthorizeSecurityGroupRequest(
            region_id=REGION,
            security_group_id=group_id,
            permissions=[
                P(ip_protocol="tcp", port_range="22/22", source_cidr_ip="10.0.0.0/8", nic_type="internet")
            ],
        )
    )
    for nic_type in ("internet", "intranet", None):
        body = ecs.describe_security_group_attribute(
            em.DescribeSecurityGroupAttributeRequest(
                region_id=REGION, security_group_id=group_id, nic_type=nic_type, attribute="snapshotPolicyIds"
            )
        ).body
        assert [r.nic_type for r in body.permissions.permission] == ["intranet"], nic_type
        assert body.snapshot_policy_ids.snapshot_policy_id == []
    [rule] = rules_of(ecs, group_id)

    # ModifySecurityGroupRule by ID: an IPv6 peer is refused, not left out of the change.
    ipv6 = error_of(
        lambda: ecs.modify_security_group_rule(
            em.ModifySecurityGroupRuleRequest(
                region_id=REGION,
                security_group_id=group_id,
                security_group_rule_id=rule.security_group_rule_id,
                ipv_6source_cidr_ip="2001:db8::/32",
                port_range="80/80",
            )
        )
    )
    assert ipv6.code == "InvalidParameter.Ipv6NotSupported"
    assert [r.port_range for r in rules_of(ecs, group_id)] == ["22/22"]

    # RevokeSecurityGroup with a ClientToken happens once: the retry gets the first answer.
    revoke = em.RevokeSecurityGroupRequest(
        region_id=REGION,
        security_group_id=group_id,
        security_group_rule_id=[rule.security_group_rule_id],
        client_token="revoke-once",
    )
    ecs.revoke_security_group(revoke)
    ecs.revoke_security_group(revoke)
    assert rules_of(ecs, group_id) == []
    revoke.client_token = None
    gone = error_of(lambda: ecs.revoke_security_group(revoke))
    assert gone.code == "InvalidSecurityGroupRuleId.NotFound"
