"""A network driver without a network: the desired state, kept in memory.

For the emulator (`nubes server --driver fake`) and for tests of the layers above. It checks
what it is given as the linux driver does (a port on an unknown vSwitch is an error) and
renders each VPC's nftables ruleset with the same pure renderer, so tests can assert on the
firewall a VPC would get — but nothing is filtered: `capabilities.real_isolation` is False.
No root needed."""

from __future__ import annotations

import socket
import threading

from nubes.drivers.network import names, nft
from nubes.drivers.network.base import ActualNetwork, Capabilities, NetworkDriver, PublicMapping, VpcNet


class FakeNetworkDriver(NetworkDriver):
    capabilities = Capabilities(real_isolation=False, dhcp=False, metadata=False)

    def __init__(self, prefix: str = "nubes") -> None:
        self.prefix = prefix
        self.vpcs: dict[str, VpcNet] = {}  # vpc_id -> the VpcNet last synced
        self.rulesets: dict[str, str] = {}  # vpc_id -> rendered nft script
        self.syncs = 0  # calls of sync/sync_vpc/remove_vpc that completed
        self.applied = 0  # how often a (changed) ruleset would have been loaded
        self._lock = threading.Lock()

    def sync(self, desired: list[VpcNet]) -> None:
        for vpc in desired:
            nft.validate_vpc(vpc)
        with self._lock:
            wanted = {vpc.vpc_id for vpc in desired}
            for vpc_id in list(self.vpcs):
                if vpc_id not in wanted:
                    self._remove(vpc_id)
            for vpc in desired:
                self._store(vpc)
            self.syncs += 1

    def sync_vpc(self, vpc: VpcNet) -> None:
        nft.validate_vpc(vpc)
        with self._lock:
            self._store(vpc)
            self.syncs += 1

    def remove_vpc(self, vpc_id: str) -> None:
        with self._lock:
            self._remove(vpc_id)
            self.syncs += 1

    def _store(self, vpc: VpcNet) -> None:
        text = nft.render_ruleset(vpc, tap_name=names.tap_name, veth_name=names.veth_name)
        if self.rulesets.get(vpc.vpc_id) != text:
            self.applied += 1
        self.vpcs[vpc.vpc_id] = vpc
        self.rulesets[vpc.vpc_id] = text

    def _remove(self, vpc_id: str) -> None:
        self.vpcs.pop(vpc_id, None)
        self.rulesets.pop(vpc_id, None)

    def actual(self) -> ActualNetwork:
        with self._lock:
            result = ActualNetwork()
            for vpc in self.vpcs.values():
                result.vpcs[vpc.vpc_id] = {v.vswitch_id for v in vpc.vswitches}
                for port in vpc.ports:
                    result.ports[port.port_id] = vpc.vpc_id
            return result

    def ruleset(self, vpc_id: str) -> str | None:
        """The nft script the linux driver would load for this VPC (None: no such VPC)."""
        with self._lock:
            return self.rulesets.get(vpc_id)

    def public_mappings(self, vpc_id: str) -> tuple[PublicMapping, ...]:
        """The 1:1 NAT mappings of the VPC as last synced (the linux driver would program them on
        the uplink; here they are only recorded)."""
        with self._lock:
            vpc = self.vpcs.get(vpc_id)
            return vpc.public if vpc is not None else ()

    def tap_name(self, port_id: str) -> str:
        return names.tap_name(port_id)

    def netns_name(self, vpc_id: str) -> str:
        return names.netns_name(self.prefix, vpc_id)

    def open_metadata_socket(self, vpc_id: str) -> socket.socket | None:
        return None
