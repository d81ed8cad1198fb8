"""The fake network driver: desired state in memory, rulesets recorded, no root."""

from __future__ import annotations

import pytest

from nubes.drivers.network import names
from nubes.drivers.network.base import (
    NetworkDriver,
    PortNet,
    SecurityGroupNet,
    SecurityRule,
    VpcNet,
    VSwitchNet,
)
from nubes.drivers.network.fake import FakeNetworkDriver
from nubes.drivers.network.nft import render_ruleset

VSW = VSwitchNet("vsw-1", "10.0.1.0/24", "10.0.1.253")
SSH = SecurityRule("sgr-1", "ingress", "tcp", 22, 22, "accept", 1, peer_cidr="0.0.0.0/0")


def vpc(vpc_id: str, *ports: PortNet, rules: tuple[SecurityRule, ...] = (SSH,)) -> VpcNet:
    return VpcNet(
        vpc_id, "10.0.0.0/16", (VSW,), ports, (SecurityGroupNet("sg-1", "normal", "accept", rules),)
    )


def port(port_id: str, ip: str) -> PortNet:
    return PortNet(port_id, "vsw-1", "00:16:3e:00:00:" + ip.rsplit(".", 1)[1].zfill(2)[-2:], ip, ("sg-1",))


def test_is_a_network_driver_without_real_isolation() -> None:
    driver = FakeNetworkDriver()
    assert isinstance(driver, NetworkDriver)
    assert driver.capabilities.real_isolation is False
    assert driver.open_metadata_socket("vpc-1") is None
    assert driver.tap_name("eni-1") == names.tap_name("eni-1")
    assert len(driver.tap_name("eni-" + "x" * 40)) <= 15
    assert driver.netns_name("vpc-1") == "nubes-vpc-1"
    assert FakeNetworkDriver(prefix="p").netns_name("vpc-1") == "p-vpc-1"


def test_sync_records_state_and_rulesets() -> None:
    driver = FakeNetworkDriver()
    v1 = vpc("vpc-1", port("eni-a", "10.0.1.10"), port("eni-b", "10.0.1.11"))
    v2 = vpc("vpc-2", port("eni-c", "10.0.1.10"))
    driver.sync([v1, v2])
    actual = driver.actual()
    assert actual.vpcs == {"vpc-1": {"vsw-1"}, "vpc-2": {"vsw-1"}}
    assert actual.ports == {"eni-a": "vpc-1", "eni-b": "vpc-1", "eni-c": "vpc-2"}
    text = driver.ruleset("vpc-1")
    assert text == render_ruleset(v1, tap_name=names.tap_name, veth_name=names.veth_name)
    assert "tcp dport 22 accept" in text
    assert driver.applied == 2

    driver.sync([v1, v2])  # idempotent: nothing would be re-applied
    assert driver.applied == 2

    revoked = vpc("vpc-1", port("eni-a", "10.0.1.10"), port("eni-b", "10.0.1.11"), rules=())
    driver.sync_vpc(revoked)
    assert "tcp dport 22" not in (driver.ruleset("vpc-1") or "")
    assert driver.applied == 3
    assert driver.vpcs["vpc-2"] == v2  # sync_vpc leaves the others alone


def test_sync_removes_what_is_not_desired_and_remove_is_idempotent() -> None:
    driver = FakeNetworkDriver()
    driver.sync([vpc("vpc-1", port("eni-a", "10.0.1.10")), vpc("vpc-2")])
    driver.sync([vpc("vpc-2")])
    assert driver.actual().vpcs == {"vpc-2": {"vsw-1"}}
    assert driver.ruleset("vpc-1") is None
    driver.remove_vpc("vpc-2")
    driver.remove_vpc("vpc-2")
    assert driver.actual().vpcs == {} and driver.actual().ports == {}


def test_invalid_desired_state_is_rejected_like_the_linux_driver() -> None:
    driver = FakeNetworkDriver()
    bad = VpcNet(
        "vpc-1", "10.0.0.0/16", (VSW,), (PortNet("eni-a", "vsw-9", "00:16:3e:00:00:01", "10.0.1.10", ()),)
    )
    with pytest.raises(ValueError):
        driver.sync([bad])
    with pytest.raises(ValueError):
        driver.sync_vpc(bad)
    assert driver.actual().vpcs == {}
