"""SQLAlchemy models: the store's tables. Each resource belongs to an account (and a region)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # The 16-digit account ID ECS reports as OwnerId.
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="Enabled")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    keys: Mapped[list[AccessKey]] = relationship(back_populates="account", cascade="all, delete-orphan")


class AccessKey(Base):
    __tablename__ = "access_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    access_key_id: Mapped[str] = mapped_column(String(64), unique=True)
    # Kept in the clear: HMAC verification needs the secret itself. Protect the store file.
    secret: Mapped[str] = mapped_column(String(128))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="Active")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    account: Mapped[Account] = relationship(back_populates="keys")


class AccountDiskKey(Base):
    """The key an account's encrypted disks, snapshots and images are encrypted with: random,
    made on first use, kept only wrapped (AES-GCM) under the server's master key, which lives in
    a file beside the store and never in it (domain/disk_keys.py)."""

    __tablename__ = "account_disk_keys"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class KeyPair(Base):
    __tablename__ = "key_pairs"
    __table_args__ = (UniqueConstraint("account_id", "region_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(128))
    public_key: Mapped[str] = mapped_column(Text)
    resource_group_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ResourceGroup(Base):
    """A resource group of an account (ECS's ResourceGroupId): every account has its default one,
    made when first needed, and every ECS resource that has a group is in one."""

    __tablename__ = "resource_groups"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str] = mapped_column(String(128))
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IdempotencyRecord(Base):
    """A ClientToken seen before: the same token with the same parameters gets the same answer."""

    __tablename__ = "idempotency"
    __table_args__ = (UniqueConstraint("account_id", "action", "token"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(String(128))
    params_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SignatureNonce(Base):
    """A SignatureNonce seen within the timestamp window, shared by every API process and kept
    across restarts. The digest covers the AccessKey and the nonce."""

    __tablename__ = "signature_nonces"
    # one B-tree per insert on SQLite (every request writes here); the minutely sweep scans
    __table_args__ = ({"sqlite_with_rowid": False},)

    digest: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    expires_at: Mapped[int] = mapped_column(Integer)  # epoch seconds


class Vpc(Base):
    __tablename__ = "vpcs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    cidr: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    is_default: Mapped[bool] = mapped_column(default=False)
    vrouter_id: Mapped[str] = mapped_column(String(64))
    route_table_id: Mapped[str] = mapped_column(String(64))
    resource_group_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class VSwitch(Base):
    __tablename__ = "vswitches"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    vpc_id: Mapped[str] = mapped_column(ForeignKey("vpcs.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[str] = mapped_column(String(32))
    zone_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    cidr: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The custom route table the vSwitch is associated with; None: its VPC's system table.
    route_table_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)


class RouteTable(Base):
    """A custom route table of a VPC (the system table is the VPC's own `route_table_id`)."""

    __tablename__ = "route_tables"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    vpc_id: Mapped[str] = mapped_column(ForeignKey("vpcs.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    status: Mapped[str] = mapped_column(String(16))
    resource_group_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RouteEntry(Base):
    """A custom route of a VPC's route table (system routes are derived, not stored)."""

    __tablename__ = "route_entries"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    route_table_id: Mapped[str] = mapped_column(String(64), index=True)
    vpc_id: Mapped[str] = mapped_column(ForeignKey("vpcs.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    destination_cidr: Mapped[str] = mapped_column(String(64))
    next_hop_type: Mapped[str] = mapped_column(String(32))
    next_hop_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SecurityGroup(Base):
    __tablename__ = "security_groups"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[str] = mapped_column(String(32))
    vpc_id: Mapped[str] = mapped_column(ForeignKey("vpcs.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    group_type: Mapped[str] = mapped_column(String(16))  # normal | enterprise
    inner_access_policy: Mapped[str] = mapped_column(String(16))  # Accept | Drop
    resource_group_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    rules: Mapped[list[SecurityGroupRule]] = relationship(
        back_populates="group", cascade="all, delete-orphan", order_by="SecurityGroupRule.created_at"
    )


class SecurityGroupRule(Base):
    __tablename__ = "security_group_rules"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("security_groups.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(8))  # ingress | egress
    ip_protocol: Mapped[str] = mapped_column(String(8))  # TCP UDP ICMP GRE ALL
    port_range: Mapped[str] = mapped_column(String(16))  # "22/22", "-1/-1"
    source_port_range: Mapped[str] = mapped_column(String(16), default="")
    peer_cidr: Mapped[str] = mapped_column(String(64), default="")
    peer_group_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    policy: Mapped[str] = mapped_column(String(8))  # accept | drop
    priority: Mapped[int] = mapped_column(Integer)
    nic_type: Mapped[str] = mapped_column(String(16), default="intranet")
    description: Mapped[str] = mapped_column(String(512), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    group: Mapped[SecurityGroup] = relationship(back_populates="rules")


class NetworkInterface(Base):
    __tablename__ = "network_interfaces"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[str] = mapped_column(String(32))
    zone_id: Mapped[str] = mapped_column(String(64))
    vpc_id: Mapped[str] = mapped_column(ForeignKey("vpcs.id", ondelete="RESTRICT"), index=True)
    vswitch_id: Mapped[str] = mapped_column(ForeignKey("vswitches.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    mac: Mapped[str] = mapped_column(String(17), unique=True)
    primary_ip: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # Available | InUse | ...
    eni_type: Mapped[str] = mapped_column(String(16), default="Secondary")  # Primary | Secondary
    instance_id: Mapped[str] = mapped_column(String(64), default="")
    # What the port is plugged into on the host: "" (nothing), "instance", or "testhost".
    attachment: Mapped[str] = mapped_column(String(16), default="")
    resource_group_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    memberships: Mapped[list[NetworkInterfaceGroup]] = relationship(
        back_populates="interface", cascade="all, delete-orphan", order_by="NetworkInterfaceGroup.position"
    )
    # Loaded with the interface wherever it is read (every rendering shows them).
    secondary_ips: Mapped[list[NetworkInterfacePrivateIp]] = relationship(
        back_populates="interface",
        cascade="all, delete-orphan",
        order_by="NetworkInterfacePrivateIp.id",
        lazy="selectin",
    )


class NetworkInterfaceGroup(Base):
    """An interface's membership in a security group (up to 5, in order)."""

    __tablename__ = "network_interface_groups"
    __table_args__ = (UniqueConstraint("interface_id", "group_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    interface_id: Mapped[str] = mapped_column(
        ForeignKey("network_interfaces.id", ondelete="CASCADE"), index=True
    )
    group_id: Mapped[str] = mapped_column(ForeignKey("security_groups.id", ondelete="RESTRICT"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    interface: Mapped[NetworkInterface] = relationship(back_populates="memberships")


class NetworkInterfacePrivateIp(Base):
    """A secondary private IPv4 address of an interface (AssignPrivateIpAddresses), from the
    interface's vSwitch: unique in the vSwitch together with every other address handed out there
    (see nubes.domain.private_ips)."""

    __tablename__ = "network_interface_private_ips"
    __table_args__ = (UniqueConstraint("vswitch_id", "ip_address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    interface_id: Mapped[str] = mapped_column(
        ForeignKey("network_interfaces.id", ondelete="CASCADE"), index=True
    )
    vswitch_id: Mapped[str] = mapped_column(ForeignKey("vswitches.id", ondelete="RESTRICT"))
    ip_address: Mapped[str] = mapped_column(String(64))

    interface: Mapped[NetworkInterface] = relationship(back_populates="secondary_ips")


class NetworkGeneration(Base):
    """Bumped on every change to a VPC's network, so agents in other processes see it."""

    __tablename__ = "network_generations"

    vpc_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)


class Host(Base):
    """A machine running an agent: what the scheduler places instances on."""

    __tablename__ = "hosts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # host name, unique in the cloud
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mib: Mapped[int] = mapped_column(Integer)
    cpu_overcommit: Mapped[float] = mapped_column(default=4.0)
    memory_overcommit: Mapped[float] = mapped_column(default=1.0)
    zones: Mapped[str] = mapped_column(Text, default="*")  # comma-separated zone IDs, or * for every zone
    compute_driver: Mapped[str] = mapped_column(String(16), default="qemu")
    accel: Mapped[str] = mapped_column(String(8), default="tcg")
    status: Mapped[str] = mapped_column(String(16), default="Available")
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Image(Base):
    __tablename__ = "images"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    region_id: Mapped[str] = mapped_column(String(32), default="*")  # * : a system image of every region
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=True
    )
    owner_alias: Mapped[str] = mapped_column(String(16))  # system | self | others | marketplace
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(256), default="")
    family: Mapped[str] = mapped_column(String(128), default="")
    os_name: Mapped[str] = mapped_column(String(128))
    os_name_en: Mapped[str] = mapped_column(String(128))
    os_type: Mapped[str] = mapped_column(String(16))
    platform: Mapped[str] = mapped_column(String(64))
    architecture: Mapped[str] = mapped_column(String(16))
    size_gib: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer, default=100)
    usage: Mapped[str] = mapped_column(String(16), default="none")
    boot_mode: Mapped[str] = mapped_column(String(16), default="BIOS")
    # Where the image's files live on each host: the built image's name (system) or a path.
    artifact: Mapped[str] = mapped_column(String(512))
    # Its resource group; "" is the account's default group (JoinResourceGroup sets it)
    resource_group_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Custom images: the snapshot of the system disk, the system image whose kernel boots it,
    # and the data disks' snapshots ([{"SnapshotId", "Size", "Device"}, ...] as JSON).
    snapshot_id: Mapped[str] = mapped_column(String(64), default="")
    boot_image_id: Mapped[str] = mapped_column(String(128), default="")
    disk_mappings: Mapped[str] = mapped_column(Text, default="[]")
    source_instance_id: Mapped[str] = mapped_column(String(64), default="")
    client_token: Mapped[str] = mapped_column(String(64), default="")
    # its system disk's snapshot is encrypted (each data disk mapping says "Encrypted" of its own)
    encrypted: Mapped[bool] = mapped_column(default=False)


class Instance(Base):
    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[str] = mapped_column(String(32))
    zone_id: Mapped[str] = mapped_column(String(64))
    host_id: Mapped[str | None] = mapped_column(
        ForeignKey("hosts.id", ondelete="SET NULL"), nullable=True, index=True
    )
    instance_type: Mapped[str] = mapped_column(String(64))
    cpu: Mapped[int] = mapped_column(Integer)
    memory_mib: Mapped[int] = mapped_column(Integer)
    image_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    hostname: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), index=True)
    # What the owner asked for; the agent drives `status` towards it.
    desired: Mapped[str] = mapped_column(String(16))  # running | stopped | rebooting | deleted
    force: Mapped[bool] = mapped_column(default=False)  # the pending stop/reboot may be forced
    stopped_mode: Mapped[str] = mapped_column(String(32), default="KeepCharging")
    vpc_id: Mapped[str] = mapped_column(String(64), index=True)
    vswitch_id: Mapped[str] = mapped_column(String(64))
    key_pair_name: Mapped[str] = mapped_column(String(128), default="")
    # The key pair the guest gets at its next start (ECS: key changes take effect on restart).
    pending_key_pair_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    password_hash: Mapped[str] = mapped_column(String(256), default="")
    user_data: Mapped[str] = mapped_column(Text, default="")  # base64, as given
    charge_type: Mapped[str] = mapped_column(String(16), default="PostPaid")
    spot_strategy: Mapped[str] = mapped_column(String(32), default="NoSpot")
    deployment_set_id: Mapped[str] = mapped_column(String(64), default="")
    # The group of an AvailabilityGroup deployment set the instance is in (1 to 7); 0 outside one.
    deployment_set_group_no: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    deletion_protection: Mapped[bool] = mapped_column(default=False)
    # HibernationOptions.Configured at creation: only such an instance may StopInstance
    # Hibernate=true. `hibernated`: Stopped with its memory image on its host; the next
    # StartInstance restores it (cleared once it runs again, or when it boots cold).
    hibernation_configured: Mapped[bool] = mapped_column(default=False, server_default=false())
    hibernated: Mapped[bool] = mapped_column(default=False, server_default=false())
    # ModifyInstanceVncPasswd's password (6 letters and digits). Kept readable, not hashed: the
    # agent hands it to QEMU's VNC server, whose DES challenge needs it. "": none set yet.
    vnc_password: Mapped[str] = mapped_column(String(16), default="", server_default="")
    auto_release_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    metadata_http_tokens: Mapped[str] = mapped_column(String(16), default="optional")
    metadata_http_endpoint: Mapped[str] = mapped_column(String(16), default="enabled")
    # Public bandwidth as asked (Mbit/s): InternetMaxBandwidthOut > 0 is what lets the instance
    # have a public IP (a PublicAddress row of kind PublicIp carries the address itself).
    internet_charge_type: Mapped[str] = mapped_column(String(16), default="PayByTraffic")
    internet_max_bandwidth_out: Mapped[int] = mapped_column(Integer, default=0)
    internet_max_bandwidth_in: Mapped[int] = mapped_column(Integer, default=0)
    resource_group_id: Mapped[str] = mapped_column(String(64), default="")
    # The maintenance policy (ModifyInstanceMaintenanceAttributes): what the host agent does when
    # the instance's VM is lost under it (AutoRecover: start it again; Stop: leave it Stopped),
    # the one window (HH:mm:ss, UTC+8, both empty without one) and whether to notify first.
    maintenance_action: Mapped[str] = mapped_column(
        String(16), default="AutoRecover", server_default="AutoRecover"
    )
    maintenance_notify: Mapped[bool] = mapped_column(default=False, server_default=false())
    maintenance_start: Mapped[str] = mapped_column(String(8), default="", server_default="")
    maintenance_end: Mapped[str] = mapped_column(String(8), default="", server_default="")
    # The private pool match mode (None or Open: nubes has no private pools to target)
    private_pool_match: Mapped[str] = mapped_column(String(8), default="None", server_default="None")
    client_token: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ConsoleOutput(Base):
    """The tail of an instance's serial console, as the agent of its host last recorded it: what
    GetInstanceConsoleOutput answers, in any API process, without a driver."""

    __tablename__ = "console_outputs"

    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True)
    output: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Disk(Base):
    __tablename__ = "disks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[str] = mapped_column(String(32))
    zone_id: Mapped[str] = mapped_column(String(64))
    instance_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    disk_type: Mapped[str] = mapped_column(String(8))  # system | data
    category: Mapped[str] = mapped_column(String(32))
    performance_level: Mapped[str] = mapped_column(String(8), default="")
    size_gib: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    status: Mapped[str] = mapped_column(String(16))
    image_id: Mapped[str] = mapped_column(String(128), default="")
    device: Mapped[str] = mapped_column(String(32), default="")
    delete_with_instance: Mapped[bool] = mapped_column(default=True)
    host_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Its resource group; "" is the account's default group (JoinResourceGroup sets it)
    resource_group_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The qcow2 file (stem, in the host's disks directory) the disk reads and writes now: its id
    # at first, a new overlay after each snapshot or reset; older layers back it.
    layer: Mapped[str] = mapped_column(String(160), default="")
    source_snapshot_id: Mapped[str] = mapped_column(String(64), default="")
    provisioned_iops: Mapped[int] = mapped_column(Integer, default=0)
    bursting_enabled: Mapped[bool] = mapped_column(default=False)
    auto_snapshot_policy_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    enable_auto_snapshot: Mapped[bool] = mapped_column(default=True)
    delete_auto_snapshot: Mapped[bool] = mapped_column(default=True)
    client_token: Mapped[str] = mapped_column(String(64), default="")
    # Its layers are LUKS-encrypted qcow2 under the account's data key (AccountDiskKey)
    encrypted: Mapped[bool] = mapped_column(default=False)
    attached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    detached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @property
    def top_layer(self) -> str:
        return self.layer or self.id


class Snapshot(Base):
    __tablename__ = "snapshots"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[str] = mapped_column(String(32))
    disk_id: Mapped[str] = mapped_column(String(64), index=True)  # the source disk (may be gone)
    disk_type: Mapped[str] = mapped_column(String(8))  # system | data
    disk_category: Mapped[str] = mapped_column(String(32))
    disk_size_gib: Mapped[int] = mapped_column(Integer)
    source_image_id: Mapped[str] = mapped_column(
        String(128), default=""
    )  # what the source disk was made from
    name: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    status: Mapped[str] = mapped_column(String(16))  # progressing | accomplished | failed
    progress: Mapped[int] = mapped_column(Integer, default=0)
    # The frozen qcow2 layer (stem) holding the disk as it was; it and its backing chain are the content.
    layer: Mapped[str] = mapped_column(String(160), default="")
    auto_policy_id: Mapped[str] = mapped_column(String(64), default="")  # set when a policy made it
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    instant_access: Mapped[bool] = mapped_column(default=False)
    client_token: Mapped[str] = mapped_column(String(64), default="")
    encrypted: Mapped[bool] = mapped_column(default=False)  # taken of an encrypted disk
    host_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Its resource group; "" is the account's default group (JoinResourceGroup sets it)
    resource_group_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AutoSnapshotPolicy(Base):
    __tablename__ = "auto_snapshot_policies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128), default="")
    time_points: Mapped[str] = mapped_column(String(128))  # JSON list of hours 0-23
    repeat_weekdays: Mapped[str] = mapped_column(String(64))  # JSON list of 1 (Monday) - 7 (Sunday)
    retention_days: Mapped[int] = mapped_column(Integer)  # -1: kept until deleted
    copy_regions: Mapped[str] = mapped_column(String(512), default="[]")
    copy_retention_days: Mapped[int] = mapped_column(Integer, default=-1)
    status: Mapped[str] = mapped_column(String(16), default="Normal")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The last hour the policy fired for (UTC, minute 0): each time point fires once.
    last_fired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ImageShare(Base):
    """An account another account shared a custom image with (it may launch from it)."""

    __tablename__ = "image_shares"
    __table_args__ = (UniqueConstraint("image_id", "account_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[str] = mapped_column(String(128), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StorageTask(Base):
    """Work the agent does on disk files, committed before it starts (a crash redoes it):
    create, attach, detach, snapshot, reset, reinit, resize, delete. Done in id order per disk."""

    __tablename__ = "storage_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    disk_id: Mapped[str] = mapped_column(String(64), index=True)
    instance_id: Mapped[str] = mapped_column(String(64), default="")
    snapshot_id: Mapped[str] = mapped_column(String(64), default="")
    size_gib: Mapped[int] = mapped_column(Integer, default=0)
    host_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    args: Mapped[str] = mapped_column(Text, default="")  # JSON: what import/export need (paths, formats)


class Tag(Base):
    """Tags of every resource type, by the resource's owner-scoped identity: key pairs are named
    per account and region, so (account, region, type, id) and never the id alone."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("account_id", "region_id", "resource_type", "resource_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[str] = mapped_column(String(32))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(128), index=True)
    key: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(String(128), default="")


class DeploymentSet(Base):
    __tablename__ = "deployment_sets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    strategy: Mapped[str] = mapped_column(String(32))  # Availability | AvailabilityGroup | LowLatency
    domain: Mapped[str] = mapped_column(String(16), default="Default")
    granularity: Mapped[str] = mapped_column(String(16), default="Host")
    group_count: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PublicAddressPool(Base):
    """One of the operator's public ranges (`nubes server --public-cidr`): every address in it but
    the network, broadcast and gateway addresses may become a public IP or an EIP. Kept in the
    store so that every API process hands out from the same ranges; a range no longer configured
    is Retired: its addresses in use stay, no new one is taken from it."""

    __tablename__ = "public_address_pools"

    cidr: Mapped[str] = mapped_column(String(64), primary_key=True)
    gateway: Mapped[str] = mapped_column(String(64), default="")  # the uplink's next hop, if in range
    status: Mapped[str] = mapped_column(String(16), default="Active")  # Active | Retired
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PublicAddress(Base):
    """A public IPv4 address taken from a pool: an EIP (kind Eip, its id the AllocationId) or the
    public IP of an instance (kind PublicIp, from InternetMaxBandwidthOut; its id is internal until
    ConvertNatPublicIpToEip makes it an EIP with that same id).

    What the data plane reconciles, per row with a `network_interface_id`: 1:1 NAT between
    `ip_address` on the uplink and `private_ip` on that interface (in `vpc_id`, on the host of the
    interface's instance), shaped to `bandwidth_out`/`bandwidth_in` Mbit/s."""

    __tablename__ = "public_addresses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # Eip | PublicIp
    ip_address: Mapped[str] = mapped_column(String(64), unique=True)
    pool_cidr: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    bandwidth_out: Mapped[int] = mapped_column(Integer)  # Mbit/s: an EIP's Bandwidth
    bandwidth_in: Mapped[int] = mapped_column(Integer)
    internet_charge_type: Mapped[str] = mapped_column(String(16))  # PayByBandwidth | PayByTraffic
    isp: Mapped[str] = mapped_column(String(32), default="BGP")
    charge_type: Mapped[str] = mapped_column(String(16), default="PostPaid")
    resource_group_id: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16))  # Available | Associating | InUse | Unassociating
    # The association: EcsInstance (instance_id i-...) or NetworkInterface (instance_id eni-...).
    instance_type: Mapped[str] = mapped_column(String(32), default="")
    instance_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    network_interface_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    private_ip: Mapped[str] = mapped_column(String(64), default="")
    vpc_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    client_token: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    associated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class NatGateway(Base):
    """An Enhanced NAT gateway of a VPC: a private address in its vSwitch, one SNAT table and one
    forward (DNAT) table (their ids here), and the EIPs associated with it (PublicAddress rows
    with instance_type "Nat" and instance_id this id). The data plane is the VPC's leg on the
    uplink, as for the 1:1 NAT of instances."""

    __tablename__ = "nat_gateways"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[str] = mapped_column(String(32))
    zone_id: Mapped[str] = mapped_column(String(64))
    vpc_id: Mapped[str] = mapped_column(ForeignKey("vpcs.id", ondelete="RESTRICT"), index=True)
    vswitch_id: Mapped[str] = mapped_column(ForeignKey("vswitches.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    nat_type: Mapped[str] = mapped_column(String(16), default="Enhanced")
    spec: Mapped[str] = mapped_column(String(16), default="")
    network_type: Mapped[str] = mapped_column(String(16), default="internet")
    internet_charge_type: Mapped[str] = mapped_column(String(16), default="PayByLcu")
    eip_bind_mode: Mapped[str] = mapped_column(String(16), default="MULTI_BINDED")
    icmp_reply_enabled: Mapped[bool] = mapped_column(default=True)
    deletion_protection: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16))  # Creating | Available | Modifying | Deleting
    snat_table_id: Mapped[str] = mapped_column(String(64), unique=True)
    forward_table_id: Mapped[str] = mapped_column(String(64), unique=True)
    private_ip: Mapped[str] = mapped_column(String(64), default="")  # its address in the vSwitch
    resource_group_id: Mapped[str] = mapped_column(String(64), default="")
    client_token: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SnatEntry(Base):
    """An SNAT entry: what leaves the VPC from `source_cidr` (a vSwitch's CIDR when
    `source_vswitch_id` is set) by the uplink takes one of `snat_ips` (comma-separated public
    addresses of EIPs associated with the gateway)."""

    __tablename__ = "snat_entries"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    nat_gateway_id: Mapped[str] = mapped_column(ForeignKey("nat_gateways.id", ondelete="CASCADE"), index=True)
    snat_table_id: Mapped[str] = mapped_column(String(64), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    source_cidr: Mapped[str] = mapped_column(String(64))
    source_vswitch_id: Mapped[str] = mapped_column(String(64), default="")
    snat_ips: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(String(128), default="")
    eip_affinity: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))  # Pending | Available | Deleting
    client_token: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ForwardEntry(Base):
    """A DNAT (port forwarding) entry: what arrives on the uplink for `external_ip` (a public
    address of an EIP associated with the gateway) and `external_port` is forwarded to
    `internal_ip`:`internal_port`; protocol tcp, udp or any (any: every port, "any" ports)."""

    __tablename__ = "forward_entries"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    nat_gateway_id: Mapped[str] = mapped_column(ForeignKey("nat_gateways.id", ondelete="CASCADE"), index=True)
    forward_table_id: Mapped[str] = mapped_column(String(64), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    external_ip: Mapped[str] = mapped_column(String(64))
    external_port: Mapped[str] = mapped_column(String(16))  # "80", "1000/1010" or "any"
    internal_ip: Mapped[str] = mapped_column(String(64))
    internal_port: Mapped[str] = mapped_column(String(16))
    ip_protocol: Mapped[str] = mapped_column(String(8))  # tcp | udp | any
    name: Mapped[str] = mapped_column(String(128), default="")
    port_break: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16))  # Pending | Available | Deleting
    client_token: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LaunchTemplate(Base):
    """A launch template: its versions hold what RunInstances and CreateInstance take, as the
    wire parameters the version was created with (launch_template_versions)."""

    __tablename__ = "launch_templates"
    __table_args__ = (UniqueConstraint("account_id", "region_id", "name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128))
    default_version: Mapped[int] = mapped_column(Integer, default=1)
    latest_version: Mapped[int] = mapped_column(Integer, default=1)
    resource_group_id: Mapped[str] = mapped_column(String(64), default="")
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    modified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LaunchTemplateVersion(Base):
    __tablename__ = "launch_template_versions"
    __table_args__ = (UniqueConstraint("template_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_id: Mapped[str] = mapped_column(
        ForeignKey("launch_templates.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(256), default="")
    # The version's launch parameters: a JSON object of wire names to wire values
    # ({"InstanceType": "ecs.g6.large", "DataDisk.1.Size": "40", ...}).
    data: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    modified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EcsTask(Base):
    """An ECS task (a TaskId): the record of an asynchronous action that DescribeTasks lists
    (ImportImage, ExportImage, RedeployInstance). Its work is elsewhere (a storage task, the
    instance's own steps); this row tells its status and progress, and stays after it ends."""

    __tablename__ = "ecs_tasks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    # JSON: the (Name, Value) pairs of its OperationProgress (OSSBucket, OSSObject, ...)
    related: Mapped[str] = mapped_column(Text, default="")
    error_code: Mapped[str] = mapped_column(String(64), default="")
    error_message: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SystemEvent(Base):
    """A system event of an instance: one nubes caused and records (a restart after a crash), or
    a simulated one (CreateSimulatedSystemEvents) that the timers carry out at `not_before`."""

    __tablename__ = "system_events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[str] = mapped_column(String(32))
    instance_id: Mapped[str] = mapped_column(String(64), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(String(256), default="")
    simulated: Mapped[bool] = mapped_column(default=False)
    real_ops: Mapped[bool] = mapped_column(default=False)  # a simulated event nubes carries out for real
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class MonitorSample(Base):
    """What the host agent measured of one resource (an instance, a disk or a network interface)
    in one minute: counter deltas over the `span_ms` milliseconds its samples covered in that
    minute, added up when several samples fall into it. Rates and percentages are computed at
    query time (nubes.domain.monitoring), so periods of 600 or 3600 s are sums of these rows.

    One row per resource per minute, not one per instance: a disk or an interface moves between
    instances and is queried on its own (DescribeDiskMonitorData, DescribeEniMonitorData); an
    instance's figures are the sums over its disks and interfaces. Without a rowid (SQLite) the
    row is its primary key's B-tree entry, no second index; columns a kind does not use are
    NULL (one byte of header each). Kept for RETENTION (nubes.domain.monitoring: 8 days).

    Cost, measured on SQLite (20 instances x one week, rows written minute by minute as the
    agents write them, realistic counter values): 66 bytes a row (61 once VACUUMed). An instance
    with one disk and one interface writes 3 rows a minute: 30,240 rows, about 2.0 MB, a week;
    about 2.3 MB at the 8 days kept; 1000 such instances about 2.3 GB and 50 rows/s written
    (one transaction per host per sample). The hourly prune scans the table (no index on
    `minute`): about 26 ms per 600,000 rows, so about 1.5 s for 1000 instances."""

    __tablename__ = "monitor_samples"
    __table_args__ = ({"sqlite_with_rowid": False},)

    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    minute: Mapped[int] = mapped_column(Integer, primary_key=True)  # epoch seconds // 60
    span_ms: Mapped[int] = mapped_column(Integer, default=0)
    # an instance: CPU time its VM used (all vCPUs together) and how many vCPUs it had
    cpu_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    vcpus: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # a disk: bytes and operations, and the time the operations took (for latencies)
    read_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    write_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    read_ops: Mapped[int | None] = mapped_column(Integer, nullable=True)
    write_ops: Mapped[int | None] = mapped_column(Integer, nullable=True)
    read_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    write_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # a network interface (its tap; rx = what the guest received)
    rx_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tx_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    rx_packets: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tx_packets: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rx_dropped: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tx_dropped: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Screenshot(Base):
    """A screenshot of an instance's display asked for by GetInstanceScreenshot and taken by the
    agent of its host (the API process has no driver): the API writes `requested_at`, the agent
    takes the picture and writes `png` and `taken_at` (or `error`). One row per instance: the
    last one asked for."""

    __tablename__ = "screenshots"

    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    wake_up: Mapped[bool] = mapped_column(default=False)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    png: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    error: Mapped[str] = mapped_column(String(256), default="")


class VncTicket(Base):
    """A one-time VNC URL given by DescribeInstanceVncUrl: the API writes the ticket (the SHA-256
    of its token: the token itself is only in the URL), the agent of the instance's host gives
    the VM's VNC server the instance's password and writes where that server listens
    (`display`, or `error`), and the websocket proxy uses the ticket once before `expires_at`."""

    __tablename__ = "vnc_tickets"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    display: Mapped[str] = mapped_column(String(256), default="")  # "unix:<path>" or "<host>:<port>"
    error: Mapped[str] = mapped_column(String(256), default="")
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
