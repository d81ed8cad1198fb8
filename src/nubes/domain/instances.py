"""Instances: power actions through the status table, lookups, auto-release, and the changes of
existing instances (attributes, spec, key pair, deployment set). Launching is `launch.py`; the
queries of DescribeInstances and friends are `instance_queries.py`.

Nothing here touches a machine: the host agent reads what is wanted and makes it so."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nubes import errors
from nubes.catalog.model import Catalog
from nubes.clock import Clock, as_utc
from nubes.domain import instance_queries as queries
from nubes.domain import instance_states as states
from nubes.domain.common import Scope, check_description, check_name, owned
from nubes.domain.images import Images
from nubes.domain.keypairs import owned_key_pair
from nubes.domain.launch import (
    Launcher,
    LaunchRequest,
    host_states,
)
from nubes.domain.launch_checks import (
    check_user_data,
    deployment_set,
    group_numbers,
    offered_type,
    security_groups,
)
from nubes.domain.names import check_hostname
from nubes.domain.passwords import check_password, sha512_crypt
from nubes.domain.public_addresses import by_instances, release_instance_addresses
from nubes.domain.quotas import Quotas
from nubes.domain.regions import require_region
from nubes.errors import ApiError
from nubes.scheduler.placement import PlacementRequest, deployment_set_filter
from nubes.store.db import Database
from nubes.store.models import (
    DeploymentSet,
    Image,
    Instance,
    NetworkInterface,
    NetworkInterfaceGroup,
    PublicAddress,
)


class Instances:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        catalog: Catalog,
        images: Images,
        notify_compute: Callable[[str], None],
        notify_network: Callable[[str], None],
        rng: random.Random | None = None,
        quotas: Quotas | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._images = images
        self._notify_compute = notify_compute
        self._notify_network = notify_network
        self._launcher = Launcher(db, clock, catalog, images, self._notify, rng, quotas or Quotas())

    def _notify(self, instance_ids: list[str], vpc_ids: set[str]) -> None:
        for instance_id in instance_ids:
            self._notify_compute(instance_id)
        for vpc_id in vpc_ids:
            self._notify_network(vpc_id)

    def launch(self, scope: Scope, request: LaunchRequest) -> list[str]:
        """RunInstances and CreateInstance (see `launch.Launcher`): the new instances' IDs."""
        return self._launcher.launch(scope, request)

    # ---- lookups ------------------------------------------------------------------------------

    def owned(self, s: Session, account_id: int, instance_id: str, region_id: str | None = None) -> Instance:
        return owned(
            s,
            Instance,
            Scope(account_id, region_id) if region_id is not None else account_id,
            instance_id,
            "Instance",
            usable=lambda i: i.desired != states.WANT_DELETED,
        )

    def get(self, account_id: int, instance_id: str, region_id: str | None = None) -> Instance:
        with self._db.session() as s:
            return self.owned(s, account_id, instance_id, region_id)

    def primary_interface(self, account_id: int, instance_id: str, action: str, region_id: str | None) -> str:
        """The primary network interface of an instance whose status lets it do `action`
        (JoinSecurityGroup and LeaveSecurityGroup by InstanceId act on it)."""
        with self._db.session() as s:
            instance = self.owned(s, account_id, instance_id, region_id)
            states.check(action, instance_id, instance.status)
            eni = primary_eni(s, instance_id)
            assert eni is not None, f"instance {instance_id} has no primary network interface"
            return eni.id

    # ---- power --------------------------------------------------------------------------------

    def act(
        self,
        account_id: int,
        instance_id: str,
        action: str,
        *,
        force: bool = False,
        stopped_mode: str | None = None,
        dry_run: bool = False,
        region_id: str | None = None,
    ) -> tuple[str, str]:
        """Apply a power action through the status table: (previous status, new status).

        One compare-and-set on the status it was decided on: the agent may move the status
        between the read and the write (Pending -> Stopped while a StartInstance is queued),
        and the decision is then made again on the status as it is now."""
        with self._db.session() as s:
            instance = self.owned(s, account_id, instance_id, region_id)
            if action in ("DeleteInstance", "ForceDeleteInstance") and instance.deletion_protection:
                raise errors.invalid_operation_deletion_protection(
                    f"The instance {instance_id} has deletion protection; turn it off with ModifyInstanceAttribute.",
                )
            if action == "HibernateInstance" and not instance.hibernation_configured:
                raise errors.invalid_operation_hibernate_not_configured(
                    f"The instance {instance_id} was not created with HibernationOptions.Configured=true; "
                    "it cannot hibernate. Stop it without Hibernate."
                )
            vpc_id = instance.vpc_id
            while True:
                transition = states.check(action, instance_id, instance.status)
                if dry_run:
                    raise errors.dry_run_operation()
                previous, current = instance.status, transition.status_after(instance.status)
                values: dict[str, object] = {"force": force}
                if current != previous:
                    values.update(status=current, status_changed_at=self._clock.now())
                if transition.desired is not None:
                    values["desired"] = transition.desired
                if stopped_mode:
                    values["stopped_mode"] = stopped_mode
                moved = s.execute(
                    update(Instance)
                    .where(Instance.id == instance_id, Instance.status == previous)
                    .values(**values)
                    .returning(Instance.id)
                    .execution_options(synchronize_session=False)
                ).first()
                if moved is not None:
                    s.expire(instance)  # written past the ORM: read afresh if used again
                    if transition.desired == states.WANT_DELETED:
                        release_instance_addresses(s, instance_id)
                    break
                s.refresh(instance)  # the status it is now, for the next decision
        self._notify([instance_id], {vpc_id} if action.endswith("DeleteInstance") else set())
        return previous, current

    def act_all(
        self,
        scope: Scope,
        instance_ids: list[str],
        action: str,
        *,
        force: bool = False,
        stopped_mode: str | None = None,
        dry_run: bool = False,
    ) -> list[tuple[str, str, str]]:
        """A power action on several instances: all exist and may do it, or none is touched.
        Per instance: (instance id, previous status, new status)."""
        for instance_id in instance_ids:
            states.check(action, instance_id, self.get(scope.account_id, instance_id, scope.region_id).status)
        if dry_run:
            raise errors.dry_run_operation()
        return [
            (
                instance_id,
                *self.act(
                    scope.account_id,
                    instance_id,
                    action,
                    force=force,
                    region_id=scope.region_id,
                    stopped_mode=stopped_mode,
                ),
            )
            for instance_id in instance_ids
        ]

    # ---- queries (instance_queries.py) --------------------------------------------------------

    def find(
        self, scope: Scope, where: queries.InstanceFilter, offset: int, limit: int
    ) -> tuple[int, list[Instance]]:
        """How many of the scope's instances pass the filter, and `limit` of them from `offset`."""
        with self._db.session() as s:
            return queries.find(s, scope, where, offset, limit)

    def statuses(self, scope: Scope, instance_ids: list[str], zone_id: str | None) -> list[tuple[str, str]]:
        with self._db.session() as s:
            return queries.statuses(s, scope, instance_ids, zone_id)

    def related(
        self, scope: Scope, instance_ids: list[str]
    ) -> tuple[dict[str, list[NetworkInterface]], dict[str, list[str]], dict[str, list[tuple[str, str]]]]:
        """Interfaces (the primary first), security groups and tags of instances (instance_queries)."""
        with self._db.session() as s:
            return queries.related(s, scope, instance_ids)

    def public_addresses(self, instance_ids: list[str]) -> dict[str, dict[str, PublicAddress]]:
        """Per instance, its public IP and EIP by kind (public_addresses.PUBLIC_IP / EIP)."""
        with self._db.session() as s:
            return by_instances(s, instance_ids)

    def image_of(self, image_id: str) -> Image | None:
        return self._images.get(image_id)

    def images_of(self, instances: list[Instance]) -> dict[str, Image]:
        return self._images.get_many({i.image_id for i in instances})

    def release_due(self) -> list[str]:
        """Instances whose AutoReleaseTime has come: they are deleted (forcibly, as ECS does)."""
        now = self._clock.now()
        released = []
        vpcs: set[str] = set()
        with self._db.session() as s:
            for instance in s.scalars(
                select(Instance).where(
                    Instance.auto_release_time.is_not(None), Instance.desired != states.WANT_DELETED
                )
            ):
                if instance.auto_release_time is not None and as_utc(instance.auto_release_time) <= now:
                    instance.desired = states.WANT_DELETED
                    instance.force = True
                    released.append(instance.id)
                    vpcs |= release_instance_addresses(s, instance.id)
        self._notify(released, vpcs)
        return released


def primary_eni(s: Session, instance_id: str) -> NetworkInterface | None:
    return s.scalar(
        select(NetworkInterface).where(
            NetworkInterface.instance_id == instance_id, NetworkInterface.eni_type == "Primary"
        )
    )


def replace_groups(eni: NetworkInterface, wanted: list[str]) -> None:
    """The interface's security groups become `wanted`, in that order."""
    kept = {m.group_id: m for m in eni.memberships}
    for membership in list(eni.memberships):
        if membership.group_id not in wanted:
            eni.memberships.remove(membership)
    for position, group_id in enumerate(wanted):
        if group_id in kept:
            kept[group_id].position = position
        else:
            eni.memberships.append(NetworkInterfaceGroup(group_id=group_id, position=position))


class InstanceChanges:
    """Attribute, spec, key pair and deployment changes of existing instances."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        catalog: Catalog,
        instances: Instances,
        notify_network: Callable[[str], None],
    ) -> None:
        self._db = db
        self._clock = clock
        self._catalog = catalog
        self._instances = instances
        self._notify_network = notify_network

    def modify_attribute(
        self,
        account_id: int,
        instance_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        hostname: str | None = None,
        password: str | None = None,
        user_data: str | None = None,
        deletion_protection: bool | None = None,
        security_group_ids: list[str] | None = None,
    ) -> None:
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
                instance.user_data = check_user_data(user_data)
            if deletion_protection is not None:
                instance.deletion_protection = deletion_protection
            if security_group_ids:
                groups = security_groups(
                    s, Scope(account_id, instance.region_id), instance.vpc_id, security_group_ids
                )
                eni = primary_eni(s, instance_id)
                if eni is not None:
                    replace_groups(eni, [g.id for g in groups])
                    vpc_id = instance.vpc_id
        if vpc_id:
            self._notify_network(vpc_id)

    def modify_spec(
        self, account_id: int, instance_id: str, instance_type: str, dry_run: bool = False
    ) -> None:
        with self._db.session() as s:
            instance = self._instances.owned(s, account_id, instance_id)
            states.check("ModifyInstanceSpec", instance_id, instance.status)
            states.check_not_hibernated("ModifyInstanceSpec", instance_id, instance.hibernated)
            region = require_region(self._catalog, instance.region_id)
            itype = offered_type(self._catalog, region.families, instance_type)
            if itype.type_id == instance.instance_type:
                raise errors.invalid_instance_type_value_unauthorized(
                    f"The instance is already of type {instance_type}."
                )
            if instance.host_id:
                host_state = next((h for h in host_states(s) if h.host_id == instance.host_id), None)
                extra_cpu = itype.cpu - instance.cpu
                extra_memory = int(itype.memory_gib * 1024) - instance.memory_mib
                if host_state is not None and (
                    host_state.free_vcpus < extra_cpu or host_state.free_memory_mib < extra_memory
                ):
                    raise errors.operation_denied_no_stock(
                        f"The host of {instance_id} has no room for {instance_type}."
                    )
            if dry_run:
                raise errors.dry_run_operation()
            instance.instance_type, instance.cpu = itype.type_id, itype.cpu
            instance.memory_mib = int(itype.memory_gib * 1024)

    def modify_metadata_options(
        self, account_id: int, instance_id: str, http_tokens: str | None, http_endpoint: str | None
    ) -> None:
        with self._db.session() as s:
            instance = self._instances.owned(s, account_id, instance_id)
            if http_tokens:
                instance.metadata_http_tokens = http_tokens
            if http_endpoint:
                instance.metadata_http_endpoint = http_endpoint

    def key_pair(
        self, scope: Scope, key_pair_name: str, instance_ids: list[str], attach: bool
    ) -> list[tuple[str, str, str]]:
        """Attach or detach a key pair; effective at the next start, as in ECS.
        Per instance: (instance id, code, message)."""
        results = []
        with self._db.session() as s:
            owned_key_pair(s, scope, key_pair_name)
            for instance_id in instance_ids:
                try:
                    instance = self._instances.owned(s, scope.account_id, instance_id, scope.region_id)
                except ApiError:
                    results.append(
                        (instance_id, "InvalidInstanceId.NotFound", "The instance does not exist.")
                    )
                    continue
                target = key_pair_name if attach else ""
                current = (
                    instance.key_pair_name
                    if instance.pending_key_pair_name is None
                    else instance.pending_key_pair_name
                )
                if not attach and current != key_pair_name:
                    results.append(
                        (
                            instance_id,
                            "InvalidKeyPairName.NotBound",
                            "The key pair is not bound to this instance.",
                        )
                    )
                    continue
                if instance.status in (states.STOPPED, states.PENDING):
                    instance.key_pair_name, instance.pending_key_pair_name = target, None
                else:
                    instance.pending_key_pair_name = target  # applied when the instance next starts
                results.append((instance_id, "200", "successful"))
        return results

    def deployment(
        self,
        account_id: int,
        instance_id: str,
        deployment_set_id: str | None,
        remove: bool,
        group_no: int | None = None,
        force: bool = False,
    ) -> None:
        """ModifyInstanceDeployment: a Running or Stopped instance joins a deployment set (or
        another group of one), or leaves its set. It stays on its host, which must then keep to
        the set's strategy (one instance of an Availability set per host, of a group per host in
        an AvailabilityGroup set): DeploymentSet.ModificationFailed when it does not, and with
        Force a refusal, as nubes cannot move an instance to another host yet."""
        with self._db.session() as s:
            instance = self._instances.owned(s, account_id, instance_id)
            states.check("ModifyInstanceDeployment", instance_id, instance.status)
            if remove:
                if deployment_set_id and deployment_set_id != instance.deployment_set_id:
                    raise errors.invalid_parameter(
                        "DeploymentSetId",
                        f"The instance {instance_id} is not in the deployment set {deployment_set_id}.",
                    )
                instance.deployment_set_id, instance.deployment_set_group_no = "", 0
                return
            if not deployment_set_id:
                raise errors.missing_parameter("DeploymentSetId")
            deployment = deployment_set(s, Scope(account_id, instance.region_id), deployment_set_id)
            assert deployment is not None
            [group] = group_numbers(s, deployment, group_no, 1)
            if instance.host_id:
                self._check_strategy(s, instance, deployment, group, force)
            instance.deployment_set_id, instance.deployment_set_group_no = deployment.id, group

    @staticmethod
    def _check_strategy(
        s: Session, instance: Instance, deployment: DeploymentSet, group: int, force: bool
    ) -> None:
        """Whether the instance's host, without the instance, takes it as a member of the set."""
        host = next((h for h in host_states(s) if h.host_id == instance.host_id), None)
        if host is None:
            return
        sets = {k: dict(v) for k, v in host.deployment_sets.items()}
        if instance.deployment_set_id in sets:  # the instance leaves its place in its set
            groups = sets[instance.deployment_set_id]
            own = instance.deployment_set_group_no or 1
            groups[own] = groups.get(own, 0) - 1
        request = PlacementRequest(instance.zone_id, 0, 0, deployment.id, deployment.strategy, group or 1)
        if deployment_set_filter(replace(host, deployment_sets=sets), request):
            return
        if force:
            raise errors.invalid_parameter_not_supported(
                "Force",
                f"the host of {instance.id} already has the instances of {deployment.id} its strategy "
                f"{deployment.strategy} allows, and nubes cannot move an instance to another host yet.",
            )
        raise errors.deployment_set_modification_failed(
            f"The host of {instance.id} already has the instances of {deployment.id} its strategy "
            f"{deployment.strategy} allows; the instance stays on its host unless Force is given."
        )
