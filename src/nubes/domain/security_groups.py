"""Security groups and their rules, with ECS's validation, quotas and evaluation inputs.

Rules are stored as ECS shows them (IpProtocol upper-case, PortRange "22/22", Policy accept|drop,
Priority 1-100); the agent turns the groups of each VPC into one nftables ruleset."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, selectinload

from nubes import errors, ids
from nubes.clock import Clock
from nubes.domain.common import NotifyNetwork, Scope, check_description, check_name, owned
from nubes.domain.resource_groups import group_for
from nubes.domain.tags import drop_tags
from nubes.domain.vpcs import AVAILABLE
from nubes.store.db import Database
from nubes.store.models import NetworkInterfaceGroup, SecurityGroup, SecurityGroupRule, Vpc

PROTOCOLS = ("TCP", "UDP", "ICMP", "GRE", "ALL")
PORTLESS = ("ICMP", "GRE", "ALL")
GROUP_TYPES = ("normal", "enterprise")
INGRESS, EGRESS = "ingress", "egress"


@dataclass(frozen=True)
class SecurityQuotas:
    groups_per_region: int = 100
    rules_per_group: int = 200
    groups_per_interface: int = 5


@dataclass
class Permission:
    """One rule as a request gives it, before validation. `peer_*` is the source of an ingress
    rule and the destination of an egress rule."""

    ip_protocol: str | None = None
    port_range: str | None = None
    peer_cidr: str | None = None
    peer_group_id: str | None = None
    policy: str | None = None
    priority: str | None = None
    nic_type: str | None = None
    description: str | None = None
    source_port_range: str | None = None
    ipv6_cidr: str | None = None
    prefix_list_id: str | None = None
    port_range_list_id: str | None = None


@dataclass(frozen=True)
class Rule:
    """A validated rule, in its stored, canonical form."""

    ip_protocol: str
    port_range: str
    peer_cidr: str
    peer_group_id: str
    policy: str
    priority: int
    nic_type: str
    description: str
    source_port_range: str = field(default="")

    def key(self) -> tuple[str, str, str, str, str, int, str]:
        """What makes two rules the same rule (ECS refuses duplicates)."""
        return (
            self.ip_protocol,
            self.port_range,
            self.peer_cidr,
            self.peer_group_id,
            self.policy,
            self.priority,
            self.source_port_range,
        )


def _peer_word(direction: str) -> str:
    return "Source" if direction == INGRESS else "Dest"


def parse_port_range(protocol: str, text: str | None) -> str:
    if protocol in PORTLESS:
        if text not in (None, "", "-1/-1"):
            raise errors.invalid_port_range_malformed(f"The PortRange of {protocol} rules must be -1/-1.")
        return "-1/-1"
    if not text:
        raise errors.missing_parameter(
            "PortRange",
            message=f"{protocol} rules need a PortRange such as 22/22 or 1/65535.",
        )
    start_text, sep, end_text = text.partition("/")
    try:
        start, end = int(start_text), int(end_text)
    except ValueError:
        start, end = 0, -1
    if not sep or not (1 <= start <= end <= 65535):
        raise errors.invalid_port_range_malformed(
            f"PortRange {text!r} is not valid: write start/end with 1 <= start <= end <= 65535, e.g. 22/22."
        )
    return f"{start}/{end}"


def parse_cidr(direction: str, text: str) -> str:
    try:
        return str(ipaddress.IPv4Network(text.strip(), strict=False))
    except ValueError:
        word = _peer_word(direction)
        raise errors.invalid_malformed(
            f"{word}CidrIp",
            f"The {word}CidrIp {text!r} is not an IPv4 address or CIDR block.",
        ) from None


def refuse_unsupported(p: Permission) -> None:
    """IPv6 CIDR blocks, prefix lists and port range lists: nubes has none of them."""
    if p.ipv6_cidr:
        raise errors.invalid_parameter_ipv6_not_supported()
    if p.prefix_list_id:
        raise errors.invalid_parameter_prefix_list_not_supported()
    if p.port_range_list_id:
        raise errors.invalid_parameter_port_range_list_not_supported()


def validate(direction: str, p: Permission) -> Rule:
    word = _peer_word(direction)
    refuse_unsupported(p)
    if not p.ip_protocol:
        raise errors.missing_parameter(
            "IpProtocol",
            message="Each rule needs an IpProtocol: tcp, udp, icmp, gre or all.",
        )
    protocol = p.ip_protocol.upper()
    if protocol not in PROTOCOLS:
        raise errors.invalid_ip_protocol_malformed(
            f"IpProtocol {p.ip_protocol!r} is not one of tcp, udp, icmp, gre, all."
        )
    port_range = parse_port_range(protocol, p.port_range)
    if bool(p.peer_cidr) == bool(p.peer_group_id):
        message = f"Give exactly one of {word}CidrIp and {word}GroupId for each rule."
        if p.peer_cidr:
            raise errors.invalid_parameter_conflict(message)
        raise errors.missing_parameter(f"{word}CidrIp", message=message)
    policy = (p.policy or "accept").lower()
    if policy not in ("accept", "drop"):
        raise errors.invalid_policy_malformed(f"Policy {p.policy!r} must be accept or drop.")
    try:
        priority = int(p.priority) if p.priority not in (None, "") else 1
    except ValueError:
        priority = 0
    if not 1 <= priority <= 100:
        raise errors.invalid_priority_malformed(f"Priority {p.priority!r} must be an integer from 1 to 100.")
    if (p.nic_type or "intranet").lower() not in ("intranet", "internet"):
        raise errors.invalid_nic_type_value_not_supported(
            f"NicType {p.nic_type!r} must be intranet or internet."
        )
    # ECS: the rules of a VPC security group (every nubes group) are intranet rules whatever
    # NicType says; internet applies to classic-network groups only.
    nic_type = "intranet"
    description = p.description or ""
    if len(description) > 512 or description.startswith(("http://", "https://")):
        raise errors.invalid_description_malformed("A rule description is at most 512 characters, not a URL.")
    source_ports = ""
    if p.source_port_range:
        source_ports = parse_port_range(protocol, p.source_port_range)
    return Rule(
        ip_protocol=protocol,
        port_range=port_range,
        peer_cidr=parse_cidr(direction, p.peer_cidr) if p.peer_cidr else "",
        peer_group_id=p.peer_group_id or "",
        policy=policy,
        priority=priority,
        nic_type=nic_type,
        description=description,
        source_port_range=source_ports,
    )


def _stored(rule: SecurityGroupRule) -> Rule:
    return Rule(
        rule.ip_protocol,
        rule.port_range,
        rule.peer_cidr,
        rule.peer_group_id,
        rule.policy,
        rule.priority,
        rule.nic_type,
        rule.description,
        rule.source_port_range,
    )


@dataclass(frozen=True)
class GroupSummary:
    group: SecurityGroup
    rule_count: int
    group_to_group_rule_count: int
    interface_count: int


class SecurityGroups:
    def __init__(
        self, db: Database, clock: Clock, notify: NotifyNetwork, quotas: SecurityQuotas | None = None
    ) -> None:
        self._db = db
        self._clock = clock
        self._notify = notify
        self.quotas = quotas or SecurityQuotas()

    # ---- groups -----------------------------------------------------------------------------

    def create(
        self,
        scope: Scope,
        vpc_id: str,
        name: str | None,
        description: str | None,
        group_type: str,
        resource_group_id: str,
    ) -> SecurityGroup:
        name = check_name("SecurityGroupName", name)
        description = check_description(description)
        with self._db.session() as s:
            owned(s, Vpc, scope, vpc_id, "Vpc")  # it exists and is the caller's
            count = s.scalar(select(func.count(SecurityGroup.id)).where(*_scope(scope))) or 0
            if count >= self.quotas.groups_per_region:
                raise errors.quota_exceed_security_group(
                    f"You can create at most {self.quotas.groups_per_region} security groups in a region."
                )
            group = SecurityGroup(
                id=ids.new_id("security_group"),
                account_id=scope.account_id,
                region_id=scope.region_id,
                vpc_id=vpc_id,
                name=name,
                description=description,
                group_type=group_type,
                inner_access_policy="Accept" if group_type == "normal" else "Drop",
                resource_group_id=group_for(s, scope.account_id, resource_group_id, self._clock),
                created_at=self._clock.now(),
            )
            s.add(group)
            return group

    def get(self, scope: Scope, group_id: str, session: Session | None = None) -> SecurityGroup:
        if session is not None:
            return _group(session, scope, group_id)
        with self._db.session() as s:
            group = _group(s, scope, group_id)
            _ = list(group.rules)  # loaded while the session is open
            return group

    def describe(
        self,
        scope: Scope,
        vpc_id: str | None = None,
        group_ids: list[str] | None = None,
        name: str | None = None,
        fuzzy: bool = False,
        group_type: str | None = None,
        resource_group_id: str | None = None,
    ) -> list[GroupSummary]:
        with self._db.session() as s:
            query = (
                select(SecurityGroup)
                .where(*_scope(scope))
                .options(selectinload(SecurityGroup.rules))
                .order_by(SecurityGroup.created_at.desc(), SecurityGroup.id)
            )
            if vpc_id:
                query = query.where(SecurityGroup.vpc_id == vpc_id)
            if group_ids:
                query = query.where(SecurityGroup.id.in_(group_ids))
            if name:
                pattern = name if not fuzzy else f"%{name}%"
                query = query.where(
                    SecurityGroup.name.like(pattern) if fuzzy else SecurityGroup.name == pattern
                )
            if group_type:
                query = query.where(SecurityGroup.group_type == group_type)
            if resource_group_id:
                query = query.where(SecurityGroup.resource_group_id == resource_group_id)
            groups = list(s.scalars(query))
            members = {
                group_id: count
                for group_id, count in s.execute(
                    select(NetworkInterfaceGroup.group_id, func.count(NetworkInterfaceGroup.id))
                    .where(NetworkInterfaceGroup.group_id.in_([g.id for g in groups]))
                    .group_by(NetworkInterfaceGroup.group_id)
                )
            }
            return [
                GroupSummary(
                    g, len(g.rules), sum(1 for r in g.rules if r.peer_group_id), int(members.get(g.id, 0))
                )
                for g in groups
            ]

    def modify_attribute(
        self, scope: Scope, group_id: str, name: str | None, description: str | None
    ) -> None:
        with self._db.session() as s:
            group = _group(s, scope, group_id)
            if name is not None:
                group.name = check_name("SecurityGroupName", name)
            if description is not None:
                group.description = check_description(description)

    def modify_policy(self, scope: Scope, group_id: str, inner_access_policy: str) -> None:
        with self._db.session() as s:
            group = _group(s, scope, group_id)
            group.inner_access_policy = inner_access_policy
            vpc_id = group.vpc_id
        self._notify(vpc_id)

    def delete(self, scope: Scope, group_id: str) -> None:
        with self._db.session() as s:
            group = _group(s, scope, group_id)
            members = s.scalar(
                select(func.count(NetworkInterfaceGroup.id)).where(NetworkInterfaceGroup.group_id == group_id)
            )
            if members:
                raise errors.dependency_violation(
                    message=f"The security group {group_id} still has {members} instances or network interfaces in it.",
                )
            referencing = sorted(
                set(
                    s.scalars(
                        select(SecurityGroupRule.group_id).where(
                            SecurityGroupRule.peer_group_id == group_id,
                            SecurityGroupRule.group_id != group_id,
                        )
                    )
                )
            )
            if referencing:
                raise errors.dependency_violation(
                    message=f"The security group {group_id} is referenced by rules of {', '.join(referencing)}; "
                    "revoke those rules first.",
                )
            vpc_id = group.vpc_id
            drop_tags(s, group.account_id, group.region_id, "securitygroup", group.id)
            s.delete(group)
        self._notify(vpc_id)

    def references(self, scope: Scope, group_ids: list[str]) -> dict[str, list[str]]:
        with self._db.session() as s:
            for group_id in group_ids:
                _group(s, scope, group_id)
            rows = s.execute(
                select(SecurityGroupRule.peer_group_id, SecurityGroupRule.group_id).where(
                    SecurityGroupRule.peer_group_id.in_(group_ids)
                )
            )
            result: dict[str, set[str]] = {g: set() for g in group_ids}
            for referenced, referencing in rows:
                if referencing != referenced:
                    result[referenced].add(referencing)
            return {g: sorted(v) for g, v in result.items()}

    # ---- rules --------------------------------------------------------------------------------

    def authorize(
        self, scope: Scope, group_id: str, direction: str, permissions: list[Permission]
    ) -> list[str]:
        if not permissions:
            raise errors.missing_parameter(
                "Permissions",
                message="Give at least one rule (Permissions.N.* or IpProtocol...).",
            )
        rules = [validate(direction, p) for p in permissions]
        with self._db.session() as s:
            group = _group(s, scope, group_id)
            vpc = s.get(Vpc, group.vpc_id)
            if vpc is not None and vpc.status != AVAILABLE:
                raise errors.incorrect_vpc_status(
                    f"The VPC {vpc.id} is {vpc.status}; wait until it is Available."
                )
            for rule in rules:
                if rule.peer_group_id:
                    self._check_peer(s, scope, group, rule.peer_group_id, direction)
            existing = {_stored(r).key(): r for r in group.rules if r.direction == direction}
            new_keys: set[tuple[str, str, str, str, str, int, str]] = set()
            for rule in rules:
                if rule.key() in existing or rule.key() in new_keys:
                    raise errors.invalid_permission_duplicate(
                        "The specified rule exists already in the security group."
                    )
                new_keys.add(rule.key())
            if len(group.rules) + len(rules) > self.quotas.rules_per_group:
                raise errors.authorization_limit_exceed(
                    f"A security group can hold at most {self.quotas.rules_per_group} rules."
                )
            now = self._clock.now()
            rule_ids = []
            for rule in rules:
                row = SecurityGroupRule(
                    id=ids.new_id("security_group_rule"),
                    direction=direction,
                    ip_protocol=rule.ip_protocol,
                    port_range=rule.port_range,
                    source_port_range=rule.source_port_range,
                    peer_cidr=rule.peer_cidr,
                    peer_group_id=rule.peer_group_id,
                    policy=rule.policy,
                    priority=rule.priority,
                    nic_type=rule.nic_type,
                    description=rule.description,
                    created_at=now,
                )
                group.rules.append(row)
                rule_ids.append(row.id)
            vpc_id = group.vpc_id
        self._notify(vpc_id)
        return rule_ids

    def _check_peer(
        self, s: Session, scope: Scope, group: SecurityGroup, peer_id: str, direction: str
    ) -> None:
        word = _peer_word(direction)
        if group.group_type == "enterprise":
            raise errors.invalid_parameter_group_not_supported(
                f"Rules of enterprise security groups cannot name a {word}GroupId; use CIDR blocks."
            )
        peer = _peer(s, scope, peer_id, direction)
        if peer.vpc_id != group.vpc_id:
            raise errors.invalid_group_id_mismatch(
                word,
                f"The {word}GroupId {peer_id} belongs to another VPC than the security group {group.id}.",
            )

    def revoke(
        self, scope: Scope, group_id: str, direction: str, rule_ids: list[str], permissions: list[Permission]
    ) -> None:
        """Remove rules by ID, or by their content. Content that matches no rule is not an error."""
        with self._db.session() as s:
            group = _group(s, scope, group_id)
            mine = [r for r in group.rules if r.direction == direction]
            doomed: list[SecurityGroupRule] = []
            for rule_id in rule_ids:
                match = next((r for r in mine if r.id == rule_id), None)
                if match is None:
                    raise errors.invalid_security_group_rule_id_not_found(
                        f"The rule {rule_id!r} is not an {direction} rule of {group_id}."
                    )
                doomed.append(match)
            for permission in permissions:  # a peer group must be the caller's, as when the rule was made
                if permission.peer_group_id:
                    _peer(s, scope, permission.peer_group_id, direction)
            wanted = {validate(direction, p).key() for p in permissions}
            doomed += [r for r in mine if _stored(r).key() in wanted]
            if not rule_ids and not permissions:
                raise errors.missing_parameter(
                    "Permissions",
                    message="Give SecurityGroupRuleId.N or the rule's fields (Permissions.N.*).",
                )
            for rule in {id(r): r for r in doomed}.values():
                group.rules.remove(rule)
            vpc_id = group.vpc_id
        self._notify(vpc_id)

    def modify_rule_by_match(self, scope: Scope, group_id: str, direction: str, change: Permission) -> None:
        """ModifySecurityGroupRule without a rule ID, as Terraform calls it: the rule is the one
        with the fields given (protocol, ports, peer, policy, priority), and only its Description
        changes."""
        wanted = validate(direction, change)
        with self._db.session() as s:
            group = _group(s, scope, group_id)
            if wanted.peer_group_id:  # a peer group must be the caller's, as when the rule was made
                _peer(s, scope, wanted.peer_group_id, direction)
            rule = next(
                (r for r in group.rules if r.direction == direction and _stored(r).key() == wanted.key()),
                None,
            )
            if rule is None:
                raise errors.invalid_security_group_rule_rule_not_exist(
                    f"No {direction} rule of {group_id} has the fields given; "
                    "name the rule with SecurityGroupRuleId or give its protocol, ports, peer, policy and priority."
                )
            if change.description is not None:
                rule.description = wanted.description

    def modify_rule(
        self, scope: Scope, group_id: str, direction: str, rule_id: str, change: Permission
    ) -> None:
        refuse_unsupported(change)  # the merge below would leave them out
        with self._db.session() as s:
            group = _group(s, scope, group_id)
            rule = next((r for r in group.rules if r.id == rule_id and r.direction == direction), None)
            if rule is None:
                raise errors.invalid_security_group_rule_id_not_found(
                    f"The rule {rule_id!r} is not an {direction} rule of {group_id}."
                )
            current = _stored(rule)
            merged = Permission(
                ip_protocol=change.ip_protocol or current.ip_protocol,
                port_range=change.port_range or (current.port_range if not change.ip_protocol else None),
                peer_cidr=change.peer_cidr
                if (change.peer_cidr or change.peer_group_id)
                else current.peer_cidr or None,
                peer_group_id=change.peer_group_id
                if (change.peer_cidr or change.peer_group_id)
                else current.peer_group_id or None,
                policy=change.policy or current.policy,
                priority=change.priority or str(current.priority),
                nic_type=change.nic_type or current.nic_type,
                description=change.description if change.description is not None else current.description,
                source_port_range=change.source_port_range or current.source_port_range or None,
            )
            updated = validate(direction, merged)
            if updated.peer_group_id:
                self._check_peer(s, scope, group, updated.peer_group_id, direction)
            others = {_stored(r).key() for r in group.rules if r.direction == direction and r.id != rule_id}
            if updated.key() in others:
                raise errors.invalid_permission_duplicate(
                    "An identical rule exists already in the security group."
                )
            rule.ip_protocol, rule.port_range, rule.peer_cidr = (
                updated.ip_protocol,
                updated.port_range,
                updated.peer_cidr,
            )
            rule.peer_group_id, rule.policy, rule.priority = (
                updated.peer_group_id,
                updated.policy,
                updated.priority,
            )
            rule.nic_type, rule.description = updated.nic_type, updated.description
            rule.source_port_range = updated.source_port_range
            vpc_id = group.vpc_id
        self._notify(vpc_id)


def _scope(scope: Scope) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return (SecurityGroup.account_id == scope.account_id, SecurityGroup.region_id == scope.region_id)


def _peer(s: Session, scope: Scope, peer_id: str, direction: str) -> SecurityGroup:
    word = _peer_word(direction)
    return owned(
        s,
        SecurityGroup,
        scope,
        peer_id,
        lambda missing: errors.invalid_id_not_found(
            f"{word}Group",
            message=f"The {word}GroupId {missing!r} does not exist.",
        ),
    )


def _group(s: Session, scope: Scope, group_id: str) -> SecurityGroup:
    return owned(s, SecurityGroup, scope, group_id, "SecurityGroup")
