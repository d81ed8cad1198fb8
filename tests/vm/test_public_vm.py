"""Public addresses with a real VM (issue 12): a namespace on the uplink plays the internet; a
Debian instance with an EIP serves HTTP to it and goes out by its EIP; once unassociated, the
internet no longer reaches it. Then the same EIP on a NAT gateway: the instance goes out by an
SNAT entry (the internet sees the EIP) and is reached by a forward entry; without the gateway,
it has no way out again."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em
from alibabacloud_vpc20160428 import models as vm

from nubes.guest.images import ImageManifest
from tests.conftest import LiveServer, start_server, tea_vpc, unique_prefix
from tests.e2e.conftest import Net, make_net
from tests.e2e.netprobe import eventually, http_get, internet, listening

from .test_instance_lifecycle import REAL_SERVER, REGION, SMALL, _teardown, image_id, nubes_ssh, wait_status

pytestmark = pytest.mark.vm

PUBLIC_RANGE, PUBLIC_GATEWAY = "198.18.0.0/24", "198.18.0.1"
WHOAMI_PORT = 8080


@pytest.fixture(scope="module")
def public_cloud(
    images_dir: Path, debian_image: ImageManifest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, str]]:
    prefix = unique_prefix()
    uplink = f"{prefix}up"[:15]
    with internet(f"{prefix}-internet", uplink, f"{PUBLIC_GATEWAY}/24") as inet:
        os.environ["NUBES_IMAGES_DIR"] = str(images_dir)
        server = start_server(
            tmp_path_factory.mktemp("public"),
            None,
            "sqlite",
            [
                *REAL_SERVER,
                "--netns-prefix",
                prefix,
                "--uplink",
                uplink,
                "--public-cidr",
                PUBLIC_RANGE,
                "--public-gateway",
                PUBLIC_GATEWAY,
            ],
        )
        try:
            yield server, inet
        finally:
            _teardown(server)


def open_ports(net: Net, *ports: int) -> str:
    group = net.group()
    for port in ports:
        net.ecs.authorize_security_group(
            em.AuthorizeSecurityGroupRequest(
                region_id=REGION,
                security_group_id=group,
                ip_protocol="tcp",
                port_range=f"{port}/{port}",
                source_cidr_ip="0.0.0.0/0",
            )
        )
    return group


def debian_instance(net: Net, group: str, key_file: Path) -> str:
    """A Running Debian instance that `nubes ssh` logs in to with `key_file`."""
    body = net.ecs.create_key_pair(em.CreateKeyPairRequest(region_id=REGION, key_pair_name="pub")).body
    key_file.write_text(body.private_key_body)
    key_file.chmod(0o600)
    [instance_id] = net.ecs.run_instances(
        em.RunInstancesRequest(
            region_id=REGION,
            image_id=image_id(net.ecs, "nubes:debian_12_x64"),
            instance_type=SMALL,
            v_switch_id=net.vswitch_id,
            security_group_id=group,
            key_pair_name="pub",
        )
    ).body.instance_id_sets.instance_id_set
    assert wait_status(net.ecs, instance_id, "Running") == "Running"
    deadline = time.monotonic() + 180
    while nubes_ssh(net.server, key_file, instance_id, "true").returncode != 0:
        assert time.monotonic() < deadline, "no ssh login"
        time.sleep(2)
    return str(instance_id)


def guest(net: Net, key_file: Path, instance_id: str, script: str) -> str:
    done = nubes_ssh(net.server, key_file, instance_id, "sh", "-c", shlex.quote(script))  # ssh joins words
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


SSH_FAILED = 255  # ssh's own exit status: the login failed, the command never ran


def fetch_from_guest(net: Net, key_file: Path, instance_id: str, attempts: list[str] | None = None) -> str:
    """What the internet's whoami server answers the guest: the address it came from ("" when
    the guest has no way out). A login that fails under load is tried again rather than read as
    "no way out"; every try is recorded in `attempts` for the assertion message."""
    url = f"http://{PUBLIC_GATEWAY}:{WHOAMI_PORT}/"
    for _ in range(3):
        done = nubes_ssh(net.server, key_file, instance_id, "timeout", "10", "busybox", "wget", "-qO-", url)
        if attempts is not None:
            attempts.append(f"exit {done.returncode}: {done.stdout.strip()!r} {done.stderr.strip()[-300:]!r}")
        if done.returncode != SSH_FAILED:
            break
    return done.stdout.strip()


def guest_goes_out_as(net: Net, key_file: Path, instance_id: str, address: str) -> None:
    """The guest reaches the internet as `address`: polled, since the agent applies an
    association asynchronously (the inbound path may be ready a moment before the outbound)."""
    attempts: list[str] = []
    assert eventually(lambda: fetch_from_guest(net, key_file, instance_id, attempts) == address, 30), attempts


def eip_status(vpc: Any, allocation_id: str) -> str:
    body = vpc.describe_eip_addresses(
        vm.DescribeEipAddressesRequest(region_id=REGION, allocation_id=allocation_id)
    ).body
    return str(body.eip_addresses.eip_address[0].status)


def test_a_vm_with_an_eip_then_behind_a_nat_gateway(
    public_cloud: tuple[LiveServer, str], tmp_path: Path
) -> None:
    cloud, inet = public_cloud
    net = make_net(cloud, "10.86.0.0/16")
    cloud.extra = {"key": net.key}  # nubes ssh signs as the network's account
    vpc = tea_vpc(cloud, net.key)
    key_file = tmp_path / "pub.pem"
    instance_id = debian_instance(net, open_ports(net, 22, 80), key_file)
    guest(
        net,
        key_file,
        instance_id,
        f"mkdir -p /tmp/www && echo {instance_id} > /tmp/www/index.html && busybox httpd -p 80 -h /tmp/www",
    )
    with listening(inet, "whoami", WHOAMI_PORT):
        assert fetch_from_guest(net, key_file, instance_id) == ""  # no public address: no way out

        eip = vpc.allocate_eip_address(vm.AllocateEipAddressRequest(region_id=REGION, bandwidth="10")).body
        vpc.associate_eip_address(
            vm.AssociateEipAddressRequest(
                region_id=REGION, allocation_id=eip.allocation_id, instance_id=instance_id
            )
        )
        assert eip_status(vpc, eip.allocation_id) == "InUse"
        assert eventually(lambda: http_get(inet, f"http://{eip.eip_address}/").strip() == instance_id, 30)
        guest_goes_out_as(net, key_file, instance_id, eip.eip_address)
        described = net.ecs.describe_instances(
            em.DescribeInstancesRequest(region_id=REGION, instance_ids=f'["{instance_id}"]')
        ).body.instances.instance[0]
        assert described.eip_address.ip_address == eip.eip_address

        vpc.unassociate_eip_address(
            vm.UnassociateEipAddressRequest(
                region_id=REGION, allocation_id=eip.allocation_id, instance_id=instance_id
            )
        )
        assert eventually(lambda: http_get(inet, f"http://{eip.eip_address}/").startswith("ERROR"), 30)
        assert fetch_from_guest(net, key_file, instance_id) == ""

        # behind a NAT gateway: out by an SNAT entry of its vSwitch, in by a forward entry
        gateway = vpc.create_nat_gateway(
            vm.CreateNatGatewayRequest(
                region_id=REGION, vpc_id=net.vpc_id, v_switch_id=net.vswitch_id, nat_type="Enhanced"
            )
        ).body
        vpc.associate_eip_address(
            vm.AssociateEipAddressRequest(
                region_id=REGION,
                allocation_id=eip.allocation_id,
                instance_id=gateway.nat_gateway_id,
                instance_type="Nat",
            )
        )
        vpc.create_snat_entry(
            vm.CreateSnatEntryRequest(
                region_id=REGION,
                snat_table_id=gateway.snat_table_ids.snat_table_id[0],
                source_vswitch_id=net.vswitch_id,
                snat_ip=eip.eip_address,
            )
        )
        vpc.create_forward_entry(
            vm.CreateForwardEntryRequest(
                region_id=REGION,
                forward_table_id=gateway.forward_table_ids.forward_table_id[0],
                external_ip=eip.eip_address,
                external_port="443",  # an SNAT address forwards ports up to 1024 (ECS)
                ip_protocol="TCP",
                internal_ip=described.vpc_attributes.private_ip_address.ip_address[0],
                internal_port="80",
            )
        )
        guest_goes_out_as(net, key_file, instance_id, eip.eip_address)
        assert http_get(inet, f"http://{eip.eip_address}:443/").strip() == instance_id
        assert http_get(inet, f"http://{eip.eip_address}/").startswith("ERROR")  # no entry for port 80

        vpc.delete_nat_gateway(
            vm.DeleteNatGatewayRequest(region_id=REGION, nat_gateway_id=gateway.nat_gateway_id, force=True)
        )
        assert eventually(lambda: fetch_from_guest(net, key_file, instance_id) == "", 30)
    net.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))
