"""What every resource page's forms share: the API parameters a form carries, and one action that
redirects (303) back to its page when the API accepts it or shows the page again with the
refusal (Code, Message, its HTTP status) when the API refuses it.

A list page is a ListPage (one Describe* listed page by page, and what its forms offer to
choose from); its forms, and those of a resource's own page, are handlers made by `form` and
`detail_form` from the API action they call and the form fields they send."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nubes.client import ClientError
from nubes.console.listing import listing
from nubes.console.routing import Ctx, Handler
from nubes.console.web import PREFIX, Page, redirect

# The pages' path IDs: what the API's resource IDs are made of (anything else is a 404).
ID = r"[A-Za-z0-9._-]{1,128}"

Refused = Callable[[ClientError], Awaitable[Page]]
Extras = Callable[[Ctx], Awaitable[dict[str, Any]]]
# A resource's own page, shown again with the refusal of one of its forms.
Detail = Callable[[Ctx, "re.Match[str]", "ClientError | None"], Awaitable[Page]]


def fields(ctx: Ctx, *names: str) -> dict[str, str]:
    """The form's non-empty values of these API parameters: a field left empty is not sent,
    so the API applies its own default rather than refusing an empty value."""
    form = ctx.request.form
    return {name: form[name].strip() for name in names if form.get(name, "").strip()}


async def submit(ctx: Ctx, back: str, refused: Refused, product: str, action: str, **params: str) -> Page:
    """One API call; accepted, a redirect to `back` (a console path); refused, `refused(error)`."""
    try:
        await ctx.call(product, action, **params)
    except ClientError as error:
        return await refused(error)
    return redirect(f"{PREFIX}{back}")


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

    def form(self, product: str, action: str, *names: str, **fixed: str) -> Handler:
        """A handler calling `action` with the form's `names` and the `fixed` parameters."""

        async def handler(ctx: Ctx, _: re.Match[str]) -> Page:
            params = {**fields(ctx, *names), **fixed}
            return await submit(
                ctx,
                self.path,
                lambda e: self.show(ctx, refused=e),
                product,
                action,
                RegionId=ctx.region_id,
                **params,
            )

        return handler


def detail_form(
    show: Detail, base: str, id_param: str, product: str, action: str, *names: str, **fixed: str
) -> Handler:
    """A handler for a form of a resource's page (`base`/<id>): `action` with the form's `names`,
    the `fixed` parameters and the resource's ID as `id_param` (none when empty)."""

    async def handler(ctx: Ctx, match: re.Match[str]) -> Page:
        params = {**fields(ctx, *names), **fixed}
        if id_param:
            params[id_param] = match["id"]
        return await submit(
            ctx,
            f"{base}/{match['id']}",
            lambda e: show(ctx, match, e),
            product,
            action,
            RegionId=ctx.region_id,
            **params,
        )

    return handler
