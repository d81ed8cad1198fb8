"""Launching instances (RunInstances, CreateInstance): validate the request, place the instances on
hosts, allocate their addresses, and write the rows of each instance, its network interface, disks
and tags in one transaction.

Nothing here touches a machine: the host agent reads what is wanted and makes it so. The checks
that later changes of an instance share (instance type, security groups, deployment set, user
data, host room) are here too, as functions."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from ipaddress import IPv4Address

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.catalog.model import Catalog, InstanceType
from nubes.clock import Clock
from nubes.domain import instance_states as states
from nubes.domain import private_ips, public_addresses
from nubes.domain.common import Scope, check_description, check_name, owned
from nubes.domain.images import Images
from nubes.domain.keypairs import owned_key_pair
from nubes.domain.launch_checks import (
    auto_release_at,
    check_user_data,
    deployment_set,
    disk_size,
    group_numbers,
    image_snapshots,
    offered_type,
    security_groups,
)
from nubes.domain.names import check_hostname, expand
from nubes.domain.network_interfaces import ENI_IN_USE, new_mac
from nubes.domain.passwords import check_password, sha512_crypt
from nubes.domain.quotas import (
    Quotas,
    check_disk_capacity,
    check_vcpus,
    used_postpaid_disk_gib,
    used_postpaid_vcpus,
)
from nubes.domain.regions import require_region
from nubes.domain.resource_groups import group_for
from nubes.domain.tags import write_tags
from nubes.domain.vpcs import AVAILABLE
from nubes.scheduler.placement import HostState, NoHostFound, PlacementRequest, place_all
from nubes.store.db import Database
from nubes.store.models import (
    DeploymentSet,
    Disk,
    Host,
    Image,
    ImageShare,
    Instance,
    NetworkInterface,
    NetworkInterfaceGroup,
    SecurityGroup,
    Snapshot,
    VSwitch,
)


@dataclass
class DiskRequest:
    size_gib: int | None = None
    category: str | None = None
    performance_level: str | None = None
    name: str | None = None
    description: str | None = None
    delete_with_instance: bool = True
    snapshot_id: str | None = None
    encrypted: bool = False  # from an encrypted image or snapshot: encrypted whatever this says


@dataclass
class LaunchRequest:
    """Everything RunInstances and CreateInstance take, validated by `Launcher.launch`."""

    instance_type: str
    image_id: str | None = None
    image_family: str | None = None
    vswitch_id: str | None = None
    zone_id: str | None = None
    security_group_ids: list[str] = field(default_factory=list)
    private_ip: str | None = None
    amount: int = 1
    min_amount: int | None = None
    instance_name: str | None = None
    host_name: str | None = None
    host_names: list[str] = field(default_factory=list)
    unique_suffix: bool = False
    description: str | None = None
    key_pair_name: str | None = None
    password: str | None = None
    user_data: str | None = None
    system_disk: DiskRequest = field(default_factory=DiskRequest)
    data_disks: list[DiskRequest] = field(default_factory=list)
    charge_type: str = "PostPaid"
    spot_strategy: str = "NoSpot"
    deployment_set_id: str | None = None
    deployment_set_group_no: int | None = None
    auto_release_time: str | None = None
    deletion_protection: bool = False
    hibernation_configured: bool = False  # HibernationOptions.Configured
    tags: list[tuple[str, str]] = field(default_factory=list)
    resource_group_id: str = ""
    http_tokens: str = "optional"
    http_endpoint: str = "enabled"
    # Public bandwidth (Mbit/s): outbound > 0 gives each instance a public IP from the ranges.
    internet_charge_type: str = "PayByTraffic"
    internet_max_bandwidth_out: int = 0
    internet_max_bandwidth_in: int | None = None  # ECS's default follows outbound (pa.default_bandwidth_in)
    start: bool = True  # RunInstances starts them; CreateInstance leaves them Stopped
    dry_run: bool = False


# ---- checks shared with the changes of existing instances ----------------------------------------


def host_states(s: Session) -> list[HostState]:
    """The available hosts with what their instances use, for the scheduler."""
    used = {
        host_id: (int(cpu or 0), int(memory or 0))
        for host_id, cpu, memory in s.execute(
            select(Instance.host_id, func.sum(Instance.cpu), func.sum(Instance.memory_mib))
            .where(Instance.desired != states.WANT_DELETED)
            .group_by(Instance.host_id)
        )
    }
    sets: dict[str, dict[str, dict[int, int]]] = {}
    for host_id, set_id, group_no in s.execute(
        select(Instance.host_id, Instance.deployment_set_id, Instance.deployment_set_group_no).where(
            Instance.deployment_set_id != "", Instance.desired != states.WANT_DELETED
        )
    ):
        if host_id is None:
            continue
        groups = sets.setdefault(host_id, {}).setdefault(set_id, {})
        groups[group_no or 1] = groups.get(group_no or 1, 0) + 1
    return [
        HostState(
            host_id=h.id,
            zones=None if h.zones == "*" else frozenset(z for z in h.zones.split(",") if z),
            vcpus=h.vcpus,
            memory_mib=h.memory_mib,
            cpu_overcommit=h.cpu_overcommit,
            memory_overcommit=h.memory_overcommit,
            used_vcpus=used.get(h.id, (0, 0))[0],
            used_memory_mib=used.get(h.id, (0, 0))[1],
            deployment_sets=sets.get(h.id, {}),
        )
        for h in s.scalars(select(Host).where(Host.status == "Available"))
    ]


def _bandwidth_in(request: LaunchRequest) -> int:
    """InternetMaxBandwidthIn as given, else ECS's default for the outbound bandwidth (0 without)."""
    if request.internet_max_bandwidth_in is not None:
        return request.internet_max_bandwidth_in
    out = request.internet_max_bandwidth_out
    return public_addresses.default_bandwidth_in(out) if out > 0 else 0


def _hostnames(request: LaunchRequest) -> list[str]:
    if request.host_names:
        if len(request.host_names) != request.amount:
            raise errors.invalid_host_names_count_mismatch()
        return [check_hostname(h) for h in request.host_names]
    if request.host_name:
        return [
            check_hostname(h)
            for h in expand(request.host_name, request.amount, request.unique_suffix, "HostName")
        ]
    return []


def _image_data_disks(image: Image, asked: list[DiskRequest]) -> list[DiskRequest]:
    """The data disks a custom image carries (its data snapshots), unless the request names them."""
    named = {d.snapshot_id for d in asked if d.snapshot_id}
    return [
        DiskRequest(
            size_gib=int(m.get("Size") or 0) or None, category="cloud_essd", snapshot_id=str(m["SnapshotId"])
        )
        for m in json.loads(image.disk_mappings or "[]")
        if m.get("SnapshotId") not in named
    ]


def _snapshot_encrypted(s: Session, snapshot_id: str | None) -> bool:
    """A disk made from an encrypted snapshot is encrypted (its layers stand on the snapshot's)."""
    snapshot = s.get(Snapshot, snapshot_id) if snapshot_id else None
    return snapshot is not None and snapshot.encrypted


@dataclass
class _Checked:
    """A launch request past the checks that need no VPC, host or address."""

    itype: InstanceType
    image: Image
    names: list[str]
    hostnames: list[str]
    description: str
    user_data: str
    release_at: datetime | None
    system_category: str
    system_size: int
    data_disks: list[tuple[DiskRequest, str, int]]  # (request, category, size)


@dataclass
class _Network:
    vswitch: VSwitch
    groups: list[SecurityGroup]
    deployment: DeploymentSet | None


class Launcher:
    """RunInstances and CreateInstance: validate → place → allocate → write."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        catalog: Catalog,
        images: Images,
        notify: Callable[[list[str], set[str]], None],
        rng: random.Random | None = None,
        quotas: Quotas | None = None,
    ) -> None:
        self._db = db
        self._quotas = quotas or Quotas()
        self._clock = clock
        self._catalog = catalog
        self._images = images
        self._notify = notify  # (instance ids, VPC ids)
        self._rng = rng or random.Random()

    def launch(self, scope: Scope, request: LaunchRequest) -> list[str]:
        now = self._clock.now()
        checked = self._check(scope, request, now)
        with self._db.session() as s:
            request = replace(
                request,
                resource_group_id=group_for(s, scope.account_id, request.resource_group_id, self._clock),
            )
            network = self._network(s, scope, request)
            groups = group_numbers(s, network.deployment, request.deployment_set_group_no, request.amount)
            most = self._within_quotas(s, scope, checked, request)
            placements = self._place(s, request, checked.itype, network, groups, most)
            addresses = self._allocate(s, network.vswitch, len(placements), request.private_ip)
            public = self._public(s, request, len(placements))
            if request.dry_run:
                raise errors.dry_run_operation()
            instance_ids = self._write(
                s,
                scope,
                request,
                now,
                checked,
                network,
                list(zip(placements, groups, strict=False)),
                addresses,
            )
            self._assign_public(s, now, instance_ids, public)
            vpc_id = network.vswitch.vpc_id
        self._notify(instance_ids, {vpc_id})
        return instance_ids

    # ---- validate ------------------------------------------------------------------------------

    def _check(self, scope: Scope, request: LaunchRequest, now: datetime) -> _Checked:
        region = require_region(self._catalog, scope.region_id)
        itype = offered_type(self._catalog, region.families, request.instance_type)
        image = self._images.usable(scope, request.image_id, request.image_family, building_ok=True)
        if request.amount < 1 or request.amount > 100:
            raise errors.invalid_parameter_amount()
        if request.min_amount is not None and not 1 <= request.min_amount <= request.amount:
            raise errors.invalid_parameter_min_amount()
        if request.private_ip and request.amount > 1:
            raise errors.invalid_parameter_private_ip_address()
        names = expand(request.instance_name or "", request.amount, request.unique_suffix, "InstanceName")
        for name in names:
            if name:
                check_name("InstanceName", name)
        hostnames = _hostnames(request)
        description = check_description(request.description)
        if request.password:
            check_password(request.password)
        user_data = check_user_data(request.user_data)
        release_at = auto_release_at(request.auto_release_time, now)
        system_category = request.system_disk.category or "cloud_essd"
        system_size = disk_size(
            system_category,
            request.system_disk.size_gib,
            image.size_gib,
            True,
            request.system_disk.performance_level,
        )
        data_disks = list(request.data_disks) + _image_data_disks(image, request.data_disks)
        snapshot_sizes = self._data_snapshot_sizes(scope, data_disks)
        data_sizes = []
        for d in data_disks:
            category = d.category or "cloud_efficiency"
            size = disk_size(
                category,
                d.size_gib or snapshot_sizes.get(d.snapshot_id or "", None),
                0,
                False,
                d.performance_level,
            )
            if d.snapshot_id and size < snapshot_sizes[d.snapshot_id]:
                raise errors.invalid_data_disk_size_value_not_supported(
                    f"A data disk from {d.snapshot_id} needs at least {snapshot_sizes[d.snapshot_id]} GiB."
                )
            data_sizes.append((d, category, size))
        if len(data_disks) > 16:
            raise errors.invalid_data_disk_count_limit_exceeded()
        if len(request.tags) > 20:
            raise errors.invalid_tag_count_limit_exceeded("At most 20 tags can be given.")
        if not request.vswitch_id:
            raise errors.missing_parameter(
                "VSwitchId",
                message="Instances live in a VPC: give the VSwitchId to launch into.",
            )
        return _Checked(
            itype,
            image,
            names,
            hostnames,
            description,
            user_data,
            release_at,
            system_category,
            system_size,
            data_sizes,
        )

    def _data_snapshot_sizes(self, scope: Scope, disks: list[DiskRequest]) -> dict[str, int]:
        """The sizes of the snapshots data disks are made from (which must be usable)."""
        wanted = {d.snapshot_id for d in disks if d.snapshot_id}
        if not wanted:
            return {}
        with self._db.session() as s:
            found = {sn.id: sn for sn in s.scalars(select(Snapshot).where(Snapshot.id.in_(wanted)))}
            shared_images = {
                sid
                for image_id in s.scalars(
                    select(ImageShare.image_id).where(ImageShare.account_id == scope.account_id)
                )
                for sid in image_snapshots(s.get(Image, image_id))
            }
        sizes = {}
        for snapshot_id in wanted:
            snap = found.get(snapshot_id)
            if snap is None or (snap.account_id != scope.account_id and snapshot_id not in shared_images):
                raise errors.invalid_snapshot_id_not_found(
                    f"The specified snapshot {snapshot_id!r} does not exist."
                )
            if snap.status != "accomplished":
                raise errors.incorrect_snapshot_status(f"The snapshot {snapshot_id} is {snap.status}.")
            sizes[snapshot_id] = snap.disk_size_gib
        return sizes

    @staticmethod
    def _network(s: Session, scope: Scope, request: LaunchRequest) -> _Network:
        vswitch = owned(s, VSwitch, scope, request.vswitch_id or "", "VSwitch")
        if vswitch.status != AVAILABLE:
            raise errors.incorrect_vswitch_status(f"The vSwitch {vswitch.id} is {vswitch.status}.")
        if request.zone_id and request.zone_id != vswitch.zone_id:
            raise errors.invalid_parameter_mismatch(
                f"The vSwitch {vswitch.id} is in zone {vswitch.zone_id}, not {request.zone_id}.",
            )
        groups = security_groups(s, scope, vswitch.vpc_id, request.security_group_ids)
        if request.key_pair_name:
            owned_key_pair(s, scope, request.key_pair_name)
        return _Network(vswitch, groups, deployment_set(s, scope, request.deployment_set_id))

    def _within_quotas(self, s: Session, scope: Scope, checked: _Checked, request: LaunchRequest) -> int:
        """How many instances (Amount, or down to MinAmount) the account's vCPU and disk capacity
        quotas in the region leave room for; QuotaExceed.* when not even the fewest fit."""
        cpu = checked.itype.cpu
        disk_gib = checked.system_size + sum(size for _, _, size in checked.data_disks)
        room_cpu = self._quotas.max_postpaid_instance_vcpu_count - used_postpaid_vcpus(s, scope)
        room_disk = self._quotas.max_postpaid_yundisk_capacity_gib - used_postpaid_disk_gib(s, scope)
        most = min(request.amount, room_cpu // cpu, room_disk // disk_gib if disk_gib else request.amount)
        fewest = request.min_amount or request.amount
        if most < fewest:
            check_vcpus(s, scope, self._quotas, fewest * cpu)
            check_disk_capacity(s, scope, self._quotas, fewest * disk_gib)
        return max(most, fewest)

    # ---- place and allocate --------------------------------------------------------------------

    def _place(
        self,
        s: Session,
        request: LaunchRequest,
        itype: InstanceType,
        network: _Network,
        groups: list[int],
        most: int,
    ) -> list[str]:
        """A host for each instance: `most` of them (Amount within the quotas), or as few as
        MinAmount when the hosts are full.
        `groups`: each instance's deployment set group (0 outside an AvailabilityGroup set)."""
        vswitch, deployment = network.vswitch, network.deployment
        hosts = host_states(s)
        count = most
        while True:
            placement = [
                PlacementRequest(
                    vswitch.zone_id,
                    itype.cpu,
                    int(itype.memory_gib * 1024),
                    deployment.id if deployment else "",
                    deployment.strategy if deployment else "",
                    groups[index] or 1,
                )
                for index in range(count)
            ]
            try:
                return place_all(placement, hosts, rng=self._rng)
            except NoHostFound:
                if request.min_amount is None or count <= request.min_amount:
                    raise errors.operation_denied_no_stock(
                        f"The resource is out of stock in zone {vswitch.zone_id}: no host has room for "
                        f"{count} x {itype.type_id}. Try another instance type, zone, or a smaller Amount.",
                    ) from None
                count -= 1

    @staticmethod
    def _allocate(s: Session, vswitch: VSwitch, count: int, private_ip: str | None) -> list[IPv4Address]:
        """A free address of the vSwitch for each instance (the asked one, when given)."""
        return private_ips.allocate(s, vswitch, [private_ip] * count)

    # ---- write ---------------------------------------------------------------------------------

    def _public(self, s: Session, request: LaunchRequest, count: int) -> list[tuple[str, str]]:
        """A public address for each instance when it has outbound public bandwidth (taken
        before a dry run answers, so that it tells when the ranges cannot give them)."""
        if request.internet_max_bandwidth_out <= 0:
            return []
        picker = public_addresses.AddressPicker.load(s, self._rng)
        return [picker.take(errors.insufficient_public_ip) for _ in range(count)]

    @staticmethod
    def _assign_public(
        s: Session, now: datetime, instance_ids: list[str], public: list[tuple[str, str]]
    ) -> None:
        s.flush()  # the instances and their interfaces, for the addresses' association
        for instance_id, taken in zip(instance_ids, public, strict=False):
            instance = s.get(Instance, instance_id)
            eni = s.scalar(
                select(NetworkInterface).where(
                    NetworkInterface.instance_id == instance_id, NetworkInterface.eni_type == "Primary"
                )
            )
            assert instance is not None and eni is not None
            public_addresses.assign_public_ip(s, now, taken, instance, eni)

    @staticmethod
    def _write(
        s: Session,
        scope: Scope,
        request: LaunchRequest,
        now: datetime,
        checked: _Checked,
        network: _Network,
        placements: list[tuple[str, int]],
        addresses: list[IPv4Address],
    ) -> list[str]:
        """The rows of each instance: itself, its primary interface, its disks and its tags."""
        vswitch, itype, image = network.vswitch, checked.itype, checked.image
        deployment = network.deployment
        instance_ids = []
        macs: set[str] = set()
        for index, (host_id, group_no) in enumerate(placements):
            instance_id = ids.new_id("instance")
            instance_ids.append(instance_id)
            s.add(
                Instance(
                    id=instance_id,
                    account_id=scope.account_id,
                    region_id=scope.region_id,
                    zone_id=vswitch.zone_id,
                    host_id=host_id,
                    instance_type=itype.type_id,
                    cpu=itype.cpu,
                    memory_mib=int(itype.memory_gib * 1024),
                    image_id=image.id,
                    name=checked.names[index] or instance_id,
                    description=checked.description,
                    hostname=checked.hostnames[index] if checked.hostnames else f"iZ{instance_id[2:]}Z",
                    status=states.PENDING,
                    desired=states.WANT_RUNNING if request.start else states.WANT_STOPPED,
                    force=False,
                    stopped_mode="KeepCharging",
                    vpc_id=vswitch.vpc_id,
                    vswitch_id=vswitch.id,
                    key_pair_name=request.key_pair_name or "",
                    pending_key_pair_name=None,
                    password_hash=sha512_crypt(request.password) if request.password else "",
                    user_data=checked.user_data,
                    charge_type=request.charge_type,
                    spot_strategy=request.spot_strategy,
                    deployment_set_id=deployment.id if deployment else "",
                    deployment_set_group_no=group_no,
                    deletion_protection=request.deletion_protection,
                    hibernation_configured=request.hibernation_configured,
                    auto_release_time=checked.release_at,
                    metadata_http_tokens=request.http_tokens,
                    metadata_http_endpoint=request.http_endpoint,
                    internet_charge_type=request.internet_charge_type,
                    internet_max_bandwidth_out=request.internet_max_bandwidth_out,
                    internet_max_bandwidth_in=_bandwidth_in(request),
                    resource_group_id=request.resource_group_id,
                    created_at=now,
                    started_at=None,
                    status_changed_at=now,
                )
            )
            eni = NetworkInterface(
                id=ids.new_id("network_interface"),
                account_id=scope.account_id,
                region_id=scope.region_id,
                zone_id=vswitch.zone_id,
                vpc_id=vswitch.vpc_id,
                vswitch_id=vswitch.id,
                name="",
                description="",
                mac=new_mac(s, macs),
                primary_ip=str(addresses[index]),
                status=ENI_IN_USE,
                eni_type="Primary",
                instance_id=instance_id,
                attachment="instance",
                resource_group_id=request.resource_group_id,
                created_at=now,
            )
            eni.memberships = [
                NetworkInterfaceGroup(group_id=g.id, position=i) for i, g in enumerate(network.groups)
            ]
            s.add(eni)
            system = request.system_disk
            s.add(
                Disk(
                    id=ids.new_id("disk"),
                    account_id=scope.account_id,
                    region_id=scope.region_id,
                    zone_id=vswitch.zone_id,
                    instance_id=instance_id,
                    disk_type="system",
                    category=checked.system_category,
                    performance_level=system.performance_level
                    or ("PL1" if checked.system_category == "cloud_essd" else ""),
                    size_gib=checked.system_size,
                    name=system.name or "",
                    description=system.description or "",
                    status="In_use",
                    image_id=image.id,
                    device="/dev/xvda",
                    delete_with_instance=True,
                    host_id=host_id,
                    created_at=now,
                    encrypted=system.encrypted or image.encrypted,
                )
            )
            for number, (d, category, size) in enumerate(checked.data_disks):
                s.add(
                    Disk(
                        id=ids.new_id("disk"),
                        account_id=scope.account_id,
                        region_id=scope.region_id,
                        zone_id=vswitch.zone_id,
                        instance_id=instance_id,
                        disk_type="data",
                        category=category,
                        performance_level=d.performance_level or ("PL1" if category == "cloud_essd" else ""),
                        size_gib=size,
                        name=d.name or "",
                        description=d.description or "",
                        status="In_use",
                        image_id="",
                        device=f"/dev/xvd{chr(ord('b') + number)}",
                        source_snapshot_id=d.snapshot_id or "",
                        delete_with_instance=d.delete_with_instance,
                        host_id=host_id,
                        created_at=now,
                        encrypted=d.encrypted or _snapshot_encrypted(s, d.snapshot_id),
                    )
                )
            write_tags(s, scope, "instance", instance_id, request.tags, created=True)
        return instance_ids
