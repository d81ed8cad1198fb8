"""Parameter parsing (nubes.api.params): flat wire strings in, typed values keyed by wire name out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nubes.api.params import (
    Boolean,
    Integer,
    Number,
    Param,
    String,
    StringList,
    Struct,
    StructList,
    parse_params,
)
from nubes.errors import ApiError

TAGS = StructList("Tag", [String("Key", max_length=128), String("Value", max_length=128)], max_items=20)
SYSTEM_DISK = Struct("SystemDisk", [Integer("Size", minimum=20, maximum=2048), String("Category")])
DATA_DISKS = StructList(
    "DataDisk",
    [
        Integer("Size", required=True, minimum=20, maximum=32768),
        String("Category"),
        Boolean("DeleteWithInstance"),
    ],
    max_items=16,
)
NETWORK_INTERFACES = StructList(
    "NetworkInterface", [String("VSwitchId"), StringList("SecurityGroupIds", max_items=5)], max_items=2
)
INSTANCE_IDS = StringList("InstanceIds", json_array=True, max_items=3, item_max_length=8)


def parse(specs: Sequence[Param], raw: Mapping[str, str]) -> dict[str, Any]:
    parsed: dict[str, Any] = parse_params(specs, raw)
    return parsed


def rejected(specs: Sequence[Param], raw: Mapping[str, str]) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_params(specs, raw)
    return info.value


# ---- lists of structs: Tag.N.Key ----------------------------------------------------------


def test_tag_list_is_read_from_index_one_in_numeric_order() -> None:
    raw = {"Tag.10.Key": "ten", "Tag.2.Key": "two", "Tag.1.Key": "env", "Tag.1.Value": "prod"}
    assert parse([TAGS], raw) == {
        "Tag": [
            {"Key": "env", "Value": "prod"},
            {"Key": "two", "Value": None},
            {"Key": "ten", "Value": None},
        ]
    }


def test_list_index_zero_is_rejected() -> None:
    error = rejected([TAGS], {"Tag.0.Key": "env"})
    assert error.code == "InvalidParameter"
    assert '"Tag.0"' in error.message and "start at 1" in error.message


def test_non_numeric_list_index_is_rejected() -> None:
    error = rejected([TAGS], {"Tag.first.Key": "env"})
    assert error.code == "InvalidParameter" and "Tag.first" in error.message


def test_list_items_with_only_empty_fields_are_dropped() -> None:
    assert parse([TAGS], {"Tag.1.Key": "", "Tag.2.Key": "team"}) == {"Tag": [{"Key": "team", "Value": None}]}


def test_list_item_field_is_validated_with_its_full_path() -> None:
    error = rejected([TAGS], {"Tag.3.Key": "k" * 129})
    assert error.code == "InvalidParameter" and '"Tag.3.Key"' in error.message


def test_list_given_as_a_scalar_is_rejected_unless_json_arrays_are_allowed() -> None:
    error = rejected([TAGS], {"Tag": "env"})
    assert error.code == "InvalidParameter"
    error = rejected([StringList("HostNames")], {"HostNames": '["a", "b"]'})
    assert error.code == "InvalidParameter" and "HostNames.1" in error.message


_TEXT = st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"])  # NUL, surrogates: refused


@given(
    st.lists(
        st.tuples(st.text(_TEXT, min_size=1, max_size=20), st.text(_TEXT, min_size=1, max_size=20)),
        min_size=1,
        max_size=20,
    )
)
def test_tag_lists_round_trip(tags: list[tuple[str, str]]) -> None:
    raw: dict[str, str] = {}
    for n, (key, value) in enumerate(tags, start=1):
        raw[f"Tag.{n}.Key"] = key
        raw[f"Tag.{n}.Value"] = value
    assert parse([TAGS], raw)["Tag"] == [{"Key": k, "Value": v} for k, v in tags]


# ---- max_items ---------------------------------------------------------------------------


def test_max_items_limits_the_number_of_items() -> None:
    raw = {f"NetworkInterface.{n}.VSwitchId": f"vsw-{n}" for n in (1, 2, 3)}
    error = rejected([NETWORK_INTERFACES], raw)
    assert error.code == "InvalidParameter" and "At most 2" in error.message


def test_max_items_limits_the_index() -> None:
    error = rejected([NETWORK_INTERFACES], {"NetworkInterface.3.VSwitchId": "vsw-3"})
    assert error.code == "InvalidParameter" and '"NetworkInterface.3"' in error.message


def test_max_items_allows_exactly_the_limit() -> None:
    raw = {f"Tag.{n}.Key": f"k{n}" for n in range(1, 21)}
    assert len(parse([TAGS], raw)["Tag"]) == 20


# ---- structs and nested structs ------------------------------------------------------------


def test_struct_fields_are_typed() -> None:
    parsed = parse([SYSTEM_DISK], {"SystemDisk.Size": "40", "SystemDisk.Category": "cloud_essd"})
    assert parsed == {"SystemDisk": {"Size": 40, "Category": "cloud_essd"}}


def test_absent_struct_is_none() -> None:
    assert parse([SYSTEM_DISK], {}) == {"SystemDisk": None}


def test_struct_given_as_a_scalar_is_rejected() -> None:
    error = rejected([SYSTEM_DISK], {"SystemDisk": "40"})
    assert error.code == "InvalidParameter" and "SystemDisk.Size" in error.message


def test_data_disk_structs_in_a_list() -> None:
    raw = {
        "DataDisk.1.Size": "100",
        "DataDisk.1.Category": "cloud_essd",
        "DataDisk.1.DeleteWithInstance": "true",
        "DataDisk.2.Size": "200",
    }
    assert parse([DATA_DISKS], raw) == {
        "DataDisk": [
            {"Size": 100, "Category": "cloud_essd", "DeleteWithInstance": True},
            {"Size": 200, "Category": None, "DeleteWithInstance": None},
        ]
    }


def test_nested_struct_field_out_of_range_names_its_path() -> None:
    error = rejected([DATA_DISKS], {"DataDisk.2.Size": "10", "DataDisk.1.Size": "100"})
    assert error.code == "InvalidParameter"
    assert '"DataDisk.2.Size"' in error.message and "at least 20" in error.message


def test_required_field_of_a_list_item() -> None:
    error = rejected([DATA_DISKS], {"DataDisk.1.Category": "cloud_essd"})
    assert error.code == "MissingParameter.DataDisk.1.Size"


def test_list_inside_a_list_of_structs() -> None:
    raw = {
        "NetworkInterface.1.VSwitchId": "vsw-1",
        "NetworkInterface.1.SecurityGroupIds.2": "sg-b",
        "NetworkInterface.1.SecurityGroupIds.1": "sg-a",
    }
    assert parse([NETWORK_INTERFACES], raw) == {
        "NetworkInterface": [{"VSwitchId": "vsw-1", "SecurityGroupIds": ["sg-a", "sg-b"]}]
    }


# ---- JSON array strings ------------------------------------------------------------------


def test_json_array_string() -> None:
    assert parse([INSTANCE_IDS], {"InstanceIds": '["i-1", "i-2"]'}) == {"InstanceIds": ["i-1", "i-2"]}


def test_json_array_list_also_accepts_indexed_form() -> None:
    assert parse([INSTANCE_IDS], {"InstanceIds.2": "i-2", "InstanceIds.1": "i-1"}) == {
        "InstanceIds": ["i-1", "i-2"]
    }


@pytest.mark.parametrize("text", ["i-1", '{"a": 1}', '"i-1"', "[", '[["i-1"]]', "[true]", "[null]", "[1.5]"])
def test_json_array_that_is_not_an_array_of_strings_is_rejected(text: str) -> None:
    error = rejected([INSTANCE_IDS], {"InstanceIds": text})
    assert error.code == "InvalidParameter" and '"InstanceIds"' in error.message


def test_json_array_respects_max_items_and_item_length() -> None:
    assert rejected([INSTANCE_IDS], {"InstanceIds": '["a", "b", "c", "d"]'}).code == "InvalidParameter"
    error = rejected([INSTANCE_IDS], {"InstanceIds": '["i-123456789"]'})
    assert error.code == "InvalidParameter" and "at most 8" in error.message


def test_empty_json_array_for_a_required_list_is_missing() -> None:
    spec = StringList("KeyPairNames", required=True, json_array=True)
    assert rejected([spec], {"KeyPairNames": "[]"}).code == "MissingParameter.KeyPairNames"


def test_empty_string_in_json_array_is_not_passed_on_as_none() -> None:
    try:
        parsed = parse([INSTANCE_IDS], {"InstanceIds": '["", "i-1"]'})
    except ApiError as error:
        assert error.code == "InvalidParameter"
    else:
        assert None not in parsed["InstanceIds"]


def test_empty_name_segment_under_a_json_array_list_is_a_client_error() -> None:
    try:
        parse([INSTANCE_IDS], {"InstanceIds..x": "i-1"})
    except ApiError as error:
        assert error.http_status == 400


# ---- scalars -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("True", True), ("false", False), ("False", False)]
)
def test_booleans(text: str, value: bool) -> None:
    assert parse([Boolean("DryRun")], {"DryRun": text}) == {"DryRun": value}


@pytest.mark.parametrize("text", ["1", "0", "yes", "no", "t", " true"])
def test_other_boolean_spellings_are_rejected(text: str) -> None:
    error = rejected([Boolean("DryRun")], {"DryRun": text})
    assert error.code == "InvalidParameter" and '"DryRun"' in error.message


def test_integer_bounds() -> None:
    spec = Integer("PageSize", minimum=1, maximum=50)
    assert parse([spec], {"PageSize": "1"}) == {"PageSize": 1}
    assert parse([spec], {"PageSize": "50"}) == {"PageSize": 50}
    low = rejected([spec], {"PageSize": "0"})
    high = rejected([spec], {"PageSize": "51"})
    assert low.code == high.code == "InvalidParameter"
    assert "at least 1" in low.message and "at most 50" in high.message


@pytest.mark.parametrize("text", ["1.5", "ten", "0x10", "1e3", "99999999999999999999"])
def test_non_integers_are_rejected(text: str) -> None:
    assert rejected([Integer("Amount")], {"Amount": text}).code == "InvalidParameter"


def test_numbers() -> None:
    assert parse([Number("Memory", minimum=0)], {"Memory": "0.5"}) == {"Memory": 0.5}
    for text in ("nan", "inf", "-1", "lots"):
        assert rejected([Number("Memory", minimum=0)], {"Memory": text}).code == "InvalidParameter"


def test_string_limits_choices_and_pattern() -> None:
    assert rejected([String("Name", max_length=3)], {"Name": "abcd"}).code == "InvalidParameter"
    error = rejected([String("Charge", choices=("PrePaid", "PostPaid"))], {"Charge": "Free"})
    assert error.code == "InvalidParameter" and "PrePaid, PostPaid" in error.message
    assert rejected([String("Id", pattern=r"i-[a-z0-9]+")], {"Id": "i-1 "}).code == "InvalidParameter"
    assert parse([String("Id", pattern=r"i-[a-z0-9]+")], {"Id": "i-1a"}) == {"Id": "i-1a"}


# ---- required, defaults, unknown ---------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        String("RegionId", required=True),
        Integer("Amount", required=True),
        StructList("Tag", [String("Key")], required=True),
        Struct("SystemDisk", [String("Category")], required=True),
    ],
    ids=["string", "integer", "list", "struct"],
)
def test_required_missing_is_missing_parameter_with_the_name(spec: Param) -> None:
    error = rejected([spec], {})
    assert error.code == f"MissingParameter.{spec.name}"
    assert error.http_status == 400 and spec.name in error.message


def test_required_string_given_empty_is_missing() -> None:
    assert rejected([String("RegionId", required=True)], {"RegionId": ""}).code == "MissingParameter.RegionId"


def test_defaults_apply_to_absent_and_empty_values() -> None:
    specs = [
        String("Lang", default="zh-CN"),
        Integer("PageSize", default=10),
        Boolean("Verbose", default=True),
    ]
    assert parse(specs, {}) == {"Lang": "zh-CN", "PageSize": 10, "Verbose": True}
    assert parse(specs, {"Lang": "", "PageSize": ""}) == {"Lang": "zh-CN", "PageSize": 10, "Verbose": True}


def test_unknown_parameters_are_ignored() -> None:
    raw = {"RegionId": "cn-hangzhou", "OwnerId": "1", "Tag.1.Key": "x", "Nonsense.0.Thing": "y"}
    assert parse([String("RegionId", required=True)], raw) == {"RegionId": "cn-hangzhou"}


def test_every_declared_parameter_is_in_the_result() -> None:
    specs = [String("A"), Integer("B"), TAGS, SYSTEM_DISK, INSTANCE_IDS]
    assert set(parse(specs, {})) == {"A", "B", "Tag", "SystemDisk", "InstanceIds"}


def test_a_value_nubes_does_not_do_is_refused_by_name() -> None:
    hibernate = Boolean("Hibernate", unsupported_values=(True,), unsupported_because="no hibernation")
    assert parse_params([hibernate], {"Hibernate": "false"}) == {"Hibernate": False}
    error = rejected([hibernate], {"Hibernate": "true"})
    assert error.code == "InvalidParameter.NotSupported"
    assert '"Hibernate"' in error.message and "true" in error.message and "no hibernation" in error.message


def test_numbers_from_a_bound_up_are_refused() -> None:
    bandwidth = Integer("InternetMaxBandwidthOut", unsupported_from=1, unsupported_because="no public IP")
    assert parse_params([bandwidth], {"InternetMaxBandwidthOut": "0"}) == {"InternetMaxBandwidthOut": 0}
    assert rejected([bandwidth], {"InternetMaxBandwidthOut": "5"}).code == "InvalidParameter.NotSupported"
