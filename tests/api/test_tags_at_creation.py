"""Tag.N given when a resource is created is written with it (it was accepted and dropped), and
the Describe actions show it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from alibabacloud_ecs20140526 import models as em

from ..conftest import LiveServer, tea_ecs
from .test_instances_api import error_of
from .test_security_group_api import make_network
from .test_vpc_api import REGION


def tags_of(ecs: Any, kind: str, resource_id: str) -> list[tuple[str, str]]:
    rows = ecs.list_tag_resources(
        em.ListTagResourcesRequest(region_id=REGION, resource_type=kind, resource_id=[resource_id])
    ).body
    return [(t.tag_key, t.tag_value) for t in rows.tag_resources.tag_resource]


def request_tags(cls: Any, pairs: list[tuple[str, str]]) -> list[Any]:
    return [cls(key=k, value=v) for k, v in pairs]


def test_security_groups_and_key_pairs_carry_their_creation_tags(
    live: LiveServer, fresh_key: tuple[str, str], tmp_path: Path
) -> None:
    ecs = tea_ecs(live, fresh_key)
    vpc_id, _ = make_network(live, fresh_key, cidr="10.81.0.0/16")
    wanted = [("team", "web"), ("env", "test")]

    group_id = ecs.create_security_group(
        em.CreateSecurityGroupRequest(
            region_id=REGION, vpc_id=vpc_id, tag=request_tags(em.CreateSecurityGroupRequestTag, wanted)
        )
    ).body.security_group_id
    assert tags_of(ecs, "securitygroup", group_id) == wanted
    [group] = ecs.describe_security_groups(
        em.DescribeSecurityGroupsRequest(region_id=REGION, security_group_id=group_id)
    ).body.security_groups.security_group
    assert [(t.tag_key, t.tag_value) for t in group.tags.tag] == wanted

    ecs.create_key_pair(
        em.CreateKeyPairRequest(
            region_id=REGION, key_pair_name="made", tag=request_tags(em.CreateKeyPairRequestTag, wanted)
        )
    )
    assert tags_of(ecs, "keypair", "made") == wanted

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    ecs.import_key_pair(
        em.ImportKeyPairRequest(
            region_id=REGION,
            key_pair_name="imported",
            public_key_body=(tmp_path / "k.pub").read_text(),
            tag=request_tags(em.ImportKeyPairRequestTag, wanted),
        )
    )
    assert tags_of(ecs, "keypair", "imported") == wanted
    pairs = ecs.describe_key_pairs(em.DescribeKeyPairsRequest(region_id=REGION)).body.key_pairs.key_pair
    assert {p.key_pair_name: [(t.tag_key, t.tag_value) for t in p.tags.tag] for p in pairs} == {
        "made": wanted,
        "imported": wanted,
    }

    # a bad tag refuses the creation as a whole: the group is not made without its tags
    before = ecs.describe_security_groups(em.DescribeSecurityGroupsRequest(region_id=REGION, vpc_id=vpc_id))
    bad = error_of(
        lambda: ecs.create_security_group(
            em.CreateSecurityGroupRequest(
                region_id=REGION,
                vpc_id=vpc_id,
                tag=request_tags(em.CreateSecurityGroupRequestTag, [("aliyun:reserved", "x")]),
            )
        )
    )
    assert bad.code.startswith("InvalidTagKey")
    after = ecs.describe_security_groups(em.DescribeSecurityGroupsRequest(region_id=REGION, vpc_id=vpc_id))
    assert after.body.total_count == before.body.total_count
