"""The console's network pages (issue 14) against a live emulator, over plain HTTP: VPCs and
vSwitches, security groups and their rules, key pairs, EIPs and NAT gateways made, changed and
deleted through the pages' forms, each checked through the API (the official SDKs), and the
API's refusals shown with the Code and HTTP status the API itself answers the same request."""

from __future__ import annotations

import re
import uuid
from typing import Any

from alibabacloud_ecs20140526 import models as em
from alibabacloud_vpc20160428 import models as vm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..api.test_instances_api import Lab
from ..api.test_security_group_api import make_network
from ..api.test_vpc_api import REGION, wait_available
from ..conftest import LiveServer, tea_ecs, tea_vpc
from .resource_pages import Signed, created, ids, post, refused_alike, shown
from .test_console_instances import error_of


def ecs_policy(ecs: Any, group_id: str) -> str:
    request = em.DescribeSecurityGroupAttributeRequest(region_id=REGION, security_group_id=group_id)
    return str(ecs.describe_security_group_attribute(request).body.inner_access_policy)


def test_vpc_vswitch_security_group_and_rules(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    vpc_api, ecs = tea_vpc(live, fresh_key), tea_ecs(live, fresh_key)
    browser = Signed(live, fresh_key)
    created(browser, "/console/vpcs/create", "/console/vpcs", VpcName="net", CidrBlock="10.71.0.0/16")
    listing = shown(browser, "/console/vpcs")
    [vpc_id] = ids(listing, "vpc")
    assert wait_available(vpc_api, vpc_id).cidr_block == "10.71.0.0/16"
    assert wait_available(vpc_api, vpc_id).vpc_name == "net"

    # a CIDR block outside the VPC's: the API's refusal, with its status, next to the form
    page = shown(browser, f"/console/vpcs/{vpc_id}")
    zone_select = re.search(r'<select name="ZoneId">(.*?)</select>', page)
    assert zone_select is not None
    zones = re.findall(r'<option value="([^"]+)">', zone_select.group(1))
    assert zones
    outside = {"VSwitchName": "bad", "ZoneId": zones[0], "CidrBlock": "10.99.1.0/24"}
    refused = refused_alike(
        browser,
        f"/console/vpcs/{vpc_id}/vswitches/create",
        ("vpc", "CreateVSwitch"),
        outside,
        api={"VpcId": vpc_id},
    )
    assert refused.status == 400

    created(
        browser,
        f"/console/vpcs/{vpc_id}/vswitches/create",
        f"/console/vpcs/{vpc_id}",
        VSwitchName="web",
        ZoneId=zones[0],
        CidrBlock="10.71.1.0/24",
    )
    [vswitch_id] = ids(shown(browser, f"/console/vpcs/{vpc_id}"), "vswitch")
    [vswitch] = vpc_api.describe_vswitches(
        vm.DescribeVSwitchesRequest(region_id=REGION, vpc_id=vpc_id)
    ).body.v_switches.v_switch
    assert (vswitch.v_switch_id, vswitch.cidr_block, vswitch.zone_id) == (
        vswitch_id,
        "10.71.1.0/24",
        zones[0],
    )

    created(
        browser,
        "/console/security-groups/create",
        "/console/security-groups",
        SecurityGroupName="web",
        VpcId=vpc_id,
        Description="the web tier",
    )
    [group_id] = ids(shown(browser, "/console/security-groups"), "security-group")
    here = f"/console/security-groups/{group_id}"
    created(
        browser,
        f"{here}/rules/ingress/add",
        here,
        IpProtocol="tcp",
        PortRange="22/22",
        SourceCidrIp="0.0.0.0/0",
        Policy="accept",
        Priority="1",
    )
    created(
        browser,
        f"{here}/rules/ingress/add",
        here,
        IpProtocol="tcp",
        PortRange="1/65535",
        SourceCidrIp="0.0.0.0/0",
        Policy="drop",
        Priority="100",
        Description="the rest",
    )
    created(
        browser, f"{here}/rules/egress/add", here, IpProtocol="icmp", DestCidrIp="10.0.0.0/8", Policy="accept"
    )
    assert f'<option value="{group_id}">web</option>' in shown(browser, here)  # a peer to choose
    created(
        browser,
        f"{here}/rules/egress/add",
        here,
        IpProtocol="tcp",
        PortRange="5432/5432",
        DestGroupId=group_id,
        Priority="2",
    )

    def rules(direction: str) -> list[Any]:
        attribute = ecs.describe_security_group_attribute(
            em.DescribeSecurityGroupAttributeRequest(
                region_id=REGION, security_group_id=group_id, direction=direction
            )
        ).body
        assert attribute.vpc_id == vpc_id
        return sorted(attribute.permissions.permission, key=lambda r: int(r.priority))

    ssh, rest = rules("ingress")
    assert (ssh.ip_protocol.lower(), ssh.port_range, ssh.source_cidr_ip, ssh.policy, ssh.priority) == (
        "tcp",
        "22/22",
        "0.0.0.0/0",
        "Accept",
        "1",
    )
    assert (rest.port_range, rest.policy, rest.priority, rest.description) == (
        "1/65535",
        "Drop",
        "100",
        "the rest",
    )
    ping, database = rules("egress")
    assert (ping.ip_protocol.lower(), ping.port_range, ping.dest_cidr_ip) == ("icmp", "-1/-1", "10.0.0.0/8")
    assert (database.port_range, database.dest_group_id, database.dest_cidr_ip) == ("5432/5432", group_id, "")
    page = shown(browser, here)
    ingress = page[page.index('id="ingress"') : page.index('id="egress"')]
    assert ids(ingress, "rule") == [ssh.security_group_rule_id, rest.security_group_rule_id]

    # a priority out of range: the API's refusal shown on the group's page
    rule = {"IpProtocol": "tcp", "PortRange": "80/80", "SourceCidrIp": "0.0.0.0/0", "Priority": "101"}
    bad = refused_alike(
        browser,
        f"{here}/rules/ingress/add",
        ("ecs", "AuthorizeSecurityGroup"),
        rule,
        api={"SecurityGroupId": group_id},
    )
    assert bad.status == 400
    assert len(rules("ingress")) == 2

    created(
        browser,
        f"{here}/rules/ingress/modify",
        here,
        SecurityGroupRuleId=rest.security_group_rule_id,
        Priority="50",
        Description="all else",
    )
    created(
        browser, f"{here}/rules/ingress/delete", here, **{"SecurityGroupRuleId.1": ssh.security_group_rule_id}
    )
    [left] = rules("ingress")
    assert (left.security_group_rule_id, left.priority, left.description) == (
        rest.security_group_rule_id,
        "50",
        "all else",
    )

    assert ecs_policy(ecs, group_id) == "Accept"
    created(browser, f"{here}/policy", here, InnerAccessPolicy="Drop")
    assert ecs_policy(ecs, group_id) == "Drop"
    assert '<option value="Drop" selected>' in shown(browser, here)

    # the VPC still holds a group and a vSwitch: refused, as the API refuses it
    refused_alike(
        browser, "/console/vpcs/delete", ("vpc", "DeleteVpc"), {"VpcId": vpc_id}, form={"confirm": "yes"}
    )
    created(
        browser,
        "/console/security-groups/delete",
        "/console/security-groups",
        SecurityGroupId=group_id,
        confirm="yes",
    )
    created(
        browser,
        f"/console/vpcs/{vpc_id}/vswitches/delete",
        f"/console/vpcs/{vpc_id}",
        VSwitchId=vswitch_id,
        confirm="yes",
    )
    created(browser, "/console/vpcs/delete", "/console/vpcs", VpcId=vpc_id, confirm="yes")
    assert vpc_api.describe_vpcs(vm.DescribeVpcsRequest(region_id=REGION)).body.total_count == 0
    assert ids(shown(browser, "/console/vpcs"), "vpc") == []


def test_a_bad_cidr_block_is_the_apis_400(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    browser = Signed(live, fresh_key)
    bad = {"VpcName": "bad", "CidrBlock": "10.0.0.0/33"}
    refused = refused_alike(browser, "/console/vpcs/create", ("vpc", "CreateVpc"), bad)
    assert refused.status == 400
    assert 'id="create-vpc"' in refused.text  # the form is still there, with what was sent
    assert 'name="CidrBlock" value="10.0.0.0/33"' in refused.text
    assert 'class="error-status">HTTP 400<' in refused.text


def test_key_pair_private_key_is_handed_over_once(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    ecs = tea_ecs(live, fresh_key)
    browser = Signed(live, fresh_key)
    handed = post(browser, "/console/key-pairs/create", KeyPairName="laptop", deliver="show")
    assert handed.status == 200
    key = re.search(r'<textarea id="private-key"[^>]*>([^<]+)</textarea>', handed.text)
    assert key is not None
    assert key.group(1).startswith("-----BEGIN") and "PRIVATE KEY-----" in key.group(1)
    assert 'download="laptop.pem"' in handed.text
    assert handed.headers["cache-control"] == "no-store"
    later = shown(browser, "/console/key-pairs")
    assert "PRIVATE KEY" not in later
    assert ids(later, "key-pair") == ["laptop"]

    downloaded = post(browser, "/console/key-pairs/create", KeyPairName="ci", deliver="download")
    assert downloaded.status == 200
    assert downloaded.headers["content-disposition"] == 'attachment; filename="ci.pem"'
    assert downloaded.text.startswith("-----BEGIN") and "PRIVATE KEY-----" in downloaded.text

    public = ed25519.Ed25519PrivateKey.generate().public_key()
    body = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    created(
        browser, "/console/key-pairs/import", "/console/key-pairs", KeyPairName="imported", PublicKeyBody=body
    )
    listed = ecs.describe_key_pairs(
        em.DescribeKeyPairsRequest(region_id=REGION, include_public_key=True)
    ).body
    names = {k.key_pair_name: k for k in listed.key_pairs.key_pair}
    assert set(names) == {"laptop", "ci", "imported"}
    assert names["imported"].public_key.split()[:2] == body.split()[:2]

    again = refused_alike(
        browser,
        "/console/key-pairs/create",
        ("ecs", "CreateKeyPair"),
        {"KeyPairName": "laptop"},
        form={"deliver": "show"},
    )
    assert "PRIVATE KEY" not in again.text

    created(browser, "/console/key-pairs/delete", "/console/key-pairs", KeyPairName="ci", confirm="yes")
    listed = ecs.describe_key_pairs(em.DescribeKeyPairsRequest(region_id=REGION)).body
    assert {k.key_pair_name for k in listed.key_pairs.key_pair} == {"laptop", "imported"}


def test_eip_allocate_associate_unassociate_release(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab = Lab(live, fresh_key, "10.72.0.0/16")
    [instance_id] = lab.run(instance_name="web")
    assert lab.wait(instance_id, "Running") == "Running"
    vpc_api = tea_vpc(live, fresh_key)
    browser = Signed(live, fresh_key)

    def eip() -> Any:
        [address] = vpc_api.describe_eip_addresses(
            vm.DescribeEipAddressesRequest(region_id=REGION)
        ).body.eip_addresses.eip_address
        return address

    created(browser, "/console/eips/allocate", "/console/eips", Bandwidth="7", Name="front")
    page = shown(browser, "/console/eips")
    [allocation_id] = ids(page, "eip")
    assert (eip().allocation_id, eip().bandwidth, eip().name, eip().status) == (
        allocation_id,
        "7",
        "front",
        "Available",
    )
    assert f'<option value="{instance_id}">' in page

    created(
        browser,
        "/console/eips/associate",
        "/console/eips",
        AllocationId=allocation_id,
        InstanceId=instance_id,
    )
    assert (eip().status, eip().instance_id) == ("InUse", instance_id)
    refused_alike(
        browser,
        "/console/eips/release",
        ("vpc", "ReleaseEipAddress"),
        {"AllocationId": allocation_id},
        form={"confirm": "yes"},
    )

    created(
        browser,
        "/console/eips/unassociate",
        "/console/eips",
        AllocationId=allocation_id,
        InstanceId=instance_id,
        InstanceType="EcsInstance",
    )
    assert (eip().status, eip().instance_id) == ("Available", "")
    created(browser, "/console/eips/release", "/console/eips", AllocationId=allocation_id, confirm="yes")
    assert (
        vpc_api.describe_eip_addresses(vm.DescribeEipAddressesRequest(region_id=REGION)).body.total_count == 0
    )


def test_nat_gateway_with_snat_and_forward_entries(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    vpc_id, vswitch_id = make_network(live, fresh_key, cidr="10.73.0.0/16")
    vpc_api = tea_vpc(live, fresh_key)
    browser = Signed(live, fresh_key)
    created(
        browser,
        "/console/nat-gateways/create",
        "/console/nat-gateways",
        Name="out",
        VpcId=vpc_id,
        VSwitchId=vswitch_id,
    )
    [gateway_id] = ids(shown(browser, "/console/nat-gateways"), "nat-gateway")
    [gateway] = vpc_api.describe_nat_gateways(
        vm.DescribeNatGatewaysRequest(region_id=REGION, nat_gateway_id=gateway_id)
    ).body.nat_gateways.nat_gateway
    assert (gateway.name, gateway.vpc_id) == ("out", vpc_id)
    address = vpc_api.allocate_eip_address(vm.AllocateEipAddressRequest(region_id=REGION)).body
    here = f"/console/nat-gateways/{gateway_id}"
    assert f'<option value="{address.allocation_id}">' in shown(browser, here)
    created(browser, f"{here}/bind", here, AllocationId=address.allocation_id)
    page = shown(browser, here)
    assert ids(page, "gateway-eip") == [address.allocation_id]
    snat_table = gateway.snat_table_ids.snat_table_id[0]
    forward_table = gateway.forward_table_ids.forward_table_id[0]

    created(
        browser,
        f"{here}/snat/create",
        here,
        SnatTableId=snat_table,
        SnatEntryName="all",
        SourceVSwitchId=vswitch_id,
        SnatIp=address.eip_address,
    )
    forward = {
        "ForwardTableId": forward_table,
        "IpProtocol": "tcp",
        "ExternalIp": address.eip_address,
        "ExternalPort": "80",
        "InternalIp": "10.73.1.10",
        "InternalPort": "8080",
    }
    created(browser, f"{here}/dnat/create", here, ForwardEntryName="web", **forward)
    [snat] = vpc_api.describe_snat_table_entries(
        vm.DescribeSnatTableEntriesRequest(region_id=REGION, snat_table_id=snat_table)
    ).body.snat_table_entries.snat_table_entry
    assert (snat.source_vswitch_id, snat.snat_ip, snat.snat_entry_name) == (
        vswitch_id,
        address.eip_address,
        "all",
    )
    [dnat] = vpc_api.describe_forward_table_entries(
        vm.DescribeForwardTableEntriesRequest(region_id=REGION, forward_table_id=forward_table)
    ).body.forward_table_entries.forward_table_entry
    assert (dnat.external_port, dnat.internal_ip, dnat.internal_port) == ("80", "10.73.1.10", "8080")
    page = shown(browser, here)
    assert ids(page, "snat-entry") == [snat.snat_entry_id]
    assert ids(page, "forward-entry") == [dnat.forward_entry_id]

    # the same external port twice: the API's refusal, shown with its status
    again = {**forward, "InternalIp": "10.73.1.11"}
    twice = refused_alike(browser, f"{here}/dnat/create", ("vpc", "CreateForwardEntry"), again)
    assert 'name="InternalIp" value="10.73.1.11"' in twice.text  # kept, to be corrected

    # with entries, a Delete without Force is refused; the entries deleted, it is not
    kept = refused_alike(
        browser,
        "/console/nat-gateways/delete",
        ("vpc", "DeleteNatGateway"),
        {"NatGatewayId": gateway_id},
        form={"confirm": "yes"},
    )
    assert ids(kept.text, "nat-gateway") == [gateway_id]
    created(
        browser,
        f"{here}/dnat/delete",
        here,
        ForwardTableId=forward_table,
        ForwardEntryId=dnat.forward_entry_id,
    )
    created(browser, f"{here}/snat/delete", here, SnatTableId=snat_table, SnatEntryId=snat.snat_entry_id)
    page = shown(browser, here)
    assert ids(page, "snat-entry") == ids(page, "forward-entry") == []
    created(browser, f"{here}/unbind", here, AllocationId=address.allocation_id)
    created(
        browser,
        "/console/nat-gateways/delete",
        "/console/nat-gateways",
        NatGatewayId=gateway_id,
        confirm="yes",
    )
    assert (
        vpc_api.describe_nat_gateways(vm.DescribeNatGatewaysRequest(region_id=REGION)).body.total_count == 0
    )


def test_another_accounts_network_resources_are_the_apis_not_found(
    live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    vpc_id, vswitch_id = make_network(live, fresh_key, cidr="10.74.0.0/16")
    owner = Signed(live, fresh_key)
    created(
        owner,
        "/console/security-groups/create",
        "/console/security-groups",
        SecurityGroupName="mine",
        VpcId=vpc_id,
    )
    [group_id] = ids(shown(owner, "/console/security-groups"), "security-group")
    created(
        owner, "/console/nat-gateways/create", "/console/nat-gateways", VpcId=vpc_id, VSwitchId=vswitch_id
    )
    [gateway_id] = ids(shown(owner, "/console/nat-gateways"), "nat-gateway")

    intruder = Signed(live, live.create_account(f"t-{uuid.uuid4().hex[:12]}"))
    for path, code in (
        (f"/console/vpcs/{vpc_id}", "InvalidVpcId.NotFound"),
        (f"/console/security-groups/{group_id}", "InvalidSecurityGroupId.NotFound"),
        (f"/console/nat-gateways/{gateway_id}", "InvalidNatGatewayId.NotFound"),
    ):
        page = intruder.get(path)
        assert (page.status, error_of(page.text)[0]) == (404, code), path
        assert "mine" not in page.text
    revoke = post(
        intruder,
        f"/console/security-groups/{group_id}/rules/ingress/add",
        IpProtocol="tcp",
        PortRange="22/22",
        SourceCidrIp="0.0.0.0/0",
    )
    assert (revoke.status, error_of(revoke.text)[0]) == (404, "InvalidSecurityGroupId.NotFound")
    unconfirmed = post(owner, "/console/vpcs/delete", VpcId=vpc_id)  # the box left unticked
    assert (unconfirmed.status, error_of(unconfirmed.text)[0]) == (400, "ConfirmationRequired")
    delete = post(intruder, "/console/vpcs/delete", VpcId=vpc_id, confirm="yes")
    assert (delete.status, error_of(delete.text)[0]) == (404, "InvalidVpcId.NotFound")
    assert ids(shown(owner, "/console/vpcs"), "vpc") == [vpc_id]
    assert ids(shown(intruder, "/console/vpcs"), "vpc") == []


def test_network_forms_need_the_sessions_csrf_token(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    browser = Signed(live, fresh_key)
    forms = {
        "/console/vpcs/create": {"CidrBlock": "10.76.0.0/16"},
        "/console/security-groups/create": {"SecurityGroupName": "x"},
        "/console/key-pairs/create": {"KeyPairName": "x", "deliver": "download"},
        "/console/eips/allocate": {"Bandwidth": "5"},
    }
    for path, form in forms.items():
        assert browser.post(path, form).status == 403, path
        assert browser.post(path, {"csrf_token": "wrong", **form}).status == 403, path
    vpc_api, ecs = tea_vpc(live, fresh_key), tea_ecs(live, fresh_key)
    assert vpc_api.describe_vpcs(vm.DescribeVpcsRequest(region_id=REGION)).body.total_count == 0
    groups = ecs.describe_security_groups(em.DescribeSecurityGroupsRequest(region_id=REGION)).body
    assert groups.total_count == 0
    assert ecs.describe_key_pairs(em.DescribeKeyPairsRequest(region_id=REGION)).body.total_count == 0
    assert (
        vpc_api.describe_eip_addresses(vm.DescribeEipAddressesRequest(region_id=REGION)).body.total_count == 0
    )
    assert browser.get("/console/vpcs/create").status == 404  # a VPC's page, and no such VPC
    for page in ("/console/vpcs", "/console/security-groups", "/console/key-pairs", "/console/eips"):
        assert '<p class="empty">None yet in cn-hangzhou.</p>' in shown(browser, page)
