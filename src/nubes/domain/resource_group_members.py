"""JoinResourceGroup: a resource of the caller moves to another of the caller's resource groups."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from nubes import errors
from nubes.clock import Clock
from nubes.domain.common import Scope, owned
from nubes.domain.custom_images import owned_image
from nubes.domain.disks import owned_disk, owned_snapshot
from nubes.domain.keypairs import owned_key_pair
from nubes.domain.public_addresses import EIP
from nubes.domain.resource_groups import create_group, default_group_id, group_for
from nubes.store.db import Database
from nubes.store.models import (
    Image,
    Instance,
    LaunchTemplate,
    NatGateway,
    NetworkInterface,
    PublicAddress,
    RouteTable,
    SecurityGroup,
    Vpc,
)


def _own_image(s: Session, scope: Scope, image_id: str) -> Image:
    image = owned_image(s, scope.account_id, image_id)
    if image.region_id != scope.region_id:
        raise errors.invalid_image_id_not_found(f"The specified image {image_id!r} does not exist.")
    return image


# JoinResourceGroup's ResourceType: the row of each kind nubes keeps a group for, by the caller's ID.
_GROUPED: dict[str, Callable[[Session, Scope, str], Any]] = {
    "instance": lambda s, scope, i: owned(s, Instance, scope, i, "Instance"),
    "securitygroup": lambda s, scope, i: owned(s, SecurityGroup, scope, i, "SecurityGroup"),
    "eni": lambda s, scope, i: owned(s, NetworkInterface, scope, i, "NetworkInterface"),
    "keypair": owned_key_pair,
    "disk": lambda s, scope, i: owned_disk(s, scope.account_id, i, scope.region_id),
    "snapshot": lambda s, scope, i: owned_snapshot(s, scope.account_id, i, scope.region_id),
    "image": _own_image,
    "launchtemplate": lambda s, scope, i: owned(
        s, LaunchTemplate, scope, i, errors.invalid_launch_template_not_found
    ),
}
RESOURCE_TYPES = tuple(_GROUPED)

# The VPC product's MoveResourceGroup: its kinds that have a group (a vSwitch has none in nubes;
# a custom route table is moved by its own ID, the system one goes with its VPC).
_VPC_GROUPED: dict[str, Callable[[Session, Scope, str], Any]] = {
    "vpc": lambda s, scope, i: owned(s, Vpc, scope, i, "Vpc"),
    "eip": lambda s, scope, i: owned(
        s, PublicAddress, scope, i, "Allocation", usable=lambda r: r.kind == EIP
    ),
    "natgateway": lambda s, scope, i: owned(s, NatGateway, scope, i, "NatGateway"),
    "routetable": lambda s, scope, i: owned(s, RouteTable, scope, i, "RouteTable"),
}
VPC_RESOURCE_TYPES = tuple(_VPC_GROUPED)


class ResourceGroups:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def join(self, scope: Scope, resource_type: str, resource_id: str, group_id: str) -> None:
        """JoinResourceGroup: the resource moves to the group (the account's)."""
        with self._db.session() as s:
            group = group_for(s, scope.account_id, group_id, self._clock)
            row = _GROUPED[resource_type](s, scope, resource_id)
            row.resource_group_id = group

    def move(self, scope: Scope, resource_type: str, resource_id: str, group_id: str) -> None:
        """The VPC product's MoveResourceGroup: the resource moves to the group (the account's)."""
        with self._db.session() as s:
            row = _VPC_GROUPED[resource_type](s, scope, resource_id)
            row.resource_group_id = group_for(s, scope.account_id, group_id, self._clock)

    def default_id(self, account_id: int) -> str:
        with self._db.session() as s:
            return default_group_id(s, account_id, self._clock.now())

    def create(self, account_id: int, name: str) -> str:
        with self._db.session() as s:
            return create_group(s, account_id, name, self._clock.now())
