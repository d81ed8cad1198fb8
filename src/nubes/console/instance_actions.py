"""The instance page's other actions, each a POST form that makes one API call and redirects (303)
back to the page, or shows the API's refusal on it with its Code, Message and HTTP status:
rename and reset the password (ModifyInstanceAttribute), change the type (ModifyInstanceSpec,
Stopped), attach and detach a data disk (AttachDisk, DetachDisk), replace the system disk with
an image's (ReplaceSystemDisk, Stopped, confirmed: it erases the disk) and create an image of the
instance (CreateImage: the page comes back naming the new image)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from nubes.client import ClientError
from nubes.console.forms import unconfirmed
from nubes.console.instances import ID, detail
from nubes.console.routing import Ctx, Route, post
from nubes.console.web import PREFIX, Page, redirect

# action in the path -> (API action, the one form field it is given, under the same name)
ONE_FIELD = {
    "rename": ("ModifyInstanceAttribute", "InstanceName"),
    "password": ("ModifyInstanceAttribute", "Password"),
    "resize": ("ModifyInstanceSpec", "InstanceType"),
    "attach": ("AttachDisk", "DiskId"),
    "detach": ("DetachDisk", "DiskId"),
    "replace-disk": ("ReplaceSystemDisk", "ImageId"),
}
CONFIRMED = {"replace-disk"}


async def act(ctx: Ctx, match: re.Match[str]) -> Page:
    instance_id, action = match["id"], match["action"]
    form = ctx.request.form
    back = f"{PREFIX}/instances/{instance_id}"
    try:
        if action in CONFIRMED and (not_yet := unconfirmed(form, "that the system disk is erased")):
            raise not_yet
        if action == "image":
            answer = await ctx.call(
                "ecs",
                "CreateImage",
                RegionId=ctx.region_id,
                InstanceId=instance_id,
                ImageName=form.get("ImageName", ""),
            )
            return redirect(f"{back}?" + urlencode({"image": answer.get("ImageId", "")}))
        api_action, name = ONE_FIELD[action]
        await ctx.call("ecs", api_action, InstanceId=instance_id, **{name: form.get(name, "")})
    except ClientError as error:
        return await detail(ctx, instance_id, error, form)
    return redirect(back)


ROUTES: list[Route] = [post(f"/instances/(?P<id>{ID})/(?P<action>{'|'.join([*ONE_FIELD, 'image'])})", act)]
