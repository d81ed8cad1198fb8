"""The committed official API catalogs (src/nubes/catalog/data/api) are exactly what
scripts/gen_api_catalog.py makes from the installed SDKs, and say what the SDKs say.

The SDK packages are in the `test` extra: without them this fails, it does not skip."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from nubes.catalog.official_api import PRODUCTS, official_actions

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gen_api_catalog.py"


@cache
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_api_catalog", SCRIPT)
    assert spec is not None and spec.loader is not None, f"{SCRIPT} is missing"
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@cache
def generated(product: str) -> dict[str, Any]:
    catalog: dict[str, Any] = generator().generate(product)  # ~1 s a product: parse client.py, probe models
    return catalog


@pytest.mark.parametrize("product", PRODUCTS)
def test_the_committed_catalog_is_what_the_installed_sdk_generates(product: str) -> None:
    committed = (
        resources.files("nubes.catalog")
        .joinpath("data", "api", f"{product}.json")
        .read_text(encoding="utf-8")
    )
    fresh = generated(product)
    if generator().render(fresh) == committed:
        return
    # name the differing actions rather than let pytest diff half a megabyte of text
    old = official_actions(product)
    changed = sorted(a for a in set(old) | set(fresh) if old.get(a) != fresh.get(a))
    pytest.fail(
        f"{product}.json is stale for {len(changed)} actions ({', '.join(changed[:10])}...): "
        f"run PYTHONPATH=src python scripts/gen_api_catalog.py and commit the result"
        if changed
        else f"{product}.json differs from the generator's output only in layout: regenerate it"
    )


def test_the_catalogs_hold_every_action_of_the_sdks() -> None:
    assert len(official_actions("ecs")) >= 380
    assert len(official_actions("vpc")) >= 403
    for product in PRODUCTS:
        for name, entry in official_actions(product).items():
            assert set(entry["request"]) == set(entry["request_types"]), f"{product}:{name}"
            assert entry["response"] == sorted(entry["response_shape"]), f"{product}:{name}"
            assert entry["style"] == "RPC", f"{product}:{name}"


def test_flat_wire_names_and_types() -> None:
    run = official_actions("ecs")["RunInstances"]
    types = run["request_types"]
    assert types["SystemDisk.Size"] == "string"  # sic: the SDK types it str, DataDisk.N.Size int
    assert types["DataDisk.N.Size"] == "integer"
    assert types["Tag.N.Key"] == "string"
    assert types["NetworkInterface.N.SecurityGroupIds.N"] == "string"
    assert types["DataDisk.N.DeleteWithInstance"] == "boolean"
    assert types["SpotPriceLimit"] == "number"
    assert run["sdk_method"] == "run_instances"
    assert run["response_shape"]["InstanceIdSets"] == {"InstanceIdSet": ["string"]}


def test_names_the_sdk_spells_its_own_way() -> None:
    ecs = official_actions("ecs")
    # lower-camel wire names, and JSON-array strings, straight from the model's to_map and docs
    assert ecs["ApplyAutoSnapshotPolicy"]["request"] == [
        "autoSnapshotPolicyId",
        "diskIds",
        "OwnerId",
        "regionId",
        "ResourceOwnerAccount",
        "ResourceOwnerId",
    ]
    assert ecs["ApplyAutoSnapshotPolicy"]["json_array_string_params"] == ["diskIds"]
    assert "InstanceIds" in ecs["DescribeInstances"]["json_array_string_params"]
    assert "Ipv6Address.N" in ecs["DescribeInstances"]["request"]  # attribute ipv_6address
    # the SDK's method name, even where its generator dropped an underscore in the _with_options one
    assert ecs["EnableNetworkInterfaceQoS"]["sdk_method"] == "enable_network_interface_qo_s"


def test_encoded_and_body_parameters() -> None:
    ecs, vpc = official_actions("ecs"), official_actions("vpc")
    assert ecs["RunCommand"]["request_types"]["Parameters"] == "json"
    assert ecs["RunCommand"]["encoded_params"] == {"Parameters": {"style": "json", "shape": {"{key}": "any"}}}
    assert vpc["GrantInstanceToVbr"]["encoded_params"] == {
        "VbrInstanceIds": {"style": "simple", "shape": "simple"}
    }
    vpn = vpc["CreateVpnConnection"]
    assert vpn["request_location"] == ["body", "query"]
    assert "TunnelOptionsSpecification.N.TunnelIkeConfig.Psk" in vpn["body_params"]
    assert vpc["DescribeVpnGatewayAvailableZones"]["method"] == "GET"
    assert vpc["ListGeographicSubRegions"]["request"] == []


def test_an_unknown_product_fails_loudly() -> None:
    with pytest.raises(ValueError):
        official_actions("rds")
