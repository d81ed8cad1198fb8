"""AutoReleaseTime: an instance is released when its time comes (the clock is passed in)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from nubes.agent.images import FAKE_IMAGES
from nubes.catalog.model import load_catalog
from nubes.clock import ManualClock
from nubes.domain.common import Scope
from nubes.domain.launch import LaunchRequest
from nubes.domain.quotas import Quotas
from nubes.errors import ApiError
from nubes.services import build_services
from nubes.store.db import Database
from nubes.store.models import Host

from .host_world import HostWorld


def test_instance_is_released_at_its_time(tmp_path: Path) -> None:
    clock = ManualClock()
    db = Database(f"sqlite:///{tmp_path / 'nubes.db'}")
    db.migrate()
    services = build_services(db, load_catalog(), clock, tmp_path, Quotas())
    services.accounts.create("owner")
    account_id = services.accounts.lookup_key(services.accounts.create_key("owner").access_key_id)
    assert account_id is not None
    scope = Scope(account_id.principal.account_id, "cn-hangzhou")
    with db.session() as s:
        s.add(
            Host(
                id="h1",
                vcpus=64,
                memory_mib=262144,
                cpu_overcommit=1.0,
                memory_overcommit=1.0,
                zones="*",
                compute_driver="fake",
                accel="none",
                status="Available",
                heartbeat_at=clock.now(),
            )
        )
    for image in FAKE_IMAGES:
        services.images.register_system(image)
    vpc = services.vpcs.create_vpc(scope, "10.0.0.0/16", None, None, "")
    services.vpcs.mark_available([vpc.id])
    vswitch = services.vpcs.create_vswitch(scope, vpc.id, "cn-hangzhou-h", "10.0.1.0/24", None, None)
    services.vpcs.mark_available([vpc.id])
    group = services.security_groups.create(scope, vpc.id, None, None, "normal", "")
    release_at = (clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    [instance_id] = services.instances.launch(
        scope,
        LaunchRequest(
            instance_type="ecs.t5-lc2m1.nano",
            image_id=FAKE_IMAGES[1].image_id,
            vswitch_id=vswitch.id,
            security_group_ids=[group.id],
            auto_release_time=release_at,
        ),
    )

    clock.advance(59 * 60)
    assert services.instances.release_due() == []
    assert services.instances.get(scope.account_id, instance_id).id == instance_id
    clock.advance(2 * 60)
    assert services.instances.release_due() == [instance_id]
    with pytest.raises(ApiError) as gone:
        services.instances.get(scope.account_id, instance_id)
    assert gone.value.code == "InvalidInstanceId.NotFound"

    with pytest.raises(ApiError) as too_soon:
        services.instances.launch(
            scope,
            LaunchRequest(
                instance_type="ecs.t5-lc2m1.nano",
                image_id=FAKE_IMAGES[1].image_id,
                vswitch_id=vswitch.id,
                security_group_ids=[group.id],
                auto_release_time=(clock.now() + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            ),
        )
    assert too_soon.value.code == "InvalidAutoReleaseTime.Malformed"


def test_a_release_time_set_later_releases_and_one_cancelled_does_not(tmp_path: Path) -> None:
    """ModifyInstanceAutoReleaseTime: at the time set on a Running instance the host agent's
    timers release it; cancelled (an empty time), it is not released."""
    world = HostWorld(tmp_path)
    try:
        kept, released = world.launch(), world.launch()
        for instance_id in (kept, released):
            world.reach(instance_id, "Running")
        attributes, scope = world.services.attributes, world.scope
        in_an_hour = (world.clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for instance_id in (kept, released):
            attributes.modify_auto_release_time(scope, instance_id, in_an_hour)
        attributes.modify_auto_release_time(scope, kept, "")
        assert world.services.instances.get(scope.account_id, kept).auto_release_time is None
        world.clock.advance(59 * 60)
        world.agent.pass_once(wait=True)
        assert world.status(released) == "Running"
        world.clock.advance(2 * 60)
        world.reach(released, None)  # released by the agent's timers, then deleted
        assert world.status(kept) == "Running"
    finally:
        world.close()
