"""The nubes command line as a user runs it: `nubes ecs|vpc Action --Param value`, output, profiles."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nubes.actions import all_tables
from nubes.catalog.model import load_catalog

from ..conftest import ROOT_KEY_ID, ROOT_SECRET, LiveServer, free_port

CATALOG = load_catalog()
CLIENT_ENV = (
    "NUBES_ENDPOINT",
    "NUBES_REGION",
    "NUBES_PROFILE",
    "NUBES_ACCESS_KEY_ID",
    "NUBES_ACCESS_KEY_SECRET",
)


def zone_ids(region_id: str) -> list[str]:
    region = CATALOG.region(region_id)
    assert region is not None
    return [z.zone_id for z in region.zones]


def actions_of(product: str) -> list[str]:
    return sorted(s.name for t in all_tables() if t.product == product for s in t.specs)


def flat(text: str) -> str:
    """Terminal output with its line wrapping undone."""
    return " ".join(text.split())


@pytest.fixture(autouse=True)
def clean_client_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No endpoint, key or profile leaks in from the environment; profiles live in a temporary dir."""
    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    config_home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    return config_home


@pytest.fixture
def cli(live: LiveServer) -> LiveServer:
    """The session's server, SQLite only: the CLI is a client of the HTTP API, and nothing it does
    depends on the store behind the server."""
    if live.backend != "sqlite":
        pytest.skip("CLI behaviour does not depend on the store backend: run once, against SQLite")
    return live


def root_env(live: LiveServer, **extra: str) -> dict[str, str]:
    return {
        "NUBES_ENDPOINT": live.endpoint,
        "NUBES_ACCESS_KEY_ID": ROOT_KEY_ID,
        "NUBES_ACCESS_KEY_SECRET": ROOT_SECRET,
        **extra,
    }


def call_json(live: LiveServer, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = live.nubes(*args, check=False, env=env if env is not None else root_env(live))
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    body: dict[str, Any] = json.loads(result.stdout)
    return body


def run_offline(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with no server: only commands that never call the API."""
    env = {**os.environ, "NUBES_HOME": str(tmp_path / "home")}
    return subprocess.run(
        [sys.executable, "-m", "nubes.cli.main", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


# ---- calling actions -------------------------------------------------------------------------


def test_describe_regions_prints_json_with_a_request_id(cli: LiveServer) -> None:
    body = call_json(cli, "ecs", "DescribeRegions")
    assert re.fullmatch(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}", body["RequestId"])
    regions = {r["RegionId"]: r for r in body["Regions"]["Region"]}
    assert set(regions) == {r.region_id for r in CATALOG.regions}
    assert (
        regions["cn-hangzhou"]["LocalName"] == "华东1（杭州）"
    )  # zh-CN unless AcceptLanguage says otherwise


@pytest.mark.parametrize(
    "args",
    [("--InstanceTypeFamily", "ecs.g7"), ("--InstanceTypeFamily=ecs.g7",)],
    ids=["separate-value", "equals-value"],
)
def test_describe_instance_types_with_a_filter(cli: LiveServer, args: tuple[str, ...]) -> None:
    body = call_json(cli, "ecs", "DescribeInstanceTypes", *args)
    ids = [t["InstanceTypeId"] for t in body["InstanceTypes"]["InstanceType"]]
    family = CATALOG.family("ecs.g7")
    assert family is not None
    assert ids == [t.type_id for t in family.types]


def test_vpc_describe_zones(cli: LiveServer) -> None:
    body = call_json(cli, "vpc", "DescribeZones", "--RegionId", "cn-hangzhou")
    assert body["RequestId"]
    assert [z["ZoneId"] for z in body["Zones"]["Zone"]] == zone_ids("cn-hangzhou")
    assert all(set(z) == {"ZoneId", "LocalName", "ZoneType"} for z in body["Zones"]["Zone"])


def test_output_as_a_table(cli: LiveServer) -> None:
    result = cli.nubes(
        "ecs",
        "DescribeRegions",
        "--AcceptLanguage",
        "en-US",
        "--output",
        "cols=RegionId,LocalName rows=Regions.Region[]",
        check=False,
        env=root_env(cli),
    )
    assert result.returncode == 0, result.stderr
    rows = [
        [c.strip() for c in line.strip("│").split("│")]
        for line in result.stdout.splitlines()
        if line.startswith("│")
    ]
    header = [line for line in result.stdout.splitlines() if "RegionId" in line]
    assert header and "LocalName" in header[0]
    assert ["cn-hangzhou", "China (Hangzhou)"] in rows
    assert len(rows) == len(CATALOG.regions)
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)


def test_bad_output_spec_is_a_usage_error(cli: LiveServer) -> None:
    result = cli.nubes(
        "ecs", "DescribeRegions", "--output", "rows=Regions.Region[]", check=False, env=root_env(cli)
    )
    assert result.returncode == 2
    assert "cols=" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "detail"),
    [
        (("ecs", "DescribeZones", "--RegionId", "xx-nowhere-1"), "InvalidRegionId.NotFound", "xx-nowhere-1"),
        (("ecs", "DescribeKeyPairs", "--PageSize", "51"), "InvalidParameter", '"PageSize" is not valid'),
        (("ecs", "NoSuchAction"), "InvalidAction.NotFound", "NoSuchAction"),
    ],
    ids=["not-found", "invalid-parameter", "unknown-action"],
)
def test_api_error_prints_code_and_message_and_fails(
    cli: LiveServer, args: tuple[str, ...], code: str, detail: str
) -> None:
    result = cli.nubes(*args, check=False, env=root_env(cli))
    assert result.returncode != 0
    assert result.stdout == ""
    stderr = flat(result.stderr)
    assert f"{code}:" in stderr and detail in stderr
    assert re.search(r"RequestId: [0-9A-F-]{36}", stderr)


def test_wrong_secret_is_reported(cli: LiveServer) -> None:
    result = cli.nubes(
        "ecs", "DescribeRegions", check=False, env=root_env(cli, NUBES_ACCESS_KEY_SECRET="not-the-secret")
    )
    assert result.returncode != 0
    assert "SignatureDoesNotMatch" in result.stderr
    assert "not-the-secret" not in result.stderr


def test_unreachable_endpoint_is_reported(cli: LiveServer) -> None:
    result = cli.nubes(
        "ecs", "DescribeRegions", check=False, env=root_env(cli, NUBES_ENDPOINT=f"127.0.0.1:{free_port()}")
    )
    assert result.returncode != 0
    assert "SDK.ServerUnreachable" in result.stderr


def test_no_credentials_at_all(tmp_path: Path) -> None:
    result = run_offline(tmp_path, "ecs", "DescribeRegions", "--endpoint", f"127.0.0.1:{free_port()}")
    assert result.returncode != 0
    assert "no credentials" in result.stderr and "nubes configure" in result.stderr


# ---- where the endpoint, region and key come from ------------------------------------------


def configure(cli: LiveServer, profile: str, region: str) -> subprocess.CompletedProcess[str]:
    return cli.nubes(
        "configure",
        "--profile",
        profile,
        "--endpoint",
        cli.endpoint,
        "--region",
        region,
        "--access-key-id",
        ROOT_KEY_ID,
        "--access-key-secret",
        ROOT_SECRET,
        check=False,
        env={},
    )


def test_configure_saves_private_profiles_that_later_calls_use(
    cli: LiveServer, clean_client_env: Path
) -> None:
    configured = configure(cli, "p", "cn-beijing")
    assert configured.returncode == 0, configured.stderr
    assert configure(cli, "q", "cn-shanghai").returncode == 0
    path = clean_client_env / "nubes" / "config.json"
    assert str(path) in flat(configured.stdout)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    profiles = {p["name"]: p for p in json.loads(path.read_text())["profiles"]}
    assert set(profiles) == {"p", "q"}, "saving a profile keeps the others"
    assert profiles["p"]["endpoint"] == cli.endpoint and profiles["p"]["region_id"] == "cn-beijing"
    assert (profiles["p"]["access_key_id"], profiles["p"]["access_key_secret"]) == (ROOT_KEY_ID, ROOT_SECRET)

    # no NUBES_* variables: endpoint, region and key all come from the profile
    chosen = call_json(cli, "ecs", "DescribeZones", "--profile", "p", env={})
    assert [z["ZoneId"] for z in chosen["Zones"]["Zone"]] == zone_ids("cn-beijing")
    by_env = call_json(cli, "vpc", "DescribeZones", env={"NUBES_PROFILE": "q"})
    assert [z["ZoneId"] for z in by_env["Zones"]["Zone"]] == zone_ids("cn-shanghai")
    # the environment beats the profile
    env_region = call_json(cli, "ecs", "DescribeZones", "--profile", "p", env={"NUBES_REGION": "cn-hangzhou"})
    assert [z["ZoneId"] for z in env_region["Zones"]["Zone"]] == zone_ids("cn-hangzhou")


def test_configure_makes_an_existing_profile_file_private(tmp_path: Path, clean_client_env: Path) -> None:
    path = clean_client_env / "nubes" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"profiles": []}')
    path.chmod(0o644)
    result = run_offline(
        tmp_path,
        "configure",
        "--profile",
        "p",
        "--endpoint",
        "127.0.0.1:1",
        "--region",
        "cn-hangzhou",
        "--access-key-id",
        "LTAIsomeone",
        "--access-key-secret",
        "someSecret",
    )
    assert result.returncode == 0, result.stderr
    assert "someSecret" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_endpoint_and_region_flags_beat_the_environment(cli: LiveServer) -> None:
    env = root_env(cli, NUBES_ENDPOINT=f"127.0.0.1:{free_port()}", NUBES_REGION="cn-shanghai")
    body = call_json(
        cli, "ecs", "DescribeZones", "--endpoint", cli.endpoint, "--region", "cn-beijing", env=env
    )
    assert [z["ZoneId"] for z in body["Zones"]["Zone"]] == zone_ids("cn-beijing")


def test_explicit_region_id_parameter_beats_the_region_flag(cli: LiveServer) -> None:
    body = call_json(cli, "vpc", "DescribeZones", "--region", "cn-shanghai", "--RegionId", "cn-beijing")
    assert [z["ZoneId"] for z in body["Zones"]["Zone"]] == zone_ids("cn-beijing")


# ---- help ----------------------------------------------------------------------------------


def test_action_help_lists_its_parameters(tmp_path: Path) -> None:
    result = run_offline(tmp_path, "ecs", "DescribeZones", "--help")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip().startswith("--")}
    assert set(lines) == {
        "--RegionId",
        "--AcceptLanguage",
        "--InstanceChargeType",
        "--SpotStrategy",
        "--Verbose",
    }
    assert "required" in lines["--RegionId"]
    assert "boolean" in lines["--Verbose"]
    assert "zh-CN|en-US|ja" in lines["--AcceptLanguage"]


def test_help_of_list_and_struct_parameters(tmp_path: Path) -> None:
    result = run_offline(tmp_path, "ecs", "DeleteKeyPairs", "--help")
    assert result.returncode == 0
    assert "--KeyPairNames.N" in result.stdout and "JSON array accepted" in result.stdout


@pytest.mark.parametrize("product", ["ecs", "vpc"])
def test_product_alone_lists_its_actions(tmp_path: Path, product: str) -> None:
    result = run_offline(tmp_path, product)
    assert result.returncode == 0, result.stderr
    _, marker, actions_part = result.stdout.partition(f"{product.upper()} actions:")
    assert marker, result.stdout
    listed = re.findall(r"^  ([A-Z][A-Za-z]+)\s", actions_part, flags=re.MULTILINE)
    assert sorted(listed) == actions_of(product)
    assert f"nubes {product} ActionName" in flat(result.stdout)
