"""The console instance page's actions and tabs (issue 14) against a live emulator, over plain
HTTP, each checked through the API: change type, attach/detach a disk, replace the system disk,
create an image, rename and reset the password, batch Reboot/Release; the console output,
events and monitoring tabs; and the status badges that poll while a status is transitional."""

from __future__ import annotations

import base64
import html
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em

from ..api.test_disks_api import wait_disk
from ..api.test_fresh_server_images import launch_while_building
from ..api.test_instances_api import TYPE, Lab
from ..conftest import ROOT_KEY_ID, ROOT_SECRET, LiveServer, start_server, stop_server
from .test_console import Browser
from .test_console_instances import error_of, field, running

REGION = "cn-hangzhou"
POLL = 'hx-trigger="every 2s"'


def act(browser: Browser, instance_id: str, action: str, **form: str) -> Any:
    return browser.post(f"/console/instances/{instance_id}/{action}", {"csrf_token": browser.token, **form})


def stopped(live: LiveServer, key: tuple[str, str], cidr: str) -> tuple[Lab, str]:
    lab, instance_id = running(live, key, cidr)
    lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
    assert lab.wait(instance_id, "Stopped") == "Stopped"
    return lab, instance_id


def disks_of(lab: Lab, instance_id: str) -> list[Any]:
    return list(
        lab.ecs.describe_disks(
            em.DescribeDisksRequest(region_id=REGION, instance_id=instance_id)
        ).body.disks.disk
    )


def test_change_type_needs_a_stopped_instance(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab, instance_id = running(live, fresh_key, "10.76.0.0/16")
    browser = Browser(live, fresh_key)
    page = browser.get(f"/console/instances/{instance_id}").text
    assert 'id="change-type"' in page
    target = "ecs.g7.xlarge"
    assert f'<option value="{target}">' in page
    refused = act(browser, instance_id, "resize", InstanceType=target)
    assert refused.status == 403, refused.text
    assert error_of(refused.text)[0] == "IncorrectInstanceStatus"
    assert field(refused.text, "type") == TYPE

    lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
    assert lab.wait(instance_id, "Stopped") == "Stopped"
    changed = act(browser, instance_id, "resize", InstanceType=target)
    assert changed.status == 303, changed.text
    assert changed.headers["location"] == f"/console/instances/{instance_id}"
    attrs = lab.ecs.describe_instance_attribute(
        em.DescribeInstanceAttributeRequest(instance_id=instance_id)
    ).body
    assert attrs.instance_type == target
    assert field(browser.get(f"/console/instances/{instance_id}").text, "type") == target


def test_attach_and_detach_a_data_disk(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab, instance_id = running(live, fresh_key, "10.77.0.0/16")
    zone = lab.ecs.describe_instance_attribute(
        em.DescribeInstanceAttributeRequest(instance_id=instance_id)
    ).body.zone_id
    disk_id = lab.ecs.create_disk(
        em.CreateDiskRequest(
            region_id=REGION, zone_id=zone, size=25, disk_category="cloud_essd", disk_name="extra"
        )
    ).body.disk_id
    assert wait_disk(lab, disk_id, "Available") == "Available"
    browser = Browser(live, fresh_key)
    here = f"/console/instances/{instance_id}"
    assert f'<option value="{disk_id}">' in browser.get(here).text

    attached = act(browser, instance_id, "attach", DiskId=disk_id)
    assert attached.status == 303, attached.text
    assert wait_disk(lab, disk_id, "In_use") == "In_use"
    page = browser.get(here).text
    assert disk_id in re.findall(r'class="disk" data-id="([^"]+)"', page)
    assert f'<option value="{disk_id}">' not in page  # no longer Available

    again = act(browser, instance_id, "attach", DiskId=disk_id)
    assert again.status >= 400
    assert error_of(again.text)[0].startswith("IncorrectDiskStatus")

    detached = act(browser, instance_id, "detach", DiskId=disk_id)
    assert detached.status == 303, detached.text
    assert wait_disk(lab, disk_id, "Available") == "Available"
    assert disk_id not in re.findall(r'class="disk" data-id="([^"]+)"', browser.get(here).text)
    system = next(d.disk_id for d in disks_of(lab, instance_id) if d.type == "system")
    refused = act(browser, instance_id, "detach", DiskId=system)
    assert refused.status >= 400
    assert error_of(refused.text)[0]  # the API's code for a system disk, shown


def test_create_image_names_the_new_image(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab, instance_id = stopped(live, fresh_key, "10.78.0.0/16")
    browser = Browser(live, fresh_key)
    answer = act(browser, instance_id, "image", ImageName="console-image")
    assert answer.status == 303, answer.text
    location = answer.headers["location"]
    image_id = location.split("image=", 1)[1]
    assert location == f"/console/instances/{instance_id}?image={image_id}"
    [image] = lab.ecs.describe_images(
        em.DescribeImagesRequest(region_id=REGION, image_id=image_id, status="Creating,Waiting,Available")
    ).body.images.image
    assert image.image_name == "console-image"
    assert f"Image {image_id} is being created." in browser.get(location).text
    duplicate = act(browser, instance_id, "image", ImageName="console-image")
    assert duplicate.status >= 400
    assert error_of(duplicate.text)[0]
    assert '<input name="ImageName" value="console-image" required>' in duplicate.text  # kept to fix


def test_replace_the_system_disk_with_a_confirmation(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab, instance_id = stopped(live, fresh_key, "10.79.0.0/16")
    browser = Browser(live, fresh_key)
    [before] = [d.disk_id for d in disks_of(lab, instance_id) if d.type == "system"]
    unconfirmed = act(browser, instance_id, "replace-disk", ImageId=lab.image_id)
    assert (unconfirmed.status, error_of(unconfirmed.text)[0]) == (400, "ConfirmationRequired")
    replaced = act(browser, instance_id, "replace-disk", ImageId=lab.image_id, confirm="yes")
    assert replaced.status == 303, replaced.text
    [after] = [d.disk_id for d in disks_of(lab, instance_id) if d.type == "system"]
    assert after != before


def test_rename_and_reset_the_password(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab, instance_id = running(live, fresh_key, "10.80.0.0/16")
    browser = Browser(live, fresh_key)
    renamed = act(browser, instance_id, "rename", InstanceName="renamed-web")
    assert renamed.status == 303, renamed.text
    attrs = lab.ecs.describe_instance_attribute(
        em.DescribeInstanceAttributeRequest(instance_id=instance_id)
    ).body
    assert attrs.instance_name == "renamed-web"
    assert field(browser.get(f"/console/instances/{instance_id}").text, "name") == "renamed-web"

    weak = act(browser, instance_id, "password", Password="Sh0rt!")
    assert weak.status == 400
    assert error_of(weak.text)[0].startswith("InvalidPassword")
    assert "Sh0rt!" not in weak.text
    reset = act(browser, instance_id, "password", Password="Console-Reset-42")
    assert reset.status == 303, reset.text


def test_batch_reboot_and_release(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab, web = running(live, fresh_key, "10.81.0.0/16")
    [db] = lab.run(instance_name="db")
    assert lab.wait(db, "Running") == "Running"
    browser = Browser(live, fresh_key)
    found = re.findall(
        r'type="checkbox" name="(select\.\d+)" value="([^"]+)"', browser.get("/console/instances").text
    )
    both = dict(found)
    rebooted = browser.post(
        "/console/instances/batch", {"csrf_token": browser.token, "action": "reboot", **both}
    )
    assert rebooted.status == 303, rebooted.text
    assert (lab.wait(web, "Running"), lab.wait(db, "Running")) == ("Running", "Running")

    form = {"csrf_token": browser.token, "action": "release", **both}
    unconfirmed = browser.post("/console/instances/batch", form)
    assert (unconfirmed.status, error_of(unconfirmed.text)[0]) == (400, "ConfirmationRequired")
    assert lab.status(web) == "Running"
    released = browser.post("/console/instances/batch", {**form, "confirm": "yes"})
    assert released.status == 303, released.text
    left = lab.ecs.describe_instances(em.DescribeInstancesRequest(region_id=REGION, vpc_id=lab.vpc_id)).body
    assert left.total_count == 0


def test_console_output_tab_shows_the_decoded_output(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab, instance_id = running(live, fresh_key, "10.82.0.0/16")
    browser = Browser(live, fresh_key)
    page = browser.get(f"/console/instances/{instance_id}/output")
    assert page.status == 200
    answer = lab.ecs.get_instance_console_output(
        em.GetInstanceConsoleOutputRequest(region_id=REGION, instance_id=instance_id)
    ).body
    text = base64.b64decode(answer.console_output).decode()
    shown = re.search(r'<pre id="console-output">(.*?)</pre>', page.text, re.DOTALL)
    assert shown is not None, page.text
    assert text.strip()
    assert html.unescape(shown.group(1)) == text
    assert 'aria-current="page"' in page.text
    intruder = Browser(live, live.create_account(f"t-{instance_id[-8:]}"))
    other = intruder.get(f"/console/instances/{instance_id}/output")
    assert (other.status, error_of(other.text)[0]) == (404, "InvalidInstanceId.NotFound")
    assert text not in other.text


def test_events_tab_lists_the_instances_system_events(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab, instance_id = running(live, fresh_key, "10.83.0.0/16")
    browser = Browser(live, fresh_key)
    empty = browser.get(f"/console/instances/{instance_id}/events")
    assert empty.status == 200
    assert re.findall(r'class="event" data-id="([^"]+)"', empty.text) == []
    not_before = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = lab.ecs.create_simulated_system_events(
        em.CreateSimulatedSystemEventsRequest(
            region_id=REGION,
            instance_id=[instance_id],
            event_type="SystemMaintenance.Reboot",
            not_before=not_before,
        )
    ).body.event_id_set.event_id
    page = browser.get(f"/console/instances/{instance_id}/events").text
    assert re.findall(r'class="event" data-id="([^"]+)"', page) == list(created)
    [event] = lab.ecs.describe_instance_history_events(
        em.DescribeInstanceHistoryEventsRequest(
            region_id=REGION, instance_id=instance_id, instance_event_cycle_status=["Scheduled"]
        )
    ).body.instance_system_event_set.instance_system_event_type
    assert field(page, "type") == event.event_type.name == "SystemMaintenance.Reboot"
    assert field(page, "status") == event.event_cycle_status.name


# ---- a server of its own that samples every second, for the monitoring tab ------------------


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("console-monitoring"),
        None,
        "sqlite",
        ["--throttle-rate", "0", "--monitor-interval", "1"],
    )
    yield server
    stop_server(server)


def test_monitoring_tab_draws_the_samples(sampled: LiveServer) -> None:
    key = sampled.create_account("console-monitoring")
    lab, instance_id = running(sampled, key, "10.84.0.0/16")
    browser = Browser(sampled, key)
    here = f"/console/instances/{instance_id}/monitoring"
    deadline = time.monotonic() + 30
    while (samples := int(re.findall(r'data-samples="(\d+)"', page := browser.get(here).text)[0])) == 0:
        assert time.monotonic() < deadline, "no sample in 30 s"
        time.sleep(0.5)
    assert samples >= 1
    lines = dict(re.findall(r'data-series="([^"]+)"[^>]* points="([^"]*)"', page))
    assert set(lines) == {"CPU", "in", "out", "read", "write"}
    assert all(len(points.split()) == samples for points in lines.values())
    start = datetime.now(UTC) - timedelta(hours=1, minutes=1)
    end = datetime.now(UTC) + timedelta(minutes=1)
    api = lab.ecs.describe_instance_monitor_data(
        em.DescribeInstanceMonitorDataRequest(
            instance_id=instance_id,
            start_time=start.strftime("%Y-%m-%dT%H:%M:00Z"),
            end_time=end.strftime("%Y-%m-%dT%H:%M:00Z"),
            period=60,
        )
    ).body.monitor_data.instance_monitor_data
    assert len(api) >= samples
    assert any(p.cpu for p in api)  # the samples are real figures, drawn above the axis
    assert page.count("<svg") == 3


# ---- a fresh server whose system images take seconds to build: instances wait in Pending --------


BUILD_SECONDS = 12  # room for the looks while Pending, under a loaded CI machine too


@pytest.fixture
def slow_images(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path, None, "sqlite", ["--throttle-rate", "0", "--fake-image-build-seconds", str(BUILD_SECONDS)]
    )
    yield server
    stop_server(server)


def test_statuses_poll_while_transitional_and_stop_once_stable(slow_images: LiveServer) -> None:
    ecs, _, instance_id = launch_while_building(slow_images)  # Pending until its image is built
    browser = Browser(slow_images, (ROOT_KEY_ID, ROOT_SECRET))
    htmx = {"HX-Request": "true"}

    table = browser.get("/console/instances", headers=htmx)
    status = re.findall(r'class="instance" data-id="[^"]+">.*?class="badge badge-(\w+)"', table.text)
    assert status == ["pending"], "the image was built before the first look"
    assert table.text.startswith('<section id="instances"') and "<html" not in table.text
    assert POLL in table.text.split(">", 1)[0]  # the section asks for itself again
    assert 'hx-get="/console/instances?q=&amp;status=&amp;page=1"' in table.text
    badge = browser.get(f"/console/instances/{instance_id}", headers=htmx)
    assert badge.text.startswith('<span class="badge badge-pending" id="status"')
    assert POLL in badge.text
    assert "hx-refresh" not in badge.headers
    assert POLL in browser.get(f"/console/instances/{instance_id}").text

    deadline = time.monotonic() + 60
    while (
        ecs.describe_instance_attribute(
            em.DescribeInstanceAttributeRequest(instance_id=instance_id)
        ).body.status
        != "Running"
    ):
        assert time.monotonic() < deadline, "never Running"
        time.sleep(0.2)
    table = browser.get("/console/instances", headers=htmx)
    assert 'class="badge badge-running"' in table.text
    assert POLL not in table.text
    badge = browser.get(f"/console/instances/{instance_id}", headers=htmx)
    assert badge.text.startswith('<span class="badge badge-running" id="status"')
    assert POLL not in badge.text
    assert badge.headers["hx-refresh"] == "true"  # the page reloads to show the new status everywhere
    assert POLL not in browser.get(f"/console/instances/{instance_id}").text


def test_a_polled_badge_of_a_released_instance_reloads_the_page(
    live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    lab, instance_id = running(live, fresh_key, "10.88.0.0/16")
    browser = Browser(live, fresh_key)
    lab.ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))
    gone = browser.get(f"/console/instances/{instance_id}", headers={"HX-Request": "true"})
    assert error_of(gone.text)[0] == "InvalidInstanceId.NotFound"
    assert gone.headers["hx-refresh"] == "true"  # htmx swaps no error in: the reload shows it
