"""Instances: launching (validation, placement, the rows of the instance, its network
interface and disks, in one transaction), power actions through the status table, queries.

Nothing here touches a machine: the host agent reads what is wanted and makes it so."""

from __future__ import annotations

import base64
import binascii
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from ipaddress import IPv4Address, IPv4Network

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.catalog.model import Catalog, InstanceType
from nubes.clock import Clock, as_utc
from nubes.domain import cidr, instance_states as states
from nubes.domain.common import Scope, check_description, check_name, owned
from nubes.domain.keypairs import owned_key_pair
from nubes.domain.disk_categories import CATEGORIES, DATA, SYSTEM, size_range
from nubes.domain.images import Images
from nubes.domain.names import check_hostname, expand
from nubes.domain.network_interfaces import ENI_IN_USE, new_mac
from nubes.domain.passwords import check_password, sha512_crypt
from nubes.domain.regions import require_region
from nubes.domain.tags import tags_by_resource
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
    Tag,
    VSwitch,
)

USER_DATA_MAX_BYTES = 32 * 1024


@dataclass
class DiskRequest:
    size_gib: int | None = None
    category: str | None = None
    performance_level: str | None = None
    name: str | None = None
    description: str | None = None
    delete_with_instance: bool = True
    snapshot_id: str | None = None


@dataclass
class LaunchRequest:
    """Everything RunInstances and CreateInstance take, validated by `Instances.launch`."""

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
    tags: list[tuple[str, str]] = field(default_factory=list)
    resource_group_id: str = ""
    http_tokens: str = "optional"
    http_endpoint: str = "enabled"
    start: bool = True  # RunInstances starts them; CreateInstance leaves them Stopped
    dry_run: bool = False


def _hosts(s: Session) -> list[HostState]:
    used = {
        host_id: (int(cpu or 0), int(memory or 0))
        for host_id, cpu, memory in s.execute(
            select(Instance.host_id, func.sum(Instance.cpu), func.sum(Instance.memory_mib))
            .where(Instance.desired != states.WANT_DELETED)
            .group_by(Instance.host_id)
        )
    }
    sets: dict[str, dict[str, dict[int, int]]] = {}
    for host_id, set_id in s.execute(
        select(Instance.host_id, Instance.deployment_set_id).where(
            Instance.deployment_set_id != "", Instance.desired != states.WANT_DELETED
        )
    ):
        if host_id is None:
            continue
        groups = sets.setdefault(host_id, {}).setdefault(set_id, {})
        groups[1] = groups.get(1, 0) + 1
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


def _disk_size(category: str, size: int | None, minimum: int, system: bool, level: str | None) -> int:
    """A launch disk's size (the smallest allowed when none is given), checked against its
    category's range with RunInstances' error codes."""
    kind = "SystemDisk" if system else "DataDisk"
    if category not in CATEGORIES:
        raise errors.invalid_category_value_not_supported(kind, f"The disk category {category!r} is not supported.")
    allowed = size_range(category, level or "", SYSTEM if system else DATA)
    low = max(allowed.min_gib, minimum) if system else allowed.min_gib
    value = size if size is not None else low
    if not low <= value <= allowed.max_gib:
        refuse = errors.invalid_system_disk_size if system else errors.invalid_data_disk_size_value_not_supported
        if system and value < minimum:
            refuse = errors.invalid_system_disk_size_less_than_image_size
        raise refuse(f"The {category} disk size must be from {low} to {allowed.max_gib} GiB; got {value}.")
    return value


def _image_snapshots(image: Image | None) -> list[str]:
    if image is None:
        return []
    return [image.snapshot_id, *(str(m["SnapshotId"]) for m in json.loads(image.disk_mappings or "[]"))]


def _user_data(text: str | None) -> str:
    if not text:
        return ""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise errors.invalid_user_data_base64_format_invalid() from None
    if len(raw) > USER_DATA_MAX_BYTES:
        raise errors.invalid_user_data_size_exceeded()
    return text


def _auto_release(text: str | None, now: datetime) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=now.tzinfo)
    except ValueError:
        try:
            moment = datetime.strptime(text, "%Y-%m-%dT%H:%MZ").replace(tzinfo=now.tzinfo)
        except ValueError:
            raise errors.invalid_auto_release_time_malformed(
                "AutoReleaseTime must read yyyy-MM-ddTHH:mm:ssZ (UTC)."
            ) from None
    if not now + timedelta(minutes=30) <= moment <= now + timedelta(days=3 * 365):
        raise errors.invalid_auto_release_time_malformed(
            "AutoReleaseTime must be at least 30 minutes and at most three years after now."
        )
    return moment


class Instances:
    def __init__(self, db: Database, clock: Clock, catalog: Catalog, images: Images,
                 notify_compute: Callable[[str], None], notify_network: Callable[[str], None],
                 rng: random.Random | None = None) -> None:
        self._db = db
        self._clock = clock
        self._catalog = catalog
        self._images = images
        self._notify_compute = notify_compute
        self._notify_network = notify_network
        self._rng = rng or random.Random()

    def _notify(self, instance_ids: list[str], vpc_ids: set[str]) -> None:
        for instance_id in instance_ids:
            self._notify_compute(instance_id)
        for vpc_id in vpc_ids:
            self._notify_network(vpc_id)

    # ---- launch ------------------------------------------------------------------------------

    def launch(self, scope: Scope, request: LaunchRequest) -> list[str]:
        region = require_region(self._catalog, scope.region_id)
        now = self._clock.now()
        itype = self._instance_type(region.families, request.instance_type)
        image = self._images.usable(scope, request.image_id, request.image_family)
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
        hostnames = self._hostnames(request)
        description = check_description(request.description)
        if request.password:
            check_password(request.password)
        user_data = _user_data(request.user_data)
        release_at = _auto_release(request.auto_release_time, now)
        system_category = request.system_disk.category or "cloud_essd"
        system_size = _disk_size(system_category, request.system_disk.size_gib, image.size_gib, True,
                                 request.system_disk.performance_level)
        data_disks = list(request.data_disks) + self._image_data_disks(image, request.data_disks)
        snapshot_sizes = self._data_snapshot_sizes(scope, data_disks)
        data_sizes = []
        for d in data_disks:
            category = d.category or "cloud_efficiency"
            size = _disk_size(category, d.size_gib or snapshot_sizes.get(d.snapshot_id or "", None), 0, False,
                              d.performance_level)
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
        with self._db.session() as s:
            vswitch = owned(s, VSwitch, scope, request.vswitch_id, "VSwitch")
            if vswitch.status != AVAILABLE:
                raise errors.incorrect_vswitch_status(f"The vSwitch {vswitch.id} is {vswitch.status}.")
            if request.zone_id and request.zone_id != vswitch.zone_id:
                raise errors.invalid_parameter_mismatch(
                    f"The vSwitch {vswitch.id} is in zone {vswitch.zone_id}, not "
                    f"{request.zone_id}.",
                )
            groups = self._security_groups(s, scope, vswitch.vpc_id, request.security_group_ids)
            if request.key_pair_name:
                owned_key_pair(s, scope, request.key_pair_name)
            deployment = self._deployment_set(s, scope, request.deployment_set_id)
            used_ips = {IPv4Address(ip) for ip in s.scalars(
                select(NetworkInterface.primary_ip).where(NetworkInterface.vswitch_id == vswitch.id))}
            network = IPv4Network(vswitch.cidr)
            hosts = _hosts(s)
            count = request.amount
            placements: list[str] = []
            while True:
                placement = [
                    PlacementRequest(vswitch.zone_id, itype.cpu, int(itype.memory_gib * 1024),
                                     deployment.id if deployment else "", deployment.strategy if deployment else "",
                                     request.deployment_set_group_no or 1)
                    for _ in range(count)
                ]
                try:
                    placements = place_all(placement, hosts, rng=self._rng)
                    break
                except NoHostFound:
                    if request.min_amount is None or count <= request.min_amount:
                        raise errors.operation_denied_no_stock(
                            f"The resource is out of stock in zone {vswitch.zone_id}: no host has room for "
                            f"{count} x {itype.type_id}. Try another instance type, zone, or a smaller Amount.",
                        ) from None
                    count -= 1
            addresses = []
            for _ in range(count):
                address = cidr.allocate(network, used_ips, request.private_ip)
                used_ips.add(address)
                addresses.append(address)
            if request.dry_run:
                raise errors.dry_run_operation()
            instance_ids = []
            macs: set[str] = set()
            for index in range(count):
                instance_id = ids.new_id("instance")
                instance_ids.append(instance_id)
                instance = Instance(
                    id=instance_id,
                    account_id=scope.account_id,
                    region_id=scope.region_id,
                    zone_id=vswitch.zone_id,
                    host_id=placements[index],
                    instance_type=itype.type_id,
                    cpu=itype.cpu,
                    memory_mib=int(itype.memory_gib * 1024),
                    image_id=image.id,
                    name=names[index] or instance_id,
                    description=description,
                    hostname=hostnames[index] if hostnames else f"iZ{instance_id[2:]}Z",
                    status=states.PENDING,
                    desired=states.WANT_RUNNING if request.start else states.WANT_STOPPED,
                    force=False,
                    stopped_mode="KeepCharging",
                    vpc_id=vswitch.vpc_id,
                    vswitch_id=vswitch.id,
                    key_pair_name=request.key_pair_name or "",
                    pending_key_pair_name=None,
                    password_hash=sha512_crypt(request.password) if request.password else "",
                    user_data=user_data,
                    charge_type=request.charge_type,
                    spot_strategy=request.spot_strategy,
                    deployment_set_id=deployment.id if deployment else "",
                    deletion_protection=request.deletion_protection,
                    auto_release_time=release_at,
                    metadata_http_tokens=request.http_tokens,
                    metadata_http_endpoint=request.http_endpoint,
                    resource_group_id=request.resource_group_id,
                    created_at=now,
                    started_at=None,
                    status_changed_at=now,
                )
                s.add(instance)
                eni = NetworkInterface(
                    id=ids.new_id("network_interface"), account_id=scope.account_id, region_id=scope.region_id,
                    zone_id=vswitch.zone_id, vpc_id=vswitch.vpc_id, vswitch_id=vswitch.id, name="", description="",
                    mac=new_mac(s, macs), primary_ip=str(addresses[index]), status=ENI_IN_USE, eni_type="Primary",
                    instance_id=instance_id, attachment="instance", resource_group_id="", created_at=now,
                )
                eni.memberships = [NetworkInterfaceGroup(group_id=g.id, position=i) for i, g in enumerate(groups)]
                s.add(eni)
                s.add(Disk(
                    id=ids.new_id("disk"), account_id=scope.account_id, region_id=scope.region_id,
                    zone_id=vswitch.zone_id, instance_id=instance_id, disk_type="system", category=system_category,
                    performance_level=request.system_disk.performance_level or ("PL1" if system_category == "cloud_essd"
                                                                                else ""),
                    size_gib=system_size, name=request.system_disk.name or "",
                    description=request.system_disk.description or "", status="In_use", image_id=image.id,
                    device="/dev/xvda", delete_with_instance=True, host_id=placements[index], created_at=now,
                ))
                for number, (d, category, size) in enumerate(data_sizes):
                    s.add(Disk(
                        id=ids.new_id("disk"), account_id=scope.account_id, region_id=scope.region_id,
                        zone_id=vswitch.zone_id, instance_id=instance_id, disk_type="data", category=category,
                        performance_level=d.performance_level or ("PL1" if category == "cloud_essd" else ""),
                        size_gib=size, name=d.name or "", description=d.description or "", status="In_use",
                        image_id="", device=f"/dev/xvd{chr(ord('b') + number)}", source_snapshot_id=d.snapshot_id or "",
                        delete_with_instance=d.delete_with_instance, host_id=placements[index], created_at=now,
                    ))
                for tag_key, tag_value in request.tags:
                    s.add(Tag(account_id=scope.account_id, region_id=scope.region_id, resource_type="instance",
                              resource_id=instance_id, key=tag_key, value=tag_value))
            vpc_id = vswitch.vpc_id
        self._notify(instance_ids, {vpc_id})
        return instance_ids

    @staticmethod
    def _image_data_disks(image: Image, asked: list[DiskRequest]) -> list[DiskRequest]:
        """The data disks a custom image carries (its data snapshots), unless the request names them."""
        named = {d.snapshot_id for d in asked if d.snapshot_id}
        return [DiskRequest(size_gib=int(m.get("Size") or 0) or None, category="cloud_essd",
                            snapshot_id=str(m["SnapshotId"]))
                for m in json.loads(image.disk_mappings or "[]") if m.get("SnapshotId") not in named]

    def _data_snapshot_sizes(self, scope: Scope, disks: list[DiskRequest]) -> dict[str, int]:
        """The sizes of the snapshots data disks are made from (which must be usable)."""
        wanted = {d.snapshot_id for d in disks if d.snapshot_id}
        if not wanted:
            return {}
        with self._db.session() as s:
            found = {sn.id: sn for sn in s.scalars(select(Snapshot).where(Snapshot.id.in_(wanted)))}
            shared_images = {sid for image_id in s.scalars(select(ImageShare.image_id).where(
                ImageShare.account_id == scope.account_id))
                for sid in _image_snapshots(s.get(Image, image_id))}
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

    def _instance_type(self, families: tuple[str, ...], type_id: str) -> InstanceType:
        itype = self._catalog.instance_type(type_id)
        if itype is None or itype.family not in families:
            raise errors.invalid_instance_type_value_not_supported(
                f"The instance type {type_id!r} is not offered in this region; DescribeInstanceTypes and "
                "DescribeZones list what is.",
            )
        return itype

    @staticmethod
    def _hostnames(request: LaunchRequest) -> list[str]:
        if request.host_names:
            if len(request.host_names) != request.amount:
                raise errors.invalid_host_names_count_mismatch()
            return [check_hostname(h) for h in request.host_names]
        if request.host_name:
            return [check_hostname(h) for h in expand(request.host_name, request.amount, request.unique_suffix,
                                                       "HostName")]
        return []

    @staticmethod
    def _security_groups(s: Session, scope: Scope, vpc_id: str, group_ids: list[str]) -> list[SecurityGroup]:
        if not group_ids:
            raise errors.missing_parameter(
                "SecurityGroupId",
                message="Give SecurityGroupId or SecurityGroupIds.N.",
            )
        groups = []
        for group_id in dict.fromkeys(group_ids):
            group = owned(s, SecurityGroup, scope, group_id, "SecurityGroup")
            if group.vpc_id != vpc_id:
                raise errors.invalid_security_group_id_vpc_mismatch(
                    f"The security group {group_id} is in another VPC than the vSwitch."
                )
            groups.append(group)
        if len(groups) > 5:
            raise errors.invalid_security_group_ids_limit_exceeded("An instance can be in at most 5 security groups.")
        if len({g.group_type for g in groups}) > 1:
            raise errors.invalid_security_group_type_mixed("Normal and enterprise security groups cannot be mixed.")
        return groups

    @staticmethod
    def _deployment_set(s: Session, scope: Scope, set_id: str | None) -> DeploymentSet | None:
        if not set_id:
            return None
        return owned(s, DeploymentSet, scope, set_id, lambda missing: errors.invalid_deployment_set_id_not_found(
            f"The deployment set {missing!r} does not exist."
        ))

    # ---- lookups ------------------------------------------------------------------------------

    def owned(self, s: Session, account_id: int, instance_id: str, region_id: str | None = None) -> Instance:
        return owned(s, Instance, Scope(account_id, region_id) if region_id is not None else account_id, instance_id,
                     "Instance", usable=lambda i: i.desired != states.WANT_DELETED)

    def get(self, account_id: int, instance_id: str, region_id: str | None = None) -> Instance:
        with self._db.session() as s:
            return self.owned(s, account_id, instance_id, region_id)

    # ---- power --------------------------------------------------------------------------------

    def act(self, account_id: int, instance_id: str, action: str, *, force: bool = False,
            stopped_mode: str | None = None, dry_run: bool = False, region_id: str | None = None) -> tuple[str, str]:
        """Apply a power action through the status table: (previous status, new status)."""
        with self._db.session() as s:
            instance = self.owned(s, account_id, instance_id, region_id)
            if action in ("DeleteInstance", "ForceDeleteInstance") and instance.deletion_protection:
                raise errors.invalid_operation_deletion_protection(
                    f"The instance {instance_id} has deletion protection; turn it off with ModifyInstanceAttribute.",
                )
            transition = states.check(action, instance_id, instance.status)
            if dry_run:
                raise errors.dry_run_operation()
            previous = instance.status
            if transition.to is not None:
                instance.status = transition.to
                instance.status_changed_at = self._clock.now()
            if transition.desired is not None:
                instance.desired = transition.desired
            instance.force = force
            if stopped_mode:
                instance.stopped_mode = stopped_mode
            current = instance.status
            vpc_id = instance.vpc_id
        self._notify([instance_id], {vpc_id} if action.endswith("DeleteInstance") else set())
        return previous, current

    # ---- queries ------------------------------------------------------------------------------

    def describe(self, scope: Scope) -> list[Instance]:
        with self._db.session() as s:
            return list(s.scalars(
                select(Instance)
                .where(Instance.account_id == scope.account_id, Instance.region_id == scope.region_id,
                       Instance.desired != states.WANT_DELETED)
                .order_by(Instance.created_at.desc(), Instance.id)
            ))

    def related(self, scope: Scope, instance_ids: list[str]) -> tuple[dict[str, NetworkInterface], dict[str, list[str]],
                                                          dict[str, list[tuple[str, str]]]]:
        """Primary interfaces, security groups and tags of instances, in three queries."""
        with self._db.session() as s:
            enis = {e.instance_id: e for e in s.scalars(select(NetworkInterface).where(
                NetworkInterface.instance_id.in_(instance_ids), NetworkInterface.eni_type == "Primary"))}
            groups: dict[str, list[str]] = {i: [] for i in instance_ids}
            for instance_id, group_id in s.execute(
                select(NetworkInterface.instance_id, NetworkInterfaceGroup.group_id)
                .join(NetworkInterfaceGroup, NetworkInterfaceGroup.interface_id == NetworkInterface.id)
                .where(NetworkInterface.instance_id.in_(instance_ids), NetworkInterface.eni_type == "Primary")
                .order_by(NetworkInterfaceGroup.position)
            ):
                groups[instance_id].append(group_id)
            tags: dict[str, list[tuple[str, str]]] = {i: [] for i in instance_ids}
            tags.update(tags_by_resource(s, scope, "instance", instance_ids))
            return enis, groups, tags

    def image_of(self, image_id: str) -> Image | None:
        return self._images.get(image_id)

    def images_of(self, instances: list[Instance]) -> dict[str, Image]:
        return self._images.get_many({i.image_id for i in instances})

    def release_due(self) -> list[str]:
        """Instances whose AutoReleaseTime has come: they are deleted (forcibly, as ECS does)."""
        now = self._clock.now()
        released = []
        with self._db.session() as s:
            for instance in s.scalars(select(Instance).where(
                Instance.auto_release_time.is_not(None), Instance.desired != states.WANT_DELETED
            )):
                if instance.auto_release_time is not None and as_utc(instance.auto_release_time) <= now:
                    instance.desired = states.WANT_DELETED
                    instance.force = True
                    released.append(instance.id)
        self._notify(released, set())
        return released


class InstanceChanges:
    """Attribute, spec, key pair and deployment changes of existing instances."""

    def __init__(self, db: Database, clock: Clock, catalog: Catalog, instances: Instances,
                 notify_network: Callable[[str], None]) -> None:
        self._db = db
        self._clock = clock
        self._catalog = catalog
        self._instances = instances
        self._notify_network = notify_network

    def modify_attribute(self, account_id: int, instance_id: str, *, name: str | None = None,
                         description: str | None = None, hostname: str | None = None, password: str | None = None,
                         user_data: str | None = None, deletion_protection: bool | None = None,
                         security_group_ids: list[str] | None = None) -> None:
        vpc_id = None
        with self._db.session() as s:
            instance = self._instances.owned(s, account_id, instance_id)
            if name is not None:
                instance.name = check_name("InstanceName", name)
            if description is not None:
                instance.description = check_description(description)
            if hostname is not None:
                instance.hostname = check_hostname(hostname)
            if password is not None:
                states.check("ModifyInstanceAttribute.Password", instance_id, instance.status)
                check_password(password)
                instance.password_hash = sha512_crypt(password)
            if user_data is not None:
                if instance.status != states.STOPPED:
                    raise errors.incorrect_instance_status("UserData can be changed only while Stopped.")
                instance.user_data = _user_data(user_data)
            if deletion_protection is not None:
                instance.deletion_protection = deletion_protection
            if security_group_ids:
                groups = self._instances._security_groups(
                    s, Scope(account_id, instance.region_id), instance.vpc_id, security_group_ids)
                eni = s.scalar(select(NetworkInterface).where(
                    NetworkInterface.instance_id == instance_id, NetworkInterface.eni_type == "Primary"))
                if eni is not None:
                    kept = {m.group_id: m for m in eni.memberships}
                    wanted = [g.id for g in groups]
                    for membership in list(eni.memberships):
                        if membership.group_id not in wanted:
                            eni.memberships.remove(membership)
                    for position, group_id in enumerate(wanted):
                        if group_id in kept:
                            kept[group_id].position = position
                        else:
                            eni.memberships.append(NetworkInterfaceGroup(group_id=group_id, position=position))
                    vpc_id = instance.vpc_id
        if vpc_id:
            self._notify_network(vpc_id)

    def modify_spec(self, account_id: int, instance_id: str, instance_type: str, dry_run: bool = False) -> None:
        with self._db.session() as s:
            instance = self._instances.owned(s, account_id, instance_id)
            states.check("ModifyInstanceSpec", instance_id, instance.status)
            region = require_region(self._catalog, instance.region_id)
            itype = self._instances._instance_type(region.families, instance_type)
            if itype.type_id == instance.instance_type:
                raise errors.invalid_instance_type_value_unauthorized(
                    f"The instance is already of type {instance_type}."
                )
            if instance.host_id:
                host_state = next((h for h in _hosts(s) if h.host_id == instance.host_id), None)
                extra_cpu = itype.cpu - instance.cpu
                extra_memory = int(itype.memory_gib * 1024) - instance.memory_mib
                if host_state is not None and (host_state.free_vcpus < extra_cpu
                                               or host_state.free_memory_mib < extra_memory):
                    raise errors.operation_denied_no_stock(
                        f"The host of {instance_id} has no room for {instance_type}."
                    )
            if dry_run:
                raise errors.dry_run_operation()
            instance.instance_type, instance.cpu = itype.type_id, itype.cpu
            instance.memory_mib = int(itype.memory_gib * 1024)

    def modify_metadata_options(self, account_id: int, instance_id: str, http_tokens: str | None,
                                http_endpoint: str | None) -> None:
        with self._db.session() as s:
            instance = self._instances.owned(s, account_id, instance_id)
            if http_tokens:
                instance.metadata_http_tokens = http_tokens
            if http_endpoint:
                instance.metadata_http_endpoint = http_endpoint

    def key_pair(self, scope: Scope, key_pair_name: str, instance_ids: list[str], attach: bool
                 ) -> list[tuple[str, str, str]]:
        """Attach or detach a key pair; effective at the next start, as in ECS.
        Per instance: (instance id, code, message)."""
        results = []
        with self._db.session() as s:
            owned_key_pair(s, scope, key_pair_name)
            for instance_id in instance_ids:
                instance = s.get(Instance, instance_id)
                if instance is None or instance.account_id != scope.account_id \
                        or instance.region_id != scope.region_id or instance.desired == states.WANT_DELETED:
                    results.append((instance_id, "InvalidInstanceId.NotFound", "The instance does not exist."))
                    continue
                target = key_pair_name if attach else ""
                current = instance.key_pair_name if instance.pending_key_pair_name is None \
                    else instance.pending_key_pair_name
                if not attach and current != key_pair_name:
                    results.append((instance_id, "InvalidKeyPairName.NotBound",
                                    "The key pair is not bound to this instance."))
                    continue
                if instance.status in (states.STOPPED, states.PENDING):
                    instance.key_pair_name, instance.pending_key_pair_name = target, None
                else:
                    instance.pending_key_pair_name = target  # applied when the instance next starts
                results.append((instance_id, "200", "successful"))
        return results

    def deployment(self, account_id: int, instance_id: str, deployment_set_id: str | None, remove: bool) -> None:
        with self._db.session() as s:
            instance = self._instances.owned(s, account_id, instance_id)
            if remove:
                instance.deployment_set_id = ""
                return
            if instance.status != states.STOPPED:
                raise errors.incorrect_instance_status(
                    "An instance moves into a deployment set only while Stopped."
                )
            deployment = Instances._deployment_set(s, Scope(account_id, instance.region_id), deployment_set_id)
            instance.deployment_set_id = deployment.id if deployment else ""
