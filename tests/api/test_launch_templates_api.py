"""Launch templates through the official SDK against the emulator: versions, the default
version, RunInstances from a template with explicit parameters over it, errors and quotas."""

from __future__ import annotations

import pytest
from alibabacloud_ecs20140526 import models as em

from ..conftest import LiveServer
from .test_instances_api import TYPE, Lab, error_of
from .test_vpc_api import REGION


@pytest.fixture
def lab(live: LiveServer, fresh_key: tuple[str, str]) -> Lab:
    return Lab(live, fresh_key, "10.62.0.0/16")


def create_template(lab: Lab, name: str = "web", **fields: object) -> str:
    request = em.CreateLaunchTemplateRequest(region_id=REGION, launch_template_name=name)
    for field, value in fields.items():
        assert hasattr(request, field), field  # a misspelt field would be sent as nothing
        setattr(request, field, value)
    body = lab.ecs.create_launch_template(request).body
    assert body.launch_template_version_number == 1
    return str(body.launch_template_id)


def versions(
    lab: Lab, template_id: str, **fields: object
) -> list[em.DescribeLaunchTemplateVersionsResponseBodyLaunchTemplateVersionSetsLaunchTemplateVersionSet]:
    request = em.DescribeLaunchTemplateVersionsRequest(region_id=REGION, launch_template_id=template_id)
    for field, value in fields.items():
        setattr(request, field, value)
    return list(
        lab.ecs.describe_launch_template_versions(
            request
        ).body.launch_template_version_sets.launch_template_version_set
    )


def test_a_template_launches_instances_and_the_request_wins_over_it(lab: Lab) -> None:
    template_id = create_template(
        lab,
        image_id=lab.image_id,
        instance_type=TYPE,
        v_switch_id=lab.vswitch_id,
        security_group_id=lab.group_id,
        instance_name="from-template",
        host_name="tpl",
        vpc_id=lab.vpc_id,
        system_disk=em.CreateLaunchTemplateRequestSystemDisk(category="cloud_essd", size=30),
        data_disk=[em.CreateLaunchTemplateRequestDataDisk(category="cloud_essd", size=20)],
        tag=[em.CreateLaunchTemplateRequestTag(key="made-by", value="template")],
        template_tag=[em.CreateLaunchTemplateRequestTemplateTag(key="team", value="web")],
        version_description="first",
    )
    assert template_id.startswith("lt-")
    [from_template] = lab.ecs.run_instances(
        em.RunInstancesRequest(region_id=REGION, launch_template_id=template_id)
    ).body.instance_id_sets.instance_id_set
    [overridden] = lab.ecs.run_instances(
        em.RunInstancesRequest(
            region_id=REGION,
            launch_template_name="web",
            instance_name="explicit",
            data_disk=[
                em.RunInstancesRequestDataDisk(category="cloud_essd", size=40),
                em.RunInstancesRequestDataDisk(category="cloud_essd", size=50),
            ],
        )
    ).body.instance_id_sets.instance_id_set
    described = {
        i.instance_id: i
        for i in lab.ecs.describe_instances(
            em.DescribeInstancesRequest(region_id=REGION, instance_ids=f'["{from_template}","{overridden}"]')
        ).body.instances.instance
    }
    first, second = described[from_template], described[overridden]
    assert (first.instance_name, first.host_name, first.instance_type) == ("from-template", "tpl", TYPE)
    assert [(t.tag_key, t.tag_value) for t in first.tags.tag] == [("made-by", "template")]
    assert (second.instance_name, second.host_name) == ("explicit", "tpl")  # only what the request gives
    disks = {
        instance_id: sorted(
            (d.type, d.size)
            for d in lab.ecs.describe_disks(
                em.DescribeDisksRequest(region_id=REGION, instance_id=instance_id)
            ).body.disks.disk
        )
        for instance_id in (from_template, overridden)
    }
    assert disks[from_template] == [("data", 20), ("system", 30)]
    assert disks[overridden] == [("data", 40), ("data", 50), ("system", 30)]  # a list replaces the list

    [listed] = lab.ecs.describe_launch_templates(
        em.DescribeLaunchTemplatesRequest(region_id=REGION, launch_template_id=[template_id])
    ).body.launch_template_sets.launch_template_set
    assert (listed.launch_template_name, listed.default_version_number, listed.latest_version_number) == (
        "web",
        1,
        1,
    )
    assert [(t.tag_key, t.tag_value) for t in listed.tags.tag] == [("team", "web")]
    [version] = versions(lab, template_id)
    data = version.launch_template_data
    assert (version.version_number, version.default_version, version.version_description) == (
        1,
        True,
        "first",
    )
    assert (data.image_id, data.instance_type, data.vpc_id, data.instance_name) == (
        lab.image_id,
        TYPE,
        lab.vpc_id,
        "from-template",
    )
    assert (data.system_disk.category, data.system_disk.size) == ("cloud_essd", 30)
    assert [(d.category, d.size) for d in data.data_disks.data_disk] == [("cloud_essd", 20)]
    assert [(t.key, t.value) for t in data.tags.instance_tag] == [("made-by", "template")]
    assert data.internet_max_bandwidth_out == 0 and data.deletion_protection is False  # not given


def test_versions_default_version_and_deletion(lab: Lab) -> None:
    template_id = create_template(lab, "versions", instance_type=TYPE)
    for name in ("two", "three"):
        added = lab.ecs.create_launch_template_version(
            em.CreateLaunchTemplateVersionRequest(
                region_id=REGION, launch_template_id=template_id, instance_name=name, instance_type=TYPE
            )
        ).body
        assert added.launch_template_id == template_id
    assert [v.version_number for v in versions(lab, template_id)] == [1, 2, 3]
    assert [v.version_number for v in versions(lab, template_id, min_version=2, max_version=2)] == [2]
    [default] = versions(lab, template_id, default_version=True)
    assert default.version_number == 1
    assert versions(lab, template_id, detail_flag=False)[0].launch_template_data is None

    lab.ecs.modify_launch_template_default_version(
        em.ModifyLaunchTemplateDefaultVersionRequest(
            region_id=REGION, launch_template_name="versions", default_version_number=3
        )
    )
    [instance_id] = lab.run(launch_template_id=template_id, instance_type=None)
    assert (
        lab.ecs.describe_instance_attribute(
            em.DescribeInstanceAttributeRequest(instance_id=instance_id)
        ).body.instance_name
        == "three"
    )
    [pinned] = lab.run(launch_template_id=template_id, launch_template_version=2)
    assert (
        lab.ecs.describe_instance_attribute(
            em.DescribeInstanceAttributeRequest(instance_id=pinned)
        ).body.instance_name
        == "two"
    )

    refused = error_of(
        lambda: lab.ecs.delete_launch_template_version(
            em.DeleteLaunchTemplateVersionRequest(
                region_id=REGION, launch_template_id=template_id, delete_version=[2, 3]
            )
        )
    )
    assert (refused.code, refused.status_code) == ("InvalidOperation.DeleteDefaultVersion", 403)
    assert len(versions(lab, template_id)) == 3  # nothing deleted
    deleted = lab.ecs.delete_launch_template_version(
        em.DeleteLaunchTemplateVersionRequest(
            region_id=REGION, launch_template_id=template_id, delete_version=[1]
        )
    ).body
    assert [
        (v.launch_template_id, v.launch_template_version_number)
        for v in deleted.launch_template_versions.launch_template_version
    ] == [(template_id, 1)]
    missing = error_of(lambda: lab.run(launch_template_id=template_id, launch_template_version=1))
    assert (missing.code, missing.status_code) == ("InvalidLaunchTemplateVersion.NotFound", 404)

    gone = lab.ecs.delete_launch_template(
        em.DeleteLaunchTemplateRequest(region_id=REGION, launch_template_id=template_id)
    ).body
    assert (gone.launch_template_id, gone.launch_template_version_numbers.version_numbers) == (
        template_id,
        [2, 3],
    )
    unknown = error_of(lambda: versions(lab, template_id))
    assert (unknown.code, unknown.status_code) == ("InvalidLaunchTemplate.NotFound", 404)


def test_errors_names_quota_and_other_accounts(lab: Lab, live: LiveServer) -> None:
    create_template(lab, "unique")
    duplicated = error_of(lambda: create_template(lab, "unique"))
    assert (duplicated.code, duplicated.status_code) == ("LaunchTemplateName.Duplicated", 403)
    malformed = error_of(lambda: create_template(lab, "1-starts-with-a-digit"))
    assert malformed.code == "InvalidLaunchTemplateName.Malformed"
    refused = error_of(lambda: create_template(lab, "refused", ipv_6address_count=1))
    assert (refused.code, "Ipv6AddressCount" in refused.message) == ("InvalidParameter.NotSupported", True)
    no_name = error_of(
        lambda: lab.ecs.create_launch_template_version(
            em.CreateLaunchTemplateVersionRequest(region_id=REGION, instance_type=TYPE)
        )
    )
    assert no_name.code == "MissingParameter"
    # a template without an instance type launches nothing without one
    bare = create_template(lab, "bare", image_id=lab.image_id)
    missing = error_of(
        lambda: lab.ecs.run_instances(
            em.RunInstancesRequest(
                region_id=REGION,
                launch_template_id=bare,
                v_switch_id=lab.vswitch_id,
                security_group_id=lab.group_id,
            )
        )
    )
    assert missing.code == "MissingParameter.InstanceType"
    # another account's template names nothing
    other = Lab(live, live.create_account("lt-other"), "10.63.0.0/16")
    hidden = error_of(lambda: other.run(launch_template_id=bare))
    assert (hidden.code, hidden.status_code) == ("InvalidLaunchTemplate.NotFound", 404)
    for n in range(28):  # 2 made above; 30 per region
        create_template(lab, f"quota-{n}")
    over = error_of(lambda: create_template(lab, "one-too-many"))
    assert (over.code, over.status_code) == ("LaunchTemplateLimitExceed", 403)
