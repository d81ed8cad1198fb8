"""The CLI's --wait on power actions, against the emulator."""

from __future__ import annotations

import json

from alibabacloud_ecs20140526 import models as em

from ..conftest import LiveServer
from .test_instances_api import TYPE, Lab
from .test_vpc_api import REGION


def test_run_and_stop_with_wait(live: LiveServer, fresh_key: tuple[str, str]) -> None:
    lab = Lab(live, fresh_key, "10.61.0.0/16")
    env = {
        "NUBES_ENDPOINT": live.endpoint,
        "NUBES_ACCESS_KEY_ID": fresh_key[0],
        "NUBES_ACCESS_KEY_SECRET": fresh_key[1],
        "NUBES_REGION": REGION,
    }
    ran = live.nubes(
        "ecs",
        "RunInstances",
        "--ImageId",
        lab.image_id,
        "--InstanceType",
        TYPE,
        "--VSwitchId",
        lab.vswitch_id,
        "--SecurityGroupId",
        lab.group_id,
        "--Amount",
        "2",
        "--wait",
        env=env,
    )
    ids = json.loads(ran.stdout)["InstanceIdSets"]["InstanceIdSet"]
    assert len(ids) == 2
    assert all(lab.status(i) == "Running" for i in ids)  # --wait returned only once they ran
    stopped = live.nubes("ecs", "StopInstance", "--InstanceId", ids[0], "--wait", env=env)
    assert stopped.returncode == 0 and lab.status(ids[0]) == "Stopped"
    bad = live.nubes("ecs", "DescribeRegions", "--wait", env=env, check=False)
    assert bad.returncode != 0 and "--wait works with" in bad.stderr
    lab.ecs.delete_instances(em.DeleteInstancesRequest(region_id=REGION, instance_id=ids, force=True))
