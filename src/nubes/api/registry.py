"""Actions by product and name. Each action module declares its table once."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from nubes import errors
from nubes.api.params import Param
from nubes.api.unsupported import refused_names
from nubes.api.versions import PRODUCT_VERSIONS

if TYPE_CHECKING:
    from nubes.api.context import ActionContext

Handler = Callable[["ActionContext", dict[str, Any]], dict[str, Any]]
# Completes a request's wire parameters before they are checked and parsed (RunInstances takes
# what its LaunchTemplateId names under what the request gives).
WireDefaults = Callable[["ActionContext", Mapping[str, str]], Mapping[str, str]]

HOST_IDS = {"ecs": "ecs.aliyuncs.com", "vpc": "vpc.aliyuncs.com"}


@dataclass(frozen=True)
class ActionSpec:
    product: str
    name: str
    params: tuple[Param, ...]
    handler: Handler
    summary: str
    # ClientToken makes the action happen once; the same token with other parameters is refused.
    idempotent: bool = False
    # The official catalog's parameters of the action that it does not declare: refused when given.
    refused: frozenset[str] = frozenset()
    wire_defaults: WireDefaults | None = None


class ActionTable:
    """The actions one module defines, for one product."""

    def __init__(self, product: str) -> None:
        self.product = product
        self.specs: list[ActionSpec] = []

    def define(
        self,
        name: str,
        params: Sequence[Param] = (),
        *,
        idempotent: bool = False,
        wire_defaults: WireDefaults | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            summary = (handler.__doc__ or "").strip().splitlines()[0] if handler.__doc__ else ""
            self.specs.append(
                ActionSpec(
                    self.product,
                    name,
                    tuple(params),
                    handler,
                    summary,
                    idempotent,
                    wire_defaults=wire_defaults,
                )
            )
            return handler

        return register


class Registry:
    def __init__(self, tables: Iterable[ActionTable]) -> None:
        self._actions: dict[tuple[str, str], ActionSpec] = {}
        for table in tables:
            for spec in table.specs:
                key = (spec.product, spec.name)
                if key in self._actions:
                    raise ValueError(f"action {spec.product}:{spec.name} defined twice")
                self._actions[key] = replace(
                    spec, refused=refused_names(spec.product, spec.name, spec.params)
                )

    def find(self, version: str, action: str) -> ActionSpec:
        product = PRODUCT_VERSIONS.get(version)
        if product is None:
            raise errors.invalid_version(version)
        spec = self._actions.get((product, action))
        if spec is None:
            raise errors.invalid_action_not_found(action, version)
        return spec

    def all(self) -> list[ActionSpec]:
        return sorted(self._actions.values(), key=lambda s: (s.product, s.name))
