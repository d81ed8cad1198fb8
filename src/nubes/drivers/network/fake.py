"""A network driver without a network: the desired state, kept in memory.

For the emulator (`nubes server --driver fake`) and for tests of the layers above. It checks
what it is given as the linux driver does (a port on an unknown vSwitch is an error) and
renders each VPC's nftables ruleset with the same pure renderer, so tests can assert on the
firewall a VPC would get — but nothing is filtered: `capabilities.real_isolation` is False.
Its ports count synthetic traffic from the time they first appeared (FAKE_PORT_RATES, as
functions of the driver's clock), for the monitoring API. No root needed."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from nubes.drivers.network import names, nft
from nubes.drivers.network.base import (
    ActualNetwork,
    Capabilities,
    NetworkDriver,
    PortCounters,
    PublicMapping,
    VpcNet,
)

# A fake port's traffic per second as the guest sees it: bytes received and sent, packets received
# and sent (nothing is dropped).
FAKE_PORT_RATES = (2000, 1000, 4, 2)


class FakeNetworkDriver(NetworkDriver):
    capabilities = Capabilities(real_isolation=False, dhcp=False, metadata=False)

    def __init__(self, prefix: str = "nubes", clock: Callable[[], float] = time.time) -> None:
        self.prefix = prefix
        self._clock = clock
        self._since: dict[str, float] = {}  # port_id -> when it first appeared (its counters' zero)
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
        now = self._clock()
        for port in vpc.ports:
            self._since.setdefault(port.port_id, now)

    def _remove(self, vpc_id: str) -> None:
        for port in self.vpcs[vpc_id].ports if vpc_id in self.vpcs else ():
            self._since.pop(port.port_id, None)
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

    def port_counters(self, vpc_id: str, port_ids: list[str]) -> dict[str, PortCounters]:
        with self._lock:
            vpc = self.vpcs.get(vpc_id)
            present = {p.port_id for p in vpc.ports} if vpc is not None else set()
            now = self._clock()
            found: dict[str, PortCounters] = {}
            for port_id in port_ids:
                if port_id in present:
                    elapsed = max(0.0, now - self._since.setdefault(port_id, now))
                    rx, tx, rxp, txp = (int(rate * elapsed) for rate in FAKE_PORT_RATES)
                    found[port_id] = PortCounters(rx, tx, rxp, txp)
            return found
