"""Response rendering (nubes.api.render): compact JSON by default, ECS-shaped XML with Format=XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from nubes.api.render import JSON_TYPE, XML_TYPE, render, render_xml

REGIONS: dict[str, Any] = {
    "RequestId": "R-1",
    "Regions": {
        "Region": [
            {"RegionId": "cn-hangzhou", "LocalName": "华东1（杭州）"},
            {"RegionId": "cn-beijing", "LocalName": "华北2（北京）"},
        ]
    },
}


def xml_root(body: dict[str, Any], root: str = "TestResponse") -> ET.Element:
    payload, content_type = render(body, root, "XML")
    assert content_type == XML_TYPE
    return ET.fromstring(payload)


def test_json_is_compact_utf8_and_typed() -> None:
    payload, content_type = render(
        {**REGIONS, "Verbose": True, "Off": False, "Count": 2, "Size": 8.0}, "R", "JSON"
    )
    assert content_type == JSON_TYPE == "application/json;charset=utf-8"
    text = payload.decode("utf-8")
    assert "华东1（杭州）" in text and "\\u" not in text
    assert '"Verbose":true' in text and '"Off":false' in text and ", " not in text
    assert json.loads(payload) == {**REGIONS, "Verbose": True, "Off": False, "Count": 2, "Size": 8.0}


def test_unknown_format_falls_back_to_json() -> None:
    assert render({"A": 1}, "R", "YAML") == (b'{"A":1}', JSON_TYPE)


def test_xml_root_declaration_and_children() -> None:
    payload = render_xml({"RequestId": "R-1", "TotalCount": 3}, "DescribeKeyPairsResponse")
    assert payload.startswith(b'<?xml version="1.0" encoding="UTF-8"?><DescribeKeyPairsResponse>')
    root = ET.fromstring(payload)
    assert root.tag == "DescribeKeyPairsResponse"
    assert [(child.tag, child.text) for child in root] == [("RequestId", "R-1"), ("TotalCount", "3")]


def test_xml_repeats_list_items_under_their_parent_key() -> None:
    root = xml_root(REGIONS)
    regions = root.find("Regions")
    assert regions is not None
    assert [child.tag for child in regions] == ["Region", "Region"]
    assert [e.text for e in root.iterfind("Regions/Region/RegionId")] == ["cn-hangzhou", "cn-beijing"]
    assert root.findtext("Regions/Region/LocalName") == "华东1（杭州）"


def test_xml_scalar_lists_repeat_the_key() -> None:
    root = xml_root({"AvailableResourceCreation": {"ResourceTypes": ["Instance", "Disk"]}})
    assert [e.text for e in root.iterfind("AvailableResourceCreation/ResourceTypes")] == ["Instance", "Disk"]


def test_xml_empty_list_leaves_an_empty_parent() -> None:
    root = xml_root({"Tags": {"Tag": []}})
    tags = root.find("Tags")
    assert tags is not None and list(tags) == []


def test_xml_booleans_are_lowercase_and_none_is_empty() -> None:
    root = xml_root({"IoOptimized": True, "Sriov": False, "Missing": None, "Size": 8.5})
    assert root.findtext("IoOptimized") == "true"
    assert root.findtext("Sriov") == "false"
    assert root.findtext("Missing") in ("", None)
    assert root.findtext("Size") == "8.5"


def test_xml_escapes_markup() -> None:
    payload = render_xml({"Message": "a<b>&c</Message><Evil>"}, "Error")
    assert b"<Evil>" not in payload
    assert ET.fromstring(payload).findtext("Message") == "a<b>&c</Message><Evil>"


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xD7FF)))
def test_xml_round_trips_any_printable_text(text: str) -> None:
    assert xml_root({"Description": text}).findtext("Description") == text


def test_xml_stays_well_formed_with_control_characters() -> None:
    ET.fromstring(
        render_xml({"Message": 'The specified parameter "InstanceTypes.\x01" is not valid.'}, "Error")
    )


def test_xml_structs_of_empty_values_keep_every_field() -> None:
    """Fields with nothing in them (the SDK models' empty values) are elements still, so an XML
    reader finds each; an empty struct and a list item without fields are empty elements."""
    root = xml_root(
        {
            "Attachment": {"InstanceId": "", "DeviceIndex": 0, "Enabled": False},
            "NetworkInfo": {"WeightingInfos": {"WeightingInfo": [{}]}},
            "Options": {},
        }
    )
    assert [(e.tag, e.text) for e in root.iterfind("Attachment/*")] == [
        ("InstanceId", None),
        ("DeviceIndex", "0"),
        ("Enabled", "false"),
    ]
    [item] = root.iterfind("NetworkInfo/WeightingInfos/WeightingInfo")
    assert list(item) == [] and not item.text
    options = root.find("Options")
    assert options is not None and list(options) == []
