"""Launch templates: named, versioned sets of launch parameters that RunInstances and
CreateInstance start from. A version keeps the wire parameters it was created with, unchecked
beyond their form (ECS checks a template's values when it is used, not when it is made);
`launch_parameters` hands them to the launch under what the request itself gives."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nubes import errors, ids
from nubes.clock import Clock
from nubes.domain.common import Scope, check_description, check_name, owned
from nubes.domain.resource_groups import group_for
from nubes.domain.tags import TagMatch, check_tags, drop_tags, where_tagged, write_tags
from nubes.store.db import Database
from nubes.store.models import LaunchTemplate, LaunchTemplateVersion

# ECS's quotas: templates per account and region, versions per template.
TEMPLATE_QUOTA = 30
VERSION_QUOTA = 30
TAG_TYPE = "launchtemplate"
# What a version holds but does not hand to a launch: the protection period of a spot instance,
# which means nothing to one nubes launches (SpotStrategy beyond NoSpot is refused; RunInstances'
# own SpotDuration likewise).
NOT_LAUNCHED = ("SpotDuration",)

# `DataDisk.2.Size` and `SecurityGroupIds.1` belong to a list: a request that gives any item of a
# list replaces the template's whole list; other parameters (`SystemDisk.Size`) one by one.
_LIST_ITEM = re.compile(r"^([A-Za-z]+)\.[0-9]+(\.|$)")
# Parameters that say the same thing in two ways: giving one drops the template's other.
_SAME_THING = {"SecurityGroupId": "SecurityGroups", "SecurityGroupIds": "SecurityGroups"}


def _group(wire_name: str) -> str:
    match = _LIST_ITEM.match(wire_name)
    group = match.group(1) if match else wire_name
    return _SAME_THING.get(group, group)


def merge(template: Mapping[str, str], request: Mapping[str, str]) -> dict[str, str]:
    """The request's parameters over the template's: what the request gives wins (a list as a
    whole); an empty value given in the request counts as not given, as everywhere."""
    given = {_group(k) for k, v in request.items() if v != ""}
    merged = {k: v for k, v in template.items() if _group(k) not in given}
    merged.update({k: v for k, v in request.items() if v != "" or k not in merged})
    return merged


@dataclass(frozen=True)
class TemplateRef:
    """A template named by id or by name (ECS takes either; the id wins when both are given)."""

    template_id: str | None = None
    name: str | None = None


class LaunchTemplates:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    # ---- lookups --------------------------------------------------------------------------

    @staticmethod
    def _find(s: Session, scope: Scope, ref: TemplateRef) -> LaunchTemplate:
        if ref.template_id:

            def missing(template_id: str) -> errors.ApiError:
                return errors.invalid_launch_template_not_found(template_id, ref.name or "")

            return owned(s, LaunchTemplate, scope, ref.template_id, missing)
        if not ref.name:
            raise errors.missing_parameter(message="You must specify LaunchTemplateId or LaunchTemplateName.")
        row = s.scalar(
            select(LaunchTemplate).where(
                LaunchTemplate.account_id == scope.account_id,
                LaunchTemplate.region_id == scope.region_id,
                LaunchTemplate.name == ref.name,
            )
        )
        if row is None:
            raise errors.invalid_launch_template_not_found("", ref.name)
        return row

    @staticmethod
    def _version(s: Session, template: LaunchTemplate, number: int) -> LaunchTemplateVersion:
        row = s.scalar(
            select(LaunchTemplateVersion).where(
                LaunchTemplateVersion.template_id == template.id, LaunchTemplateVersion.number == number
            )
        )
        if row is None:
            raise errors.invalid_launch_template_version_not_found(template.id, number)
        return row

    # ---- changes --------------------------------------------------------------------------

    def create(
        self,
        scope: Scope,
        name: str,
        data: Mapping[str, str],
        version_description: str,
        resource_group_id: str,
        tags: Sequence[tuple[str, str]],
        created_by: str,
    ) -> LaunchTemplate:
        name = check_name("LaunchTemplateName", name)
        description = check_description(version_description)
        check_tags(tags)
        now = self._clock.now()
        with self._db.session() as s:
            count = s.scalar(
                select(func.count()).where(
                    LaunchTemplate.account_id == scope.account_id, LaunchTemplate.region_id == scope.region_id
                )
            )
            if (count or 0) >= TEMPLATE_QUOTA:
                raise errors.launch_template_limit_exceed(TEMPLATE_QUOTA)
            if s.scalar(
                select(LaunchTemplate.id).where(
                    LaunchTemplate.account_id == scope.account_id,
                    LaunchTemplate.region_id == scope.region_id,
                    LaunchTemplate.name == name,
                )
            ):
                raise errors.launch_template_name_duplicated(name)
            template = LaunchTemplate(
                id=ids.new_id("launch_template"),
                account_id=scope.account_id,
                region_id=scope.region_id,
                name=name,
                default_version=1,
                latest_version=1,
                resource_group_id=group_for(s, scope.account_id, resource_group_id, self._clock),
                created_by=created_by,
                created_at=now,
                modified_at=now,
            )
            s.add(template)
            s.flush()
            s.add(_version_row(template.id, 1, description, data, created_by, now))
            write_tags(s, scope, TAG_TYPE, template.id, tags, created=True)
            return template

    def create_version(
        self, scope: Scope, ref: TemplateRef, data: Mapping[str, str], description: str, created_by: str
    ) -> tuple[str, int]:
        description = check_description(description)
        now = self._clock.now()
        with self._db.session() as s:
            template = self._find(s, scope, ref)
            count = s.scalar(select(func.count()).where(LaunchTemplateVersion.template_id == template.id))
            if (count or 0) >= VERSION_QUOTA:
                raise errors.launch_template_version_limit_exceed(VERSION_QUOTA)
            template.latest_version += 1
            template.modified_at = now
            s.add(_version_row(template.id, template.latest_version, description, data, created_by, now))
            return template.id, template.latest_version

    def modify_default(self, scope: Scope, ref: TemplateRef, number: int) -> str:
        with self._db.session() as s:
            template = self._find(s, scope, ref)
            self._version(s, template, number)
            template.default_version = number
            template.modified_at = self._clock.now()
            return template.id

    def delete(self, scope: Scope, ref: TemplateRef) -> tuple[str, list[int]]:
        """The template and every version of it; the id and the version numbers deleted."""
        with self._db.session() as s:
            template = self._find(s, scope, ref)
            numbers = sorted(
                s.scalars(
                    select(LaunchTemplateVersion.number).where(
                        LaunchTemplateVersion.template_id == template.id
                    )
                )
            )
            drop_tags(s, template.account_id, template.region_id, TAG_TYPE, template.id)
            s.delete(template)
            return template.id, numbers

    def delete_versions(
        self, scope: Scope, ref: TemplateRef, numbers: Iterable[int]
    ) -> tuple[str, list[int]]:
        """Versions other than the default one (refused, as one that does not exist: nothing is
        deleted then)."""
        with self._db.session() as s:
            template = self._find(s, scope, ref)
            wanted = sorted(set(numbers))
            rows = [self._version(s, template, n) for n in wanted]
            if template.default_version in wanted:
                raise errors.invalid_operation_delete_default_version(template.id, template.default_version)
            for row in rows:
                s.delete(row)
            template.modified_at = self._clock.now()
            return template.id, wanted

    # ---- queries --------------------------------------------------------------------------

    def describe(
        self,
        scope: Scope,
        template_ids: Sequence[str],
        names: Sequence[str],
        resource_group_id: str | None,
        tags: Sequence[TagMatch],
    ) -> list[LaunchTemplate]:
        query = select(LaunchTemplate).where(
            LaunchTemplate.account_id == scope.account_id, LaunchTemplate.region_id == scope.region_id
        )
        if template_ids:
            query = query.where(LaunchTemplate.id.in_(template_ids))
        if names:
            query = query.where(LaunchTemplate.name.in_(names))
        if resource_group_id:
            query = query.where(LaunchTemplate.resource_group_id == resource_group_id)
        query = where_tagged(query, scope, TAG_TYPE, LaunchTemplate.id, tags)
        with self._db.session() as s:
            return list(s.scalars(query.order_by(LaunchTemplate.created_at, LaunchTemplate.id)))

    def versions(
        self,
        scope: Scope,
        ref: TemplateRef,
        numbers: Sequence[int],
        low: int | None,
        high: int | None,
        default_only: bool | None,
    ) -> tuple[LaunchTemplate, list[LaunchTemplateVersion]]:
        """A template's versions, by number; DefaultVersion true: the default one only, false:
        the others."""
        with self._db.session() as s:
            template = self._find(s, scope, ref)
            query = select(LaunchTemplateVersion).where(LaunchTemplateVersion.template_id == template.id)
            if numbers:
                query = query.where(LaunchTemplateVersion.number.in_(numbers))
            if low is not None:
                query = query.where(LaunchTemplateVersion.number >= low)
            if high is not None:
                query = query.where(LaunchTemplateVersion.number <= high)
            if default_only is not None:
                is_default = LaunchTemplateVersion.number == template.default_version
                query = query.where(is_default if default_only else ~is_default)
            return template, list(s.scalars(query.order_by(LaunchTemplateVersion.number)))

    def launch_parameters(self, scope: Scope, ref: TemplateRef, version: int | None) -> dict[str, str]:
        """The wire parameters a version holds (the default version when none is named)."""
        with self._db.session() as s:
            template = self._find(s, scope, ref)
            row = self._version(s, template, template.default_version if version is None else version)
            data = version_data(row)
        for name in NOT_LAUNCHED:
            data.pop(name, None)
        return data


def version_data(row: LaunchTemplateVersion) -> dict[str, str]:
    data = json.loads(row.data)
    assert isinstance(data, dict)
    return {str(k): str(v) for k, v in data.items()}


def _version_row(
    template_id: str,
    number: int,
    description: str,
    data: Mapping[str, str],
    created_by: str,
    now: datetime,
) -> LaunchTemplateVersion:
    return LaunchTemplateVersion(
        template_id=template_id,
        number=number,
        description=description,
        data=json.dumps(dict(sorted(data.items()))),
        created_by=created_by,
        created_at=now,
        modified_at=now,
    )
