"""Done when: the official clients each get correct DescribeRegions, DescribeZones and
DescribeInstanceTypes answers from a live server (default v3, v2 signing, aliyun-python-sdk-core,
raw Format=XML)."""

from __future__ import annotations

import json
import urllib.request
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_vpc20160428 import models as vpc_models
from aliyunsdkecs.request.v20140526.DescribeInstanceTypesRequest import DescribeInstanceTypesRequest
from aliyunsdkecs.request.v20140526.DescribeRegionsRequest import DescribeRegionsRequest
from aliyunsdkecs.request.v20140526.DescribeZonesRequest import DescribeZonesRequest

from nubes.api.signing import sign_v1
from nubes.catalog.model import load_catalog

from ..conftest import ROOT_KEY_ID, ROOT_SECRET, LiveServer, acs_client, tea_ecs, tea_vpc

CATALOG = load_catalog()
ALL_REGIONS = {r.region_id for r in CATALOG.regions}
HANGZHOU = CATALOG.region("cn-hangzhou")
assert HANGZHOU is not None
HANGZHOU_ZONES = [z.zone_id for z in HANGZHOU.zones]


@pytest.mark.parametrize("algorithm", [None, "v2"])
def test_tea_client_catalog(live: LiveServer, algorithm: str | None) -> None:
    client = tea_ecs(live, signature_algorithm=algorithm)  # None: the SDK default
    regions = client.describe_regions(ecs_models.DescribeRegionsRequest(accept_language="en-US")).body
    assert {r.region_id for r in regions.regions.region} == ALL_REGIONS
    hz = next(r for r in regions.regions.region if r.region_id == "cn-hangzhou")
    assert hz.local_name == "China (Hangzhou)" and hz.status == "available"
    assert regions.request_id

    zones = client.describe_zones(ecs_models.DescribeZonesRequest(region_id="cn-hangzhou")).body
    assert [z.zone_id for z in zones.zones.zone] == HANGZHOU_ZONES
    zone = zones.zones.zone[0]
    assert "Instance" in zone.available_resource_creation.resource_types
    assert "cloud_essd" in zone.available_disk_categories.disk_categories
    assert "ecs.g7.large" in zone.available_instance_types.instance_types

    types = client.describe_instance_types(
        ecs_models.DescribeInstanceTypesRequest(instance_type_family="ecs.g7")
    ).body
    ids = [t.instance_type_id for t in types.instance_types.instance_type]
    assert "ecs.g7.large" in ids and all(i.startswith("ecs.g7.") for i in ids)
    large = next(t for t in types.instance_types.instance_type if t.instance_type_id == "ecs.g7.large")
    assert (large.cpu_core_count, large.memory_size) == (2, 8.0)
    assert large.eni_quantity >= 2 and large.instance_bandwidth_rx > 0


def test_tea_describe_instance_types_paging_and_filters(live: LiveServer) -> None:
    client = tea_ecs(live)
    every = client.describe_instance_types(ecs_models.DescribeInstanceTypesRequest()).body
    all_ids = [t.instance_type_id for t in every.instance_types.instance_type]
    assert len(all_ids) == len(CATALOG.all_types()) and every.next_token == ""

    seen: list[str] = []
    token = None
    while True:
        page = client.describe_instance_types(
            ecs_models.DescribeInstanceTypesRequest(max_results=25, next_token=token)
        ).body
        seen += [t.instance_type_id for t in page.instance_types.instance_type]
        if not page.next_token:
            break
        token = page.next_token
    assert seen == all_ids

    big = client.describe_instance_types(
        ecs_models.DescribeInstanceTypesRequest(minimum_cpu_core_count=64, cpu_architecture="X86")
    ).body
    assert big.instance_types.instance_type
    assert all(
        t.cpu_core_count >= 64 and t.cpu_architecture == "X86" for t in big.instance_types.instance_type
    )

    chosen = client.describe_instance_types(
        ecs_models.DescribeInstanceTypesRequest(instance_types=["ecs.c7.large", "ecs.r7.xlarge"])
    ).body
    assert sorted(t.instance_type_id for t in chosen.instance_types.instance_type) == [
        "ecs.c7.large",
        "ecs.r7.xlarge",
    ]


def test_aliyun_sdk_core_catalog(live: LiveServer) -> None:
    client = acs_client(live)
    regions = json.loads(client.do_action_with_exception(DescribeRegionsRequest()))
    assert {r["RegionId"] for r in regions["Regions"]["Region"]} == ALL_REGIONS

    zones_request = DescribeZonesRequest()
    zones = json.loads(client.do_action_with_exception(zones_request))  # RegionId comes from the client
    assert [z["ZoneId"] for z in zones["Zones"]["Zone"]] == HANGZHOU_ZONES

    types_request = DescribeInstanceTypesRequest()
    types_request.set_InstanceTypeFamily("ecs.c7")
    types = json.loads(client.do_action_with_exception(types_request))
    ids = [t["InstanceTypeId"] for t in types["InstanceTypes"]["InstanceType"]]
    assert ids and all(i.startswith("ecs.c7.") for i in ids)


def _raw_xml(live: LiveServer, method: str, params: dict[str, str]) -> ET.Element:
    signed = sign_v1(method, {**params, "Format": "XML"}, ROOT_KEY_ID, ROOT_SECRET)
    url = f"http://{live.endpoint}/?{urlencode(signed)}"
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/xml")
        return ET.fromstring(response.read())


def test_raw_xml_catalog(live: LiveServer) -> None:
    root = _raw_xml(live, "GET", {"Action": "DescribeRegions", "Version": "2014-05-26"})
    assert root.tag == "DescribeRegionsResponse" and root.findtext("RequestId")
    assert {e.text for e in root.iterfind("Regions/Region/RegionId")} == ALL_REGIONS

    root = _raw_xml(
        live, "GET", {"Action": "DescribeZones", "Version": "2014-05-26", "RegionId": "cn-hangzhou"}
    )
    assert [e.text for e in root.iterfind("Zones/Zone/ZoneId")] == HANGZHOU_ZONES
    assert "Instance" in [e.text for e in root.iterfind("Zones/Zone/AvailableResourceCreation/ResourceTypes")]

    root = _raw_xml(
        live,
        "POST",
        {"Action": "DescribeInstanceTypes", "Version": "2014-05-26", "InstanceTypeFamily": "ecs.r7"},
    )
    ids = [e.text for e in root.iterfind("InstanceTypes/InstanceType/InstanceTypeId")]
    assert ids and all(i and i.startswith("ecs.r7.") for i in ids)


def test_vpc_regions_and_zones(live: LiveServer) -> None:
    client = tea_vpc(live)
    regions = client.describe_regions(vpc_models.DescribeRegionsRequest()).body
    assert {r.region_id for r in regions.regions.region} == ALL_REGIONS
    assert all(r.region_endpoint.startswith("vpc.") for r in regions.regions.region)
    zones = client.describe_zones(vpc_models.DescribeZonesRequest(region_id="eu-central-1")).body
    region = CATALOG.region("eu-central-1")
    assert region is not None
    assert [z.zone_id for z in zones.zones.zone] == [z.zone_id for z in region.zones]
