"""ECS key pairs: CreateKeyPair, ImportKeyPair, DescribeKeyPairs, DeleteKeyPairs."""

from __future__ import annotations

from typing import Any

from nubes.actions.common import REGION_ID, RESOURCE_GROUP_ID, TAGS, tag_pairs, tag_set
from nubes.actions.paging import number_paged, page_params
from nubes.api.context import ActionContext
from nubes.api.params import Boolean, String, StringList
from nubes.api.registry import ActionTable, Handler
from nubes.clock import iso8601
from nubes.domain.common import Scope
from nubes.domain.keypairs import KeyPairView

actions = ActionTable("ecs")

KEY_PAIR_NAME = String("KeyPairName", required=True)  # check_name gives the ECS error for length


def _scope(ctx: ActionContext, region_id: str) -> Scope:
    return ctx.scope(region_id)


def _tag(ctx: ActionContext, scope: Scope, name: str, p: dict[str, Any]) -> None:
    """Tag.N given at creation, written in the creation's unit of work."""
    tags = list(tag_pairs(p))
    if tags:
        ctx.services.tags.tag(scope, "keypair", [name], tags)


@actions.define("CreateKeyPair", [REGION_ID, KEY_PAIR_NAME, RESOURCE_GROUP_ID, TAGS])
def create_key_pair(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Create an RSA key pair; the private key is returned now and never again."""
    scope = _scope(ctx, p["RegionId"])
    view, private_pem = ctx.services.keypairs.create(scope, p["KeyPairName"], p["ResourceGroupId"])
    _tag(ctx, scope, view.name, p)
    return {
        "KeyPairId": view.name,
        "KeyPairName": view.name,
        "KeyPairFingerPrint": view.fingerprint,
        "PrivateKeyBody": private_pem,
    }


@actions.define(
    "ImportKeyPair",
    [
        REGION_ID,
        KEY_PAIR_NAME,
        String("PublicKeyBody", required=True, max_length=16384),
        RESOURCE_GROUP_ID,
        TAGS,
    ],
)
def import_key_pair(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Register an existing OpenSSH public key."""
    scope = _scope(ctx, p["RegionId"])
    view = ctx.services.keypairs.import_(scope, p["KeyPairName"], p["PublicKeyBody"], p["ResourceGroupId"])
    _tag(ctx, scope, view.name, p)
    return {"KeyPairName": view.name, "KeyPairFingerPrint": view.fingerprint}


@actions.define(
    "DescribeKeyPairs",
    [
        REGION_ID,
        String("KeyPairName", max_length=128),
        String("KeyPairFingerPrint", max_length=128),
        String("ResourceGroupId", max_length=64),
        Boolean("IncludePublicKey", default=False),
        *page_params(),
    ],
)
def describe_key_pairs(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """The caller's key pairs in a region; KeyPairName takes * wildcards."""
    scope = _scope(ctx, p["RegionId"])
    views = ctx.services.keypairs.describe(
        scope, p["KeyPairName"], p["KeyPairFingerPrint"], p["ResourceGroupId"]
    )
    tags = ctx.services.tags.of(scope, "keypair", (view.name for view in views))

    def render(view: KeyPairView) -> dict[str, Any]:
        item: dict[str, Any] = {
            "KeyPairName": view.name,
            "KeyPairFingerPrint": view.fingerprint,
            "CreationTime": iso8601(view.created_at),
            "ResourceGroupId": view.resource_group_id,
            "Tags": tag_set(tags.get(view.name, [])),
        }
        if p["IncludePublicKey"]:
            item["PublicKey"] = view.public_key
        return item

    return number_paged(views, p, "KeyPairs", "KeyPair", render)


@actions.define(
    "DeleteKeyPairs",
    [
        REGION_ID,
        StringList("KeyPairNames", required=True, json_array=True, max_items=100, item_max_length=128),
    ],
)
def delete_key_pairs(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
    """Delete key pairs named in a JSON array, all or none."""
    ctx.services.keypairs.delete(_scope(ctx, p["RegionId"]), p["KeyPairNames"])
    return {}


def _bind(attach: bool) -> Handler:
    def handler(ctx: ActionContext, p: dict[str, Any]) -> dict[str, Any]:
        results = ctx.services.changes.key_pair(
            ctx.scope(p["RegionId"]), p["KeyPairName"], p["InstanceIds"], attach
        )
        failed = sum(1 for _, code, _ in results if code != "200")
        return {
            "KeyPairName": p["KeyPairName"],
            "TotalCount": str(len(results)),
            "FailCount": str(failed),
            "Results": {
                "Result": [
                    {
                        "InstanceId": i,
                        "Code": code,
                        "Message": message,
                        "Success": "true" if code == "200" else "false",
                    }
                    for i, code, message in results
                ]
            },
        }

    handler.__doc__ = (
        "Bind a key pair to instances (effective at their next start)."
        if attach
        else "Unbind a key pair from instances (effective at their next start)."
    )
    return handler


_BIND = [
    REGION_ID,
    String("KeyPairName", required=True, max_length=128),
    StringList("InstanceIds", required=True, json_array=True, max_items=50, item_max_length=64),
]
actions.define("AttachKeyPair", _BIND)(_bind(True))
actions.define("DetachKeyPair", _BIND)(_bind(False))
