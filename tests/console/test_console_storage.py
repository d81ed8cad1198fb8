"""The console's storage and image pages (issue 14) against a live emulator, over plain HTTP: a
disk created, attached, detached, resized, snapshotted and deleted through the pages, with what
the API then says about it; snapshots' progress, rollback and disks made of them; automatic
snapshot policies; custom images made of a snapshot, shared, copied and deleted; refusals shown
with the API's code and status; another account's resources not found."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from alibabacloud_ecs20140526 import models as em

from ..api.test_instances_api import Lab
from ..api.test_instances_api import error_of as api_error_of
from ..conftest import LiveServer
from .test_console import Browser
from .test_console_instances import error_of, field, running

REGION = "cn-hangzhou"


def api_disk(lab: Lab, disk_id: str) -> Any:
    [disk] = lab.ecs.describe_disks(
        em.DescribeDisksRequest(region_id=REGION, disk_ids=json.dumps([disk_id]))
    ).body.disks.disk
    return disk


def api_snapshot_status(lab: Lab, snapshot_id: str) -> str:
    [snapshot] = lab.ecs.describe_snapshots(
        em.DescribeSnapshotsRequest(region_id=REGION, snapshot_ids=json.dumps([snapshot_id]))
    ).body.snapshots.snapshot
    return str(snapshot.status)


def wait_disk(lab: Lab, disk_id: str, status: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    disk = api_disk(lab, disk_id)
    while disk.status != status and time.monotonic() < deadline:
        time.sleep(0.1)
        disk = api_disk(lab, disk_id)
    return disk


def submit(browser: Browser, path: str, form: dict[str, str]) -> str:
    """POST a form that the API accepts: where its redirect (303) leads."""
    answer = browser.post(path, {"csrf_token": browser.token, **form})
    assert answer.status == 303, answer.text
    return str(answer.headers["location"])


def settled(browser: Browser, path: str, timeout: float = 30) -> str:
    """The disk's status once it stops moving, as its page shows it; while it moves (Attaching,
    Detaching, ...) the page must be asking htmx to refresh it."""
    deadline = time.monotonic() + timeout
    while True:
        page = browser.get(path).text
        status = field(page, "status")
        busy = re.search(r'id="disk-state"[^>]*data-busy="(yes|no)"', page)
        assert busy is not None, page
        moving = status in ("Creating", "Attaching", "Detaching", "ReIniting")
        assert (busy.group(1) == "yes") == moving, (status, busy.group(1))
        if not moving or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def error_next_to(page: str, form_id: str) -> bool:
    """Whether the page shows its error inside the form `form_id` (before the form ends)."""
    return re.search(rf'id="{form_id}"[^>]*>(?:(?!</form>).)*class="error-code"', page, re.DOTALL) is not None


def row_ids(page: str, kind: str) -> list[str]:
    return re.findall(rf'<tr class="{kind}" data-id="([^"]+)"', page)


def snapshot_row(browser: Browser, snapshot_id: str) -> tuple[str, int, str]:
    """The snapshot's status and progress as the table htmx refreshes shows them, and whether the
    table still asks to be refreshed."""
    table = browser.get("/console/snapshots", headers={"HX-Request": "true"})
    assert table.status == 200
    assert table.text.lstrip().startswith("<section"), table.text  # the table alone
    row = re.search(
        rf'data-id="{snapshot_id}" data-status="([^"]+)".*?data-progress="(\d+)"', table.text, re.DOTALL
    )
    assert row is not None, table.text
    busy = re.search(r'data-busy="(yes|no)"', table.text)
    assert busy is not None
    return row.group(1), int(row.group(2)), busy.group(1)


def test_disk_through_the_pages(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab, instance_id = running(live, fresh_key, "10.70.0.0/16")
    zone = lab.ecs.describe_instance_attribute(
        em.DescribeInstanceAttributeRequest(instance_id=instance_id)
    ).body.zone_id
    browser = Browser(live, fresh_key)
    page = browser.get("/console/disks").text
    assert 'id="create-disk"' in page
    assert f'<option value="{zone}"' in page

    here = submit(
        browser,
        "/console/disks",
        {"ZoneId": zone, "DiskCategory": "cloud_essd", "Size": "20", "DiskName": "data1"},
    )
    disk_id = here.removeprefix("/console/disks/")
    assert disk_id.startswith("d-")
    assert wait_disk(lab, disk_id, "Available").size == 20
    listed = browser.get("/console/disks?status=Available").text
    assert disk_id in row_ids(listed, "disk")
    assert disk_id not in row_ids(browser.get("/console/disks?status=In_use").text, "disk")

    detail = browser.get(here).text
    assert 'id="attach-disk"' in detail
    assert f'<option value="{instance_id}">' in detail
    assert submit(browser, f"{here}/attach", {"InstanceId": instance_id}) == here
    assert settled(browser, here) == "In_use"
    attached = api_disk(lab, disk_id)
    assert (attached.status, attached.instance_id) == ("In_use", instance_id)
    again = browser.post(f"{here}/attach", {"csrf_token": browser.token, "InstanceId": instance_id})
    refusal = api_error_of(
        lambda: lab.ecs.attach_disk(em.AttachDiskRequest(disk_id=disk_id, instance_id=instance_id))
    )
    assert (again.status, error_of(again.text)[0]) == (refusal.status_code, refusal.code)
    assert error_next_to(again.text, "detach-disk")  # the form the page shows for an attached disk
    by_instance = browser.get(f"/console/disks?instance={instance_id}").text
    assert disk_id in row_ids(by_instance, "disk")

    # smaller is refused, as the API refuses it: its code and status next to the resize form
    refused = browser.post(
        f"{here}/resize", {"csrf_token": browser.token, "NewSize": "10", "Type": "offline"}
    )
    assert (refused.status, error_of(refused.text)[0]) == (403, "InvalidDiskSize.TooSmall")
    assert error_next_to(refused.text, "resize-disk")
    assert api_disk(lab, disk_id).size == 20
    assert submit(browser, f"{here}/resize", {"NewSize": "30", "Type": "online"}) == here
    assert api_disk(lab, disk_id).size == 30

    assert submit(browser, f"{here}/detach", {"InstanceId": instance_id}) == here
    assert settled(browser, here) == "Available"
    detached = api_disk(lab, disk_id)
    assert detached.instance_id == ""

    unconfirmed = browser.post(f"{here}/delete", {"csrf_token": browser.token})
    assert (unconfirmed.status, error_of(unconfirmed.text)[0]) == (400, "ConfirmationRequired")
    assert submit(browser, f"{here}/delete", {"confirm": "yes"}) == "/console/disks"
    assert (
        lab.ecs.describe_disks(
            em.DescribeDisksRequest(region_id=REGION, disk_ids=json.dumps([disk_id]))
        ).body.disks.disk
        == []
    )
    gone = browser.get(here)
    assert (gone.status, error_of(gone.text)[0]) == (404, "InvalidDiskId.NotFound")


def test_snapshot_progress_rollback_and_a_disk_of_it(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab, instance_id = running(live, fresh_key, "10.71.0.0/16")
    [system_disk] = lab.ecs.describe_disks(
        em.DescribeDisksRequest(region_id=REGION, instance_id=instance_id)
    ).body.disks.disk
    browser = Browser(live, fresh_key)
    here = f"/console/disks/{system_disk.disk_id}"
    assert submit(browser, f"{here}/snapshot", {"SnapshotName": "before"}) == "/console/snapshots"
    [snapshot] = lab.ecs.describe_snapshots(
        em.DescribeSnapshotsRequest(region_id=REGION, disk_id=system_disk.disk_id)
    ).body.snapshots.snapshot
    page = browser.get("/console/snapshots").text
    assert row_ids(page, "snapshot") == [snapshot.snapshot_id]

    seen = [snapshot_row(browser, snapshot.snapshot_id)]
    deadline = time.monotonic() + 30
    while seen[-1][0] != "accomplished" and time.monotonic() < deadline:
        assert seen[-1][2] == "yes"  # a progressing snapshot keeps the table refreshing
        time.sleep(0.2)
        seen.append(snapshot_row(browser, snapshot.snapshot_id))
    assert seen[-1] == ("accomplished", 100, "no"), seen
    assert 'hx-trigger="every 2s"' not in browser.get("/console/snapshots").text

    # ResetDisk needs the instance Stopped: refused while it runs, with the API's code
    form = {"DiskId": system_disk.disk_id, "confirm": "yes"}
    refused = browser.post(
        f"/console/snapshots/{snapshot.snapshot_id}/reset", {"csrf_token": browser.token, **form}
    )
    assert (refused.status, error_of(refused.text)[0]) == (403, "IncorrectInstanceStatus")
    lab.ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
    assert lab.wait(instance_id, "Stopped") == "Stopped"
    assert submit(browser, f"/console/snapshots/{snapshot.snapshot_id}/reset", form) == "/console/snapshots"

    made = submit(
        browser,
        "/console/snapshots/disk",
        {"SnapshotId": snapshot.snapshot_id, "ZoneId": system_disk.zone_id, "DiskCategory": "cloud_essd"},
    )
    copy = wait_disk(lab, made.removeprefix("/console/disks/"), "Available")
    assert (copy.source_snapshot_id, copy.size) == (snapshot.snapshot_id, system_disk.size)


def test_another_accounts_disk_snapshot_and_image_are_not_found(
    live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    lab, instance_id = running(live, fresh_key, "10.72.0.0/16")
    [disk] = lab.ecs.describe_disks(
        em.DescribeDisksRequest(region_id=REGION, instance_id=instance_id)
    ).body.disks.disk
    lab.ecs.modify_disk_attribute(em.ModifyDiskAttributeRequest(disk_id=disk.disk_id, disk_name="mine"))
    snapshot_id = lab.ecs.create_snapshot(em.CreateSnapshotRequest(disk_id=disk.disk_id)).body.snapshot_id
    deadline = time.monotonic() + 30
    while api_snapshot_status(lab, snapshot_id) != "accomplished" and time.monotonic() < deadline:
        time.sleep(0.1)
    image_id = lab.ecs.create_image(
        em.CreateImageRequest(region_id=REGION, snapshot_id=snapshot_id, image_name="mine")
    ).body.image_id
    intruder = Browser(live, live.create_account(f"t-{uuid.uuid4().hex[:12]}"))

    here = f"/console/disks/{disk.disk_id}"
    page = intruder.get(here)
    assert (page.status, error_of(page.text)[0]) == (404, "InvalidDiskId.NotFound")
    assert "mine" not in page.text
    assert disk.disk_id not in intruder.get("/console/disks").text
    for action, form in (("resize", {"NewSize": "40"}), ("snapshot", {}), ("delete", {"confirm": "yes"})):
        answer = intruder.post(f"{here}/{action}", {"csrf_token": intruder.token, **form})
        assert (answer.status, error_of(answer.text)[0]) == (404, "InvalidDiskId.NotFound")

    assert snapshot_id not in intruder.get("/console/snapshots").text
    form = {"csrf_token": intruder.token, "DiskId": disk.disk_id, "confirm": "yes"}
    reset = intruder.post(f"/console/snapshots/{snapshot_id}/reset", form)
    assert (reset.status, error_of(reset.text)[0]) == (404, "InvalidDiskId.NotFound")
    delete = intruder.post(f"/console/snapshots/{snapshot_id}/delete", {"csrf_token": intruder.token})
    # DeleteSnapshot ignores a snapshot the caller does not have, as ECS does: accepted, nothing deleted
    assert delete.status == 303

    assert image_id not in intruder.get("/console/images?owner=others").text
    image_page = intruder.get(f"/console/images/{image_id}")
    assert (image_page.status, error_of(image_page.text)[0]) == (404, "InvalidImageId.NotFound")
    share = intruder.post(
        f"/console/images/{image_id}/share", {"csrf_token": intruder.token, "AddAccount": "1"}
    )
    assert (share.status, error_of(share.text)[0]) == (404, "InvalidImageId.NotFound")

    # all untouched
    assert api_disk(lab, disk.disk_id).size == disk.size
    assert api_snapshot_status(lab, snapshot_id) == "accomplished"
    assert (
        lab.ecs.describe_images(
            em.DescribeImagesRequest(region_id=REGION, image_id=image_id, status="Creating,Available")
        )
        .body.images.image[0]
        .image_name
        == "mine"
    )


def test_auto_snapshot_policy_created_applied_cancelled_deleted(
    live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    lab = Lab(live, fresh_key, "10.73.0.0/16")
    zone = lab.ecs.describe_zones(em.DescribeZonesRequest(region_id=REGION)).body.zones.zone[0].zone_id
    disk_id = lab.ecs.create_disk(
        em.CreateDiskRequest(region_id=REGION, zone_id=zone, size=20, disk_category="cloud_essd")
    ).body.disk_id
    browser = Browser(live, fresh_key)
    path = "/console/auto-snapshot-policies"
    no_hours = browser.post(path, {"csrf_token": browser.token, "retentionDays": "7", "repeatWeekday.1": "1"})
    assert no_hours.status >= 400
    assert error_next_to(no_hours.text, "create-policy")
    assert (
        lab.ecs.describe_auto_snapshot_policy_ex(
            em.DescribeAutoSnapshotPolicyExRequest(region_id=REGION)
        ).body.total_count
        == 0
    )

    here = submit(
        browser,
        path,
        {
            "autoSnapshotPolicyName": "nightly",
            "retentionDays": "7",
            "timePoint.2": "1",
            "timePoint.14": "13",
            "repeatWeekday.1": "1",
            "repeatWeekday.5": "5",
        },
    )
    policy_id = here.removeprefix(f"{path}/")
    [policy] = lab.ecs.describe_auto_snapshot_policy_ex(
        em.DescribeAutoSnapshotPolicyExRequest(region_id=REGION, auto_snapshot_policy_id=policy_id)
    ).body.auto_snapshot_policies.auto_snapshot_policy
    assert (policy.auto_snapshot_policy_name, policy.retention_days) == ("nightly", 7)
    assert (json.loads(policy.time_points), json.loads(policy.repeat_weekdays)) == (["1", "13"], ["1", "5"])
    assert row_ids(browser.get(path).text, "policy") == [policy_id]
    page = browser.get(here).text
    assert (field(page, "hours"), field(page, "weekdays")) == ("1, 13", "Mon, Fri")

    box = re.search(rf'name="(disk\.\d+)" value="{disk_id}"', page)
    assert box is not None, page
    assert submit(browser, f"{here}/apply", {box.group(1): disk_id}) == here
    assert api_disk(lab, disk_id).auto_snapshot_policy_id == policy_id
    applied = browser.get(here).text
    assert field(applied, "disks") == "1"
    assert re.search(rf'id="cancel-policy".*?value="{disk_id}"', applied, re.DOTALL)

    assert submit(browser, f"{here}/cancel", {"disk.1": disk_id}) == here
    assert api_disk(lab, disk_id).auto_snapshot_policy_id == ""
    assert submit(browser, f"{here}/delete", {}) == path
    assert row_ids(browser.get(path).text, "policy") == []
    gone = browser.get(here)
    assert (gone.status, error_of(gone.text)[0]) == (404, "ParameterInvalid")


def account_uid(live: LiveServer, key: tuple[str, str]) -> str:
    """The account ID (AliyunId) of the account of `key`, as `nubes admin account list` shows it."""
    name = next(n for n, k in live.extra_accounts.items() if k == key)
    listing = live.nubes("admin", "account", "list", *live.admin_store_args()).stdout
    return str(next(re.findall(r"\b\d{16}\b", line)[0] for line in listing.splitlines() if name in line))


def image_shown(browser: Browser, image_id: str) -> tuple[str, str, str]:
    """The image's status and progress on its page, and whether the page keeps refreshing them."""
    page = browser.get(f"/console/images/{image_id}")
    assert page.status == 200, page.text
    busy = re.search(r'id="image-status"[^>]*data-busy="(yes|no)"', page.text)
    assert busy is not None, page.text
    return field(page.text, "status"), field(page.text, "progress").strip(), busy.group(1)


def made_image(browser: Browser, lab: Lab, path: str, form: dict[str, str]) -> tuple[str, Any]:
    """POST an image-making form; once the image's page shows it Available, its page and the
    image as the API describes it."""
    here = submit(browser, path, form)
    image_id = here.removeprefix("/console/images/")
    deadline = time.monotonic() + 30
    while image_shown(browser, image_id)[0] != "Available" and time.monotonic() < deadline:
        time.sleep(0.2)
    [image] = lab.ecs.describe_images(
        em.DescribeImagesRequest(region_id=REGION, image_id=image_id)
    ).body.images.image
    return here, image


def test_image_from_a_snapshot_shared_copied_deleted(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab, instance_id = running(live, fresh_key, "10.74.0.0/16")
    [system_disk] = lab.ecs.describe_disks(
        em.DescribeDisksRequest(region_id=REGION, instance_id=instance_id)
    ).body.disks.disk
    snapshot_id = lab.ecs.create_snapshot(
        em.CreateSnapshotRequest(disk_id=system_disk.disk_id)
    ).body.snapshot_id
    browser = Browser(live, fresh_key)
    deadline = time.monotonic() + 30
    while snapshot_row(browser, snapshot_id)[0] != "accomplished" and time.monotonic() < deadline:
        time.sleep(0.2)

    # the snapshot row's "Create image" button
    here = submit(browser, "/console/images", {"SnapshotId": snapshot_id})
    image_id = here.removeprefix("/console/images/")
    seen = [image_shown(browser, image_id)]
    while seen[-1][0] != "Available" and time.monotonic() < deadline:
        time.sleep(0.2)
        seen.append(image_shown(browser, image_id))
    assert seen[-1] == ("Available", "100%", "no"), seen
    assert all((status in ("Creating", "Waiting")) == (busy == "yes") for status, _, busy in seen), seen
    [image] = lab.ecs.describe_images(
        em.DescribeImagesRequest(region_id=REGION, image_id=image_id)
    ).body.images.image
    assert (image.status, image.image_owner_alias) == ("Available", "self")
    assert snapshot_id in field(browser.get(here).text, "snapshots")
    assert image_id in row_ids(browser.get("/console/images").text, "image")
    assert image_id not in row_ids(browser.get("/console/images?owner=system").text, "image")

    other_key = live.create_account(f"t-{uuid.uuid4().hex[:12]}")
    other_uid = account_uid(live, other_key)
    unknown = browser.post(f"{here}/share", {"csrf_token": browser.token, "AddAccount": "1234567890123456"})
    assert (unknown.status, error_of(unknown.text)[0]) == (404, "InvalidAccount.NotFound")
    assert error_next_to(unknown.text, "share-image")
    assert submit(browser, f"{here}/share", {"AddAccount": other_uid}) == here
    shares = lab.ecs.describe_image_share_permission(
        em.DescribeImageSharePermissionRequest(region_id=REGION, image_id=image_id)
    ).body
    assert [a.aliyun_id for a in shares.accounts.account] == [other_uid]
    assert re.findall(r'class="account" data-id="([^"]+)"', browser.get(here).text) == [other_uid]
    other = Browser(live, other_key)
    assert image_id in row_ids(other.get("/console/images?owner=others").text, "image")
    assert 'id="share-image"' not in other.get(here).text  # not theirs to share

    assert submit(browser, f"{here}/unshare", {"RemoveAccount": other_uid}) == here
    hidden = other.get(here)
    assert (hidden.status, error_of(hidden.text)[0]) == (404, "InvalidImageId.NotFound")

    copied = submit(browser, f"{here}/copy", {"DestinationRegionId": REGION, "DestinationImageName": "copy1"})
    copy_id = copied.removeprefix("/console/images/")
    assert copy_id not in ("", image_id)
    [copy] = lab.ecs.describe_images(
        em.DescribeImagesRequest(region_id=REGION, image_id=copy_id)
    ).body.images.image
    assert copy.image_name == "copy1"

    assert submit(browser, f"{here}/delete", {"confirm": "yes"}) == "/console/images"
    assert (
        lab.ecs.describe_images(
            em.DescribeImagesRequest(region_id=REGION, image_id=image_id)
        ).body.images.image
        == []
    )
    assert set(row_ids(browser.get("/console/images").text, "image")) == {copy_id}


def test_image_imported_from_a_bucket_and_exported(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    bucket = live.data_dir / "oss" / "console-imports"
    bucket.mkdir(parents=True, exist_ok=True)
    (bucket / "disk.raw").write_bytes(b"\0" * (1 << 20))
    lab = Lab(live, fresh_key, "10.75.0.0/16")
    browser = Browser(live, fresh_key)
    absent = browser.post(
        "/console/images/import",
        {
            "csrf_token": browser.token,
            "OSSBucket": "console-imports",
            "OSSObject": "nope.raw",
            "Format": "raw",
        },
    )
    assert (absent.status, error_of(absent.text)[0]) == (404, "InvalidOSSObject.NotFound")
    assert error_next_to(absent.text, "import-image")

    form = {"ImageName": "imported", "OSSBucket": "console-imports", "OSSObject": "disk.raw", "Format": "raw"}
    here, image = made_image(browser, lab, "/console/images/import", form)
    image_id = image.image_id
    assert (image.image_name, image.status) == ("imported", "Available")

    malformed = browser.post(f"{here}/export", {"csrf_token": browser.token, "OSSBucket": "No_Such"})
    assert (malformed.status, error_of(malformed.text)[0]) == (400, "InvalidOSSBucket.Malformed")
    assert error_next_to(malformed.text, "export-image")
    assert submit(browser, f"{here}/export", {"OSSBucket": "console-exports", "ImageFormat": "qcow2"}) == here
    tasks = lab.ecs.describe_tasks(
        em.DescribeTasksRequest(region_id=REGION, task_action="ExportImage", resource_ids=[image_id])
    ).body.task_set.task
    [export] = tasks
    shown = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page = browser.get(here).text
        found = re.search(rf'class="task" data-id="{export.task_id}" data-status="([^"]+)"', page)
        assert found is not None, page
        shown = found.group(1)
        if shown not in ("Waiting", "Processing"):
            break
        assert 'data-busy="yes"' in page  # an open task keeps the page refreshing
        time.sleep(0.2)
    assert shown == "Finished"  # the file itself is the storage driver's (tests/vm write real ones)


def test_image_from_an_instance_copied_to_another_region(
    live: LiveServer, fresh_key: tuple[str, str]
) -> None:
    lab, instance_id = running(live, fresh_key, "10.76.0.0/16")
    browser = Browser(live, fresh_key)
    listing = browser.get("/console/images").text
    assert re.search(rf'id="create-image".*?<option value="{instance_id}">', listing, re.DOTALL)
    here, image = made_image(
        browser, lab, "/console/images", {"InstanceId": instance_id, "ImageName": "golden"}
    )
    assert (image.image_name, image.status) == ("golden", "Available")

    # a copy in another region is not on this region's pages: the list is where the form returns
    moved = submit(
        browser, f"{here}/copy", {"DestinationRegionId": "cn-shanghai", "DestinationImageName": "far"}
    )
    assert moved == "/console/images"
    [far] = lab.ecs.describe_images(
        em.DescribeImagesRequest(
            region_id="cn-shanghai", image_owner_alias="self", status="Creating,Available"
        )
    ).body.images.image
    assert far.image_name == "far"
    assert far.image_id not in row_ids(browser.get("/console/images").text, "image")
    unknown = browser.post(
        f"{here}/copy", {"csrf_token": browser.token, "DestinationRegionId": "xx-nowhere-1"}
    )
    assert unknown.status >= 400
    assert error_next_to(unknown.text, "copy-image")


def test_disk_list_pages_keep_the_filters(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab = Lab(live, fresh_key, "10.77.0.0/16")
    zone = lab.ecs.describe_zones(em.DescribeZonesRequest(region_id=REGION)).body.zones.zone[0].zone_id
    made = {
        lab.ecs.create_disk(
            em.CreateDiskRequest(region_id=REGION, zone_id=zone, size=20, disk_category=category)
        ).body.disk_id: category
        for category in ["cloud_essd"] * 21 + ["cloud_efficiency"] * 2
    }
    browser = Browser(live, fresh_key)
    first = browser.get("/console/disks?category=cloud_essd").text
    assert "Page 1 of 2 · 21 in all" in first
    following = re.search(r'<a href="([^"]+)">Next</a>', first)
    assert following is not None, first
    second = browser.get(following.group(1).replace("&amp;", "&")).text
    assert "Page 2 of 2 · 21 in all" in second
    shown = row_ids(first, "disk") + row_ids(second, "disk")
    assert sorted(shown) == sorted(d for d, c in made.items() if c == "cloud_essd")
    efficiency = row_ids(browser.get("/console/disks?category=cloud_efficiency").text, "disk")
    assert sorted(efficiency) == sorted(d for d, c in made.items() if c == "cloud_efficiency")
