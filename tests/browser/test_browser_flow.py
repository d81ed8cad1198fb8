"""A new user's first hour in the console, in Chromium against the emulator: sign in, make a
VPC, a vSwitch, a security group with a rule and a key pair, launch two instances with the
wizard and watch them reach Running without reloading, stop one, attach a disk to it, release
both, sign out. Every step is checked through the API too (the official SDK), and the main
pages are photographed for the README (NUBES_SCREENSHOTS=1)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from alibabacloud_ecs20140526 import models as em
from alibabacloud_vpc20160428 import models as vm
from playwright.sync_api import Page, expect

from ..browser_support import screenshot, sign_in
from ..conftest import LiveServer, tea_ecs, tea_vpc

pytestmark = pytest.mark.browser

REGION = "cn-hangzhou"
LONG = 60_000  # ms: statuses the emulator moves through in seconds, with room for a loaded CI


def created_id(page: Page, row_class: str, name: str) -> str:
    """The data-id of the listed row whose text names `name`."""
    row = page.locator(f"tr.{row_class}", has_text=name)
    expect(row).to_have_count(1)
    found = row.get_attribute("data-id")
    assert found, row_class
    return found


def test_first_hour_in_the_console(page: Page, console_server: LiveServer, tmp_path: Path) -> None:
    key = console_server.create_account(f"flow-{uuid.uuid4().hex[:10]}")
    ecs, vpc_api = tea_ecs(console_server, key), tea_vpc(console_server, key)
    base = f"http://{console_server.endpoint}/console"
    sign_in(page, console_server, key)
    screenshot(page, "overview", tmp_path)

    # a VPC and its vSwitch
    page.click("nav >> text=VPCs")
    page.fill("#create-vpc input[name=VpcName]", "shop")
    page.fill("#create-vpc input[name=CidrBlock]", "10.20.0.0/16")
    page.click("#create-vpc button[type=submit]")
    vpc_id = created_id(page, "vpc", "shop")
    assert (
        vpc_api.describe_vpcs(vm.DescribeVpcsRequest(region_id=REGION, vpc_id=vpc_id)).body.total_count == 1
    )
    page.click(f"tr.vpc[data-id='{vpc_id}'] a")
    zone = page.locator("#create-vswitch select[name=ZoneId] option").first.get_attribute("value")
    assert zone
    page.fill("#create-vswitch input[name=VSwitchName]", "shop-a")
    page.fill("#create-vswitch input[name=CidrBlock]", "10.20.1.0/24")
    page.click("#create-vswitch button[type=submit]")
    vswitch_id = created_id(page, "vswitch", "shop-a")

    # a security group with an SSH rule
    page.click("nav >> text=Security groups")
    page.fill("#create-security-group input[name=SecurityGroupName]", "web")
    page.select_option("#create-security-group select[name=VpcId]", vpc_id)
    page.click("#create-security-group button[type=submit]")
    group_id = created_id(page, "security-group", "web")
    page.click(f"tr.security-group[data-id='{group_id}'] a")
    page.select_option("#add-ingress-rule select[name=IpProtocol]", "tcp")
    page.fill("#add-ingress-rule input[name=PortRange]", "22/22")
    page.fill("#add-ingress-rule input[name=SourceCidrIp]", "0.0.0.0/0")
    page.click("#add-ingress-rule button[type=submit]")
    expect(page.locator("#ingress-rules tr.rule")).to_have_count(1)
    screenshot(page, "security-group", tmp_path)
    rules = ecs.describe_security_group_attribute(
        em.DescribeSecurityGroupAttributeRequest(
            region_id=REGION, security_group_id=group_id, direction="ingress"
        )
    ).body.permissions.permission
    assert [(r.ip_protocol.lower(), r.port_range, r.source_cidr_ip) for r in rules] == [
        ("tcp", "22/22", "0.0.0.0/0")
    ]

    # a key pair: the private key is shown once
    page.click("nav >> text=Key pairs")
    page.fill("#create-key-pair input[name=KeyPairName]", "laptop")
    page.click("#create-key-pair button[value=show]")
    expect(page.locator("#private-key")).to_contain_text("PRIVATE KEY")
    page.click("nav >> text=Key pairs")
    expect(page.locator("#private-key")).to_have_count(0)  # never again

    # two instances from the wizard, watched to Running without a reload
    page.click("nav >> text=Instances")
    page.click("#create-link")
    page.select_option("#VSwitchId", vswitch_id)
    page.locator(f"#groups input[value='{group_id}']").check()  # the vSwitch's VPC's groups, loaded by htmx
    page.select_option("#KeyPairName", "laptop")
    page.fill("#InstanceName", "web")
    page.fill("#Amount", "2")
    screenshot(page, "create-wizard", tmp_path)
    page.click("#create-instance button[type=submit]")
    expect(page).to_have_url(f"{base}/instances")
    page.evaluate("window.notReloaded = true")
    rows = page.locator("tr.instance")
    expect(rows).to_have_count(2)
    expect(page.locator("tr.instance .badge", has_text="Running")).to_have_count(2, timeout=LONG)
    assert page.evaluate("window.notReloaded") is True  # htmx swapped the table in place
    screenshot(page, "instances", tmp_path)
    ids = [rows.nth(n).get_attribute("data-id") or "" for n in range(2)]
    described = ecs.describe_instances(
        em.DescribeInstancesRequest(region_id=REGION, instance_ids=json.dumps(ids))
    ).body.instances.instance
    assert {(i.status, i.vpc_attributes.v_switch_id, i.key_pair_name) for i in described} == {
        ("Running", vswitch_id, "laptop")
    }
    assert all(i.security_group_ids.security_group_id == [group_id] for i in described)

    # stop one from the list
    stopped, other = ids
    page.check(f"#select-{stopped}")
    page.click("#batch button[value=stop]")
    expect(page.locator(f"tr.instance[data-id='{stopped}'] .badge")).to_have_text("Stopped", timeout=LONG)
    expect(page.locator(f"tr.instance[data-id='{other}'] .badge")).to_have_text("Running")

    # a data disk, attached to the stopped instance
    page.click("nav >> text=Disks")
    page.select_option("#create-disk select[name=ZoneId]", zone)
    page.fill("#create-disk input[name=Size]", "40")
    page.fill("#create-disk input[name=DiskName]", "data")
    page.click("#create-disk button[type=submit]")
    expect(page).to_have_url(re.compile(rf"{re.escape(base)}/disks/d-"))
    disk_id = page.url.rsplit("/", 1)[1]
    page.select_option("#attach-disk select[name=InstanceId]", stopped)
    page.click("#attach-disk button[type=submit]")
    expect(page.locator("#disk-state .badge")).to_have_text("In_use", timeout=LONG)
    disk = ecs.describe_disks(
        em.DescribeDisksRequest(region_id=REGION, disk_ids=f'["{disk_id}"]')
    ).body.disks.disk[0]
    assert (disk.status, disk.instance_id, disk.size) == ("In_use", stopped, 40)
    page.goto(f"{base}/instances/{stopped}")
    expect(page.locator(f"#disks tr.disk[data-id='{disk_id}']")).to_have_count(1)
    screenshot(page, "instance", tmp_path)

    # release both from the list, then sign out
    page.click("nav >> text=Instances")
    page.check(f"#select-{stopped}")
    page.check(f"#select-{other}")
    page.check("#batch input[name=confirm]")
    page.click("#batch button[value=release]")
    expect(page.locator("tr.instance")).to_have_count(0, timeout=LONG)
    left = ecs.describe_instances(em.DescribeInstancesRequest(region_id=REGION)).body.total_count
    assert left == 0
    page.click("text=Sign out")
    expect(page).to_have_url(f"{base}/signin")
