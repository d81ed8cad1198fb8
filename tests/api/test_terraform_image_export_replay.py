"""What terraform-provider-alicloud calls for alicloud_image_export, replayed against the emulator
with the official SDK: ExportImage (RegionId, ImageId, OSSBucket, OSSPrefix), then
DescribeTaskAttribute with the TaskId alone (no RegionId: EcsService.DescribeTaskById sends
none) until TaskStatus leaves Waiting/Processing for Finished (CreateFailed and UnAvailable are
its failure states; an empty TaskId would be NotFound), then DescribeImages by ImageId with the
statuses DescribeImageById asks for, reading ImageId. alicloud_image_import waits on the
image's Status (Available) and alicloud_image_copy likewise, not on tasks: the import's wait is
replayed here too."""

from __future__ import annotations

import time

import pytest
from alibabacloud_ecs20140526 import models as em

from ..conftest import LiveServer
from .test_instances_api import Lab
from .test_vpc_api import REGION

PROVIDER_IMAGE_STATUSES = "Creating,Waiting,Available,UnAvailable,CreateFailed"


@pytest.fixture
def lab(live: LiveServer, fresh_key: tuple[str, str]) -> Lab:
    return Lab(live, fresh_key, "10.65.0.0/16")


def describe_image_by_id(lab: Lab, image_id: str) -> em.DescribeImagesResponseBodyImagesImage:
    images = lab.ecs.describe_images(
        em.DescribeImagesRequest(region_id=REGION, image_id=image_id, status=PROVIDER_IMAGE_STATUSES)
    ).body.images.image
    assert len(images) == 1
    return images[0]


def test_alicloud_image_import_then_export(live: LiveServer, lab: Lab) -> None:
    bucket = live.data_dir / "oss" / "tf-bucket"
    bucket.mkdir(parents=True, exist_ok=True)
    (bucket / "disk.raw").write_bytes(b"\0" * (1 << 20))
    # alicloud_image_import: ImportImage, then DescribeImages until Status is Available
    image_id = lab.ecs.import_image(
        em.ImportImageRequest(
            region_id=REGION,
            architecture="x86_64",
            ostype="linux",
            image_name="tf-imported",
            description="by terraform",
            disk_device_mapping=[
                em.ImportImageRequestDiskDeviceMapping(
                    ossbucket="tf-bucket", ossobject="disk.raw", format="RAW", disk_image_size=5
                )
            ],
        )
    ).body.image_id
    deadline = time.monotonic() + 30
    image = describe_image_by_id(lab, image_id)
    while image.status in ("Creating", "Waiting") and time.monotonic() < deadline:
        time.sleep(0.05)
        image = describe_image_by_id(lab, image_id)
    assert (image.status, image.image_name, image.description) == ("Available", "tf-imported", "by terraform")

    # alicloud_image_export: ExportImage, the id is the image's, then the task wait
    task_id = lab.ecs.export_image(
        em.ExportImageRequest(region_id=REGION, image_id=image_id, ossbucket="tf-bucket", ossprefix="tf")
    ).body.task_id
    assert task_id
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        task = lab.ecs.describe_task_attribute(em.DescribeTaskAttributeRequest(task_id=task_id)).body
        assert task.task_id == task_id  # the provider takes an empty TaskId for NotFound
        seen.append(task.task_status)
        if task.task_status not in ("Waiting", "Processing"):
            break
        time.sleep(0.05)
    assert seen[-1] == "Finished"
    assert set(seen) <= {"Waiting", "Processing", "Finished"}
    # resourceAliCloudImageExportRead: DescribeImages by the id, ImageId
    assert describe_image_by_id(lab, image_id).image_id == image_id
