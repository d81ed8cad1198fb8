"""Disk categories: size ranges, the published performance formulas, and the ECS errors."""

from __future__ import annotations

import pytest

from nubes.domain import disk_categories as dc
from nubes.domain.disk_categories import DiskLimits, bytes_per_second, limits, validate
from nubes.errors import ApiError


def _error(excinfo: pytest.ExceptionInfo[ApiError]) -> tuple[str, int]:
    return excinfo.value.code, excinfo.value.http_status


# ---------------------------------------------------------------------------------------------
# limits(): the formulas at the smallest size, in the linear part, at and past the caps


@pytest.mark.parametrize(
    "category, size, level, iops, mbps",
    [
        # ESSD PL1: min{1800 + 50C, 50000}, min{120 + 0.5C, 350}
        ("cloud_essd", 20, "PL1", 2_800, 130),
        ("cloud_essd", 21, "PL1", 2_850, 130),  # 130.5 MB/s rounds down
        ("cloud_essd", 460, "PL1", 24_800, 350),  # throughput cap reached first
        ("cloud_essd", 963, "PL1", 49_950, 350),
        ("cloud_essd", 964, "PL1", 50_000, 350),
        ("cloud_essd", 32_768, "PL1", 50_000, 350),
        # PL0: min{1800 + 12C, 10000}, min{100 + 0.25C, 180}
        ("cloud_essd", 1, "PL0", 1_812, 100),
        ("cloud_essd", 40, "PL0", 2_280, 110),
        ("cloud_essd", 320, "PL0", 5_640, 180),
        ("cloud_essd", 683, "PL0", 9_996, 180),
        ("cloud_essd", 684, "PL0", 10_000, 180),
        # PL2: caps 100,000 and 750
        ("cloud_essd", 461, "PL2", 24_850, 350),
        ("cloud_essd", 1_000, "PL2", 51_800, 620),
        ("cloud_essd", 1_260, "PL2", 64_800, 750),
        ("cloud_essd", 1_964, "PL2", 100_000, 750),
        # PL3: caps 1,000,000 and 4,000
        ("cloud_essd", 1_261, "PL3", 64_850, 750),
        ("cloud_essd", 7_760, "PL3", 389_800, 4_000),
        ("cloud_essd", 19_964, "PL3", 1_000_000, 4_000),
        ("cloud_essd", 65_536, "PL3", 1_000_000, 4_000),
        # standard SSD: min{1800 + 30C, 25000}, min{120 + 0.5C, 300}
        ("cloud_ssd", 20, "", 2_400, 130),
        ("cloud_ssd", 360, "", 12_600, 300),
        ("cloud_ssd", 774, "", 25_000, 300),
        # ultra disk: min{1800 + 8C, 5000}, min{100 + 0.15C, 140}
        ("cloud_efficiency", 20, "", 1_960, 103),
        ("cloud_efficiency", 100, "", 2_600, 115),
        ("cloud_efficiency", 267, "", 3_936, 140),  # 140.05 -> capped
        ("cloud_efficiency", 400, "", 5_000, 140),
        # ESSD Entry: min{1800 + 8C, 6000}, min{100 + 0.15C, 150}
        ("cloud_essd_entry", 10, "", 1_880, 101),  # 101.5 rounds down
        ("cloud_essd_entry", 334, "", 4_472, 150),
        ("cloud_essd_entry", 525, "", 6_000, 150),
        # basic disk: no formula, fixed figures
        ("cloud", 5, "", 300, 40),
        ("cloud", 2_000, "", 300, 40),
    ],
)
def test_formulas(category: str, size: int, level: str, iops: int, mbps: int) -> None:
    assert limits(category, size, level) == DiskLimits(iops, mbps)


def test_essd_defaults_to_pl1() -> None:
    assert limits("cloud_essd", 100) == limits("cloud_essd", 100, "PL1") == DiskLimits(6_800, 170)
    assert dc.effective_performance_level("cloud_essd") == "PL1"
    assert dc.effective_performance_level("cloud_essd", "PL3") == "PL3"
    assert dc.effective_performance_level("cloud_ssd") == ""
    assert dc.CATEGORIES["cloud_essd"].default_performance_level == "PL1"
    assert dc.size_range("cloud_essd") == dc.SizeRange(20, 65_536)


@pytest.mark.parametrize(
    "size, iops, mbps",
    [
        (1, 3_000, 125),  # the baseline floors
        (20, 3_000, 130),  # 2,800 IOPS raised to 3,000
        (24, 3_000, 132),
        (25, 3_050, 132),
        (40, 3_800, 140),
        (964, 50_000, 350),
    ],
)
def test_autopl_baseline(size: int, iops: int, mbps: int) -> None:
    assert limits("cloud_auto", size) == DiskLimits(iops, mbps)


def test_autopl_provisioned_adds_16_kb_per_iops() -> None:
    # 40 GiB: baseline 3,800 IOPS / 140 MB/s; 2,200 provisioned IOPS add 2,200 x 16 / 1,024 = 34.375 MB/s
    assert limits("cloud_auto", 40, "", 2_200) == DiskLimits(6_000, 174)
    assert limits("cloud_auto", 1_000, "", 50_000) == DiskLimits(100_000, 1_131)


@pytest.mark.parametrize(
    "size, ceiling",
    [(1, 0), (3, 0), (4, 1_000), (10, 7_000), (40, 36_200), (55, 50_000), (1_000, 50_000)],
)
def test_autopl_provisioning_ceiling(size: int, ceiling: int) -> None:
    assert dc.max_provisioned_iops(size) == ceiling
    if ceiling:
        validate("cloud_auto", size, provisioned_iops=ceiling)
        limits("cloud_auto", size, "", ceiling)
    with pytest.raises(ApiError) as excinfo:
        validate("cloud_auto", size, provisioned_iops=ceiling + 1)
    assert _error(excinfo) == ("InvalidProvisionedIops.LimitExceed", 400)
    with pytest.raises(ApiError) as excinfo:
        limits("cloud_auto", size, "", ceiling + 1)
    assert _error(excinfo) == ("InvalidProvisionedIops.LimitExceed", 400)


def test_autopl_burst_ceiling() -> None:
    # min{1,000,000, 1,000 x C} IOPS; throughput min{16 KB x IOPS, 4 GB/s}
    assert limits("cloud_auto", 100, bursting_enabled=True) == DiskLimits(100_000, 1_562)
    assert limits("cloud_auto", 2_000, bursting_enabled=True) == DiskLimits(1_000_000, 4_096)
    assert limits("cloud_auto", 4, bursting_enabled=True) == DiskLimits(4_000, 125)


def test_negative_provisioned_iops_is_rejected() -> None:
    with pytest.raises(ApiError) as excinfo:
        validate("cloud_auto", 100, provisioned_iops=-1)
    assert _error(excinfo) == ("InvalidProvisionedIops.LimitExceed", 400)


def test_bytes_per_second_uses_binary_megabytes() -> None:
    assert bytes_per_second(DiskLimits(2_800, 130)) == 130 * 1024 * 1024
    assert bytes_per_second(limits("cloud_essd", 40, "PL0")) == 110 * 1_048_576
    assert bytes_per_second(DiskLimits(0, 0)) == 0


def test_negative_size_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        limits("cloud_essd", -1)


# ---------------------------------------------------------------------------------------------
# size ranges


@pytest.mark.parametrize(
    "category, level, data, system",
    [
        ("cloud", "", (5, 2_000), (20, 500)),
        ("cloud_efficiency", "", (20, 32_768), (20, 2_048)),
        ("cloud_ssd", "", (20, 32_768), (20, 2_048)),
        ("cloud_essd", "PL0", (1, 65_536), (1, 2_048)),
        ("cloud_essd", "PL1", (20, 65_536), (20, 2_048)),
        ("cloud_essd", "PL2", (461, 65_536), (461, 2_048)),
        ("cloud_essd", "PL3", (1_261, 65_536), (1_261, 2_048)),
        ("cloud_auto", "", (1, 65_536), (1, 2_048)),
        ("cloud_essd_entry", "", (10, 32_768), (20, 2_048)),
    ],
)
def test_size_ranges_and_their_edges(
    category: str, level: str, data: tuple[int, int], system: tuple[int, int]
) -> None:
    assert dc.size_range(category, level, "data") == dc.SizeRange(*data)
    assert dc.size_range(category, level, "system") == dc.SizeRange(*system)
    for disk_type, (low, high) in (("data", data), ("system", system)):
        validate(category, low, level, disk_type)
        validate(category, high, level, disk_type)
        for bad in (low - 1, high + 1):
            with pytest.raises(ApiError):
                validate(category, bad, level, disk_type)


def test_every_category_is_listed() -> None:
    assert set(dc.CATEGORIES) == {
        "cloud",
        "cloud_efficiency",
        "cloud_ssd",
        "cloud_essd",
        "cloud_auto",
        "cloud_essd_entry",
    }
    assert list(dc.CATEGORIES["cloud_essd"].tiers) == ["PL0", "PL1", "PL2", "PL3"]
    assert [name for name, spec in dc.CATEGORIES.items() if spec.provisioned_iops] == ["cloud_auto"]


def test_size_range_membership_needs_an_int() -> None:
    assert 20 in dc.SizeRange(20, 40)
    assert 20.5 not in dc.SizeRange(20, 40)
    assert "30" not in dc.SizeRange(20, 40)
    assert str(dc.SizeRange(20, 40)) == "20 to 40 GiB"


# ---------------------------------------------------------------------------------------------
# validate(): every error path


@pytest.mark.parametrize(
    "category, size, level, code, status",
    [
        ("cloud_essd", 100, "PL2", "OperationDenied.PerformanceLevelNotMatch", 403),
        ("cloud_essd", 1_000, "PL3", "OperationDenied.PerformanceLevelNotMatch", 403),
        ("cloud_essd", 10, "", "OperationDenied.PerformanceLevelNotMatch", 403),  # PL1 by default
        ("cloud_essd", 65_537, "PL1", "InvalidDiskSize.NotSupported", 403),
        ("cloud_essd", 0, "PL0", "InvalidDiskSize.NotSupported", 403),
        ("cloud_auto", 65_537, "", "InvalidDataDiskSize.ValueNotSupported", 403),
        ("cloud_auto", 0, "", "InvalidDataDiskSize.ValueNotSupported", 403),
        ("cloud_ssd", 19, "", "InvalidDiskSize.NotSupported", 403),
        ("cloud_efficiency", 32_769, "", "InvalidDiskSize.NotSupported", 403),
        ("cloud", 2_001, "", "InvalidDiskSize.NotSupported", 403),
        ("cloud", 4, "", "InvalidDiskSize.NotSupported", 403),
        ("cloud_essd_entry", 9, "", "InvalidDiskSize.NotSupported", 403),
    ],
)
def test_data_disk_size_errors(category: str, size: int, level: str, code: str, status: int) -> None:
    with pytest.raises(ApiError) as excinfo:
        validate(category, size, level, "data")
    assert _error(excinfo) == (code, status)
    allowed = dc.size_range(category, level, "data")
    assert f"{allowed.min_gib} to {allowed.max_gib} GiB" in excinfo.value.message
    assert f"got {size} GiB" in excinfo.value.message


@pytest.mark.parametrize(
    "category, size, level",
    [
        ("cloud", 501, ""),
        ("cloud", 19, ""),
        ("cloud_essd", 2_049, "PL0"),
        ("cloud_essd", 100, "PL2"),
        ("cloud_ssd", 10, ""),
        ("cloud_essd_entry", 10, ""),
        ("cloud_auto", 2_049, ""),
    ],
)
def test_system_disk_size_errors(category: str, size: int, level: str) -> None:
    with pytest.raises(ApiError) as excinfo:
        validate(category, size, level, "system")
    assert _error(excinfo) == ("InvalidSystemDiskSize.ValueNotSupported", 400)
    allowed = dc.size_range(category, level, "system")
    assert str(allowed) in excinfo.value.message


def test_unknown_category() -> None:
    with pytest.raises(ApiError) as excinfo:
        validate("cloud_hdd", 100, "", "data")
    assert _error(excinfo) == ("InvalidDiskCategory.ValueNotSupported", 400)
    assert "cloud_essd" in excinfo.value.message and "cloud_hdd" in excinfo.value.message
    with pytest.raises(ApiError) as excinfo:
        validate("ephemeral_ssd", 100, "", "system")
    assert _error(excinfo) == ("InvalidSystemDiskCategory.ValueNotSupported", 400)
    with pytest.raises(ApiError) as excinfo:
        limits("CLOUD_ESSD", 100)
    assert _error(excinfo) == ("InvalidDiskCategory.ValueNotSupported", 400)


@pytest.mark.parametrize(
    "category, level",
    [
        ("cloud_essd", "PL4"),
        ("cloud_essd", "pl1"),
        ("cloud_essd", "1"),
        ("cloud_ssd", "PL1"),
        ("cloud_auto", "PL1"),
        ("cloud", "PL0"),
        ("cloud_essd_entry", "PL0"),
    ],
)
def test_bad_performance_level(category: str, level: str) -> None:
    with pytest.raises(ApiError) as excinfo:
        validate(category, 2_000, level, "data")
    assert _error(excinfo) == ("InvalidPerformanceLevel.Malformed", 400)
    with pytest.raises(ApiError) as excinfo:
        limits(category, 2_000, level)
    assert _error(excinfo) == ("InvalidPerformanceLevel.Malformed", 400)


def test_performance_level_message_names_the_valid_levels() -> None:
    with pytest.raises(ApiError) as excinfo:
        validate("cloud_essd", 100, "PL9", "data")
    assert "PL0, PL1, PL2, PL3" in excinfo.value.message
    with pytest.raises(ApiError) as excinfo:
        validate("cloud_ssd", 100, "PL1", "data")
    assert "only to cloud_essd" in excinfo.value.message


@pytest.mark.parametrize(
    "category", ["cloud", "cloud_efficiency", "cloud_ssd", "cloud_essd", "cloud_essd_entry"]
)
def test_provisioning_only_for_autopl(category: str) -> None:
    with pytest.raises(ApiError) as excinfo:
        validate(category, 100, "", provisioned_iops=1_000)
    assert _error(excinfo) == ("ProvisionedIopsForDiskCategoryUnsupported", 400)
    with pytest.raises(ApiError) as excinfo:
        validate(category, 100, "", bursting_enabled=True)
    assert _error(excinfo) == ("BurstingEnabledForDiskCategoryUnsupported", 400)
    with pytest.raises(ApiError) as excinfo:
        limits(category, 100, "", 1_000)
    assert _error(excinfo) == ("ProvisionedIopsForDiskCategoryUnsupported", 400)


def test_autopl_small_disks_cannot_burst_or_provision() -> None:
    validate("cloud_auto", 3)
    validate("cloud_auto", 4, bursting_enabled=True)
    with pytest.raises(ApiError) as excinfo:
        validate("cloud_auto", 3, bursting_enabled=True)
    assert _error(excinfo) == ("InvalidBurstingEnabled.DiskSizeTooSmall", 400)
    with pytest.raises(ApiError) as excinfo:
        validate("cloud_auto", 3, provisioned_iops=1)
    assert _error(excinfo) == ("InvalidProvisionedIops.LimitExceed", 400)


def test_disk_type_must_be_system_or_data() -> None:
    with pytest.raises(ValueError):
        validate("cloud_essd", 100, "", "root")


def test_valid_disks_pass() -> None:
    validate("cloud_essd", 40, "", "system")
    validate("cloud_essd", 40, "PL0", "system")
    validate("cloud_essd", 1, "PL0", "data")
    validate("cloud_essd", 461, "PL2", "data")
    validate("cloud_essd", 1_261, "PL3", "system")
    validate("cloud_auto", 200, "", "data", provisioned_iops=10_000, bursting_enabled=True)
    validate("cloud", 5, "", "data")
