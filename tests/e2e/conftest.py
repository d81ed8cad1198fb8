"""A live server with the real (linux) network driver, and helpers to build networks through
the official SDKs and plug test hosts into them."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from alibabacloud_ecs20140526 import models as em
from alibabacloud_vpc20160428 import models as vm

from ..api.test_vpc_api import REGION, ZONE, wait_available, wait_vswitch
from ..conftest import LiveServer, start_server, stop_server, tea_ecs, tea_vpc
from .netprobe import eventually, in_netns


def _real_networking_or_skip() -> None:
    missing = [tool for tool in ("ip", "nft", "dnsmasq") if shutil.which(tool) is None]
    reason = None
    if os.geteuid() != 0:
        reason = "needs root (network namespaces, nftables)"
    elif missing:
        reason = f"needs {', '.join(missing)}"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"real-network tests cannot run in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    _real_networking_or_skip()
    server = start_server(
        tmp_path_factory.mktemp("real"),
        None,
        "sqlite",
        ["--driver", "real", "--no-build-images", "--throttle-rate", "0"],
    )
    yield server
    stop_server(server)
    # The server leaves networks up when it stops (guests keep running across restarts);
    # the tests take down everything of theirs: namespaces, dnsmasq, test hosts.
    from nubes.drivers.network.linux import LinuxNetworkDriver

    LinuxNetworkDriver(server.data_dir / "run" / "network", prefix=server.netns_prefix).sync([])
    leftovers = [
        n
        for n in subprocess.run(
            ["ip", "netns", "list"], check=False, capture_output=True, text=True
        ).stdout.split()
        if n.startswith(server.netns_prefix + "-")
    ]
    assert leftovers == [], f"namespaces left behind: {leftovers}"


@dataclass
class Net:
    server: LiveServer
    key: tuple[str, str]
    vpc_id: str
    vswitch_id: str

    @property
    def ecs(self):  # type: ignore[no-untyped-def]
        return tea_ecs(self.server, self.key)

    def group(self, group_type: str = "normal") -> str:
        return str(
            self.ecs.create_security_group(
                em.CreateSecurityGroupRequest(
                    region_id=REGION, vpc_id=self.vpc_id, security_group_type=group_type
                )
            ).body.security_group_id
        )

    def host(self, ip: str, *groups: str) -> str:
        """An interface with this address, plugged into a test host; returns the host's namespace."""
        eni = self.ecs.create_network_interface(
            em.CreateNetworkInterfaceRequest(
                region_id=REGION,
                v_switch_id=self.vswitch_id,
                security_group_ids=list(groups),
                primary_ip_address=ip,
            )
        ).body.network_interface_id
        netns = self.server.nubes(
            "admin",
            "test-host",
            "attach",
            eni,
            "--netns-prefix",
            self.server.netns_prefix,
            *self.server.admin_store_args(),
        ).stdout.strip()
        assert eventually(lambda: ip in in_netns(netns, "ip", "-4", "addr", "show", "eth0")), (
            f"{netns} not ready"
        )
        return netns


def make_net(server: LiveServer, cidr: str) -> Net:
    key = server.create_account(f"net-{cidr.split('/', maxsplit=1)[0].replace('.', '-')}")
    vpc = tea_vpc(server, key)
    vpc_id = vpc.create_vpc(vm.CreateVpcRequest(region_id=REGION, cidr_block=cidr)).body.vpc_id
    assert wait_available(vpc, vpc_id).status == "Available"
    vswitch_cidr = cidr.replace(".0.0/16", ".1.0/24")
    vswitch_id = vpc.create_vswitch(
        vm.CreateVSwitchRequest(region_id=REGION, vpc_id=vpc_id, zone_id=ZONE, cidr_block=vswitch_cidr)
    ).body.v_switch_id
    assert wait_vswitch(vpc, vswitch_id).status == "Available"
    return Net(server, key, vpc_id, vswitch_id)
