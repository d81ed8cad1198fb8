"""What the console's resource pages and their forms share: one API call that redirects (303)
on success and re-renders the page with the refusal (Code, Message, its HTTP status) otherwise;
the choices their selects offer; the lists a form carries as numbered fields.

A list page is a ListPage (one Describe* listed page by page, and what its forms offer to
choose from); its forms, and those of a resource's own page, are handlers made by `form` and
`detail_form` from the API action they call and the form fields they send.

A form posts a list as numbered fields (`disk.1`, `disk.2`, ...), one checkbox each, because
the request's form keeps only the first value of a repeated name."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nubes.client import ClientError
from nubes.console.listing import listing
from nubes.console.routing import Ctx, Handler
from nubes.console.web import PREFIX, Page, redirect

# The pages' path IDs: what the API's resource IDs are made of (anything else is a 404; the API
# answers NotFound for a well-formed unknown one).
ID = r"[A-Za-z0-9._-]{1,128}"
MAX_CHOICES = "100"  # the largest page DescribeInstances/DescribeDisks/DescribeSnapshots give

Refused = Callable[[ClientError], Awaitable[Page]]
Extras = Callable[[Ctx], Awaitable[dict[str, Any]]]
# A resource's own page, shown again with the refusal of one of its forms.
Detail = Callable[[Ctx, "re.Match[str]", "ClientError | None"], Awaitable[Page]]


async def attempt(ctx: Ctx, done: str, refused: Refused, product: str, action: str, **params: str) -> Page:
    """Call `action`; on success go to `done`, on a refusal show it on the page `refused` renders."""
    try:
        await ctx.call(product, action, **params)
    except ClientError as error:
        return await refused(error)
    return redirect(done)


async def create(
    ctx: Ctx, refused: Refused, path: str, id_field: str, product: str, action: str, **params: str
) -> Page:
    """Call a Create* `action`; on success go to the new resource's page (`path`/<its ID>)."""
    try:
        answer = await ctx.call(product, action, **params)
    except ClientError as error:
        return await refused(error)
    return redirect(f"{PREFIX}{path}/{answer[id_field]}")


def numbered(form: dict[str, str], prefix: str) -> list[str]:
    """The values of the fields `prefix.1`, `prefix.2`, ... that are well-formed IDs, in order."""
    pattern = re.compile(rf"{re.escape(prefix)}\.(\d+)")
    found = sorted((int(m[1]), v) for k, v in form.items() if (m := pattern.fullmatch(k)) and v)
    return [v for _, v in found if re.fullmatch(ID, v)]


def json_list(values: list[str]) -> str:
    """["a","b"]: how some actions take a list in one parameter (diskIds, timePoints, ...)."""
    return json.dumps(values)


def words(text: str) -> list[str]:
    """The items of a comma- or space-separated field (account IDs)."""
    return [w for w in re.split(r"[\s,]+", text.strip()) if w]


def refusal(code: str, message: str, status: int = 400) -> ClientError:
    """A refusal of the console's own (a missing confirmation), shown as the API's are."""
    return ClientError(code, message, status)


def unconfirmed(form: dict[str, str], what: str) -> ClientError | None:
    """The refusal of a form that destroys something (`what`: "the deletion") and whose confirm
    box is not ticked; None when it is. The box is `required` in the page: this is for a form
    sent without the page's own checks."""
    if form.get("confirm") == "yes":
        return None
    return refusal("ConfirmationRequired", f"Tick the box to confirm {what}.")


async def zones(ctx: Ctx) -> tuple[list[str], list[str]]:
    """The region's zones, and the disk categories they sell (in the order the API lists them)."""
    answer = await ctx.call("ecs", "DescribeZones", RegionId=ctx.region_id)
    zone_ids: list[str] = []
    categories: dict[str, None] = {}
    for zone in answer.get("Zones", {}).get("Zone", []):
        zone_ids.append(str(zone.get("ZoneId", "")))
        for category in zone.get("AvailableDiskCategories", {}).get("DiskCategories", []):
            categories.setdefault(str(category))
    return zone_ids, list(categories)


async def instances(ctx: Ctx, **filters: str) -> list[dict[str, Any]]:
    answer = await ctx.call(
        "ecs", "DescribeInstances", RegionId=ctx.region_id, PageSize=MAX_CHOICES, **filters
    )
    return [
        {
            "id": i.get("InstanceId", ""),
            "name": i.get("InstanceName", ""),
            "zone": i.get("ZoneId", ""),
            "status": i.get("Status", ""),
        }
        for i in answer.get("Instances", {}).get("Instance", [])
    ]


async def disks(ctx: Ctx, **filters: str) -> list[dict[str, Any]]:
    answer = await ctx.call("ecs", "DescribeDisks", RegionId=ctx.region_id, PageSize=MAX_CHOICES, **filters)
    return list(answer.get("Disks", {}).get("Disk", []))


async def snapshots(ctx: Ctx, **filters: str) -> list[dict[str, Any]]:
    answer = await ctx.call(
        "ecs", "DescribeSnapshots", RegionId=ctx.region_id, PageSize=MAX_CHOICES, **filters
    )
    return list(answer.get("Snapshots", {}).get("Snapshot", []))


def picked(item: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """A row for a template: each of its names given the API field it shows ("" when absent)."""
    return {name: item.get(api_name, "") for name, api_name in names.items()}


def percent(progress: object) -> int:
    """A Progress as the API gives it ("40%") as a number for a <progress> bar."""
    try:
        return max(0, min(100, int(str(progress).rstrip("%") or 0)))
    except ValueError:
        return 0


def fields(ctx: Ctx, *names: str) -> dict[str, str]:
    """The form's non-empty values of these API parameters: a field left empty is not sent,
    so the API applies its own default rather than refusing an empty value."""
    form = ctx.request.form
    return {name: form[name].strip() for name in names if form.get(name, "").strip()}


def rows(answer: dict[str, Any], outer: str, inner: str) -> list[dict[str, Any]]:
    """The items of a Describe* answer, nested as the API nests them (("Vpcs", "Vpc"))."""
    return list(answer.get(outer, {}).get(inner, []))


async def choices(
    ctx: Ctx, product: str, action: str, items: tuple[str, str], **params: str
) -> list[dict[str, Any]]:
    """The first 50 rows of a Describe* call (the most some of them give in one page), to offer
    in a form's select; none when refused: the API's refusal of the empty choice is then shown."""
    try:
        answer = await ctx.call(product, action, PageSize="50", **params)
    except ClientError:
        return []
    return rows(answer, *items)


def status_of(refused: ClientError | None) -> int:
    return (refused.http_status or 400) if refused else 200


def kept(ctx: Ctx, refused: ClientError | None) -> dict[str, str]:
    """What a refused form sent, for its inputs to show again (see the input macro)."""
    return {k: v for k, v in ctx.request.form.items() if k != "csrf_token"} if refused else {}


@dataclass(frozen=True)
class ListPage:
    path: str
    template: str
    product: str
    action: str
    items: tuple[str, str]
    extras: Extras | None = None

    async def show(
        self, ctx: Ctx, _: re.Match[str] | None = None, refused: ClientError | None = None, **context: Any
    ) -> Page:
        """The page; a refused action's error (with its status) over the listing's own."""
        found = await listing(ctx, self.path, self.product, self.action, self.items, RegionId=ctx.region_id)
        if self.extras is not None:
            context.update(await self.extras(ctx))
        error = refused or found.error
        return ctx.render(
            self.template,
            error=error,
            http_status=status_of(refused),
            listing=found,
            kept=kept(ctx, refused),
            **context,
        )

    def form(self, product: str, action: str, *names: str, confirm: str = "", **fixed: str) -> Handler:
        """A handler calling `action` with the form's `names` and the `fixed` parameters; with
        `confirm` (what it does: "the deletion"), only once the form's confirm box is ticked."""

        async def handler(ctx: Ctx, _: re.Match[str]) -> Page:
            if confirm and (refused := unconfirmed(ctx.request.form, confirm)):
                return await self.show(ctx, refused=refused)
            params = {**fields(ctx, *names), **fixed}
            return await attempt(
                ctx,
                f"{PREFIX}{self.path}",
                lambda e: self.show(ctx, refused=e),
                product,
                action,
                RegionId=ctx.region_id,
                **params,
            )

        return handler


def detail_form(
    show: Detail,
    base: str,
    id_param: str,
    product: str,
    action: str,
    *names: str,
    confirm: str = "",
    **fixed: str,
) -> Handler:
    """A handler for a form of a resource's page (`base`/<id>): `action` with the form's `names`,
    the `fixed` parameters and the resource's ID as `id_param` (none when empty); with
    `confirm`, only once the form's confirm box is ticked."""

    async def handler(ctx: Ctx, match: re.Match[str]) -> Page:
        if confirm and (refused := unconfirmed(ctx.request.form, confirm)):
            return await show(ctx, match, refused)
        params = {**fields(ctx, *names), **fixed}
        if id_param:
            params[id_param] = match["id"]
        return await attempt(
            ctx,
            f"{PREFIX}{base}/{match['id']}",
            lambda e: show(ctx, match, e),
            product,
            action,
            RegionId=ctx.region_id,
            **params,
        )

    return handler
