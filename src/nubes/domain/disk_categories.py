"""ECS cloud disk categories: the sizes each allows and the performance each is sold with.

Why this module exists: DescribeDisks reports, per disk, the most it may do (`IOPS`, in
operations per second, and `Throughput`, in MB/s; both integers), and nubes keeps that promise
on the host: the qemu driver caps every attached disk with a QEMU throttle group
(`DiskAttachment.iops` and `DiskAttachment.bps` in nubes.drivers.compute.base, bps in bytes
per second). Both numbers come from `limits()` here, so the API and the guest agree. The same
table tells CreateDisk, RunInstances, ReplaceSystemDisk and ResizeDisk which sizes a category
takes (`validate()`).

Where the figures come from (Alibaba Cloud documentation):

* "Block Storage performance" (https://www.alibabacloud.com/help/en/ecs/user-guide/block-storage-performance):
  the per-disk formulas and caps of every category below, the ESSD AutoPL baseline floors
  (3,000 IOPS, 125 MB/s) and the provisioned throughput of 16 KB per provisioned IOPS
  ("16 KB x Provisioned IOPS / 1,024" MB/s, so 1 MB = 1,024 KB; capacities are binary too,
  hence MB = 1024 * 1024 bytes in `bytes_per_second`). The basic disk has no formula: "Hundreds"
  of IOPS and 30 to 40 MB/s.
* "ESSDs" (https://www.alibabacloud.com/help/en/ecs/user-guide/essds) and "ESSD AutoPL disks"
  (https://www.alibabacloud.com/help/en/ecs/user-guide/essd-autopl-disks): the performance
  levels, the provisioned-IOPS range [1, min{1,000 x Capacity - baseline IOPS, 50,000}] for
  4 GiB and more, and the burst ceiling min{1,000,000, 1,000 x Capacity} IOPS / 4 GB/s.
* API references CreateDisk (`Size`, `PerformanceLevel` default PL1), RunInstances
  (`SystemDisk.Size`, `DataDisk.N.Size`), ReplaceSystemDisk and ResizeDisk (`NewSize`): the
  data and system disk size ranges. Their "Error codes" tables give the codes `validate()`
  raises; which size code ECS answers for which category follows alibaba-cloud-csi-driver
  (InvalidDiskSize.NotSupported for cloud/cloud_efficiency/cloud_ssd,
  InvalidDataDiskSize.ValueNotSupported for cloud_auto,
  OperationDenied.PerformanceLevelNotMatch for cloud_essd).

Rounding: the formulas are evaluated exactly (fractions) and rounded down to whole units, so
a reported limit never exceeds the published formula (PL1 at 21 GiB: 120 + 10.5 -> 130 MB/s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Final

from nubes import errors
from nubes.errors import ApiError

SYSTEM, DATA = "system", "data"
DISK_TYPES: Final = (SYSTEM, DATA)

CLOUD, CLOUD_EFFICIENCY, CLOUD_SSD = "cloud", "cloud_efficiency", "cloud_ssd"
CLOUD_ESSD, CLOUD_AUTO, CLOUD_ESSD_ENTRY = "cloud_essd", "cloud_auto", "cloud_essd_entry"

PERFORMANCE_LEVELS: Final = ("PL0", "PL1", "PL2", "PL3")
DEFAULT_PERFORMANCE_LEVEL: Final = "PL1"  # CreateDisk / RunInstances: "Default value: PL1"

MB: Final = 1024 * 1024  # bytes; ECS block storage counts in binary units

# ESSD AutoPL provisioned performance (Block Storage performance; ESSD AutoPL disks)
AUTOPL_MAX_PROVISIONED_IOPS: Final = 50_000
AUTOPL_IOPS_PER_GIB: Final = 1_000  # maximum I/O density
AUTOPL_KB_PER_PROVISIONED_IOPS: Final = 16
AUTOPL_MIN_SIZE_FOR_PROVISIONING: Final = 4  # GiB; at 3 GiB and below neither provisioning nor burst
AUTOPL_BURST_MAX_IOPS: Final = 1_000_000
AUTOPL_BURST_MAX_MBPS: Final = 4 * 1024  # "4 GB/s"


@dataclass(frozen=True)
class DiskLimits:
    """The most a disk may do: what DescribeDisks reports as `IOPS` and `Throughput` (MB/s)."""

    iops: int
    throughput_mbps: int


@dataclass(frozen=True)
class SizeRange:
    """Allowed capacities in GiB, both ends included."""

    min_gib: int
    max_gib: int

    def __contains__(self, size_gib: object) -> bool:
        return isinstance(size_gib, int) and self.min_gib <= size_gib <= self.max_gib

    def __str__(self) -> str:
        return f"{self.min_gib} to {self.max_gib} GiB"


@dataclass(frozen=True)
class Formula:
    """min{base + per_gib x Capacity, cap}, optionally raised to a floor (ESSD AutoPL baseline)."""

    base: int
    per_gib: Fraction
    cap: int
    floor: int = 0

    def at(self, size_gib: int) -> Fraction:
        value = min(self.base + self.per_gib * size_gib, Fraction(self.cap))
        return max(value, Fraction(self.floor))


@dataclass(frozen=True)
class Tier:
    """One sellable kind of disk: a category, or one performance level of cloud_essd."""

    data_size: SizeRange
    system_size: SizeRange
    iops: Formula
    throughput_mbps: Formula

    def size_range(self, disk_type: str) -> SizeRange:
        return self.system_size if disk_type == SYSTEM else self.data_size


@dataclass(frozen=True)
class DiskCategory:
    name: str  # the API value of DiskCategory / SystemDisk.Category / DataDisk.N.Category
    title: str
    # keyed by PerformanceLevel; "" for the categories that have none
    tiers: Mapping[str, Tier] = field(repr=False)
    default_performance_level: str = ""
    provisioned_iops: bool = False  # ProvisionedIops and BurstingEnabled (ESSD AutoPL only)

    @property
    def has_performance_levels(self) -> bool:
        return "" not in self.tiers


def _fixed(value: int) -> Formula:
    return Formula(value, Fraction(0), value)


def _essd(min_data: int, min_system: int, iops_cap: int, mbps_cap: int) -> Tier:
    return Tier(
        data_size=SizeRange(min_data, 65_536),
        system_size=SizeRange(min_system, 2_048),
        iops=Formula(1_800, Fraction(50), iops_cap),
        throughput_mbps=Formula(120, Fraction(1, 2), mbps_cap),
    )


CATEGORIES: Final[Mapping[str, DiskCategory]] = {
    CLOUD: DiskCategory(
        CLOUD,
        "basic disk",
        # No formula is published: "Hundreds" of IOPS and 30 to 40 MB/s. nubes grants 300 IOPS
        # and the top of the throughput range.
        {"": Tier(SizeRange(5, 2_000), SizeRange(20, 500), _fixed(300), _fixed(40))},
    ),
    CLOUD_EFFICIENCY: DiskCategory(
        CLOUD_EFFICIENCY,
        "ultra disk",
        {
            "": Tier(
                SizeRange(20, 32_768),
                SizeRange(20, 2_048),
                Formula(1_800, Fraction(8), 5_000),
                Formula(100, Fraction(15, 100), 140),
            )
        },
    ),
    CLOUD_SSD: DiskCategory(
        CLOUD_SSD,
        "standard SSD",
        {
            "": Tier(
                SizeRange(20, 32_768),
                SizeRange(20, 2_048),
                Formula(1_800, Fraction(30), 25_000),
                Formula(120, Fraction(1, 2), 300),
            )
        },
    ),
    CLOUD_ESSD: DiskCategory(
        CLOUD_ESSD,
        "enterprise SSD (ESSD)",
        {
            "PL0": Tier(
                SizeRange(1, 65_536),
                SizeRange(1, 2_048),
                Formula(1_800, Fraction(12), 10_000),
                Formula(100, Fraction(1, 4), 180),
            ),
            "PL1": _essd(20, 20, 50_000, 350),
            "PL2": _essd(461, 461, 100_000, 750),
            "PL3": _essd(1_261, 1_261, 1_000_000, 4_000),
        },
        default_performance_level=DEFAULT_PERFORMANCE_LEVEL,
    ),
    CLOUD_AUTO: DiskCategory(
        CLOUD_AUTO,
        "ESSD AutoPL disk",
        {
            "": Tier(
                SizeRange(1, 65_536),
                SizeRange(1, 2_048),
                Formula(1_800, Fraction(50), 50_000, floor=3_000),
                Formula(120, Fraction(1, 2), 350, floor=125),
            )
        },
        provisioned_iops=True,
    ),
    CLOUD_ESSD_ENTRY: DiskCategory(
        CLOUD_ESSD_ENTRY,
        "ESSD Entry disk",
        {
            "": Tier(
                SizeRange(10, 32_768),
                SizeRange(20, 2_048),  # system disks: "Other disk categories: 20 to 2048"
                Formula(1_800, Fraction(8), 6_000),
                Formula(100, Fraction(15, 100), 150),
            )
        },
    ),
}


# ---------------------------------------------------------------------------------------------
# Lookups


def find_category(name: str, disk_type: str = DATA) -> DiskCategory:
    """The category called `name`, or the ECS error for an unknown one."""
    _check_disk_type(disk_type)
    spec = CATEGORIES.get(name)
    if spec is None:
        valid = ", ".join(CATEGORIES)
        if disk_type == SYSTEM:
            raise errors.invalid_system_disk_category_value_not_supported(
                f'The specified parameter "SystemDisk.Category" is not valid. Got {name!r}; '
                f"valid values: {valid}.",
            )
        raise errors.invalid_disk_category_value_not_supported(
            f'The specified parameter "DiskCategory" is not valid. Got {name!r}; valid values: {valid}.'
        )
    return spec


def effective_performance_level(name: str, performance_level: str = "") -> str:
    """The PerformanceLevel a disk of category `name` gets: PL1 when an ESSD names none, "" for
    categories without levels. A level given for another category, or an unknown level, is
    InvalidPerformanceLevel.Malformed."""
    spec = find_category(name)
    if not spec.has_performance_levels:
        if performance_level:
            raise errors.invalid_performance_level_malformed(
                f"The specified parameter PerformanceLevel is not valid. PerformanceLevel applies only to "
                f"cloud_essd disks; the category {name} has none (got {performance_level!r}).",
            )
        return ""
    level = performance_level or spec.default_performance_level
    if level not in spec.tiers:
        raise errors.invalid_performance_level_malformed(
            f"The specified parameter PerformanceLevel is not valid. Got {performance_level!r}; valid values "
            f"for {name}: {', '.join(spec.tiers)}.",
        )
    return level


def tier(name: str, performance_level: str = "") -> Tier:
    return find_category(name).tiers[effective_performance_level(name, performance_level)]


def size_range(name: str, performance_level: str = "", disk_type: str = DATA) -> SizeRange:
    """Allowed sizes of a data or system disk of this category (and ESSD level)."""
    _check_disk_type(disk_type)
    return tier(name, performance_level).size_range(disk_type)


def overall_range(name: str, disk_type: str = DATA) -> SizeRange:
    """The sizes a category allows at any of its performance levels (DescribeAvailableResource)."""
    ranges = [t.size_range(disk_type) for t in find_category(name, disk_type).tiers.values()]
    return SizeRange(min(r.min_gib for r in ranges), max(r.max_gib for r in ranges))


def autopl_baseline(size_gib: int) -> DiskLimits:
    """ESSD AutoPL baseline performance: max{min{1,800 + 50 x C, 50,000}, 3,000} IOPS and
    max{min{120 + 0.5 x C, 350}, 125} MB/s."""
    base = CATEGORIES[CLOUD_AUTO].tiers[""]
    return DiskLimits(int(base.iops.at(size_gib)), int(base.throughput_mbps.at(size_gib)))


def max_provisioned_iops(size_gib: int) -> int:
    """The largest ProvisionedIops an ESSD AutoPL disk of this size takes:
    min{1,000 x C - baseline IOPS, 50,000}; 0 (not configurable) at 3 GiB and below."""
    if size_gib < AUTOPL_MIN_SIZE_FOR_PROVISIONING:
        return 0
    headroom = AUTOPL_IOPS_PER_GIB * size_gib - autopl_baseline(size_gib).iops
    return max(0, min(headroom, AUTOPL_MAX_PROVISIONED_IOPS))


# ---------------------------------------------------------------------------------------------
# Performance


def limits(
    category: str,
    size_gib: int,
    performance_level: str = "",
    provisioned_iops: int = 0,
    *,
    bursting_enabled: bool = False,
) -> DiskLimits:
    """Maximum IOPS and throughput (MB/s) of a disk, by the published per-disk formulas.

    cloud_essd without a level is PL1. For cloud_auto the result is baseline + provisioned
    (16 KB of throughput per provisioned IOPS); with `bursting_enabled` it is the burst
    ceiling instead: min{1,000,000, 1,000 x C} IOPS and max{min{16 KB x IOPS, 4 GB/s},
    baseline + provisioned throughput}. Sizes are not range-checked here (see `validate`);
    the category, the level and ProvisionedIops are, with the same errors as `validate`."""
    if size_gib < 0:
        raise ValueError(f"negative disk size {size_gib}")
    spec = find_category(category)
    level = effective_performance_level(category, performance_level)
    _check_provisioning(spec, size_gib, provisioned_iops, bursting_enabled)
    t = spec.tiers[level]
    iops, mbps = t.iops.at(size_gib), t.throughput_mbps.at(size_gib)
    if spec.provisioned_iops:
        iops += provisioned_iops
        mbps += Fraction(AUTOPL_KB_PER_PROVISIONED_IOPS * provisioned_iops, 1024)
        if bursting_enabled:
            burst_iops = min(AUTOPL_BURST_MAX_IOPS, AUTOPL_IOPS_PER_GIB * size_gib)
            burst_mbps = Fraction(
                min(AUTOPL_KB_PER_PROVISIONED_IOPS * burst_iops // 1024, AUTOPL_BURST_MAX_MBPS)
            )
            iops, mbps = max(Fraction(burst_iops), iops), max(burst_mbps, mbps)
    return DiskLimits(int(iops), int(mbps))


def bytes_per_second(disk_limits: DiskLimits) -> int:
    """Throughput for a QEMU throttle group (`bps`): MB/s x 1024 x 1024."""
    return disk_limits.throughput_mbps * MB


# ---------------------------------------------------------------------------------------------
# Validation


def _data_size_error(category: str, detail: str) -> ApiError:
    """The code ECS answers for a data disk whose size the category does not take."""
    if category == CLOUD_AUTO:
        return errors.invalid_data_disk_size_value_not_supported(
            "The specified disk size is beyond the permitted range, or the snapshot capacity exceeds the "
            f"size limit for the specified disk category. {detail}",
            http_status=403,
        )
    return errors.invalid_disk_size_not_supported(f"The specified disk size is not supported. {detail}")


def validate(
    category: str,
    size_gib: int,
    performance_level: str = "",
    disk_type: str = DATA,
    *,
    provisioned_iops: int = 0,
    bursting_enabled: bool = False,
) -> None:
    """Reject, with the ECS error, a disk ECS would not create: an unknown category, a
    PerformanceLevel that is unknown or given to a category without levels, a size outside the
    category's (and level's) range for a `disk_type` ("system" or "data") disk, and, for
    cloud_auto, a ProvisionedIops above its limit or a burst on a disk of 3 GiB or less."""
    spec = find_category(category, disk_type)
    level = effective_performance_level(category, performance_level)
    allowed = spec.tiers[level].size_range(disk_type)
    if size_gib not in allowed:
        what = f"{category} {level} disk" if level else f"{category} disk"
        detail = f"A {disk_type} {what} must be {allowed}; got {size_gib} GiB."
        if disk_type == SYSTEM:
            raise errors.invalid_system_disk_size_value_not_supported(
                f"The specified parameter SystemDisk.Size is invalid. {detail}"
            )
        if spec.has_performance_levels and _fits_another_level(spec, size_gib):
            raise errors.operation_denied_performance_level_not_match(
                f"The specified PerformanceLevel and Size do not match. {detail}"
            )
        raise _data_size_error(category, detail)
    _check_provisioning(spec, size_gib, provisioned_iops, bursting_enabled)


def _fits_another_level(spec: DiskCategory, size_gib: int) -> bool:
    return any(size_gib in t.data_size for t in spec.tiers.values())


def _check_provisioning(
    spec: DiskCategory, size_gib: int, provisioned_iops: int, bursting_enabled: bool
) -> None:
    if not spec.provisioned_iops:
        if provisioned_iops:
            raise errors.provisioned_iops_for_disk_category_unsupported(
                f"The specified disk category does not support provisioned iops. Only cloud_auto takes "
                f"ProvisionedIops; got {spec.name}.",
            )
        if bursting_enabled:
            raise errors.bursting_enabled_for_disk_category_unsupported(
                f"The specified disk category does not support bursting enabled. Only cloud_auto takes "
                f"BurstingEnabled; got {spec.name}.",
            )
        return
    ceiling = max_provisioned_iops(size_gib)
    if provisioned_iops < 0 or provisioned_iops > ceiling:
        allowed = f"0 to {ceiling}" if ceiling else "0 (disks of 3 GiB or less cannot provision IOPS)"
        raise errors.invalid_provisioned_iops_limit_exceed(
            f"The provisioned iops exceeds the limit. A {size_gib} GiB cloud_auto disk takes ProvisionedIops "
            f"{allowed}; got {provisioned_iops}.",
        )
    if bursting_enabled and size_gib < AUTOPL_MIN_SIZE_FOR_PROVISIONING:
        raise errors.invalid_bursting_enabled_disk_size_too_small(
            f"The disk size must be greater than 3 GiB to enable burst; got {size_gib} GiB."
        )


def _check_disk_type(disk_type: str) -> None:
    if disk_type not in DISK_TYPES:
        raise ValueError(f"disk_type must be 'system' or 'data', not {disk_type!r}")
