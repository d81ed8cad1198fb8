"""Key pair pages (/key-pairs): the list, Create, Import (a public key) and Delete.

CreateKeyPair returns the private key this one time: the console hands it over in the answer
to the create form itself, shown in a textarea with a download link or, with "download", as
the attachment <name>.pem, and keeps it nowhere (the answers are Cache-Control: no-store)."""

from __future__ import annotations

import json
import re

from nubes.client import ClientError
from nubes.console.forms import fields, render, submit
from nubes.console.listing import listing
from nubes.console.routing import Ctx, Route, get, post
from nubes.console.web import Page


async def key_pairs(
    ctx: Ctx,
    _: re.Match[str] | None = None,
    refused: ClientError | None = None,
    created: dict[str, str] | None = None,
) -> Page:
    found = await listing(
        ctx, "/key-pairs", "ecs", "DescribeKeyPairs", ("KeyPairs", "KeyPair"), RegionId=ctx.region_id
    )
    return render(ctx, "key_pairs.html", refused, found, created=created)


async def create(ctx: Ctx, _: re.Match[str]) -> Page:
    params = fields(ctx, "KeyPairName")
    try:
        answer = await ctx.call("ecs", "CreateKeyPair", RegionId=ctx.region_id, **params)
    except ClientError as error:
        return await key_pairs(ctx, refused=error)
    name, pem = str(answer.get("KeyPairName", "")), str(answer.get("PrivateKeyBody", ""))
    if ctx.request.form.get("deliver") == "download":
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "key"
        disposition = f'attachment; filename="{filename}.pem"'.encode()
        return Page(200, pem.encode(), b"application/x-pem-file", [(b"content-disposition", disposition)])
    created = {"name": name, "fingerprint": str(answer.get("KeyPairFingerPrint", "")), "pem": pem}
    return await key_pairs(ctx, created=created)


async def import_key(ctx: Ctx, _: re.Match[str]) -> Page:
    params = fields(ctx, "KeyPairName", "PublicKeyBody")
    return await submit(
        ctx,
        "/key-pairs",
        lambda e: key_pairs(ctx, refused=e),
        "ecs",
        "ImportKeyPair",
        RegionId=ctx.region_id,
        **params,
    )


async def delete(ctx: Ctx, _: re.Match[str]) -> Page:
    names = json.dumps([ctx.request.form.get("KeyPairName", "")])
    return await submit(
        ctx,
        "/key-pairs",
        lambda e: key_pairs(ctx, refused=e),
        "ecs",
        "DeleteKeyPairs",
        RegionId=ctx.region_id,
        KeyPairNames=names,
    )


ROUTES: list[Route] = [
    get("/key-pairs", key_pairs),
    post("/key-pairs/create", create),
    post("/key-pairs/import", import_key),
    post("/key-pairs/delete", delete),
]
