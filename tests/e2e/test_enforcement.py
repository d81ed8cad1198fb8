"""Security groups enforced by the kernel, driven through the official SDK against a live
server with the linux network driver: test hosts are network namespaces plugged into a vSwitch."""

from __future__ import annotations

import subprocess

import pytest
from alibabacloud_ecs20140526 import models as em

from ..api.test_vpc_api import REGION
from ..conftest import LiveServer
from .conftest import make_net
from .netprobe import eventually, http_get, listening, reachable

pytestmark = pytest.mark.net


def authorize(net, group: str, **fields: str) -> None:  # type: ignore[no-untyped-def]
    net.ecs.authorize_security_group(
        em.AuthorizeSecurityGroupRequest(region_id=REGION, security_group_id=group, **fields)
    )


def test_rules_inner_access_priority_and_revoke(real: LiveServer) -> None:
    net = make_net(real, "10.50.0.0/16")
    group = net.group()
    client = net.host("10.50.1.10", group)
    server = net.host("10.50.1.11", group)
    with listening(server, "tcp", 8080), listening(server, "tcp", 8081), listening(server, "udp", 5353):
        # A normal group lets its members talk to each other when no rule decides.
        assert eventually(lambda: reachable(client, "tcp", "10.50.1.11", 8080))
        net.ecs.modify_security_group_policy(
            em.ModifySecurityGroupPolicyRequest(
                region_id=REGION, security_group_id=group, inner_access_policy="Drop"
            )
        )
        assert eventually(lambda: not reachable(client, "tcp", "10.50.1.11", 8080))

        authorize(net, group, ip_protocol="tcp", port_range="8080/8080", source_cidr_ip="10.50.1.10/32")
        assert eventually(lambda: reachable(client, "tcp", "10.50.1.11", 8080))
        assert not reachable(client, "udp", "10.50.1.11", 5353)
        assert not reachable(server, "tcp", "10.50.1.10", 8080)  # replies pass, new flows back do not

        # The VPC router (where `nubes ssh` connects from) is held to the same ingress rules.
        router = f"{real.netns_prefix}-{net.vpc_id}"
        assert not reachable(router, "tcp", "10.50.1.11", 8081)
        authorize(net, group, ip_protocol="tcp", port_range="8081/8081", source_cidr_ip="10.50.1.253/32")
        assert eventually(lambda: reachable(router, "tcp", "10.50.1.11", 8081))
        assert not reachable(client, "tcp", "10.50.1.11", 8081)

        authorize(net, group, ip_protocol="udp", port_range="5353/5353", source_cidr_ip="10.50.1.0/24")
        assert eventually(lambda: reachable(client, "udp", "10.50.1.11", 5353))

        # Priority first; at equal priority drop wins over accept.
        authorize(
            net,
            group,
            ip_protocol="all",
            port_range="-1/-1",
            source_cidr_ip="10.50.1.10/32",
            policy="drop",
            priority="1",
        )
        assert eventually(lambda: not reachable(client, "tcp", "10.50.1.11", 8080))
        assert not reachable(client, "udp", "10.50.1.11", 5353)
        net.ecs.revoke_security_group(
            em.RevokeSecurityGroupRequest(
                region_id=REGION,
                security_group_id=group,
                ip_protocol="all",
                port_range="-1/-1",
                source_cidr_ip="10.50.1.10/32",
                policy="drop",
                priority="1",
            )
        )
        assert eventually(lambda: reachable(client, "tcp", "10.50.1.11", 8080))

        # Revoking the accept closes the port for new connections.
        net.ecs.revoke_security_group(
            em.RevokeSecurityGroupRequest(
                region_id=REGION,
                security_group_id=group,
                ip_protocol="tcp",
                port_range="8080/8080",
                source_cidr_ip="10.50.1.10/32",
            )
        )
        assert eventually(lambda: not reachable(client, "tcp", "10.50.1.11", 8080))


def test_group_to_group_and_egress(real: LiveServer) -> None:
    net = make_net(real, "10.51.0.0/16")
    web, db = net.group(), net.group()
    web_host = net.host("10.51.1.10", web)
    other_host = net.host("10.51.1.12", web)
    db_host = net.host("10.51.1.20", db)
    with listening(db_host, "tcp", 5432):
        assert not reachable(web_host, "tcp", "10.51.1.20", 5432)  # different groups, no rule
        authorize(net, db, ip_protocol="tcp", port_range="5432/5432", source_group_id=web)
        assert eventually(lambda: reachable(web_host, "tcp", "10.51.1.20", 5432))
        assert reachable(other_host, "tcp", "10.51.1.20", 5432)
        # An egress drop on the web group stops its members' new connections out.
        net.ecs.authorize_security_group_egress(
            em.AuthorizeSecurityGroupEgressRequest(
                region_id=REGION,
                security_group_id=web,
                ip_protocol="tcp",
                port_range="5432/5432",
                dest_cidr_ip="10.51.1.20/32",
                policy="drop",
            )
        )
        assert eventually(lambda: not reachable(web_host, "tcp", "10.51.1.20", 5432))


def test_enterprise_group_isolates_members(real: LiveServer) -> None:
    net = make_net(real, "10.52.0.0/16")
    group = net.group("enterprise")
    first, second = net.host("10.52.1.10", group), net.host("10.52.1.11", group)
    with listening(second, "tcp", 22):
        assert not eventually(lambda: reachable(first, "tcp", "10.52.1.11", 22), timeout=2)
        authorize(net, group, ip_protocol="tcp", port_range="22/22", source_cidr_ip="10.52.1.10/32")
        assert eventually(lambda: reachable(first, "tcp", "10.52.1.11", 22))


def test_no_path_between_vpcs_or_to_the_host(real: LiveServer) -> None:
    one, two = make_net(real, "10.53.0.0/16"), make_net(real, "10.54.0.0/16")
    open_one, open_two = one.group(), two.group()
    for net, group in ((one, open_one), (two, open_two)):
        authorize(net, group, ip_protocol="all", port_range="-1/-1", source_cidr_ip="0.0.0.0/0")
    a = one.host("10.53.1.10", open_one)
    b = two.host("10.54.1.10", open_two)
    host_listener = subprocess.Popen(  # a service in the host's own namespace
        [
            "python3",
            "-c",
            (
                "import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
                "s.bind(('0.0.0.0',18999));s.listen();import time;time.sleep(120)"
            ),
        ]
    )
    try:
        with listening(b, "tcp", 9000):
            assert not reachable(a, "tcp", "10.54.1.10", 9000)
            assert not reachable(a, "tcp", "10.53.1.253", 18999)  # the gateway is not the host
            assert not reachable(a, "tcp", "127.0.0.1", 18999)
            host_ips = subprocess.run(
                ["hostname", "-I"], check=False, capture_output=True, text=True
            ).stdout.split()
            for address in host_ips[:3]:
                assert not reachable(a, "tcp", address, 18999), address
    finally:
        host_listener.kill()
        host_listener.wait()


def test_metadata_service_answers_each_host_with_its_own_data(real: LiveServer) -> None:
    net = make_net(real, "10.55.0.0/16")
    group = net.group()
    first, second = net.host("10.55.1.10", group), net.host("10.55.1.11", group)
    url = "http://100.100.100.200/latest/meta-data/private-ipv4"
    assert eventually(lambda: http_get(first, url) == "10.55.1.10")
    assert http_get(second, url) == "10.55.1.11"
    assert http_get(first, "http://100.100.100.200/latest/meta-data/vpc-id") == net.vpc_id
    assert "private-ipv4" in http_get(first, "http://100.100.100.200/latest/meta-data/").split()
