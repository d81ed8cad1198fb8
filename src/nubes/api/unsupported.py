"""The rule that no documented parameter is silently dropped, for every action at once.

A parameter the official catalog lists for an action is either declared by nubes' action (then
honoured: parsed, checked and acted on; a declaration can still refuse some values, see
Param.unsupported_values) or refused here with InvalidParameter.NotSupported naming it, before
the action runs. The owner parameters every action has (OwnerId, ResourceOwnerAccount, ...) are
honoured by checking that they name the caller's own account: nubes acts only for the account
whose key signs the request."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nubes import errors
from nubes.api.params import Param, wire_names
from nubes.catalog.official_api import official_actions
from nubes.domain.accounts import Principal

OWNER_PARAMS = ("OwnerId", "OwnerAccount", "ResourceOwnerId", "ResourceOwnerAccount")

_INDEX = re.compile(r"(?<=\.)\d+(?=\.|$)")


def catalog_name(wire: str) -> str:
    """`DataDisk.2.Encrypted` -> `DataDisk.N.Encrypted`: the name the catalog lists it under."""
    return _INDEX.sub("N", wire)


def declared_names(params: tuple[Param, ...]) -> frozenset[str]:
    names: set[str] = set()
    for param in params:
        for wire in wire_names(param):
            names.add(wire.name)
            if wire.json_alternative:
                names.add(wire.json_alternative)
    return frozenset(names)


def refused_names(product: str, action: str, params: tuple[Param, ...]) -> frozenset[str]:
    """The catalog's parameters of the action that nubes does not declare (and so refuses)."""
    entry: dict[str, Any] = official_actions(product).get(action, {})
    catalog = set(entry.get("request", ())) - set(OWNER_PARAMS)
    return frozenset(catalog - declared_names(params))


def refuse_unsupported(refused: frozenset[str], raw: Mapping[str, str]) -> None:
    """InvalidParameter.NotSupported for the first refused parameter given a value (an empty value
    counts as absent, as everywhere)."""
    for name in sorted(raw):
        if raw[name] != "" and catalog_name(name) in refused:
            raise errors.invalid_parameter_not_supported(name)


def check_owner(principal: Principal, raw: Mapping[str, str]) -> None:
    """The owner parameters, where given, must name the caller's account."""
    expected = {
        "OwnerId": principal.uid,
        "ResourceOwnerId": principal.uid,
        "OwnerAccount": principal.account_name,
        "ResourceOwnerAccount": principal.account_name,
    }
    for name, value in expected.items():
        given = raw.get(name, "")
        if given not in ("", value):
            raise errors.invalid_parameter(
                name,
                "It must name the account of the AccessKey that signs the request; "
                "nubes does not act on behalf of other accounts.",
            )
