"""The console's instance detail page and its actions (issue 14) against a live emulator, over
plain HTTP: the fields and disks shown, another account's instance, Start/Stop/Reboot/Release
and their refusals."""

from __future__ import annotations

import re
import uuid

from alibabacloud_ecs20140526 import models as em

from ..api.test_instances_api import Lab
from ..conftest import LiveServer
from .test_console import Browser


def field(page: str, name: str) -> str:
    found = re.search(rf'data-field="{re.escape(name)}">(.*?)</td>', page)
    assert found is not None, page
    return re.sub(r"<[^>]+>", "", found.group(1))


def error_of(page: str) -> tuple[str, str]:
    code = re.search(r'class="error-code">([^<]+)<', page)
    message = re.search(r'class="error-message">([^<]+)<', page)
    assert code is not None, page
    assert message is not None, page
    return code.group(1), message.group(1)


def running(live: LiveServer, key: tuple[str, str], cidr: str) -> tuple[Lab, str]:
    """A lab in its own VPC and one Running instance named web in it."""
    lab = Lab(live, key, cidr)
    [instance_id] = lab.run(instance_name="web")
    assert lab.wait(instance_id, "Running") == "Running"
    return lab, instance_id


def moved(browser: Browser, lab: Lab, instance_id: str, action: str) -> str:
    """POST the action's form; after its redirect back, the status it reached, as the page shows it."""
    here = f"/console/instances/{instance_id}"
    answer = browser.post(f"{here}/{action}", {"csrf_token": browser.token})
    assert answer.status == 303, answer.text
    assert answer.headers["location"] == here
    lab.wait(instance_id, {"stop": "Stopped", "start": "Running"}[action])
    return field(browser.get(here).text, "status")


def test_detail_shows_the_instance_its_disks_interfaces_and_groups(
    live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    lab, instance_id = running(live, fresh_key, "10.63.0.0/16")
    attrs = lab.ecs.describe_instance_attribute(
        em.DescribeInstanceAttributeRequest(instance_id=instance_id)
    ).body
    disks = lab.ecs.describe_disks(
        em.DescribeDisksRequest(region_id="cn-hangzhou", instance_id=instance_id)
    ).body
    browser = Browser(live, fresh_key)
    listing = browser.get("/console/instances").text
    assert f'href="/console/instances/{instance_id}"' in listing
    page = browser.get(f"/console/instances/{instance_id}")
    assert page.status == 200
    assert field(page.text, "id") == instance_id
    assert field(page.text, "name") == "web"
    assert field(page.text, "status") == "Running"
    assert field(page.text, "type") == attrs.instance_type
    assert field(page.text, "size") == f"{attrs.cpu} vCPU / {attrs.memory / 1024:.1f} GiB"
    assert field(page.text, "zone") == attrs.zone_id
    assert field(page.text, "network") == f"{lab.vpc_id} / {lab.vswitch_id}"
    assert field(page.text, "private_ips") == attrs.vpc_attributes.private_ip_address.ip_address[0]
    assert field(page.text, "image") == lab.image_id
    assert field(page.text, "created") == attrs.creation_time
    shown_disks = set(re.findall(r'class="disk" data-id="([^"]+)"', page.text))
    assert shown_disks == {d.disk_id for d in disks.disks.disk}
    assert len(shown_disks) == 1  # the system disk
    interfaces = re.findall(r'class="interface" data-id="([^"]+)"', page.text)
    enis = lab.ecs.describe_network_interfaces(
        em.DescribeNetworkInterfacesRequest(region_id="cn-hangzhou", instance_id=instance_id)
    ).body.network_interface_sets.network_interface_set
    assert interfaces == [e.network_interface_id for e in enis]
    assert len(interfaces) == 1
    assert re.findall(r'class="group" data-id="([^"]+)"', page.text) == [lab.group_id]


def test_another_accounts_or_an_unknown_instance_is_a_404_with_the_api_error(
    live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    other_key = live.create_account(f"t-{uuid.uuid4().hex[:12]}")
    lab = Lab(live, fresh_key, "10.64.0.0/16")
    [instance_id] = lab.run(instance_name="mine")
    intruder = Browser(live, other_key)
    for target in (instance_id, "i-doesnotexist"):
        page = intruder.get(f"/console/instances/{target}")
        assert page.status == 404
        assert error_of(page.text)[0] == "InvalidInstanceId.NotFound"
        assert "mine" not in page.text
        stop = intruder.post(f"/console/instances/{target}/stop", {"csrf_token": intruder.token})
        assert stop.status == 404
        assert error_of(stop.text)[0] == "InvalidInstanceId.NotFound"
    assert lab.wait(instance_id, "Running") == "Running"  # untouched by the intruder's Stop


def test_stop_then_start_move_the_status_and_refusals_are_shown(
    live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    lab, instance_id = running(live, fresh_key, "10.65.0.0/16")
    browser = Browser(live, fresh_key)
    here = f"/console/instances/{instance_id}"
    assert browser.post(f"{here}/stop", {}).status == 403  # no CSRF token
    assert browser.post(f"{here}/stop", {"csrf_token": "wrong"}).status == 403
    assert lab.status(instance_id) == "Running"

    hibernate = browser.post(f"{here}/stop", {"csrf_token": browser.token, "hibernate": "yes"})
    assert hibernate.status >= 400
    assert "Hibernat" in error_of(hibernate.text)[1]
    assert field(hibernate.text, "status") == "Running"

    assert moved(browser, lab, instance_id, "stop") == "Stopped"

    refused = browser.post(f"{here}/reboot", {"csrf_token": browser.token})
    assert (refused.status, error_of(refused.text)[0]) == (403, "IncorrectInstanceStatus")
    assert field(refused.text, "status") == "Stopped"

    assert moved(browser, lab, instance_id, "start") == "Running"


def test_release_needs_the_confirm_box(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab, instance_id = running(live, fresh_key, "10.66.0.0/16")
    browser = Browser(live, fresh_key)
    here = f"/console/instances/{instance_id}"
    unconfirmed = browser.post(f"{here}/release", {"csrf_token": browser.token})
    assert unconfirmed.status == 400
    assert error_of(unconfirmed.text)[0] == "ConfirmationRequired"
    assert lab.status(instance_id) == "Running"
    released = browser.post(f"{here}/release", {"csrf_token": browser.token, "confirm": "yes"})
    assert released.status == 303
    assert released.headers["location"] == "/console/instances"
    listing = browser.get("/console/instances").text
    assert f'data-id="{instance_id}"' not in listing
    gone = browser.get(here)
    assert gone.status == 404
    assert error_of(gone.text)[0] == "InvalidInstanceId.NotFound"


def test_batch_start_and_stop_on_selected_rows(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab, web = running(live, fresh_key, "10.67.0.0/16")
    [db] = lab.run(instance_name="db")
    assert lab.wait(db, "Running") == "Running"
    browser = Browser(live, fresh_key)
    listing = browser.get("/console/instances").text
    found = re.findall(r'type="checkbox" name="(select\.\d+)" value="([^"]+)"', listing)
    boxes = {instance_id: name for name, instance_id in found}
    assert set(boxes) == {web, db}
    both = {boxes[web]: web, boxes[db]: db}
    assert browser.post("/console/instances/batch", {"action": "stop", **both}).status == 403
    assert lab.status(web) == "Running"

    stopped = browser.post(
        "/console/instances/batch", {"csrf_token": browser.token, "action": "stop", **both}
    )
    assert stopped.status == 303
    assert stopped.headers["location"] == "/console/instances"
    assert (lab.wait(web, "Stopped"), lab.wait(db, "Stopped")) == ("Stopped", "Stopped")

    started = browser.post(
        "/console/instances/batch", {"csrf_token": browser.token, "action": "start", boxes[web]: web}
    )
    assert started.status == 303
    assert lab.wait(web, "Running") == "Running"
    assert lab.status(db) == "Stopped"  # not selected

    # all or nothing: web is Running, so starting both is refused and db stays Stopped
    refused = browser.post(
        "/console/instances/batch", {"csrf_token": browser.token, "action": "start", **both}
    )
    assert (refused.status, error_of(refused.text)[0]) == (403, "IncorrectInstanceStatus")
    assert set(re.findall(r'class="instance" data-id="([^"]+)"', refused.text)) == {web, db}
    assert lab.status(db) == "Stopped"

    nothing = browser.post("/console/instances/batch", {"csrf_token": browser.token, "action": "stop"})
    assert (nothing.status, error_of(nothing.text)[0]) == (400, "NoInstanceSelected")
