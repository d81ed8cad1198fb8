"""SQLAlchemy models: the store's tables. Each resource belongs to an account (and a region)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
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


class NetworkInterfaceGroup(Base):
    """An interface's membership in a security group (up to 5, in order)."""

    __tablename__ = "network_interface_groups"
    __table_args__ = (UniqueConstraint("interface_id", "group_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    interface_id: Mapped[str] = mapped_column(ForeignKey("network_interfaces.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("security_groups.id", ondelete="RESTRICT"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    interface: Mapped[NetworkInterface] = relationship(back_populates="memberships")


class NetworkGeneration(Base):
    """Bumped on every change to a VPC's network, so agents in other processes see it."""

    __tablename__ = "network_generations"

    vpc_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
