"""Field order as ECS writes it: nubes answers with the fields of a recorded ECS answer in the
recorded order, in JSON (key order) and in XML (element order).

The recordings are apache-libcloud's ECS test fixtures, answers recorded from ECS; their element
order, per action and element path, is catalog/data/response_order.json (scripts/
gen_response_order.py, kept equal to the installed fixtures by the first test here). Every
recorded action nubes implements is called on an emulator, against an account owning one of
every resource (test_cross_account's world), once for JSON and once for XML. What is asserted,
for each recorded path (the root, a list's items, a struct inside them) and each order recorded
there:

- every dict (JSON) or element (XML) at that path in nubes' answer has the recorded names it
  holds in the recorded relative order; names nubes writes that the recording lacks may stand
  anywhere (nubes puts them after the recorded ones);
- nubes' answer has at least one dict/element at that path (a list left empty checks nothing);
- nubes writes every recorded name, except those in NOT_WRITTEN, each with its reason (else
  the order of a few fields would pass for the order of all)."""

from __future__ import annotations

import importlib.util
import json
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest

from nubes.actions import all_tables
from nubes.api.order import in_order, merge, recorded
from nubes.api.registry import Registry
from nubes.api.signing import sign_v1
from nubes.client import VERSIONS, base_url

from ..conftest import LiveServer, start_server, stop_server
from .test_cross_account import INSTANCE_TYPE, REGION, Tenant, build

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_response_order.py"

# Recorded names nubes does not write, by action and path, each with why.
NOT_WRITTEN: dict[tuple[str, str], dict[str, str]] = {}

Recipe = Callable[[dict[str, str]], dict[str, str]]

# How to call each recorded action, from the world's IDs; a recorded action nubes implements
# without a recipe here fails the test.
RECIPES: dict[str, Recipe] = {
    "AllocatePublicIpAddress": lambda ids: {"InstanceId": ids["public_instance"]},
    "CopyImage": lambda ids: {"RegionId": REGION, "ImageId": ids["image"], "DestinationRegionId": REGION},
    "CreateDisk": lambda ids: {
        "RegionId": REGION,
        "ZoneId": ids["zone"],
        "Size": "20",
        "DiskCategory": "cloud_essd",
    },
    "CreateImage": lambda ids: {"RegionId": REGION, "InstanceId": ids["instance"]},
    "CreateInstance": lambda ids: {
        "RegionId": REGION,
        "ImageId": ids["system_image"],
        "InstanceType": INSTANCE_TYPE,
        "VSwitchId": ids["vswitch"],
        "SecurityGroupId": ids["securitygroup"],
    },
    "CreateSecurityGroup": lambda ids: {"RegionId": REGION, "VpcId": ids["vpc"]},
    "CreateSnapshot": lambda ids: {"DiskId": ids["disk"]},
    "DescribeDisks": lambda ids: {"RegionId": REGION, "PageSize": "100"},
    "DescribeImages": lambda ids: {"RegionId": REGION, "PageSize": "100"},
    "DescribeInstanceTypes": lambda ids: {"MaxResults": "10"},
    "DescribeInstances": lambda ids: {"RegionId": REGION, "PageSize": "100"},
    "DescribeRegions": lambda ids: {},
    "DescribeSecurityGroupAttribute": lambda ids: {
        "RegionId": REGION,
        "SecurityGroupId": ids["securitygroup"],
    },
    "DescribeSecurityGroups": lambda ids: {"RegionId": REGION},
    "DescribeSnapshots": lambda ids: {"RegionId": REGION},
    "DescribeZones": lambda ids: {"RegionId": REGION},
}


# ---- the check -------------------------------------------------------------------------------


def json_nodes(value: Any, path: str = "") -> Iterator[tuple[str, list[str]]]:
    """(path, keys in order) of every object of a JSON answer; a list's items share its path."""
    if isinstance(value, list):
        for item in value:
            yield from json_nodes(item, path)
    elif isinstance(value, dict):
        yield path, list(value)
        for key, child in value.items():
            yield from json_nodes(child, f"{path}.{key}" if path else key)


def xml_nodes(element: ET.Element, path: str = "") -> Iterator[tuple[str, list[str]]]:
    """(path, child names in order, a repeated name where it first appears) of every element."""
    names: list[str] = []
    for child in element:
        if child.tag not in names:
            names.append(child.tag)
        yield from xml_nodes(child, f"{path}.{child.tag}" if path else child.tag)
    yield path, names


def out_of_order(names: list[str], recorded_order: list[str]) -> str | None:
    """Why `names` (an answer's, in order) do not hold the recorded names in the recorded
    relative order; None if they do."""
    held = [n for n in names if n in recorded_order]
    expected = [n for n in recorded_order if n in held]
    return None if held == expected else f"has {held}, recorded {expected}"


def problems_of(
    action: str, label: str, nodes: list[tuple[str, list[str]]], orders: dict[str, list[list[str]]]
) -> list[str]:
    found: list[str] = []
    for path, sequences in orders.items():
        at_path = [names for p, names in nodes if p == path]
        if not at_path:
            found.append(f"{action} {label}: no {path or 'root'} in the answer to check")
        written = {n for names in at_path for n in names}
        for seq in sequences:
            for names in at_path:
                why = out_of_order(names, seq)
                if why:
                    found.append(f"{action} {label} {path or 'root'}: {why}")
            if at_path:
                excused = NOT_WRITTEN.get((action, path), {})
                absent = [n for n in seq if n not in written and n not in excused]
                if absent:
                    found.append(f"{action} {label} {path or 'root'}: never writes {absent}")
    return found


# ---- calling the server ----------------------------------------------------------------------


def ask(tenant: Tenant, action: str, params: dict[str, str], fmt: str) -> bytes:
    """The raw answer to a signed ECS request (nubes.client.call would parse it)."""
    creds = tenant.creds
    query = {"Action": action, "Version": VERSIONS["ecs"], **params, "Format": fmt}
    signed = sign_v1("POST", query, creds.access_key_id, creds.access_key_secret)
    request = urllib.request.Request(
        f"{base_url(creds.endpoint)}/?{urlencode(signed)}", data=b"", method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body: bytes = response.read()
        return body


def answer(tenant: Tenant, action: str, params: dict[str, str], fmt: str) -> bytes:
    """A successful answer, retried for a minute while what it needs is still settling (a
    snapshot in progress, say)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return ask(tenant, action, params, fmt)
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            if time.monotonic() > deadline:
                raise AssertionError(f"{action} ({fmt}): {error.code} {text}") from None
        time.sleep(0.3)


# ---- the tests -------------------------------------------------------------------------------


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_response_order", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_recorded_order_is_what_the_installed_fixtures_hold() -> None:
    script = load_script()
    text = script.render(script.generate(script.installed_fixtures()))
    committed = resources.files("nubes.catalog").joinpath("data", "response_order.json").read_text("utf-8")
    assert committed == text, (
        "response_order.json is stale: run PYTHONPATH=src python scripts/gen_response_order.py"
    )


def test_the_check_sees_a_field_out_of_order() -> None:
    seq = ["ImageId", "InstanceId", "Status"]
    assert out_of_order(["Extra", "ImageId", "Other", "InstanceId", "Status"], seq) is None
    assert out_of_order(["InstanceId", "ImageId", "Status"], seq) is not None
    nodes = list(xml_nodes(ET.fromstring("<R><B/><A/><B/></R>")))
    assert nodes[-1] == ("", ["B", "A"])
    assert problems_of("X", "JSON", [("", ["A", "B"])], {"": [["B", "A"]]})


def test_in_order_orders_the_recorded_paths_and_leaves_the_rest() -> None:
    orders = {"": ("B", "A"), "L.I": ("Y", "X")}
    body = {"A": 1, "C": {"Z": 0, "Y": 0}, "B": 2, "L": {"I": [{"X": 1, "W": 0, "Y": 2}]}}
    out = in_order(body, orders)
    assert list(out) == ["B", "A", "C", "L"] and list(out["C"]) == ["Z", "Y"]
    assert list(out["L"]["I"][0]) == ["Y", "X", "W"]
    assert merge([["A", "C"], ["A", "B", "C"], ["C", "D"]]) == ("A", "B", "C", "D")
    with pytest.raises(ValueError):
        merge([["A", "B"], ["B", "A"]])


def with_public_bandwidth(tenant: Tenant) -> str:
    """A Running instance with public bandwidth and no EIP, for AllocatePublicIpAddress."""
    ids = tenant.ids
    launched = tenant.ecs(
        "RunInstances",
        RegionId=REGION,
        ImageId=ids["system_image"],
        InstanceType=INSTANCE_TYPE,
        VSwitchId=ids["vswitch"],
        SecurityGroupId=ids["securitygroup"],
        InternetMaxBandwidthOut="5",
    )
    instance_id = str(launched["InstanceIdSets"]["InstanceIdSet"][0])
    tenant.until(
        "DescribeInstanceAttribute", lambda body: body["Status"] == "Running", InstanceId=instance_id
    )
    return instance_id


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """An emulator of its own: the test creates resources, and the store does not matter."""
    started = start_server(
        tmp_path_factory.mktemp("order"),
        None,
        "sqlite",
        ["--throttle-rate", "0", "--public-cidr", "198.18.0.0/16"],
    )
    yield started
    stop_server(started)


def test_recorded_actions_answer_in_the_recorded_order(server: LiveServer) -> None:
    implemented = {s.name for s in Registry(all_tables()).all() if s.product == "ecs"}
    actions = {a: orders for a, orders in recorded("ecs").items() if a in implemented}
    assert set(actions) <= set(RECIPES), f"no recipe for {sorted(set(actions) - set(RECIPES))}"
    tenant = build(server, "order", "10.82")
    tenant.ids["public_instance"] = with_public_bandwidth(tenant)
    problems: list[str] = []
    for action, orders in sorted(actions.items()):
        params = RECIPES[action](tenant.ids)
        as_json = json.loads(answer(tenant, action, params, "JSON"))
        problems += problems_of(action, "JSON", list(json_nodes(as_json)), orders)
        as_xml = ET.fromstring(answer(tenant, action, params, "XML"))
        assert as_xml.tag == f"{action}Response"
        problems += problems_of(action, "XML", list(xml_nodes(as_xml)), orders)
    distinct = sorted(set(problems))  # one line for the many items of a list that share a problem
    assert not distinct, f"{len(distinct)} problems:\n" + "\n".join(distinct)
