"""The console's instance create wizard (issue 14) against a live emulator, over plain HTTP: what
it offers (from the region's images, types, vSwitches, groups, key pairs), a launch of two
instances checked through the API, one instance going to its page, and a refusal that keeps
the values given (not the password) and shows the API's code."""

from __future__ import annotations

import base64
import html
import re

from alibabacloud_ecs20140526 import models as em

from ..api.test_instances_api import Lab
from ..api.test_instances_api import error_of as api_error
from ..conftest import LiveServer
from .test_console import Browser
from .test_console_instances import error_of

REGION = "cn-hangzhou"
SMALL = "ecs.t5-lc1m1.small"


def options(page: str, name: str) -> dict[str, str]:
    """The options of a select: value -> label."""
    found = re.search(rf'<select name="{re.escape(name)}".*?</select>', page, re.DOTALL)
    assert found is not None, page
    return {
        v: html.unescape(label)
        for v, label in re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)<', found.group(0))
    }


def selected(page: str, name: str) -> str:
    found = re.search(rf'<select name="{re.escape(name)}".*?</select>', page, re.DOTALL)
    assert found is not None, page
    chosen = re.findall(r'<option value="([^"]*)" selected>', found.group(0))
    return chosen[0] if chosen else ""


def group_boxes(page: str) -> dict[str, tuple[str, bool]]:
    """Security group ID -> (its checkbox's name, whether it is ticked)."""
    boxes = re.findall(
        r'<input type="checkbox" name="(SecurityGroupIds\.\d+)" value="([^"]+)"( checked)?>', page
    )
    return {group: (name, bool(ticked)) for name, group, ticked in boxes}


def input_value(page: str, name: str) -> str:
    found = re.search(rf'<input[^>]* name="{re.escape(name)}"[^>]* value="([^"]*)"', page)
    assert found is not None, page
    return html.unescape(found.group(1))


def launch_form(browser: Browser, lab: Lab, *groups: str, **fields: str) -> dict[str, str]:
    """The wizard's form for the lab's image and vSwitch, the given groups ticked, and `fields`."""
    boxes = group_boxes(browser.get("/console/instances/new").text)
    return {
        "csrf_token": browser.token,
        "ImageId": lab.image_id,
        "VSwitchId": lab.vswitch_id,
        **{boxes[g][0]: g for g in groups},
        **fields,
    }


def setup(live: LiveServer, key: tuple[str, str], cidr: str) -> tuple[Lab, str, str]:
    """A lab with a second security group in its VPC and a key pair: (lab, group 2, key pair)."""
    lab = Lab(live, key, cidr)
    second = lab.ecs.create_security_group(
        em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=lab.vpc_id, security_group_name="second")
    ).body.security_group_id
    key_pair = lab.ecs.create_key_pair(
        em.CreateKeyPairRequest(region_id=REGION, key_pair_name="wizard-key")
    ).body
    return lab, second, key_pair.key_pair_name


def test_the_wizard_offers_the_regions_resources(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab, second, key_pair = setup(live, fresh_key, "10.72.0.0/16")
    browser = Browser(live, fresh_key)
    page = browser.get("/console/instances/new")
    assert page.status == 200
    assert 'id="create-instance"' in page.text
    assert 'href="/console/instances/new"' in browser.get("/console/instances").text
    images = lab.ecs.describe_images(
        em.DescribeImagesRequest(region_id=REGION, page_size=100)
    ).body.images.image
    assert set(options(page.text, "ImageId")) == {i.image_id for i in images}
    small = lab.ecs.describe_instance_types(
        em.DescribeInstanceTypesRequest(instance_types=[SMALL])
    ).body.instance_types.instance_type[0]
    assert options(page.text, "InstanceType")[SMALL] == (
        f"{SMALL} · {small.cpu_core_count} vCPU · {small.memory_size:g} GiB"
    )
    vswitches = options(page.text, "VSwitchId")
    assert lab.vswitch_id in vswitches
    assert lab.vpc_id in vswitches[lab.vswitch_id]
    assert set(group_boxes(page.text)) == {lab.group_id, second}
    assert key_pair in options(page.text, "KeyPairName")
    assert input_value(page.text, "Amount") == "1"


def test_the_wizard_launches_two_instances_with_tags_a_data_disk_and_user_data(
    live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    lab, second, key_pair = setup(live, fresh_key, "10.73.0.0/16")
    browser = Browser(live, fresh_key)
    script = "#!/bin/sh\r\necho launched > /tmp/wizard\r\n"
    fields = {
        "InstanceType": SMALL,
        "KeyPairName": key_pair,
        "SystemDisk.Category": "cloud_essd",
        "SystemDisk.Size": "",
        "DataDisk.1.Category": "cloud_essd",
        "DataDisk.1.Size": "30",
        "DataDisk.2.Category": "cloud_ssd",
        "DataDisk.2.Size": "",  # a row left empty: no disk
        "InstanceName": "wizard-web",
        "Amount": "2",
        "Tag.1.Key": "env",
        "Tag.1.Value": "prod",
        "Tag.2.Key": "",
        "Tag.2.Value": "ignored",
        "Tag.3.Key": "team",
        "Tag.3.Value": "web",
        "UserData": script,
    }
    answer = browser.post("/console/instances/new", launch_form(browser, lab, lab.group_id, second, **fields))
    assert answer.status == 303, answer.text
    assert answer.headers["location"] == "/console/instances"
    found = lab.ecs.describe_instances(
        em.DescribeInstancesRequest(region_id=REGION, vpc_id=lab.vpc_id, page_size=10)
    ).body.instances.instance
    assert len(found) == 2
    for instance in found:
        assert instance.instance_name == "wizard-web"
        assert instance.instance_type == SMALL
        assert instance.vpc_attributes.v_switch_id == lab.vswitch_id
        assert set(instance.security_group_ids.security_group_id) == {lab.group_id, second}
        assert instance.key_pair_name == key_pair
        assert {(t.tag_key, t.tag_value) for t in instance.tags.tag} >= {("env", "prod"), ("team", "web")}
        assert "ignored" not in {t.tag_value for t in instance.tags.tag}
        disks = lab.ecs.describe_disks(
            em.DescribeDisksRequest(region_id=REGION, instance_id=instance.instance_id)
        ).body.disks.disk
        assert sorted((d.type, d.category) for d in disks) == [
            ("data", "cloud_essd"),
            ("system", "cloud_essd"),
        ]
        assert next(d.size for d in disks if d.type == "data") == 30
        user_data = lab.ecs.describe_user_data(
            em.DescribeUserDataRequest(region_id=REGION, instance_id=instance.instance_id)
        ).body.user_data
        assert base64.b64decode(user_data).decode() == script.replace("\r\n", "\n")
    listing = browser.get("/console/instances").text
    assert {i.instance_id for i in found} <= set(re.findall(r'class="instance" data-id="([^"]+)"', listing))


def test_one_instance_goes_to_its_page(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab, _, _ = setup(live, fresh_key, "10.74.0.0/16")
    browser = Browser(live, fresh_key)
    form = launch_form(browser, lab, lab.group_id, InstanceType=SMALL, Password="Wizard-Pass-123", Amount="1")
    answer = browser.post("/console/instances/new", form)
    assert answer.status == 303, answer.text
    [instance] = lab.ecs.describe_instances(
        em.DescribeInstancesRequest(region_id=REGION, vpc_id=lab.vpc_id)
    ).body.instances.instance
    assert answer.headers["location"] == f"/console/instances/{instance.instance_id}"
    assert browser.get(answer.headers["location"]).status == 200


def test_a_refusal_keeps_the_values_but_the_password_and_shows_the_code(
    live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    lab, second, key_pair = setup(live, fresh_key, "10.75.0.0/16")
    browser = Browser(live, fresh_key)
    fields = {
        "InstanceType": "ecs.nosuch.type",
        "KeyPairName": key_pair,
        "Password": "Secret-Pass-987",
        "InstanceName": "kept <name>",
        "Amount": "3",
        "DataDisk.1.Category": "cloud_ssd",
        "DataDisk.1.Size": "40",
        "Tag.1.Key": "env",
        "Tag.1.Value": "prod",
        "UserData": "#!/bin/sh\necho kept\n",
    }
    refused = browser.post("/console/instances/new", launch_form(browser, lab, second, **fields))
    direct = api_error(lambda: lab.run(instance_type="ecs.nosuch.type"))  # the API's own refusal
    assert (refused.status, error_of(refused.text)[0]) == (direct.status_code, direct.code)
    page = refused.text
    assert 'id="create-instance"' in page
    assert "Secret-Pass-987" not in page
    assert input_value(page, "InstanceName") == "kept <name>"
    assert input_value(page, "Amount") == "3"
    assert input_value(page, "DataDisk.1.Size") == "40"
    assert selected(page, "DataDisk.1.Category") == "cloud_ssd"
    assert (input_value(page, "Tag.1.Key"), input_value(page, "Tag.1.Value")) == ("env", "prod")
    assert (selected(page, "VSwitchId"), selected(page, "ImageId"), selected(page, "KeyPairName")) == (
        lab.vswitch_id,
        lab.image_id,
        key_pair,
    )
    assert {g: ticked for g, (_, ticked) in group_boxes(page).items()} == {lab.group_id: False, second: True}
    assert "#!/bin/sh\necho kept\n</textarea>" in page
    total = lab.ecs.describe_instances(em.DescribeInstancesRequest(region_id=REGION, vpc_id=lab.vpc_id)).body
    assert total.total_count == 0


def test_the_vswitch_chosen_narrows_the_security_groups_to_its_vpc(
    live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    lab, second, _ = setup(live, fresh_key, "10.86.0.0/16")
    other = Lab(live, fresh_key, "10.87.0.0/16")  # another VPC, with a group of its own
    browser = Browser(live, fresh_key)
    everything = group_boxes(browser.get("/console/instances/new").text)
    assert set(everything) == {lab.group_id, second, other.group_id}
    htmx = {"HX-Request": "true"}
    narrowed = browser.get(f"/console/instances/new/groups?VSwitchId={lab.vswitch_id}", headers=htmx)
    assert narrowed.status == 200
    assert narrowed.text.startswith('<div id="groups"')
    assert set(group_boxes(narrowed.text)) == {lab.group_id, second}
    theirs = browser.get(f"/console/instances/new/groups?VSwitchId={other.vswitch_id}", headers=htmx)
    assert set(group_boxes(theirs.text)) == {other.group_id}
    assert (
        group_boxes(browser.get("/console/instances/new/groups?VSwitchId=vsw-unknown", headers=htmx).text)
        == {}
    )
