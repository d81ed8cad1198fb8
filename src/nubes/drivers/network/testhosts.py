"""Test hosts of the linux network driver: a namespace of its own per veth port (created,
marked and removed by the driver), with the port's MAC, address and a default route via the
vSwitch gateway: a stand-in for a VM where a test needs a real peer on a vSwitch."""

from __future__ import annotations

import ipaddress

from nubes.drivers.network import names
from nubes.drivers.network.base import NetworkError, PortNet, VSwitchNet
from nubes.drivers.network.proc import CommandError, ip, ip_batch, ip_json, netns_exists, run, write_sysctls

HOST_SYSCTLS = {
    "net.ipv6.conf.all.disable_ipv6": "1",
    "net.ipv6.conf.default.disable_ipv6": "1",
}


def host_owned(prefix: str, vpc_id: str, host: str) -> bool:
    """Whether namespace `host` may be deleted as a test host of this VPC: it carries our
    mark, or no mark and no device but `lo` (created by us, crashed before marking it)."""
    try:
        links = ip_json("link", "show", netns=host)
    except CommandError:
        return False
    lo = next((link for link in links if link.get("ifname") == "lo"), None)
    alias = str(lo.get("ifalias", "")) if lo else ""
    if alias == "":
        return len(links) == 1
    parts = names.parse_alias(alias)
    return parts[0] == names.HOST_MARK and len(parts) >= 3 and parts[1] == prefix and parts[2] == vpc_id


def prepare_host_netns(prefix: str, vpc_id: str, ns: str, port: PortNet) -> None:
    """A fresh, marked test-host namespace for a veth port about to be (re)created."""
    host = port.host_netns
    assert host
    # Deleting a device takes its veth peer at once; deleting a namespace does so only
    # when the kernel reaps it, which would race with creating the new pair.
    ip("link", "del", "dev", names.veth_name(port.port_id), netns=ns, check=False)
    if netns_exists(host):
        if not host_owned(prefix, vpc_id, host):
            raise NetworkError(f"namespace {host} exists and is not a nubes test host of {vpc_id}")
        ip("link", "del", "dev", "eth0", netns=host, check=False)
        run(["ip", "netns", "delete", host])
    ip("netns", "add", host)
    ip_batch([f"link set dev lo alias {names.host_alias(prefix, vpc_id, port.port_id)} up"], netns=host)
    write_sysctls(host, HOST_SYSCTLS)


def configure_host(port: PortNet, vsw: VSwitchNet) -> None:
    assert port.host_netns
    prefixlen = ipaddress.IPv4Network(vsw.cidr, strict=False).prefixlen
    ip_batch(
        [
            f"addr add {port.ip}/{prefixlen} dev eth0",
            "link set dev eth0 up",
            f"route replace default via {vsw.gateway} dev eth0",
        ],
        netns=port.host_netns,
    )


def delete_host_netns(prefix: str, vpc_id: str, host: str) -> None:
    if netns_exists(host) and host_owned(prefix, vpc_id, host):
        # delete eth0 first: the veth pair goes at once, not when the namespace is reaped
        ip("link", "del", "dev", "eth0", netns=host, check=False)
        run(["ip", "netns", "delete", host], check=False)
