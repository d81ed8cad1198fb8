"""A fresh server lists its system images from the first request, Creating with their Progress
while they are built, and launches from them at once: the instance waits in Pending and runs
once the image is Available, also across a kill -9 of the server in the middle of the build.

The emulator's `--fake-image-build-seconds` stands in for the minutes a real first build takes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em

from ..conftest import LiveServer, restart_server, start_server, stop_server, tea_ecs
from .test_instances_api import TYPE
from .test_security_group_api import make_network
from .test_vpc_api import REGION

BUILD_SECONDS = 6  # long enough for the requests below to come while the build is under way


def images(ecs: Any, **fields: Any) -> dict[str, Any]:
    request = em.DescribeImagesRequest(region_id=REGION, image_owner_alias="system", page_size=100, **fields)
    return {i.image_id: i for i in ecs.describe_images(request).body.images.image}


def wait_for(check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return result


def status(ecs: Any, instance_id: str) -> str:
    return str(
        ecs.describe_instance_attribute(
            em.DescribeInstanceAttributeRequest(instance_id=instance_id)
        ).body.status
    )


@pytest.fixture
def fresh(tmp_path: Path) -> Any:
    server = start_server(
        tmp_path, None, "sqlite", ["--throttle-rate", "0", "--fake-image-build-seconds", str(BUILD_SECONDS)]
    )
    yield server
    stop_server(server)


def launch_while_building(server: LiveServer) -> tuple[Any, str, str]:
    """The first request lists the images Creating; an instance of one is launched before it is
    built, and stays Pending. (client, image id, instance id)"""
    ecs = tea_ecs(server)
    creating = images(ecs, status="Creating")
    assert {i.image_family for i in creating.values()} == {"nubes:tiny_x64", "nubes:debian_12_x64"}
    for image in creating.values():
        assert (image.status, image.usable) == ("Creating", False)
        assert image.progress.endswith("%") and 0 <= int(image.progress[:-1]) < 100
    assert images(ecs) == {}, "the default Status is Available, as in ECS"
    assert images(ecs, status="ALL").keys() == creating.keys()
    image_id = next(i for i, image in creating.items() if image.image_family == "nubes:tiny_x64")
    supported = ecs.describe_image_support_instance_types(
        em.DescribeImageSupportInstanceTypesRequest(region_id=REGION, image_id=image_id)
    ).body.instance_types.instance_type
    assert TYPE in {t.instance_type_id for t in supported}

    vpc_id, vswitch_id = make_network(server, cidr="10.71.0.0/16")
    group_id = ecs.create_security_group(
        em.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id)
    ).body.security_group_id
    [instance_id] = ecs.run_instances(
        em.RunInstancesRequest(
            region_id=REGION,
            image_id=image_id,
            instance_type=TYPE,
            v_switch_id=vswitch_id,
            security_group_id=group_id,
        )
    ).body.instance_id_sets.instance_id_set
    # the image was still being built when the launch was accepted (its status only moves on)
    assert images(ecs, status="Creating", image_id=image_id), "the build ended before the launch"
    assert status(ecs, instance_id) == "Pending"
    return ecs, image_id, instance_id


def test_a_fresh_server_lists_its_images_at_once_and_launches_from_one_being_built(fresh: LiveServer) -> None:
    ecs, image_id, instance_id = launch_while_building(fresh)
    assert wait_for(lambda: images(ecs, image_id=image_id)), "the image never became Available"
    built = images(ecs, image_id=image_id)[image_id]
    assert (built.status, built.progress, built.usable) == ("Available", "100%", True)
    assert wait_for(lambda: status(ecs, instance_id) == "Running", timeout=30), status(ecs, instance_id)


def test_a_launch_waiting_for_an_image_survives_a_kill_mid_build(fresh: LiveServer) -> None:
    ecs, image_id, instance_id = launch_while_building(fresh)
    restart_server(fresh, kill=True)
    ecs = tea_ecs(fresh)
    # the plan was in the store: the same image is Creating again (its build starts over)
    assert image_id in images(ecs, status="Creating,Available")
    assert status(ecs, instance_id) == "Pending"
    assert wait_for(lambda: status(ecs, instance_id) == "Running"), status(ecs, instance_id)
