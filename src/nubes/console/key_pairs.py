"""Key pair pages (/key-pairs): the list, Create, Import (a public key) and Delete.

CreateKeyPair returns the private key this one time: the console hands it over in the answer
to the create form itself, shown in a textarea with a download link or, with "download", as
the attachment <name>.pem, and keeps it nowhere (the answers are Cache-Control: no-store)."""

from __future__ import annotations

import json
import re

from nubes.client import ClientError
from nubes.console.forms import ListPage, fields
from nubes.console.routing import Ctx, Route, get, post
from nubes.console.web import Page

KEY_PAIRS = ListPage("/key-pairs", "key_pairs.html", "ecs", "DescribeKeyPairs", ("KeyPairs", "KeyPair"))


async def create(ctx: Ctx, _: re.Match[str]) -> Page:
    try:
        answer = await ctx.call("ecs", "CreateKeyPair", RegionId=ctx.region_id, **fields(ctx, "KeyPairName"))
    except ClientError as error:
        return await KEY_PAIRS.show(ctx, refused=error)
    name, pem = str(answer.get("KeyPairName", "")), str(answer.get("PrivateKeyBody", ""))
    if ctx.request.form.get("deliver") == "download":
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "key"
        disposition = f'attachment; filename="{filename}.pem"'.encode()
        return Page(200, pem.encode(), b"application/x-pem-file", [(b"content-disposition", disposition)])
    created = {"name": name, "fingerprint": str(answer.get("KeyPairFingerPrint", "")), "pem": pem}
    return await KEY_PAIRS.show(ctx, created=created)


async def delete(ctx: Ctx, match: re.Match[str]) -> Page:
    # DeleteKeyPairs takes a JSON array of names; the form's row names one.
    names = json.dumps([ctx.request.form.get("KeyPairName", "")])
    return await KEY_PAIRS.form("ecs", "DeleteKeyPairs", confirm="the deletion", KeyPairNames=names)(
        ctx, match
    )


ROUTES: list[Route] = [
    get("/key-pairs", KEY_PAIRS.show),
    post("/key-pairs/create", create),
    post("/key-pairs/import", KEY_PAIRS.form("ecs", "ImportKeyPair", "KeyPairName", "PublicKeyBody")),
    post("/key-pairs/delete", delete),
]
